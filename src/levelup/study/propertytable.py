"""Reading a study's ``[properties]`` table (:class:`~levelup.study.schema.Properties`) and
checking it before any work: every structure file is read, every constraint spec parsed against
its structure, and the names of ``energies``, ``constraints`` and ``reference`` matched, so a
typo is a :class:`~levelup.errors.ConfigError` that names the key and says how to fix it, not a
failure an hour into a run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from levelup.configload import check_keys, load
from levelup.errors import ConfigError, DataError
from levelup.study.schema import Properties

#: The keys ``[properties]`` takes (``structure`` is one file of ``structures``).
KEYS = ("structures", "structure", "optimize", "frequencies", "fmax", "steps", "energies",
        "constraints", "reference")
_WORDS = {"structures": "a list of structure files (relative to the study file), e.g. "
                        "['water.xyz']",
          "energies": "a table of name = structure file, e.g. { minimum = 'nh3.xyz', saddle = "
                      "'nh3_planar.xyz' }",
          "constraints": "a table of name = spec or [specs], e.g. { saddle = 'planar' }"}


def read_properties(table: Mapping[str, Any], base: Path) -> Properties:
    """The checked :class:`Properties` of ``[properties]``; relative files resolve against
    ``base``. An absent or empty table asks for nothing (no properties step).

    Raises:
        ConfigError: an unknown key (listing the valid ones), a value of the wrong type, a
            structure file that is missing or does not hold one molecule, fewer than two
            energies, a reference or constraint naming no structure of ``energies``, or a
            constraint spec that does not fit its structure.
    """
    check_keys(table, KEYS, "[properties]")
    table = dict(table)
    if "structure" in table:
        if "structures" in table:
            raise ConfigError("[properties] give structure = 'file' (one) or structures = [files],"
                              " not both")
        table["structures"] = [table.pop("structure")]
    for key in ("energies", "constraints"):
        if key in table:
            table[key] = _pairs(table[key], key)
    if "constraints" in table:
        table["constraints"] = [[name, [specs] if isinstance(specs, str) else specs]
                                for name, specs in table["constraints"]]
    found = load(Properties, table, where="[properties]", name=lambda k: f"[properties] {k}",
                 words=_WORDS)
    found = dataclasses.replace(
        found, structures=tuple(_resolve(p, base) for p in found.structures),
        energies=tuple((n, _resolve(p, base)) for n, p in found.energies))
    if table and not found.wanted:
        raise ConfigError("[properties] needs structures = ['file.xyz'] (geometry and frequencies)"
                          " or energies = { name = 'file.xyz', ... } (energy differences)")
    _check(found)
    return found


def _pairs(value: Any, key: str) -> list[list[Any]]:
    """A TOML table ``name = value`` as [[name, value], ...] (the dataclass's pairs)."""
    if not isinstance(value, dict):
        raise ConfigError(f"[properties] {key} must be {_WORDS[key]}; got {value!r}")
    return [[str(name), v] for name, v in value.items()]


def _resolve(path: Path, base: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else base / path


def _check(found: Properties) -> None:
    """Every check of :func:`read_properties` past the types."""
    if not (found.fmax > 0 and found.fmax < float("inf")):
        raise ConfigError(f"[properties] fmax must be a positive number of Hartree/Angstrom "
                          f"(1e-4 is the default); got {found.fmax}")
    if found.steps < 0:
        raise ConfigError(f"[properties] steps must be 0 or more; got {found.steps}")
    stems = [p.stem for p in found.structures]
    if len(set(stems)) != len(stems):
        raise ConfigError(f"[properties] structures name their rows by file name; these repeat "
                          f"one: {[str(p) for p in found.structures]}")
    for path in found.structures:
        structure_of(path, "structures")
    names = [name for name, _ in found.energies]
    if found.energies and len(names) < 2:
        raise ConfigError(f"[properties] energies needs two or more named structures (the zero "
                          f"and the others); got {names}")
    if found.reference is not None and found.reference not in names:
        raise ConfigError(f"[properties] reference = {found.reference!r} is not a name of "
                          f"energies ({names or 'none given'}); choose one of them")
    molecules = {name: structure_of(path, f"energies.{name}") for name, path in found.energies}
    for name, specs in found.constraints:
        if name not in molecules:
            raise ConfigError(f"[properties] constraints.{name}: {name!r} is not a name of "
                              f"energies ({names or 'none given'}); constraints hold a structure "
                              "of energies while it is optimised")
        _check_specs(specs, molecules[name], name)
    if found.constraints and not found.optimize:
        raise ConfigError("[properties] constraints hold coordinates during the optimisations, "
                          "but optimize = false: remove them or set optimize = true")


def _check_specs(specs: tuple[str, ...], mol: Any, name: str) -> None:
    from levelup.properties.constraints import parse_spec

    for spec in specs:
        try:
            parse_spec(spec, len(mol))
        except DataError as exc:
            raise ConfigError(f"[properties] constraints.{name}: {exc}") from None


def structure_of(path: Path, key: str) -> Any:
    """The one molecule of ``path`` (a Molecule); ConfigError naming ``[properties] key`` when
    the file is missing or does not hold exactly one molecule."""
    from levelup.data.structure import read_structure

    if not path.is_file():
        raise ConfigError(f"[properties] {key}: no such file {path} (paths are relative to the "
                          "study file)")
    try:
        return read_structure(path)
    except DataError as exc:
        raise ConfigError(f"[properties] {key}: {exc}") from None


__all__ = ["KEYS", "read_properties", "structure_of"]
