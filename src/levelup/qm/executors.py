"""Where calculations run: in this process (:class:`~levelup.qm.serial.SerialExecutor`), in
local worker processes (:class:`~levelup.qm.pool.ProcessExecutor`, by default one process-wide
pool kept between calls) or on a Dask cluster (:class:`~levelup.qm.daskexecutor.DaskExecutor`):
:func:`make_executor` picks one. All yield ``(task index, Outcome)`` pairs as calculations
finish.
"""

from __future__ import annotations

from levelup.errors import LevelupError
from levelup.qm.daskexecutor import DaskExecutor
from levelup.qm.pool import ProcessExecutor
from levelup.qm.serial import Executor, SerialExecutor, available_cores, cap_workers

#: Seconds the default pool's workers wait for the next ``label()`` call before they exit, so
#: that back-to-back calls (HF, then CISD) start the workers once.
SHARED_POOL_IDLE = 60.0
_shared_pools: dict[tuple[int, int], ProcessExecutor] = {}


def shared_pool(workers: int, threads: int) -> ProcessExecutor | None:
    """The process-wide default pool for ``workers`` x ``threads`` (None while it is busy, e.g.
    a label() call in another thread). Its workers exit after ``SHARED_POOL_IDLE`` idle seconds
    and at interpreter exit."""
    import atexit

    key = (workers, threads)
    pool = _shared_pools.get(key)
    if pool is None:
        for other in _shared_pools.values():
            other.close()
        if not _shared_pools:
            atexit.register(_close_shared_pools)
        _shared_pools.clear()
        pool = _shared_pools[key] = ProcessExecutor(workers, threads, idle=SHARED_POOL_IDLE)
    return None if pool.busy else pool


def _close_shared_pools() -> None:
    for pool in _shared_pools.values():
        pool.close()
    _shared_pools.clear()


def make_executor(executor, workers: int | None, n_tasks: int,
                  threads: int | None = None) -> tuple[Executor, bool]:
    """The executor to use and whether the caller owns it (must close it).

    ``executor`` may be an :class:`Executor`, a ``dask.distributed.Client`` or None: then
    ``workers`` decides (1 computes in this process, more use the shared local pool, see
    :func:`shared_pool`; default one worker per core, never more workers than tasks or cores), with
    ``threads`` per worker (default: cores // workers, so that workers x threads never exceeds
    the cores).
    """
    if isinstance(executor, Executor):
        return executor, False
    if executor is not None:
        try:
            from distributed import Client
        except ImportError:
            Client = None
        if Client is not None and isinstance(executor, Client):
            return DaskExecutor(executor, threads=threads or 1), True
        raise LevelupError(f"executor must be a levelup executor or a dask.distributed.Client; "
                           f"got {type(executor).__name__}")
    if threads is not None and int(threads) < 1:
        raise LevelupError(f"threads must be at least 1; got {threads}")
    cores = available_cores()
    n = min(cap_workers(workers) or cores, max(1, n_tasks))
    if n <= 1:
        return SerialExecutor(threads=threads), True
    threads = threads or max(1, cores // n)
    pool = shared_pool(n, threads)
    if pool is None:
        return ProcessExecutor(workers=n, threads=threads), True
    return pool, False
