"""Plots: the lines, markers, labels and units each figure holds, and the files save_figure writes."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from levelup.errors import ConfigError, DataError
from levelup.report.figure import save_figure
from levelup.report.learning import data_efficiency, learning_curves
from levelup.report.plots import energy_curves, error_curves, parity, spread_vs_error
from levelup.units import HARTREE_TO_KCALMOL

K = HARTREE_TO_KCALMOL


def visible(ax):
    """Lines of ``ax`` that have a legend entry, by label."""
    return {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith("_")}


def legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


@pytest.fixture(scope="module")
def scan():
    r = np.arange(0.5, 5.01, 0.05)
    low = -1.0 + 0.2 * (1 - np.exp(-1.5 * (r - 0.7))) ** 2  # Morse-like, Hartree
    high = low - 0.05
    return r, low, high


def test_energy_curves_lines_points_and_units(scan):
    r, low, high = scan
    train = np.array([4, 12, 20])
    fig = energy_curves(r[::-1], {"HF": low[::-1], "CISD": high[::-1], "model": high[::-1] + 1e-3},
                        points={"training": (r[train], high[train]), "validation": ([r[30]], [high[30]])},
                        title="H2")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    lines = visible(ax)
    assert list(lines) == ["HF", "CISD", "model", "training", "validation"]
    assert legend_texts(ax) == list(lines)
    # drawn sorted along x although given reversed
    assert np.all(np.diff(lines["HF"].get_xdata()) > 0)
    # relative to the minimum of the first curve, in kcal/mol
    assert np.nanmin(lines["HF"].get_ydata()) == pytest.approx(0.0, abs=1e-9)
    assert lines["CISD"].get_ydata() == pytest.approx((high - low.min()) * K)
    assert lines["model"].get_ydata()[0] - lines["CISD"].get_ydata()[0] == pytest.approx(1e-3 * K)
    # points are markers without a line, at the right heights
    for name in ("training", "validation"):
        assert lines[name].get_linestyle() == "None" and lines[name].get_marker() not in ("", "None")
    assert lines["training"].get_marker() != lines["validation"].get_marker()
    assert lines["training"].get_ydata() == pytest.approx((high[train] - low.min()) * K)
    assert "kcal/mol" in ax.get_ylabel() and f"{low.min():.6f}" in ax.get_ylabel()
    assert ax.get_xlabel() == "H-H distance (Å)" and ax.get_title() == "H2"


def test_energy_curves_relative_to_a_named_curve_or_hartree(scan):
    r, low, high = scan
    fig = energy_curves(r, {"HF": low, "CISD": high}, relative_to="CISD")
    assert np.nanmin(visible(fig.axes[0])["CISD"].get_ydata()) == pytest.approx(0.0, abs=1e-9)
    fig = energy_curves(r, {"HF": low}, unit="Hartree", styles={"HF": {"color": "black"}})
    line = visible(fig.axes[0])["HF"]
    assert line.get_ydata() == pytest.approx(low) and line.get_color() == "black"
    assert fig.axes[0].get_ylabel() == "energy (Hartree)"
    fig = energy_curves(r, {"HF": low}, relative_to=-1.0, ylim=(-5, 50))
    assert visible(fig.axes[0])["HF"].get_ydata() == pytest.approx((low + 1.0) * K)
    assert fig.axes[0].get_ylim() == (-5, 50)


def test_energy_curves_errors(scan):
    r, low, _ = scan
    with pytest.raises(ConfigError, match="kcal/mol"):
        energy_curves(r, {"HF": low}, unit="eV")
    with pytest.raises(DataError, match="values but x has"):
        energy_curves(r, {"HF": low[:-1]})
    with pytest.raises(DataError, match="at least one"):
        energy_curves(r, {})
    with pytest.raises(ConfigError, match="names no curve"):
        energy_curves(r, {"HF": low}, relative_to="CISD")
    with pytest.raises(DataError, match="pair"):
        energy_curves(r, {"HF": low}, points={"training": r})
    with pytest.raises(DataError, match="no finite"):
        energy_curves(r, {"HF": low * np.nan})


def band_of(ax, label):
    """The one PolyCollection labelled ``label`` on ``ax``, as its (x, y) vertices."""
    (band,) = [c for c in ax.collections if c.get_label() == label]
    assert isinstance(band, PolyCollection)
    return np.concatenate([p.vertices for p in band.get_paths()])


def test_energy_curves_shade_two_sigma_bands(scan):
    r, low, high = scan
    sigma = 1e-3 * (1 + r)  # Hartree, growing along the scan
    fig = energy_curves(r[::-1], {"CISD": high[::-1], "ensemble": high[::-1] + 1e-3},
                        bands={"ensemble": sigma[::-1]})
    ax = fig.axes[0]
    assert "ensemble ± 2σ" in legend_texts(ax)
    xy = band_of(ax, "ensemble ± 2σ")
    centre = (high + 1e-3 - high.min()) * K  # relative to the first curve's minimum, kcal/mol
    assert xy[:, 1].min() == pytest.approx((centre - 2 * sigma * K).min())
    assert xy[:, 1].max() == pytest.approx((centre + 2 * sigma * K).max())
    at = xy[np.isclose(xy[:, 0], r[10])][:, 1]  # the band's edges at one point
    assert at.min() == pytest.approx(centre[10] - 2 * sigma[10] * K)
    assert at.max() == pytest.approx(centre[10] + 2 * sigma[10] * K)
    assert ax.collections[0].get_facecolor()[0][:3] == pytest.approx(
        to_rgb(visible(ax)["ensemble"].get_color()))
    hartree = band_of(energy_curves(r, {"m": high}, bands={"m": sigma}, unit="Hartree").axes[0],
                      "m ± 2σ")
    assert hartree[:, 1].max() == pytest.approx((high + 2 * sigma).max())


def test_bands_must_match_a_curve_and_its_length(scan):
    r, low, _ = scan
    with pytest.raises(DataError, match=r"band 'HF' \(standard deviations\) has 90 values but x has 91"):
        energy_curves(r, {"HF": low}, bands={"HF": np.ones(len(r) - 1)})
    with pytest.raises(ConfigError, match="band 'CISD' names no curve"):
        energy_curves(r, {"HF": low}, bands={"CISD": np.ones(len(r))})
    with pytest.raises(DataError, match=">= 0"):
        energy_curves(r, {"HF": low}, bands={"HF": -np.ones(len(r))})
    with pytest.raises(DataError, match="has 3 values but x has"):
        error_curves(r, {"t": low}, bands={"t": [1.0, 2.0, 3.0]})


def test_error_curves_band_is_centred_on_zero(scan):
    r, _, _ = scan
    err, sigma = 1e-3 * np.sin(r), 2e-3 * np.ones_like(r)
    ax = error_curves(r, {"ensemble": err}, bands={"ensemble": sigma}).axes[0]
    xy = band_of(ax, "ensemble ± 2σ")
    assert (xy[:, 1].min(), xy[:, 1].max()) == pytest.approx((-4e-3 * K, 4e-3 * K))


def test_spread_vs_error_scatter_with_sigma_lines():
    rng = np.random.default_rng(0)
    sigma = rng.uniform(0.5, 2.0, 200) / K
    errors = rng.normal(0.0, sigma)
    fig = spread_vs_error({"seed 0": (errors, sigma)}, title="water")
    ax = fig.axes[0]
    lines = visible(ax)
    points, one, two = lines.values()
    assert list(lines)[1:] == ["1σ", "2σ"] and legend_texts(ax) == list(lines)
    assert points.get_label().startswith("seed 0 (Spearman ") and "within 2σ)" in points.get_label()
    assert points.get_xdata() == pytest.approx(sigma * K)
    assert points.get_ydata() == pytest.approx(np.abs(errors) * K)
    x2, y2 = lines["2σ"].get_data()
    assert y2[1] == pytest.approx(2 * x2[1])
    with pytest.raises(DataError, match="zero at every geometry"):
        spread_vs_error({"one model": (errors, np.zeros_like(errors))})
    with pytest.raises(DataError, match="pair"):
        spread_vs_error({"bad": errors})


def test_error_curves_signed_kcalmol_regions_and_marks(scan):
    r, low, high = scan
    err = np.where(r < 0.9, -0.01, 0.001)
    fig = error_curves(r, {"transfer": err, "scratch": -err},
                       regions={"extrapolation": (0.5, 0.9)}, marks={"training": [1.0, 2.0]})
    ax = fig.axes[0]
    lines = visible(ax)
    assert list(lines) == ["transfer", "scratch", "training"]
    assert lines["transfer"].get_ydata() == pytest.approx(err * K)
    assert lines["training"].get_ydata() == pytest.approx([0.0, 0.0])
    assert any(ln.get_label() == "_zero" for ln in ax.get_lines())
    assert "extrapolation" in legend_texts(ax)
    (span,) = [p for p in ax.patches if p.get_label() == "extrapolation"]
    assert (span.get_x(), span.get_width()) == pytest.approx((0.5, 0.4))
    assert "kcal/mol" in ax.get_ylabel()
    with pytest.raises(DataError, match="pair"):
        error_curves(r, {"t": err}, regions={"bad": 0.5})


def test_parity_relative_to_min_reference_with_rmse_in_legend(scan):
    _, _, high = scan
    pred = high + 2.0 / K
    fig = parity(high, {"transfer": pred, "scratch": high}, reference_label="CISD/cc-pVDZ")
    ax = fig.axes[0]
    lines = visible(ax)
    assert list(lines) == ["transfer (RMSE 2 kcal/mol)", "scratch (RMSE 0 kcal/mol)"]
    line = lines["transfer (RMSE 2 kcal/mol)"]
    assert min(line.get_xdata()) == pytest.approx(0.0)
    assert np.asarray(line.get_ydata()) - np.asarray(line.get_xdata()) == pytest.approx(2.0)
    diagonal = [ln for ln in ax.get_lines() if ln.get_label() == "_diagonal"][0]
    x0, x1 = diagonal.get_xdata()
    assert list(diagonal.get_ydata()) == [x0, x1]
    assert x0 < 0.0 and x1 > max(line.get_ydata())  # the diagonal spans every point
    assert "CISD/cc-pVDZ" in ax.get_xlabel() and "kcal/mol" in ax.get_xlabel()


def test_parity_ignores_nan_and_works_in_hartree(scan):
    _, _, high = scan
    pred = high.copy()
    pred[3] = np.nan
    fig = parity(high, {"m": pred}, unit="Hartree")
    line = list(visible(fig.axes[0]).values())[0]
    assert np.nanmin(line.get_xdata()) == pytest.approx(high.min())
    assert "Hartree" in fig.axes[0].get_ylabel()


def history_dict(n, *, val=True, best=None):
    epoch = list(range(1, n + 1))
    return {"units": "kcal/mol", "epoch": epoch, "train_rmse": [10.0 / e for e in epoch],
            "val_rmse": [12.0 / e for e in epoch] if val else [None] * n,
            "lr": [1e-3] * n, "best_epoch": best or n}


def test_learning_curves_from_dicts_and_history_objects():
    from levelup.train.history import History

    h = History.from_dict(history_dict(20, best=15))
    fig = learning_curves({"pretrain": h, "transfer": history_dict(8, val=False)})
    ax = fig.axes[0]
    lines = visible(ax)
    assert list(lines) == ["pretrain train", "pretrain validation", "best epoch (restored)",
                           "transfer train"]  # no validation line without validation RMSEs
    assert lines["pretrain train"].get_linestyle() == "-"
    assert lines["pretrain validation"].get_linestyle() == "--"
    assert lines["pretrain train"].get_color() == lines["pretrain validation"].get_color()
    assert list(lines["best epoch (restored)"].get_xdata()) == [15]
    assert lines["best epoch (restored)"].get_ydata()[0] == pytest.approx(12.0 / 15)
    assert ax.get_yscale() == "log" and "kcal/mol" in ax.get_ylabel()
    assert len(fig.axes) == 1


def test_learning_curves_learning_rate_axis(tmp_path):
    from levelup.train.history import History

    History.from_dict(history_dict(5)).save(tmp_path / "h.json")
    fig = learning_curves({"a": History.load(tmp_path / "h.json")}, lr=True)
    assert len(fig.axes) == 2 and fig.axes[1].get_yscale() == "log"
    assert [ln.get_label() for ln in fig.axes[1].get_lines()] == ["a learning rate"]
    assert "a learning rate" in legend_texts(fig.axes[0])


def test_learning_curves_rejects_bad_histories():
    with pytest.raises(DataError, match="train_rmse"):
        learning_curves({"a": {"epoch": [1]}})
    with pytest.raises(DataError, match="History or a dict"):
        learning_curves({"a": [1, 2]})
    bad = history_dict(3)
    bad["val_rmse"] = [1.0]
    with pytest.raises(DataError, match="val_rmse has 1"):
        learning_curves({"a": bad})


def test_data_efficiency_bands_and_log_axes():
    sizes = [3, 5, 12, 24]
    fig = data_efficiency(sizes, {"transfer": ([3, 2, 1, 0.5], [2, 1, 0.8, 0.4], [4, 3, 2, 1]),
                                  "delta": np.array([9.0, 6, 3, 1])})
    ax = fig.axes[0]
    lines = visible(ax)
    assert list(lines) == ["transfer", "delta"]
    assert list(lines["transfer"].get_xdata()) == sizes
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["3", "5", "12", "24"]
    assert len(ax.collections) == 1  # one band: delta has none
    with pytest.raises(DataError, match="median, lo, hi"):
        data_efficiency(sizes, {"x": np.zeros((2, 4))})


def test_save_figure_writes_png_and_svg_atomically(tmp_path, scan):
    r, low, _ = scan
    fig = energy_curves(r, {"HF": low})
    paths = save_figure(fig, tmp_path / "sub" / "curves")
    assert paths == [tmp_path / "sub" / "curves.png", tmp_path / "sub" / "curves.svg"]
    assert paths[0].read_bytes().startswith(b"\x89PNG")
    svg = paths[1].read_text()
    assert "<svg" in svg and "HF" in svg
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["curves.png", "curves.svg"]
    # the same plot made again gives the same SVG bytes (no date, fixed ids)
    once = save_figure(energy_curves(r, {"HF": low}), tmp_path / "once.svg", formats=["svg"])
    again = save_figure(energy_curves(r, {"HF": low}), tmp_path / "again.svg", formats=["svg"])
    assert again == [tmp_path / "again.svg"] and again[0].read_bytes() == once[0].read_bytes()
    # a suffix that is not a format is kept as part of the name
    assert save_figure(fig, tmp_path / "run.v1", formats=("png",), dpi=30) == [tmp_path / "run.v1.png"]
    with pytest.raises(ConfigError, match="format"):
        save_figure(fig, tmp_path / "x", formats=("docx",))


def test_plots_use_no_pyplot_and_work_in_threads(scan):
    r, low, _ = scan
    errors = []

    def work():
        try:
            fig = energy_curves(r, {"HF": low})
            fig.canvas.draw()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    if "matplotlib.pyplot" in sys.modules:  # another test may have imported it; then no figures are
        from matplotlib import pyplot  # registered with it by levelup

        assert pyplot.get_fignums() == []


def test_plot_and_report_never_import_pyplot(tmp_path):
    import subprocess

    code = (
        "import sys, numpy as np\n"
        "from levelup.report.figure import save_figure\n"
        "from levelup.report.learning import learning_curves\n"
        "from levelup.report.plots import energy_curves, parity\n"
        "from levelup.report.markdown import write_run_folder\n"
        "r = np.linspace(0.5, 5, 20)\n"
        "f = energy_curves(r, {'a': -1 + 0.1 * r})\n"
        f"write_run_folder({str(tmp_path)!r}, title='t', metrics={{}}, figures={{'a': f}})\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert (tmp_path / "a.png").is_file() and (tmp_path / "report.md").is_file()
