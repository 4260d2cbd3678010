"""The persistent label cache: SQLite (stdlib ``sqlite3``) in WAL mode.

One row per (geometry, charge, multiplicity, level, result-changing settings), found by a hash
of those. Every finished label is committed on its own, so a run killed at any moment (even
with ``kill -9``) loses nothing that had finished, and the next run recomputes nothing that
had. Several processes may read and write one cache at once: SQLite's locking serializes the
writers (each write is one short transaction) and WAL lets readers go on meanwhile.

``synchronous=NORMAL`` in WAL mode makes every commit durable against a crash or kill of the
process; only a power cut or OS crash can lose the last few commits (never corrupt the file).
Only the process that calls ``label()`` touches the cache (workers, local or on Dask, send
their results back to it), so the file must live on a local disk of that machine: SQLite's WAL
mode does not work on network file systems.

Two runs labelling one cache at once split the work instead of both computing everything: each
claims the labels it computes in the table ``claims`` (see :mod:`levelup.qm.claims`) and waits
for those another run claimed.

The default cache is ``platformdirs.user_cache_dir("levelup")/labels.sqlite``, shared by all
runs; the environment variable ``LEVELUP_CACHE_DIR`` moves it (tests and CI point it at a
temporary folder).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from levelup.errors import LevelupError
from levelup.qm.claims import SCHEMA as CLAIMS_SCHEMA

#: Coordinates are rounded to this many decimals (Angstrom) before hashing: 1e-8 Angstrom is far
#: below any physically meaningful difference and far above float noise such as np.arange's.
COORDINATE_DECIMALS = 8
#: Bumped when the meaning of a key changes, so that old rows are never misread.
KEY_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS labels (
    key TEXT PRIMARY KEY,
    level TEXT NOT NULL,
    energy REAL NOT NULL,
    forces BLOB,
    forces_method TEXT,
    n_atoms INTEGER NOT NULL,
    seconds REAL,
    program TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS failures (
    key TEXT PRIMARY KEY,
    level TEXT NOT NULL,
    reason TEXT NOT NULL,
    created REAL NOT NULL
);
""" + CLAIMS_SCHEMA


def default_cache_path() -> Path:
    """``$LEVELUP_CACHE_DIR/labels.sqlite`` if that variable is set, else
    ``platformdirs.user_cache_dir("levelup")/labels.sqlite``."""
    folder = os.environ.get("LEVELUP_CACHE_DIR")
    if not folder:
        import platformdirs

        folder = platformdirs.user_cache_dir("levelup")
    return Path(folder) / "labels.sqlite"


def label_key(job_key: str, species: np.ndarray, coordinates: np.ndarray) -> str:
    """Hash identifying one label.

    Args:
        job_key: level, charge, multiplicity and result-changing settings, as one string.
        species: atomic numbers, (atoms,).
        coordinates: (atoms, 3) Angstrom; rounded to ``COORDINATE_DECIMALS``.
    """
    xyz = np.round(np.asarray(coordinates, dtype=np.float64), COORDINATE_DECIMALS) + 0.0  # no -0
    text = (f"v{KEY_VERSION}|{job_key}|{','.join(str(int(z)) for z in species)}|"
            + ",".join(f"{v:.{COORDINATE_DECIMALS}f}" for v in xyz.ravel()))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class CachedLabel:
    """A label read from the cache.

    Attributes:
        energy: Hartree.
        forces: (atoms, 3) Hartree/Angstrom, or None when only the energy was computed.
        forces_method: "analytic" or "numerical" (None without forces).
        program: program and version that computed it ("PySCF 2.14.0").
    """

    energy: float
    forces: np.ndarray | None
    forces_method: str | None
    program: str | None


class LabelCache:
    """A label cache in one SQLite file. Use as a context manager or call :meth:`close`.

    Args:
        path: the SQLite file (created with its folder if missing); ":memory:" for a cache
            that lives only as long as this object.
    """

    def __init__(self, path: str | os.PathLike = ":memory:") -> None:
        self.path = str(path)
        self._lock = threading.Lock()  # one transaction at a time on the shared connection
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=120.0, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA busy_timeout = 120000")
            # two processes creating one cache at the same moment: switching to WAL takes an
            # exclusive lock and SQLite reports "locked" at once instead of waiting; retry
            for attempt in range(100):
                try:
                    if self.path != ":memory:":
                        self._db.execute("PRAGMA journal_mode = WAL")
                    self._db.execute("PRAGMA synchronous = NORMAL")
                    self._db.executescript(SCHEMA)
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or attempt == 99:
                        raise
                    time.sleep(0.05)
        except sqlite3.DatabaseError as exc:
            raise LevelupError(
                f"cannot use {self.path} as a label cache ({exc}); point --cache / cache= at "
                "another file, or delete this one (it only holds labels that can be recomputed)"
            ) from None

    def __enter__(self) -> LabelCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (every label is already committed)."""
        self._db.close()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM labels").fetchone()[0])

    def get_many(self, keys: Sequence[str], *, forces: str = "none") -> dict[str, CachedLabel]:
        """The cached labels among ``keys``. With ``forces`` "analytic" or "numerical", only rows
        holding forces computed that way count."""
        found: dict[str, CachedLabel] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, energy, forces, forces_method, n_atoms, program FROM labels "
                f"WHERE key IN ({marks})", chunk)
            for key, energy, blob, method, n_atoms, program in rows:
                f = None
                if blob is not None:
                    f = np.frombuffer(blob, dtype="<f8").reshape(n_atoms, 3).copy()
                if forces != "none" and (f is None or method != forces):
                    continue
                found[key] = CachedLabel(float(energy), f, method if f is not None else None,
                                         program)
        return found

    def put(self, key: str, level: str, energy: float, forces: np.ndarray | None = None, *,
            forces_method: str | None = None, n_atoms: int, seconds: float | None = None,
            program: str | None = None) -> None:
        """Store one finished label and commit it at once. Forces already stored for this key
        are kept when the new label has none."""
        blob = None
        if forces is not None:
            blob = np.ascontiguousarray(forces, dtype="<f8").tobytes()
        self._commit(
            "INSERT INTO labels (key, level, energy, forces, forces_method, n_atoms, seconds, "
            "program, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET energy = excluded.energy, "
            "forces = COALESCE(excluded.forces, labels.forces), "
            "forces_method = CASE WHEN excluded.forces IS NULL THEN labels.forces_method "
            "ELSE excluded.forces_method END, "
            "seconds = excluded.seconds, program = excluded.program, created = excluded.created",
            (key, level, float(energy), blob, forces_method if blob else None, int(n_atoms),
             seconds, program, time.time()),
            "DELETE FROM failures WHERE key = ?",
        )

    def put_failure(self, key: str, level: str, reason: str) -> None:
        """Record why a calculation failed (kept for the record; failures are retried) and
        commit it at once."""
        self._commit(
            "INSERT OR REPLACE INTO failures (key, level, reason, created) VALUES (?, ?, ?, ?)",
            (key, level, reason, time.time()))

    def _commit(self, sql: str, values: tuple, *also: str) -> None:
        """Run ``sql`` with ``values``, then each of ``also`` and the removal of the key's claim
        (see :mod:`levelup.qm.claims`) with the key alone, in one transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(sql, values)
                for statement in (*also, "DELETE FROM claims WHERE key = ?"):
                    self._db.execute(statement, (values[0],))
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def failures(self, keys: Iterable[str] | None = None, *,
                 since: float | None = None) -> dict[str, str]:
        """Recorded failure reasons, for ``keys`` (or all), recorded at ``since`` or later
        (seconds since the epoch; None: whenever)."""
        after = "" if since is None else f" AND created >= {float(since)!r}"
        if keys is None:
            return dict(self._db.execute(f"SELECT key, reason FROM failures WHERE 1{after}"))
        out: dict[str, str] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            out.update(self._db.execute(
                f"SELECT key, reason FROM failures WHERE key IN ({marks}){after}", chunk))
        return out


def open_cache(cache: str | os.PathLike | LabelCache | bool | None) -> tuple[LabelCache, bool]:
    """The cache to use and whether the caller owns it (must close it).

    None or True: the default cache file; False: an in-memory cache (nothing persists); a path:
    that file; a LabelCache: itself.
    """
    if isinstance(cache, LabelCache):
        return cache, False
    if cache is None or cache is True:
        return LabelCache(default_cache_path()), True
    if cache is False:
        return LabelCache(":memory:"), True
    return LabelCache(cache), True
