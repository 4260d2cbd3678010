"""One labelling run of :func:`levelup.qm.label`: cache look-ups, claims, calculations and
waiting for the labels that another run on the same cache computes."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from levelup.data import Database
from levelup.progress import progress_bar
from levelup.qm import claims as claims_module
from levelup.qm.cache import LabelCache, label_key
from levelup.qm.calculators import Job, Outcome
from levelup.qm.claims import Claim, Claims, describe
from levelup.qm.executors import make_executor
from levelup.qm.levels import Level
from levelup.qm.settings import LabelSettings


@dataclass
class Run:
    """One labelling run: what to compute, where, and what came out (``energies`` and
    ``forces_out``, Hartree and Hartree/Angstrom, are filled in place; the counts are
    molecules)."""

    work: Database
    lvl: Level
    mode: str
    settings: LabelSettings
    species_rows: list[tuple[int, ...]]
    store: LabelCache
    energies: np.ndarray
    forces_out: np.ndarray | None
    executor: Any
    workers: int | None
    threads: int | None
    progress: bool
    failures: dict[int, str] = field(default_factory=dict)
    retried: dict[int, str] = field(default_factory=dict)
    programs: set[str] = field(default_factory=set)
    cached: int = 0
    computed: int = 0
    waited: int = 0
    bar: Any = None

    def label(self, todo: np.ndarray, since: float) -> None:
        """Label the molecules of ``todo``: from the cache, computed under this run's claims,
        or waited for from other runs (whose failures recorded after ``since``, seconds since
        the epoch, are taken as this run's)."""
        pending: dict[str, list[int]] = {}
        for i in np.flatnonzero(todo):
            a = int(self.work.n_atoms[i])
            job_key = (f"{self.lvl.key}|charge={int(self.work.charges[i])}|mult="
                       f"{int(self.work.multiplicities[i])}|{self.settings.result_key()}")
            key = label_key(job_key, self.work.species[i, :a], self.work.coordinates[i, :a])
            pending.setdefault(key, []).append(int(i))
        self.cached += self.use_cached(pending)
        if not pending:
            return
        self.bar = progress_bar(total=len(self.work), initial=len(self.work) - _count(pending),
                                desc=self.lvl.name, unit="mol", enabled=self.progress,
                                smoothing=0.05)
        with Claims(self.store.path) as claims:
            others = claims.claim(pending)
            mine = {k: v for k, v in pending.items() if k not in others}
            self.cached += self.use_cached(mine)  # committed by another run before our claim
            self.compute(mine)
            self.wait_for({k: pending[k] for k in others}, others, claims, since)

    def use_cached(self, pending: dict[str, list[int]]) -> int:
        """Fill the labels of ``pending`` (key -> molecule indices) that the cache holds and
        remove them from it; return how many molecules got one."""
        if not pending:
            return 0
        done = 0
        for key, hit in self.store.get_many(list(pending), forces=self.mode).items():
            indices = pending.pop(key)
            self._fill(indices, hit.energy, hit.forces, hit.program)
            done += len(indices)
        if self.bar is not None:
            self.bar.update(done)
        return done

    def _fill(self, indices: list[int], energy: float, forces: np.ndarray | None,
              program: str | None) -> None:
        for i in indices:
            self.energies[i] = energy
            if self.forces_out is not None and forces is not None:
                self.forces_out[i, : self.work.n_atoms[i]] = forces
        if program:
            self.programs.add(program)

    def compute(self, pending: dict[str, list[int]]) -> None:
        """Run the calculations of ``pending`` (claimed by this run), committing each to the
        cache as it finishes (which removes its claim)."""
        if not pending:
            return
        import pyscf

        program = f"PySCF {pyscf.__version__}"
        task_keys = list(pending)
        tasks = []
        for key in task_keys:
            i = pending[key][0]
            job = Job(self.lvl, self.species_rows[i], int(self.work.charges[i]),
                      int(self.work.multiplicities[i]), self.mode, self.settings)
            tasks.append((job, self.work.coordinates[i, : int(self.work.n_atoms[i])].copy()))
        runner, own = make_executor(self.executor, self.workers, len(tasks), self.threads)
        results = runner.map(tasks)
        try:
            for t, outcome in results:
                self._commit(task_keys[t], pending[task_keys[t]], outcome, len(tasks[t][1]),
                             program)
        finally:
            results.close()  # at once, not when the garbage collector gets to it: frees the pool
            if own:
                runner.close()

    def _commit(self, key: str, indices: list[int], outcome: Outcome, n_atoms: int, program: str) -> None:
        """Store one outcome in the cache and in this run's arrays."""
        if outcome.ok:
            self.store.put(key, self.lvl.name, outcome.energy, outcome.forces,
                           forces_method=self.mode if outcome.forces is not None else None,
                           n_atoms=n_atoms, seconds=outcome.seconds, program=program)
            self._fill(indices, outcome.energy, outcome.forces, program)
            self.retried.update({i: outcome.note for i in indices if outcome.note})
            self.computed += len(indices)
        else:
            reason = outcome.error or "unknown failure"
            self.store.put_failure(key, self.lvl.name, reason)
            self.failures.update({i: reason for i in indices})
        self.bar.update(len(indices))

    def wait_for(self, waiting: dict[str, list[int]], others: dict[str, Claim], claims: Claims,
                 since: float) -> None:
        """Wait for the labels of ``waiting`` that other runs claimed (``others``), polling the
        cache; take over, and compute, those whose claim expires or is released unfinished."""
        if not waiting:
            return
        logging.getLogger("levelup").info("waiting for %d labels being computed by %s",
                                          _count(waiting), describe(others.values()))
        while waiting:
            n = _count(waiting)
            self.bar.set_description(f"waiting for {n} label{'s' if n > 1 else ''} being "
                                     f"computed by {describe(others.values())}")
            time.sleep(claims_module.POLL_SECONDS)
            self.waited += self.use_cached(waiting)
            for key, reason in self.store.failures(list(waiting), since=since).items():
                self.failures.update({i: reason for i in waiting[key]})
                self.bar.update(len(waiting.pop(key)))
            others = claims.claim(waiting)
            taken = {k: v for k, v in waiting.items() if k not in others}
            if taken:
                waiting = {k: v for k, v in waiting.items() if k in others}
                self.bar.set_description(self.lvl.name)
                self.waited += self.use_cached(taken)  # finished just before we looked
                self.compute(taken)
        self.bar.set_description(self.lvl.name)

    def close(self) -> None:
        """Close the progress bar."""
        if self.bar is not None:
            self.bar.close()


def _count(pending: dict[str, list[int]]) -> int:
    return sum(len(v) for v in pending.values())
