"""MLatom's transfer-learning tutorial, the study ``levelup demo`` runs: 451 H2 geometries
(r = 0.50 ... 5.00 Angstrom), HF/STO-3G -> CISD/cc-pVDZ from the tutorial's 12 points.

The study itself is the bundled study file :data:`STUDY` (the same text as
examples/h2_tutorial.toml), run by :func:`levelup.study.runner.run_study` like any other. This
module holds the two pieces of it that are code: the scan and the 10 + 2 points.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from levelup.data import Database

if TYPE_CHECKING:
    from levelup.study.schema import Study

#: The bundled study file of ``levelup demo``.
STUDY = Path(__file__).with_name("h2_tutorial.toml")

LOW, HIGH = "HF/STO-3G", "CISD/cc-pVDZ"


def h2_scan() -> Database:
    """The tutorial's 451 H2 geometries: atom 0 at the origin, atom 1 at (0, 0, r), r in
    0.50, 0.51, ..., 5.00 Angstrom (exactly the tutorial's ``np.arange(0.5, 5.01, 0.01)``)."""
    xyz = np.zeros((451, 2, 3))
    xyz[:, 1, 2] = np.arange(0.5, 5.01, 0.01)
    return Database.from_numpy(coordinates=xyz, species=[1, 1])


def tutorial_split(db: Database) -> tuple[Database, Database]:
    """The tutorial's 12 high-level points: every 40th geometry; of those, every 10th validates
    (r = 0.5, 4.5 Angstrom) and the other 10 train (r = 0.9, 1.3, ..., 4.1, 4.9)."""
    twelve = db[::40]
    return twelve[np.arange(len(twelve)) % 10 != 0], twelve[::10]


def bundled_study(seed: int) -> Study:
    """The bundled tutorial study with its top-level ``seed`` set (every table's seed follows
    it, as if the file said so; the run folder's study.toml shows that text)."""
    from levelup.study.reader import parse_study
    from levelup.study.tutorial import STUDY

    text = re.sub(r"^seed = \d+", f"seed = {int(seed)}", STUDY.read_text(encoding="utf-8"),
                  count=1, flags=re.M)
    study = parse_study(tomllib.loads(text), base=STUDY.parent, name=STUDY.stem)
    return dataclasses.replace(study, source=STUDY, text=text)
