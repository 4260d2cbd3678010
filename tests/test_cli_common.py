"""What every ``levelup`` subcommand promises (issue 6), checked for each one found in the
levelup.cli package, nested ones (``build scan``, ``plot curves``) included: ``--help`` exits 0
and shows an example that parses; bad input gives one line ``levelup: error: ...`` and exit 1;
``--traceback`` gives the full trace instead; ``-v`` and ``-q`` are accepted."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import shlex
import subprocess
import sys

import pytest

import levelup.cli
from levelup.cli.main import build_parser, main
from levelup.errors import LevelupError


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple]:
    """(path, parser) of every subcommand, depth first; ``build`` and ``build scan`` both."""
    out = []
    for name, child in _subparsers(parser).items():
        out.append(((*path, name), child))
        out += _commands(child, (*path, name))
    return out


MODULES = sorted(m.name for m in pkgutil.iter_modules(levelup.cli.__path__)
                 if m.name not in ("main", "common") and not m.name.startswith("_"))
COMMANDS = _commands(build_parser())
PATHS = [path for path, _ in COMMANDS]
LEAVES = [path for path, parser in COMMANDS if not _subparsers(parser)]


def _id(path: tuple[str, ...]) -> str:
    return " ".join(path)


def test_every_module_is_a_subcommand():
    """The enumeration below is the parser's, and it holds every module of levelup.cli."""
    assert MODULES and sorted(p[0] for p in PATHS if len(p) == 1) == MODULES
    for name in MODULES:
        module = importlib.import_module(f"levelup.cli.{name}")
        assert callable(module.add_parser), name


def _examples(epilog: str) -> list[list[str]]:
    """The ``levelup ...`` command lines of a help epilog (backslash continuations joined)."""
    text = epilog.replace("\\\n", " ")
    return [shlex.split(line.strip(), comments=True)[1:] for line in text.splitlines()
            if line.strip().startswith("levelup ")]


@pytest.mark.parametrize("path", PATHS, ids=_id)
def test_help_exits_zero_and_shows_an_example(path, capsys):
    with pytest.raises(SystemExit) as stop:
        main([*path, "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: levelup {' '.join(path)}")
    assert "example" in out.lower()
    assert f"levelup {' '.join(path)} " in out, f"no example of `levelup {_id(path)} ...` in its help"


@pytest.mark.parametrize("path", PATHS, ids=_id)
def test_help_examples_parse(path):
    """Every example in a subcommand's help is a command line the parser takes (it names
    existing flags and gives each the values it needs); a leaf's examples are of that leaf."""
    parser = dict(COMMANDS)[path]
    examples = _examples(parser.epilog or "")
    assert examples, f"`levelup {_id(path)} --help` shows no `levelup ...` example"
    for argv in examples:
        assert tuple(argv[:len(path)]) == path, f"example {argv} is not of `levelup {_id(path)}`"
        args = build_parser().parse_args(argv)
        assert callable(args.func), argv


# One bad input for each command that runs (a missing file, mostly). A new subcommand fails
# test_every_command_has_a_bad_input until it gets a line here.
BAD_INPUTS = {
    ("build", "scan"): ["build", "scan", "{tmp}/missing.xyz", "--bond", "0", "1", "--from", "0.5",
                        "--to", "1", "--step", "0.1", "-o", "{tmp}/x.h5"],
    ("build", "distort"): ["build", "distort", "{tmp}/missing.xyz", "--n", "3", "-o", "{tmp}/x.h5"],
    ("build", "read"): ["build", "read", "{tmp}/missing.xyz", "-o", "{tmp}/x.h5"],
    ("build", "md"): ["build", "md", "{tmp}/missing.xyz", "--level", "HF/STO-3G", "--temperature",
                      "300", "--steps", "10", "--every", "2", "-o", "{tmp}/x.h5"],
    ("build", "neb"): ["build", "neb", "{tmp}/missing.xyz", "{tmp}/missing2.xyz", "--level",
                       "HF/STO-3G", "-o", "{tmp}/x.h5"],
    ("demo",): ["demo", "--cache", "{tmp}/not-a-cache.sqlite", "--out", "{tmp}/demo"],
    ("export",): ["export", "{tmp}/missing.pt", "-o", "{tmp}/x.ts"],
    ("finetune",): ["finetune", "{tmp}/missing.pt", "{tmp}/missing.h5", "-o", "{tmp}/x.pt",
                    "--property", "E"],
    ("info",): ["info", "{tmp}/missing.h5"],
    ("label",): ["label", "{tmp}/missing.h5", "HF/STO-3G", "-o", "{tmp}/x.h5"],
    ("plot", "curves"): ["plot", "curves", "{tmp}/missing.h5", "--properties", "E", "-o",
                         "{tmp}/c.png"],
    ("plot", "errors"): ["plot", "errors", "{tmp}/missing.h5", "--reference", "E", "--predicted",
                         "P", "-o", "{tmp}/e.png"],
    ("plot", "parity"): ["plot", "parity", "{tmp}/missing.h5", "--reference", "E", "--predicted",
                         "P", "-o", "{tmp}/p.png"],
    ("plot", "history"): ["plot", "history", "{tmp}/missing.json", "-o", "{tmp}/h.png"],
    ("predict",): ["predict", "{tmp}/missing.pt", "{tmp}/missing.h5", "-o", "{tmp}/x.h5"],
    ("properties",): ["properties", "{tmp}/missing.xyz", "--level", "HF/STO-3G", "-o",
                      "{tmp}/x.json"],
    ("pretrained",): ["pretrained", "ani-1x", "--download-only", "-o", "{tmp}/x.pt"],
    ("run",): ["run", "{tmp}/missing.toml"],
    ("select",): ["select", "{tmp}/missing.h5", "--budget", "3", "-o", "{tmp}/x.h5"],
    ("train",): ["train", "{tmp}/missing.h5", "-o", "{tmp}/x.pt", "--property", "E"],
}


def _bad(path: tuple[str, ...], tmp_path) -> list[str]:
    (tmp_path / "not-a-cache.sqlite").write_text("not a database\n")
    return [a.replace("{tmp}", str(tmp_path)) for a in BAD_INPUTS[path]]


def test_every_command_has_a_bad_input():
    missing = [_id(p) for p in LEAVES if p not in BAD_INPUTS]
    assert not missing, f"add a bad input for {missing} to BAD_INPUTS"


@pytest.mark.parametrize("path", [p for p in LEAVES if p in BAD_INPUTS], ids=_id)
def test_bad_input_is_one_line_and_traceback_shows_the_rest(path, tmp_path, capsys):
    argv = _bad(path, tmp_path)
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("levelup: error: "), captured.err
    assert captured.err.count("\n") == 1, captured.err
    assert "Traceback" not in captured.err + captured.out
    # --traceback: the error is not caught, so the full trace reaches the user
    with pytest.raises((LevelupError, OSError)) as raised:
        main(["--traceback", *argv])
    assert " ".join(str(raised.value).split()) in captured.err


@pytest.mark.parametrize("flags", [["-v"], ["-vv"], ["-q"], ["--quiet", "-v"]])
def test_verbosity_flags_are_accepted_before_every_command(flags, tmp_path):
    for path in LEAVES:
        args = build_parser().parse_args([*flags, *_bad(path, tmp_path)])
        assert args.verbose == flags.count("-v") + 2 * flags.count("-vv")
        assert args.quiet == ("-q" in flags or "--quiet" in flags)


def test_traceback_reaches_the_terminal_in_a_real_process(tmp_path):
    run = subprocess.run([sys.executable, "-m", "levelup.cli.main", "--traceback", "info",
                          str(tmp_path / "missing.h5")], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode != 0
    assert "Traceback (most recent call last)" in run.stderr
    assert "no such file" in run.stderr
