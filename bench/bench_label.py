"""Labelling speed on the tutorial's 451 H2 geometries, HF/STO-3G + CISD/cc-pVDZ, side by side:

- plain PySCF: one ``gto.M`` + solver per geometry, default settings, one thread;
- levelup, 1 worker (in this process, one thread);
- levelup, 2 workers, as ``label()`` runs by default in a fresh session: the shared pool's
  worker starts in the first call (the HF one) and is reused by the second;
- levelup, 2 workers, a ``ProcessExecutor`` started before the timing (steady-state
  throughput);
- the ceiling: two independent processes (already started and set up), each labelling half of
  the geometries on 1 worker, at the same time: what two cores give with no coordination at all
  (their time is also what two calculations running at once cost each other on this machine).

Every levelup run writes to a fresh label cache (the default behaviour: one commit per label),
so nothing is reused between runs. Each configuration runs ``--repeat`` times, alternating, and
the fastest is reported; the 1-minute load average is recorded before every run (the machine is
shared). Energies are compared with the plain PySCF ones.

Run: ``python bench/bench_label.py --repeat 3`` (writes the "label" section of bench/RESULTS.md;
``--no-write`` only prints). The last line printed is a one-line summary.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
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
KEYS = ("plain", "lv1", "lv2", "lv2warm", "split")
ROWS = {
    "plain": "plain PySCF, 1 thread (gto.M + solver per geometry, defaults)",
    "lv1": "levelup, 1 worker x 1 thread",
    "lv2": "levelup, 2 workers x 1 thread (default label(), worker start-up timed)",
    "lv2warm": "levelup, 2 workers x 1 thread (ProcessExecutor started before timing)",
    "split": "ceiling: 2 independent 1-worker processes, half the geometries each, at once",
}

#: One half of the geometries in a process of its own: set up, say "ready", wait for "go",
#: label at both levels (1 worker, fresh cache), print the seconds and energies as JSON.
HALF_SCRIPT = r"""
import json, os, sys, tempfile, time
from pathlib import Path
import numpy as np
from levelup.qm import label_with_report
from levelup.study.tutorial import h2_scan

half = int(sys.argv[1])
levels = json.loads(sys.argv[2])
db = h2_scan()
db = db[np.arange(half, len(db), 2)]
with tempfile.TemporaryDirectory() as tmp:
    for level in levels:  # imports and PySCF set-up outside the timing, as for the 1-worker run
        label_with_report(db[:2], level, cache=False, workers=1, threads=1, progress=False)
    print("ready", flush=True)
    sys.stdin.readline()
    seconds, energies = {}, {}
    for level in levels:
        start = time.perf_counter()
        out, report = label_with_report(db, level, cache=Path(tmp) / "c.sqlite", workers=1,
                                        threads=1, progress=False)
        seconds[level] = time.perf_counter() - start
        assert report.computed == len(db) and report.ok, report.summary()
        energies[level] = out.get(level).tolist()
print(json.dumps({"seconds": seconds, "energies": energies}), flush=True)
"""


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


def cpu_seconds() -> float:
    """CPU time of this process and its live children (the pool's worker subprocesses)."""
    import psutil

    me = psutil.Process()
    total = time.process_time()
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            times = child.cpu_times()
            total += times.user + times.system
    return total


def levelup_run(db, folder: Path, tag: str, **kwargs) -> tuple[dict[str, np.ndarray], dict]:
    """Both levels; seconds per level, and "cpu": CPU seconds of this process and its workers
    (a worker started during the run counts from its start)."""
    from levelup.qm import label_with_report

    cache = folder / f"{tag}-{time.perf_counter_ns()}.sqlite"
    out, seconds = {}, {}
    cpu = cpu_seconds()
    for level in LEVELS:
        start = time.perf_counter()
        labelled, report = label_with_report(db, level, cache=cache, progress=False, **kwargs)
        seconds[level] = time.perf_counter() - start
        assert report.computed == len(db) and report.ok, report.summary()
        out[level] = labelled.get(level)
    seconds["cpu"] = cpu_seconds() - cpu
    return out, seconds


def split_run(n: int) -> tuple[dict[str, np.ndarray], dict]:
    """Two processes, each half of the geometries, started and set up before the timing."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    procs = [subprocess.Popen([sys.executable, "-c", HALF_SCRIPT, str(half), json.dumps(LEVELS)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
             for half in (0, 1)]
    try:
        for p in procs:
            line = p.stdout.readline()
            assert line.strip() == "ready", line
        start = time.perf_counter()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        answers = [json.loads(p.stdout.readline()) for p in procs]
        wall = time.perf_counter() - start
        for p in procs:
            p.wait(60)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    energies = {}
    for level in LEVELS:
        e = np.empty(n)
        for half, answer in enumerate(answers):
            e[half::2] = answer["energies"][level]
        energies[level] = e
    # per level: the slower half; the total is the wall time of both together
    seconds = {level: max(a["seconds"][level] for a in answers) for level in LEVELS}
    seconds["total"] = wall
    return energies, seconds


def total(run: dict) -> float:
    return run.get("total", sum(run[level] for level in LEVELS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    parser.add_argument("--note", default="", help="a paragraph to add to the section")
    args = parser.parse_args()

    from levelup.qm import ProcessExecutor
    from levelup.qm.executors import _close_shared_pools as close_shared_pools
    from levelup.study.tutorial import h2_scan

    db = h2_scan()
    distances = db.distance(0, 1)
    load_before = os.getloadavg()
    times: dict[str, list[dict]] = {k: [] for k in KEYS}
    loads: dict[str, list[float]] = {k: [] for k in KEYS}
    energies: dict[str, dict[str, np.ndarray]] = {}
    with tempfile.TemporaryDirectory() as tmp, ProcessExecutor(workers=2, threads=1) as pool:
        folder = Path(tmp)
        pool.start()
        plain_pyscf(distances[:1], LEVELS[1])  # imports outside the timing
        levelup_run(db[:4], folder, "warm-up", workers=1, threads=1)
        for _ in range(args.repeat):
            loads["plain"].append(os.getloadavg()[0])
            seconds, plain = {}, {}
            for level in LEVELS:
                start = time.perf_counter()
                plain[level] = plain_pyscf(distances, level)
                seconds[level] = time.perf_counter() - start
            times["plain"].append(seconds)
            energies["plain"] = plain
            loads["lv1"].append(os.getloadavg()[0])
            energies["lv1"], s = levelup_run(db, folder, "lv1", workers=1, threads=1)
            times["lv1"].append(s)
            close_shared_pools()  # as in a fresh session: the worker starts inside the timing
            loads["lv2"].append(os.getloadavg()[0])
            energies["lv2"], s = levelup_run(db, folder, "lv2", workers=2, threads=1)
            times["lv2"].append(s)
            loads["lv2warm"].append(os.getloadavg()[0])
            energies["lv2warm"], s = levelup_run(db, folder, "lv2warm", executor=pool)
            times["lv2warm"].append(s)
            loads["split"].append(os.getloadavg()[0])
            energies["split"], s = split_run(len(db))
            times["split"].append(s)
    load_after = os.getloadavg()

    def best(key: str) -> tuple[float, float, float]:
        runs = times[key]
        per_level = [min(r[level] for r in runs) for level in LEVELS]
        return per_level[0], per_level[1], min(total(r) for r in runs)

    plain_total = best("plain")[2]
    lv1 = best("lv1")
    lines = ["| run | HF/STO-3G s | CISD/cc-pVDZ s | total s | vs plain | speed-up vs 1 worker "
             "(HF, CISD, total) |", "|---|---|---|---|---|---|"]
    for key, text in ROWS.items():
        hf, cisd, tot = best(key)
        speed = "" if key == "plain" else (f"{lv1[0] / hf:.2f}x, {lv1[1] / cisd:.2f}x, "
                                           f"**{lv1[2] / tot:.2f}x**")
        lines.append(f"| {text} | {hf:.2f} | {cisd:.2f} | {tot:.2f} | {tot / plain_total:.2f}x | "
                     f"{speed} |")
    diffs = []
    for key in KEYS[1:]:
        worst = max(float(np.abs(energies[key][lv] - energies["plain"][lv]).max())
                    for lv in LEVELS)
        diffs.append(f"{key}: {worst:.1e}")
    cpu = {key: min(r["cpu"] for r in times[key]) for key in ("lv1", "lv2", "lv2warm")}
    cpu_line = (
        f"CPU seconds (this process and its workers, both levels, least of the runs): 1 worker "
        f"{cpu['lv1']:.2f}, 2 workers {cpu['lv2']:.2f} (default, with the worker's start-up), "
        f"{cpu['lv2warm']:.2f} (warm pool). With two free cores a warm pool would be at most "
        f"2 x {cpu['lv1']:.2f} / {cpu['lv2warm']:.2f} = {2 * cpu['lv1'] / cpu['lv2warm']:.2f}x "
        "faster than 1 worker: a bound from CPU time that the load of other sessions changes "
        "less than wall times (it counts the extra work of two calculations at once and of "
        "the pool, not the waiting).")
    # each repeat's 2-worker speed-up against the 1-worker run of the same repeat, with the load
    paired = "; ".join(
        f"run {r + 1}: lv2 {total(times['lv1'][r]) / total(times['lv2'][r]):.2f}x, lv2warm "
        f"{total(times['lv1'][r]) / total(times['lv2warm'][r]):.2f}x, split "
        f"{total(times['lv1'][r]) / total(times['split'][r]):.2f}x (load "
        f"{loads['lv1'][r]:.1f}/{loads['lv2'][r]:.1f}/{loads['lv2warm'][r]:.1f}/"
        f"{loads['split'][r]:.1f})" for r in range(args.repeat))
    worst_all = max(float(d.split(": ")[1]) for d in diffs)
    summary = (f"label bench (best of {args.repeat}): 1 worker {lv1[2] / plain_total:.2f}x plain "
               f"PySCF's time; 2 workers {lv1[2] / best('lv2')[2]:.2f}x (default), "
               f"{lv1[2] / best('lv2warm')[2]:.2f}x (warm pool) faster than 1, ceiling "
               f"{lv1[2] / best('split')[2]:.2f}x; CPU bound {2 * cpu['lv1'] / cpu['lv2warm']:.2f}x; "
               f"max |dE| {worst_all:.1e} Ha; load "
               f"{load_before[0]:.1f} -> {load_after[0]:.1f}")
    body = "\n".join([
        "The tutorial's 451 H2 geometries (0.50-5.00 Angstrom), HF/STO-3G then CISD/cc-pVDZ. "
        "Targets: 1 worker at most 0.7x plain PySCF's time; 2 workers at least 1.7x faster "
        "than 1. Each levelup run commits every label to a fresh SQLite cache.",
        "",
        *lines,
        "",
        f"Best of {args.repeat} alternating runs per configuration. Every run's total, s, with "
        "the 1-minute load average before it: "
        + "; ".join(f"{key} " + ", ".join(f"{total(r):.2f} ({la:.1f})"
                                          for r, la in zip(times[key], loads[key], strict=True))
                    for key in KEYS) + ".",
        f"Speed-up of 2 workers over the 1-worker run of the same round (load before lv1/lv2/"
        f"lv2warm/split): {paired}.",
        cpu_line,
        f"Largest |E(levelup) - E(plain PySCF)| over both levels, Hartree: {', '.join(diffs)}.",
        f"Load average (1, 5, 15 min) before: {', '.join(f'{x:.1f}' for x in load_before)}; "
        f"after: {', '.join(f'{x:.1f}' for x in load_after)}. The machine has 2 cores and is "
        "shared with other sessions: with a load above about 1 the 2-worker runs share their "
        "cores with other work and the ratios drop; the lead re-runs this in a quiet window "
        "(`python bench/bench_label.py --repeat 5`).",
        "",
        "How 2 workers run: a worker thread in the calling process plus one worker subprocess; "
        "molecules go out in chunks of one kind (the job is sent once, then only coordinates), "
        "sized from the measured time per molecule to about 50 ms of work (one molecule while "
        "nothing is measured; smaller chunks at the end), at most two chunks held per worker; "
        "every molecule's label is sent back, and committed, the moment it exists. What is "
        "left between the pool and 2x: (1) two calculations at once on this machine are each "
        "slower than one alone (the ceiling row; in a separate measurement at a load of ~11, "
        "two independent processes took 2.45-2.5 ms of CPU per HF/STO-3G molecule alone and "
        "2.8-2.9 ms each when both ran, CISD/cc-pVDZ 12.0 vs 13.4-13.6 ms: shared caches, or "
        "hyperthread siblings under the VM; the pool's workers measured the same 2.7-2.9 and "
        "13.5-14.1 ms); (2) the calling process's own work per label (receive, SQLite commit, "
        "bookkeeping: ~0.1 s of its CPU for 451 HF labels, of which the pool's part is "
        "15-35 microseconds per label), taken from the worker thread that shares its "
        "interpreter. Two worker subprocesses instead of thread + subprocess used the same CPU "
        "(HF 1.34-1.54 s vs 1.34-1.38 s; CISD 6.52-6.60 vs 6.41-6.48 s) and start a second "
        "later, so the thread stays.",
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
    print(summary)
    if not args.no_write:
        write_section("label", "Labelling: 451 H2 geometries, HF/STO-3G + CISD/cc-pVDZ "
                      "(issue 3)", body + (f"\n\n{args.note}" if args.note else "")
                      + "\n\nSummary: " + summary,
                      f"python bench/bench_label.py --repeat {args.repeat}")


if __name__ == "__main__":
    main()
