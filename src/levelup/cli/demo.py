"""``levelup demo``: the H2 HF/STO-3G -> CISD/cc-pVDZ transfer-learning study of MLatom's
tutorial, end to end: the bundled study file (levelup/study/h2_tutorial.toml, the same as
examples/h2_tutorial.toml) run by the study runner, as ``levelup run`` would: labels (cached),
pre-training, transfer, the tutorial's own protocol, scratch and delta baselines, plots,
metrics.json and report.md in the run folder. A second run reuses every label and model."""

from __future__ import annotations

import argparse
from pathlib import Path

from levelup.cli.common import output_folder
from levelup.errors import ConfigError

EXAMPLE = """examples:
  levelup demo --out runs/demo
  levelup demo --out runs/seed1 --seed 1 --cache labels.sqlite"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``levelup demo`` on the CLI's subcommand parser."""
    p = sub.add_parser("demo", help="run the H2 transfer-learning study", description=__doc__,
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/demo", help="run folder (default runs/demo)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    p.add_argument("--cache", default=None, help="label cache file (default: the user cache)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the bundled tutorial study into ``--out`` and print its errors table."""
    from levelup.study.runner import run_study
    from levelup.study.tutorial import bundled_study

    out = output_folder(args.out)
    if args.cache is not None and Path(args.cache).is_dir():
        raise ConfigError(f"--cache {args.cache} is a folder: give a file, e.g. "
                          f"{Path(args.cache) / 'labels.sqlite'}")
    quiet = getattr(args, "quiet", False)
    study = bundled_study(args.seed)
    result = run_study(study, out, cache=args.cache, progress=not quiet, log=print)
    print(f"H2 study (seed {args.seed}) -> {result.report}"
          + (f" (reused: {', '.join(result.reused)})" if result.reused else ""))
    print(f"{'model':32s} {'RMSE all':>9s} {'0.9-5.0':>8s} {'0.5-2.5':>8s}  kcal/mol")
    for name, m in result.metrics["models"].items():
        print(f"{name:32s} {m['rmse_all_kcalmol']:9.3f} {m['rmse_0.9-5.0_kcalmol']:8.3f} "
              f"{m['rmse_0.5-2.5_kcalmol']:8.3f}")
    return 0
