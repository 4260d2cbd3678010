"""``levelup predict MODEL INPUT -o OUTPUT``: energies (and forces) of every molecule of a
database from a model file, written as a new property of the database.

Energies are stored in Hartree under NAME, forces in Hartree/Angstrom under NAME_forces, and for
an ensemble the standard deviation over members under NAME_std. OUTPUT is a levelup database
(.h5) or any file ASE writes (extxyz by default).
"""

from __future__ import annotations

import argparse

import numpy as np

from levelup.cli.common import new_property, output_file, read_database, read_model, write_database
from levelup.errors import ConfigError, DataError
from levelup.model.ani import Ensemble
from levelup.units import ENERGY, FORCE, HARTREE_TO_KCALMOL

EXAMPLE = """examples:
  levelup predict h2.pt h2.h5 -o predicted.h5
  levelup predict ani-1x.pt molecules.xyz -o out.extxyz --forces --name ani1x
  levelup predict h2.pt h2.h5 -o predicted.h5 --compare hf"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``levelup predict`` on the CLI's subcommand parser."""
    p = sub.add_parser("predict", help="predict energies (and forces) with a model file",
                       description=__doc__, epilog=EXAMPLE,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a levelup model file (model.save / levelup train)")
    p.add_argument("input", help="molecules: a levelup database (.h5) or any file ASE reads")
    p.add_argument("-o", "--output", required=True, metavar="PATH",
                   help="database to write (.h5, or a file ASE writes, e.g. .extxyz)")
    p.add_argument("--forces", action="store_true", help="also predict forces (Hartree/Angstrom)")
    p.add_argument("--name", default="predicted", help="property name of the predicted energies "
                   "(default: predicted)")
    p.add_argument("--compare", metavar="PROPERTY",
                   help="print the RMSE and MAE (kcal/mol) against this energy property")
    p.add_argument("--batch-size", type=int, default=1024, help="molecules per batch (1024)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--overwrite", action="store_true", help="replace properties NAME, "
                   "NAME_forces, NAME_std that the input already has")
    p.set_defaults(func=run)


def _written_names(args: argparse.Namespace, ensemble: bool) -> list[str]:
    return [args.name] + ([f"{args.name}_forces"] if args.forces else []) + (
        [f"{args.name}_std"] if ensemble else [])


def run(args: argparse.Namespace) -> int:
    """Predict energies (and forces; an ensemble's spread too) for a database; write them as properties."""
    output_file(args.output, inputs=[args.model, args.input], database=True)
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1 molecule; got {args.batch_size}")
    model = read_model(args.model)
    db = read_database(args.input)
    for name in _written_names(args, isinstance(model, Ensemble)):
        new_property(db.properties, name, args.overwrite, where=f"input {args.input}")
    reference = db.get(args.compare) if args.compare else None
    pred = model.predict(db, forces=args.forces, batch_size=args.batch_size, device=args.device,
                         progress=not getattr(args, "quiet", False))
    spec = {"model": str(args.model)}
    db.set(args.name, pred.energies, unit=ENERGY, spec=spec)
    if pred.forces is not None:
        db.set(f"{args.name}_forces", pred.forces, unit=FORCE, spec=spec)
    if pred.energies_std is not None:
        db.set(f"{args.name}_std", pred.energies_std, unit=ENERGY, spec=spec)
    out = args.output
    write_database(db, out)
    print(f"{out}: {len(db)} molecules, property {args.name!r} (Hartree)"
          + (f", {args.name + '_forces'!r} (Hartree/Angstrom)" if args.forces else "")
          + (f", {args.name + '_std'!r} (Hartree, the spread over {len(model.members)} members)"
             if pred.energies_std is not None else " (a single model: no spread; an ensemble "
             "model file also writes NAME_std)"))
    if reference is not None:
        diff = (pred.energies - reference) * HARTREE_TO_KCALMOL
        ok = np.isfinite(diff)
        if not ok.any():
            raise DataError(f"property {args.compare!r} has no values to compare with")
        rmse = float(np.sqrt(np.mean(diff[ok] ** 2)))
        mae = float(np.mean(np.abs(diff[ok])))
        print(f"vs {args.compare} ({int(ok.sum())} molecules): RMSE {rmse:.4f} kcal/mol, "
              f"MAE {mae:.4f} kcal/mol")
    return 0
