"""Configuration tables (a TOML table or a dict) read into dataclasses by their type hints.

One loader for every configuration levelup reads (:class:`~levelup.train.config.TrainConfig`,
the tables of a study file, the flags of ``levelup train``): a key that is not a field is an
error that lists the valid keys, and a value of the wrong type is an error that says what was
received and what was expected. The hints it reads (:func:`typing.get_type_hints`): ``int``,
``float`` (an integer is accepted and made a float), ``bool``, ``str`` (non-empty),
``pathlib.Path`` (from a non-empty string), ``Literal[...]``, ``X | None``, ``tuple[X, ...]`` and
``tuple[X, Y]`` (from a list or a tuple), unions of these, and ``Any`` (taken as it is).

Example::

    @dataclass(frozen=True)
    class Levels:
        low: str
        workers: int | None = None

    load(Levels, {"low": "HF/STO-3G", "workers": "4"}, where="[levels]")
    # ConfigError: workers must be an integer or none; got '4'
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tomllib
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from levelup.errors import ConfigError

#: Words for a value of each plain type, and for a list of them.
_WORDS = {int: ("an integer", "integers"), float: ("a number", "numbers"),
          bool: ("true or false", "true/false values"), str: ("a non-empty string", "strings"),
          Path: ("a file or folder name", "file or folder names"), type(None): ("none", "nones")}


class _Mismatch(Exception):
    """A value does not fit a hint (turned into a ConfigError naming the whole value)."""


def field_types(cls: type) -> dict[str, Any]:
    """Field name -> resolved type hint of the dataclass ``cls``, in field order."""
    return dict(_field_types(cls))


@functools.cache
def _field_types(cls: type) -> tuple[tuple[str, Any], ...]:
    hints = get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))


def type_words(hint: Any, plural: bool = False) -> str:
    """What a value of type ``hint`` is, in words ("an integer", "a list of numbers")."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return "values" if plural else "any value"
    if origin in (Union, types.UnionType):
        return " or ".join(type_words(a, plural) for a in sorted(args, key=lambda a: a is type(None)))
    if origin is Literal:
        return f"{'each ' if plural else ''}one of {list(args)}"
    if origin is tuple:
        inner = (f"of {type_words(args[0], True)}" if len(args) == 2 and args[1] is Ellipsis
                 else f"[{', '.join(type_words(a) for a in args)}]")
        return f"{'lists' if plural else 'a list'} {inner}"
    if hint in _WORDS:
        return _WORDS[hint][plural]
    raise TypeError(f"levelup.configload cannot read a field of type {hint!r}")


def convert(value: Any, hint: Any, name: str, words: str | None = None) -> Any:
    """``value`` checked against the type ``hint`` and converted (lists to tuples, integers to
    floats where a float is expected, strings to Paths).

    Raises:
        ConfigError: ``"{name} must be {words}; got {value!r}"``; ``words`` defaults to
            :func:`type_words` of the hint.
    """
    try:
        return _convert(value, hint)
    except _Mismatch:
        raise ConfigError(f"{name} must be {words or type_words(hint)}; got {value!r}") from None


def _convert(value: Any, hint: Any) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        for member in args:
            try:
                return _convert(value, member)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise _Mismatch
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0]) for v in value)
        if len(value) != len(args):
            raise _Mismatch
        return tuple(_convert(v, a) for v, a in zip(value, args, strict=True))
    if _fits(value, hint):
        return float(value) if hint is float else Path(value) if hint is Path else value
    raise _Mismatch


def _fits(value: Any, hint: Any) -> bool:
    if hint is bool or hint is type(None):
        return isinstance(value, hint)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str) and value != ""
    if hint is Path:
        return (isinstance(value, str) and value != "") or isinstance(value, os.PathLike)
    raise TypeError(f"levelup.configload cannot read a field of type {hint!r}")


def check_keys(table: Mapping[str, Any], valid: Sequence[str], where: str) -> None:
    """Raise ConfigError naming the keys of ``table`` not in ``valid``, and listing ``valid``.

    ``where`` names the table in the message ("[levels]", "TrainConfig")."""
    unknown = [k for k in table if k not in valid]
    if unknown:
        raise ConfigError(f"{where}: unknown key{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(repr(k) for k in unknown)}; valid keys: "
                          f"{', '.join(valid) if valid else 'none'}")


def load(cls: type, table: Mapping[str, Any], *, where: str, valid: Sequence[str] | None = None,
         rename: Mapping[str, str] | None = None, required: Sequence[str] = (),
         name: Callable[[str], str] = str, words: Mapping[str, str] | None = None,
         **given: Any) -> Any:
    """An instance of the dataclass ``cls`` from ``table`` (key = field name).

    Args:
        table: key -> value, as TOML gives them (lists for tuples).
        where: the table's name in error messages ("[levels]").
        valid: the keys the table may hold (default: every field of ``cls``).
        rename: key -> field, where a key is not its field's name (``"from"`` -> ``"start"``).
        required: keys the table must hold, besides the fields without a default.
        name: key -> how errors name it (default the key itself).
        words: key -> what its value must be, where the words of its type say too little.
        given: values of fields the table does not set (the table's own values win).

    Raises:
        ConfigError: an unknown key (listing the valid ones), a missing one, or a value of the
            wrong type; and whatever ``cls`` raises on its own checks.
    """
    hints, rename = field_types(cls), rename or {}
    check_keys(table, list(hints) if valid is None else valid, where)
    fields = {rename.get(k, k) for k in table} | set(given)
    needed = [*required, *(f.name for f in dataclasses.fields(cls) if f.init and f.name not in
                          fields and f.default is f.default_factory is dataclasses.MISSING)]
    for key in needed:
        if key not in table and key not in given:
            raise ConfigError(f"{where} needs {key} = ...")
    values = {rename.get(k, k): convert(v, hints[rename.get(k, k)], name(k), (words or {}).get(k))
              for k, v in table.items()}
    return cls(**{**given, **values})


def read_toml(path: str | os.PathLike, what: str) -> tuple[str, dict[str, Any]]:
    """(text, tables) of the TOML file ``path``; ``what`` names it in errors ("study file").

    Raises:
        ConfigError: the file is missing or unreadable, not UTF-8 text, or not valid TOML.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not UTF-8 text (is it a TOML file?)") from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}") from None


__all__ = ["check_keys", "convert", "field_types", "load", "read_toml", "type_words"]
