"""The local worker pool, :class:`ProcessExecutor`: one worker thread in this process plus
worker subprocesses (:mod:`levelup.qm.worker`), fed chunks of molecules through pipes.

The pool never oversubscribes the machine: workers x threads per worker <= cores. Worker
subprocesses get their OpenMP and BLAS thread counts in the environment before anything loads;
the worker thread in the calling process sets its own OpenMP count (``pyscf.lib.num_threads``,
a per-thread setting), and numpy's BLAS is limited for the run when ``threadpoolctl`` is
installed.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from levelup.errors import LevelupError
from levelup.qm.calculators import Job, Outcome
from levelup.qm.serial import Executor, Task, available_cores, limited_threads

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                     "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


class _Chunks:
    """The chunks a worker was sent and has not finished, oldest first (it computes them in
    order, so the first task id of the first chunk is the one it is computing)."""

    def __init__(self) -> None:
        self.chunks: deque[deque[int]] = deque()
        self.job_id: int | None = None  # the job of the last chunk sent (the worker keeps it)

    def add(self, task_ids: list[int]) -> None:
        self.chunks.append(deque(task_ids))

    def finished(self, task_id: int) -> None:
        first = self.chunks[0]
        if first[0] == task_id:
            first.popleft()
        else:  # not expected (a worker answers in order); keep the books right regardless
            for chunk in self.chunks:
                if task_id in chunk:
                    chunk.remove(task_id)
                    break
        while self.chunks and not self.chunks[0]:
            self.chunks.popleft()

    @property
    def inflight(self) -> list[int]:
        """Task ids sent and not answered, in the order the worker computes them."""
        return [t for chunk in self.chunks for t in chunk]


class _ProcessWorker(_Chunks):
    """A worker subprocess (see :mod:`levelup.qm.worker`) and its two pipes."""

    def __init__(self, threads: int, idle: float | None) -> None:
        import json
        import subprocess
        import sys
        from multiprocessing.connection import Connection

        from levelup.qm.worker import BOOTSTRAP

        super().__init__()
        package = str(Path(__file__).resolve().parents[1])  # the levelup folder
        task_r, task_w = os.pipe()
        result_r, result_w = os.pipe()
        env = dict(os.environ)
        env.update({name: str(threads) for name in _THREAD_VARIABLES})
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", BOOTSTRAP, json.dumps(sys.path), package,
                 str(task_r), str(result_w), str(threads), str(idle or 0)],
                pass_fds=(task_r, result_w), env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, close_fds=True)
        finally:
            os.close(task_r)
            os.close(result_w)
        self.tasks = Connection(task_w, readable=False)
        self.results = Connection(result_r, writable=False)

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


class _ThreadWorker(_Chunks):
    """A worker thread in this process: computes while the main thread waits on results."""

    def __init__(self, threads: int, idle: float | None) -> None:
        import threading

        super().__init__()
        self.tasks, their_tasks = mp.Pipe(duplex=False)[::-1]
        their_results, self.results = mp.Pipe(duplex=False)[::-1]
        self.thread = threading.Thread(target=_serve_thread,
                                       args=(their_tasks, their_results, threads, idle),
                                       name="levelup-label-worker", daemon=True)
        self.thread.start()

    def stop(self, kill: bool = False, timeout: float = 5.0) -> None:
        """Ask the thread to stop; with ``kill`` (or after ``timeout``) close its pipes too, so
        that it stops after the molecule it computes (its next answer finds no reader)."""
        with contextlib.suppress(OSError):
            self.tasks.send(None)
        if not kill:
            self.thread.join(timeout)
        self.tasks.close()
        self.results.close()

    def alive(self) -> bool:
        return self.thread.is_alive()

    def describe_death(self) -> str:
        return "worker thread stopped"


def _serve_thread(tasks, results, threads: int, idle: float | None) -> None:
    from pyscf import lib

    from levelup.qm.worker import serve

    # OpenMP's thread count is per calling thread: a new thread starts with all cores, and
    # many tiny parallel regions on a busy machine then crawl (measured 40x slower on H2).
    lib.num_threads(threads)
    try:
        serve(tasks, results, idle)
    finally:
        results.close()
        tasks.close()


class _Queues:
    """Tasks not yet sent, grouped by job (kind of molecule and level) in order of first
    appearance, with each job's measured seconds per molecule."""

    def __init__(self, tasks: Sequence[Task]) -> None:
        ids: dict[Job, int] = {}
        self.jobs: list[Job] = []
        self.queues: list[deque[int]] = []
        for i, (job, _) in enumerate(tasks):
            j = ids.get(job)
            if j is None:
                j = ids[job] = len(self.jobs)
                self.jobs.append(job)
                self.queues.append(deque())
            self.queues[j].append(i)
        self.job_of = np.empty(len(tasks), dtype=np.int64)
        for j, queue in enumerate(self.queues):
            self.job_of[list(queue)] = j
        self.seconds: list[float | None] = [None] * len(self.jobs)  # running mean per job
        self.left = len(tasks)

    def observe(self, task_id: int, seconds: float) -> None:
        j = int(self.job_of[task_id])
        mean = self.seconds[j]
        self.seconds[j] = seconds if mean is None else 0.8 * mean + 0.2 * seconds

    def put_back(self, task_id: int) -> None:
        self.queues[int(self.job_of[task_id])].appendleft(task_id)
        self.left += 1

    def take(self, prefer: int | None, size_for) -> tuple[int, list[int]] | None:
        """A chunk (job index, task ids), of the job ``prefer`` when it has tasks left (that
        worker holds its PySCF set-up), else of the first job with tasks left."""
        if not self.left:
            return None
        if prefer is None or prefer >= len(self.queues) or not self.queues[prefer]:
            prefer = next(j for j, q in enumerate(self.queues) if q)
        queue = self.queues[prefer]
        size = min(len(queue), size_for(self.seconds[prefer], self.left))
        chunk = [queue.popleft() for _ in range(size)]
        self.left -= size
        return prefer, chunk


class ProcessExecutor(Executor):
    """Local parallel workers: one thread in this process plus ``workers - 1`` subprocesses.

    The thread starts computing at once while the subprocesses start (about a second: Python
    and PySCF imports). Work goes out in chunks of molecules of one kind, each chunk one small
    message (the job is sent once, then only coordinates), sized from the measured time per
    molecule so that a chunk carries about ``chunk_seconds`` of work (one molecule while
    nothing is measured yet; smaller chunks near the end, so the last molecules spread over all
    workers). Each worker holds at most two chunks (the one it computes and the next, so it
    never waits for this process) and answers once per molecule as each finishes, so every
    label reaches the caller, and the cache, the moment it exists. The workers are kept until
    :meth:`close` or until they have been idle for ``idle`` seconds (then the next :meth:`map`
    starts fresh ones), and keep their PySCF set-up (one ``Mole`` per kind of molecule) between
    molecules and calls.

    Args:
        workers: parallel calculations (default: one per core).
        threads: OpenMP/BLAS threads per worker (default: cores // workers, at least 1).
        chunk_seconds: seconds of work per chunk, from the measured time per molecule.
        max_chunk: the most molecules per chunk.
        chunk_size: molecules per chunk, fixed (None: from ``chunk_seconds``).
        idle: seconds a worker waits for work before it exits (None: until :meth:`close`).
    """

    def __init__(self, workers: int | None = None, threads: int | None = None,
                 chunk_seconds: float = 0.05, max_chunk: int = 64, chunk_size: int | None = None,
                 idle: float | None = None) -> None:
        cores = available_cores()
        self.workers = int(workers or cores)
        if self.workers < 1:
            raise LevelupError(f"workers must be at least 1; got {workers}")
        if chunk_size is not None and int(chunk_size) < 1:
            raise LevelupError(f"chunk_size must be at least 1; got {chunk_size}")
        self.threads = int(threads or max(1, cores // self.workers))
        self.chunk_seconds = float(chunk_seconds)
        self.max_chunk = int(max_chunk)
        self.chunk_size = None if chunk_size is None else int(chunk_size)
        self.idle = idle
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
        """Yield ``(index into tasks, outcome)`` for every task as the workers finish them
        (starting the workers if needed); a worker that dies is replaced and its molecule
        tried once more. Interrupted or abandoned, it stops the work in progress."""
        import selectors

        if not len(tasks):
            return
        self.start()
        queues = _Queues(tasks)
        deaths: dict[int, int] = {}
        done = 0
        clean = False
        self.busy = True
        selector = selectors.DefaultSelector()
        for worker in self._pool:
            worker.job_id = None  # job indices are this call's: send each worker its job again
            selector.register(worker.results, selectors.EVENT_READ, worker)
        try:
            with limited_threads(self.threads):  # for the worker thread in this process
                for worker in self._pool:
                    self._fill(worker, queues, tasks)
                while done < len(tasks):
                    for key, _ in selector.select():
                        worker = key.data
                        try:  # one answer; the selector reports the pipe again if more wait
                            task_id, outcome = worker.results.recv()
                        except (EOFError, OSError):
                            pass
                        else:
                            worker.finished(task_id)
                            queues.observe(task_id, outcome.seconds)
                            done += 1
                            yield task_id, outcome
                            self._fill(worker, queues, tasks)
                            continue
                        dead = worker
                        selector.unregister(dead.results)
                        for task_id, outcome in self._replace(dead, queues, deaths):
                            done += 1
                            yield task_id, outcome
                        fresh = self._pool[-1]
                        selector.register(fresh.results, selectors.EVENT_READ, fresh)
                        for other in self._pool:  # molecules went back to the queue
                            self._fill(other, queues, tasks)
            clean = True
        finally:
            selector.close()
            self.busy = False
            if not clean:  # interrupted or abandoned: stop the work in progress
                self.close(kill=True)

    def _replace(self, worker, queues: _Queues, deaths: dict[int, int]):
        """A worker died (out of memory, killed, crashed in native code): start a fresh one
        (appended to the pool), give the molecule it was computing one more try, then report
        it as failed; the molecules it had not started yet go back to the queue."""
        why = worker.describe_death()
        self._pool.remove(worker)
        worker.stop(kill=True)
        self._pool.append(_ThreadWorker(self.threads, self.idle)
                          if isinstance(worker, _ThreadWorker)
                          else _ProcessWorker(self.threads, self.idle))
        inflight = worker.inflight
        for task_id in reversed(inflight[1:]):
            queues.put_back(task_id)
        if inflight:
            task_id = inflight[0]
            deaths[task_id] = deaths.get(task_id, 0) + 1
            if deaths[task_id] >= 2:
                yield task_id, Outcome(float("nan"), error=f"the worker died twice while "
                                       f"computing this molecule ({why}; out of memory?)")
            else:
                queues.put_back(task_id)

    def _chunk_size(self, seconds: float | None, left: int) -> int:
        """Molecules in the next chunk of a job whose molecules take ``seconds`` each (None:
        not measured yet), with ``left`` molecules not yet sent in all."""
        if self.chunk_size is not None:
            return self.chunk_size
        if seconds is None:
            return 1
        size = int(min(self.max_chunk, max(1, self.chunk_seconds / max(seconds, 1e-6))))
        # near the end, smaller chunks: every worker gets a share of what is left
        return max(1, min(size, left // (2 * len(self._pool))))

    def _fill(self, worker, queues: _Queues, tasks: Sequence[Task]) -> None:
        """Send ``worker`` chunks until it holds two."""
        while len(worker.chunks) < 2:
            taken = queues.take(worker.job_id, self._chunk_size)
            if taken is None:
                return
            j, ids = taken
            coordinates = np.stack([np.asarray(tasks[i][1], dtype=np.float64) for i in ids])
            worker.add(ids)
            job = None if j == worker.job_id else queues.jobs[j]
            worker.job_id = j
            try:
                worker.tasks.send((job, ids, coordinates))
            except OSError:  # it died: its result pipe reports that next, and the chunk is redone
                return

    def close(self, kill: bool = False) -> None:
        """Stop the workers (at once, abandoning work in progress, with ``kill``)."""
        pool, self._pool = self._pool, []
        for worker in pool:
            worker.stop(kill=kill or bool(worker.chunks))
