"""A database as plain arrays ("columns"), what is known about each property, and the conversions
that bring user input into that form.

Columns are what files hold and what :class:`~levelup.data.database.Database` is built from: the
readers and writers in :mod:`levelup.data.io` know only these arrays, never the Database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from levelup.data.molecule import Molecule
from levelup.data.validate import check_property
from levelup.elements import atomic_number
from levelup.errors import DataError
from levelup.units import ENERGY, FORCE, parse_unit


@dataclass(frozen=True)
class PropertyInfo:
    """What a property is: its unit and, for labels, the level of theory that made it.

    Attributes:
        unit: unit of the values ("Hartree", "Hartree/Angstrom", ...).
        level: level of theory ("CISD/cc-pVDZ") for quantum-chemistry labels, else None.
        per_atom: True for per-atom arrays (forces), False for per-molecule scalars.
        spec: free-form provenance (method, basis, program version, settings).
    """

    unit: str
    level: str | None = None
    per_atom: bool = False
    spec: dict[str, Any] = field(default_factory=dict)


@dataclass
class Columns:
    """N molecules as padded arrays, the form in which files store a database.

    Attributes:
        species: atomic numbers, (molecules, max_atoms), 0 after the last atom of a molecule.
        coordinates: Angstrom, (molecules, max_atoms, 3).
        charges: total charge of each molecule (elementary charges), (molecules,).
        multiplicities: spin multiplicity 2S+1 of each molecule, (molecules,).
        properties: name -> float64 values, (molecules,) or (molecules, max_atoms, ...), NaN
            where missing.
        info: name -> :class:`PropertyInfo` of the properties that have one (a property without
            is taken to be in Hartree, or Hartree/Angstrom per atom).
    """

    species: np.ndarray
    coordinates: np.ndarray
    charges: np.ndarray
    multiplicities: np.ndarray
    properties: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict[str, PropertyInfo] = field(default_factory=dict)

    def take(self, rows: np.ndarray, width: int) -> Columns:
        """Copies of the molecules ``rows`` (k,), padded to ``width`` atoms (>= their largest)."""
        return Columns(
            self.species[rows, :width].copy(),
            self.coordinates[rows, :width].copy(),
            self.charges[rows].copy(),
            self.multiplicities[rows].copy(),
            {k: (v[rows, :width] if v.ndim >= 2 else v[rows]).copy()
             for k, v in self.properties.items()},
            {k: replace(v, spec=dict(v.spec)) for k, v in self.info.items()},
        )

    def molecule(self, i: int, atoms: int) -> Molecule:
        """Molecule ``i``, which has ``atoms`` atoms, without padding (a copy)."""
        props = {k: v[i, :atoms].copy() if v.ndim >= 2 else float(v[i])
                 for k, v in self.properties.items()}
        return Molecule(species=self.species[i, :atoms].copy(),
                        coordinates=self.coordinates[i, :atoms].copy(),
                        charge=int(self.charges[i]), multiplicity=int(self.multiplicities[i]),
                        properties=props)


def species_row(row: Iterable[Any]) -> np.ndarray:
    """Atomic numbers (atoms,) int64 from symbols or numbers; 0 stays 0 (padding)."""
    out = []
    for e in row:
        if isinstance(e, (int, np.integer)) and int(e) == 0:
            out.append(0)  # padding
        else:
            out.append(atomic_number(e))
    return np.array(out, dtype=np.int64)


def per_molecule(values: Any, n: int, name: str, default: int) -> np.ndarray:
    """(n,) int64 from one integer for all molecules, one per molecule, or None (``default``)."""
    if values is None:
        return np.full(n, default, dtype=np.int64)
    arr = np.asarray(values)
    if arr.ndim == 0:
        arr = np.full(n, arr)
    if arr.shape != (n,):
        raise DataError(f"{name} must be one number or one per molecule ({n}); got shape "
                        f"{arr.shape}")
    if not np.all(np.equal(np.mod(arr, 1), 0)):
        raise DataError(f"{name} must be integers; got {arr[np.mod(arr, 1) != 0][:3]}")
    return arr.astype(np.int64)


def padded_arrays(coordinates: Any, species: Any) -> tuple[np.ndarray, np.ndarray]:
    """(species (molecules, atoms) int64, coordinates (molecules, atoms, 3) float64 Angstrom)
    from coordinates (molecules, atoms, 3) or (atoms, 3) and atomic numbers or symbols,
    (molecules, atoms) or one list (atoms,) shared by all molecules."""
    xyz = np.asarray(coordinates, dtype=np.float64)
    if xyz.ndim == 2:
        xyz = xyz[None]
    if xyz.ndim != 3 or xyz.shape[-1] != 3:
        raise DataError(
            f"coordinates must have shape (molecules, atoms, 3) in Angstrom; got {xyz.shape}"
        )
    sp = np.asarray(species, dtype=object)
    if sp.ndim == 1:
        row = species_row(sp)
        if len(row) != xyz.shape[1]:
            raise DataError(
                f"species lists {len(row)} atoms but coordinates have {xyz.shape[1]} per "
                "molecule"
            )
        z = np.broadcast_to(row, xyz.shape[:2]).copy()
    elif sp.ndim == 2:
        z = np.stack([species_row(r) for r in sp]) if len(sp) else np.zeros((0, 0), int)
    else:
        raise DataError(f"species must have shape (atoms,) or (molecules, atoms); got "
                        f"{sp.shape}")
    return z, xyz


def columns_from_molecules(molecules: Iterable[Molecule],
                           info: dict[str, PropertyInfo] | None = None) -> Columns:
    """Padded arrays of :class:`~levelup.data.molecule.Molecule` objects, their properties
    included (NaN for molecules without one); ``info`` gives the properties' units."""
    mols = list(molecules)
    if not mols:
        raise DataError("no molecules given")
    n, width = len(mols), max(len(m) for m in mols)
    species = np.zeros((n, width), dtype=np.int64)
    xyz = np.zeros((n, width, 3))
    props: dict[str, np.ndarray] = {}
    for i, m in enumerate(mols):
        if not isinstance(m, Molecule):
            raise DataError(f"item {i} is a {type(m).__name__}, not a levelup Molecule")
        a = len(m)
        species[i, :a] = m.species
        xyz[i, :a] = m.coordinates
        for name, value in m.properties.items():
            if np.ndim(value) == 0:
                props.setdefault(name, np.full(n, np.nan))[i] = value
            else:
                value = np.asarray(value)
                arr = props.setdefault(name, np.full((n, width, *value.shape[1:]), np.nan))
                arr[i, :a] = value
    return Columns(species, xyz, np.array([m.charge for m in mols]),
                   np.array([m.multiplicity for m in mols]), props, dict(info or {}))


def to_internal_unit(name: str, values: np.ndarray, unit: str, per_atom: bool
                     ) -> tuple[np.ndarray, str]:
    """(``values`` converted in place to levelup's internal unit of their kind, that unit).

    ``values`` are (molecules,) or, with ``per_atom``, (molecules, atoms, ...); ``unit`` is any
    unit :func:`levelup.units.parse_unit` knows (e.g. eV -> Hartree, eV/Angstrom ->
    Hartree/Angstrom). Raises DataError for an unknown unit or a force unit on per-molecule values.
    """
    try:
        kind, internal, factor = parse_unit(unit)
    except DataError as exc:
        raise DataError(f"property {name!r}: {exc}") from None
    if kind == "force" and not per_atom:
        raise DataError(f"property {name!r}: {unit!r} is a force unit, but the values are one "
                        f"per molecule, shape {values.shape}: forces are (molecules, atoms, 3)")
    if factor != 1.0:
        values *= factor
    return values, internal


def property_values(name: str, values: Any, species: np.ndarray, unit: str | None
                    ) -> tuple[np.ndarray, str]:
    """(float64 copy of ``values`` in levelup's internal unit, that unit) for property ``name``
    of molecules with padded ``species`` (molecules, max_atoms).

    ``values`` are (molecules,) or per atom (molecules, max_atoms, ...), the latter set to NaN
    in padding. Without ``unit`` they are taken to be in Hartree (per molecule) or
    Hartree/Angstrom (per atom); with it they are converted by :func:`to_internal_unit`.
    """
    if not isinstance(name, str) or not name:
        raise DataError(f"a property name must be a non-empty string; got {name!r}")
    arr = check_property(name, values, species).copy()
    per_atom = arr.ndim >= 2
    if per_atom:
        arr[~(species > 0)] = np.nan
    if unit is None:
        return arr, FORCE if per_atom else ENERGY
    return to_internal_unit(name, arr, unit, per_atom)


def require_unit(name: str, recorded: str, unit: str) -> None:
    """DataError unless property ``name``, recorded in ``recorded``, is in exactly ``unit``:
    values in "unknown" (extra columns of ASE files) or in another unit are never taken for
    energies; the message says how to store them in a unit levelup converts."""
    if recorded != unit:
        example = "eV/Angstrom" if "/" in unit else "eV"
        raise DataError(f"property {name!r} is recorded in {recorded!r}, but {unit} is needed "
                        f"here: if its values are in a unit levelup knows, store them again "
                        f"with it, e.g. db.set({name!r}, db.get({name!r}), unit={example!r}), "
                        f"which converts them to {unit}")


def _pad(a: np.ndarray, width: int, fill: float) -> np.ndarray:
    """``a`` (molecules, atoms, ...) padded with ``fill`` to (molecules, width, ...)."""
    if a.ndim < 2 or a.shape[1] == width:
        return a
    extra = np.full((a.shape[0], width - a.shape[1], *a.shape[2:]), fill, dtype=a.dtype)
    return np.concatenate([a, extra], axis=1)


def _common_info(parts: Sequence[Columns]) -> dict[str, PropertyInfo]:
    """Name -> info over all ``parts``; DataError when a name's unit or kind differs."""
    info: dict[str, PropertyInfo] = {}
    for part in parts:
        for name, meta in part.info.items():
            if name in info and (info[name].unit != meta.unit
                                 or info[name].per_atom != meta.per_atom):
                raise DataError(
                    f"property {name!r} has unit {info[name].unit!r} in one database and "
                    f"{meta.unit!r} in another; convert one before concatenating"
                )
            info.setdefault(name, meta)
    return info


def concatenate_columns(parts: Sequence[Columns]) -> Columns:
    """The molecules of all ``parts`` in order, padded to the widest; a property missing from
    some parts is NaN there. Every property must have an entry in its part's ``info``."""
    width = max(p.species.shape[1] for p in parts)
    info = _common_info(parts)
    props: dict[str, np.ndarray] = {}
    for name, meta in info.items():
        arrays = []
        for part in parts:
            n = part.species.shape[0]
            if name in part.properties:
                arrays.append(_pad(part.properties[name], width, np.nan))
            elif meta.per_atom:
                tail = next(p.properties[name].shape[2:] for p in parts if name in p.properties)
                arrays.append(np.full((n, width, *tail), np.nan))
            else:
                arrays.append(np.full(n, np.nan))
        props[name] = np.concatenate(arrays)
    return Columns(
        np.concatenate([_pad(p.species, width, 0) for p in parts]),
        np.concatenate([_pad(p.coordinates, width, 0.0) for p in parts]),
        np.concatenate([p.charges for p in parts]),
        np.concatenate([p.multiplicities for p in parts]),
        props,
        info,
    )
