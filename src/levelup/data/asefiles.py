"""Exchange with ASE: ``ase.Atoms`` lists and every file format ``ase.io`` knows.

ASE's own convention is eV and eV/Angstrom for the energy and forces of an attached calculator;
those are converted to Hartree and Hartree/Angstrom here, at the edge. levelup's named properties
travel in ``atoms.info`` (per molecule) and ``atoms.arrays`` (per atom) in levelup's units, with
their units and levels in ``atoms.info['levelup']`` (JSON), so an extxyz round trip loses nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.units import Hartree

from ..errors import DataError
from ..units import ENERGY, FORCE
from .database import Database, PropertyInfo
from .molecule import Molecule

_INFO_KEY = "levelup"
_RESERVED_INFO = {"charge", "multiplicity", _INFO_KEY}
_RESERVED_ARRAYS = {"numbers", "positions"}


def molecule_to_atoms(molecule: Molecule, info: dict[str, PropertyInfo] | None = None) -> Atoms:
    """An ``ase.Atoms`` for one molecule, its properties in ``info`` and ``arrays``."""
    atoms = Atoms(numbers=molecule.species, positions=molecule.coordinates)
    atoms.info["charge"] = molecule.charge
    atoms.info["multiplicity"] = molecule.multiplicity
    meta: dict[str, Any] = {}
    for name, value in molecule.properties.items():
        if np.ndim(value) == 0:
            if np.isnan(value):
                continue
            atoms.info[name] = float(value)
        else:
            if np.isnan(value).all():
                continue
            atoms.arrays[name] = np.asarray(value, dtype=np.float64)
        if info and name in info:
            meta[name] = {"unit": info[name].unit, "level": info[name].level}
    if meta:
        atoms.info[_INFO_KEY] = json.dumps(meta)
    return atoms


def database_from_atoms(atoms_list: list[Atoms]) -> Database:
    """A database from ``ase.Atoms`` objects.

    Energy and forces of an attached calculator (eV, eV/Angstrom) become properties "energy"
    (Hartree) and "forces" (Hartree/Angstrom). Numbers in ``info`` and per-atom float arrays
    become properties of those names; units come from ``info['levelup']`` when levelup wrote the
    file and are recorded as "unknown" otherwise.
    """
    if not atoms_list:
        raise DataError("no molecules given: the list of ase.Atoms is empty")
    n = len(atoms_list)
    width = max(len(a) for a in atoms_list)
    species = np.zeros((n, width), dtype=np.int64)
    xyz = np.zeros((n, width, 3))
    charges = np.zeros(n, dtype=np.int64)
    mults = np.ones(n, dtype=np.int64)
    scalars: dict[str, np.ndarray] = {}
    vectors: dict[str, np.ndarray] = {}
    meta: dict[str, dict[str, Any]] = {}
    for i, atoms in enumerate(atoms_list):
        if not isinstance(atoms, Atoms):
            raise DataError(f"molecule {i} is a {type(atoms).__name__}, not an ase.Atoms")
        a = len(atoms)
        species[i, :a] = atoms.numbers
        xyz[i, :a] = atoms.positions
        info = atoms.info
        charges[i] = int(info.get("charge", round(float(atoms.get_initial_charges().sum()))))
        if "multiplicity" in info:
            mults[i] = int(info["multiplicity"])
        elif "spin" in info:  # PySCF-style 2S
            mults[i] = int(info["spin"]) + 1
        else:
            electrons = int(atoms.numbers.sum()) - charges[i]
            mults[i] = 1 + electrons % 2
        if _INFO_KEY in info:
            try:
                meta.update(json.loads(info[_INFO_KEY]))
            except (TypeError, ValueError):
                raise DataError(f"molecule {i}: info['{_INFO_KEY}'] is not valid JSON") from None
        for key, value in info.items():
            if key in _RESERVED_INFO or isinstance(value, (str, bool, np.bool_)):
                continue
            if np.ndim(value) == 0 and isinstance(value, (int, float, np.number)):
                scalars.setdefault(key, np.full(n, np.nan))[i] = float(value)
        for key, value in atoms.arrays.items():
            if key in _RESERVED_ARRAYS or not np.issubdtype(np.asarray(value).dtype, np.floating):
                continue
            value = np.asarray(value, dtype=np.float64)
            arr = vectors.setdefault(key, np.full((n, width, *value.shape[1:]), np.nan))
            arr[i, :a] = value
        calc = atoms.calc
        if calc is not None:
            results = getattr(calc, "results", {})
            if "energy" in results:
                scalars.setdefault("energy", np.full(n, np.nan))[i] = results["energy"] / Hartree
                meta.setdefault("energy", {"unit": ENERGY, "level": None})
            if "forces" in results:
                arr = vectors.setdefault("forces", np.full((n, width, 3), np.nan))
                arr[i, :a] = np.asarray(results["forces"]) / Hartree
                meta.setdefault("forces", {"unit": FORCE, "level": None})
    db = Database(species, xyz, charges, mults)
    for name, values in {**scalars, **vectors}.items():
        m = meta.get(name, {})
        db.set(name, values, unit=m.get("unit") or "unknown", level=m.get("level"))
    return db


def read_file(path: str | os.PathLike, index: Any = ":", format: str | None = None) -> Database:
    """Read a file: native HDF5 (.h5/.hdf5) or anything ``ase.io.read`` knows."""
    from ase.io import read

    path = Path(path)
    if not path.exists():
        raise DataError(f"no such file: {path}")
    if path.suffix.lower() in (".h5", ".hdf5") and format is None:
        return Database.load(path)
    try:
        images = read(path, index=index, format=format)
    except Exception as exc:  # ASE raises many kinds; report them all the same way
        raise DataError(f"cannot read molecules from {path}: {exc}") from None
    if isinstance(images, Atoms):
        images = [images]
    return database_from_atoms(list(images))


def write_file(db: Database, path: str | os.PathLike, format: str | None = None) -> None:
    """Write a database through ``ase.io.write`` (extxyz unless the suffix says otherwise),
    atomically."""
    from ase.io import write

    from ..atomic import atomic_path

    path = Path(path)
    if format is None and path.suffix.lower() in ("", ".xyz", ".extxyz"):
        format = "extxyz"
    info = db.properties
    images = [molecule_to_atoms(m, info) for m in db]
    with atomic_path(path) as tmp:
        write(tmp, images, format=format)
