"""``levelup plot curves|errors|parity|history``: figures from a database or training histories.

Energies in the database are in Hartree; the plots show kcal/mol (relative energies) unless
``--unit Hartree``. OUT names the file: ``out.png``, ``out.svg`` or ``out.pdf`` writes that
format; a name without a suffix (``out``) writes ``out.png`` and ``out.svg``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from levelup.cli.common import input_file, output_file, read_database
from levelup.data import Database
from levelup.elements import symbol
from levelup.errors import ConfigError, DataError
from levelup.units import ENERGY

COORDINATES = {"distance": 2, "angle": 3, "dihedral": 4}
MAX_DPI = 2400
FIGURE_SUFFIXES = (".png", ".svg", ".pdf")

EXAMPLES = {
    "plot": """examples:
  levelup plot curves h2.h5 --properties HF/STO-3G CISD/cc-pVDZ -o curves.png
  levelup plot errors h2.h5 --reference CISD/cc-pVDZ --predicted transfer scratch -o errors
  levelup plot parity h2.h5 --reference CISD/cc-pVDZ --predicted transfer -o parity.png
  levelup plot history pretrain.history.json finetune.history.json -o history.png""",
    "curves": """examples:
  levelup plot curves h2.h5 --properties HF/STO-3G CISD/cc-pVDZ ani -o curves.png
  levelup plot curves h2.h5 --properties CISD/cc-pVDZ ani --points training=train.h5 -o curves
  levelup plot curves water.h5 --x angle:1,0,2 --properties HF/STO-3G --unit Hartree -o scan.svg""",
    "errors": """examples:
  levelup plot errors h2.h5 --reference CISD/cc-pVDZ --predicted transfer scratch -o errors.png
  levelup plot errors h2.h5 --reference CISD/cc-pVDZ --predicted transfer \\
      --region "no training point=0.5:0.9" -o errors.png""",
    "parity": """example:
  levelup plot parity h2.h5 --reference CISD/cc-pVDZ --predicted transfer scratch -o parity.png""",
    "history": """examples:
  levelup plot history model.history.json -o history.png
  levelup plot history pre.json tl.json --labels pre-training transfer --lr -o history.svg""",
}


def _subparser(sub: argparse._SubParsersAction, name: str, help: str, func: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".",
                       epilog=EXAMPLES[name], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=func)
    return p


def _output(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="figure file: .png, .svg or .pdf; without a suffix, both OUT.png and OUT.svg")
    p.add_argument("--title", help="figure title")
    p.add_argument("--dpi", type=float, default=150, help="resolution of PNG files (150)")


def _x_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--x", default="distance:0,1", metavar="COORDINATE",
                   help="scan coordinate on the x axis: distance:I,J (Angstrom), angle:I,J,K or "
                   "dihedral:I,J,K,L (degrees; atoms counted from 0), or index (molecule number); "
                   "default distance:0,1")
    p.add_argument("--xlabel", help="x-axis label (default: from the coordinate)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``levelup plot`` (curves, errors, parity, history) on the CLI's subcommand parser."""
    p = sub.add_parser("plot", help="plot energy curves, errors, parity or training histories",
                       description=__doc__, epilog=EXAMPLES["plot"],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = p.add_subparsers(dest="plot_kind", metavar="KIND", required=True)

    c = _subparser(kinds, "curves", "energies of a database along a scan coordinate", run_curves)
    c.add_argument("database", help="a levelup database (.h5) or any file ASE reads")
    c.add_argument("--properties", nargs="+", required=True, metavar="PROP",
                   help="energy properties (Hartree) to draw, one line each; where the "
                   "database also holds PROP_std (an ensemble's spread, as levelup predict "
                   "writes it), a +-2 sigma band around the line")
    _x_option(c)
    c.add_argument("--points", action="append", default=[], metavar="LABEL=FILE[:PROP]",
                   help="mark the molecules of another database (training points, say) with "
                   "markers: their PROP energies (default: the last of --properties that FILE "
                   "holds); repeatable")
    c.add_argument("--unit", choices=("kcal/mol", "Hartree"), default="kcal/mol",
                   help="kcal/mol (relative energies, default) or Hartree (absolute)")
    c.add_argument("--relative-to", metavar="PROP",
                   help="with kcal/mol: subtract the minimum of this property (default: the first "
                   "of --properties)")
    _output(c)

    e = _subparser(kinds, "errors", "signed errors (kcal/mol) along a scan coordinate", run_errors)
    e.add_argument("database", help="a levelup database (.h5) or any file ASE reads")
    e.add_argument("--reference", required=True, metavar="PROP", help="reference energies (Hartree)")
    e.add_argument("--predicted", nargs="+", required=True, metavar="PROP",
                   help="predicted energies (Hartree), one line each")
    _x_option(e)
    e.add_argument("--region", action="append", default=[], metavar="LABEL=LO:HI",
                   help="shade the span LO <= x <= HI (e.g. where a model extrapolates); repeatable")
    _output(e)

    q = _subparser(kinds, "parity", "predicted against reference energies", run_parity)
    q.add_argument("database", help="a levelup database (.h5) or any file ASE reads")
    q.add_argument("--reference", required=True, metavar="PROP", help="reference energies (Hartree)")
    q.add_argument("--predicted", nargs="+", required=True, metavar="PROP",
                   help="predicted energies (Hartree)")
    q.add_argument("--unit", choices=("kcal/mol", "Hartree"), default="kcal/mol",
                   help="kcal/mol relative to the lowest reference energy (default) or Hartree")
    _output(q)

    h = _subparser(kinds, "history", "training and validation RMSE against epoch", run_history)
    h.add_argument("histories", nargs="+", metavar="HISTORY.json",
                   help="training histories (written by levelup train / History.save)")
    h.add_argument("--labels", nargs="+", metavar="LABEL", help="one legend label per history "
                   "(default: the file names)")
    h.add_argument("--lr", action="store_true", help="also draw the learning rate")
    _output(h)


# ---------------------------------------------------------------------------------- helpers


def _energies(db: Database, name: str, source: str) -> np.ndarray:
    values = db.get(name)  # DataError listing the properties when absent
    info = db.properties[name]
    if info.per_atom or values.ndim != 1:
        raise DataError(f"property {name!r} of {source} holds per-atom values; plot an energy "
                        "property (one value per molecule)")
    if info.unit != ENERGY:
        raise DataError(f"property {name!r} of {source} is in {info.unit}; these plots take "
                        f"energies in {ENERGY}")
    return np.asarray(values, dtype=np.float64)


def _coordinate(db: Database, spec: str) -> tuple[np.ndarray, str]:
    """The x values named by ``spec`` ("distance:0,1", ...) and an axis label."""
    if spec.strip() == "index":
        return np.arange(len(db), dtype=np.float64), "molecule index"
    kind, _, atoms = spec.partition(":")
    kind = kind.strip()
    if kind not in COORDINATES:
        raise ConfigError(f"unknown coordinate {spec!r}; use distance:I,J, angle:I,J,K, "
                          "dihedral:I,J,K,L or index")
    try:
        indices = [int(a) for a in atoms.split(",")]
    except ValueError:
        indices = []
    if len(indices) != COORDINATES[kind]:
        raise ConfigError(f"{kind} takes {COORDINATES[kind]} atom indices counted from 0, as in "
                          f"{kind}:{','.join(str(i) for i in range(COORDINATES[kind]))}; got {spec!r}")
    values = getattr(db, kind)(*indices)  # DataError when an index is out of range
    # "H-H distance" when each index holds one element in every molecule, else "atoms 0-1 distance"
    elements = [np.unique(db.species[:, i]) for i in indices]
    if all(z.size == 1 for z in elements):
        what = "-".join(symbol(int(z[0])) for z in elements)
    else:
        what = "atoms " + "-".join(str(i) for i in indices)
    unit = "Å" if kind == "distance" else "degrees"
    return values, f"{what} {kind} ({unit})"


def _formats(output: str) -> tuple[str, ...]:
    """The figure formats ``-o OUT`` names: its suffix, or PNG and SVG without one."""
    suffix = Path(output).suffix.lower()
    if suffix in FIGURE_SUFFIXES:
        return (suffix[1:],)
    if suffix and suffix[1:].isalpha() and len(suffix) <= 5:
        raise ConfigError(f"-o {output}: cannot write a {suffix} figure; name the output .png, "
                          ".svg or .pdf, or give no suffix for both PNG and SVG")
    return ("png", "svg")


def _check(args: argparse.Namespace, inputs: list[str | None]) -> None:
    """Before any reading or drawing: the inputs are files, --dpi is sensible, and every figure
    file can be written without replacing an input."""
    inputs = [path for path in inputs if path is not None]
    for path in inputs:
        input_file(path)
    if not (math.isfinite(args.dpi) and 1 <= args.dpi <= MAX_DPI):
        raise ConfigError(f"--dpi must be a number of dots per inch from 1 to {MAX_DPI}; got "
                          f"{args.dpi:g} (for example --dpi 150)")
    path = Path(args.output)
    if path.is_dir():
        raise ConfigError(f"-o {path} is a folder: give a figure file name, e.g. "
                          f"{path / 'figure.png'}")
    formats = _formats(args.output)
    stem = path.with_suffix("") if len(formats) == 1 else path
    for fmt in formats:
        output_file(stem.with_name(f"{stem.name}.{fmt}"), inputs=inputs)


def _save(fig: Any, output: str, dpi: float) -> list[Path]:
    from levelup.report.figure import save_figure

    return save_figure(fig, Path(output), _formats(output), dpi=dpi)


def _points_file(item: str) -> str | None:
    """The FILE of a --points LABEL=FILE[:PROP] (None when it does not parse: reported later)."""
    _, sep, target = item.partition("=")
    target = target.strip()
    if target and not Path(target).exists() and ":" in target:
        target = target.rsplit(":", 1)[0]
    return target if sep and target else None


def _report(paths: list[Path]) -> None:
    print("wrote " + ", ".join(str(p) for p in paths))


def _split_pair(text: str, option: str, form: str) -> tuple[str, str]:
    label, sep, rest = text.partition("=")
    if not sep or not label.strip() or not rest.strip():
        raise ConfigError(f"{option} takes {form}; got {text!r}")
    return label.strip(), rest.strip()


# ---------------------------------------------------------------------------------- subcommands


def run_curves(args: argparse.Namespace) -> int:
    """``levelup plot curves``: energies of models and references along a coordinate."""
    from levelup.report.plots import energy_curves

    _check(args, [args.database, *(_points_file(item) for item in args.points)])
    db = read_database(args.database)
    x, xlabel = _coordinate(db, args.x)
    curves = {p: _energies(db, p, args.database) for p in args.properties}
    points = {}
    for item in args.points:
        label, target = _split_pair(item, "--points", "LABEL=FILE or LABEL=FILE:PROP")
        path, prop = target, None
        if not Path(target).exists() and ":" in target:
            path, prop = target.rsplit(":", 1)
        other = read_database(path, "--points")
        if prop is None:
            held = [p for p in args.properties if p in other.properties]
            if not held:
                raise DataError(f"{path} holds none of {args.properties}; name the property: "
                                f"--points {label}={path}:PROP")
            prop = held[-1]
        px, _ = _coordinate(other, args.x)
        if len(curves) > 1:  # say which energies the markers show
            label = f"{label} ({prop})"
        points[label] = (px, _energies(other, prop, path))
    if args.relative_to is not None and args.relative_to not in curves:
        raise ConfigError(f"--relative-to must be one of --properties {args.properties}; got "
                          f"{args.relative_to!r}")
    bands = {p: _energies(db, f"{p}_std", args.database) for p in args.properties
             if f"{p}_std" in db.properties}  # an ensemble's spread (levelup predict)
    fig = energy_curves(x, curves, points=points, unit=args.unit, relative_to=args.relative_to,
                        xlabel=args.xlabel or xlabel, title=args.title, bands=bands)
    _report(_save(fig, args.output, args.dpi))
    return 0


def _print_stats(reference: np.ndarray, predicted: dict[str, np.ndarray], name: str) -> None:
    from levelup.report.metrics import error_stats

    for label, values in predicted.items():
        s = error_stats(values, reference)
        missing = f", {s['n_missing']} missing" if s["n_missing"] else ""
        print(f"{label} vs {name} ({s['n']} molecules{missing}): RMSE {s['rmse']:.4f}, MAE "
              f"{s['mae']:.4f}, max {s['max']:.4f} kcal/mol")


def run_errors(args: argparse.Namespace) -> int:
    """``levelup plot errors``: each model's error against a reference along a coordinate."""
    from levelup.report.plots import error_curves

    _check(args, [args.database])
    db = read_database(args.database)
    x, xlabel = _coordinate(db, args.x)
    reference = _energies(db, args.reference, args.database)
    predicted = {p: _energies(db, p, args.database) for p in args.predicted}
    regions = {}
    for item in args.region:
        label, span = _split_pair(item, "--region", "LABEL=LO:HI")
        try:
            lo, hi = (float(v) for v in span.split(":"))
        except ValueError:
            raise ConfigError(f"--region takes LABEL=LO:HI with two numbers; got {item!r}") from None
        regions[label] = (lo, hi)
    fig = error_curves(x, {p: v - reference for p, v in predicted.items()}, regions=regions,
                       xlabel=args.xlabel or xlabel, title=args.title)
    _report(_save(fig, args.output, args.dpi))
    _print_stats(reference, predicted, args.reference)
    return 0


def run_parity(args: argparse.Namespace) -> int:
    """``levelup plot parity``: predicted against reference energies."""
    from levelup.report.plots import parity

    _check(args, [args.database])
    db = read_database(args.database)
    reference = _energies(db, args.reference, args.database)
    predicted = {p: _energies(db, p, args.database) for p in args.predicted}
    fig = parity(reference, predicted, unit=args.unit, reference_label=args.reference,
                 title=args.title)
    _report(_save(fig, args.output, args.dpi))
    _print_stats(reference, predicted, args.reference)
    return 0


def _read_history(path: str) -> dict[str, Any]:
    try:
        data = json.loads(input_file(path, "history").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not a training history (JSON written by levelup train or "
                        f"History.save): {exc}"[:300]) from None
    if not isinstance(data, dict) or "train_rmse" not in data:
        raise DataError(f"{path} is not a training history: it lacks 'train_rmse' (write one with "
                        "levelup train or History.save)")
    unit = data.get("units", "kcal/mol")
    if unit != "kcal/mol":
        raise DataError(f"{path} holds RMSEs in {unit!r}; expected kcal/mol")
    return {k: ([math.nan if v is None else v for v in value] if isinstance(value, list) else value)
            for k, value in data.items()}


def run_history(args: argparse.Namespace) -> int:
    """``levelup plot history``: learning curves from training histories."""
    from levelup.report.learning import learning_curves

    _check(args, args.histories)
    labels = args.labels or [Path(p).name.removesuffix(".json") for p in args.histories]
    if len(labels) != len(args.histories):
        raise ConfigError(f"--labels gives {len(labels)} labels for {len(args.histories)} histories; "
                          "give one per history")
    if len(set(labels)) != len(labels):
        labels = [str(p) for p in args.histories]
    histories = {label: _read_history(path) for label, path in zip(labels, args.histories, strict=True)}
    fig = learning_curves(histories, lr=args.lr, title=args.title)
    _report(_save(fig, args.output, args.dpi))
    return 0
