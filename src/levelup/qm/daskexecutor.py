"""Labelling on a Dask distributed cluster: :class:`DaskExecutor`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from levelup.errors import LevelupError
from levelup.qm.calculators import Outcome, compute_many
from levelup.qm.serial import Executor, Task


class DaskExecutor(Executor):
    """Runs tasks on a Dask distributed cluster through ``client``.

    Each molecule is its own Dask task, and only ``max_in_flight`` of them are submitted at a
    time (default: four per Dask thread): as each finishes, its label is handed to the caller
    (who commits it) and the next molecule is submitted, so the cluster stays busy, finished
    labels never wait for others, and a run that stops early leaves little work behind (the
    scheduler's cost, about a millisecond per task, is small next to any calculation worth a
    cluster). Each Dask thread keeps its PySCF set-up between molecules of one kind and runs
    PySCF on ``threads`` OpenMP threads (Dask's model: one task per core).

    Args:
        client: a ``dask.distributed.Client``.
        max_in_flight: Dask tasks submitted and not yet finished, at most.
        threads: OpenMP threads per Dask task (None leaves the workers' setting).
    """

    def __init__(self, client, max_in_flight: int | None = None, threads: int | None = 1) -> None:
        self.client = client
        self.threads = threads
        try:
            threads = sum(client.nthreads().values())
        except Exception:  # noqa: BLE001 - an unusual client: assume one thread
            threads = 1
        self.workers = max(1, int(threads))
        if max_in_flight is not None and int(max_in_flight) < 1:
            raise LevelupError(f"max_in_flight must be at least 1; got {max_in_flight}")
        self.max_in_flight = int(max_in_flight or 4 * self.workers)

    def map(self, tasks: Sequence[Task]) -> Iterator[tuple[int, Outcome]]:
        """Yield ``(index into tasks, outcome)`` for every task as its Dask task finishes, at
        most ``max_in_flight`` submitted at a time; a failed Dask task is a failed outcome."""
        from distributed import as_completed

        if not len(tasks):
            return
        futures: dict = {}
        following = iter(range(len(tasks)))

        def submit(i: int):
            """Submit task ``i`` and remember which task its future is."""
            job, xyz = tasks[i]
            future = self.client.submit(compute_many, job, [np.asarray(xyz, dtype=np.float64)],
                                        self.threads, pure=False)
            futures[future] = i
            return future

        try:
            running = as_completed([submit(i) for _, i in
                                    zip(range(self.max_in_flight), following, strict=False)])
            for future in running:
                i = futures.pop(future)
                try:
                    outcome = future.result()[0]
                except Exception as exc:  # noqa: BLE001 - a lost worker, a pickling error
                    outcome = Outcome(float("nan"), error=f"Dask task failed: "
                                      f"{type(exc).__name__}: {exc}")
                following_id = next(following, None)
                if following_id is not None:  # before handing this one over: keep them busy
                    running.add(submit(following_id))
                future.release()
                yield i, outcome
        finally:
            for future in futures:
                if not future.done():
                    future.cancel()
