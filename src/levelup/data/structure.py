"""One structure from what a user holds (a Molecule, a one-molecule Database, an ase.Atoms or a
file), and databases of displaced copies of it. Coordinates in Angstrom.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from levelup.data.database import Database
from levelup.data.molecule import Molecule
from levelup.errors import DataError


def read_structure(path: str | os.PathLike, index: int | None = None) -> Molecule:
    """One molecule from a file: a native .h5 database or anything ASE reads.

    A file of several molecules needs ``index`` (Python indexing, -1 for the last).
    """
    db = Database.read(path)
    if index is None:
        if len(db) != 1:
            raise DataError(f"{path} holds {len(db)} molecules; choose one with index= "
                            f"(--index in the CLI), e.g. -1 for the last")
        return db[0]
    if not -len(db) <= index < len(db):
        raise DataError(f"index {index} is out of range for {path}, which holds {len(db)} "
                        "molecules")
    return db[int(index)]


def as_molecule(structure: Any) -> Molecule:
    """A Molecule from a Molecule, a one-molecule Database, an ase.Atoms or a file name."""
    if isinstance(structure, Molecule):
        return structure
    if isinstance(structure, Database):
        if len(structure) != 1:
            raise DataError(f"expected one molecule; the database holds {len(structure)} (take "
                            "one with db[i])")
        return structure[0]
    if isinstance(structure, (str, os.PathLike)):
        return read_structure(structure)
    from ase import Atoms

    if isinstance(structure, Atoms):
        return Database.from_ase([structure])[0]
    raise DataError(f"a structure is a levelup Molecule, a one-molecule Database, an ase.Atoms or "
                    f"a file name; got {type(structure).__name__}")


def database_of(mol: Molecule, coordinates: np.ndarray) -> Database:
    """(n, atoms, 3) Angstrom -> a database of n copies of ``mol``'s atoms, charge, multiplicity."""
    n = coordinates.shape[0]
    return Database(np.broadcast_to(mol.species, (n, len(mol))).copy(), coordinates,
                    np.full(n, mol.charge), np.full(n, mol.multiplicity))
