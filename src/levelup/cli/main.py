"""Entry point of the ``levelup`` command: parses arguments, runs one subcommand, and turns
library errors into one line ``levelup: error: ...`` with a non-zero exit code."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import LevelupError

_NOT_SUBCOMMANDS = {"main", "common"}


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
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    package = importlib.import_module(__package__)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name in _NOT_SUBCOMMANDS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__package__}.{info.name}")
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``levelup`` with ``argv`` (default: sys.argv[1:]); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("levelup: interrupted", file=sys.stderr)
        return 130
    except (LevelupError, OSError) as exc:
        if args.traceback:
            raise
        message = " ".join(str(exc).split())
        print(f"levelup: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
