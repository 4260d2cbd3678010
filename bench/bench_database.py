"""Benchmark: HDF5 round trip of a 100,000-molecule database (issue 2).

Run: .venv/bin/python bench/bench_database.py
Writes its section of bench/RESULTS.md.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from results import write_section  # noqa: E402

from levelup import Database  # noqa: E402


def main() -> None:
    rng = np.random.default_rng(0)
    n = 100_000
    base = np.array([[0.0, 0.0, 0.117], [0.0, 0.757, -0.467], [0.0, -0.757, -0.467]])
    t0 = time.perf_counter()
    db = Database.from_numpy(coordinates=base + rng.normal(scale=0.05, size=(n, 3, 3)),
                             species=[8, 1, 1])
    db.set("HF/STO-3G", rng.normal(size=n), level="HF/STO-3G")
    db.set("forces/HF/STO-3G", rng.normal(size=(n, 3, 3)), level="HF/STO-3G")
    t_build = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.h5"
        t0 = time.perf_counter()
        db.save(path)
        t_save = time.perf_counter() - t0
        size_mb = path.stat().st_size / 1e6
        t0 = time.perf_counter()
        back = Database.load(path)
        t_load = time.perf_counter() - t0
        t0 = time.perf_counter()
        window = Database.load(path, 60_000, 61_000)
        t_window = time.perf_counter() - t0
        t0 = time.perf_counter()
        total = sum(len(c) for c in Database.iter_chunks(path, 10_000))
        t_chunks = time.perf_counter() - t0
    assert np.array_equal(back.coordinates, db.coordinates) and total == n and len(window) == 1000
    rows = [
        ("build + validate (from_numpy, 2 properties)", t_build),
        ("save (HDF5, atomic)", t_save),
        ("load all", t_load),
        ("load molecules 60,000-61,000 only", t_window),
        ("iterate in chunks of 10,000", t_chunks),
    ]
    lines = [
        "100,000 water geometries (3 atoms), one energy and one force property; file "
        f"{size_mb:.1f} MB.",
        "",
        "| step | seconds |",
        "|---|---|",
        *[f"| {name} | {t:.3f} |" for name, t in rows],
    ]
    write_section("database", "Database: HDF5 round trip of 100,000 molecules (issue 2)",
                  "\n".join(lines), command="python bench/bench_database.py")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
