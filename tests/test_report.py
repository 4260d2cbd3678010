"""Run folders: figure files, metrics.json's shape (the demo's contract) and report.md's links."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from levelup.errors import ConfigError, DataError
from levelup.report.markdown import (
    flat_metrics,
    metrics_table_markdown,
    rmse_table_markdown,
    write_run_folder,
)
from levelup.report.metrics import H2_REGIONS, region_stats
from levelup.report.plots import energy_curves, parity
from levelup.units import HARTREE_TO_KCALMOL

K = HARTREE_TO_KCALMOL


@pytest.fixture(scope="module")
def study():
    r = np.arange(0.5, 5.01, 0.01)
    cisd = -1.1 + 0.15 * (1 - np.exp(-1.8 * (r - 0.76))) ** 2
    hf = cisd + 0.04
    preds = {"pretrained": hf + 1.0 / K,                       # 1 kcal/mol everywhere vs HF
             "transfer": cisd + np.where(r < 0.9, 6.0, 0.5) / K,  # worse where it extrapolates
             "scratch": cisd - 3.0 / K,
             "delta": cisd + 0.2 / K}
    refs = {"pretrained": hf, "transfer": cisd, "scratch": cisd, "delta": cisd}
    stats = {m: region_stats(p, refs[m], r, H2_REGIONS) for m, p in preds.items()}
    return r, cisd, preds, stats


def test_flat_metrics_has_the_demo_keys(study):
    *_, stats = study
    flat = flat_metrics(stats)
    assert list(flat) == ["pretrained", "transfer", "scratch", "delta"]
    for model in flat:
        for key in ("rmse_all_kcalmol", "rmse_0.5-2.5_kcalmol", "rmse_0.9-5.0_kcalmol",
                    "mae_all_kcalmol", "max_all_kcalmol"):
            assert isinstance(flat[model][key], float)
    assert flat["pretrained"]["rmse_all_kcalmol"] == pytest.approx(1.0)
    assert flat["transfer"]["rmse_0.9-5.0_kcalmol"] == pytest.approx(0.5)
    assert flat["transfer"]["max_all_kcalmol"] == pytest.approx(6.0)
    assert flat["scratch"]["mae_all_kcalmol"] == pytest.approx(3.0)
    with pytest.raises(DataError, match="lack 'rmse'"):
        flat_metrics({"m": {"all": {"mae": 1.0}}})


def test_tables(study):
    *_, stats = study
    table = metrics_table_markdown(stats, "0.9-5.0", references={"transfer": "CISD/cc-pVDZ"})
    rows = table.strip().splitlines()
    assert len(rows) == 2 + 4
    assert all(row.count("|") == rows[0].count("|") for row in rows)  # well-formed
    transfer = next(row for row in rows if row.startswith("| transfer"))
    assert "CISD/cc-pVDZ" in transfer and "| 0.5 |" in transfer and transfer.endswith("| 411 |")
    summary = rmse_table_markdown(stats).strip().splitlines()
    assert summary[0] == "| model | all | 0.5-2.5 | 0.9-5.0 |"
    assert summary[3].startswith("| transfer | ")


def test_write_run_folder(tmp_path, study):
    r, cisd, preds, stats = study
    figures = {"energy_curves": energy_curves(r, {"CISD": cisd, "transfer": preds["transfer"]}),
               "parity": parity(cisd, {"transfer": preds["transfer"]})}
    report = write_run_folder(
        tmp_path / "run", title="H2 transfer", metrics=stats, figures=figures,
        notes=["the transfer model extrapolates below 0.9 Å"],
        extra={"seed": 3, "times_s": {"labels": 9.5, "pretraining": np.float64(20.25)}},
        references={"pretrained": "HF/STO-3G", "transfer": "CISD/cc-pVDZ"},
        regions={"0.9-5.0": "0.9 ≤ r ≤ 5.0 Å (training range)"},
        captions={"parity": "Predicted vs CISD."})
    folder = tmp_path / "run"
    assert report == folder / "report.md"
    assert sorted(p.name for p in folder.iterdir()) == [
        "energy_curves.png", "energy_curves.svg", "metrics.json", "parity.png", "parity.svg",
        "report.md"]

    data = json.loads((folder / "metrics.json").read_text())
    assert set(data["models"]) == {"pretrained", "transfer", "scratch", "delta"}
    assert data["seed"] == 3 and data["times_s"] == {"labels": 9.5, "pretraining": 20.25}
    assert data["models"]["transfer"]["rmse_0.5-2.5_kcalmol"] == pytest.approx(
        math.sqrt((40 * 36 + 161 * 0.25) / 201))
    assert data["units"] == "kcal/mol" and data["details"]["delta"]["all"]["n"] == 451
    assert data["references"]["pretrained"] == "HF/STO-3G"

    text = report.read_text()
    assert text.startswith("# H2 transfer\n")
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert {"energy_curves.png", "energy_curves.svg", "parity.png", "metrics.json"} <= set(links)
    for link in links:
        assert (folder / link).is_file(), link
    assert "![parity](parity.png)" in text and "*Predicted vs CISD.*" in text
    assert "### Region `0.9-5.0`: 0.9 ≤ r ≤ 5.0 Å (training range)" in text
    assert "- the transfer model extrapolates below 0.9 Å" in text
    assert "- seed: 3" in text and "| pretraining | 20.25 |" in text
    for table in re.findall(r"((?:^\|.*\|\n)+)", text, flags=re.M):
        rows = table.splitlines()
        assert all(row.count("|") == rows[0].count("|") for row in rows), table


def test_nan_is_written_as_null(tmp_path):
    stats = {"m": region_stats(np.array([np.nan, -1.0]), np.array([-1.0, -1.0]), np.array([1.0, 2.0]),
                               {"all": (-np.inf, np.inf), "far": (10.0, 20.0)})}
    write_run_folder(tmp_path, title="t", metrics=stats, figures={})
    text = (tmp_path / "metrics.json").read_text()
    data = json.loads(text)  # strict JSON: no NaN literal
    assert "NaN" not in text
    assert data["models"]["m"]["rmse_far_kcalmol"] is None
    assert data["models"]["m"]["rmse_all_kcalmol"] == 0.0
    assert data["details"]["m"]["all"]["n_missing"] == 1
    assert "| m | – | – | – | – | 0 |" in (tmp_path / "report.md").read_text()


def test_write_run_folder_refuses_bad_input(tmp_path, study):
    *_, stats = study
    with pytest.raises(ConfigError, match="reserves"):
        write_run_folder(tmp_path, title="t", metrics=stats, figures={}, extra={"models": 1})
    with pytest.raises(ConfigError, match="file names"):
        write_run_folder(tmp_path, title="t", metrics=stats, figures={"../x": None})
    with pytest.raises(DataError, match="cannot write object"):
        write_run_folder(tmp_path, title="t", metrics=stats, figures={}, extra={"x": object()})
    assert list(tmp_path.iterdir()) == []
