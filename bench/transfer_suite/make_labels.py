"""Build and label the transfer-learning suite's systems into ``bench/transfer_suite/data/``.

    .venv/bin/python bench/transfer_suite/make_labels.py [--systems NAME ...] [--workers N]
                                                         [--cache PATH]

For each system (see ``systems.py``; default: all, in the suite's order, cheapest first): build
its geometries from the seed, label the low level (energies), the high level (energies of every
geometry), then the high level with analytic forces for the first ``n_forces`` geometries, and
write ``data/<name>.h5`` after the energies and again after the forces. The H2 tutorial's labels
are copied from ``tests/data/h2_labels.npz``, not recomputed.

Resumable: every label is committed to the label cache the moment it exists (default
``bench/transfer_suite/cache/labels.sqlite``, git-ignored; ``--cache default`` uses levelup's
shared user cache), and labels already in an existing ``data/<name>.h5`` of the same geometries
are reused, so a killed run restarts where it stopped.

Cost: the CPU seconds (this process and its finished children, ``os.times``) of each labelling
step divided by the points it computed (points found in the cache cost nothing and are not
counted) go to ``data/costs.json``, summed over runs: CPU s/point for the low level, the high
level's energy, and the high level's energy + analytic forces. PySCF runs on one thread per
worker; costs are recorded only with ``--workers 1``. ``data/costs.json`` also says which
steps of each system are done.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy/PySCF load: one BLAS thread

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from systems import BY_NAME, H2_LABELS, SYSTEMS, System  # noqa: E402

from levelup.data import Database  # noqa: E402
from levelup.qm.label import label_with_report  # noqa: E402

#: Iterations allowed to PySCF's CCSD(T) lambda equations (PySCF's default: 50). Distorted
#: geometries converge slowly but surely (formaldehyde: 52 cycles to 1e-8), so 50 loses them.
LAMBDA_MAX_CYCLE = 200
DATA = HERE / "data"
COSTS = DATA / "costs.json"
DEFAULT_CACHE = HERE / "cache" / "labels.sqlite"
REPO = HERE.parent.parent


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its waited-for children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def allow_more_lambda_cycles(max_cycle: int = LAMBDA_MAX_CYCLE) -> None:
    """Let ``pyscf.cc.ccsd_t_lambda.kernel`` (used by levelup's CCSD(T) gradient) take up to
    ``max_cycle`` iterations. Applies in this process only: with ``--workers 1`` every label is
    computed here; worker subprocesses keep PySCF's 50 (a point that fails there gets NaN and is
    retried by a later ``--workers 1`` run). The converged result is the same, so cached labels
    stay valid."""
    from pyscf.cc import ccsd_t_lambda

    kernel = ccsd_t_lambda.kernel
    if getattr(kernel, "levelup_bench_patched", False):
        return

    def patched(mycc, eris=None, t1=None, t2=None, l1=None, l2=None, max_cycle=50, tol=1e-8,
                verbose=4):
        return kernel(mycc, eris, t1, t2, l1, l2, max(max_cycle, LAMBDA_MAX_CYCLE), tol, verbose)

    patched.levelup_bench_patched = True
    ccsd_t_lambda.kernel = patched


def load_costs() -> dict:
    """``data/costs.json`` as a dict (a fresh one when missing)."""
    if COSTS.exists():
        return json.loads(COSTS.read_text())
    return {"note": "CPU seconds per labelled point, PySCF on 1 thread, make_labels.py --workers 1: "
                    "summed over the points its runs computed (cache hits are not counted; a step "
                    "whose points all came from the cache is timed on a few points without the "
                    "cache: 'probe' true)",
            "systems": {}}


def save_costs(name: str, entry: dict) -> None:
    """Put system ``name``'s ``entry`` into ``data/costs.json`` (re-read first, so runs on other
    systems are not overwritten), with the machine and versions; atomic."""
    import pyscf

    costs = load_costs()
    costs["systems"][name] = entry
    costs["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    costs["pyscf"] = pyscf.__version__
    tmp = COSTS.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(costs, indent=1, sort_keys=True) + "\n")
    tmp.replace(COSTS)


def record(entry: dict, what: str, level: str, cpu: float, computed: int, probe: bool = False
           ) -> None:
    """Add one labelling step's CPU seconds and computed points to the system's ``entry``."""
    cost = entry.setdefault(what, {"level": level, "cpu_seconds": 0.0, "points": 0})
    if cost.get("probe") and computed and not probe:
        cost.update(cpu_seconds=0.0, points=0, probe=False)  # real points replace a probe
    cost["level"] = level
    cost["cpu_seconds"] = round(cost["cpu_seconds"] + (cpu if computed else 0.0), 3)
    cost["points"] += computed
    cost["probe"] = probe or cost.get("probe", False)
    cost["cpu_s_per_point"] = round(cost["cpu_seconds"] / cost["points"], 4) if cost["points"] else None


#: Points timed without the cache when a step's labels all came from the cache.
PROBE_POINTS = {"low": 10, "high_energy": 5, "high_energy_forces": 1}


def timed_label(db: Database, level: str, forces: bool, workers: int, cache: object,
                progress: bool) -> tuple[Database, object, float]:
    """``label_with_report`` on one thread per worker; also return its CPU seconds."""
    cpu = cpu_seconds()
    out, report = label_with_report(db, level, forces=forces, workers=workers, threads=1,
                                    cache=cache, progress=progress)
    return out, report, cpu_seconds() - cpu


def start_database(system: System) -> Database:
    """The system's geometries; the labels of an existing ``data/<name>.h5`` with the same
    geometries (and atoms) are kept, so they are reused instead of looked up or computed."""
    xyz = system.geometries()
    path = DATA / f"{system.name}.h5"
    if path.exists():
        old = Database.load(path)
        if old.coordinates.shape == xyz.shape and np.array_equal(old.coordinates, xyz):
            return old
        print(f"  {path.name} holds other geometries: starting afresh", flush=True)
    return Database.from_numpy(xyz, system.symbols)


def step(db: Database, system: System, entry: dict, what: str, level: str, *, forces: bool,
         workers: int, cache: object) -> tuple[Database, bool]:
    """Label ``db`` at ``level``; record the cost under ``what`` in the system's ``entry`` (with
    ``--workers 1`` only: worker subprocesses' CPU time is not seen here); return (db, all
    labelled)."""
    print(f"[{time.strftime('%H:%M:%S')}] {system.name}: {what} ({level}, {len(db)} geometries)",
          flush=True)
    out, report, cpu = timed_label(db, level, forces, workers, cache, True)
    print("  " + report.summary().replace("\n", "\n  "), flush=True)
    if workers != 1:
        return out, report.ok
    record(entry, what, level, cpu, report.computed)
    if not entry[what]["points"]:
        k = min(PROBE_POINTS[what], len(db))
        print(f"  nothing computed: timing {k} points without the cache", flush=True)
        bare = Database.from_numpy(db.coordinates[:k], system.symbols)  # no labels to reuse
        _, probe, cpu = timed_label(bare, level, forces, 1, False, False)
        record(entry, what, level, cpu, probe.computed, probe=True)
    save_costs(system.name, entry)
    return out, report.ok


def with_forces(db: Database, sub: Database, level: str) -> Database:
    """``db`` with the forces of ``sub`` (its first ``len(sub)`` molecules) as
    ``forces/<level>``, NaN for the molecules after them."""
    name = f"forces/{level}"
    forces = np.full(db.coordinates.shape, np.nan)
    forces[: len(sub)] = sub.get(name)
    info = sub.properties[name]
    spec = {**info.spec, "computed_for": f"the first {len(sub)} of {len(db)} molecules"}
    if info.spec.get("family") == "ccsd(t)":
        spec["ccsd_t_lambda"] = f"max_cycle {LAMBDA_MAX_CYCLE} (make_labels.py), tol 1e-8"
    out = db.copy()
    out.set(name, forces, unit=info.unit, level=info.level, spec=spec)
    return out


def label_system(system: System, workers: int, cache: object) -> None:
    """Low energies, high energies, high forces for the first n_forces; save after each."""
    path = DATA / f"{system.name}.h5"
    entry = load_costs()["systems"].get(system.name, {})
    entry.update(geometries=system.n_geometries, forces_geometries=system.n_forces,
                 energies_done=False, complete=False)
    db = start_database(system)
    db, ok_low = step(db, system, entry, "low", system.low, forces=False, workers=workers,
                      cache=cache)
    db, ok_high = step(db, system, entry, "high_energy", system.high, forces=False,
                       workers=workers, cache=cache)
    db.save(path)
    entry["energies_done"] = ok_low and ok_high
    save_costs(system.name, entry)
    ok_forces = True
    if system.n_forces:
        sub, ok_forces = step(db[: system.n_forces], system, entry, "high_energy_forces",
                              system.high, forces=True, workers=workers, cache=cache)
        db = with_forces(db, sub, system.high)
        db.save(path)
    entry["complete"] = entry["energies_done"] and ok_forces
    save_costs(system.name, entry)
    print(f"  wrote {path} ({path.stat().st_size / 1024:.0f} kB); "
          f"complete: {entry['complete']}", flush=True)


def copy_h2(system: System) -> None:
    """``data/h2-tutorial.h5`` from the tutorial's stored labels (nothing is computed)."""
    ref = np.load(REPO / H2_LABELS)
    xyz = system.geometries()
    if not np.allclose(xyz[:, 1, 2], ref["r"], atol=1e-9):
        raise SystemExit(f"{H2_LABELS}: its distances are not the suite's H2 scan")
    db = Database.from_numpy(xyz, system.symbols)
    spec = {"source": f"{H2_LABELS} (copied)", "note": str(ref["note"])}
    db.set(system.low, ref["hf"], unit="Hartree", level=system.low, spec=spec)
    db.set(system.high, ref["cisd"], unit="Hartree", level=system.high, spec=spec)
    path = DATA / f"{system.name}.h5"
    db.save(path)
    save_costs(system.name, {
        "geometries": system.n_geometries, "forces_geometries": 0, "complete": True,
        "energies_done": True, "note": "labels copied from tests/data/h2_labels.npz; costs not "
        "measured here (bench/RESULTS.md, labelling section: levelup, 1 worker, 451 points: "
        "HF/STO-3G 1.05 s, CISD/cc-pVDZ 4.94 s wall)"})
    print(f"{system.name}: wrote {path} (copied labels)", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", nargs="+", choices=list(BY_NAME), metavar="NAME",
                        help=f"systems to label (default: all): {', '.join(BY_NAME)}")
    parser.add_argument("--workers", type=int, default=1, help="parallel PySCF workers, 1 thread "
                        "each (default 1)")
    parser.add_argument("--cache", default=str(DEFAULT_CACHE), help="label cache file (default "
                        "%(default)s); 'default' for levelup's shared user cache")
    args = parser.parse_args(argv)
    names = args.systems or [s.name for s in SYSTEMS]
    cache = None if args.cache == "default" else Path(args.cache)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
    DATA.mkdir(exist_ok=True)
    allow_more_lambda_cycles()
    for system in SYSTEMS:
        if system.name not in names:
            continue
        if system.name == "h2-tutorial":
            copy_h2(system)
        else:
            label_system(system, args.workers, cache)
    print(f"[{time.strftime('%H:%M:%S')}] done: {', '.join(names)}", flush=True)


if __name__ == "__main__":
    main()
