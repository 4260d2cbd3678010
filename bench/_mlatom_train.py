"""MLatom 3.25.5 side of bench/bench_train.py: train MLatom's ANI on energies, exactly as the tutorial does.

Runs inside bench/.mlatom-venv (made by bench/mlatom_env.sh), never with levelup's environment.
Usage: python _mlatom_train.py INPUT.npz OUTPUT.json --seed S [--workdir DIR] [--threads T]
       [--max-epochs N]

INPUT.npz holds ``species`` (N, A) atomic numbers (0 padding), ``coordinates`` (N, A, 3) Angstrom and
``energies`` (N,) Hartree. All N molecules go to ``ani.train`` (MLatom splits 80/20 at random itself,
as in the tutorial); the RMSE is then taken over all N. Writes a JSON with the wall times, the number
of epochs and the RMSE (kcal/mol). MLatom seeds nothing itself; this script seeds numpy and torch.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import time

os.environ.setdefault("MLATOM_NO_VERSION_CHECK", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

# MLatom 3.25 calls ReduceLROnPlateau.is_better, which torch 2.13 renamed _is_better.
_R = torch.optim.lr_scheduler.ReduceLROnPlateau
if not hasattr(_R, "is_better"):
    _R.is_better = _R._is_better

import mlatom as ml  # noqa: E402

# MLatom rebuilds its optimizer and scheduler when it reloads the best model at the end, so the
# epochs are counted here: the time of every step of each scheduler, per scheduler instance.
_STEPS: dict[int, list[float]] = {}
_step = _R.step


def _timed_step(self, *args, **kwargs):
    _STEPS.setdefault(id(self), []).append(time.perf_counter())
    return _step(self, *args, **kwargs)


_R.step = _timed_step

HARTREE_TO_KCALMOL = 627.509474


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--max-epochs", type=int, default=0, help="0: MLatom's default (1e6)")
    args = parser.parse_args()
    src, out, seed = os.path.abspath(args.input), os.path.abspath(args.output), args.seed
    workdir = args.workdir or os.path.dirname(out)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(workdir, exist_ok=True)
    os.chdir(workdir)
    data = np.load(src)
    species, xyz, energies = data["species"], data["coordinates"], data["energies"]
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if (species > 0).all():
        db = ml.molecular_database.from_numpy(coordinates=xyz, species=species)
    else:  # molecules of different sizes: build them one by one
        db = ml.molecular_database()
        for z, r in zip(species, xyz, strict=True):
            n = int((z > 0).sum())
            db.append(ml.molecule.from_numpy(coordinates=r[:n], species=z[:n]))
    db.add_scalar_properties(energies, "ref_energy")
    model_file = f"mlatom-seed{seed}.pt"
    if os.path.exists(model_file):
        os.remove(model_file)
    ani = ml.models.ani(model_file=model_file, verbose=False)
    t0 = time.perf_counter()
    hyper = {"max_epochs": args.max_epochs} if args.max_epochs else {}
    ani.train(molecular_database=db, property_to_learn="ref_energy", hyperparameters=hyper)
    t_train = time.perf_counter() - t0
    # MLatom validates, steps both schedulers, then trains one epoch: one step per epoch each
    stamps = max(_STEPS.values(), key=len) if _STEPS else []
    epochs = len(stamps)
    epoch_times = np.diff(stamps) if len(stamps) > 1 else np.array([t_train])
    t0 = time.perf_counter()
    ani.predict(molecular_database=db, property_to_predict="ani_energy")
    t_predict = time.perf_counter() - t0
    pred = db.get_properties("ani_energy")
    rmse = float(np.sqrt(np.mean((pred - energies) ** 2)) * HARTREE_TO_KCALMOL)
    result = {
        "seed": seed,
        "train_seconds": t_train,
        "epochs": epochs,
        "seconds_per_epoch": t_train / max(epochs, 1),
        "median_epoch_seconds": float(np.median(epoch_times)),
        "predict_seconds": t_predict,
        "rmse_kcalmol": rmse,
        "n_molecules": len(energies),
        "torch_threads": torch.get_num_threads(),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "versions": {"mlatom": ml.__version__ if hasattr(ml, "__version__") else "3.25.5",
                     "torch": torch.__version__},
    }
    with open(out, "w") as handle:
        json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main()
