"""The native database file: HDF5 through h5py.

Layout (format version 1)::

    /                  attrs: format="levelup-database", format_version, length_unit, levelup_version
    /species           int16  (molecules, max_atoms), 0 = padding
    /coordinates       float64 (molecules, max_atoms, 3), Angstrom
    /charges           int64 (molecules,)
    /multiplicities    int64 (molecules,)
    /properties/p<k>   float64, attrs: name, unit, level, per_atom, spec (JSON)

Datasets are chunked by molecule so that a range of molecules is read without loading the file.
This module reads and writes plain arrays (:class:`~levelup.data.columns.Columns`); the Database
is built from those.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from levelup.atomicwrite import atomic_path
from levelup.data.columns import Columns, PropertyInfo
from levelup.errors import DataError
from levelup.units import LENGTH

#: Value of the root attribute "format" of a levelup database file.
FORMAT = "levelup-database"
#: Newest layout this module writes and reads (root attribute "format_version").
FORMAT_VERSION = 1


def save_columns(columns: Columns, path: str | os.PathLike) -> None:
    """Write a database's arrays to ``path`` (HDF5), atomically: a crash leaves any old file
    intact. Every property needs its :class:`~levelup.data.columns.PropertyInfo` in
    ``columns.info``.

    The file is built in memory (HDF5's core driver) and written with ordinary Python I/O, so a
    full disk is an :class:`~levelup.errors.OutputError` naming ``path`` rather than an HDF5
    library error (which can leave the library's file state broken and crash the process).
    """
    from levelup._version import __version__

    n, width = columns.species.shape
    rows = max(1, min(n, max(1, 2**20 // max(1, width * 24))))
    with atomic_path(path) as tmp:
        with h5py.File(tmp.name, "w", driver="core", backing_store=False) as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["length_unit"] = LENGTH
            f.attrs["levelup_version"] = __version__

            def put(where, name, data):
                chunks = (rows, *data.shape[1:]) if n else None
                return where.create_dataset(name, data=data, chunks=chunks)

            put(f, "species", columns.species.astype(np.int16))
            put(f, "coordinates", columns.coordinates)
            put(f, "charges", columns.charges)
            put(f, "multiplicities", columns.multiplicities)
            group = f.create_group("properties")
            for k, (name, meta) in enumerate(columns.info.items()):
                ds = put(group, f"p{k}", np.asarray(columns.properties[name]))
                ds.attrs["name"] = name
                ds.attrs["unit"] = meta.unit
                ds.attrs["level"] = meta.level or ""
                ds.attrs["per_atom"] = meta.per_atom
                ds.attrs["spec"] = json.dumps(meta.spec)
            f.flush()
            image = f.id.get_file_image()
        tmp.write_bytes(image)


#: Bytes of chunks HDF5 keeps per open dataset (one chunk of save_columns and some slack)
_CHUNK_CACHE = 2 * 2**20
#: Errors h5py and numpy raise for a damaged file; turned into DataError by the readers.
_DAMAGE = (KeyError, OSError, ValueError, TypeError, AttributeError, IndexError, RuntimeError,
           OverflowError)
#: Bytes a dataset may announce beyond what the file stores for it (fill values, compression):
#: a hand-made file could otherwise announce terabytes of zeros.
_MAX_UNBACKED = 256 * 2**20


def _open(path: str | os.PathLike) -> h5py.File:
    """``path`` opened read-only, its header checked; DataError if it is not a database."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a levelup database: give the path of a .h5 file")
    if not path.exists():
        raise DataError(f"no such database file: {path}")
    try:
        # chunk cache per dataset: HDF5 2 keeps 8 MiB of chunks of each by default, so a read
        # block by block (RowReader) would hold up to 8 MiB per dataset more as the file grows;
        # one chunk (<= 1 MiB, as save_columns writes them) is all a sequential read needs
        f = h5py.File(path, "r", rdcc_nbytes=_CHUNK_CACHE)
    except _DAMAGE:
        raise DataError(f"{path} is not an HDF5 file, so not a levelup database; build one "
                        "with Database.read(...) and save it with db.save(path)") from None
    try:
        _check_header(f, path)
    except BaseException:
        f.close()
        raise
    return f


def _check_header(f: h5py.File, path: Path) -> None:
    """DataError unless the root attributes say: levelup database, a version we read, Angstrom."""
    try:
        fmt, version, unit = (f.attrs.get(k) for k in ("format", "format_version", "length_unit"))
    except _DAMAGE as exc:
        raise DataError(f"{path} is a damaged HDF5 file: its attributes cannot be read ({exc})"
                        ) from None
    if not isinstance(fmt, str) or fmt != FORMAT:
        raise DataError(f"{path} is an HDF5 file but not a levelup database (format {fmt!r})")
    if not isinstance(version, (int, np.integer)) or isinstance(version, (bool, np.bool_)):
        raise DataError(f"{path} is a damaged levelup database: format_version {version!r} is "
                        "not an integer")
    if version > FORMAT_VERSION:
        raise DataError(
            f"{path} has database format version {version}, newer than this levelup reads "
            f"({FORMAT_VERSION}); upgrade levelup"
        )
    if not isinstance(unit, str) or unit != LENGTH:
        raise DataError(f"{path} records length unit {unit!r}; levelup needs {LENGTH}")


def _dataset(where: h5py.Group, name: str, kinds: str, ndim: int) -> h5py.Dataset:
    """``where[name]``: a plain dataset (stored in this file) of ``ndim`` dimensions and a
    numpy dtype kind in ``kinds``, else DataError (the caller adds the file name)."""
    link = where.get(name, getlink=True)
    if link is None:
        raise DataError(f"it has no {name!r} dataset")
    if not isinstance(link, h5py.HardLink):
        raise DataError(f"{name!r} is a {type(link).__name__} to another file or object; levelup "
                        "databases hold their data themselves")
    ds = where[name]
    if not isinstance(ds, h5py.Dataset) or ds.is_virtual or ds.external:
        raise DataError(f"{name!r} is not a dataset stored in the file")
    if ds.dtype.kind not in kinds or ds.ndim != ndim:
        raise DataError(f"{name!r} has dtype {ds.dtype} and {ds.ndim} dimensions; expected "
                        f"{ndim} dimensions of kind {kinds!r}")
    nominal = ds.size * ds.dtype.itemsize
    if nominal > _MAX_UNBACKED and nominal > 64 * ds.id.get_storage_size():
        raise DataError(f"{name!r} announces {nominal} bytes but the file stores "
                        f"{ds.id.get_storage_size()} for it")
    return ds


def _property(ds: h5py.Dataset, sel: slice) -> tuple[str, np.ndarray, PropertyInfo]:
    """(name, values, info) of one dataset of /properties."""
    attrs = {k: ds.attrs.get(k) for k in ("name", "unit", "level", "per_atom", "spec")}
    for key in ("name", "unit", "level", "spec"):
        if not isinstance(attrs[key], str):
            raise DataError(f"property dataset {ds.name}: attribute {key!r} is {attrs[key]!r}, "
                            "not a string")
    if not isinstance(attrs["per_atom"], (bool, np.bool_)):
        raise DataError(f"property dataset {ds.name}: per_atom is {attrs['per_atom']!r}")
    try:
        spec = json.loads(attrs["spec"])
    except (ValueError, RecursionError):
        spec = None
    if not isinstance(spec, dict):
        raise DataError(f"property {attrs['name']!r}: its spec is not a JSON object")
    info = PropertyInfo(unit=attrs["unit"], level=attrs["level"] or None,
                        per_atom=bool(attrs["per_atom"]), spec=spec)
    return attrs["name"], ds[sel], info


def _read_arrays(f: h5py.File, sel: slice) -> tuple:
    """species, coordinates, charges, multiplicities, properties, infos of rows ``sel``."""
    species = _dataset(f, "species", "iu", 2)
    n, width = species.shape
    coordinates = _dataset(f, "coordinates", "f", 3)
    if coordinates.shape != (n, width, 3):
        raise DataError(f"coordinates have shape {coordinates.shape}; species say {(n, width, 3)}")
    columns = [_dataset(f, name, "iu", 1) for name in ("charges", "multiplicities")]
    if any(ds.shape != (n,) for ds in columns):
        raise DataError(f"charges and multiplicities must have shape {(n,)}")
    group = f.get("properties")
    if not isinstance(group, h5py.Group):
        raise DataError("it has no 'properties' group")
    props, info = {}, {}
    for key in group:
        ds = group[key]
        if not isinstance(ds, h5py.Dataset):
            raise DataError(f"properties/{key} is not a dataset")
        _dataset(group, key, "fiu", ds.ndim)
        if ds.ndim == 0 or ds.shape[0] != n or (ds.ndim > 1 and ds.shape[1] != width):
            raise DataError(f"property dataset properties/{key} has shape {ds.shape}; expected "
                            f"({n},) or ({n}, {width}, ...)")
        name, values, meta = _property(ds, sel)
        props[name], info[name] = values, meta
    return (species[sel].astype(np.int64), coordinates[sel], columns[0][sel], columns[1][sel],
            props, info)


class RowReader:
    """A native database file held open to read ranges of molecules (h5py slices), for data
    larger than memory: nothing is read until :meth:`read` asks for rows. A context manager.

    Attributes:
        length: number of molecules in the file.
        width: atoms of its largest molecule (the padded width of every read).
        info: property name -> :class:`~levelup.data.columns.PropertyInfo`.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._file = _open(path)
        try:
            self._species = _dataset(self._file, "species", "iu", 2)
            self.length, self.width = (int(k) for k in self._species.shape)
            self._coordinates = _dataset(self._file, "coordinates", "f", 3)
            if self._coordinates.shape != (self.length, self.width, 3):
                raise DataError(f"coordinates have shape {self._coordinates.shape}; species say "
                                f"{(self.length, self.width, 3)}")
            group = self._file["properties"]
            self._properties, self.info = {}, {}
            for key in group:
                ds = _dataset(group, key, "fiu", group[key].ndim)
                if ds.ndim == 0 or ds.shape[0] != self.length:
                    raise DataError(f"property dataset properties/{key} has shape {ds.shape}")
                name, _, meta = _property(ds, slice(0, 0))
                self._properties[name], self.info[name] = ds, meta
        except (DataError, *_DAMAGE) as exc:
            self._file.close()
            raise DataError(f"{path} is a damaged levelup database: {exc}") from None

    def read(self, start: int, stop: int, properties: tuple[str, ...] = ()
             ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """(atomic numbers (m, width) int64, coordinates (m, width, 3) Angstrom, {name: values}
        of ``properties``) of molecules ``start:stop``, padded to the file's width."""
        unknown = [name for name in properties if name not in self._properties]
        if unknown:
            raise DataError(f"no property {unknown[0]!r} in {self.path}; it has: "
                            f"{', '.join(repr(k) for k in self._properties) or 'none'}")
        sel = slice(start, stop)
        try:
            return (self._species[sel].astype(np.int64), self._coordinates[sel],
                    {name: self._properties[name][sel] for name in properties})
        except _DAMAGE as exc:
            raise DataError(f"{self.path} is a damaged levelup database: {exc}") from None

    def read_species(self, start: int, stop: int) -> np.ndarray:
        """Atomic numbers (m, width) int64 of molecules ``start:stop``, nothing else read."""
        try:
            return self._species[start:stop].astype(np.int64)
        except _DAMAGE as exc:
            raise DataError(f"{self.path} is a damaged levelup database: {exc}") from None

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> RowReader:
        """The reader itself."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the file."""
        self.close()


def database_length(path: str | os.PathLike) -> int:
    """Number of molecules in a native database file, without loading it."""
    with _open(path) as f:
        try:
            return int(_dataset(f, "species", "iu", 2).shape[0])
        except DataError as exc:
            raise DataError(f"{path} is a damaged levelup database: {exc}") from None
        except _DAMAGE as exc:
            raise DataError(f"{path} is a damaged levelup database: {exc}") from None


def load_columns(path: str | os.PathLike, start: int | None = None,
                 stop: int | None = None) -> Columns:
    """The arrays of molecules ``start:stop`` (all by default) of a native database file, padded
    only to the largest molecule among them.

    Raises DataError, naming the file and what is wrong, for anything that is not a levelup
    database as :func:`save_columns` writes it (missing or misshapen datasets, wrong dtypes,
    links to other files, damaged bytes)."""
    with _open(path) as f:
        try:
            species, coordinates, charges, mults, props, info = _read_arrays(f, slice(start, stop))
        except DataError as exc:
            raise DataError(f"{path} is a damaged levelup database: {exc}") from None
        except _DAMAGE as exc:
            raise DataError(f"{path} is a damaged levelup database: {exc}") from None
    # trim padding that this range does not need
    width = int((species > 0).sum(axis=1).max()) if len(species) else 0
    props = {k: (v[:, :width] if v.ndim >= 2 else v) for k, v in props.items()}
    return Columns(species[:, :width], coordinates[:, :width], charges, mults, props, info)
