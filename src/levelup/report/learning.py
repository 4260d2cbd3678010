"""Figures of training: learning curves (RMSE against epoch) and data-efficiency curves (error
against the number of high-level points). Each returns a :class:`matplotlib.figure.Figure`
(object-oriented API, nothing shown); :func:`levelup.report.figure.save_figure` writes it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from levelup.errors import DataError
from levelup.report.figure import MARKERS, new_figure, style_of, vector

if TYPE_CHECKING:
    from matplotlib.figure import Figure


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
    fig, ax = new_figure()
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
    n = vector(sizes, "sizes")
    if not results:
        raise DataError("data_efficiency needs at least one result")
    fig, ax = new_figure((6.5, 4.5))
    for i, (name, value) in enumerate(results.items()):
        arr = np.asarray(value, dtype=np.float64)
        if arr.ndim == 1:
            median, band = vector(arr, f"results {name!r}", len(n)), None
        elif arr.shape == (3, len(n)):
            median, band = arr[0], (arr[1], arr[2])
        else:
            raise DataError(f"results {name!r} must be (median, lo, hi) arrays of {len(n)} values "
                            f"each, or one array; got shape {arr.shape}")
        style = {"marker": MARKERS[i % len(MARKERS)], "color": f"C{i % 10}"}
        style |= style_of(styles, name)
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


__all__ = ["data_efficiency", "learning_curves"]
