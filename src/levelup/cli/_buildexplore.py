"""``levelup build md`` and ``levelup build neb``: geometry pools from exploring a potential
(Langevin dynamics; a nudged elastic band and distortions around it), registered by
:mod:`levelup.cli.build`. The dynamics and paths are :mod:`levelup.explore`'s.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from levelup.cli.common import (
    check_number,
    molecules_file,
    output_file,
    read_model,
    write_database,
)
from levelup.data.structure import read_structure
from levelup.errors import ConfigError
from levelup.units import HARTREE_TO_KCALMOL

MD_EXAMPLE = """examples:
  levelup build md water.xyz --model water_hf.pt --temperature 500 --steps 4000 --every 20 -o md.h5
  levelup build md h2.xyz --level HF/STO-3G --temperature 300 --steps 200 --every 10 -o md.h5

Langevin dynamics (ASE) from STRUCTURE at --temperature, driven by a model file (--model) or by a
level of theory with analytic gradients (--level: every step is a PySCF calculation). The first
--equilibrate steps are dropped; then one frame every --every steps is kept: --steps // --every
frames. Initial velocities (Maxwell-Boltzmann) and the random forces come from --seed, so the
same command gives the same frames. Each frame carries md_energy (Hartree), time_fs and
temperature_K."""

NEB_EXAMPLE = """examples:
  levelup build neb nh3.xyz nh3_inverted.xyz --model nh3_hf.pt --images 9 -o path.h5
  levelup build neb nh3.xyz nh3_inverted.xyz --model nh3_hf.pt --distortions 20 --amplitude 0.05 -o pool.h5

A climbing-image nudged elastic band (ASE) from INITIAL to FINAL (same atoms, same order) on a
model file or a level of theory: --images in all, both ends included. The images carry
neb_energy (Hartree) and neb_image. With --distortions N the output also holds N random
Cartesian distortions (up to --amplitude Angstrom per coordinate) around every image, each
tagged with path_image."""


def add_parsers(kinds: argparse._SubParsersAction) -> None:
    """Register ``md`` and ``neb`` on ``levelup build``'s subparsers."""
    md = kinds.add_parser("md", help="Langevin dynamics frames on a model or a level",
                          epilog=MD_EXAMPLE, description="Frames of Langevin dynamics.",
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    md.add_argument("structure", help="the starting molecule: any file ASE reads, or a levelup .h5")
    md.add_argument("--index", type=int, help="which molecule of a file of several (0-based)")
    _source_args(md)
    md.add_argument("--temperature", type=float, required=True, help="thermostat temperature, K")
    md.add_argument("--steps", type=int, required=True, help="production steps")
    md.add_argument("--every", type=int, required=True, help="keep one frame every n steps")
    md.add_argument("--timestep", type=float, default=0.5, help="fs (default: 0.5)")
    md.add_argument("--friction", type=float, default=0.01,
                    help="Langevin friction, 1/fs (default: 0.01)")
    md.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    md.add_argument("--equilibrate", type=int, default=0,
                    help="steps run first and not kept (default: 0)")
    md.add_argument("-o", "--output", required=True, metavar="PATH",
                    help="database to write: .h5 (native) or any format ASE writes")
    md.set_defaults(func=run_md)

    neb = kinds.add_parser("neb", help="a nudged elastic band path (and distortions around it)",
                           epilog=NEB_EXAMPLE, description="A minimum-energy path by NEB.",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    neb.add_argument("initial", help="the first end: any file ASE reads, or a levelup .h5")
    neb.add_argument("final", help="the last end (the same atoms in the same order)")
    neb.add_argument("--index", type=int, help="which molecule of each file (0-based)")
    _source_args(neb)
    neb.add_argument("--images", type=int, default=9, help="images, ends included (default: 9)")
    neb.add_argument("--fmax", type=float, default=0.002,
                     help="converged below this NEB force, Hartree/Angstrom (default: 0.002)")
    neb.add_argument("--steps", type=int, default=500, help="most optimiser steps (default: 500)")
    neb.add_argument("--no-climb", action="store_true", help="plain NEB (no climbing image)")
    neb.add_argument("--distortions", type=int, default=0,
                     help="random distortions around each image (default: 0)")
    neb.add_argument("--amplitude", type=float, default=0.05,
                     help="largest displacement of a distortion, Angstrom (default: 0.05)")
    neb.add_argument("--seed", type=int, default=0, help="seed of the distortions (default: 0)")
    neb.add_argument("-o", "--output", required=True, metavar="PATH",
                     help="database to write: .h5 (native) or any format ASE writes")
    neb.set_defaults(func=run_neb)


def write_pool(db: object, path: str, what: str) -> None:
    """Write ``db`` (atomically) and say in one line what it holds: how many ``what``, which
    formulas."""
    out = Path(path)
    write_database(db, out)
    formulas = sorted(set(db.formulas))
    print(f"{out}: {len(db)} {what} ({', '.join(formulas[:5])}"
          f"{', ...' if len(formulas) > 5 else ''})")


def _source_args(p: argparse.ArgumentParser) -> None:
    source = p.add_mutually_exclusive_group()
    source.add_argument("--model", help="model file (.pt) that gives the forces")
    source.add_argument("--level", help="or a level of theory with analytic gradients "
                        "(HF/STO-3G): one PySCF calculation per step")
    p.add_argument("--cache", help="label cache for --level (default: the user cache; every "
                   "calculation is kept, so a repeated run computes nothing)")
    p.add_argument("--threads", type=int, help="PySCF threads of --level (default: the "
                   "process's; 1 is fastest for small molecules on a busy machine)")


def _source(args: argparse.Namespace, mol: object) -> object:
    """The model (loaded and checked) or the level; the calculator is built here so that a model
    lacking an element or a basis lacking one fails before any work."""
    from levelup.explore.sources import calculator, resolved
    from levelup.properties.sources import Source

    if not (args.model or args.level):
        raise ConfigError("give --model M.pt (a model file) or --level 'HF/STO-3G' (a level of "
                          "theory): what gives the forces")
    check_number(args.threads, "--threads", minimum=1, example="1")
    if args.model:
        source = Source(name=args.model, model=read_model(args.model, "--model"))
    else:
        source = resolved(args.level, cache=args.cache)
    calculator(source, mol)
    return source


def _check_md(args: argparse.Namespace) -> None:
    check_number(args.temperature, "--temperature", minimum=0, example="300")
    check_number(args.steps, "--steps", minimum=1, example="2000")
    check_number(args.every, "--every", minimum=1, maximum=max(args.steps, 1), example="10")
    check_number(args.timestep, "--timestep", above=0, example="0.5")
    check_number(args.friction, "--friction", above=0, example="0.01")
    check_number(args.equilibrate, "--equilibrate", minimum=0, example="200")


def run_md(args: argparse.Namespace) -> int:
    """``levelup build md``: Langevin dynamics frames -> a database file."""
    from levelup.explore.dynamics import langevin_frames

    _check_md(args)
    output_file(args.output, inputs=[args.structure, args.model, args.cache], database=True)
    mol = read_structure(molecules_file(args.structure, "structure"), args.index)
    source = _source(args, mol)
    db = langevin_frames(mol, source, temperature=args.temperature, steps=args.steps,
                         every=args.every, timestep=args.timestep, friction=args.friction,
                         seed=args.seed, equilibrate=args.equilibrate, progress=not args.quiet,
                         cache=args.cache, threads=args.threads)
    t = db.get("temperature_K")
    write_pool(db, args.output, f"frames of Langevin dynamics at {args.temperature:g} K (every "
               f"{args.every} steps of {args.timestep:g} fs, {args.model or args.level}; kinetic "
               f"temperature of the frames {t.mean():.0f} +- {t.std():.0f} K)")
    return 0


def _check_neb(args: argparse.Namespace) -> None:
    check_number(args.images, "--images", minimum=3, maximum=1000, example="9")
    check_number(args.fmax, "--fmax", above=0, example="0.002")
    check_number(args.steps, "--steps", minimum=1, example="500")
    check_number(args.distortions, "--distortions", minimum=0, example="20")
    check_number(args.amplitude, "--amplitude", above=0, example="0.05")


def run_neb(args: argparse.Namespace) -> int:
    """``levelup build neb``: a nudged elastic band (and distortions around it) -> a database."""
    from levelup.explore.paths import check_ends, neb_path, path_pool

    _check_neb(args)
    output_file(args.output, inputs=[args.initial, args.final, args.model, args.cache],
                database=True)
    start = read_structure(molecules_file(args.initial, "initial structure"), args.index)
    end = read_structure(molecules_file(args.final, "final structure"), args.index)
    check_ends(start, end)
    source = _source(args, start)
    path = neb_path(start, end, source, images=args.images, climb=not args.no_climb,
                    fmax=args.fmax, steps=args.steps, progress=not args.quiet,
                    cache=args.cache, threads=args.threads)
    db = path.images
    if args.distortions:
        db = path_pool(path, args.distortions, args.amplitude, seed=args.seed)
    state = (f"converged in {path.steps} steps" if path.converged else
             f"NOT converged after {path.steps} steps (largest force above --fmax; raise --steps)")
    write_pool(db, args.output, f"geometries along a {args.images}-image path, {state}; highest "
               f"image {path.highest}, {path.barrier * HARTREE_TO_KCALMOL:.2f} kcal/mol above "
               f"the initial structure")
    return 0
