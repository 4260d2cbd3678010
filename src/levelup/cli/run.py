"""``levelup run STUDY.toml``: a whole transfer-learning study from one file: geometries, the low
and the high level, which geometries get the high level, model and training settings, the
comparisons (transfer, scratch, delta) and the run folder (figures, metrics.json, report.md).

A re-run reuses every label and every model of the run folder that is still valid and redoes
only what changed: each model is stored under a hash of what determines it (data, labels,
settings, seed, its parent model), so changing e.g. the [transfer] recipe retrains the transfer
model only. Relative paths in the study file are relative to its folder. See
levelup.study.schema for every table and key; an unknown key is an error that lists the valid ones.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from levelup.cli.common import input_file, output_folder, read_database
from levelup.errors import ConfigError

EXAMPLE = """examples:
  levelup run examples/h2_tutorial.toml
  levelup run study.toml --out runs/try2 --cache labels.sqlite
  levelup run study.toml --check        # read and check the file, run nothing

a small study file:
  seed = 0
  compare = ["transfer", "scratch", "delta"]
  [geometries]
  source = "scan"
  structure = "h2.xyz"
  bond = [0, 1]
  from = 0.5
  to = 3.0
  step = 0.05
  [levels]
  low = "HF/STO-3G"
  high = "CISD/cc-pVDZ"
  [selection]
  method = "every"
  step = 5
  validation_every = 4
  [transfer]
  epochs = 1000
  [output]
  folder = "runs/h2"
  regions = { all = [-inf, inf], bound = [0.5, 2.0] }"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``levelup run`` on the CLI's subcommand parser."""
    p = sub.add_parser("run", help="run a whole study from a TOML file (reusing what is done)",
                       description=__doc__, epilog=EXAMPLE,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("study", help="the study file (TOML)")
    p.add_argument("--out", help="run folder (default: [output] folder of the study file)")
    p.add_argument("--cache", help="label cache file (default: [levels] cache, else the user "
                   "cache)")
    p.add_argument("--check", action="store_true", help="only read and check the study file")
    p.set_defaults(func=run)


def check_study(study, out: str | None, cache: str | None) -> None:
    """What --check adds to reading the file, and every run does before any work: the levels
    parse (PySCF knows the method and the basis), every file the study names exists, and the run
    folder can be written."""
    from levelup.qm.levels import check_level, parse_level

    g = study.geometries
    levels = [parse_level(lv) for lv in (study.levels.low, study.levels.high, g.hessian_level)
              if lv is not None]
    named = {"[geometries] structure": g.structure, "[geometries] path": g.path,
             "[geometries] hessian_model": g.hessian_model}
    for what, path in named.items():
        if path is not None:
            input_file(path, what)
    molecules = g.structure or g.path
    elements = read_database(molecules).elements if molecules is not None else [1]
    for level in levels:
        check_level(level, elements)  # a basis that lacks an element
    for what, path in (("[levels] cache", study.levels.cache), ("--cache", cache)):
        if path is not None and Path(path).is_dir():
            raise ConfigError(f"{what} {path} is a folder: give a file, e.g. "
                              f"{Path(path) / 'labels.sqlite'}")
    output_folder(out if out is not None else study.output.folder,
                  "--out" if out is not None else "[output] folder")


def run(args: argparse.Namespace) -> int:
    """Check (``--check``) or run a study file with its step cache; print where the report is."""
    from levelup.study.reader import read_study

    study = read_study(input_file(args.study, "study file"))
    check_study(study, args.out, args.cache)
    if args.check:
        print(f"{args.study}: OK: {study.title!r}; geometries {study.geometries.source}, "
              f"{study.levels.low} -> {study.levels.high}, selection {study.selection.method}, "
              f"compare {', '.join(study.compare)}; run folder {args.out or study.output.folder}")
        return 0
    from levelup.study.runner import run_study

    quiet = getattr(args, "quiet", False)
    result = run_study(study, args.out, cache=args.cache, progress=not quiet, log=print)
    reused = result.reused
    print(f"{study.title}: {len(reused)} of {len(result.steps)} steps reused"
          f"{' (' + ', '.join(reused) + ')' if reused else ''} -> {result.report}")
    models = result.metrics.get("models", {})
    regions = [r for r, *_ in study.output.regions]
    head = "".join(f"{r[:12]:>13s}" for r in regions)
    print(f"{'RMSE, kcal/mol':34s}{head}")
    for name, row in models.items():
        cells = "".join(_cell(row.get(f"rmse_{r}_kcalmol")) for r in regions)
        print(f"{name[:34]:34s}{cells}")
    print_properties(result.folder / "properties.json")
    return 0


def print_properties(path: Path) -> None:
    """The run's [properties] differences from the high level, one line per source (nothing
    when the study asked for no properties); the full tables are in the report."""
    import json

    if not path.is_file():
        return
    data = json.loads(path.read_text())
    labels, rows = data.get("labels", {}), data.get("differences", {})
    if not rows:
        return
    high = data.get("levels", {}).get("high", "the high level")
    print(f"properties: largest differences from {high} (report.md has the tables)")
    print(f"{'source':34s}{'|dw| cm-1':>13s}{'|dbond| A':>13s}{'|dangle| deg':>13s}"
          f"{'|dE| kcal/mol':>14s}")
    for key, row in rows.items():
        energies = list(row.get("abs_energy_kcal_per_mol", {}).values())
        print(f"{labels.get(key, key)[:34]:34s}{_cell(row.get('max_abs_wavenumber_cm-1'), 1)}"
              f"{_cell(row.get('max_abs_bond_angstrom'), 4)}"
              f"{_cell(row.get('max_abs_angle_degrees'), 2)}"
              f" {_cell(max(energies) if energies else None, 3)}")


def _cell(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{'-':>13s}"
    return f"{value:13.{digits}f}"
