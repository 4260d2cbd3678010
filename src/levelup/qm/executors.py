"""Where calculations run: in this process, in local worker processes, or on a Dask cluster.
All yield ``(task index, Outcome)`` pairs as calculations finish, so that the caller can commit
each label the moment it exists.

The local pool never oversubscribes the machine: workers x threads per worker <= cores. Worker
subprocesses get their OpenMP and BLAS thread counts in the environment before anything loads;
the worker thread in the calling process sets its own OpenMP count (``pyscf.lib.num_threads``,
a per-thread setting), and numpy's BLAS is limited for the run when ``threadpoolctl`` is
installed. Getting this right matters even for one worker: PySCF on H2 with two OpenMP threads
on a busy two-core machine ran 40 times slower than with one.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
from collections import deque
from collections.abc import Iterator, Sequence
from multiprocessing.connection import wait

import numpy as np

from ..errors import LevelupError
from .calculators import Job, Outcome, compute, compute_many

Task = tuple[Job, np.ndarray]  # what to compute, and coordinates (atoms, 3) in Angstrom


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


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
        with limited_threads(self.threads):
            for i, (job, xyz) in enumerate(tasks):
                yield i, compute(job, xyz)


# ------------------------------------------------------------------------------ local pool
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                     "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


class _ProcessWorker:
    """A worker subprocess (see :mod:`levelup.qm.worker`) and its two pipes."""

    def __init__(self, threads: int, idle: float | None) -> None:
        import json
        import subprocess
        import sys
        from multiprocessing.connection import Connection

        from .. import __path__ as levelup_path
        from .worker import BOOTSTRAP

        task_r, task_w = os.pipe()
        result_r, result_w = os.pipe()
        env = dict(os.environ)
        env.update({name: str(threads) for name in _THREAD_VARIABLES})
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", BOOTSTRAP, json.dumps(sys.path), list(levelup_path)[0],
                 str(task_r), str(result_w), str(threads), str(idle or 0)],
                pass_fds=(task_r, result_w), env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, close_fds=True)
        finally:
            os.close(task_r)
            os.close(result_w)
        self.tasks = Connection(task_w, readable=False)
        self.results = Connection(result_r, writable=False)
        self.inflight: deque[int] = deque()

    def stop(self, kill: bool = False, timeout: float = 5.0) -> None:
        import subprocess

        if not kill:
            with contextlib.suppress(OSError):
                self.tasks.send(None)
        self.tasks.close()
        if kill:
            self.process.kill()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.results.close()

    def alive(self) -> bool:
        return self.process.poll() is None

    def describe_death(self) -> str:
        code = self.process.poll()
        return f"exit code {code}" if code is not None else "pipe closed"


class _ThreadWorker:
    """A worker thread in this process: computes while the main thread waits on results."""

    def __init__(self, threads: int, idle: float | None) -> None:
        import threading

        self.tasks, their_tasks = mp.Pipe(duplex=False)[::-1]
        their_results, self.results = mp.Pipe(duplex=False)[::-1]
        self.thread = threading.Thread(target=_serve_thread,
                                       args=(their_tasks, their_results, threads, idle),
                                       name="levelup-label-worker", daemon=True)
        self.thread.start()
        self.inflight: deque[int] = deque()

    def stop(self, kill: bool = False, timeout: float = 5.0) -> None:
        with contextlib.suppress(OSError):
            self.tasks.send(None)
        if not kill:
            self.thread.join(timeout)
        self.tasks.close()

    def alive(self) -> bool:
        return self.thread.is_alive()

    def describe_death(self) -> str:
        return "worker thread stopped"


def _serve_thread(tasks, results, threads: int, idle: float | None) -> None:
    from pyscf import lib

    from .worker import serve

    # OpenMP's thread count is per calling thread: a new thread starts with all cores, and
    # many tiny parallel regions on a busy machine then crawl (measured 40x slower on H2).
    lib.num_threads(threads)
    try:
        serve(tasks, results, idle)
    finally:
        results.close()
        tasks.close()


class ProcessExecutor(Executor):
    """Local parallel workers: one thread in this process plus ``workers - 1`` subprocesses.

    The thread starts computing at once while the subprocesses start (about a second: Python
    and PySCF imports); work is handed out one molecule at a time, so fast workers take more.
    The workers are kept until :meth:`close` or until they have been idle for ``idle``
    seconds (then the next :meth:`map` starts fresh ones), and keep their PySCF set-up between
    molecules.

    Args:
        workers: parallel calculations (default: one per core).
        threads: OpenMP/BLAS threads per worker (default: cores // workers, at least 1).
        queued: seconds of work kept queued at each worker beyond the task it computes, so
            that it never waits for this process: at least one task, at most ``max_queued``
            (many for millisecond tasks, one for long ones, so the last tasks spread evenly).
        max_queued: the most tasks queued per worker.
        idle: seconds a worker waits for work before it exits (None: until :meth:`close`).
    """

    def __init__(self, workers: int | None = None, threads: int | None = None,
                 queued: float = 0.05, max_queued: int = 8, idle: float | None = None) -> None:
        cores = available_cores()
        self.workers = int(workers or cores)
        if self.workers < 1:
            raise LevelupError(f"workers must be at least 1; got {workers}")
        self.threads = int(threads or max(1, cores // self.workers))
        self.queued = queued
        self.max_queued = max_queued
        self.idle = idle
        self._task_seconds: float | None = None  # running mean duration of a task
        self.busy = False
        self._pool: list = []

    def start(self) -> None:
        """Start the workers now rather than at the first :meth:`map` (and replace any that
        exited after being idle)."""
        if os.name == "nt":  # pragma: no cover - pipes to subprocesses need POSIX fd passing
            raise LevelupError("the local worker pool needs Linux or macOS; use workers=1 or "
                               "a Dask client on Windows")
        for worker in [w for w in self._pool if not w.alive()]:
            self._pool.remove(worker)
            worker.stop(kill=True, timeout=1.0)
        if not any(isinstance(w, _ThreadWorker) for w in self._pool):
            self._pool.insert(0, _ThreadWorker(self.threads, self.idle))
        while len(self._pool) < self.workers:
            self._pool.append(_ProcessWorker(self.threads, self.idle))

    def map(self, tasks: Sequence[Task]) -> Iterator[tuple[int, Outcome]]:
        self.start()
        queue = deque(range(len(tasks)))
        deaths: dict[int, int] = {}
        done = 0
        clean = False
        self.busy = True
        try:
            with limited_threads(self.threads):  # for the worker thread in this process
                for worker in self._pool:
                    self._fill(worker, queue, tasks)
                while done < len(tasks):
                    by_conn = {w.results: w for w in self._pool}
                    for ready in wait(list(by_conn)):
                        worker = by_conn[ready]
                        try:
                            task_id, outcome = worker.results.recv()
                        except (EOFError, OSError):
                            for task_id, outcome in self._replace(worker, queue, deaths):
                                done += 1
                                yield task_id, outcome
                            continue
                        worker.inflight.remove(task_id)
                        done += 1
                        self._observe(outcome.seconds)
                        yield task_id, outcome
                        self._fill(worker, queue, tasks)
                    for worker in self._pool:
                        self._fill(worker, queue, tasks)
            clean = True
        finally:
            self.busy = False
            if not clean:  # interrupted or abandoned: stop the work in progress
                self.close(kill=True)

    def _replace(self, worker, queue: deque, deaths: dict[int, int]):
        """A worker died (out of memory, killed, crashed in native code): give its molecules
        one more try on a fresh worker, then report them as failed."""
        why = worker.describe_death()
        self._pool.remove(worker)
        worker.stop(kill=True)
        self._pool.append(_ThreadWorker(self.threads, self.idle)
                          if isinstance(worker, _ThreadWorker)
                          else _ProcessWorker(self.threads, self.idle))
        for task_id in reversed(worker.inflight):
            deaths[task_id] = deaths.get(task_id, 0) + 1
            if deaths[task_id] >= 2:
                yield task_id, Outcome(float("nan"), error=f"the worker died twice while "
                                       f"computing this molecule ({why}; out of memory?)")
            else:
                queue.appendleft(task_id)

    def _observe(self, seconds: float) -> None:
        mean = self._task_seconds
        self._task_seconds = seconds if mean is None else 0.9 * mean + 0.1 * seconds

    def _depth(self) -> int:
        """Tasks to queue per worker beyond the one it computes."""
        if self._task_seconds is None:
            return 1
        return int(min(self.max_queued, max(1, self.queued / max(self._task_seconds, 1e-6))))

    def _fill(self, worker, queue: deque, tasks: Sequence[Task]) -> None:
        depth = self._depth()
        while queue and len(worker.inflight) <= depth:
            task_id = queue.popleft()
            job, xyz = tasks[task_id]
            worker.tasks.send((task_id, job, np.asarray(xyz, dtype=np.float64)))
            worker.inflight.append(task_id)

    def close(self, kill: bool = False) -> None:
        """Stop the workers (at once, abandoning work in progress, with ``kill``)."""
        pool, self._pool = self._pool, []
        for worker in pool:
            worker.stop(kill=kill or bool(worker.inflight))


# ------------------------------------------------------------------------------------ Dask
class DaskExecutor(Executor):
    """Runs tasks on a Dask distributed cluster through ``client``.

    Molecules are sent in chunks of one kind (``chunk_size`` of them, default: enough for about
    four chunks per Dask thread, at most 32), each chunk a Dask task; labels are committed as
    each chunk comes back. Each Dask thread runs PySCF on ``threads`` OpenMP threads (Dask's
    model: one task per core).

    Args:
        client: a ``dask.distributed.Client``.
        chunk_size: molecules per Dask task.
        threads: OpenMP threads per Dask task (None leaves the workers' setting).
    """

    def __init__(self, client, chunk_size: int | None = None, threads: int | None = 1) -> None:
        self.client = client
        self.chunk_size = chunk_size
        self.threads = threads
        try:
            threads = sum(client.nthreads().values())
        except Exception:  # noqa: BLE001 - an unusual client: assume one thread
            threads = 1
        self.workers = max(1, int(threads))

    def map(self, tasks: Sequence[Task]) -> Iterator[tuple[int, Outcome]]:
        from distributed import as_completed

        size = self.chunk_size or max(1, min(32, len(tasks) // (4 * self.workers) or 1))
        chunks: list[tuple[Job, list[int]]] = []
        for i, (job, _) in enumerate(tasks):
            if chunks and chunks[-1][0] == job and len(chunks[-1][1]) < size:
                chunks[-1][1].append(i)
            else:
                chunks.append((job, [i]))
        futures = {}
        for job, ids in chunks:
            coords = [np.asarray(tasks[i][1], dtype=np.float64) for i in ids]
            future = self.client.submit(compute_many, job, coords, self.threads, pure=False)
            futures[future] = ids
        try:
            for future in as_completed(futures):
                ids = futures[future]
                try:
                    outcomes = future.result()
                except Exception as exc:  # noqa: BLE001 - a lost worker, a pickling error
                    outcomes = [Outcome(float("nan"), error=f"Dask task failed: "
                                        f"{type(exc).__name__}: {exc}") for _ in ids]
                yield from zip(ids, outcomes, strict=True)
        finally:
            for future in futures:
                if not future.done():
                    future.cancel()


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
    :func:`shared_pool`; default one worker per core, never more workers than tasks), with
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
    for name, value in (("workers", workers), ("threads", threads)):
        if value is not None and int(value) < 1:
            raise LevelupError(f"{name} must be at least 1; got {value}")
    cores = available_cores()
    n = min(int(workers or cores), max(1, n_tasks))
    if n <= 1:
        return SerialExecutor(threads=threads), True
    threads = threads or max(1, cores // n)
    pool = shared_pool(n, threads)
    if pool is None:
        return ProcessExecutor(workers=n, threads=threads), True
    return pool, False
