"""Checks that a database is physically and structurally sound, with errors a chemist can act on."""

from __future__ import annotations

import numpy as np

from levelup.data.molecule import hill_formula
from levelup.elements import MAX_Z
from levelup.errors import DataError

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
    """Raise DataError if two atoms of one molecule are closer than MIN_DISTANCE Angstrom.

    ``coordinates`` (molecules, atoms, 3) Angstrom; ``real`` (molecules, atoms) bool, False for
    padding; ``chunk`` molecules are compared at a time to bound memory.
    """
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
    """Check that each charge and multiplicity are possible for the molecule's electrons.

    ``species`` (molecules, atoms) atomic numbers, 0 for padding; ``charges`` and
    ``multiplicities`` (molecules,) in elementary charges and 2S+1.
    """
    n = species.shape[0]
    for name, values in (("charges", charges), ("multiplicities", multiplicities)):
        if values.shape != (n,):
            raise DataError(f"{name} must have one value per molecule ({n}); got shape "
                            f"{values.shape}")
    if (multiplicities < 1).any():
        i = int(np.argmax(multiplicities < 1))
        raise DataError(f"molecule {i}: multiplicity {multiplicities[i]} is not 2S+1 >= 1")
    check_electrons(species, charges, multiplicities)


def check_electrons(species: np.ndarray, charges: np.ndarray, multiplicities: np.ndarray) -> None:
    """Raise DataError unless each molecule's charge leaves it a number of electrons >= 0 that
    its multiplicity 2S+1 fits (same parity as the electrons, at most electrons + 1).

    Args:
        species: (molecules, atoms) atomic numbers, 0 for padding.
        charges, multiplicities: (molecules,) total charge (elementary charges) and 2S+1.
    """
    species = np.asarray(species)
    charges = np.asarray(charges).astype(int)
    mults = np.asarray(multiplicities).astype(int)
    electrons = species.sum(axis=1) - charges
    bad = ((electrons < 0) | (mults < 1) | (mults - 1 > electrons)
           | ((electrons - mults + 1) % 2 != 0))
    if not bad.any():
        return
    i = int(np.argmax(bad))
    row = species[i][species[i] > 0]
    what = f"molecule {i} ({hill_formula(row)}, {int(row.sum())} protons)"
    raise DataError(f"{what}: " + electron_problem(int(row.sum()), int(charges[i]), int(mults[i])))


def electron_problem(protons: int, charge: int, multiplicity: int) -> str:
    """Why ``charge`` and ``multiplicity`` are impossible for ``protons`` protons, and what is
    possible ("" when they are fine)."""
    electrons = protons - charge
    if electrons < 0:
        return (f"charge {charge} is impossible: it would leave {electrons} electrons; the "
                f"charge can be at most +{protons} (no electrons left); give a smaller charge")
    allowed = list(range(electrons % 2 + 1, electrons + 2, 2))
    if multiplicity in allowed:
        return ""
    if len(allowed) <= 3:
        possible = " or ".join(map(str, allowed))
    else:
        possible = f"{allowed[0]}, {allowed[1]}, {allowed[2]}, ... up to {allowed[-1]}"
    parity = "an odd" if electrons % 2 else "an even"
    plural = "s" if electrons != 1 else ""
    return (f"multiplicity {multiplicity} is impossible with charge {charge}: that leaves "
            f"{electrons} electron{plural} ({parity} number), which allow{'s' if not plural else ''} "
            f"only multiplicity {possible}; use {'that' if len(allowed) == 1 else 'one of those'} "
            "or another charge")


def check_property(name: str, values: np.ndarray, species: np.ndarray) -> np.ndarray:
    """Check a property array: shape (molecules,) or (molecules, atoms, ...) for ``species``
    (molecules, atoms). Returns it as float64."""
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
