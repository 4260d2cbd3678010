"""The molecular database: a columnar container of molecules and their named properties.

Storage is padded numpy arrays (molecules, max_atoms, ...): the layout the models need, with
atomic number 0 marking padding after the last atom of a smaller molecule. Users see molecules
without padding when they index a single molecule or iterate.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from levelup.data.molecule import Molecule, hill_formula
from levelup.data.validate import check_charges, check_property, check_structure
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


def _as_species_row(row: Iterable[Any]) -> np.ndarray:
    out = []
    for e in row:
        if isinstance(e, (int, np.integer)) and int(e) == 0:
            out.append(0)  # padding
        else:
            out.append(atomic_number(e))
    return np.array(out, dtype=np.int64)


def _per_molecule(values: Any, n: int, name: str, default: int) -> np.ndarray:
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


def _to_internal(name: str, values: np.ndarray, unit: str, per_atom: bool
                 ) -> tuple[np.ndarray, str]:
    """(values converted to levelup's internal unit of their kind, that unit)."""
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


class Database:
    """N molecules: species, coordinates (Angstrom), charges, multiplicities, named properties.

    Build one with :meth:`from_numpy`, :meth:`from_ase`, :meth:`read` (files ASE reads) or
    :meth:`load` (native HDF5). Index it like a numpy array: ``db[3]`` is a :class:`Molecule`,
    ``db[::40]``, ``db[mask]`` and ``db[[0, 5, 7]]`` are new databases.

    Properties are float64 arrays, NaN where missing: per-molecule ``(molecules,)`` (energies,
    Hartree) or per-atom ``(molecules, atoms, ...)`` (forces, Hartree/Angstrom), with padding rows
    for atoms that do not exist.
    """

    def __init__(
        self,
        species: np.ndarray,
        coordinates: np.ndarray,
        charges: np.ndarray | None = None,
        multiplicities: np.ndarray | None = None,
        properties: dict[str, np.ndarray] | None = None,
        info: dict[str, PropertyInfo] | None = None,
        *,
        validate: bool = True,
    ) -> None:
        species = np.asarray(species, dtype=np.int64)
        coordinates = np.asarray(coordinates, dtype=np.float64)
        if validate:
            self._n_atoms = check_structure(species, coordinates)
        else:
            self._n_atoms = (species > 0).sum(axis=1)
        n = species.shape[0]
        self._species = species
        # padding coordinates are kept at 0 so that arithmetic on them stays finite
        self._coordinates = np.where((species > 0)[..., None], coordinates, 0.0)
        self._charges = _per_molecule(charges, n, "charges", 0)
        self._multiplicities = _per_molecule(multiplicities, n, "multiplicities", 1)
        if validate:
            check_charges(species, self._charges, self._multiplicities)
        self._properties: dict[str, np.ndarray] = {}
        self._info: dict[str, PropertyInfo] = {}
        for name, values in (properties or {}).items():
            meta = (info or {}).get(name)
            if meta is None:
                self.set(name, values)
            else:
                self.set(name, values, unit=meta.unit, level=meta.level, spec=meta.spec)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_numpy(
        cls,
        coordinates: np.ndarray,
        species: np.ndarray | Sequence[Any],
        charges: int | np.ndarray | None = None,
        multiplicities: int | np.ndarray | None = None,
    ) -> Database:
        """Build a database from arrays.

        Args:
            coordinates: Angstrom, shape (molecules, atoms, 3) (or (atoms, 3) for one molecule).
            species: atomic numbers or symbols, shape (molecules, atoms), or one list (atoms,)
                shared by all molecules. 0 pads molecules with fewer atoms.
            charges: total charge, one number for all or one per molecule (default 0).
            multiplicities: spin multiplicity 2S+1, one for all or one per molecule (default 1).
        """
        xyz = np.asarray(coordinates, dtype=np.float64)
        if xyz.ndim == 2:
            xyz = xyz[None]
        if xyz.ndim != 3 or xyz.shape[-1] != 3:
            raise DataError(
                f"coordinates must have shape (molecules, atoms, 3) in Angstrom; got {xyz.shape}"
            )
        sp = np.asarray(species, dtype=object)
        if sp.ndim == 1:
            row = _as_species_row(sp)
            if len(row) != xyz.shape[1]:
                raise DataError(
                    f"species lists {len(row)} atoms but coordinates have {xyz.shape[1]} per "
                    "molecule"
                )
            z = np.broadcast_to(row, xyz.shape[:2]).copy()
        elif sp.ndim == 2:
            z = np.stack([_as_species_row(r) for r in sp]) if len(sp) else np.zeros((0, 0), int)
        else:
            raise DataError(f"species must have shape (atoms,) or (molecules, atoms); got "
                            f"{sp.shape}")
        return cls(z, xyz, charges, multiplicities)

    @classmethod
    def from_ase(cls, atoms_list: Iterable[Any]) -> Database:
        """Build a database from ``ase.Atoms`` objects (energies and forces read when present)."""
        from levelup.data.io.asefiles import database_from_atoms

        return database_from_atoms(list(atoms_list))

    @classmethod
    def from_molecules(cls, molecules: Iterable[Molecule],
                       info: dict[str, PropertyInfo] | None = None) -> Database:
        """Build a database from :class:`Molecule` objects (their properties included).

        ``info`` gives the units and levels of the properties (default: Hartree per molecule,
        Hartree/Angstrom per atom).
        """
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
        return cls(species, xyz, [m.charge for m in mols], [m.multiplicity for m in mols],
                   props, info)

    @classmethod
    def read(cls, path: str | os.PathLike, index: Any = ":", format: str | None = None) -> Database:
        """Read molecules from any file ASE reads (xyz, extxyz, ...), or a native .h5 database."""
        from levelup.data.io.asefiles import read_file

        return read_file(path, index=index, format=format)

    def write(self, path: str | os.PathLike, format: str | None = None) -> None:
        """Write all molecules and properties to a file through ASE (extxyz by default)."""
        from levelup.data.io.asefiles import write_file

        write_file(self, path, format=format)

    def save(self, path: str | os.PathLike) -> None:
        """Save to the native HDF5 format, atomically."""
        from levelup.data.io.hdf5 import save_database

        save_database(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike, start: int | None = None,
             stop: int | None = None) -> Database:
        """Load a native HDF5 database, or only molecules ``start:stop`` of it."""
        from levelup.data.io.hdf5 import load_database

        return load_database(path, start, stop)

    @classmethod
    def iter_chunks(cls, path: str | os.PathLike, size: int = 10000) -> Iterator[Database]:
        """Yield a native HDF5 database in chunks of ``size`` molecules (for larger-than-memory
        files)."""
        from levelup.data.io.hdf5 import iter_database_chunks

        return iter_database_chunks(path, size)

    @classmethod
    def concatenate(cls, databases: Sequence[Database]) -> Database:
        """One database holding the molecules of all ``databases`` in order.

        A property missing from some of them is NaN there; a property must have the same unit
        everywhere it appears.
        """
        if not databases:
            raise DataError("concatenate needs at least one database")
        width = max(db.max_atoms for db in databases)

        def pad(a: np.ndarray, fill: float) -> np.ndarray:
            if a.ndim < 2 or a.shape[1] == width:
                return a
            extra = np.full((a.shape[0], width - a.shape[1], *a.shape[2:]), fill, dtype=a.dtype)
            return np.concatenate([a, extra], axis=1)

        info: dict[str, PropertyInfo] = {}
        for db in databases:
            for name, meta in db._info.items():
                if name in info and (info[name].unit != meta.unit
                                     or info[name].per_atom != meta.per_atom):
                    raise DataError(
                        f"property {name!r} has unit {info[name].unit!r} in one database and "
                        f"{meta.unit!r} in another; convert one before concatenating"
                    )
                info.setdefault(name, meta)
        props: dict[str, np.ndarray] = {}
        for name, meta in info.items():
            parts = []
            for db in databases:
                if name in db._properties:
                    parts.append(pad(db._properties[name], np.nan))
                else:
                    shape = (len(db),)
                    if meta.per_atom:
                        tail = next(d._properties[name].shape[2:] for d in databases
                                    if name in d._properties)
                        shape = (len(db), width, *tail)
                    parts.append(np.full(shape, np.nan))
            props[name] = np.concatenate(parts)
        return cls(
            np.concatenate([pad(db._species, 0) for db in databases]),
            np.concatenate([pad(db._coordinates, 0.0) for db in databases]),
            np.concatenate([db._charges for db in databases]),
            np.concatenate([db._multiplicities for db in databases]),
            props,
            info,
            validate=False,
        )

    def __add__(self, other: Database) -> Database:
        if not isinstance(other, Database):
            return NotImplemented
        return Database.concatenate([self, other])

    # ------------------------------------------------------------------ arrays
    def __len__(self) -> int:
        return self._species.shape[0]

    @property
    def max_atoms(self) -> int:
        """Width of the padded arrays: the number of atoms of the largest molecule."""
        return self._species.shape[1]

    @property
    def species(self) -> np.ndarray:
        """Atomic numbers, (molecules, max_atoms), 0 after the last atom of smaller molecules."""
        return self._species

    @property
    def coordinates(self) -> np.ndarray:
        """Cartesian coordinates in Angstrom, (molecules, max_atoms, 3); 0 in padding."""
        return self._coordinates

    @property
    def n_atoms(self) -> np.ndarray:
        """Number of atoms of each molecule, (molecules,)."""
        return self._n_atoms

    @property
    def charges(self) -> np.ndarray:
        """Total charge of each molecule, (molecules,)."""
        return self._charges

    @property
    def multiplicities(self) -> np.ndarray:
        """Spin multiplicity 2S+1 of each molecule, (molecules,)."""
        return self._multiplicities

    @property
    def elements(self) -> list[int]:
        """Sorted atomic numbers of the elements present."""
        return sorted(int(z) for z in np.unique(self._species) if z > 0)

    @property
    def formulas(self) -> list[str]:
        """Hill formula of each molecule."""
        return [hill_formula(self._species[i, : self._n_atoms[i]]) for i in range(len(self))]

    @property
    def properties(self) -> dict[str, PropertyInfo]:
        """Name -> :class:`PropertyInfo` of every property (a copy)."""
        return dict(self._info)

    def get(self, name: str, unit: str | None = None) -> np.ndarray:
        """Values of property ``name`` (a read-only view): (molecules,) or (molecules, atoms, ...).

        With ``unit`` (e.g. "Hartree" or "Hartree/Angstrom", as training asks), raise DataError
        unless the property is recorded in exactly that unit: values stored in "unknown" (extra
        columns of ASE files) or in another kind of unit are never taken for energies.
        """
        try:
            values = self._properties[name]
        except KeyError:
            known = ", ".join(repr(k) for k in self._properties) or "none"
            raise DataError(f"no property {name!r} in this database; it has: {known}") from None
        recorded = self._info[name].unit
        if unit is not None and recorded != unit:
            example = "eV/Angstrom" if "/" in unit else "eV"
            raise DataError(f"property {name!r} is recorded in {recorded!r}, but {unit} is needed "
                            f"here: if its values are in a unit levelup knows, store them again "
                            f"with it, e.g. db.set({name!r}, db.get({name!r}), unit={example!r}), "
                            f"which converts them to {unit}")
        view = values.view()
        view.flags.writeable = False
        return view

    def set(
        self,
        name: str,
        values: Any,
        *,
        unit: str | None = None,
        level: str | None = None,
        spec: dict[str, Any] | None = None,
    ) -> None:
        """Store property ``name`` (replacing one of that name).

        Args:
            values: (molecules,) for per-molecule values or (molecules, atoms, ...) per atom;
                NaN marks a missing value.
            unit: unit of the values; default "Hartree" per molecule, "Hartree/Angstrom" per atom.
                Energies in eV, kcal/mol or kJ/mol and forces in those per Angstrom or per Bohr
                are converted, and the internal unit (Hartree, Hartree/Angstrom) is recorded;
                see :mod:`levelup.units` for every unit accepted ("unknown" included). Any
                other unit raises DataError listing the valid ones.
            level: level of theory ("method/basis") for quantum-chemistry labels.
            spec: provenance (program, version, settings).
        """
        if not isinstance(name, str) or not name:
            raise DataError(f"a property name must be a non-empty string; got {name!r}")
        arr = check_property(name, values, self._species).copy()
        per_atom = arr.ndim >= 2
        if per_atom:
            arr[~(self._species > 0)] = np.nan
        if unit is None:
            unit = FORCE if per_atom else ENERGY
        else:
            arr, unit = _to_internal(name, arr, unit, per_atom)
        self._properties[name] = arr
        self._info[name] = PropertyInfo(unit=unit, level=level, per_atom=per_atom,
                                        spec=dict(spec or {}))

    def remove(self, name: str) -> None:
        """Delete property ``name``."""
        self.get(name)
        del self._properties[name]
        del self._info[name]

    def copy(self) -> Database:
        """A deep copy."""
        return self._take(np.arange(len(self)))

    # ------------------------------------------------------------------ indexing
    def _take(self, rows: np.ndarray) -> Database:
        width = int(self._n_atoms[rows].max()) if len(rows) else 0
        new = Database.__new__(Database)
        new._species = self._species[rows, :width].copy()
        new._coordinates = self._coordinates[rows, :width].copy()
        new._n_atoms = self._n_atoms[rows].copy()
        new._charges = self._charges[rows].copy()
        new._multiplicities = self._multiplicities[rows].copy()
        new._properties = {
            k: (v[rows, :width] if v.ndim >= 2 else v[rows]).copy()
            for k, v in self._properties.items()
        }
        new._info = {k: replace(v, spec=dict(v.spec)) for k, v in self._info.items()}
        return new

    def _rows(self, index: Any) -> np.ndarray:
        n = len(self)
        if isinstance(index, slice):
            return np.arange(n)[index]
        arr = np.asarray(index)
        if arr.dtype == bool:
            if arr.shape != (n,):
                raise IndexError(f"boolean mask has shape {arr.shape}; expected ({n},)")
            return np.flatnonzero(arr)
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            if arr.ndim == 1 and arr.size == 0:
                return arr.astype(np.int64)
            raise IndexError(
                f"index a database with an int, a slice, a boolean mask or an array of ints; "
                f"got {index!r}"
            )
        if arr.size and (arr.max() >= n or arr.min() < -n):
            raise IndexError(f"index out of range for a database of {n} molecules")
        return np.where(arr < 0, arr + n, arr).astype(np.int64)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, (int, np.integer)):
            i = int(index)
            n = len(self)
            if not -n <= i < n:
                raise IndexError(f"molecule {i} out of range for a database of {n} molecules")
            return self.molecule(i % n)
        return self._take(self._rows(index))

    def molecule(self, i: int) -> Molecule:
        """Molecule ``i`` without padding (a copy)."""
        a = int(self._n_atoms[i])
        props: dict[str, Any] = {}
        for k, v in self._properties.items():
            props[k] = v[i, :a].copy() if v.ndim >= 2 else float(v[i])
        return Molecule(
            species=self._species[i, :a].copy(),
            coordinates=self._coordinates[i, :a].copy(),
            charge=int(self._charges[i]),
            multiplicity=int(self._multiplicities[i]),
            properties=props,
        )

    def __iter__(self) -> Iterator[Molecule]:
        for i in range(len(self)):
            yield self.molecule(i)

    def index_of(self, molecule: Molecule, atol: float = 1e-8) -> int:
        """Index of the first molecule with the same species and coordinates (Angstrom, within
        ``atol``), or -1."""
        a = len(molecule.species)
        if a > self.max_atoms:
            return -1
        same = self._n_atoms == a
        same &= (self._species[:, :a] == molecule.species).all(axis=1)
        cand = np.flatnonzero(same)
        if cand.size == 0:
            return -1
        diff = np.abs(self._coordinates[cand, :a] - molecule.coordinates).max(axis=(1, 2))
        hit = cand[diff <= atol]
        return int(hit[0]) if hit.size else -1

    def __contains__(self, molecule: object) -> bool:
        if not isinstance(molecule, Molecule):
            return False
        return self.index_of(molecule) >= 0

    # ------------------------------------------------------------------ splitting
    def split(self, *sizes: float, seed: int | None = 0, shuffle: bool = True) -> list[Database]:
        """Split into parts by count (ints) or fraction (floats summing to at most 1).

        The molecules are drawn at random with ``seed`` (or in order when ``shuffle=False``).
        Fractions are rounded; when they sum to 1 the last part takes the remainder.

        Example: ``train, val = db.split(0.8, 0.2, seed=1)`` or ``db.split(10, 2)``.
        """
        n = len(self)
        if not sizes:
            raise DataError("split needs the size of each part, e.g. split(0.8, 0.2)")
        if all(isinstance(s, (int, np.integer)) for s in sizes):
            counts = [int(s) for s in sizes]
        elif all(0 <= float(s) <= 1 for s in sizes):
            total = float(sum(sizes))
            if total > 1 + 1e-9:
                raise DataError(f"fractions {sizes} sum to {total:.3g} > 1")
            counts = [int(round(float(s) * n)) for s in sizes]
            if abs(total - 1) < 1e-9:
                counts[-1] = n - sum(counts[:-1])
        else:
            raise DataError(f"split sizes must be all counts (ints) or all fractions (0..1); "
                            f"got {sizes}")
        if any(c < 0 for c in counts) or sum(counts) > n:
            raise DataError(f"cannot split {n} molecules into parts of {counts}")
        order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
        parts, start = [], 0
        for c in counts:
            parts.append(self._take(np.sort(order[start : start + c])))
            start += c
        return parts

    def split_every(self, k: int, offset: int = 0) -> tuple[Database, Database]:
        """(every k-th molecule starting at ``offset``, all the others)."""
        if k < 1:
            raise DataError(f"split_every needs k >= 1; got {k}")
        picked = np.zeros(len(self), dtype=bool)
        picked[offset::k] = True
        return self[picked], self[~picked]

    # ------------------------------------------------------------------ geometry
    def _atoms(self, *indices: int) -> list[np.ndarray]:
        for i in indices:
            if (self._n_atoms <= i).any() or i < 0:
                raise DataError(f"atom index {i} is out of range for some molecules "
                                f"(smallest has {self._n_atoms.min()} atoms)")
        return [self._coordinates[:, i] for i in indices]

    def distance(self, i: int, j: int) -> np.ndarray:
        """Distance between atoms i and j of every molecule, Angstrom, (molecules,)."""
        a, b = self._atoms(i, j)
        return np.linalg.norm(b - a, axis=-1)

    def angle(self, i: int, j: int, k: int) -> np.ndarray:
        """Angle i-j-k (at atom j) of every molecule, degrees, (molecules,)."""
        a, b, c = self._atoms(i, j, k)
        u, v = a - b, c - b
        cos = (u * v).sum(-1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
        return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))

    def dihedral(self, i: int, j: int, k: int, l: int) -> np.ndarray:
        """Dihedral angle i-j-k-l of every molecule, degrees in (-180, 180], (molecules,)."""
        a, b, c, d = self._atoms(i, j, k, l)
        b0, b1, b2 = a - b, c - b, d - c
        b1n = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
        v = b0 - (b0 * b1n).sum(-1, keepdims=True) * b1n
        w = b2 - (b2 * b1n).sum(-1, keepdims=True) * b1n
        x = (v * w).sum(-1)
        y = (np.cross(b1n, v) * w).sum(-1)
        return np.degrees(np.arctan2(y, x))

    # ------------------------------------------------------------------ misc
    def to_ase(self) -> list[Any]:
        """All molecules as ``ase.Atoms`` objects."""
        return [m.to_ase() for m in self]

    def __repr__(self) -> str:
        formulas = sorted(set(self.formulas)) if len(self) <= 100000 else ["..."]
        shown = ", ".join(formulas[:5]) + (", ..." if len(formulas) > 5 else "")
        props = ", ".join(self._properties) or "none"
        return f"Database({len(self)} molecules: {shown}; properties: {props})"
