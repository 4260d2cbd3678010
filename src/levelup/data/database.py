"""The molecular database: a columnar container of molecules and their named properties.

Storage is padded numpy arrays (molecules, max_atoms, ...): the layout the models need, with
atomic number 0 marking padding after the last atom of a smaller molecule. Users see molecules
without padding when they index a single molecule or iterate.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from levelup.data import measure
from levelup.data.columns import (
    Columns,
    PropertyInfo,
    columns_from_molecules,
    concatenate_columns,
    padded_arrays,
    per_molecule,
    property_values,
    require_unit,
)
from levelup.data.io import asefiles, hdf5
from levelup.data.molecule import Molecule, hill_formula
from levelup.data.selection import find_geometry, selected_rows, split_rows
from levelup.data.validate import check_charges, check_structure
from levelup.errors import DataError

__all__ = ["Database", "PropertyInfo"]


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
        self._data = Columns(
            species,
            # padding coordinates are kept at 0 so that arithmetic on them stays finite
            np.where((species > 0)[..., None], coordinates, 0.0),
            per_molecule(charges, n, "charges", 0),
            per_molecule(multiplicities, n, "multiplicities", 1),
        )
        if validate:
            check_charges(species, self._data.charges, self._data.multiplicities)
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
        z, xyz = padded_arrays(coordinates, species)
        return cls(z, xyz, charges, multiplicities)

    @classmethod
    def _of(cls, columns: Columns, n_atoms: np.ndarray) -> Database:
        """A database that holds ``columns`` as they are (checked and converted already)."""
        new = cls.__new__(cls)
        new._data, new._n_atoms = columns, n_atoms
        return new

    @classmethod
    def _from_columns(cls, columns: Columns, *, validate: bool = True) -> Database:
        """A database of plain arrays (as the readers in :mod:`levelup.data.io` return them)."""
        return cls(columns.species, columns.coordinates, columns.charges, columns.multiplicities,
                   columns.properties, columns.info, validate=validate)

    @classmethod
    def from_ase(cls, atoms_list: Iterable[Any]) -> Database:
        """Build a database from ``ase.Atoms`` objects (energies and forces read when present).

        Energy and forces of an attached calculator (eV, eV/Angstrom) become properties "energy"
        (Hartree) and "forces" (Hartree/Angstrom); numbers in ``info`` and per-atom float arrays
        become properties of those names, in the units recorded by levelup or "unknown".
        """
        return cls._from_columns(asefiles.columns_from_atoms(list(atoms_list)))

    @classmethod
    def from_molecules(cls, molecules: Iterable[Molecule],
                       info: dict[str, PropertyInfo] | None = None) -> Database:
        """Build a database from :class:`Molecule` objects (their properties included).

        ``info`` gives the units and levels of the properties (default: Hartree per molecule,
        Hartree/Angstrom per atom).
        """
        return cls._from_columns(columns_from_molecules(molecules, info))

    @classmethod
    def read(cls, path: str | os.PathLike, index: Any = ":", format: str | None = None) -> Database:
        """Read molecules from any file ASE reads (xyz, extxyz, ...), or a native .h5 database.

        ``index`` picks molecules of an ASE file (ASE's syntax, ":" for all); ``format`` names
        the ASE format (guessed from the name and contents by default). Raises DataError for a
        folder, a missing file, a format outside
        :data:`~levelup.data.io.asefiles.SAFE_FORMATS` or a malformed file.
        """
        path = Path(path)
        asefiles.check_file(path)
        if path.suffix.lower() in (".h5", ".hdf5") and format is None:
            return cls.load(path)
        images = asefiles.read_images(path, index=index, format=format)
        try:
            return cls.from_ase(images)
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from None
        except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
            raise DataError(f"{path}: its molecules cannot be stored ({type(exc).__name__}: "
                            f"{exc}); check the charges, multiplicities and per-atom columns"
                            ) from None

    def write(self, path: str | os.PathLike, format: str | None = None) -> None:
        """Write all molecules and properties to a file through ASE (extxyz by default),
        atomically; units and levels travel in ``atoms.info['levelup']``."""
        info = self.properties
        asefiles.write_images([m.to_ase(info) for m in self], path, format=format)

    def save(self, path: str | os.PathLike) -> None:
        """Save to the native HDF5 format (:mod:`levelup.data.io.hdf5`), atomically."""
        hdf5.save_columns(self._data, path)

    @classmethod
    def load(cls, path: str | os.PathLike, start: int | None = None,
             stop: int | None = None) -> Database:
        """Load a native HDF5 database, or only molecules ``start:stop`` of it."""
        columns = hdf5.load_columns(path, start, stop)
        try:
            return cls._from_columns(columns)
        except DataError as exc:
            raise DataError(f"{path} is a damaged levelup database: {exc}") from None

    @classmethod
    def iter_chunks(cls, path: str | os.PathLike, size: int = 10000) -> Iterator[Database]:
        """Yield a native HDF5 database in chunks of ``size`` molecules (for larger-than-memory
        files)."""
        if size < 1:
            raise DataError(f"chunk size must be >= 1; got {size}")
        n = hdf5.database_length(path)
        for start in range(0, n, size):
            yield cls.load(path, start, min(n, start + size))

    @classmethod
    def concatenate(cls, databases: Sequence[Database]) -> Database:
        """One database holding the molecules of all ``databases`` in order.

        A property missing from some of them is NaN there; a property must have the same unit
        everywhere it appears.
        """
        if not databases:
            raise DataError("concatenate needs at least one database")
        columns = concatenate_columns([db._data for db in databases])
        return cls._from_columns(columns, validate=False)

    def __add__(self, other: Database) -> Database:
        """``a + b``: :meth:`concatenate` of the two."""
        if not isinstance(other, Database):
            return NotImplemented
        return Database.concatenate([self, other])

    # ------------------------------------------------------------------ arrays
    def __len__(self) -> int:
        """Number of molecules."""
        return self._data.species.shape[0]

    @property
    def max_atoms(self) -> int:
        """Width of the padded arrays: the number of atoms of the largest molecule."""
        return self._data.species.shape[1]

    @property
    def species(self) -> np.ndarray:
        """Atomic numbers, (molecules, max_atoms), 0 after the last atom of smaller molecules."""
        return self._data.species

    @property
    def coordinates(self) -> np.ndarray:
        """Cartesian coordinates in Angstrom, (molecules, max_atoms, 3); 0 in padding."""
        return self._data.coordinates

    @property
    def n_atoms(self) -> np.ndarray:
        """Number of atoms of each molecule, (molecules,)."""
        return self._n_atoms

    @property
    def charges(self) -> np.ndarray:
        """Total charge of each molecule, (molecules,)."""
        return self._data.charges

    @property
    def multiplicities(self) -> np.ndarray:
        """Spin multiplicity 2S+1 of each molecule, (molecules,)."""
        return self._data.multiplicities

    @property
    def elements(self) -> list[int]:
        """Sorted atomic numbers of the elements present."""
        return sorted(int(z) for z in np.unique(self._data.species) if z > 0)

    @property
    def formulas(self) -> list[str]:
        """Hill formula of each molecule."""
        return [hill_formula(self._data.species[i, : self._n_atoms[i]]) for i in range(len(self))]

    @property
    def properties(self) -> dict[str, PropertyInfo]:
        """Name -> :class:`PropertyInfo` of every property (a copy)."""
        return dict(self._data.info)

    def get(self, name: str, unit: str | None = None) -> np.ndarray:
        """Values of property ``name`` (a read-only view): (molecules,) or (molecules, atoms, ...).

        With ``unit`` (e.g. "Hartree" or "Hartree/Angstrom", as training asks), raise DataError
        unless the property is recorded in exactly that unit: values stored in "unknown" (extra
        columns of ASE files) or in another kind of unit are never taken for energies.
        """
        try:
            values = self._data.properties[name]
        except KeyError:
            known = ", ".join(repr(k) for k in self._data.properties) or "none"
            raise DataError(f"no property {name!r} in this database; it has: {known}") from None
        if unit is not None:
            require_unit(name, self._data.info[name].unit, unit)
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
        arr, unit = property_values(name, values, self._data.species, unit)
        self._data.properties[name] = arr
        self._data.info[name] = PropertyInfo(unit=unit, level=level, per_atom=arr.ndim >= 2,
                                        spec=dict(spec or {}))

    def remove(self, name: str) -> None:
        """Delete property ``name``."""
        self.get(name)
        del self._data.properties[name]
        del self._data.info[name]

    def copy(self) -> Database:
        """A deep copy."""
        return self._take(np.arange(len(self)))

    # ------------------------------------------------------------------ indexing
    def _take(self, rows: np.ndarray) -> Database:
        """A new database of copies of the molecules ``rows`` (k,)."""
        width = int(self._n_atoms[rows].max()) if len(rows) else 0
        return Database._of(self._data.take(rows, width), self._n_atoms[rows].copy())

    def __getitem__(self, index: Any) -> Any:
        """``db[i]``: molecule i (a :class:`Molecule`); ``db[slice]``, ``db[mask]`` or
        ``db[[i, j, ...]]``: a new database of those molecules."""
        if isinstance(index, (int, np.integer)):
            i = int(index)
            n = len(self)
            if not -n <= i < n:
                raise IndexError(f"molecule {i} out of range for a database of {n} molecules")
            return self.molecule(i % n)
        return self._take(selected_rows(index, len(self)))

    def molecule(self, i: int) -> Molecule:
        """Molecule ``i`` without padding (a copy)."""
        return self._data.molecule(i, int(self._n_atoms[i]))

    def __iter__(self) -> Iterator[Molecule]:
        """The molecules in order, each a :class:`Molecule` without padding."""
        for i in range(len(self)):
            yield self.molecule(i)

    def index_of(self, molecule: Molecule, atol: float = 1e-8) -> int:
        """Index of the first molecule with the same species and coordinates (Angstrom, within
        ``atol``), or -1."""
        return find_geometry(self._data.species, self._data.coordinates, self._n_atoms, molecule.species,
                             molecule.coordinates, atol)

    def __contains__(self, molecule: object) -> bool:
        """``mol in db``: True when :meth:`index_of` finds it."""
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
        return [self._take(rows) for rows in split_rows(sizes, len(self), seed, shuffle)]

    def split_every(self, k: int, offset: int = 0) -> tuple[Database, Database]:
        """(every k-th molecule starting at ``offset``, all the others)."""
        if k < 1:
            raise DataError(f"split_every needs k >= 1; got {k}")
        picked = np.zeros(len(self), dtype=bool)
        picked[offset::k] = True
        return self[picked], self[~picked]

    # ------------------------------------------------------------------ geometry
    def distance(self, i: int, j: int) -> np.ndarray:
        """Distance between atoms i and j of every molecule, Angstrom, (molecules,)."""
        return measure.distance(*measure.atom_positions(self._data.coordinates, self._n_atoms, i, j))

    def angle(self, i: int, j: int, k: int) -> np.ndarray:
        """Angle i-j-k (at atom j) of every molecule, degrees, (molecules,)."""
        return measure.angle(*measure.atom_positions(self._data.coordinates, self._n_atoms, i, j, k))

    def dihedral(self, i: int, j: int, k: int, l: int) -> np.ndarray:
        """Dihedral angle i-j-k-l of every molecule, degrees in (-180, 180], (molecules,)."""
        return measure.dihedral(*measure.atom_positions(self._data.coordinates, self._n_atoms,
                                                        i, j, k, l))

    # ------------------------------------------------------------------ misc
    def to_ase(self) -> list[Any]:
        """All molecules as ``ase.Atoms`` objects."""
        return [m.to_ase() for m in self]

    def __repr__(self) -> str:
        """One line: the number of molecules, their formulas and the property names."""
        formulas = sorted(set(self.formulas)) if len(self) <= 100000 else ["..."]
        shown = ", ".join(formulas[:5]) + (", ..." if len(formulas) > 5 else "")
        props = ", ".join(self._data.properties) or "none"
        return f"Database({len(self)} molecules: {shown}; properties: {props})"
