"""Entry point of the ``levelup`` command: parses arguments, runs one subcommand, and turns
library errors into one line ``levelup: error: ...`` with a non-zero exit code.

Exit codes: 0 success; 1 an error (one line on stderr); 2 a usage error (argparse); 130
interrupted, by Ctrl-C (SIGINT) or by SIGTERM: while :func:`main` runs, SIGTERM raises
KeyboardInterrupt as Ctrl-C does, so the same cleanup runs (``levelup train`` writes the best
model so far) and the same line ``levelup: interrupted ...`` is printed; 141 stdout was closed
early (``levelup info db.h5 | head``): levelup stops quietly, as tools killed by SIGPIPE do.

Messages: the library logs through the ``levelup`` logger, which :func:`main` sends to stderr
(warnings by default, ``-v`` adds what levelup is doing, ``-vv`` details); ``-q`` turns the
progress bars off.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import pkgutil
import select
import signal
import sys
import threading
from collections.abc import Iterator, Sequence

from levelup._version import __version__
from levelup.errors import LevelupError

_NOT_SUBCOMMANDS = {"main", "common"}
#: exit code after Ctrl-C or SIGTERM (128 + SIGINT)
EXIT_INTERRUPTED = 130
#: exit code when stdout was closed early (128 + SIGPIPE)
EXIT_BROKEN_PIPE = 141


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand module of ``levelup.cli`` registered."""
    parser = argparse.ArgumentParser(
        prog="levelup",
        description="Transfer learning of ANI potentials from cheap to expensive quantum "
        "chemistry. Units: Angstrom, Hartree.",
    )
    parser.add_argument("--version", action="version", version=f"levelup {__version__}")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback on "
                        "errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars (warnings "
                        "and errors still show)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more messages on "
                        "stderr: -v what levelup is doing (INFO), -vv details (DEBUG)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    package = importlib.import_module(__package__)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name in _NOT_SUBCOMMANDS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__package__}.{info.name}")
        module.add_parser(sub)
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Inside, SIGTERM raises KeyboardInterrupt as Ctrl-C does (only in the main thread, where
    Python runs signal handlers); the previous handler is restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stdout_broken() -> bool:
    """True when stdout is a pipe whose reader is gone (so a BrokenPipeError came from it)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    if not hasattr(select, "poll"):  # no way to ask: assume stdout, as Python's docs recipe does
        return True
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


def _silence_stdout() -> None:
    """Point stdout at devnull, so that flushing it at exit raises nothing (Python's docs,
    "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        pass


@contextlib.contextmanager
def log_to_stderr(verbose: int) -> Iterator[None]:
    """Inside, the ``levelup`` logger (and its per-module children) writes its messages to
    stderr, one line each, from WARNING up (``verbose`` 0, also under ``-q``), INFO (1, ``-v``)
    or DEBUG (2 or more, ``-vv``); the logger's previous level is restored after."""
    logger = logging.getLogger("levelup")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    before = logger.level
    logger.setLevel((logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)])
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(before)


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with log_to_stderr(args.verbose):
            return int(args.func(args) or 0)
    except (LevelupError, OSError) as exc:
        if args.traceback or (isinstance(exc, BrokenPipeError) and _stdout_broken()):
            raise
        message = " ".join(str(exc).split())
        print(f"levelup: error: {message}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``levelup`` with ``argv`` (default: sys.argv[1:]); returns the exit code (see the
    module docstring)."""
    with _sigterm_interrupts():
        try:
            try:
                code = _run(argv)
            finally:  # also after --help's SystemExit
                sys.stdout.flush()  # a reader gone while output was buffered shows up here
        except KeyboardInterrupt:
            print("levelup: interrupted", file=sys.stderr)
            code = EXIT_INTERRUPTED
        except BrokenPipeError:
            _silence_stdout()
            code = EXIT_BROKEN_PIPE
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
