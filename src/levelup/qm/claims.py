"""Claims: which labelling run is computing which label of a shared cache file.

Two ``label()`` runs on one cache must not compute one label twice. Before computing, a run
claims the keys it is about to compute, in one short ``BEGIN IMMEDIATE`` transaction, so that
two processes never both claim one key; keys that another live run has claimed are left to it
and waited for. The owner refreshes the heartbeat of its claims every ``HEARTBEAT_SECONDS``
from a background thread; a label's claim goes when the label or its failure is committed
(:meth:`LabelCache.put` and :meth:`LabelCache.put_failure` delete it in the same transaction),
and all of a run's claims go when it ends, by an exception or Ctrl-C too.

A claim expires when its heartbeat is older than ``LEASE_SECONDS``, or at once when its owner
ran on this host and its process is gone (killed with SIGKILL, crashed): then another run
takes it over. Claims live in the table ``claims`` of the cache file (created if missing, so
old caches keep working and old versions of levelup ignore it). An in-memory cache cannot be
shared, so it needs no claims: :class:`Claims` of ":memory:" claims every key and stores
nothing.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

#: Seconds after its last heartbeat at which a claim expires (whatever its owner's state).
LEASE_SECONDS = 30.0
#: Seconds between two heartbeats of a run's claims (at most a third of the lease is used).
HEARTBEAT_SECONDS = 5.0
#: Seconds between two looks at the cache while waiting for labels claimed by another run.
POLL_SECONDS = 0.5

SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    token TEXT NOT NULL,
    heartbeat REAL NOT NULL
);
"""

_live_tokens: set[str] = set()  # the Claims objects open in this process


@dataclass(frozen=True)
class Claim:
    """A claim held by another labelling run.

    Attributes:
        key: the label's cache key.
        pid: process id of the run that holds it.
        host: host name of that process.
        heartbeat: when it was last refreshed, seconds since the epoch (``time.time()``).
    """

    key: str
    pid: int
    host: str
    heartbeat: float


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host exists and is not a zombie (True where the OS
    cannot tell)."""
    if os.name == "nt":  # pragma: no cover - os.kill(pid, 0) sends CTRL_C_EVENT on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, owned by another user
        return True
    try:  # Linux: a killed process its parent has not reaped yet is a zombie, not alive
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _chunks(keys: list[str], size: int = 500) -> Iterator[list[str]]:
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


class Claims:
    """The claims of one labelling run on one cache file. Use as a context manager or call
    :meth:`close` (which releases every claim left).

    Args:
        path: the cache file (made by :class:`LabelCache`, which creates the table), or
            ":memory:" for no claims at all.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = str(path)
        self.enabled = self.path != ":memory:"
        self.token = uuid.uuid4().hex
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._db: sqlite3.Connection | None = None
        if self.enabled:
            self._db = sqlite3.connect(self.path, timeout=120.0, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA busy_timeout = 120000")
        _live_tokens.add(self.token)

    def __enter__(self) -> Claims:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def claim(self, keys: Iterable[str]) -> dict[str, Claim]:
        """Claim every key of ``keys`` that no other live run holds (taking over expired
        claims) and return the others' claims among ``keys``, key -> :class:`Claim`."""
        keys = list(dict.fromkeys(keys))
        if not self.enabled or not keys:
            return {}
        others: dict[str, Claim] = {}
        with self._lock:
            now = time.time()
            self._db.execute("BEGIN IMMEDIATE")  # one writer: nobody claims between look and write
            try:
                for chunk in _chunks(keys):
                    marks = ",".join("?" * len(chunk))
                    rows = self._db.execute("SELECT key, pid, host, token, heartbeat FROM claims "
                                            f"WHERE key IN ({marks})", chunk).fetchall()
                    for key, pid, host, token, beat in rows:
                        if token != self.token and not self._expired(pid, host, token, beat, now):
                            others[key] = Claim(key, int(pid), host, float(beat))
                    self._db.executemany(
                        "INSERT OR REPLACE INTO claims (key, pid, host, token, heartbeat) "
                        "VALUES (?, ?, ?, ?, ?)",
                        [(k, self.pid, self.host, self.token, now) for k in chunk
                         if k not in others])
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        self._start_heartbeat()
        return others

    def _expired(self, pid: int, host: str, token: str, heartbeat: float, now: float) -> bool:
        """Whether another run's claim may be taken over."""
        if now - heartbeat > LEASE_SECONDS:
            return True
        if host != self.host:
            return False
        if pid == self.pid:  # this process: a run still open here, or a dead one's reused pid
            return token not in _live_tokens
        return not pid_alive(pid)

    def refresh(self) -> None:
        """Renew the heartbeat of every claim of this run."""
        if self.enabled:
            with self._lock:
                self._db.execute("UPDATE claims SET heartbeat = ? WHERE token = ?",
                                 (time.time(), self.token))

    def release(self, keys: Iterable[str] | None = None) -> None:
        """Remove this run's claims on ``keys`` (None: all of them)."""
        if not self.enabled:
            return
        with self._lock:
            if keys is None:
                self._db.execute("DELETE FROM claims WHERE token = ?", (self.token,))
                return
            for chunk in _chunks(list(dict.fromkeys(keys))):
                marks = ",".join("?" * len(chunk))
                self._db.execute(f"DELETE FROM claims WHERE token = ? AND key IN ({marks})",
                                 [self.token, *chunk])

    def _start_heartbeat(self) -> None:
        if self._thread is None and self.enabled:
            self._thread = threading.Thread(target=self._beat, name="levelup-claims-heartbeat",
                                            daemon=True)
            self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(min(HEARTBEAT_SECONDS, LEASE_SECONDS / 3)):
            try:
                self.refresh()
            except sqlite3.Error:  # busy or closing: the next beat tries again
                pass

    def close(self) -> None:
        """Stop the heartbeat and release every claim left (safe to call twice)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        _live_tokens.discard(self.token)
        if self._db is not None:
            try:
                self.release()
            finally:
                self._db.close()
                self._db = None
                self.enabled = False


def describe(claims: Iterable[Claim]) -> str:
    """Who holds ``claims``: "process 123", "processes 123, 456" or "process 7 on host-b"."""
    owners = sorted({(c.pid, c.host) for c in claims})
    here = socket.gethostname()
    names = [str(pid) if host == here else f"{pid} on {host}" for pid, host in owners]
    return ("process " if len(names) == 1 else "processes ") + ", ".join(names)
