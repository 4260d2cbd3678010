"""The H2 scan of MLatom's transfer-learning tutorial: 451 geometries, r = 0.50 ... 5.00 Angstrom."""

from __future__ import annotations

import numpy as np

from ..data import Database


def h2_scan() -> Database:
    """The tutorial's 451 H2 geometries: atom 0 at the origin, atom 1 at (0, 0, r), r in
    0.50, 0.51, ..., 5.00 Angstrom (exactly the tutorial's ``np.arange(0.5, 5.01, 0.01)``)."""
    xyz = np.zeros((451, 2, 3))
    xyz[:, 1, 2] = np.arange(0.5, 5.01, 0.01)
    return Database.from_numpy(coordinates=xyz, species=[1, 1])
