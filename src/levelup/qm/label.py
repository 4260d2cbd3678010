"""Label a database with quantum chemistry: ``label(db, "CISD/cc-pVDZ")``.

Every molecule is looked up first in the database itself (a property of that name made at that
level), then in the label cache; only the rest is computed, and each result is committed to the
cache the moment it exists. A molecule whose calculation fails (an SCF that does not converge
after retries) gets NaN, its reason is reported at the end, and the run goes on.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from levelup.data import Database
from levelup.data.validate import check_electrons
from levelup.errors import DataError
from levelup.qm.cache import open_cache
from levelup.qm.levels import Level, check_level, forces_mode, parse_level
from levelup.qm.run import Run
from levelup.qm.serial import cap_workers
from levelup.qm.settings import LabelSettings
from levelup.units import ENERGY, FORCE


class LabelWarning(UserWarning):
    """Some molecules could not be labelled (their values are NaN); the message says why."""


@dataclass(frozen=True)
class LabelReport:
    """What a labelling run did.

    Attributes:
        level: the level of theory, canonical spelling ("CISD/cc-pVDZ").
        name: the property the energies went to (forces went to ``forces/<name>``).
        total: molecules in the database.
        reused: molecules already labelled in the database given.
        cached: molecules found in the label cache.
        computed: molecules computed in this run (successfully).
        failures: molecule index -> why its calculation failed (its label is NaN).
        retried: molecule index -> how its SCF converged after the default attempt failed.
        seconds: wall time of the run.
        waited: molecules computed meanwhile by another run on the same cache, which this run
            waited for (see :mod:`levelup.qm.claims`).
    """

    level: str
    name: str
    total: int
    reused: int = 0
    cached: int = 0
    computed: int = 0
    failures: dict[int, str] = field(default_factory=dict)
    retried: dict[int, str] = field(default_factory=dict)
    seconds: float = 0.0
    waited: int = 0

    @property
    def ok(self) -> bool:
        """True when every molecule has a label."""
        return not self.failures

    def summary(self, max_failures: int = 10) -> str:
        """A few lines for people: counts, then the failed molecules and why."""
        lines = [
            f"{self.level}: {self.total} molecules: {self.reused} already in the database, "
            f"{self.cached} from the cache, {self.computed} computed, {len(self.failures)} "
            f"failed, {self.waited} waited for from another run ({self.seconds:.1f} s)"
        ]
        if self.retried:
            lines.append(f"  {len(self.retried)} needed an SCF retry (converged; e.g. molecule "
                         f"{next(iter(self.retried))}: {next(iter(self.retried.values()))})")
        for i, (index, reason) in enumerate(sorted(self.failures.items())):
            if i == max_failures:
                lines.append(f"  ... and {len(self.failures) - max_failures} more")
                break
            lines.append(f"  molecule {index}: {reason}")
        return "\n".join(lines)


def label(db: Database, level: str | Level, *, forces: bool | str = False,
          workers: int | None = None, cache: Any = None, executor: Any = None,
          name: str | None = None, progress: bool = True, charge: int | None = None,
          multiplicity: int | None = None, threads: int | None = None,
          settings: LabelSettings | None = None) -> Database:
    """Label every molecule of ``db`` at ``level``; return a NEW database with the energies.

    See :func:`label_with_report` for the arguments. Molecules whose calculation failed have
    NaN and are named, with the reason, in a :class:`LabelWarning`.

    Example::

        db = levelup.label(db, "CISD/cc-pVDZ", forces=True)
        db.get("CISD/cc-pVDZ")          # (molecules,) Hartree
        db.get("forces/CISD/cc-pVDZ")   # (molecules, atoms, 3) Hartree/Angstrom
    """
    out, report = label_with_report(
        db, level, forces=forces, workers=workers, cache=cache, executor=executor, name=name,
        progress=progress, charge=charge, multiplicity=multiplicity, threads=threads,
        settings=settings)
    if report.failures:
        warnings.warn(report.summary(), LabelWarning, stacklevel=2)
    return out


def label_with_report(db: Database, level: str | Level, *, forces: bool | str = False,
                      workers: int | None = None, cache: Any = None, executor: Any = None,
                      name: str | None = None, progress: bool = True,
                      charge: int | None = None, multiplicity: int | None = None,
                      threads: int | None = None, settings: LabelSettings | None = None
                      ) -> tuple[Database, LabelReport]:
    """Label every molecule of ``db`` at ``level``; return (new database, report).

    Several runs may label against one cache file at once: each claims the labels it computes
    (see :mod:`levelup.qm.claims`), so no label is computed twice; a run waits for the labels
    another live run has claimed, and takes over those of a run that died.

    Args:
        db: the molecules (charges and multiplicities are taken from it).
        level: "method/basis", case-insensitive ("HF/STO-3G", "B3LYP/6-31G*", "CCSD(T)/aug-cc-pVTZ").
        forces: False; True or "analytic" for analytic gradients; "numerical" for central finite
            differences (6N + 1 energies per molecule).
        workers: parallel calculations (default: one per core; 1 computes in this process; more
            than the available cores are capped, with a warning on the logger "levelup").
        cache: label cache file (default: the shared user cache, see
            :func:`levelup.qm.cache.default_cache_path`), a :class:`LabelCache`, or False for
            none.
        executor: a :class:`levelup.qm.serial.Executor` (e.g. a reused ``ProcessExecutor``)
            or a ``dask.distributed.Client``; overrides ``workers``.
        name: property name for the energies (default: the level, "CISD/cc-pVDZ"); forces go to
            ``forces/<name>``.
        progress: show a progress bar (rate and ETA).
        charge, multiplicity: override the database's values for every molecule.
        threads: PySCF/BLAS threads per worker (default: cores // workers).
        settings: convergence settings (default: PySCF's).

    Raises:
        DataError: before any calculation, for a database without molecules, or a charge or
            multiplicity impossible for a molecule's electrons.
        LevelOfTheoryError: before any calculation, for an unknown method or basis, a basis
            lacking an element, or forces a method cannot give.
    """
    start, since = time.perf_counter(), time.time()
    work, lvl, mode, settings, rows = _checked(db, level, forces, settings, charge, multiplicity)
    prop = name or lvl.name
    energies = np.full(len(work), math.nan)
    forces_out = np.full((len(work), work.max_atoms, 3), math.nan) if mode != "none" else None
    todo = _reuse_existing(work, prop, lvl, mode, settings, energies, forces_out)
    with _opened(cache) as store, contextlib.closing(
            Run(work, lvl, mode, settings, rows, store, energies, forces_out, executor,
                cap_workers(workers), threads, progress)) as run:
        run.label(todo, since)
    out = _with_labels(work, prop, lvl, mode, settings, run, energies, forces_out)
    report = LabelReport(level=lvl.name, name=prop, total=len(work),
                         reused=len(work) - int(todo.sum()), cached=run.cached,
                         computed=run.computed, waited=run.waited, failures=run.failures,
                         retried=run.retried, seconds=time.perf_counter() - start)
    return out, report


def _checked(db: Database, level: str | Level, forces: bool | str,
             settings: LabelSettings | None, charge: int | None, multiplicity: int | None
             ) -> tuple[Database, Level, str, LabelSettings, list[tuple[int, ...]]]:
    """(molecules with the overrides applied, level, forces mode, settings, each molecule's
    atomic numbers), after every check that can fail before a calculation."""
    if len(db) == 0:
        raise DataError("the database given has no molecules: nothing to label; give a file or "
                        "database with at least one molecule")
    lvl = parse_level(level)
    mode = forces_mode(forces)
    settings = settings or LabelSettings()
    work = _with_overrides(db, charge, multiplicity)
    rows = [tuple(int(z) for z in work.species[i, : work.n_atoms[i]]) for i in range(len(work))]
    systems = {(s, int(q), int(m)) for s, q, m in
               zip(rows, work.charges, work.multiplicities, strict=True)}
    check_level(lvl, work.elements, forces=mode, max_determinants=settings.fci_max_determinants,
                systems=systems if lvl.family == "fci" else ())
    return work, lvl, mode, settings, rows


@contextlib.contextmanager
def _opened(cache: Any) -> Iterator[Any]:
    """The label store of ``cache`` (see :func:`open_cache`), closed after if opened here."""
    store, own_cache = open_cache(cache)
    try:
        yield store
    finally:
        if own_cache:
            store.close()


def _with_labels(work: Database, prop: str, lvl: Level, mode: str, settings: LabelSettings,
                 run: Run, energies: np.ndarray, forces_out: np.ndarray | None) -> Database:
    """A copy of ``work`` with the energies (molecules,) Hartree and forces (molecules, atoms,
    3) Hartree/Angstrom, stored with their level and how they were computed."""
    out = work.copy()
    spec = _spec(lvl, mode, settings, run.programs, len(run.failures))
    out.set(prop, energies, unit=ENERGY, level=lvl.name, spec=spec)
    if forces_out is not None:
        out.set(f"forces/{prop}", forces_out, unit=FORCE, level=lvl.name, spec=spec)
    return out


def _with_overrides(db: Database, charge: int | None, multiplicity: int | None) -> Database:
    if charge is None and multiplicity is None:
        return db
    charges = db.charges if charge is None else np.full(len(db), int(charge))
    mults = db.multiplicities if multiplicity is None else np.full(len(db), int(multiplicity))
    check_electrons(db.species, charges, mults)  # before Database's own check: a clearer message
    props = {k: np.asarray(db.get(k)) for k in db.properties}
    return Database(db.species, db.coordinates, charges, mults, props, db.properties)


def _reuse_existing(work: Database, prop: str, lvl: Level, mode: str, settings: LabelSettings,
                    energies: np.ndarray, forces_out: np.ndarray | None) -> np.ndarray:
    """Fill values the database already holds at this level; return the mask still to do."""
    todo = np.ones(len(work), dtype=bool)
    info = work.properties.get(prop)
    if info is None or info.level != lvl.name or info.per_atom:
        return todo
    if info.spec.get("settings_key") != settings.result_key():
        return todo
    have = np.isfinite(work.get(prop))
    if forces_out is not None:
        finfo = work.properties.get(f"forces/{prop}")
        if finfo is None or finfo.level != lvl.name or finfo.spec.get("forces") != mode:
            return todo
        existing = work.get(f"forces/{prop}")
        real = work.species > 0
        have &= np.where(real[..., None], np.isfinite(existing), True).all(axis=(1, 2))
        forces_out[have] = existing[have]
    energies[have] = work.get(prop)[have]
    todo &= ~have
    return todo


def _spec(lvl: Level, mode: str, settings: LabelSettings, programs: set[str],
          n_failed: int) -> dict[str, Any]:
    """The full specification of the labels (recorded with the property)."""
    import pyscf
    from pyscf import cc, ci

    from levelup._version import __version__

    reference = {"auto": "RHF for closed shells, UHF otherwise", "rhf": "RHF (ROHF for open "
                 "shells)", "uhf": "UHF"}[lvl.reference]
    if lvl.family == "dft":
        reference = "RKS for closed shells, UKS otherwise"
    if lvl.family == "fci":
        reference = "RHF/ROHF orbitals; FCI with the spin fixed to the multiplicity"
    spec: dict[str, Any] = {
        "program": "PySCF",
        "version": pyscf.__version__,
        "method": lvl.method,
        "basis": lvl.basis,
        "family": lvl.family,
        "reference": reference,
        "scf": {
            "conv_tol": settings.conv_tol,
            "conv_tol_grad": "sqrt(conv_tol) (PySCF default)",
            "max_cycle": settings.max_cycle,
            "init_guess": "minao (PySCF default)",
            "retries": (["damping 0.5 + level shift 0.25", "second-order (Newton)"]
                        if settings.retries else []),
        },
        "frozen_core": False,
        "forces": mode,
        "settings_key": settings.result_key(),
        "levelup": __version__,
        "failed": n_failed,
    }
    if lvl.family == "dft":
        spec["xc"] = lvl.xc
        spec["grid_level"] = settings.grid_level if settings.grid_level is not None else 3
    if lvl.family == "cisd":
        spec["cisd_conv_tol"] = float(ci.cisd.CISD.conv_tol)
    if lvl.family in ("ccsd", "ccsd(t)"):
        spec["ccsd_conv_tol"] = float(cc.ccsd.CCSD.conv_tol)
        spec["ccsd_conv_tol_normt"] = float(cc.ccsd.CCSD.conv_tol_normt)
    if mode == "numerical":
        spec["fd_step_angstrom"] = settings.fd_step
    if len(programs) > 1:
        spec["programs"] = sorted(programs)  # labels from the cache made by other versions
    return spec
