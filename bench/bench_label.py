"""Labelling speed on the tutorial's 451 H2 geometries, HF/STO-3G + CISD/cc-pVDZ, side by side:

- plain PySCF: one ``gto.M`` + solver per geometry, default settings, one thread;
- levelup, 1 worker (in this process, one thread);
- levelup, 2 workers, as ``label()`` runs by default in a fresh session: the shared pool's
  worker starts in the first call (the HF one) and is reused by the second;
- levelup, 2 workers, a ``ProcessExecutor`` started before the timing (steady-state
  throughput).

Every levelup run writes to a fresh label cache (the default behaviour: one commit per label),
so nothing is reused between runs. Each configuration runs ``--repeat`` times, alternating, and
the fastest is reported (the machine is shared; the load average is recorded). Energies are
compared with the plain PySCF ones.

Run: ``python bench/bench_label.py`` (writes the "label" section of bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

# One thread for numpy's BLAS and OpenMP everywhere in this process: the comparison is
# plain PySCF on one thread against levelup workers on one thread each.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import write_section  # noqa: E402

LEVELS = ("HF/STO-3G", "CISD/cc-pVDZ")


@contextlib.contextmanager
def quiet_stdout():
    """Send file descriptor 1 to /dev/null (PySCF writes to the stdout it saw at import)."""
    sys.stdout.flush()
    saved = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(null)
        os.close(saved)


def plain_pyscf(distances: np.ndarray, level: str) -> np.ndarray:
    """What a user writes without levelup: a fresh Mole and solver per geometry."""
    from pyscf import ci, gto, lib, scf

    lib.num_threads(1)
    energies = []
    with quiet_stdout():  # PySCF prints each energy by default: to /dev/null, not a terminal
        for r in distances:
            if level == "HF/STO-3G":
                mol = gto.M(atom=[["H", (0, 0, 0)], ["H", (0, 0, r)]], basis="sto-3g")
                energies.append(scf.RHF(mol).run().e_tot)
            else:
                mol = gto.M(atom=[["H", (0, 0, 0)], ["H", (0, 0, r)]], basis="cc-pvdz")
                mf = scf.RHF(mol).run()
                energies.append(ci.CISD(mf).run().e_tot)
    return np.array(energies)


def levelup_run(db, folder: Path, tag: str, **kwargs) -> tuple[dict[str, np.ndarray], dict]:
    from levelup.qm import label_with_report

    cache = folder / f"{tag}-{time.perf_counter_ns()}.sqlite"
    out, seconds = {}, {}
    for level in LEVELS:
        start = time.perf_counter()
        labelled, report = label_with_report(db, level, cache=cache, progress=False, **kwargs)
        seconds[level] = time.perf_counter() - start
        assert report.computed == len(db) and report.ok, report.summary()
        out[level] = labelled.get(level)
    return out, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=2, help="runs per configuration")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()

    from levelup.qm import ProcessExecutor
    from levelup.qm.executors import _close_shared_pools as close_shared_pools
    from levelup.studies.h2 import h2_scan

    db = h2_scan()
    distances = db.distance(0, 1)
    load_before = os.getloadavg()
    times: dict[str, list[dict]] = {k: [] for k in ("plain", "lv1", "lv2", "lv2warm")}
    energies: dict[str, dict[str, np.ndarray]] = {}
    with tempfile.TemporaryDirectory() as tmp, ProcessExecutor(workers=2, threads=1) as pool:
        folder = Path(tmp)
        pool.start()
        plain_pyscf(distances[:1], LEVELS[1])  # imports outside the timing
        for _ in range(args.repeat):
            seconds, plain = {}, {}
            for level in LEVELS:
                start = time.perf_counter()
                plain[level] = plain_pyscf(distances, level)
                seconds[level] = time.perf_counter() - start
            times["plain"].append(seconds)
            energies["plain"] = plain
            energies["lv1"], s = levelup_run(db, folder, "lv1", workers=1, threads=1)
            times["lv1"].append(s)
            close_shared_pools()  # as in a fresh session: the worker starts inside the timing
            energies["lv2"], s = levelup_run(db, folder, "lv2", workers=2, threads=1)
            times["lv2"].append(s)
            energies["lv2warm"], s = levelup_run(db, folder, "lv2warm", executor=pool)
            times["lv2warm"].append(s)
    load_after = os.getloadavg()

    def best(key: str) -> tuple[float, float, float]:
        runs = times[key]
        per_level = [min(r[level] for r in runs) for level in LEVELS]
        total = min(sum(r.values()) for r in runs)
        return per_level[0], per_level[1], total

    rows = {
        "plain": "plain PySCF, 1 thread (gto.M + solver per geometry, defaults)",
        "lv1": "levelup, 1 worker x 1 thread",
        "lv2": "levelup, 2 workers x 1 thread (default label(), worker start-up timed)",
        "lv2warm": "levelup, 2 workers x 1 thread (ProcessExecutor started before timing)",
    }
    plain_total = best("plain")[2]
    lv1_total = best("lv1")[2]
    lines = ["| run | HF/STO-3G s | CISD/cc-pVDZ s | total s | vs plain | speed-up vs 1 worker |",
             "|---|---|---|---|---|---|"]
    for key, text in rows.items():
        hf, cisd, total = best(key)
        lines.append(f"| {text} | {hf:.2f} | {cisd:.2f} | {total:.2f} | "
                     f"{total / plain_total:.2f}x | "
                     f"{'' if key == 'plain' else f'{lv1_total / total:.2f}x'} |")
    diffs = []
    for key in ("lv1", "lv2", "lv2warm"):
        worst = max(float(np.abs(energies[key][lv] - energies["plain"][lv]).max())
                    for lv in LEVELS)
        diffs.append(f"{key}: {worst:.1e}")
    body = "\n".join([
        "The tutorial's 451 H2 geometries (0.50-5.00 Angstrom), HF/STO-3G then CISD/cc-pVDZ. "
        "Targets: 1 worker at most 0.7x plain PySCF's time; 2 workers at least 1.7x faster "
        "than 1. Each levelup run commits every label to a fresh SQLite cache.",
        "",
        *lines,
        "",
        f"Best of {args.repeat} alternating runs per configuration; every run's total, s: "
        + "; ".join(f"{key} " + ", ".join(f"{sum(r.values()):.2f}" for r in times[key])
                    for key in rows) + ". Largest |E(levelup) - "
        f"E(plain PySCF)| over both levels, Hartree: {', '.join(diffs)}.",
        f"Load average (1, 5, 15 min) before: {', '.join(f'{x:.1f}' for x in load_before)}; "
        f"after: {', '.join(f'{x:.1f}' for x in load_after)} (the machine is shared with "
        "other sessions: absolute times drift, ratios from one run are what count).",
        "",
        "Where the time goes in plain PySCF (cProfile, per geometry): parsing the basis-set "
        "file again in gto.M (~5 ms), parsing the ANO file again for the MINAO initial guess "
        "(~5-10 ms), writing the checkpoint file at every SCF cycle (~9 ms in all), and a "
        "prefetch thread started for each CISD contraction. levelup keeps one Mole per kind "
        "of molecule and moves its atoms (set_geom_), computes the same MINAO guess from a "
        "projection basis built once (bit-identical density matrix), writes no checkpoint and "
        "turns off CISD's async I/O; the SCF and CISD iterations are PySCF's own, so the "
        "energies are identical. Tried and dropped: a neighbour's converged density as the "
        "initial guess (about one SCF cycle fewer, but energies up to 9e-9 Ha off the "
        "default-guess ones and one SCF that did not converge at 4.63 Angstrom, where "
        "stretched RHF is an unstable fixed point of the Roothaan iteration).",
    ])
    print(body)
    if not args.no_write:
        write_section("label", "Labelling: 451 H2 geometries, HF/STO-3G + CISD/cc-pVDZ "
                      "(issue 3)", body, "python bench/bench_label.py")


if __name__ == "__main__":
    main()
