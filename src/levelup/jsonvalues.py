"""Values made plain for JSON: the one sanitiser of metrics.json, training histories and the
study step cache's keys.

:func:`json_ready` turns numpy scalars and arrays into Python numbers and lists, tuples into
lists, paths into strings and mapping keys into strings; a NaN or infinite number becomes
``None`` (``null``: strict JSON, as ``json.dumps(..., allow_nan=False)`` wants) or, for hashing,
its text (``"nan"``, ``"inf"``, ``"-inf"``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from levelup.errors import DataError


def json_ready(value: Any, *, nonfinite: Literal["null", "text"] = "null",
               where: str = "JSON") -> Any:
    """``value`` as plain JSON types (dict, list, str, int, float, bool, None).

    Args:
        value: nested mappings, lists, tuples, numpy arrays (any shape: nested lists), numpy or
            Python scalars, strings, paths and None.
        nonfinite: what a NaN or infinite number becomes: "null" (None) or "text" (its repr).
        where: what is being written, for the error message ("metrics.json").

    Raises:
        DataError: a value of any other type (``cannot write object to metrics.json: ...``).
    """
    if isinstance(value, Mapping):
        return {str(k): json_ready(v, nonfinite=nonfinite, where=where) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist(), nonfinite=nonfinite, where=where)
    if isinstance(value, (list, tuple)):
        return [json_ready(v, nonfinite=nonfinite, where=where) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else (None if nonfinite == "null" else repr(v))
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise DataError(f"cannot write {type(value).__name__} to {where}: {value!r}")


__all__ = ["json_ready"]
