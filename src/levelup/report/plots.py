"""Figures of energies along a scan and against a reference: energy curves, signed errors along
the scan, parity plots, and an ensemble's spread against its actual error.

Every function takes arrays (energies in Hartree, the internal unit), returns a
:class:`matplotlib.figure.Figure` built with the object-oriented API (no pyplot, no global state,
nothing shown: safe on a headless machine and in threads), and converts to kcal/mol for display.
:func:`levelup.report.figure.save_figure` writes a figure as PNG and SVG, atomically; the
training figures are in :mod:`levelup.report.learning`. In a notebook,
``IPython.display.display(fig)`` shows it once the inline backend is active (``%matplotlib inline``);
``IPython.display.Image(path)`` shows a saved PNG in any case.

Example::

    fig = energy_curves(r, {"CISD/cc-pVDZ": cisd, "transfer": pred.energies},
                        points={"training": (r[train], cisd[train])},
                        bands={"transfer": pred.energies_std})   # an Ensemble's +-2 sigma
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
#: Half-width of an uncertainty band, in standard deviations (about 95% for Gaussian errors).
BAND_SIGMAS = 2.0


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
    bands: Mapping[str, Any] | None = None,
) -> Figure:
    """Energy along a scan coordinate: one line per curve, markers for chosen points, and
    shaded uncertainty bands.

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
        bands: curve name -> (points,) standard deviation in Hartree along ``x`` (an Ensemble's
            ``Prediction.energies_std``), shaded as curve +- 2 sigma in the curve's colour.

    Returns:
        The figure; ``fig.axes[0]`` holds one line per curve then one per set of points, labelled
        with their names, and one PolyCollection per band, labelled ``"<curve> ± 2σ"``.
    """
    factor = energy_factor(unit)
    xs = vector(x, "x")
    if not curves:
        raise DataError("energy_curves needs at least one curve")
    ys = {name: vector(y, f"curve {name!r}", len(xs)) for name, y in curves.items()}
    sigmas = _bands(bands, ys, len(xs))
    shift = _shift(ys, relative_to, unit)
    fig, ax = new_figure()
    order = np.argsort(xs, kind="stable")
    for name, y in ys.items():
        style = {"linewidth": 1.6} | style_of(styles, name)
        (line,) = ax.plot(xs[order], (y[order] - (shift or 0.0)) * factor, label=name, **style)
        if name in sigmas:
            centre, half = (y[order] - (shift or 0.0)) * factor, sigmas[name][order] * factor
            _draw_band(ax, xs[order], centre, half, name, line.get_color())
    _draw_points(ax, points or {}, shift or 0.0, factor, styles)
    if shift is None:
        ax.set_ylabel(f"energy ({unit})")
    else:
        ax.set_ylabel(f"energy ({unit})\nrelative to {shift:.6f} Hartree")
        ax.axhline(0.0, color="0.8", linewidth=0.8, zorder=0)
    _finish(ax, xlabel, title, ylim)
    return fig


def _finish(ax: Axes, xlabel: str, title: str | None, ylim: tuple[float, float] | None) -> None:
    """The x label, energy range, title, grid and legend (outside) of a scan figure."""
    ax.set_xlabel(xlabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    outside_legend(ax)


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


def _bands(bands: Mapping[str, Any] | None, curves: Mapping[str, np.ndarray], n: int
           ) -> dict[str, np.ndarray]:
    """Curve name -> (n,) standard deviations, Hartree, checked: each names a curve, has one
    value per point and none negative (NaN leaves a gap)."""
    out = {}
    for name, sigma in (bands or {}).items():
        if name not in curves:
            raise ConfigError(f"band {name!r} names no curve; the curves are {list(curves)}")
        values = vector(sigma, f"band {name!r} (standard deviations)", n)
        if (values < 0).any():
            raise DataError(f"band {name!r} must hold standard deviations (>= 0); got minimum "
                            f"{np.nanmin(values):g}")
        out[name] = values
    return out


def _draw_band(ax: Axes, x: np.ndarray, centre: np.ndarray, sigma: np.ndarray, name: str,
               color: Any) -> None:
    """Shade ``centre`` +- BAND_SIGMAS * ``sigma`` (both (points,), the unit shown) over ``x``."""
    ax.fill_between(x, centre - BAND_SIGMAS * sigma, centre + BAND_SIGMAS * sigma, color=color,
                    alpha=0.2, linewidth=0, label=f"{name} ± {BAND_SIGMAS:g}σ", zorder=1)


def _pair(value: Any, what: str, shape: str) -> tuple[Any, Any]:
    """``value`` as two items, or a DataError saying ``what`` must be a pair ``shape``."""
    try:
        first, second = value
    except (TypeError, ValueError):
        raise DataError(f"{what} must be a pair {shape}; got {value!r}") from None
    return first, second


def _draw_points(ax: Axes, points: Mapping[str, tuple[Any, Any]], shift: float, factor: float,
                 styles: Mapping[str, Mapping[str, Any]] | None) -> None:
    """Each set of points (x, energies in Hartree) as markers without lines."""
    for i, (name, pair) in enumerate(points.items()):
        px, py = _pair(pair, f"points {name!r}", "(x, energies)")
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
    bands: Mapping[str, Any] | None = None,
) -> Figure:
    """Signed error (predicted minus reference) along a scan coordinate, in kcal/mol, with the
    error bars a model claims for itself.

    Args:
        x: (points,) scan coordinate.
        errors: name -> (points,) predicted minus reference energies, **Hartree** (converted to
            kcal/mol for display).
        regions: label -> (lo, hi) spans of ``x`` to shade, e.g. ``{"no training point
            (extrapolation)": (0.5, 0.9)}``.
        marks: label -> x positions to tick on the zero line (the training points, say).
        styles: name -> keyword arguments for ``Axes.plot``.
        ylim: (bottom, top) in kcal/mol; default: fit everything.
        bands: error name -> (points,) standard deviation in Hartree along ``x`` (an Ensemble's
            ``Prediction.energies_std``), shaded as 0 +- 2 sigma around the zero line in that
            model's colour: where the ensemble is calibrated, its error curve stays inside.

    Returns:
        The figure; ``fig.axes[0]`` holds one line per model (labelled with its name), one per
        set of marks, the zero line (label ``_zero``), and one PolyCollection per band, labelled
        ``"<name> ± 2σ"``.
    """
    xs = vector(x, "x")
    if not errors:
        raise DataError("error_curves needs at least one error curve")
    ys = {name: vector(e, f"errors {name!r}", len(xs)) for name, e in errors.items()}
    sigmas = _bands(bands, ys, len(xs))
    fig, ax = new_figure()
    _draw_regions(ax, regions or {})
    ax.axhline(0.0, color="black", linewidth=0.8, label="_zero")
    order = np.argsort(xs, kind="stable")
    for name, e in ys.items():
        (line,) = ax.plot(xs[order], e[order] * HARTREE_TO_KCALMOL, label=name,
                          **({"linewidth": 1.4} | style_of(styles, name)))
        if name in sigmas:
            _draw_band(ax, xs[order], np.zeros(len(xs)), sigmas[name][order] * HARTREE_TO_KCALMOL,
                       name, line.get_color())
    for name, mx in (marks or {}).items():
        mx = vector(mx, f"marks {name!r}")
        ax.plot(mx, np.zeros_like(mx), label=name, **({"marker": "|", "markersize": 14,
                "markeredgewidth": 2, "linestyle": "none", "color": "black", "zorder": 3}
                | style_of(styles, name)))
    ax.set_ylabel("error, predicted − reference (kcal/mol)")
    _finish(ax, xlabel, title, ylim)
    return fig


def _draw_regions(ax: Axes, regions: Mapping[str, tuple[float, float]]) -> None:
    """Shade each labelled span (lo, hi) of the scan coordinate."""
    for i, (label, span) in enumerate(regions.items()):
        try:
            lo, hi = (float(v) for v in span)
        except (TypeError, ValueError):
            raise DataError(f"region {label!r} must be a pair (lo, hi); got {span!r}") from None
        ax.axvspan(lo, hi, color=_SPAN_COLORS[i % len(_SPAN_COLORS)], alpha=0.15, linewidth=0,
                   label=label)


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


def spread_vs_error(
    sets: Mapping[str, tuple[Any, Any]],
    *,
    title: str | None = None,
    styles: Mapping[str, Mapping[str, Any]] | None = None,
) -> Figure:
    """An ensemble's predicted spread against its actual absolute error, one point per geometry:
    a calibration plot without a scan coordinate.

    Args:
        sets: name -> (errors, spread): (geometries,) predicted minus reference energies and
            (geometries,) standard deviation over members, both Hartree (shown in kcal/mol).
            Each legend entry carries the Spearman correlation and the share within 2 sigma
            (:func:`levelup.report.metrics.calibration`).
        styles: name -> keyword arguments for ``Axes.plot``.

    Returns:
        The figure; ``fig.axes[0]`` holds one line per set (markers only), then the lines
        ``|error| = sigma`` and ``|error| = 2 sigma`` (labels ``1σ`` and ``2σ``): points below
        the ``2σ`` line are errors the ensemble's bar covers.
    """
    from levelup.report.metrics import calibration

    if not sets:
        raise DataError("spread_vs_error needs at least one set of (errors, spread)")
    fig, ax = new_figure((5.8, 5.6))
    right = top = 0.0
    for i, (name, pair) in enumerate(sets.items()):
        errors, spread = _pair(pair, f"set {name!r}", "(errors, spread)")
        e = vector(errors, f"errors of {name!r}")
        sigma = vector(spread, f"spread of {name!r}", len(e))
        cal = calibration(e, sigma)
        x, y = sigma * HARTREE_TO_KCALMOL, np.abs(e) * HARTREE_TO_KCALMOL
        right, top = max(right, float(x.max())), max(top, float(y.max()))
        style = {"marker": MARKERS[i % len(MARKERS)], "markersize": 4, "linestyle": "none",
                 "alpha": 0.6}
        ax.plot(x, y, label=f"{name} (Spearman {cal.spearman:.2f}, "
                f"{cal.within_2sigma:.0%} within 2σ)", **(style | style_of(styles, name)))
    right, top = 1.05 * (right or 1.0), 1.05 * (top or 1.0)
    ax.plot([0, right], [0, right], color="0.5", linewidth=1.0, linestyle=":", label="1σ",
            zorder=0)
    ax.plot([0, right], [0, 2 * right], color="0.3", linewidth=1.0, linestyle="--", label="2σ",
            zorder=0)
    ax.set_xlim(0, right)
    ax.set_ylim(0, top)
    ax.set_xlabel("predicted spread σ, standard deviation over members (kcal/mol)")
    ax.set_ylabel("absolute error of the ensemble mean (kcal/mol)")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    return fig


__all__ = ["BAND_SIGMAS", "energy_curves", "error_curves", "parity", "spread_vs_error"]
