"""The executor interface and the simplest executor: :class:`Executor` (``map`` yields
``(task index, Outcome)`` pairs as calculations finish, so that the caller can commit each label
the moment it exists), :class:`SerialExecutor` (this process, one molecule after another), and
what every executor needs to know about the machine: the cores it may use and how to keep
PySCF's OpenMP and numpy's BLAS to a number of threads.

Getting the thread count right matters even for one worker: PySCF on H2 with two OpenMP threads
on a busy two-core machine ran 40 times slower than with one. The local pool is in
:mod:`levelup.qm.pool`, Dask in :mod:`levelup.qm.daskexecutor`, the choice between them in
:mod:`levelup.qm.executors`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence

import numpy as np

from levelup.errors import LevelupError
from levelup.qm.calculators import Job, Outcome, compute

Task = tuple[Job, np.ndarray]  # what to compute, and coordinates (atoms, 3) in Angstrom


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def cap_workers(workers: int | None) -> int | None:
    """``workers`` capped at :func:`available_cores` (more workers than cores only slow PySCF
    down), saying so in one line on the logger "levelup" when it caps; None stays None."""
    if workers is None:
        return None
    if int(workers) < 1:
        raise LevelupError(f"workers must be at least 1; got {workers}")
    cores = available_cores()
    if int(workers) > cores:
        logging.getLogger("levelup").warning(
            "workers=%d is more than the %d cores available to this process; using %d workers "
            "(more would only slow the calculations down)", int(workers), cores, cores)
        return cores
    return int(workers)


@contextlib.contextmanager
def limited_threads(threads: int | None) -> Iterator[None]:
    """Run the body with at most ``threads`` OpenMP (PySCF) and BLAS threads; restore after."""
    if threads is None:
        yield
        return
    from pyscf import lib

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it numpy's BLAS keeps its own thread count
        threadpool_limits = None
    before = lib.num_threads()  # OpenMP's setting is per thread: this thread's
    lib.num_threads(threads)
    try:
        with threadpool_limits(limits=threads) if threadpool_limits else contextlib.nullcontext():
            yield
    finally:
        lib.num_threads(before)


class Executor:
    """Runs tasks; subclasses decide where."""

    #: Number of calculations that run at once.
    workers: int = 1

    def map(self, tasks: Sequence[Task]) -> Iterator[tuple[int, Outcome]]:
        """Yield ``(index into tasks, outcome)`` for every task, in the order they finish."""
        raise NotImplementedError

    def close(self) -> None:
        """Release workers (a no-op where there are none)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SerialExecutor(Executor):
    """Computes in this process, one molecule after another.

    Args:
        threads: PySCF/BLAS threads while computing (None: leave the process's setting).
    """

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads
        self.workers = 1

    def map(self, tasks: Sequence[Task]) -> Iterator[tuple[int, Outcome]]:
        """Yield ``(index into tasks, outcome)`` for every task, in order, computed here."""
        with limited_threads(self.threads):
            for i, (job, xyz) in enumerate(tasks):
                yield i, compute(job, xyz)
