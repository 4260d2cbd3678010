"""Label a database with quantum chemistry: ``label(db, "CISD/cc-pVDZ")``.

Every molecule is looked up first in the database itself (a property of that name made at that
level), then in the label cache; only the rest is computed, and each result is committed to the
cache the moment it exists. A molecule whose calculation fails (an SCF that does not converge
after retries) gets NaN, its reason is reported at the end, and the run goes on.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data import Database
from ..units import ENERGY, FORCE
from .cache import LabelCache, label_key, open_cache
from .calculators import Job
from .executors import make_executor
from .levels import Level, check_level, forces_mode, parse_level
from .settings import LabelSettings


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

    @property
    def ok(self) -> bool:
        """True when every molecule has a label."""
        return not self.failures

    def summary(self, max_failures: int = 10) -> str:
        """A few lines for people: counts, then the failed molecules and why."""
        lines = [
            f"{self.level}: {self.total} molecules: {self.reused} already in the database, "
            f"{self.cached} from the cache, {self.computed} computed, {len(self.failures)} "
            f"failed ({self.seconds:.1f} s)"
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

    Args:
        db: the molecules (charges and multiplicities are taken from it).
        level: "method/basis", case-insensitive ("HF/STO-3G", "B3LYP/6-31G*", "CCSD(T)/cc-pVTZ").
        forces: False; True or "analytic" for analytic gradients; "numerical" for central finite
            differences (6N + 1 energies per molecule).
        workers: parallel calculations (default: one per core; 1 computes in this process).
        cache: label cache file (default: the shared user cache, see
            :func:`levelup.qm.cache.default_cache_path`), a :class:`LabelCache`, or False for
            none.
        executor: a :class:`levelup.qm.executors.Executor` (e.g. a reused ``ProcessExecutor``)
            or a ``dask.distributed.Client``; overrides ``workers``.
        name: property name for the energies (default: the level, "CISD/cc-pVDZ"); forces go to
            ``forces/<name>``.
        progress: show a progress bar (rate and ETA).
        charge, multiplicity: override the database's values for every molecule.
        threads: PySCF/BLAS threads per worker (default: cores // workers).
        settings: convergence settings (default: PySCF's).

    Raises:
        LevelOfTheoryError: before any calculation, for an unknown method or basis, a basis
            lacking an element, or forces a method cannot give.
    """
    start = time.perf_counter()
    lvl = parse_level(level)
    mode = forces_mode(forces)
    settings = settings or LabelSettings()
    work = _with_overrides(db, charge, multiplicity)
    prop = name or lvl.name
    n = len(work)
    species_rows = [tuple(int(z) for z in work.species[i, : work.n_atoms[i]]) for i in range(n)]
    systems = {(s, int(q), int(m)) for s, q, m in
               zip(species_rows, work.charges, work.multiplicities, strict=True)}
    check_level(lvl, work.elements, forces=mode, max_determinants=settings.fci_max_determinants,
                systems=systems if lvl.family == "fci" else ())

    energies = np.full(n, math.nan)
    forces_out = np.full((n, work.max_atoms, 3), math.nan) if mode != "none" else None
    todo = _reuse_existing(work, prop, lvl, mode, settings, energies, forces_out)
    reused = n - int(todo.sum())

    store, own_cache = open_cache(cache)
    failures: dict[int, str] = {}
    retried: dict[int, str] = {}
    programs: set[str] = set()
    cached = computed = 0
    try:
        keys = {}
        for i in np.flatnonzero(todo):
            a = int(work.n_atoms[i])
            job_key = (f"{lvl.key}|charge={int(work.charges[i])}|mult="
                       f"{int(work.multiplicities[i])}|{settings.result_key()}")
            keys[int(i)] = label_key(job_key, work.species[i, :a], work.coordinates[i, :a])
        hits = store.get_many(list(keys.values()), forces=mode)
        pending: dict[str, list[int]] = {}
        for i, key in keys.items():
            hit = hits.get(key)
            if hit is None:
                pending.setdefault(key, []).append(i)
                continue
            cached += 1
            energies[i] = hit.energy
            if forces_out is not None:
                forces_out[i, : work.n_atoms[i]] = hit.forces
            if hit.program:
                programs.add(hit.program)
        computed = _compute_pending(work, lvl, mode, settings, species_rows, pending, store,
                                    executor, workers, threads, progress, n - _count(pending),
                                    energies, forces_out, failures, retried, programs)
    finally:
        if own_cache:
            store.close()

    out = work.copy()
    spec = _spec(lvl, mode, settings, programs, len(failures))
    out.set(prop, energies, unit=ENERGY, level=lvl.name, spec=spec)
    if forces_out is not None:
        out.set(f"forces/{prop}", forces_out, unit=FORCE, level=lvl.name, spec=spec)
    report = LabelReport(level=lvl.name, name=prop, total=n, reused=reused, cached=cached,
                         computed=computed, failures=failures, retried=retried,
                         seconds=time.perf_counter() - start)
    return out, report


def _count(pending: dict[str, list[int]]) -> int:
    return sum(len(v) for v in pending.values())


def _compute_pending(work: Database, lvl: Level, mode: str, settings: LabelSettings,
                     species_rows, pending: dict[str, list[int]], store: LabelCache, executor,
                     workers, threads, progress: bool, already: int, energies: np.ndarray,
                     forces_out: np.ndarray | None, failures: dict[int, str],
                     retried: dict[int, str], programs: set[str]) -> int:
    """Run the pending calculations, committing each to the cache as it finishes."""
    if not pending:
        return 0
    import pyscf
    from tqdm.auto import tqdm

    program = f"PySCF {pyscf.__version__}"
    task_keys = list(pending)
    tasks = []
    for key in task_keys:
        i = pending[key][0]
        a = int(work.n_atoms[i])
        job = Job(lvl, species_rows[i], int(work.charges[i]), int(work.multiplicities[i]), mode,
                  settings)
        tasks.append((job, work.coordinates[i, :a].copy()))
    runner, own = make_executor(executor, workers, len(tasks), threads)
    computed = 0
    bar = tqdm(total=len(work), initial=already, desc=lvl.name, unit="mol", disable=not progress,
               dynamic_ncols=True, smoothing=0.05)
    results = runner.map(tasks)
    try:
        for t, outcome in results:
            key = task_keys[t]
            indices = pending[key]
            if outcome.ok:
                store.put(key, lvl.name, outcome.energy, outcome.forces,
                          forces_method=mode if outcome.forces is not None else None,
                          n_atoms=len(tasks[t][1]), seconds=outcome.seconds, program=program)
                programs.add(program)
                for i in indices:
                    energies[i] = outcome.energy
                    if forces_out is not None and outcome.forces is not None:
                        forces_out[i, : work.n_atoms[i]] = outcome.forces
                    if outcome.note:
                        retried[i] = outcome.note
                computed += len(indices)
            else:
                store.put_failure(key, lvl.name, outcome.error or "unknown failure")
                for i in indices:
                    failures[i] = outcome.error or "unknown failure"
            bar.update(len(indices))
    finally:
        results.close()  # at once, not when the garbage collector gets to it: frees the pool
        bar.close()
        if own:
            runner.close()
    return computed


def _with_overrides(db: Database, charge: int | None, multiplicity: int | None) -> Database:
    if charge is None and multiplicity is None:
        return db
    charges = db.charges if charge is None else np.full(len(db), int(charge))
    mults = db.multiplicities if multiplicity is None else np.full(len(db), int(multiplicity))
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

    from .. import __version__

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
