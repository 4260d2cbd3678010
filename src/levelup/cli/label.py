"""``levelup label INPUT LEVEL -o OUTPUT``: quantum-chemistry labels with PySCF.

Every finished label goes to a persistent cache at once, so an interrupted run (Ctrl-C, a
crash, kill -9) resumes where it stopped, and labelling the same molecules again is instant.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from levelup.cli.common import check_number, input_file, output_file, read_database, write_database
from levelup.errors import ConfigError
from levelup.qm.label import label_with_report
from levelup.qm.levels import forces_mode, parse_level
from levelup.qm.settings import LabelSettings

EXAMPLE = """examples:
  levelup label h2.h5 HF/STO-3G -o h2_hf.h5
  levelup label h2.h5 CISD/cc-pVDZ -o h2_cisd.h5 --forces --workers 2
  levelup label water.xyz B3LYP/6-31G* -o water.h5 --scheduler tcp://10.0.0.5:8786
  levelup label oh.xyz CCSD(T)/aug-cc-pVTZ -o oh.h5 --charge 0 --multiplicity 2

Levels are "method/basis" (case-insensitive): HF, any DFT functional PySCF knows, MP2, CISD,
CCSD, CCSD(T), FCI. Energies go to the property named after the level (Hartree); forces, with
--forces, to forces/<level> (Hartree/Angstrom). Exit status 0 when every molecule got a
label, 3 when some failed (their values are NaN; the summary says why)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``levelup label`` on the CLI's subcommand parser."""
    p = sub.add_parser("label", help="compute quantum-chemistry labels with PySCF",
                       description=__doc__, epilog=EXAMPLE,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="molecules: a levelup database (.h5) or any file ASE reads")
    p.add_argument("level", help='level of theory "method/basis", e.g. HF/STO-3G, CISD/cc-pVDZ')
    p.add_argument("-o", "--output", required=True, help="labelled database to write: .h5 for "
                   "the native format (keeps the full specification), else any format ASE "
                   "writes (extxyz for .xyz)")
    p.add_argument("--forces", nargs="?", const="analytic", choices=("analytic", "numerical"),
                   help="also compute forces (analytic gradients; 'numerical' for finite "
                   "differences)")
    p.add_argument("--name", help="property name for the energies (default: the level)")
    p.add_argument("--workers", type=int, help="parallel calculations (default: one per core)")
    p.add_argument("--threads", type=int, help="threads per worker (default: cores // workers)")
    p.add_argument("--cache", help="label cache file (default: the shared user cache; "
                   "$LEVELUP_CACHE_DIR moves it)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write a cache")
    p.add_argument("--scheduler", metavar="ADDR", help="run on a Dask cluster, e.g. "
                   "tcp://host:8786")
    p.add_argument("--charge", type=int, help="total charge of every molecule (overrides the "
                   "input)")
    p.add_argument("--multiplicity", type=int, help="spin multiplicity 2S+1 of every molecule "
                   "(overrides the input)")
    defaults = LabelSettings()
    p.add_argument("--conv-tol", type=float, default=defaults.conv_tol,
                   help="SCF energy convergence, Hartree (default: %(default)g)")
    p.add_argument("--max-cycle", type=int, default=defaults.max_cycle,
                   help="SCF iterations per attempt (default: %(default)d)")
    p.add_argument("--no-retries", action="store_true", help="do not retry a failed SCF with "
                   "damping/level shift and second-order SCF")
    p.add_argument("--grid-level", type=int, help="DFT grid level 0-9 (default: PySCF's, 3)")
    p.add_argument("--overwrite", action="store_true", help="replace a property NAME (or "
                   "forces/NAME) of the input that holds other labels (a property with the same "
                   "level and settings is reused without it: only its missing values are "
                   "computed)")
    p.set_defaults(func=run)


def _check_flags(args: argparse.Namespace) -> None:
    check_number(args.workers, "--workers", minimum=1, example="2")
    check_number(args.threads, "--threads", minimum=1, example="1")
    check_number(args.conv_tol, "--conv-tol", above=0, maximum=1e-3, example="1e-9")
    check_number(args.max_cycle, "--max-cycle", minimum=1, example="100")
    check_number(args.multiplicity, "--multiplicity", minimum=1, example="2")
    check_number(args.grid_level, "--grid-level", minimum=0, maximum=9, example="3")
    if args.cache and not args.no_cache and Path(args.cache).is_dir():
        raise ConfigError(f"--cache {args.cache} is a folder: give a file, e.g. "
                          f"{Path(args.cache) / 'labels.sqlite'}")


def _check_existing(db, name: str, level: str, mode: str, settings: LabelSettings,
                    overwrite: bool, where: str) -> None:
    """Refuse to replace property ``name`` (or forces/``name``) holding other labels than the
    ones asked for; labels of the same level and settings are reused by the library."""
    if overwrite:
        return
    wanted = {name: None} | ({f"forces/{name}": mode} if mode != "none" else {})
    for prop, forces in wanted.items():
        info = db.properties.get(prop)
        if info is None:
            continue
        same = (info.level == level and info.spec.get("settings_key") == settings.result_key()
                and (forces is None or info.spec.get("forces") == forces))
        if not same:
            held = f"level {info.level}" if info.level else "values of no level"
            raise ConfigError(f"{where} already has a property {prop!r} ({held}, other "
                              f"settings than asked): pass --overwrite to replace it, or "
                              f"choose another --name")


def run(args: argparse.Namespace) -> int:
    """Label a database at a level of theory with PySCF (cached, resumable); write the result."""
    _check_flags(args)
    cache = None if args.no_cache or not args.cache else args.cache
    output_file(args.output, inputs=[args.input, cache], database=True)
    if cache is not None and Path(cache).exists():
        input_file(cache, "--cache")
    level = parse_level(args.level)
    settings = LabelSettings(conv_tol=args.conv_tol, max_cycle=args.max_cycle,
                             retries=not args.no_retries, grid_level=args.grid_level)
    db = read_database(args.input)
    _check_existing(db, args.name or level.name, level.name, forces_mode(args.forces or False),
                    settings, args.overwrite, f"input {args.input}")
    client = None
    if args.scheduler:
        try:
            from distributed import Client
        except ImportError:
            print("levelup: error: --scheduler needs dask.distributed (pip install "
                  "'levelup[dask]')", file=sys.stderr)
            return 1
        client = Client(args.scheduler)
    try:
        out, report = label_with_report(
            db, args.level, forces=args.forces or False, workers=args.workers,
            threads=args.threads, cache=False if args.no_cache else args.cache, executor=client,
            name=args.name, progress=not args.quiet, charge=args.charge,
            multiplicity=args.multiplicity, settings=settings)
    finally:
        if client is not None:
            client.close()
    write_database(out, args.output)
    print(report.summary())
    print(f"wrote {args.output}: {len(out)} molecules, property {report.name!r}"
          + (f" and 'forces/{report.name}'" if args.forces else ""))
    return 0 if report.ok else 3
