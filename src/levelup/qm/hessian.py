"""Analytic Cartesian Hessians from PySCF (``pyscf.hessian``: RHF, UHF, RKS, UKS), cached in the
label cache's SQLite file.

PySCF has analytic second derivatives for Hartree-Fock and DFT only (no ROHF, no correlated
method, no UKS with a non-local VV10 functional); :func:`has_analytic_hessian` says which levels
qualify, and :mod:`levelup.properties.hessians` takes finite differences of analytic gradients
for the rest.

The cache: a table ``hessians`` in the same SQLite file as the labels (the default user cache,
a path, or the file of a :class:`~levelup.qm.cache.LabelCache`), keyed like a label (level,
charge, multiplicity, result-changing settings, species, coordinates rounded to 1e-8
Angstrom) with "|hessian=analytic" added, so a Hessian is never confused with a label. Values
are raw little-endian float64 bytes, never pickles. An in-memory cache (``cache=False``) keeps
nothing.

Units: Hessians in Hartree/Angstrom^2, rows and columns atom-major (x0, y0, z0, x1, ...);
PySCF's Hartree/Bohr^2 are converted here with PySCF's own Bohr.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from levelup.data.validate import check_electrons
from levelup.elements import symbol
from levelup.errors import LabelError, LevelOfTheoryError, LevelupError
from levelup.qm.cache import LabelCache, default_cache_path, label_key
from levelup.qm.levels import Level, basis_ecp, check_level, parse_level
from levelup.qm.scf import CalculationFailed, minao_projection_basis, run_scf
from levelup.qm.settings import LabelSettings

SCHEMA = """
CREATE TABLE IF NOT EXISTS hessians (
    key TEXT PRIMARY KEY,
    level TEXT NOT NULL,
    energy REAL NOT NULL,
    hessian BLOB NOT NULL,
    n_atoms INTEGER NOT NULL,
    seconds REAL,
    program TEXT,
    created REAL NOT NULL
);
"""


@dataclass(frozen=True)
class AnalyticHessian:
    """An analytic Hessian of one geometry.

    Attributes:
        hessian: (3A, 3A) Hartree/Angstrom^2, atom-major, symmetric.
        energy: total energy at the geometry, Hartree.
        cached: True when read from the cache (nothing computed).
        seconds: wall time of the calculation that made it (as stored).
    """

    hessian: np.ndarray
    energy: float
    cached: bool
    seconds: float


def has_analytic_hessian(level: str | Level, multiplicity: int = 1) -> bool:
    """True when PySCF has analytic second derivatives for ``level`` on a molecule of this
    multiplicity: HF (RHF, UHF) and DFT functionals (RKS, UKS; no VV10 non-local part for open
    shells). ROHF ("RHF" on an open shell), MP2, CISD, CCSD, CCSD(T) and FCI have none."""
    lvl = parse_level(level)
    if lvl.family == "hf":
        return multiplicity == 1 or lvl.reference != "rhf"
    if lvl.family == "dft":
        if multiplicity == 1:
            return True
        from pyscf.dft import libxc
        from pyscf.scf import dispersion

        xc, nlc, _ = dispersion.parse_dft(lvl.xc)
        return not (nlc or libxc.is_nlc(xc))
    return False


def hessian_key(level: Level, species: np.ndarray, coordinates: np.ndarray, charge: int,
                multiplicity: int, settings: LabelSettings) -> str:
    """The cache key of one analytic Hessian: a label's key with "|hessian=analytic" added."""
    job_key = (f"{level.key}|charge={int(charge)}|mult={int(multiplicity)}|"
               f"{settings.result_key()}|hessian=analytic")
    return label_key(job_key, species, coordinates)


class HessianCache:
    """The ``hessians`` table of a label-cache file. Use as a context manager or call
    :meth:`close`.

    Args:
        cache: as ``label(cache=...)``: None or True for the default user cache, a path, a
            :class:`LabelCache` (its file), or False for none (nothing is kept).
    """

    def __init__(self, cache: Any = None) -> None:
        if isinstance(cache, LabelCache):
            path = cache.path
        elif cache is None or cache is True:
            path = str(default_cache_path())
        elif cache is False:
            path = ":memory:"
        else:
            path = os.fspath(cache)
        self.path = path
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=120.0, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout = 120000")
            if path != ":memory:":
                self._db.execute("PRAGMA journal_mode = WAL")
            self._db.executescript(SCHEMA)
        except (sqlite3.DatabaseError, OSError) as exc:
            raise LevelupError(
                f"cannot use {path} as a label cache ({exc}); point cache= / --cache at another "
                "file, or delete this one (it only holds results that can be recomputed)"
            ) from None

    def __enter__(self) -> HessianCache:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (every Hessian is already committed)."""
        self._db.close()

    def get(self, key: str) -> AnalyticHessian | None:
        """The Hessian stored under ``key``, or None."""
        row = self._db.execute("SELECT energy, hessian, n_atoms, seconds FROM hessians WHERE "
                               "key = ?", (key,)).fetchone()
        if row is None:
            return None
        energy, blob, n_atoms, seconds = row
        n3 = 3 * int(n_atoms)
        h = np.frombuffer(blob, dtype="<f8").reshape(n3, n3).copy()
        return AnalyticHessian(h, float(energy), True, float(seconds or 0.0))

    def put(self, key: str, level: str, result: AnalyticHessian, program: str) -> None:
        """Store one Hessian and commit it at once."""
        blob = np.ascontiguousarray(result.hessian, dtype="<f8").tobytes()
        self._db.execute(
            "INSERT OR REPLACE INTO hessians (key, level, energy, hessian, n_atoms, seconds, "
            "program, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (key, level, float(result.energy), blob, result.hessian.shape[0] // 3,
             float(result.seconds), program, time.time()))

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM hessians").fetchone()[0])


def analytic_hessian(species: Any, coordinates: Any, level: str | Level, *, charge: int = 0,
                     multiplicity: int = 1, settings: LabelSettings | None = None,
                     cache: Any = None) -> AnalyticHessian:
    """The analytic Hessian of one molecule at ``level`` (HF or DFT), from the cache when there.

    Args:
        species: atomic numbers, (atoms,).
        coordinates: (atoms, 3) Angstrom.
        level: "method/basis" with an analytic Hessian in PySCF (see :func:`has_analytic_hessian`).
        charge, multiplicity: of the molecule.
        settings: SCF convergence settings (default: PySCF's, as for labels).
        cache: as ``label(cache=...)`` (see :class:`HessianCache`).

    Raises:
        LevelOfTheoryError: an unknown level, a basis lacking an element, or a level without an
            analytic Hessian.
        LabelError: the SCF did not converge or PySCF failed.
    """
    lvl = parse_level(level)
    settings = settings or LabelSettings()
    z = np.asarray(species, dtype=np.int64).reshape(-1)
    xyz = np.asarray(coordinates, dtype=np.float64).reshape(len(z), 3)
    check_level(lvl, z.tolist())
    check_electrons(z[None], np.array([int(charge)]), np.array([int(multiplicity)]))
    if not has_analytic_hessian(lvl, multiplicity):
        raise LevelOfTheoryError(
            f"PySCF has no analytic Hessian for {lvl.name} (multiplicity {multiplicity}): "
            "analytic second derivatives exist for HF (RHF, UHF) and DFT; use finite "
            "differences of gradients (levelup.properties.hessians.hessian(method='gradients'))")
    key = hessian_key(lvl, z, xyz, charge, multiplicity, settings)
    with HessianCache(cache) as store:
        found = store.get(key)
        if found is not None:
            return found
        result = _compute(z, xyz, lvl, charge, multiplicity, settings)
        import pyscf

        store.put(key, lvl.name, result, f"PySCF {pyscf.__version__}")
    return result


def _compute(z: np.ndarray, xyz: np.ndarray, lvl: Level, charge: int, multiplicity: int,
             settings: LabelSettings) -> AnalyticHessian:
    """Run the SCF and PySCF's analytic Hessian; (3A, 3A) Hartree/Angstrom^2."""
    from pyscf import gto
    from pyscf.lib import param

    start = time.perf_counter()
    symbols = [symbol(int(a)) for a in z]
    try:
        mol = gto.M(atom=list(zip(symbols, xyz.tolist(), strict=True)), basis=lvl.basis,
                    ecp=basis_ecp(lvl.basis, set(symbols)), charge=int(charge),
                    spin=int(multiplicity) - 1, unit="Angstrom", verbose=0)
        mf, _ = run_scf(mol, lvl, settings, minao_projection_basis(mol))
        solver = mf.Hessian()
        solver.verbose = 0
        per_atom = np.asarray(solver.kernel(), dtype=np.float64)  # (atoms, atoms, 3, 3) Ha/Bohr^2
    except CalculationFailed as exc:
        raise LabelError(f"analytic Hessian at {lvl.name}: {exc}") from None
    except (RuntimeError, ValueError) as exc:
        raise LabelError(f"analytic Hessian at {lvl.name} failed in PySCF: "
                         f"{' '.join(str(exc).split())[:300]}") from None
    n3 = 3 * len(z)
    h = per_atom.transpose(0, 2, 1, 3).reshape(n3, n3) / float(param.BOHR) ** 2
    if not np.isfinite(h).all():
        raise LabelError(f"the analytic Hessian at {lvl.name} is not finite")
    return AnalyticHessian((h + h.T) / 2, float(mf.e_tot), False, time.perf_counter() - start)
