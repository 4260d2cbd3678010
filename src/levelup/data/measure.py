"""Internal coordinates measured on every molecule of padded arrays: distances (Angstrom), angles
and dihedrals (degrees). Atom indices count from 0.
"""

from __future__ import annotations

import numpy as np

from levelup.errors import DataError


def atom_positions(coordinates: np.ndarray, n_atoms: np.ndarray, *indices: int
                   ) -> list[np.ndarray]:
    """Positions (molecules, 3) of atom ``i`` of every molecule, for each ``i`` in ``indices``.

    ``coordinates`` are (molecules, max_atoms, 3) Angstrom and ``n_atoms`` (molecules,); raises
    DataError if some molecule has no atom ``i``.
    """
    for i in indices:
        if (n_atoms <= i).any() or i < 0:
            raise DataError(f"atom index {i} is out of range for some molecules "
                            f"(smallest has {n_atoms.min()} atoms)")
    return [coordinates[:, i] for i in indices]


def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|b - a|: distances (molecules,) between positions (molecules, 3), Angstrom."""
    return np.linalg.norm(b - a, axis=-1)


def angle(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Angle a-b-c at b, degrees (molecules,), from positions (molecules, 3)."""
    u, v = a - b, c - b
    cos = (u * v).sum(-1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def dihedral(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Dihedral a-b-c-d, degrees in (-180, 180], (molecules,), from positions (molecules, 3)."""
    b0, b1, b2 = a - b, c - b, d - c
    b1n = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
    v = b0 - (b0 * b1n).sum(-1, keepdims=True) * b1n  # b0 without its part along the axis
    w = b2 - (b2 * b1n).sum(-1, keepdims=True) * b1n
    x = (v * w).sum(-1)
    y = (np.cross(b1n, v) * w).sum(-1)
    return np.degrees(np.arctan2(y, x))
