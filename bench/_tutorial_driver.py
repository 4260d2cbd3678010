"""Driver of bench/bench_tutorial_speed.py: runs MLatom's tutorial script (unchanged) with time
stamps around its phases, in the current folder, with levelup.compat.mlatom or MLatom 3.25.5.

Usage: python _tutorial_driver.py {levelup|mlatom} SCRIPT.py OUT_PREFIX [--threads T] [--seed S]
       [--pyscf-threads N]

Runs under either interpreter (levelup's .venv or bench/.mlatom-venv): it imports neither library
at module level. The tutorial's code is not touched: the phases are timed by wrapping the library
methods the script calls (labels: ``methods(...).predict``; training: ``ani.train``; prediction:
``ani.predict``), outermost calls only. Writes OUT_PREFIX.json (times, epochs, versions) and
OUT_PREFIX.npz (the molecular database's energies, Hartree, read after the script ran).
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import runpy  # noqa: E402

EVENTS: list[dict] = []
_DEPTH = [0]
_SCHEDULER_STEPS: dict[int, int] = {}  # MLatom: ReduceLROnPlateau steps (one per epoch) per instance
_FIT_EPOCHS: list[int] = []  # levelup: epochs of every fit() call


def _timed(cls: type, name: str, kind: str) -> None:
    original = getattr(cls, name)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        if _DEPTH[0]:
            return original(*args, **kwargs)
        _DEPTH[0] += 1
        steps_before = dict(_SCHEDULER_STEPS)
        fits_before = len(_FIT_EPOCHS)
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            end = time.perf_counter()
            _DEPTH[0] -= 1
            new_steps = [n - steps_before.get(k, 0) for k, n in _SCHEDULER_STEPS.items()]
            epochs = max(new_steps, default=0) or sum(_FIT_EPOCHS[fits_before:]) or None
            EVENTS.append({"kind": kind, "start": start - T0, "end": end - T0, "epochs": epochs})

    setattr(cls, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("library", choices=["levelup", "mlatom"])
    parser.add_argument("script")
    parser.add_argument("out")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=None, help="torch.manual_seed before the script")
    parser.add_argument("--pyscf-threads", type=int, default=0,
                        help="MLatom: OpenMP threads of its PySCF calls (0: MLatom's default, "
                             "os.cpu_count())")
    args = parser.parse_args()
    os.environ.setdefault("MLATOM_NO_VERSION_CHECK", "1")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.seed is not None:
        torch.manual_seed(args.seed)
    t_import = time.perf_counter()
    if args.library == "mlatom":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau
        if not hasattr(scheduler, "is_better"):  # MLatom 3.25 + torch 2.13
            scheduler.is_better = scheduler._is_better
        step = scheduler.step

        def counted_step(self, *a, **k):
            _SCHEDULER_STEPS[id(self)] = _SCHEDULER_STEPS.get(id(self), 0) + 1
            return step(self, *a, **k)

        scheduler.step = counted_step
        import mlatom as ml
        from mlatom.interfaces.pyscf_interface import pyscf_methods
        from mlatom.interfaces.torchani_interface import ani

        _timed(pyscf_methods, "predict", "labels")
        if args.pyscf_threads:
            init = pyscf_methods.__init__

            @functools.wraps(init)
            def init_threads(self, *a, nthreads=None, **k):
                return init(self, *a, nthreads=nthreads or args.pyscf_threads, **k)

            pyscf_methods.__init__ = init_threads
        version = getattr(ml, "__version__", "3.25.5")
    else:
        import levelup
        import levelup.compat.mlatom as ml
        import levelup.train.loop

        fit = levelup.train.loop.fit

        @functools.wraps(fit)
        def counted_fit(*a, **k):
            history = fit(*a, **k)
            _FIT_EPOCHS.append(len(history.epoch))
            return history

        levelup.train.loop.fit = counted_fit
        _timed(ml._Methods, "predict", "labels")
        ani = ml.ani
        version = getattr(levelup, "__version__", "dev")
    _timed(ani, "train", "train")
    _timed(ani, "predict", "predict")
    t_imported = time.perf_counter()
    namespace = runpy.run_path(args.script, run_name="__main__")
    t_end = time.perf_counter()
    mol_db = namespace["molDB"]
    import numpy as np

    names = ["HF_energy", "CISD_energy", "ANI_HF_energy", "ANI_TL_energy", "ANI_CISD_energy"]
    np.savez(args.out + ".npz", r=np.asarray(namespace["xyz"])[:, 1, 2],
             **{n: np.asarray(mol_db.get_properties(n), dtype=np.float64) for n in names})
    result = {
        "library": args.library, "version": version, "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(), "seed": args.seed,
        "pyscf_threads": args.pyscf_threads or os.cpu_count(),
        "script_s": t_end - T0,  # from the driver's first line: interpreter start-up excluded
        "import_s": t_imported - t_import, "start_s": t_import - T0,
        "script_start": t_imported - T0, "events": EVENTS,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    with open(args.out + ".json", "w") as handle:
        json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main()
