"""Figures of energies along a scan and against a reference: energy curves, signed errors along
the scan, and parity plots.

Every function takes arrays (energies in Hartree, the internal unit), returns a
:class:`matplotlib.figure.Figure` built with the object-oriented API (no pyplot, no global state,
nothing shown: safe on a headless machine and in threads), and converts to kcal/mol for display.
:func:`levelup.report.figure.save_figure` writes a figure as PNG and SVG, atomically; the
training figures are in :mod:`levelup.report.learning`. In a notebook,
``IPython.display.display(fig)`` shows it once the inline backend is active (``%matplotlib inline``);
``IPython.display.Image(path)`` shows a saved PNG in any case.

Example::

    fig = energy_curves(r, {"CISD/cc-pVDZ": cisd, "transfer": predicted},
                        points={"training": (r[train], cisd[train])})
    save_figure(fig, "runs/demo/energy_curves")      # energy_curves.png, energy_curves.svg
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from levelup.errors import ConfigError, DataError
from levelup.report.figure import (
    DISTANCE_LABEL,
    MARKERS,
    energy_factor,
    new_figure,
    outside_legend,
    style_of,
    vector,
)
from levelup.units import HARTREE_TO_KCALMOL

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_SPAN_COLORS = ("tab:orange", "tab:gray", "tab:purple", "tab:olive")


def energy_curves(
    x: Any,
    curves: Mapping[str, Any],
    *,
    points: Mapping[str, tuple[Any, Any]] | None = None,
    relative_to: float | str | None = None,
    unit: str = "kcal/mol",
    xlabel: str = DISTANCE_LABEL,
    title: str | None = None,
    styles: Mapping[str, Mapping[str, Any]] | None = None,
    ylim: tuple[float, float] | None = None,
) -> Figure:
    """Energy along a scan coordinate: one line per curve, markers for chosen points.

    Args:
        x: (points,) scan coordinate (a distance in Angstrom, an angle in degrees).
        curves: name -> (points,) energies in Hartree along ``x`` (NaN breaks a line). References
            (QM levels) and models alike; drawn in this order.
        points: name -> (x, energies in Hartree), drawn as markers without lines: training and
            validation points.
        relative_to: energy (Hartree) subtracted from everything shown, or the name of a curve
            whose minimum is subtracted. Default with ``unit="kcal/mol"``: the minimum of the
            first curve; with ``unit="Hartree"``: none (absolute energies).
        unit: "kcal/mol" or "Hartree".
        styles: name -> keyword arguments for ``Axes.plot`` (color, linestyle, ...), overriding
            the defaults, for curves and points alike.
        ylim: (bottom, top) of the energy axis in the unit shown; default: fit everything.

    Returns:
        The figure; ``fig.axes[0]`` holds one line per curve then one per set of points, labelled
        with their names.
    """
    factor = energy_factor(unit)
    xs = vector(x, "x")
    if not curves:
        raise DataError("energy_curves needs at least one curve")
    ys = {name: vector(y, f"curve {name!r}", len(xs)) for name, y in curves.items()}
    shift = _shift(ys, relative_to, unit)
    fig, ax = new_figure()
    order = np.argsort(xs, kind="stable")
    for name, y in ys.items():
        style = {"linewidth": 1.6} | style_of(styles, name)
        ax.plot(xs[order], (y[order] - (shift or 0.0)) * factor, label=name, **style)
    _draw_points(ax, points or {}, shift or 0.0, factor, styles)
    if shift is None:
        ax.set_ylabel(f"energy ({unit})")
    else:
        ax.set_ylabel(f"energy ({unit})\nrelative to {shift:.6f} Hartree")
        ax.axhline(0.0, color="0.8", linewidth=0.8, zorder=0)
    ax.set_xlabel(xlabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    outside_legend(ax)
    return fig


def _shift(ys: Mapping[str, np.ndarray], relative_to: float | str | None, unit: str
           ) -> float | None:
    """The energy (Hartree) subtracted from every curve: see energy_curves' ``relative_to``;
    None for absolute energies."""
    if relative_to is None and unit == "kcal/mol":
        relative_to = next(iter(ys))
    if isinstance(relative_to, str):
        if relative_to not in ys:
            raise ConfigError(f"relative_to names no curve: {relative_to!r}; the curves are "
                              f"{list(ys)}")
        if not np.isfinite(ys[relative_to]).any():
            raise DataError(f"curve {relative_to!r} holds no finite energy to plot relative to")
        relative_to = float(np.nanmin(ys[relative_to]))
    return None if relative_to is None else float(relative_to)


def _draw_points(ax: Axes, points: Mapping[str, tuple[Any, Any]], shift: float, factor: float,
                 styles: Mapping[str, Mapping[str, Any]] | None) -> None:
    """Each set of points (x, energies in Hartree) as markers without lines."""
    for i, (name, pair) in enumerate(points.items()):
        try:
            px, py = pair
        except (TypeError, ValueError):
            raise DataError(f"points {name!r} must be a pair (x, energies); got {pair!r}") from None
        px = vector(px, f"x of points {name!r}")
        py = vector(py, f"energies of points {name!r}", len(px))
        style = {"marker": MARKERS[i % len(MARKERS)], "linestyle": "none", "markersize": 7,
                 "markeredgecolor": "black", "markeredgewidth": 0.8, "zorder": 3}
        ax.plot(px, (py - shift) * factor, label=name, **(style | style_of(styles, name)))


def error_curves(
    x: Any,
    errors: Mapping[str, Any],
    *,
    regions: Mapping[str, tuple[float, float]] | None = None,
    marks: Mapping[str, Any] | None = None,
    xlabel: str = DISTANCE_LABEL,
    title: str | None = None,
    styles: Mapping[str, Mapping[str, Any]] | None = None,
    ylim: tuple[float, float] | None = None,
) -> Figure:
    """Signed error (predicted minus reference) along a scan coordinate, in kcal/mol.

    Args:
        x: (points,) scan coordinate.
        errors: name -> (points,) predicted minus reference energies, **Hartree** (converted to
            kcal/mol for display).
        regions: label -> (lo, hi) spans of ``x`` to shade, e.g. ``{"no training point
            (extrapolation)": (0.5, 0.9)}``.
        marks: label -> x positions to tick on the zero line (the training points, say).
        styles: name -> keyword arguments for ``Axes.plot``.
        ylim: (bottom, top) in kcal/mol; default: fit everything.

    Returns:
        The figure; ``fig.axes[0]`` holds one line per model (labelled with its name), one per
        set of marks, and the zero line (label ``_zero``).
    """
    xs = vector(x, "x")
    if not errors:
        raise DataError("error_curves needs at least one error curve")
    ys = {name: vector(e, f"errors {name!r}", len(xs)) for name, e in errors.items()}
    fig, ax = new_figure()
    for i, (label, span) in enumerate((regions or {}).items()):
        try:
            lo, hi = (float(v) for v in span)
        except (TypeError, ValueError):
            raise DataError(f"region {label!r} must be a pair (lo, hi); got {span!r}") from None
        ax.axvspan(lo, hi, color=_SPAN_COLORS[i % len(_SPAN_COLORS)], alpha=0.15, linewidth=0,
                   label=label)
    ax.axhline(0.0, color="black", linewidth=0.8, label="_zero")
    order = np.argsort(xs, kind="stable")
    for name, e in ys.items():
        ax.plot(xs[order], e[order] * HARTREE_TO_KCALMOL, label=name,
                **({"linewidth": 1.4} | style_of(styles, name)))
    for name, mx in (marks or {}).items():
        mx = vector(mx, f"marks {name!r}")
        ax.plot(mx, np.zeros_like(mx), label=name, **({"marker": "|", "markersize": 14,
                "markeredgewidth": 2, "linestyle": "none", "color": "black", "zorder": 3}
                | style_of(styles, name)))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("error, predicted − reference (kcal/mol)")
    if ylim is not None:
        ax.set_ylim(*ylim)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    outside_legend(ax)
    return fig


def parity(
    reference: Any,
    predictions: Mapping[str, Any],
    *,
    unit: str = "kcal/mol",
    reference_label: str = "reference",
    title: str | None = None,
    styles: Mapping[str, Mapping[str, Any]] | None = None,
) -> Figure:
    """Predicted against reference energies, with the y = x diagonal.

    Args:
        reference: (molecules,) reference energies, Hartree.
        predictions: name -> (molecules,) predicted energies, Hartree. Each legend entry carries
            the RMSE against ``reference`` (kcal/mol).
        unit: "kcal/mol" (both axes relative to the minimum reference energy) or "Hartree"
            (absolute energies).
        reference_label: what the reference is, for the x-axis label ("CISD/cc-pVDZ").

    Returns:
        The square figure; ``fig.axes[0]`` holds one line per model (markers only), then the
        diagonal (label ``_diagonal``).
    """
    from levelup.report.metrics import error_stats

    factor = energy_factor(unit)
    ref = vector(reference, "reference")
    if not predictions:
        raise DataError("parity needs at least one set of predictions")
    preds = {name: vector(p, f"predictions {name!r}", len(ref)) for name, p in predictions.items()}
    if not np.isfinite(ref).any():
        raise DataError("the reference holds no finite energy")
    shift = float(np.nanmin(ref)) if unit == "kcal/mol" else 0.0
    fig, ax = new_figure((5.8, 5.6))
    shown = [(ref - shift) * factor]
    for i, (name, p) in enumerate(preds.items()):
        rmse = error_stats(p, ref)["rmse"]
        y = (p - shift) * factor
        shown.append(y)
        style = {"marker": MARKERS[i % len(MARKERS)], "markersize": 4, "linestyle": "none",
                 "alpha": 0.7}
        ax.plot(shown[0], y, label=f"{name} (RMSE {rmse:.3g} kcal/mol)",
                **(style | style_of(styles, name)))
    values = np.concatenate(shown)
    values = values[np.isfinite(values)]
    lo, hi = float(values.min()), float(values.max())
    pad = 0.04 * (hi - lo or 1.0)
    lo, hi = lo - pad, hi + pad
    ax.plot([lo, hi], [lo, hi], color="0.4", linewidth=1.0, zorder=0, label="_diagonal")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    relative = " relative to its minimum" if unit == "kcal/mol" else ""
    ax.set_xlabel(f"{reference_label} energy{relative} ({unit})")
    ax.set_ylabel(f"predicted energy ({unit})")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    return fig


__all__ = ["energy_curves", "error_curves", "parity"]
