"""Claims with real processes: two ``levelup label`` runs on one cache compute each label once,
a run killed with SIGKILL has its claims taken over at once (not after the lease), and Ctrl-C
releases a run's claims."""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from levelup import Database
from levelup.qm import claims, label_with_report

LEVEL = "CISD/cc-pVDZ"  # about 0.2 s per water molecule on one core: the runs overlap
WATER = np.array([[0.0, 0.0, 0.0], [0.0, 0.757, 0.587], [0.0, -0.757, 0.587]])
SUMMARY = re.compile(r"(\d+) molecules: (\d+) already in the database, (\d+) from the cache, "
                     r"(\d+) computed, (\d+) failed, (\d+) waited for from another run")


@pytest.fixture(autouse=True)
def private_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LEVELUP_CACHE_DIR", str(tmp_path / "default-cache"))


def waters(path, n, seed):
    rng = np.random.default_rng(seed)
    db = Database.from_numpy(WATER + rng.normal(scale=0.03, size=(n, 3, 3)), [8, 1, 1])
    db.save(path)
    return db


def start_label(inp, out, cache):
    return subprocess.Popen([sys.executable, "-m", "levelup.cli.main", "--quiet", "label",
                             str(inp), LEVEL, "-o", str(out), "--cache", str(cache),
                             "--workers", "1", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def count(cache, sql):
    try:
        with sqlite3.connect(cache, timeout=30) as con:
            return con.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def wait_until_labelling(proc, cache, labels):
    """Until ``proc`` holds claims and has committed ``labels`` labels."""
    deadline = time.time() + 120
    while (count(cache, "SELECT COUNT(*) FROM labels") < labels
           or count(cache, f"SELECT COUNT(*) FROM claims WHERE pid = {proc.pid}") == 0):
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline
        time.sleep(0.05)


@pytest.mark.slow
def test_two_label_runs_on_one_cache_compute_each_label_once(tmp_path):
    n = 48
    db = waters(tmp_path / "w.h5", n, seed=0)
    cache = tmp_path / "labels.sqlite"
    start = time.perf_counter()
    procs = [start_label(tmp_path / "w.h5", tmp_path / f"out{i}.h5", cache) for i in range(2)]
    counts = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        match = SUMMARY.search(out)
        assert match, out
        total, reused, cached, computed, failed, waited = map(int, match.groups())
        assert total == n and failed == reused == 0 and cached + computed + waited == n
        counts.append((cached, computed, waited))
    wall = time.perf_counter() - start
    computed = sum(c[1] for c in counts)
    print(f"two labellers: {computed} labels computed for {n} geometries in {wall:.1f} s; "
          f"(cached, computed, waited) per run: {counts}")
    assert computed <= 1.2 * n, counts
    assert sum(c[2] for c in counts) > 0, f"the runs did not overlap: {counts}"
    assert count(cache, "SELECT COUNT(*) FROM labels") == n
    assert count(cache, "SELECT COUNT(*) FROM claims") == 0
    a, b = (Database.load(tmp_path / f"out{i}.h5").get(LEVEL) for i in range(2))
    assert np.isfinite(a).all() and np.array_equal(a, b)
    assert len(db) == n


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_claims_of_a_run_killed_with_sigkill_are_taken_over_at_once(tmp_path, monkeypatch):
    """The lease is set to an hour: a run that waited for the lease would never finish (the
    test times out); the dead owner's pid tells the next run at once."""
    n = 30
    db = waters(tmp_path / "w.h5", n, seed=1)
    cache = tmp_path / "labels.sqlite"
    proc = start_label(tmp_path / "w.h5", tmp_path / "out.h5", cache)
    wait_until_labelling(proc, cache, labels=3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = count(cache, "SELECT COUNT(*) FROM labels")
    left = count(cache, f"SELECT COUNT(*) FROM claims WHERE pid = {proc.pid}")
    assert 3 <= done < n and left == n - done  # a SIGKILL releases nothing
    monkeypatch.setattr(claims, "LEASE_SECONDS", 3600.0)
    start = time.perf_counter()
    out, report = label_with_report(db, LEVEL, cache=cache, workers=1, threads=1, progress=False)
    seconds = time.perf_counter() - start
    assert report.cached == done and report.computed == n - done and report.waited == 0
    assert report.ok and np.isfinite(out.get(LEVEL)).all()
    assert count(cache, "SELECT COUNT(*) FROM claims") == 0
    print(f"took over {n - done} claims of the killed run; finished in {seconds:.1f} s")


@pytest.mark.slow
def test_ctrl_c_releases_the_claims(tmp_path):
    cache = tmp_path / "labels.sqlite"
    waters(tmp_path / "w.h5", 30, seed=2)
    proc = start_label(tmp_path / "w.h5", tmp_path / "out.h5", cache)
    wait_until_labelling(proc, cache, labels=2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert count(cache, "SELECT COUNT(*) FROM labels") >= 2
    assert count(cache, "SELECT COUNT(*) FROM claims") == 0
