"""Checks every subcommand makes before it works, so a bad path fails in one line before any
labelling or training, and an output never replaces an input.

- :func:`input_file`: the path exists and is a readable file (not a folder).
- :func:`output_file`: the path is not a folder, not one of the command's inputs, its folder
  exists and is writable, and (for databases) its suffix names a format levelup can write.
- :func:`new_property`: a property name that the database does not hold yet, unless the user
  gave ``--overwrite``.
- :func:`read_database` / :func:`write_database`: the native format for .h5/.hdf5, ASE for the
  rest.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import ConfigError, DataError

#: suffixes of levelup's native HDF5 database format
NATIVE_SUFFIXES = (".h5", ".hdf5")


def input_file(path: str | os.PathLike, what: str = "input") -> Path:
    """``path`` as a Path, after checking it is an existing, readable file."""
    p = Path(path)
    if p.is_dir():
        raise DataError(f"{what} {p} is a folder, not a file: give the path of a file in it")
    if not p.exists():
        raise DataError(f"{what} {p} does not exist: check the path")
    if not os.access(p, os.R_OK):
        raise DataError(f"{what} {p} is not readable: check its permissions")
    return p


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def output_file(path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = (),
                *, database: bool = False, flag: str = "-o") -> Path:
    """``path`` as a Path, after checking that writing it can succeed and loses nothing.

    Raises ConfigError when ``path`` is a folder, is one of ``inputs`` (an output never
    replaces an input), lies in a folder that does not exist or is not writable, or (with
    ``database=True``) has a suffix that names no format levelup can write.
    """
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{flag} {p} is a folder: give a file name, e.g. {p / 'out.h5'}")
    for given in inputs:
        if given is not None and _same_file(p, Path(given)):
            raise ConfigError(f"{flag} {p} is also an input of this command and would be "
                              "overwritten: write the output to another file")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"{flag} {p}: folder {parent} does not exist: create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {p}: folder {parent} is not writable: choose another folder")
    if p.exists() and not os.access(p, os.W_OK):
        raise ConfigError(f"{flag} {p} exists and is read-only: choose another file")
    if database:
        database_format(p, flag=flag)
    return p


def database_format(path: Path, flag: str = "-o") -> str:
    """The format a database at ``path`` is written in: "hdf5" or an ASE format name.

    Raises ConfigError when the suffix names no format ASE can write molecules in.
    """
    suffix = path.suffix.lower()
    if suffix in NATIVE_SUFFIXES:
        return "hdf5"
    if suffix in ("", ".xyz", ".extxyz"):
        return "extxyz"
    from ase.io.formats import UnknownFileTypeError, filetype, ioformats

    try:
        fmt = filetype(str(path), read=False)
    except (UnknownFileTypeError, ValueError, KeyError):
        fmt = None
    if fmt is None or fmt not in ioformats or not ioformats[fmt].can_write:
        raise ConfigError(f"{flag} {path}: levelup cannot write a database in a format named "
                          f"{suffix!r}: use .h5 (levelup's own, keeps units and levels) or "
                          ".extxyz")
    return fmt


def new_property(names: Iterable[str], name: str, overwrite: bool, *, where: str = "the output",
                 flag: str = "--name") -> None:
    """Refuse ``name`` when ``names`` (the properties a database holds) already has it, unless
    ``overwrite`` is set; the error says which flags resolve it."""
    if name in set(names) and not overwrite:
        raise ConfigError(f"{where} already has a property {name!r}: pass --overwrite to replace "
                          f"it, or choose another {flag}")


def read_database(path: str | os.PathLike, what: str = "input"):
    """Read a database file (native HDF5 or anything ASE reads) after :func:`input_file`."""
    from ..data import Database

    return Database.read(input_file(path, what))


def write_database(db, path: str | os.PathLike) -> None:
    """Write ``db`` to ``path`` atomically: the native format for .h5/.hdf5, else through ASE."""
    if Path(path).suffix.lower() in NATIVE_SUFFIXES:
        db.save(path)
    else:
        db.write(path)
