"""Plots of a study: energy curves along a scan, signed errors along it, parity plots, learning
curves and data-efficiency curves.

Every function takes arrays (energies in Hartree, the internal unit), returns a
:class:`matplotlib.figure.Figure` built with the object-oriented API (no pyplot, no global state,
nothing shown: safe on a headless machine and in threads), and converts to kcal/mol for display.
:func:`save_figure` writes a figure as PNG and SVG, atomically. In a notebook,
``IPython.display.display(fig)`` shows it once the inline backend is active (``%matplotlib inline``);
``IPython.display.Image(path)`` shows a saved PNG in any case.

Example::

    fig = energy_curves(r, {"CISD/cc-pVDZ": cisd, "transfer": predicted},
                        points={"training": (r[train], cisd[train])})
    save_figure(fig, "runs/demo/energy_curves")      # energy_curves.png, energy_curves.svg
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

_FIGSIZE = (7.5, 4.5)  # inches; leaves room for a legend outside the axes on the right
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_SPAN_COLORS = ("tab:orange", "tab:gray", "tab:purple", "tab:olive")


# ---------------------------------------------------------------------------------- helpers


def _new_figure(figsize: tuple[float, float] = _FIGSIZE) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _vector(values: Any, what: str, n: int | None = None) -> np.ndarray:
    """``values`` as a float64 1-D array (of length ``n`` when given), else a DataError."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{what} must be numbers; got {type(values).__name__}") from None
    if arr.ndim != 1:
        raise DataError(f"{what} must be one value per molecule (1-D); got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise DataError(f"{what} has {arr.shape[0]} values but x has {n}; pass one per point")
    return arr


def _factor(unit: str) -> float:
    try:
        return ENERGY_UNITS[unit]
    except KeyError:
        raise ConfigError(f"unknown energy unit {unit!r}; choose one of {list(ENERGY_UNITS)}") from None


def _outside_legend(ax: Axes) -> None:
    """Legend to the right of the axes, where it never hides a curve."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)


def _style(styles: Mapping[str, Mapping[str, Any]] | None, name: str) -> dict[str, Any]:
    return dict((styles or {}).get(name, {}))


# ---------------------------------------------------------------------------------- scans


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
    factor = _factor(unit)
    xs = _vector(x, "x")
    if not curves:
        raise DataError("energy_curves needs at least one curve")
    ys = {name: _vector(y, f"curve {name!r}", len(xs)) for name, y in curves.items()}
    if relative_to is None and unit == "kcal/mol":
        relative_to = next(iter(ys))
    if isinstance(relative_to, str):
        if relative_to not in ys:
            raise ConfigError(f"relative_to names no curve: {relative_to!r}; the curves are "
                              f"{list(ys)}")
        if not np.isfinite(ys[relative_to]).any():
            raise DataError(f"curve {relative_to!r} holds no finite energy to plot relative to")
        relative_to = float(np.nanmin(ys[relative_to]))
    shift = 0.0 if relative_to is None else float(relative_to)

    fig, ax = _new_figure()
    order = np.argsort(xs, kind="stable")
    for name, y in ys.items():
        style = {"linewidth": 1.6} | _style(styles, name)
        ax.plot(xs[order], (y[order] - shift) * factor, label=name, **style)
    for i, (name, pair) in enumerate((points or {}).items()):
        try:
            px, py = pair
        except (TypeError, ValueError):
            raise DataError(f"points {name!r} must be a pair (x, energies); got {pair!r}") from None
        px = _vector(px, f"x of points {name!r}")
        py = _vector(py, f"energies of points {name!r}", len(px))
        style = {"marker": _MARKERS[i % len(_MARKERS)], "linestyle": "none", "markersize": 7,
                 "markeredgecolor": "black", "markeredgewidth": 0.8, "zorder": 3}
        ax.plot(px, (py - shift) * factor, label=name, **(style | _style(styles, name)))

    if relative_to is None:
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
    _outside_legend(ax)
    return fig


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
    xs = _vector(x, "x")
    if not errors:
        raise DataError("error_curves needs at least one error curve")
    ys = {name: _vector(e, f"errors {name!r}", len(xs)) for name, e in errors.items()}
    fig, ax = _new_figure()
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
                **({"linewidth": 1.4} | _style(styles, name)))
    for name, mx in (marks or {}).items():
        mx = _vector(mx, f"marks {name!r}")
        ax.plot(mx, np.zeros_like(mx), label=name, **({"marker": "|", "markersize": 14,
                "markeredgewidth": 2, "linestyle": "none", "color": "black", "zorder": 3}
                | _style(styles, name)))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("error, predicted − reference (kcal/mol)")
    if ylim is not None:
        ax.set_ylim(*ylim)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    _outside_legend(ax)
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

    factor = _factor(unit)
    ref = _vector(reference, "reference")
    if not predictions:
        raise DataError("parity needs at least one set of predictions")
    preds = {name: _vector(p, f"predictions {name!r}", len(ref)) for name, p in predictions.items()}
    if not np.isfinite(ref).any():
        raise DataError("the reference holds no finite energy")
    shift = float(np.nanmin(ref)) if unit == "kcal/mol" else 0.0
    fig, ax = _new_figure((5.8, 5.6))
    shown = [(ref - shift) * factor]
    for i, (name, p) in enumerate(preds.items()):
        rmse = error_stats(p, ref)["rmse"]
        y = (p - shift) * factor
        shown.append(y)
        style = {"marker": _MARKERS[i % len(_MARKERS)], "markersize": 4, "linestyle": "none",
                 "alpha": 0.7}
        ax.plot(shown[0], y, label=f"{name} (RMSE {rmse:.3g} kcal/mol)",
                **(style | _style(styles, name)))
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


# ---------------------------------------------------------------------------------- training


def _history_arrays(history: Any, name: str) -> dict[str, Any]:
    """epoch, train_rmse, val_rmse, lr (float arrays, NaN for missing) and best_epoch."""
    if isinstance(history, Mapping):
        data = history
    elif hasattr(history, "to_dict"):
        data = history.to_dict()
    else:
        raise DataError(f"history {name!r} must be a levelup History or a dict; got "
                        f"{type(history).__name__}")
    if "train_rmse" not in data:
        raise DataError(f"history {name!r} has no 'train_rmse'; it has {sorted(data)}")
    # None (null in a History JSON file) becomes NaN
    train = np.array(data["train_rmse"], dtype=np.float64)
    n = len(train)
    out = {"train_rmse": train, "best_epoch": int(data.get("best_epoch") or 0)}
    epoch = data.get("epoch")
    out["epoch"] = (np.arange(1, n + 1, dtype=np.float64) if epoch is None or len(epoch) == 0
                    else np.array(epoch, dtype=np.float64))
    for key in ("val_rmse", "lr"):
        values = data.get(key)
        out[key] = (np.full(n, math.nan) if values is None or len(values) == 0
                    else np.array(values, dtype=np.float64))
    for key in ("epoch", "val_rmse", "lr"):
        if len(out[key]) != n:
            raise DataError(f"history {name!r}: {key} has {len(out[key])} entries but train_rmse "
                            f"has {n}")
    return out


def learning_curves(
    histories: Mapping[str, Any],
    *,
    lr: bool = False,
    title: str | None = None,
) -> Figure:
    """Training and validation energy RMSE (kcal/mol, log scale) against epoch.

    Args:
        histories: name -> :class:`levelup.train.loop.History` or its dict (``History.to_dict()``,
            the JSON of ``History.save``). RMSEs there are in kcal/mol.
        lr: also draw the learning rate (dotted, log scale) on a second y axis (``fig.axes[1]``).

    Returns:
        The figure; ``fig.axes[0]`` holds per history a solid line "NAME train", a dashed line
        "NAME validation" (when it has validation RMSEs) and a star at the restored best epoch.
    """
    if not histories:
        raise DataError("learning_curves needs at least one history")
    fig, ax = _new_figure()
    twin = ax.twinx() if lr else None
    for i, (name, history) in enumerate(histories.items()):
        h = _history_arrays(history, name)
        color = f"C{i % 10}"
        ax.plot(h["epoch"], h["train_rmse"], color=color, linestyle="-", label=f"{name} train")
        has_val = bool(np.isfinite(h["val_rmse"]).any())
        if has_val:
            ax.plot(h["epoch"], h["val_rmse"], color=color, linestyle="--",
                    label=f"{name} validation")
        best = np.flatnonzero(h["epoch"] == h["best_epoch"])
        if best.size:
            y = (h["val_rmse"] if has_val else h["train_rmse"])[best[0]]
            ax.plot([h["best_epoch"]], [y], marker="*", markersize=12, color=color,
                    markeredgecolor="black", linestyle="none",
                    label="best epoch (restored)" if i == 0 else "_best")
        if twin is not None and np.isfinite(h["lr"]).any():
            twin.plot(h["epoch"], h["lr"], color=color, linestyle=":", linewidth=1.0,
                      label=f"{name} learning rate")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("energy RMSE (kcal/mol)")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if twin is not None:
        twin.set_yscale("log")
        twin.set_ylabel("learning rate")
        more = twin.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    ax.legend(handles, labels, loc="upper right", fontsize="small")
    if title:
        ax.set_title(title)
    return fig


def data_efficiency(
    sizes: Sequence[int] | Any,
    results: Mapping[str, Any],
    *,
    ylabel: str = "RMSE (kcal/mol)",
    xlabel: str = "high-level training points",
    logy: bool = True,
    title: str | None = None,
    styles: Mapping[str, Mapping[str, Any]] | None = None,
) -> Figure:
    """Error against the number of high-level points (a learning-curve benchmark).

    Args:
        sizes: (k,) numbers of high-level points (log-scaled axis, ticked at these values).
        results: name -> ``(median, lo, hi)``, three (k,) arrays (e.g. median, min and max over
            seeds), drawn as a line and a shaded band; or a single (k,) array (no band).
        ylabel: what the values are (default "RMSE (kcal/mol)").
        logy: log-scaled y axis.

    Returns:
        The figure; ``fig.axes[0]`` holds one line per name.
    """
    n = _vector(sizes, "sizes")
    if not results:
        raise DataError("data_efficiency needs at least one result")
    fig, ax = _new_figure((6.5, 4.5))
    for i, (name, value) in enumerate(results.items()):
        arr = np.asarray(value, dtype=np.float64)
        if arr.ndim == 1:
            median, band = _vector(arr, f"results {name!r}", len(n)), None
        elif arr.shape == (3, len(n)):
            median, band = arr[0], (arr[1], arr[2])
        else:
            raise DataError(f"results {name!r} must be (median, lo, hi) arrays of {len(n)} values "
                            f"each, or one array; got shape {arr.shape}")
        style = {"marker": _MARKERS[i % len(_MARKERS)], "color": f"C{i % 10}"}
        style |= _style(styles, name)
        ax.plot(n, median, label=name, **style)
        if band is not None:
            ax.fill_between(n, band[0], band[1], color=style["color"], alpha=0.18, linewidth=0)
    ax.set_xscale("log")
    ticks = sorted(set(n.tolist()))
    ax.set_xticks(ticks, labels=[f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(_null_locator())
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="best")
    if title:
        ax.set_title(title)
    return fig


def _null_locator() -> Any:
    from matplotlib.ticker import NullLocator

    return NullLocator()


# ---------------------------------------------------------------------------------- files


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
