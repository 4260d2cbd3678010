"""Where calculations run: the local pool (chunks answered per molecule, a worker killed mid-run,
a labelling process killed with SIGKILL and resumed), two processes on one cache, and Dask (one
task per molecule, a bounded number in flight)."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest

from levelup.qm import DaskExecutor, ProcessExecutor, SerialExecutor, label, label_with_report
from levelup.qm.calculators import Job
from levelup.qm.executors import make_executor
from levelup.qm.levels import parse_level
from levelup.study.tutorial import h2_scan


@pytest.fixture(autouse=True)
def private_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LEVELUP_CACHE_DIR", str(tmp_path / "default-cache"))


def h2_tasks(level, n):
    db = h2_scan()[:: max(1, 451 // n)][:n]
    job = Job(parse_level(level), (1, 1))
    return [(job, db.coordinates[i]) for i in range(len(db))]


def test_pool_gives_the_serial_numbers():
    tasks = h2_tasks("HF/STO-3G", 40)
    serial = dict(SerialExecutor(threads=1).map(tasks))
    with ProcessExecutor(workers=2, threads=1) as pool:
        parallel = dict(pool.map(tasks))
        again = dict(pool.map(tasks[:5]))  # the pool is reusable
    assert sorted(parallel) == list(range(40)) and len(again) == 5
    for i in range(40):
        assert parallel[i].ok and parallel[i].energy == pytest.approx(serial[i].energy, abs=1e-10)


def test_idle_workers_exit_and_are_replaced():
    tasks = h2_tasks("HF/STO-3G", 6)
    with ProcessExecutor(workers=2, threads=1, idle=0.5) as pool:
        assert len(dict(pool.map(tasks))) == 6
        process = next(w for w in pool._pool if hasattr(w, "process")).process
        process.wait(timeout=30)  # exits by itself once idle
        assert len(dict(pool.map(tasks))) == 6 and all(w.alive() for w in pool._pool)


def test_chunks_are_answered_per_molecule_as_each_finishes():
    """A chunk of 8 molecules is one message, but its labels come back one by one as each
    finishes: the answers of one chunk are spread over the time it takes to compute them (a
    worker that sent a chunk's answers together would give a spread of about zero)."""
    tasks = h2_tasks("CISD/cc-pVDZ", 32)
    with ProcessExecutor(workers=2, threads=1, chunk_size=8) as pool:
        pool.start()
        list(pool.map(tasks[:4]))  # both workers running and set up
        arrived, outcomes = {}, {}
        for i, outcome in pool.map(tasks):
            arrived[i], outcomes[i] = time.perf_counter(), outcome
    assert sorted(arrived) == list(range(32)) and all(o.ok for o in outcomes.values())
    for chunk in range(4):  # each worker got two chunks: 0-7 and 8-15, 16-23 and 24-31
        ids = range(8 * chunk, 8 * chunk + 8)
        spread = max(arrived[i] for i in ids) - min(arrived[i] for i in ids)
        work = sum(outcomes[i].seconds for i in ids[1:])  # after the first answer
        assert spread > 0.5 * work, (chunk, spread, work)


def test_chunk_sizes_follow_the_measured_time_per_molecule():
    pool = ProcessExecutor(workers=2, threads=1, chunk_seconds=0.03, max_chunk=64)
    pool._pool = [None, None]  # only the count matters here; nothing is started
    assert pool._chunk_size(None, 1000) == 1  # nothing measured yet: one molecule
    assert pool._chunk_size(0.002, 1000) == 15  # 2 ms molecules: 30 ms per chunk
    assert pool._chunk_size(0.0001, 1000) == 64  # capped
    assert pool._chunk_size(5.0, 1000) == 1  # long calculations go one at a time
    assert pool._chunk_size(0.002, 20) == 5  # near the end: a share for every worker
    assert ProcessExecutor(chunk_size=7)._chunk_size(None, 3) == 7
    with pytest.raises(Exception, match="chunk_size"):
        ProcessExecutor(chunk_size=0)


def test_pool_survives_a_killed_worker():
    tasks = h2_tasks("CISD/cc-pVDZ", 30)
    with ProcessExecutor(workers=2, threads=1) as pool:
        pool.start()
        victim = next(w for w in pool._pool if hasattr(w, "process")).process
        results = {}
        for i, outcome in pool.map(tasks):
            results[i] = outcome
            if len(results) == 3:
                os.kill(victim.pid, signal.SIGKILL)
    assert sorted(results) == list(range(30))
    assert all(o.ok for o in results.values())
    assert victim.poll() is not None


def test_executor_choice():
    ex, owned = make_executor(None, 1, 100)
    assert isinstance(ex, SerialExecutor) and owned
    ex, _ = make_executor(None, None, 1)
    assert isinstance(ex, SerialExecutor)  # one task: no pool
    ex, owned = make_executor(None, 2, 100)
    assert isinstance(ex, ProcessExecutor) and ex.workers == 2 and ex.threads >= 1
    assert not owned and make_executor(None, 2, 100)[0] is ex  # shared between calls
    ex.busy = True  # in use by another thread: a private pool instead
    private, owned = make_executor(None, 2, 100)
    assert private is not ex and owned
    ex.busy = False
    mine = SerialExecutor()
    assert make_executor(mine, 4, 100) == (mine, False)
    with pytest.raises(Exception, match="executor must be"):
        make_executor(object(), None, 10)


def run_cli(args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "levelup.cli.main", "--quiet", "label", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def rows(cache):
    if not cache.exists():
        return 0
    try:
        with sqlite3.connect(cache, timeout=30) as con:
            return con.execute("SELECT COUNT(*) FROM labels").fetchone()[0]
    except sqlite3.OperationalError:  # the table does not exist yet
        return 0


LABEL_SCRIPT = """
import sys
from levelup import Database
from levelup.qm import ProcessExecutor, label

with ProcessExecutor(workers=2, threads=1, chunk_size={chunk}) as pool:
    db = label(Database.load(sys.argv[1]), "CISD/cc-pVDZ", cache=sys.argv[2], executor=pool,
               progress=False)
db.save(sys.argv[3])
"""


@pytest.mark.slow
def test_resume_after_sigkill_recomputes_nothing(tmp_path, h2_labels):
    """A real labelling process (two workers, chunks of 40 molecules) killed with SIGKILL:
    labels reached the cache one by one, not a chunk at a time (a run that held a chunk's
    labels until the chunk ended would show 40 at once), every label it committed is reused,
    its worker subprocesses exit, and the next run computes only the rest."""
    chunk = 40
    db = h2_scan()[:160]
    db.save(tmp_path / "h2.h5")
    cache = tmp_path / "labels.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", LABEL_SCRIPT.format(chunk=chunk),
                             str(tmp_path / "h2.h5"), str(cache), str(tmp_path / "out.h5")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    children = []
    seen = 0
    while seen < 10:
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline
        children = psutil.Process(proc.pid).children() or children
        seen = rows(cache)
        time.sleep(0.02)
    children = psutil.Process(proc.pid).children() or children
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert seen < chunk, f"{seen} labels appeared at once: committed per chunk, not per label"
    assert not (tmp_path / "out.h5").exists()
    _, alive = psutil.wait_procs(children, timeout=60)
    assert not alive, "worker processes outlived the killed parent"
    done = rows(cache)
    assert seen <= done < len(db)
    out, report = label_with_report(db, "CISD/cc-pVDZ", cache=cache, progress=False)
    assert report.cached == done and report.computed == len(db) - done
    assert np.abs(out.get("CISD/cc-pVDZ") - h2_labels["cisd"][:160]).max() < 1e-7


@pytest.mark.slow
def test_two_processes_label_against_one_cache(tmp_path, h2_labels):
    db = h2_scan()
    db[:200].save(tmp_path / "a.h5")
    db[100:300].save(tmp_path / "b.h5")
    cache = tmp_path / "labels.sqlite"
    procs = [run_cli([str(tmp_path / f"{x}.h5"), "HF/STO-3G", "-o", str(tmp_path / f"{x}-out.h5"),
                      "--cache", str(cache), "--workers", "1", "--threads", "1"]) for x in "ab"]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    with sqlite3.connect(cache) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert rows(cache) == 300
    from levelup import Database

    a = Database.load(tmp_path / "a-out.h5").get("HF/STO-3G")
    b = Database.load(tmp_path / "b-out.h5").get("HF/STO-3G")
    assert np.abs(a - h2_labels["hf"][:200]).max() < 1e-7
    assert np.abs(b - h2_labels["hf"][100:300]).max() < 1e-7


def test_dask_local_cluster_gives_the_local_numbers(tmp_path):
    import distributed  # in the dev extra: a missing one fails rather than skips

    db = h2_scan()[::23]
    local = label(db, "CISD/cc-pVDZ", cache=False, workers=1, threads=1, progress=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        out, report = label_with_report(db, "CISD/cc-pVDZ", cache=tmp_path / "c.sqlite",
                                        executor=client, progress=False)
        # one Dask task per molecule, at most max_in_flight of them submitted at a time
        tasks = h2_tasks("HF/STO-3G", 12)
        held = []
        results = {}
        for i, outcome in DaskExecutor(client, max_in_flight=3).map(tasks):
            held.append(sum(state.status != "finished" for state in client.futures.values()))
            results[i] = outcome
    assert report.computed == len(db) and report.ok
    np.testing.assert_allclose(out.get("CISD/cc-pVDZ"), local.get("CISD/cc-pVDZ"), rtol=0,
                               atol=1e-10)
    assert sorted(results) == list(range(12)) and max(held) <= 3, held
    serial = dict(SerialExecutor(threads=1).map(tasks))
    assert all(abs(results[i].energy - serial[i].energy) < 1e-10 for i in range(12))
