"""The native database file: HDF5 through h5py.

Layout (format version 1)::

    /                  attrs: format="levelup-database", format_version, length_unit, levelup_version
    /species           int16  (molecules, max_atoms), 0 = padding
    /coordinates       float64 (molecules, max_atoms, 3), Angstrom
    /charges           int64 (molecules,)
    /multiplicities    int64 (molecules,)
    /properties/p<k>   float64, attrs: name, unit, level, per_atom, spec (JSON)

Datasets are chunked by molecule so that a range of molecules is read without loading the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from ..atomic import atomic_path
from ..errors import DataError
from ..units import LENGTH
from .database import Database, PropertyInfo

FORMAT = "levelup-database"
FORMAT_VERSION = 1


def save_database(db: Database, path: str | os.PathLike) -> None:
    """Write ``db`` to ``path`` (HDF5), atomically: a crash leaves any old file intact.

    The file is built in memory (HDF5's core driver) and written with ordinary Python I/O, so a
    full disk is an :class:`~levelup.errors.OutputError` naming ``path`` rather than an HDF5
    library error (which can leave the library's file state broken and crash the process).
    """
    from .. import __version__

    n = len(db)
    rows = max(1, min(n, max(1, 2**20 // max(1, db.max_atoms * 24))))
    with atomic_path(path) as tmp:
        with h5py.File(tmp.name, "w", driver="core", backing_store=False) as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["length_unit"] = LENGTH
            f.attrs["levelup_version"] = __version__

            def put(where, name, data):
                chunks = (rows, *data.shape[1:]) if n else None
                return where.create_dataset(name, data=data, chunks=chunks)

            put(f, "species", db.species.astype(np.int16))
            put(f, "coordinates", db.coordinates)
            put(f, "charges", db.charges)
            put(f, "multiplicities", db.multiplicities)
            group = f.create_group("properties")
            for k, (name, meta) in enumerate(db.properties.items()):
                ds = put(group, f"p{k}", np.asarray(db.get(name)))
                ds.attrs["name"] = name
                ds.attrs["unit"] = meta.unit
                ds.attrs["level"] = meta.level or ""
                ds.attrs["per_atom"] = meta.per_atom
                ds.attrs["spec"] = json.dumps(meta.spec)
            f.flush()
            image = f.id.get_file_image()
        tmp.write_bytes(image)


def _open(path: str | os.PathLike) -> h5py.File:
    path = Path(path)
    if not path.exists():
        raise DataError(f"no such database file: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise DataError(f"{path} is not an HDF5 file, so not a levelup database; build one "
                        "with Database.read(...) and save it with db.save(path)") from None
    fmt = f.attrs.get("format")
    if fmt != FORMAT:
        f.close()
        raise DataError(f"{path} is an HDF5 file but not a levelup database (format {fmt!r})")
    version = int(f.attrs.get("format_version", -1))
    if version > FORMAT_VERSION:
        f.close()
        raise DataError(
            f"{path} has database format version {version}, newer than this levelup reads "
            f"({FORMAT_VERSION}); upgrade levelup"
        )
    if f.attrs.get("length_unit") != LENGTH:
        f.close()
        raise DataError(f"{path} records length unit {f.attrs.get('length_unit')!r}; levelup "
                        f"needs {LENGTH}")
    return f


def database_length(path: str | os.PathLike) -> int:
    """Number of molecules in a native database file, without loading it."""
    with _open(path) as f:
        return int(f["species"].shape[0])


def load_database(path: str | os.PathLike, start: int | None = None,
                  stop: int | None = None) -> Database:
    """Read molecules ``start:stop`` (all by default) of a native database file."""
    sel = slice(start, stop)
    with _open(path) as f:
        try:
            species = f["species"][sel].astype(np.int64)
            props, info = {}, {}
            for ds in f["properties"].values():
                name = str(ds.attrs["name"])
                props[name] = ds[sel]
                info[name] = PropertyInfo(
                    unit=str(ds.attrs["unit"]),
                    level=str(ds.attrs["level"]) or None,
                    per_atom=bool(ds.attrs["per_atom"]),
                    spec=json.loads(ds.attrs["spec"]),
                )
            coordinates = f["coordinates"][sel]
            charges = f["charges"][sel]
            mults = f["multiplicities"][sel]
        except (KeyError, OSError, ValueError) as exc:
            raise DataError(f"{path} is a damaged levelup database: {exc}") from None
    # trim padding that this range does not need
    width = int((species > 0).sum(axis=1).max()) if len(species) else 0
    species = species[:, :width]
    coordinates = coordinates[:, :width]
    props = {k: (v[:, :width] if v.ndim >= 2 else v) for k, v in props.items()}
    return Database(species, coordinates, charges, mults, props, info)


def iter_database_chunks(path: str | os.PathLike, size: int) -> Iterator[Database]:
    """Yield consecutive chunks of ``size`` molecules of a native database file."""
    if size < 1:
        raise DataError(f"chunk size must be >= 1; got {size}")
    n = database_length(path)
    for start in range(0, n, size):
        yield load_database(path, start, min(n, start + size))
