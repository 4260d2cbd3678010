"""``levelup select POOL --budget K --method M -o CHOSEN.h5``: choose which geometries get the
expensive level of theory.

Methods: ``every`` (evenly spaced, the tutorial's every k-th), ``random`` (seeded), ``fps``
(farthest points in AEV space), ``design`` (Bayesian design for the pre-trained model's
transfer: no label needed; with ``--structure`` twice or more, aimed at their energy
differences too) and ``committee`` (query by committee: label at the high level
where a committee of transferred models disagrees most, a batch at a time, until the budget is
spent or its predicted error is below --target). Every committee label goes through the label
cache, so a killed run started again recomputes none.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from levelup.cli.common import (
    check_number,
    input_file,
    molecules_file,
    output_file,
    read_database,
    read_model,
    write_database,
)
from levelup.errors import ConfigError
from levelup.selection.select import METHODS, select

EXAMPLE = """examples:
  levelup select h2_hf.h5 --budget 12 --method every -o chosen.h5
  levelup select pool.h5 --budget 16 --method fps --model pretrained.pt -o chosen.h5
  levelup select pool.h5 --budget 16 --method design --model pretrained.pt -o chosen.h5
  levelup select pool.h5 --budget 20 --method design --model pretrained.pt \\
      --structure minimum=nh3.xyz --structure saddle=nh3.xyz --constraint saddle=planar \\
      -o chosen.h5
  levelup select h2_hf.h5 --budget 12 --method committee --model pretrained.pt \\
      --high CISD/cc-pVDZ --batch 2 --target 0.5 --state run.json -o chosen.h5

The output holds the chosen geometries, with properties selection/index (the pool row) and
selection/round; for the committee also the high-level energies (Hartree, property named after
the level). --state writes the committee's rounds (rows, predicted error and CV RMSE in
kcal/mol) as JSON after every round."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``levelup select`` on the CLI's subcommand parser."""
    p = sub.add_parser("select", help="choose the geometries for the expensive level",
                       description=__doc__, epilog=EXAMPLE,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pool", help="candidate geometries: a levelup database (.h5) or any file "
                   "ASE reads")
    p.add_argument("--budget", type=int, required=True, help="geometries to choose (high-level "
                   "calculations to spend)")
    p.add_argument("--method", choices=METHODS, default="every", help="strategy (default: "
                   "%(default)s)")
    p.add_argument("--model", help="pre-trained model file (.pt): needed by design and "
                   "committee; gives "
                   "fps its AEV parameters (default: ANI-1x's)")
    p.add_argument("--high", help='high level for the committee, e.g. "CISD/cc-pVDZ"')
    p.add_argument("--batch", type=int, help="geometries per committee round (default: "
                   "budget // 4)")
    p.add_argument("--target", type=float, help="stop the committee once its predicted error "
                   "is at most this, kcal/mol")
    p.add_argument("--seed", type=int, default=0, help="seed of random and of the committee's "
                   "bootstrap (default: %(default)s)")
    p.add_argument("--members", type=int, default=4, help="committee members from a single "
                   "model (default: %(default)s)")
    p.add_argument("--low", help="the pool's low-level energy property, checked present first")
    p.add_argument("--cache", help="label cache file (default: the shared user cache)")
    p.add_argument("--workers", type=int, help="parallel high-level calculations")
    p.add_argument("--state", help="JSON file for the committee's rounds, written after each")
    p.add_argument("--structure", action="append", default=[], metavar="NAME=FILE",
                   help="design: a named structure (one molecule) whose energy difference from "
                   "the first (a barrier) the points must pin too; give two or more")
    p.add_argument("--constraint", action="append", default=[], metavar="NAME=SPEC",
                   help='design: held while that structure is optimised on the model, e.g. '
                   'saddle=planar or saddle="dihedral:2,0,1,3=0"')
    p.add_argument("-o", "--output", required=True, help="chosen geometries to write (.h5, or "
                   "any format ASE writes)")
    p.set_defaults(func=run)


def _check_flags(args: argparse.Namespace) -> None:
    check_number(args.budget, "--budget", minimum=1, example="12")
    check_number(args.batch, "--batch", minimum=1, example="2")
    check_number(args.target, "--target", above=0, example="0.5")
    check_number(args.members, "--members", minimum=2, example="4")
    check_number(args.workers, "--workers", minimum=1, example="2")
    if args.method == "committee":
        missing = [flag for flag, value in (("--model", args.model), ("--high", args.high))
                   if value is None]
        if missing:
            raise ConfigError(f"--method committee needs {' and '.join(missing)} (e.g. --model "
                              "pretrained.pt --high CISD/cc-pVDZ)")
    if args.method == "design" and args.model is None:
        raise ConfigError("--method design needs --model (the pre-trained model it chooses "
                          "for, e.g. --model pretrained.pt)")
    if (args.structure or args.constraint) and args.method != "design":
        raise ConfigError("--structure and --constraint aim --method design at a barrier: add "
                          "--method design")
    if args.structure and len(args.structure) < 2:
        raise ConfigError("--structure needs two or more (NAME=FILE each, the first is the "
                          "zero), e.g. --structure minimum=a.xyz --structure saddle=b.xyz")
    if args.cache and Path(args.cache).is_dir():
        raise ConfigError(f"--cache {args.cache} is a folder: give a file, e.g. "
                          f"{Path(args.cache) / 'labels.sqlite'}")


def _pair(value: str, flag: str, example: str) -> tuple[str, str]:
    """(NAME, VALUE) of one NAME=VALUE flag."""
    name, sep, rest = value.partition("=")
    if not sep or not name.strip() or not rest.strip():
        raise ConfigError(f"{flag} takes NAME=VALUE, e.g. {flag} {example}; got {value!r}")
    return name.strip(), rest.strip()


def _aim(args: argparse.Namespace) -> dict:
    """select()'s structures and constraints from --structure and --constraint (read and
    checked before any work)."""
    if not args.structure:
        return {}
    from levelup.data.structure import read_structure
    from levelup.properties.constraints import parse_spec

    structures = {}
    for value in args.structure:
        name, path = _pair(value, "--structure", "minimum=nh3.xyz")
        structures[name] = read_structure(molecules_file(path, f"--structure {name}"))
    constraints: dict[str, list[str]] = {}
    for value in args.constraint:
        name, spec = _pair(value, "--constraint", "saddle=planar")
        if name not in structures:
            raise ConfigError(f"--constraint {value}: no --structure is named {name!r} (they "
                              f"are {', '.join(structures)})")
        parse_spec(spec, len(structures[name]))
        constraints.setdefault(name, []).append(spec)
    return {"structures": structures, "constraints": constraints}


def run(args: argparse.Namespace) -> int:
    """Choose ``--budget`` geometries of the pool by ``--method``; write them and print the
    rows (and the committee's rounds)."""
    _check_flags(args)
    output_file(args.output, inputs=[args.pool, args.model, args.cache, args.state],
                database=True)
    if args.state:
        output_file(args.state, inputs=[args.pool, args.model, args.cache, args.output],
                    flag="--state")
    input_file(args.pool, "pool")
    if args.high:
        from levelup.qm.levels import parse_level

        parse_level(args.high)
    aim = _aim(args)
    model = read_model(args.model) if args.model else None
    pool = read_database(args.pool, "pool")
    result = select(pool, args.budget, args.method, seed=args.seed, model=model, high=args.high,
                    batch=args.batch, target=args.target, cache=args.cache, state=args.state,
                    progress=not args.quiet, low=args.low, members=args.members,
                    workers=args.workers, **aim)
    rows = np.array(result.indices, dtype=np.int64)
    out = pool[rows]
    out.set("selection/index", rows.astype(np.float64), unit="1")
    out.set("selection/round", np.array(result.rounds, dtype=np.float64), unit="1")
    if result.energies is not None:
        out.set(result.level, np.array(result.energies), level=result.level)
    write_database(out, args.output)
    for r in result.history:
        print(f"round {r.round}: labelled {list(r.chosen)} ({r.computed} computed, {r.cached} "
              f"from the cache); {r.labelled} points: predicted error "
              f"{r.predicted_error:.3f} kcal/mol, transfer CV RMSE {r.cv_rmse:.3f} kcal/mol")
    print(f"chose {len(rows)} of {len(pool)} geometries by {args.method}: rows "
          f"{' '.join(map(str, rows))}; rounds {' '.join(map(str, result.rounds))}")
    print(f"wrote {args.output}")
    return 0
