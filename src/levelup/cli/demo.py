"""``levelup demo``: the H2 HF/STO-3G -> CISD/cc-pVDZ transfer-learning study of MLatom's tutorial.

Until labelling and training exist, it builds the tutorial's 451 H2 geometries and saves them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..studies.h2 import h2_scan

EXAMPLE = "example: levelup demo --out runs/demo --seed 0"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the H2 transfer-learning study", description=__doc__,
                       epilog=EXAMPLE)
    p.add_argument("--out", default="runs/demo", help="run folder (default runs/demo)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    db = h2_scan()
    db.save(out / "h2.h5")
    print(f"built the tutorial's {len(db)} H2 geometries (0.50-5.00 Angstrom) -> {out / 'h2.h5'}")
    return 0
