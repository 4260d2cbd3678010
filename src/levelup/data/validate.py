"""Checks that a database is physically and structurally sound, with errors a chemist can act on."""

from __future__ import annotations

import numpy as np

from ..elements import MAX_Z
from ..errors import DataError

#: Two atoms closer than this (Angstrom) are almost certainly a unit or input mistake.
MIN_DISTANCE = 0.1


def check_structure(species: np.ndarray, coordinates: np.ndarray) -> np.ndarray:
    """Check padded species (molecules, atoms) and coordinates (molecules, atoms, 3).

    Returns the number of atoms of each molecule, shape (molecules,). Padding is atomic number 0
    after the last real atom.
    """
    if species.ndim != 2:
        raise DataError(
            f"species must have shape (molecules, atoms); got shape {species.shape}"
        )
    if coordinates.ndim != 3 or coordinates.shape[2] != 3:
        raise DataError(
            f"coordinates must have shape (molecules, atoms, 3) in Angstrom; "
            f"got shape {coordinates.shape}"
        )
    if coordinates.shape[:2] != species.shape:
        raise DataError(
            f"coordinates {coordinates.shape} and species {species.shape} disagree: "
            "give one atomic number per atom of each molecule"
        )
    bad = (species < 0) | (species > MAX_Z)
    if bad.any():
        i, a = np.argwhere(bad)[0]
        raise DataError(
            f"molecule {i}, atom {a}: unknown atomic number {species[i, a]}; "
            f"expected 1..{MAX_Z}"
        )
    real = species > 0
    n_atoms = real.sum(axis=1)
    # Real atoms must come first: a 0 followed by a real atom is a hole, not padding.
    holes = real[:, 1:] & ~real[:, :-1]
    if holes.any():
        i = int(np.argwhere(holes.any(axis=1))[0, 0])
        raise DataError(
            f"molecule {i}: atomic number 0 before a real atom; 0 marks padding and may only "
            "follow the last atom"
        )
    empty = n_atoms == 0
    if empty.any():
        raise DataError(f"molecule {int(np.argmax(empty))} has no atoms")
    finite = np.isfinite(coordinates).all(axis=2) | ~real
    if not finite.all():
        i, a = np.argwhere(~finite)[0]
        raise DataError(
            f"molecule {i}, atom {a}: coordinates are NaN or infinite; "
            "fix or drop that molecule"
        )
    check_distances(coordinates, real)
    return n_atoms


def check_distances(coordinates: np.ndarray, real: np.ndarray, chunk: int = 4096) -> None:
    """Raise DataError if two atoms of one molecule are closer than MIN_DISTANCE Angstrom."""
    n, a = real.shape
    if a < 2:
        return
    iu, ju = np.triu_indices(a, k=1)
    for start in range(0, n, chunk):
        xyz = coordinates[start : start + chunk]
        pair_real = real[start : start + chunk][:, iu] & real[start : start + chunk][:, ju]
        d = np.linalg.norm(xyz[:, iu] - xyz[:, ju], axis=-1)  # (chunk, pairs)
        close = (d < MIN_DISTANCE) & pair_real
        if close.any():
            m, p = np.argwhere(close)[0]
            raise DataError(
                f"molecule {start + m}: atoms {iu[p]} and {ju[p]} are {d[m, p]:.3g} Angstrom "
                f"apart (less than {MIN_DISTANCE}); coordinates must be in Angstrom, not Bohr "
                "or nm, and atoms must not overlap"
            )


def check_charges(species: np.ndarray, charges: np.ndarray, multiplicities: np.ndarray) -> None:
    """Check that each charge and multiplicity are possible for the molecule's electrons."""
    n = species.shape[0]
    for name, values in (("charges", charges), ("multiplicities", multiplicities)):
        if values.shape != (n,):
            raise DataError(f"{name} must have one value per molecule ({n}); got shape "
                            f"{values.shape}")
    if (multiplicities < 1).any():
        i = int(np.argmax(multiplicities < 1))
        raise DataError(f"molecule {i}: multiplicity {multiplicities[i]} is not 2S+1 >= 1")
    electrons = species.sum(axis=1) - charges
    unpaired = multiplicities - 1
    bad = (electrons < 0) | (unpaired > electrons) | ((electrons - unpaired) % 2 != 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            f"molecule {i}: charge {charges[i]} and multiplicity {multiplicities[i]} are "
            f"impossible with {electrons[i]} electrons; an even number of electrons needs an "
            "odd multiplicity (1, 3, ...) and an odd number an even one (2, 4, ...)"
        )


def check_property(name: str, values: np.ndarray, species: np.ndarray) -> np.ndarray:
    """Check a property array: shape (molecules,) or (molecules, atoms, ...). Returns float64."""
    n, a = species.shape
    try:
        values = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"property {name!r}: values are not numbers ({exc})") from None
    if values.ndim == 0 or values.shape[0] != n:
        raise DataError(
            f"property {name!r} has shape {values.shape}; expected one value per molecule "
            f"({n},) or one per atom ({n}, {a}, ...)"
        )
    if values.ndim >= 2 and values.shape[1] != a:
        raise DataError(
            f"property {name!r} has shape {values.shape}; a per-atom property needs shape "
            f"({n}, {a}, ...), one row per atom"
        )
    return values
