"""``levelup build``: geometries to label, written as a database.

  scan     copies of a structure along a bond length, an angle or a dihedral
  distort  random Cartesian distortions, or Boltzmann-sampled normal-mode distortions
  read     xyz/extxyz (any file ASE reads) into one database
  md       frames of Langevin dynamics on a model or a level of theory
  neb      a nudged elastic band path between two structures (and distortions around it)

STRUCTURE is any file ASE reads, or a native .h5 database, holding one molecule (or choose one
with --index). Atom indices count from 0; distances in Angstrom, angles in degrees. OUTPUT is a
native .h5 database, or any format ASE writes (extxyz for .xyz).
"""

from __future__ import annotations

import argparse

from levelup.cli._buildexplore import add_parsers as add_explore_parsers
from levelup.cli._buildexplore import write_pool
from levelup.cli.common import (
    check_number,
    molecules_file,
    output_file,
    read_database,
    read_model,
)
from levelup.data import Database
from levelup.data.sampling import (
    MAX_GEOMETRIES,
    normal_mode_distortions,
    random_distortions,
    scan_angle,
    scan_dihedral,
    scan_distance,
    scan_values,
)
from levelup.data.structure import read_structure
from levelup.errors import ConfigError
from levelup.properties.hessians import hessian

EXAMPLE = """examples:
  levelup build scan h2.xyz --bond 0 1 --from 0.5 --to 2.5 --step 0.05 -o h2_scan.h5
  levelup build scan water.xyz --angle 1 0 2 --from 90 --to 130 --step 5 -o bend.h5
  levelup build scan ethane.xyz --dihedral 2 0 1 5 --from 0 --to 360 --step 15 -o torsion.h5
  levelup build distort water.xyz --n 150 --amplitude 0.1 --seed 0 -o water.h5
  levelup build distort water.xyz --n 150 --normal-modes --level HF/STO-3G --temperature 500 -o nms.h5
  levelup build distort water.xyz --n 150 --normal-modes --model water.pt -o nms.h5
  levelup build read frames/*.xyz more.extxyz -o all.h5
  levelup build md water.xyz --model water_hf.pt --temperature 500 --steps 4000 --every 20 -o md.h5
  levelup build neb nh3.xyz nh3_inverted.xyz --model nh3_hf.pt --images 9 -o path.h5"""

SCAN_EXAMPLE = """examples:
  levelup build scan h2.xyz --bond 0 1 --from 0.5 --to 2.5 --step 0.05 -o h2_scan.h5
  levelup build scan water.xyz --angle 1 0 2 --from 90 --to 130 --step 5 -o bend.h5
  levelup build scan ethane.xyz --dihedral 2 0 1 5 --from 0 --to 360 --step 15 -o torsion.h5

A bond I J: atom I stays, J moves along the I-J line. An angle I J K (at J) and a dihedral
I J K L: the atoms on K's side rotate. J (or K, L) moves together with the fragment bonded to it
(unless the bond is in a ring: then alone), or with the atoms given by --move. The scanned
value goes to the property "scan"."""

DISTORT_EXAMPLE = """examples:
  levelup build distort water.xyz --n 150 --amplitude 0.1 --seed 0 -o water.h5
  levelup build distort water.xyz --n 150 --normal-modes --temperature 500 -o nms.h5
  levelup build distort water.xyz --n 150 --normal-modes --model water.pt -o nms.h5

Without --normal-modes every Cartesian coordinate moves by a uniform random amount in
[-amplitude, amplitude] Angstrom. With --normal-modes the Hessian comes from a model file
(--model: exact, by autograd) or from a level of theory (--level, default HF/STO-3G: central
differences of PySCF forces, labelled and cached like any label), and each normal coordinate is
drawn from the harmonic Boltzmann distribution at --temperature (kT/2 per mode). The structure
should be a minimum of that potential."""

READ_EXAMPLE = """example:
  levelup build read frames/*.xyz more.extxyz -o all.h5

Energies and forces attached by ASE (eV) are converted to Hartree; properties that levelup
wrote keep their units and levels."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``levelup build`` (scan, distort, read, md, neb) on the CLI's subcommand parser."""
    p = sub.add_parser("build", help="build geometries: scans, distortions, dynamics, paths, "
                       "files to a database",
                       description=__doc__, epilog=EXAMPLE,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = p.add_subparsers(dest="build_kind", metavar="KIND", required=True)

    scan = kinds.add_parser("scan", help="scan a bond, angle or dihedral", epilog=SCAN_EXAMPLE,
                            description="Copies of a structure along one internal coordinate.",
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    _structure_args(scan)
    what = scan.add_mutually_exclusive_group(required=True)
    what.add_argument("--bond", nargs=2, type=int, metavar=("I", "J"), help="distance I-J")
    what.add_argument("--angle", nargs=3, type=int, metavar=("I", "J", "K"),
                      help="angle I-J-K at J")
    what.add_argument("--dihedral", nargs=4, type=int, metavar=("I", "J", "K", "L"),
                      help="dihedral I-J-K-L")
    scan.add_argument("--from", dest="start", type=float, required=True, metavar="A",
                      help="first value (Angstrom or degrees)")
    scan.add_argument("--to", dest="stop", type=float, required=True, metavar="B",
                      help="last value, included when it falls on the grid")
    scan.add_argument("--step", type=float, required=True, metavar="S",
                      help="step (negative to scan downwards)")
    scan.add_argument("--move", nargs="+", type=int, metavar="ATOM",
                      help="atoms that move (default: the fragment bonded to the last atom)")
    scan.set_defaults(func=run_scan)

    distort = kinds.add_parser("distort", help="random or normal-mode distortions",
                               epilog=DISTORT_EXAMPLE,
                               description="Randomly distorted copies of a structure.",
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    _structure_args(distort)
    distort.add_argument("--n", type=int, required=True, help="number of geometries")
    distort.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    distort.add_argument("--amplitude", type=float,
                         help="largest displacement per Cartesian coordinate, Angstrom "
                         "(default: 0.1; not with --normal-modes)")
    distort.add_argument("--normal-modes", action="store_true",
                         help="distort along normal modes (Boltzmann sampling)")
    source = distort.add_mutually_exclusive_group()
    source.add_argument("--model", help="model file whose Hessian gives the normal modes")
    source.add_argument("--level", help="level of theory whose Hessian gives the normal modes "
                        "(default: HF/STO-3G)")
    distort.add_argument("--temperature", type=float, default=300.0,
                         help="temperature of the normal-mode sampling, K (default: 300)")
    distort.add_argument("--cache", help="label cache for --level (default: the user cache)")
    distort.set_defaults(func=run_distort)

    read = kinds.add_parser("read", help="read xyz/extxyz files into one database",
                            epilog=READ_EXAMPLE, description="Files ASE reads into one database.",
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    read.add_argument("files", nargs="+", metavar="FILE", help="xyz, extxyz or any file ASE reads")
    read.add_argument("-o", "--output", required=True, metavar="PATH", help="database to write")
    read.set_defaults(func=run_read)
    add_explore_parsers(kinds)


def _structure_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("structure", help="one molecule: any file ASE reads, or a levelup .h5")
    p.add_argument("--index", type=int, help="which molecule of a file that holds several "
                   "(0-based; -1 for the last)")
    p.add_argument("-o", "--output", required=True, metavar="PATH",
                   help="database to write: .h5 (native) or any format ASE writes")


def _structure(args: argparse.Namespace, inputs: list[str | None]) -> object:
    """Check the output and the structure file before any work; return the molecule."""
    output_file(args.output, inputs=[args.structure, *inputs], database=True)
    return read_structure(molecules_file(args.structure, "structure"), args.index)


def run_scan(args: argparse.Namespace) -> int:
    """``levelup build scan``: geometries along a distance, angle or dihedral -> a database file."""
    for flag, value in (("--from", args.start), ("--to", args.stop), ("--step", args.step)):
        check_number(value, flag)
    values = scan_values(args.start, args.stop, args.step)
    mol = _structure(args, [])
    if args.bond:
        db = scan_distance(mol, *args.bond, values, move=args.move)
        what = f"geometries along the {args.bond[0]}-{args.bond[1]} distance"
    elif args.angle:
        db = scan_angle(mol, *args.angle, values, move=args.move)
        what = f"geometries along the {'-'.join(map(str, args.angle))} angle"
    else:
        db = scan_dihedral(mol, *args.dihedral, values, move=args.move)
        what = f"geometries along the {'-'.join(map(str, args.dihedral))} dihedral"
    write_pool(db, args.output, f"{what}, {values[0]:g} to {values[-1]:g}")
    return 0


def _check_distort(args: argparse.Namespace) -> None:
    check_number(args.n, "--n", minimum=1, maximum=MAX_GEOMETRIES, example="150")
    check_number(args.amplitude, "--amplitude", above=0, example="0.1")
    check_number(args.temperature, "--temperature", above=0, example="300")
    if not args.normal_modes and (args.model or args.level):
        raise ConfigError("--model and --level choose the Hessian of --normal-modes; add "
                          "--normal-modes, or leave them out for Cartesian distortions")
    if args.normal_modes and args.amplitude is not None:
        raise ConfigError("--amplitude sets Cartesian distortions; with --normal-modes the size "
                          "of the distortions follows from --temperature")


def run_distort(args: argparse.Namespace) -> int:
    """``levelup build distort``: random or normal-mode distortions of a structure -> a database file."""
    _check_distort(args)
    mol = _structure(args, [args.model, args.cache])
    if args.model:
        read_model(args.model, "--model")
    if not args.normal_modes:
        amplitude = 0.1 if args.amplitude is None else args.amplitude
        db = random_distortions(mol, args.n, amplitude, seed=args.seed)
        write_pool(db, args.output, f"random distortions (up to {amplitude:g} Angstrom per "
               "coordinate)")
        return 0
    source = args.model or args.level or "HF/STO-3G"
    h = hessian(mol, source, cache=args.cache, progress=not args.quiet)
    db = normal_mode_distortions(mol, h, args.n, temperature=args.temperature, seed=args.seed)
    write_pool(db, args.output, f"normal-mode distortions at {args.temperature:g} K (Hessian from "
           f"{source})")
    return 0


def run_read(args: argparse.Namespace) -> int:
    """``levelup build read``: molecules of any format ASE reads -> a levelup database file."""
    output_file(args.output, inputs=args.files, database=True)
    for f in args.files:
        molecules_file(f)
    parts = [read_database(f) for f in args.files]
    db = Database.concatenate(parts)
    write_pool(db, args.output, f"molecules from {len(args.files)} file(s)")
    return 0
