"""Exchange with ASE: ``ase.Atoms`` lists and every file format ``ase.io`` knows.

ASE's own convention is eV and eV/Angstrom for the energy and forces of an attached calculator;
those are converted to Hartree and Hartree/Angstrom here, at the edge. levelup's named properties
travel in ``atoms.info`` (per molecule) and ``atoms.arrays`` (per atom) in levelup's units, with
their units and levels in ``atoms.info['levelup']`` (JSON), so an extxyz round trip loses nothing
(:meth:`levelup.data.molecule.Molecule.to_ase` writes them). This module knows files, ``Atoms``
and plain arrays (:class:`~levelup.data.columns.Columns`); the Database is built from those.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.units import Hartree

from levelup.data.columns import Columns, PropertyInfo
from levelup.data.molecule import ASE_INFO_KEY
from levelup.errors import DataError
from levelup.units import ENERGY, FORCE

_RESERVED_INFO = {"charge", "multiplicity", ASE_INFO_KEY}
_RESERVED_ARRAYS = {"numbers", "positions"}


def _set_charge_and_multiplicity(atoms: Atoms, i: int, charges: np.ndarray,
                                 mults: np.ndarray) -> None:
    """Fill ``charges[i]`` and ``mults[i]`` from ``atoms.info`` (charge; multiplicity, or
    PySCF-style spin 2S), else from the initial charges and the lowest multiplicity."""
    info = atoms.info
    charges[i] = int(info.get("charge", round(float(atoms.get_initial_charges().sum()))))
    if "multiplicity" in info:
        mults[i] = int(info["multiplicity"])
    elif "spin" in info:  # PySCF-style 2S
        mults[i] = int(info["spin"]) + 1
    else:
        electrons = int(atoms.numbers.sum()) - charges[i]
        mults[i] = 1 + electrons % 2


def _add_values(atoms: Atoms, i: int, scalars: dict[str, np.ndarray],
                vectors: dict[str, np.ndarray], shape: tuple[int, int]) -> None:
    """Put molecule ``i``'s numbers in ``info`` into ``scalars`` (name -> (molecules,)) and its
    per-atom float arrays into ``vectors`` (name -> (molecules, max_atoms, ...)); ``shape`` is
    (molecules, max_atoms). New names start as all NaN."""
    n, width = shape
    for key, value in atoms.info.items():
        if key in _RESERVED_INFO or isinstance(value, (str, bool, np.bool_)):
            continue
        if np.ndim(value) == 0 and isinstance(value, (int, float, np.number)):
            scalars.setdefault(key, np.full(n, np.nan))[i] = float(value)
    for key, value in atoms.arrays.items():
        if key in _RESERVED_ARRAYS or not np.issubdtype(np.asarray(value).dtype, np.floating):
            continue
        value = np.asarray(value, dtype=np.float64)
        arr = vectors.setdefault(key, np.full((n, width, *value.shape[1:]), np.nan))
        arr[i, : len(atoms)] = value


def _add_calculator_results(atoms: Atoms, i: int, scalars: dict[str, np.ndarray],
                            vectors: dict[str, np.ndarray], meta: dict[str, dict[str, Any]],
                            shape: tuple[int, int]) -> None:
    """Energy (eV -> Hartree) and forces (eV/Angstrom -> Hartree/Angstrom) of an attached
    calculator as properties "energy" and "forces" of molecule ``i``."""
    if atoms.calc is None:
        return
    n, width = shape
    results = getattr(atoms.calc, "results", {})
    if "energy" in results:
        scalars.setdefault("energy", np.full(n, np.nan))[i] = results["energy"] / Hartree
        meta.setdefault("energy", {"unit": ENERGY, "level": None})
    if "forces" in results:
        arr = vectors.setdefault("forces", np.full((n, width, 3), np.nan))
        arr[i, : len(atoms)] = np.asarray(results["forces"]) / Hartree
        meta.setdefault("forces", {"unit": FORCE, "level": None})


def columns_from_atoms(atoms_list: list[Atoms]) -> Columns:
    """Padded arrays of ``ase.Atoms`` objects (see :class:`~levelup.data.columns.Columns`).

    Energy and forces of an attached calculator (eV, eV/Angstrom) become properties "energy"
    (Hartree) and "forces" (Hartree/Angstrom). Numbers in ``info`` and per-atom float arrays
    become properties of those names; units come from ``info['levelup']`` when levelup wrote the
    file and are recorded as "unknown" otherwise (the Database converts them on building).
    """
    if not atoms_list:
        raise DataError("no molecules given: the list of ase.Atoms is empty")
    shape = (len(atoms_list), max(len(a) for a in atoms_list))
    columns = Columns(np.zeros(shape, dtype=np.int64), np.zeros((*shape, 3)),
                      np.zeros(shape[0], dtype=np.int64), np.ones(shape[0], dtype=np.int64))
    scalars: dict[str, np.ndarray] = {}
    vectors: dict[str, np.ndarray] = {}
    meta: dict[str, dict[str, Any]] = {}
    for i, atoms in enumerate(atoms_list):
        if not isinstance(atoms, Atoms):
            raise DataError(f"molecule {i} is a {type(atoms).__name__}, not an ase.Atoms")
        columns.species[i, : len(atoms)] = atoms.numbers
        columns.coordinates[i, : len(atoms)] = atoms.positions
        _set_charge_and_multiplicity(atoms, i, columns.charges, columns.multiplicities)
        if ASE_INFO_KEY in atoms.info:
            try:
                meta.update(json.loads(atoms.info[ASE_INFO_KEY]))
            except (TypeError, ValueError):
                raise DataError(f"molecule {i}: info['{ASE_INFO_KEY}'] is not valid JSON"
                                ) from None
        _add_values(atoms, i, scalars, vectors, shape)
        _add_calculator_results(atoms, i, scalars, vectors, meta, shape)
    for name, values in {**scalars, **vectors}.items():
        m = meta.get(name, {})
        columns.properties[name] = values
        columns.info[name] = PropertyInfo(unit=m.get("unit") or "unknown", level=m.get("level"))
    return columns


#: ASE formats :func:`read_images` reads. Their readers parse text, ASE's ULM trajectories or JSON
#: and never unpickle or evaluate anything (checked in ASE 3.29); ASE's other readers are
#: refused, among them the old pickle-based PickleTrajectory and BundleTrajectory folders.
SAFE_FORMATS = ("extxyz", "xyz", "traj", "proteindatabank", "cif", "sdf", "mol", "vasp", "gen",
                "json", "gaussian-in", "gaussian-out", "orca-output", "nwchem-in", "nwchem-out")


def check_file(path: Path) -> None:
    """DataError unless ``path`` is an existing file (not a folder)."""
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a file of molecules: give the path of a file "
                        "in it (levelup reads .h5 databases and the formats "
                        f"{', '.join(SAFE_FORMATS)})")
    if not path.exists():
        raise DataError(f"no such file: {path}")


def read_images(path: str | os.PathLike, index: Any = ":", format: str | None = None
                ) -> list[Atoms]:
    """The molecules of a file in one of the ASE formats in :data:`SAFE_FORMATS` (guessed from
    the name and contents unless ``format`` names it), as ``ase.Atoms``.

    Raises DataError for a folder, a missing file, a format outside the allowlist (a pickle, a
    PickleTrajectory, ...) or a malformed file, naming the file and what is wrong.
    """
    from ase.io import read

    path = Path(path)
    check_file(path)
    fmt = _safe_format(path, format)
    if fmt in ("extxyz", "xyz"):
        problem = _xyz_count_problem(path)
        if problem:  # ASE would read that many lines past the end: minutes to forever
            raise DataError(f"{path}: {problem}")
    try:
        images = read(path, index=index, format=fmt)
    except Exception as exc:  # ASE raises many kinds; report them all the same way
        raise DataError(_read_error(path, fmt, exc)) from None
    if isinstance(images, Atoms):
        images = [images]
    return list(images)


def _safe_format(path: Path, format: str | None) -> str:
    """The ASE format of ``path`` if it is in :data:`SAFE_FORMATS`, else DataError."""
    from ase.io.formats import filetype

    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    if head.startswith(b"PickleTrajectory"):
        raise DataError(f"{path} is an old ASE PickleTrajectory; levelup does not read it because "
                        "unpickling can run code. Convert it, if you trust it, with ASE's "
                        "'python -m ase.io.trajectory FILE' and read the new .traj file")
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05") or head[:2] == b"PK":
        raise DataError(f"{path} is a pickle or a zip archive (torch.save, TorchScript), not a file "
                        "of molecules; levelup never unpickles files because unpickling can run "
                        "code")
    if format is None:
        try:
            format = filetype(str(path))
        except Exception as exc:  # noqa: BLE001 - ASE raises several kinds for unknown files
            raise DataError(f"cannot tell the format of {path} ({exc}); levelup reads .h5 "
                            f"databases and {', '.join(SAFE_FORMATS)}") from None
    if format not in SAFE_FORMATS or (format == "json" and path.suffix.lower() != ".json"):
        raise DataError(f"{path}: levelup does not read ASE format {format!r} (its reader is not "
                        f"known to be safe on untrusted files); it reads .h5 databases and "
                        f"{', '.join(SAFE_FORMATS)} (json only with a .json suffix): convert the "
                        "file to extxyz")
    return format


def _read_error(path: Path, fmt: str, exc: Exception) -> str:
    """A one-line message for an ASE reader's failure on ``path``."""
    from ase.data import chemical_symbols

    if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str):
        key = exc.args[0]
        if key not in chemical_symbols and len(key) <= 3 and key.isalpha():
            return (f"unknown element symbol {key!r} in {path}: use chemical symbols (H, He, Li, "
                    "...) or atomic numbers in the first column")
        return f"cannot read molecules from {path} ({fmt}): missing key {key!r}"
    if fmt in ("extxyz", "xyz"):
        problem = _xyz_problem(path)
        if problem:
            return f"{path}: {problem}"
    message = " ".join(str(exc).split())[:300] or type(exc).__name__
    return f"cannot read molecules from {path} ({fmt}): {message}"


def _xyz_lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return []


def _xyz_frames(lines: list[str], count: Any = int) -> Any:
    """(index of the count line, atom count) of each (ext)xyz frame, until a line that
    ``count`` cannot read as one; a negative count ends the walk after it is yielded."""
    i = 0
    while i < len(lines) and lines[i].strip():
        try:
            n = count(lines[i])
        except (ValueError, IndexError):
            return
        yield i, n
        if n < 0:
            return
        i += 2 + n


def _xyz_count_problem(path: Path) -> str | None:
    """The first (ext)xyz count line that declares more atoms than the file has lines left."""
    lines = _xyz_lines(path)
    for i, n in _xyz_frames(lines):  # int(line), as ASE reads it
        if n > len(lines) - i - 2:
            return (f"line {i + 1} declares {n} atoms but only {max(len(lines) - i - 2, 0)} "
                    "lines follow its comment line: fix the atom count or complete the file")
    return None


def _xyz_problem(path: Path) -> str | None:
    """The first atom line of an (ext)xyz file with fewer columns than its header declares."""
    from ase.io.extxyz import key_val_str_to_dict

    lines = _xyz_lines(path)
    for i, n in _xyz_frames(lines, lambda line: int(line.split()[0])):
        if n < 0:
            return f"line {i + 1}: the number of atoms is {n}, below 0"
        try:
            info = key_val_str_to_dict(lines[i + 1]) if i + 1 < len(lines) else {}
        except Exception:  # noqa: BLE001 - not a header we can diagnose
            return None
        spec = str(info.get("Properties", "species:S:1:pos:R:3"))
        try:
            width = sum(int(c) for c in spec.split(":")[2::3])
        except ValueError:
            return f"line {i + 2}: malformed Properties={spec}"
        for k in range(i + 2, min(i + 2 + n, len(lines))):
            got = len(lines[k].split())
            if got < width:
                return (f"line {k + 1} has {got} columns but the header on line {i + 2} "
                        f"declares {width} (Properties={spec}): complete the row or fix the header")
    return None


def write_images(images: list[Atoms], path: str | os.PathLike, format: str | None = None) -> None:
    """Write ``ase.Atoms`` objects through ``ase.io.write`` (extxyz unless the suffix says
    otherwise), atomically."""
    from ase.io import write

    from levelup.atomicwrite import atomic_path

    path = Path(path)
    if format is None and path.suffix.lower() in ("", ".xyz", ".extxyz"):
        format = "extxyz"
    with atomic_path(path) as tmp:
        write(tmp, images, format=format)
