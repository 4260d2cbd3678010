"""``levelup info FILE``: what a database (or model) file holds."""

from __future__ import annotations

import argparse

import numpy as np

from ..data import Database

EXAMPLE = "example: levelup info h2.h5"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe a database file", description=__doc__,
                       epilog=EXAMPLE)
    p.add_argument("path", help="a levelup database (.h5) or any file ASE reads")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    db = Database.read(args.path)
    print(f"{args.path}: {len(db)} molecules, elements "
          f"{', '.join(str(z) for z in db.elements)}, up to {db.max_atoms} atoms")
    print(f"  formulas: {', '.join(sorted(set(db.formulas)))}")
    for name, meta in db.properties.items():
        values = db.get(name)
        missing = int(np.isnan(values.reshape(len(db), -1)).all(axis=1).sum())
        level = f", level {meta.level}" if meta.level else ""
        print(f"  {name}: {meta.unit}{level}, {'per atom' if meta.per_atom else 'per molecule'}"
              f", {missing} missing")
    return 0
