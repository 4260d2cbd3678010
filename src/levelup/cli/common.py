"""Checks every subcommand makes before it works, so a bad path fails in one line before any
labelling or training, and an output never replaces an input.

- :func:`input_file`: the path exists and is a readable file (not a folder).
- :func:`molecules_file`, :func:`read_database`, :func:`read_model`: also not empty, and not a
  model where molecules are expected or a database where a model is.
- :func:`output_file`: the path is not a folder, not one of the command's inputs, its folder
  exists and is writable (tried for real: root passes os.access on a read-only mount), and (for
  databases) its suffix names a format levelup can write.
- :func:`output_folder`: a run folder that is, or can be created as, a writable folder.
- :func:`check_number`: a numeric flag is finite and in range, or one line naming the flag.
- :func:`new_property`: a property name that the database does not hold yet, unless the user
  gave ``--overwrite``.
- :func:`read_database` / :func:`write_database`: the native format for .h5/.hdf5, ASE for the
  rest.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from levelup.errors import ConfigError, DataError

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


def writable_folder(folder: Path) -> bool:
    """True when a file can be created in ``folder`` (tried for real: os.access says yes to root
    on a read-only mount)."""
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError:
        return False
    return True


def output_file(path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = (),
                *, database: bool = False, flag: str = "-o") -> Path:
    """``path`` as a Path, after checking that writing it can succeed and loses nothing.

    Raises ConfigError when ``path`` is a folder, is one of ``inputs`` (an output never
    replaces an input), lies in a folder that does not exist or is not writable, or (with
    ``database=True``) has a suffix that names no format levelup can write.
    """
    p = Path(path)
    if p.is_dir():
        example = f", e.g. {p / 'out.h5'}" if database else ""
        raise ConfigError(f"{flag} {p} is a folder: give a file name{example}")
    for given in inputs:
        if given is not None and _same_file(p, Path(given)):
            raise ConfigError(f"{flag} {p} is also an input of this command and would be "
                              "overwritten: write the output to another file")
    if database:
        database_format(p, flag=flag)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"{flag} {p}: folder {parent} does not exist: create it first")
    if not writable_folder(parent):
        raise ConfigError(f"{flag} {p}: folder {parent} is not writable: choose another folder")
    if p.exists() and not os.access(p, os.W_OK):
        raise ConfigError(f"{flag} {p} exists and is read-only: choose another file")
    return p


def output_folder(path: str | os.PathLike, flag: str = "--out") -> Path:
    """``path`` as a Path, after checking it is (or can be made) a writable folder."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{flag} {p} exists and is not a folder: give a folder (it is created "
                          "when missing)")
    existing = p
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise ConfigError(f"{flag} {p}: {existing} is a file, not a folder: choose another "
                          "folder")
    if not writable_folder(existing):
        raise ConfigError(f"{flag} {p}: folder {existing} is not writable: choose another folder")
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
                          f"{suffix!r}: use .h5 or .hdf5 (levelup's own, keeps units and "
                          "levels), .xyz or .extxyz, or another format ASE writes (.traj, .db)")
    return fmt


def new_property(names: Iterable[str], name: str, overwrite: bool, *, where: str = "the output",
                 flag: str = "--name") -> None:
    """Refuse ``name`` when ``names`` (the properties a database holds) already has it, unless
    ``overwrite`` is set; the error says which flags resolve it."""
    if name in set(names) and not overwrite:
        raise ConfigError(f"{where} already has a property {name!r}: pass --overwrite to replace "
                          f"it, or choose another {flag}")


HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _head(path: Path, n: int = 16) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def _looks_like_model(head: bytes) -> str | None:
    """What kind of model file ``head`` (the first bytes of a file) starts, if any."""
    if head.startswith(b"PK\x03\x04"):
        return "a TorchScript (zip) file"
    if len(head) > 9 and head[8:10] == b'{"':
        return "a levelup model file (safetensors)"
    return None


def molecules_file(path: str | os.PathLike, what: str = "input") -> Path:
    """``path`` after :func:`input_file`, checking it is not empty and not a model file."""
    p = input_file(path, what)
    head = _head(p)
    if not head:
        raise DataError(f"{what} {p} is empty (0 bytes): give a database of molecules (.h5, "
                        ".xyz, .extxyz)")
    kind = _looks_like_model(head)
    if kind and not head.startswith(HDF5_MAGIC):
        raise DataError(f"{what} {p} is {kind}, not a database of molecules: give a .h5 database "
                        "or a file ASE reads (.xyz, .extxyz); check the order of the arguments")
    return p


def read_database(path: str | os.PathLike, what: str = "input", *, allow_empty: bool = False):
    """Read a database file (native HDF5 or anything ASE reads) after :func:`molecules_file`;
    no molecules (unless ``allow_empty``) is a DataError."""
    from levelup.data import Database

    p = molecules_file(path, what)
    db = Database.read(p)
    if len(db) == 0 and not allow_empty:
        raise DataError(f"{what} {p} holds no molecules: give a database with at least one")
    return db


def read_model(path: str | os.PathLike, what: str = "model"):
    """Load a model file after :func:`input_file`; a database or an empty file given as the model
    is a ModelFileError that says so."""
    from levelup.errors import ModelFileError
    from levelup.model.files import load_model

    p = input_file(path, what)
    head = _head(p)
    if not head:
        raise ModelFileError(f"{what} {p} is empty (0 bytes): give a levelup model file (.pt)")
    if head.startswith(HDF5_MAGIC) or p.suffix.lower() in (".xyz", ".extxyz"):
        raise ModelFileError(f"{what} {p} is a database of molecules, not a model file: give a "
                             "levelup model file (.pt); check the order of the arguments")
    return load_model(p)


def check_number(value: float | None, flag: str, *, minimum: float | None = None,
                 above: float | None = None, maximum: float | None = None,
                 example: str = "") -> None:
    """ConfigError naming ``flag`` unless ``value`` (None: not given) is finite and in range:
    ``>= minimum``, ``> above``, ``<= maximum``."""
    if value is None:
        return
    bad = not math.isfinite(value) or (minimum is not None and value < minimum) or (
        above is not None and value <= above) or (maximum is not None and value > maximum)
    if not bad:
        return
    wanted = [f">= {_number(minimum)}" if minimum is not None else "",
              f"> {_number(above)}" if above is not None else "",
              f"<= {_number(maximum)}" if maximum is not None else ""]
    range_text = " and ".join(w for w in wanted if w)
    hint = f" (for example {flag} {example})" if example else ""
    raise ConfigError(f"{flag} must be a finite number{' ' + range_text if range_text else ''}; "
                      f"got {_number(value)}{hint}")


def _number(value: float) -> str:
    if math.isfinite(value) and float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:g}"


def write_database(db, path: str | os.PathLike) -> None:
    """Write ``db`` to ``path`` atomically: the native format for .h5/.hdf5, else through ASE."""
    if Path(path).suffix.lower() in NATIVE_SUFFIXES:
        db.save(path)
    else:
        db.write(path)
