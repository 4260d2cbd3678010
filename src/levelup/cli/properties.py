"""``levelup properties STRUCTURE --model M.pt | --level LEVEL -o props.json``: what a chemist
checks on a potential, for one structure: its energy, bond lengths, angles and dihedrals, after
an optional geometry optimisation (--optimize, with --constraint for a symmetric saddle), and
the harmonic frequencies (--frequencies; imaginary ones negative).

A level's gradients and Hessians go through the label cache, so a repeated command recomputes
nothing. Units: Angstrom, degrees, Hartree, cm^-1. The JSON holds the same numbers as the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from levelup.cli.common import check_number, molecules_file, output_file, read_model
from levelup.errors import ConfigError

EXAMPLE = """examples:
  levelup properties water.xyz --level HF/STO-3G --optimize --frequencies -o props.json
  levelup properties water.xyz --model transferred.pt --optimize --frequencies -o model.json
  levelup properties nh3.xyz --level HF/STO-3G --optimize --constraint planar --frequencies \\
      -o saddle.json"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``levelup properties`` on the CLI's subcommand parser."""
    p = sub.add_parser("properties", help="optimised geometry, energy and harmonic frequencies "
                       "of one structure on a model or a level", description=__doc__,
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("structure", help="one molecule: any file ASE reads, or a levelup .h5")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a levelup model file")
    source.add_argument("--level", help='a level of theory "method/basis", e.g. HF/STO-3G')
    p.add_argument("-o", "--output", required=True, metavar="PATH", help="JSON file to write")
    p.add_argument("--optimize", action="store_true", help="optimise the geometry first")
    p.add_argument("--frequencies", action="store_true", help="harmonic frequencies (at the "
                   "optimised geometry with --optimize, else at the one given)")
    p.add_argument("--constraint", action="append", default=[], metavar="SPEC",
                   help='hold during --optimize (repeatable): planar, fix:0,1, bond:0,1=1.0, '
                   'angle:1,0,2=104.5, dihedral:0,1,2,3=180 (atoms from 0)')
    p.add_argument("--fmax", type=float, default=1e-4, help="optimisation threshold on the "
                   "largest atomic force, Hartree/Angstrom (default 1e-4)")
    p.add_argument("--steps", type=int, default=200, help="most optimisation steps (200)")
    p.add_argument("--hessian", choices=("auto", "analytic", "gradients"), default="auto",
                   help="auto (default): autograd for a model, PySCF's analytic Hessian for HF "
                   "and DFT, differences of gradients otherwise")
    p.add_argument("--index", type=int, help="which molecule of a file that holds several "
                   "(Python indexing, -1 for the last)")
    p.add_argument("--charge", type=int, help="total charge (default: the file's, else 0)")
    p.add_argument("--multiplicity", type=int, help="2S+1 (default: the file's, else 1)")
    p.add_argument("--cache", help="label cache file (default: the shared user cache)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write a cache")
    p.add_argument("--workers", type=int, default=1, help="parallel calculations for a "
                   "level's finite differences (default 1)")
    p.set_defaults(func=run)


def _checked(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """(molecule, source, cache) after every check that can fail before a calculation."""
    from levelup.data.structure import read_structure
    from levelup.properties.constraints import parse_spec
    from levelup.properties.sources import source_of

    output_file(args.output, inputs=[args.structure, args.model])
    check_number(args.fmax, "--fmax", above=0, example="1e-4")
    check_number(args.steps, "--steps", minimum=0, example="200")
    check_number(args.workers, "--workers", minimum=1, example="2")
    if args.constraint and not args.optimize:
        raise ConfigError("--constraint holds coordinates during an optimisation: add --optimize")
    mol = read_structure(molecules_file(args.structure, "structure"), args.index)
    changes = {k: getattr(args, k) for k in ("charge", "multiplicity") if getattr(args, k)
               is not None}
    if changes:
        from levelup.data.validate import check_electrons

        mol = dataclasses.replace(mol, **changes)
        check_electrons(mol.species[None], [mol.charge], [mol.multiplicity])
    for spec in args.constraint:
        parse_spec(spec, len(mol))
    cache = False if args.no_cache else args.cache
    src = read_model(args.model) if args.model else args.level
    source = source_of(src, cache=cache, workers=args.workers)
    if args.model:
        source.name = str(args.model)
    source.check(mol)
    return mol, source, cache


def run(args: argparse.Namespace) -> int:
    """Compute the properties asked for; print a short table; write the JSON atomically."""
    from levelup.properties.frequencies import frequencies
    from levelup.properties.geometry import geometry_parameters
    from levelup.properties.optimize import optimize

    mol, source, cache = _checked(args)
    progress = not getattr(args, "quiet", False)
    result: dict[str, Any] = {"structure": str(args.structure), "source": source.name}
    opt = None
    if args.optimize:
        opt = optimize(mol, source, fmax=args.fmax, steps=args.steps,
                       constraints=args.constraint or None, progress=progress, cache=cache,
                       workers=args.workers)
        mol = opt.structure
        energy = opt.energy
    else:
        energy = float(source.energies(mol, mol.coordinates[None])[0][0])
    result["optimized"] = opt.to_dict() if opt is not None else None
    result["energy_hartree"] = energy
    geometry = geometry_parameters(mol)
    result["geometry"] = geometry.to_dict()
    freq = None
    if args.frequencies:
        freq = frequencies(mol, source, optimize_first=False, method=args.hessian, cache=cache,
                           workers=args.workers, progress=progress)
    result["frequencies"] = freq.to_dict() if freq is not None else None
    _print_table(args, source.name, opt, energy, geometry, freq)
    _write_json(args.output, result)
    print(f"{args.output} written")
    return 0


def _print_table(args: argparse.Namespace, name: str, opt: Any, energy: float, geometry: Any,
                 freq: Any) -> None:
    """A few lines for people: how the structure was obtained, its energy and parameters."""
    if opt is None:
        how = "at the geometry given (not optimised)"
    else:
        state = "converged" if opt.converged else "NOT converged"
        held = f", holding {', '.join(opt.constraints)}" if opt.constraints else ""
        how = (f"optimised in {opt.steps} steps ({state}, largest force {opt.fmax:.1e} "
               f"Hartree/Angstrom{held})")
    print(f"{args.structure} on {name}: {how}")
    print(f"  energy    {energy:.8f} Hartree")
    for label, values, unit in (("bond", geometry.bonds, "Angstrom"),
                                ("angle", geometry.angles, "degrees"),
                                ("dihedral", geometry.dihedrals, "degrees")):
        for key, value in values.items():
            print(f"  {label:<9} {key:<16} {value:>10.4f} {unit}")
    if freq is not None:
        numbers = " ".join(f"{w:.1f}" for w in freq.wavenumbers)
        imaginary = f"; {freq.imaginary.size} imaginary (negative)" if freq.imaginary.size else ""
        print(f"  frequencies (cm^-1, {freq.hessian_method} Hessian{imaginary}): {numbers}")


def _write_json(path: str, result: dict[str, Any]) -> None:
    """``result`` as strict JSON (NaN as null), written atomically."""
    from levelup.atomicwrite import write_text_atomic
    from levelup.jsonvalues import json_ready

    text = json.dumps(json_ready(result, where=str(path)), indent=1, allow_nan=False)
    write_text_atomic(path, text + "\n")
