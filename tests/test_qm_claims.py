"""Claims on a shared label cache (levelup.qm.claims): one claimant per key, expiry by lease and
by a dead owner, release on commit and on close, old caches, and label() waiting for labels
another run claimed (taking over those whose claim is released unfinished)."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from levelup import Database
from levelup.qm import LabelCache, claims, label_with_report
from levelup.qm.claims import Claims, describe, pid_alive

WATER = np.array([[0.0, 0.0, 0.0], [0.0, 0.757, 0.587], [0.0, -0.757, 0.587]])


@pytest.fixture(autouse=True)
def private_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LEVELUP_CACHE_DIR", str(tmp_path / "default-cache"))


@pytest.fixture
def path(tmp_path):
    p = tmp_path / "labels.sqlite"
    LabelCache(p).close()  # creates the tables
    return p


def rows(path):
    with sqlite3.connect(path) as con:
        return {k: (pid, host) for k, pid, host in con.execute("SELECT key, pid, host FROM claims")}


def insert_claim(path, key, pid, host, age):
    with sqlite3.connect(path) as con:
        con.execute("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?)",
                    (key, pid, host, "someone-else", time.time() - age))


def test_a_key_claimed_by_one_run_is_refused_to_another(path):
    with Claims(path) as a, Claims(path) as b:
        assert a.claim(["k1", "k2"]) == {}
        theirs = b.claim(["k1", "k2", "k3"])
        assert set(theirs) == {"k1", "k2"} and theirs["k1"].pid == os.getpid()
        assert set(a.claim(["k3"])) == {"k3"}  # k3 went to b
        assert a.claim(["k1"]) == {}  # claiming again what one holds is fine
        assert rows(path) == {"k1": (os.getpid(), socket.gethostname()),
                              "k2": (os.getpid(), socket.gethostname()),
                              "k3": (os.getpid(), socket.gethostname())}
        b.release(["k3"])
        assert "k3" not in rows(path) and set(rows(path)) == {"k1", "k2"}
    assert rows(path) == {}  # closing releases everything left


def test_a_claim_expires_with_its_lease(path, monkeypatch):
    insert_claim(path, "fresh", 1, "another-host", age=1.0)
    insert_claim(path, "stale", 1, "another-host", age=claims.LEASE_SECONDS + 1)
    with Claims(path) as c:
        theirs = c.claim(["fresh", "stale"])
        assert set(theirs) == {"fresh"} and theirs["fresh"].host == "another-host"
        assert "another-host" in describe(theirs.values())
        monkeypatch.setattr(claims, "LEASE_SECONDS", 0.5)
        assert c.claim(["fresh"]) == {}  # now older than the lease: taken over
    assert rows(path) == {}


def test_a_dead_owner_on_this_host_loses_its_claims_at_once(path):
    script = ("import os, sys\nfrom levelup.qm.claims import Claims\n"
              "c = Claims(sys.argv[1]); c.claim(sys.argv[2:]); print('claimed', flush=True)\n"
              "sys.stdin.read()\n")
    owner = subprocess.Popen([sys.executable, "-c", script, str(path), "k1", "k2"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert owner.stdout.readline().strip() == "claimed"
    try:
        with Claims(path) as c:
            theirs = c.claim(["k1", "k2"])  # alive (and its heartbeat is fresh): refused
            assert set(theirs) == {"k1", "k2"} and theirs["k1"].pid == owner.pid
            assert describe(theirs.values()) == f"process {owner.pid}"
            os.kill(owner.pid, signal.SIGKILL)
            deadline = time.time() + 30
            while pid_alive(owner.pid):  # dead, not reaped yet: a zombie counts as dead
                assert time.time() < deadline
                time.sleep(0.01)
            assert rows(path)["k1"][0] == owner.pid  # a SIGKILL releases nothing...
            assert c.claim(["k1"]) == {}  # ...but its claims are taken over at once
            owner.wait()
            assert not pid_alive(owner.pid) and pid_alive(os.getpid())
            assert c.claim(["k1", "k2"]) == {}
            assert {pid for pid, _ in rows(path).values()} == {os.getpid()}
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()


def test_a_stale_claim_with_this_process_id_is_taken_over(path):
    """A claim carrying this process's pid but no run open here (a dead run whose pid was
    reused, as happens in containers) expires at once; one of a run open here does not."""
    insert_claim(path, "k", os.getpid(), socket.gethostname(), age=0.0)
    with Claims(path) as a, Claims(path) as b:
        assert a.claim(["k"]) == {}
        assert set(b.claim(["k"])) == {"k"}


def test_heartbeats_keep_claims_alive(path, monkeypatch):
    monkeypatch.setattr(claims, "HEARTBEAT_SECONDS", 0.05)
    monkeypatch.setattr(claims, "LEASE_SECONDS", 0.6)
    with Claims(path) as a, Claims(path) as b:
        a.claim(["k"])
        time.sleep(1.5)  # well past the lease: only the heartbeat keeps the claim
        with sqlite3.connect(path) as con:
            beat = con.execute("SELECT heartbeat FROM claims WHERE key = 'k'").fetchone()[0]
        assert time.time() - beat < 0.6
        assert set(b.claim(["k"])) == {"k"}


def test_committing_a_label_or_a_failure_removes_its_claim(path):
    with Claims(path) as c, LabelCache(path) as cache:
        c.claim(["a", "b", "c"])
        cache.put("a", "HF/STO-3G", -1.0, None, n_atoms=2)
        cache.put_failure("b", "HF/STO-3G", "SCF did not converge")
        assert set(rows(path)) == {"c"}
        time.sleep(0.01)
        since = time.time()
        cache.put_failure("c", "HF/STO-3G", "again")
        assert cache.failures(since=since) == {"c": "again"}
        assert cache.failures(["b", "c"], since=since) == {"c": "again"}


def test_an_in_memory_cache_needs_no_claims():
    with Claims(":memory:") as c:
        assert not c.enabled and c.claim(["k"]) == {}
        c.release()


def test_an_old_cache_without_claims_keeps_working(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as con:  # the schema before claims existed
        con.executescript("""
            CREATE TABLE labels (key TEXT PRIMARY KEY, level TEXT NOT NULL, energy REAL NOT NULL,
                forces BLOB, forces_method TEXT, n_atoms INTEGER NOT NULL, seconds REAL,
                program TEXT, created REAL NOT NULL);
            CREATE TABLE failures (key TEXT PRIMARY KEY, level TEXT NOT NULL,
                reason TEXT NOT NULL, created REAL NOT NULL);
            INSERT INTO labels VALUES ('old', 'HF/STO-3G', -1.5, NULL, NULL, 2, 0.1, 'x', 0.0);
        """)
    with LabelCache(path) as cache, Claims(path) as c:
        assert cache.get_many(["old"])["old"].energy == -1.5
        assert c.claim(["new"]) == {}
        cache.put("new", "HF/STO-3G", -1.0, None, n_atoms=2)
        assert len(cache) == 2 and rows(path) == {}


def water_db(n, seed=0):
    rng = np.random.default_rng(seed)
    return Database.from_numpy(WATER + rng.normal(scale=0.03, size=(n, 3, 3)), [8, 1, 1])


def keys_of(db, level, tmp_path):
    """The cache keys of db's molecules at level, in order (from a scratch cache)."""
    scratch = tmp_path / "scratch.sqlite"
    out, _ = label_with_report(db, level, cache=scratch, workers=1, progress=False)
    with sqlite3.connect(scratch) as con:
        energy_of = dict(con.execute("SELECT key, energy FROM labels"))
    keys = [next(k for k, e in energy_of.items() if e == v) for v in out.get(level)]
    return keys, out.get(level)


def test_label_waits_for_labels_claimed_by_another_run(tmp_path):
    """Molecules 0-2 are claimed by another (live) run: label() computes the rest, then waits
    for them; the other run commits 0 and 1 and a failure for 2, which label() reports as its
    own, without computing any of the three."""
    db = water_db(6)
    keys, energies = keys_of(db, "HF/STO-3G", tmp_path)
    path = tmp_path / "labels.sqlite"
    LabelCache(path).close()
    other = Claims(path)
    other.claim(keys[:3])

    def finish():
        time.sleep(1.5)
        with LabelCache(path) as cache:
            cache.put(keys[0], "HF/STO-3G", energies[0], None, n_atoms=3)
            cache.put(keys[1], "HF/STO-3G", energies[1], None, n_atoms=3)
            cache.put_failure(keys[2], "HF/STO-3G", "SCF did not converge (other run)")
        other.close()

    thread = threading.Thread(target=finish)
    thread.start()
    start = time.perf_counter()
    out, report = label_with_report(db, "HF/STO-3G", cache=path, workers=1, progress=False)
    thread.join()
    assert time.perf_counter() - start > 1.4  # it did wait
    assert report.computed == 3 and report.waited == 2 and report.cached == 0
    assert report.failures == {2: "SCF did not converge (other run)"}
    assert "3 computed, 1 failed, 2 waited for from another run" in report.summary()
    np.testing.assert_allclose(out.get("HF/STO-3G")[[0, 1, 3, 4, 5]], energies[[0, 1, 3, 4, 5]],
                               atol=1e-10)
    assert rows(path) == {}


def test_label_takes_over_claims_released_unfinished(tmp_path, monkeypatch):
    """The other run stops (Ctrl-C) without finishing its two molecules: label() computes them
    itself as soon as the claims are gone, and a failure older than the run is not taken."""
    monkeypatch.setattr(claims, "POLL_SECONDS", 0.1)
    db = water_db(4, seed=1)
    keys, energies = keys_of(db, "HF/STO-3G", tmp_path)
    path = tmp_path / "labels.sqlite"
    with LabelCache(path) as cache:
        cache.put_failure(keys[0], "HF/STO-3G", "an old failure")
    other = Claims(path)
    other.claim(keys[:2])
    threading.Timer(1.0, other.close).start()
    out, report = label_with_report(db, "HF/STO-3G", cache=path, workers=1, progress=False)
    assert report.computed == 4 and report.waited == 0 and report.ok
    np.testing.assert_allclose(out.get("HF/STO-3G"), energies, atol=1e-10)
