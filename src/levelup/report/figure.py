"""What every figure of levelup shares: a new figure (matplotlib's object-oriented API, no
pyplot), inputs checked as 1-D float arrays, energy units, the legend outside the axes, and
:func:`save_figure`, which writes a figure as PNG and SVG (or any format matplotlib writes),
each file atomically.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from levelup.atomicwrite import atomic_path
from levelup.errors import ConfigError, DataError
from levelup.units import HARTREE_TO_KCALMOL

if TYPE_CHECKING:
    import os

    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: x-axis label of the H2 scans (the default of the scan plots).
DISTANCE_LABEL = "H-H distance (Å)"
#: Energy units a plot can show, with their factor from Hartree.
ENERGY_UNITS = {"kcal/mol": HARTREE_TO_KCALMOL, "Hartree": 1.0}
#: Figure size in inches; leaves room for a legend outside the axes on the right.
FIGSIZE = (7.5, 4.5)
#: Markers of successive sets of points.
MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def new_figure(figsize: tuple[float, float] = FIGSIZE) -> tuple[Figure, Axes]:
    """A figure (constrained layout, ``figsize`` in inches) and its one axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def vector(values: Any, what: str, n: int | None = None) -> np.ndarray:
    """``values`` as a float64 (n,) array (of length ``n`` when given), else a DataError naming
    ``what``."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{what} must be numbers; got {type(values).__name__}") from None
    if arr.ndim != 1:
        raise DataError(f"{what} must be one value per molecule (1-D); got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise DataError(f"{what} has {arr.shape[0]} values but x has {n}; pass one per point")
    return arr


def energy_factor(unit: str) -> float:
    """The factor from Hartree to ``unit`` (:data:`ENERGY_UNITS`), else a ConfigError."""
    try:
        return ENERGY_UNITS[unit]
    except KeyError:
        raise ConfigError(f"unknown energy unit {unit!r}; choose one of {list(ENERGY_UNITS)}") from None


def outside_legend(ax: Axes) -> None:
    """Legend to the right of the axes, where it never hides a curve."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)


def style_of(styles: Mapping[str, Mapping[str, Any]] | None, name: str) -> dict[str, Any]:
    """The ``Axes.plot`` keywords ``styles`` gives for ``name`` (a new dict; empty if none)."""
    return dict((styles or {}).get(name, {}))


def save_figure(
    fig: Figure,
    path: str | os.PathLike,
    formats: Sequence[str] = ("png", "svg"),
    *,
    dpi: float = 150,
) -> list[Path]:
    """Write ``fig`` once per format, each file atomically, beside ``path``.

    ``path`` names the files without the format: ``runs/demo/curves`` gives ``curves.png`` and
    ``curves.svg``; a suffix that is itself a format (``curves.png``) is replaced. SVG files carry
    no date and fixed ids, so the same plot made twice gives the same bytes.

    Returns:
        The paths written, in the order of ``formats``.
    """
    from matplotlib import rc_context

    if not (math.isfinite(dpi) and 1 <= dpi <= 2400):
        raise ConfigError(f"dpi must be a number of dots per inch from 1 to 2400; got {dpi!r} "
                          "(for example dpi=150)")
    path = Path(path)
    supported = fig.canvas.get_supported_filetypes()
    formats = [f.lower().lstrip(".") for f in formats]
    unknown = [f for f in formats if f not in supported]
    if unknown or not formats:
        raise ConfigError(f"cannot write figure format(s) {unknown}; choose among "
                          f"{sorted(supported)}")
    stem = path.with_suffix("") if path.suffix.lower().lstrip(".") in supported else path
    written = []
    for fmt in formats:
        target = stem.with_name(f"{stem.name}.{fmt}")
        metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}.get(fmt)
        # the temporary name ends in .tmp: matplotlib must be told the format
        with rc_context({"svg.hashsalt": "levelup"}), atomic_path(target) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, metadata=metadata)
        written.append(target)
    return written


__all__ = ["DISTANCE_LABEL", "ENERGY_UNITS", "energy_factor", "new_figure", "outside_legend",
           "save_figure", "style_of", "vector"]
