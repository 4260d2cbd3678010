"""MLatom 3.25.5 itself on the transfer suite (bench/transfer_suite, issue 12): its
transfer-learning tutorial protocol (pre-train ``ml.models.ani`` on every low-level energy, copy,
``fix_layers([[0, 6]])``, reset the self energies, fine-tune at 1e-4 on the few high-level
points with a separate validation set) and the tutorial's scratch model, per system, seed and
budget, with the high-level points of ``protocol.pick``. The MLatom side is
bench/_mlatom_suite.py, run by bench/.mlatom-venv/bin/python (``bash bench/mlatom_env.sh``).

For each system: ``data/<name>.h5`` (``levelup.Database.load``) -> bench/_work/mlatom_suite/
<name>.npz (species, coordinates, the first non-per-atom property as ``low``, the second as
``high``), then one MLatom process per seed writing
bench/transfer_suite/results/mlatom/<name>_seed<S>.json (and .npz, the predictions). A
(system, seed) whose JSON exists is skipped, so the command resumes where it stopped.

formamide-ani1x is not run: its pre-trained model is ANI-1x, which MLatom downloads from the
internet on first use, and this machine is offline. Everything else is the default list.

    nice -n 10 .venv/bin/python bench/bench_mlatom_suite.py [--systems NAME ...]
        [--seeds 0 1 2] [--budgets 8 16 32]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import levelup

BENCH = Path(__file__).resolve().parent
SUITE = BENCH / "transfer_suite"
WORK = BENCH / "_work" / "mlatom_suite"
RESULTS = SUITE / "results" / "mlatom"
MLATOM_PYTHON = BENCH / ".mlatom-venv" / "bin" / "python"
SYSTEMS = ("water", "hcn", "ammonia-inversion", "formaldehyde-dft", "methanol", "h2-tutorial")


def write_input(name: str) -> Path:
    """The system's geometries and low/high energies as MLatom's side reads them."""
    db = levelup.Database.load(SUITE / "data" / f"{name}.h5")
    energies = [n for n, info in db.properties.items() if not info.per_atom]
    if len(energies) < 2:
        raise SystemExit(f"{name}: expected a low and a high energy, found {energies}")
    low, high = energies[0], energies[1]
    species = np.asarray(db.species[0])
    if not (np.asarray(db.species) == species).all():
        raise SystemExit(f"{name}: the molecules do not all have the same atoms")
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"{name}.npz"
    np.savez(path, species=species, coordinates=np.asarray(db.coordinates),
             low=np.asarray(db.get(low, unit="Hartree")),
             high=np.asarray(db.get(high, unit="Hartree")),
             levels=np.array([low, high]))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budgets", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not MLATOM_PYTHON.exists():
        raise SystemExit(f"{MLATOM_PYTHON} missing: run `bash bench/mlatom_env.sh` first")
    args.results.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               MLATOM_NO_VERSION_CHECK="1")
    inputs: dict[str, Path] = {}
    for seed in args.seeds:  # every system's seed 0 first, so partial results are useful
        for name in args.systems:
            out = args.results / f"{name}_seed{seed}.json"
            if out.exists():
                print(f"{name} seed {seed}: {out} exists, skipped", flush=True)
                continue
            if name not in inputs:
                inputs[name] = write_input(name)
            log = WORK / f"{name}_seed{seed}.log"
            t0 = time.perf_counter()
            with open(log, "w") as handle:
                rc = subprocess.call([str(MLATOM_PYTHON), str(BENCH / "_mlatom_suite.py"),
                                      str(inputs[name]), str(out), "--seed", str(seed),
                                      "--budgets", *map(str, args.budgets)],
                                     env=env, stdout=handle, stderr=subprocess.STDOUT)
            wall = time.perf_counter() - t0
            if rc != 0 or not out.exists():
                print(f"{name} seed {seed}: FAILED (exit {rc}, {wall:.0f} s), see {log}",
                      flush=True)
                continue
            r = json.loads(out.read_text())
            runs = ", ".join(f"B={x['budget']}: TL {x['transfer_rmse_all_kcal']:.2f} / "
                             f"scratch {x['scratch_rmse_all_kcal']:.2f}" for x in r["runs"])
            print(f"{name} seed {seed}: pre-trained {r['pretrain_rmse_vs_low_kcal']:.3f} vs low "
                  f"({r['pretrain_seconds']:.0f} s); {runs} kcal/mol (all points); "
                  f"{wall:.0f} s", flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
