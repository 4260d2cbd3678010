"""The loop a labelling worker runs: receive a chunk of molecules of one kind, compute them one
after another, and send back each outcome the moment it exists (so that the parent commits every
label as it finishes, even in the middle of a chunk). It runs in a thread of the calling process
or in a worker subprocess.

Protocol. Parent to worker: ``(job or None, task ids, coordinates (k, atoms, 3) Angstrom)``; the
job is sent only when it differs from the previous chunk's (None: the same job again), so a
chunk costs one small message; ``None`` stops the worker. Worker to parent, once per molecule:
``(task id, Outcome)``.

Worker subprocesses are plain ``python -c BOOTSTRAP`` processes talking over two pipes, not
``multiprocessing`` children: nothing re-imports the user's ``__main__`` script (so scripts need
no ``if __name__ == "__main__"`` guard), the thread limits are set in the environment before
numpy and PySCF load, and the bootstrap imports only the modules a calculation needs (not the
whole ``levelup`` package, whose ``__init__`` may pull in torch): start-up is that of PySCF.
A worker exits when its task pipe closes, which also happens when the parent is killed.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

#: Run with ``python -c BOOTSTRAP SYS_PATH_JSON LEVELUP_DIR TASK_FD RESULT_FD THREADS IDLE``.
BOOTSTRAP = r"""
import json, signal, sys, types
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops us
sys.path[:0] = [p for p in json.loads(sys.argv[1]) if p not in sys.path]
for name, folder in (("levelup", sys.argv[2]), ("levelup.qm", sys.argv[2] + "/qm")):
    package = types.ModuleType(name)
    package.__path__ = [folder]
    sys.modules[name] = package
from levelup.qm.worker import main
main(sys.argv[3:])
"""


def serve(tasks, results, idle: float | None = None) -> None:
    """Compute chunks from connection ``tasks`` and send one ``(task id, Outcome)`` per molecule
    to ``results`` as each finishes, until a None message arrives, ``tasks`` closes, the parent
    stops reading (it died), or (with ``idle``) no chunk came for ``idle`` seconds."""
    from levelup.qm.calculators import compute

    job = None
    while True:
        try:
            if idle is not None and not tasks.poll(idle):
                return
            message = tasks.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        new_job, task_ids, coordinates = message
        job = new_job if new_job is not None else job
        for task_id, xyz in zip(task_ids, coordinates, strict=True):
            outcome = compute(job, xyz)
            try:
                results.send((task_id, outcome))
            except OSError:  # the parent is gone: nobody will commit the rest
                return


def main(argv: Sequence[str]) -> None:
    """Entry point of a worker subprocess: ``TASK_FD RESULT_FD THREADS IDLE_SECONDS`` (0: no
    idle limit)."""
    from multiprocessing.connection import Connection

    task_fd, result_fd, threads = (int(a) for a in argv[:3])
    idle = float(argv[3]) or None
    from pyscf import gto, lib, scf  # noqa: F401 - imported now, not in the first calculation

    lib.num_threads(threads)
    tasks = Connection(task_fd, writable=False)
    results = Connection(result_fd, readable=False)
    try:
        serve(tasks, results, idle)
    except KeyboardInterrupt:
        pass
    finally:
        tasks.close()
        results.close()
    sys.exit(0)
