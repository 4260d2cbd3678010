"""Study files (levelup.study.schema) and running them with the step cache (levelup.study.runner)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

import levelup
from levelup.errors import ConfigError
from levelup.study.reader import parse_study, read_study
from levelup.study.runner import build_geometries, run_study, select

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "h2_tutorial.toml"
STEPS = ["labels", "pretrained", "transfer", "scratch", "delta", "outputs"]

SMALL = """
title = "small H2 study"
seed = 0
[geometries]
source = "scan"
structure = "h2.xyz"
bond = [0, 1]
from = 0.5
to = 3.0
step = 0.1
[levels]
low = "HF/STO-3G"
high = "CISD/cc-pVDZ"
workers = 1
[selection]
method = "every"
step = 3
validation_every = 4
[model]
hidden = [16, 8]
[train]
max_epochs = 15
[pretrain]
max_epochs = 25
[transfer]
folds = 3
[output]
folder = "run"
plots = ["energy_curves", "learning_curves"]
formats = ["png"]
regions = { all = [-inf, inf], bound = [0.5, 2.0] }
"""


def write_study(folder: Path, text: str = SMALL) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "h2.xyz").write_text("2\nH2\nH 0 0 0\nH 0 0 0.74\n")
    path = folder / "study.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """A small study run once: (its folder, its StudyResult)."""
    folder = tmp_path_factory.mktemp("study")
    result = run_study(write_study(folder), progress=False)
    return folder, result


def rerun(first_run, tmp_path, text: str = SMALL):
    """Copy the first run's folder and run ``text`` there."""
    shutil.copytree(first_run[0] / "run", tmp_path / "run")
    return run_study(write_study(tmp_path, text), progress=False)


def test_first_run_trains_every_step_and_writes_the_run_folder(first_run):
    folder, result = first_run
    assert list(result.steps) == STEPS
    assert result.done == STEPS and result.reused == []
    run = folder / "run"
    for name in ("report.md", "metrics.json", "manifest.json", "labels.npz", "study.toml",
                 "energy_curves.png", "learning_curves.png"):
        assert (run / name).is_file(), name
    assert not (run / "parity.png").exists()  # not asked for
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["models"]) == {"pretrained", "transfer", "scratch", "delta",
                                      "HF/STO-3G itself"}
    assert metrics["high_level_points"] == {"train": [3, 6, 9, 15, 18, 21],
                                            "validation": [0, 12, 24]}
    for row in metrics["models"].values():
        assert math.isfinite(row["rmse_all_kcalmol"]) and math.isfinite(row["rmse_bound_kcalmol"])
    manifest = json.loads((run / "manifest.json").read_text())
    for step in STEPS[1:5]:
        entry = manifest["steps"][step]
        assert entry["status"] == "done" and entry["key"] == result.steps[step].key
        assert (run / entry["file"]).is_file()
        suffix = ".npz" if step == "delta" else ".pt"  # the kernel delta: a plain npz
        assert entry["file"] == f"models/{step}-{entry['key'][:16]}{suffix}"
    assert "kernel ridge regression" in (run / "report.md").read_text()


def test_second_run_reuses_every_step_with_identical_metrics(first_run, tmp_path):
    again = rerun(first_run, tmp_path)
    assert again.reused == STEPS and again.done == []
    assert again.metrics == first_run[1].metrics
    assert {k: s.key for k, s in again.steps.items()} == {k: s.key for k, s in
                                                          first_run[1].steps.items()}
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert {s["status"] for s in manifest["steps"].values()} == {"reused"}


def test_a_comment_changes_nothing_but_the_copy_of_the_study_file(first_run, tmp_path):
    again = rerun(first_run, tmp_path, SMALL + "# a note\n")
    assert again.reused == STEPS
    assert (tmp_path / "run" / "study.toml").read_text().endswith("# a note\n")


def test_changing_the_recipe_retrains_only_the_transfer_model(first_run, tmp_path):
    before = first_run[1].metrics["models"]
    again = rerun(first_run, tmp_path, SMALL.replace("folds = 3\n", "folds = 3\nridge = [30.0]\n"))
    assert again.done == ["transfer", "outputs"]
    assert again.reused == ["labels", "pretrained", "scratch", "delta"]
    after = again.metrics["models"]
    for name in ("pretrained", "scratch", "delta", "HF/STO-3G itself"):
        assert after[name] == before[name], name  # reloaded models predict bit-identically
    assert after["transfer"] != before["transfer"]
    models = sorted(p.name for p in (tmp_path / "run" / "models").glob("transfer-*.pt"))
    assert len(models) == 2  # the old transfer model stays: switching back reuses it


def test_changing_pretraining_retrains_the_models_built_on_it(first_run, tmp_path):
    again = rerun(first_run, tmp_path, SMALL.replace("max_epochs = 25", "max_epochs = 26"))
    assert again.done == ["pretrained", "transfer", "delta", "outputs"]
    assert again.reused == ["labels", "scratch"]


def test_switching_the_delta_method_refits_only_the_delta_model(first_run, tmp_path):
    before = first_run[1].metrics["models"]
    neural = SMALL.replace("[output]", '[delta]\nmethod = "neural"\nmax_epochs = 5\n[output]')
    again = rerun(first_run, tmp_path, neural)
    assert again.done == ["delta", "outputs"]
    assert again.steps["delta"].file.suffix == ".pt"
    assert again.metrics["models"]["delta"] != before["delta"]
    assert "an ANI network" in (tmp_path / "run" / "report.md").read_text()
    back = run_study(write_study(tmp_path), progress=False)  # the kernel model is still there
    assert back.reused == STEPS[:-1] and back.metrics["models"]["delta"] == before["delta"]


def test_a_killed_run_keeps_the_models_it_finished(tmp_path, monkeypatch):
    import levelup.transfer.kerneldelta

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    path = write_study(tmp_path)
    monkeypatch.setattr(levelup.transfer.kerneldelta, "fit_kernel_delta", killed)
    with pytest.raises(KeyboardInterrupt):
        run_study(path, progress=False)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert sorted(s for s, e in manifest["steps"].items() if e["status"] == "done") == [
        "labels", "pretrained", "scratch", "transfer"]
    monkeypatch.undo()
    result = run_study(path, progress=False)
    assert result.reused == ["labels", "pretrained", "transfer", "scratch"]
    assert result.done == ["delta", "outputs"]


def test_a_corrupted_model_file_is_retrained(first_run, tmp_path):
    shutil.copytree(first_run[0] / "run", tmp_path / "run")
    model = tmp_path / "run" / first_run[1].steps["scratch"].file.relative_to(first_run[0] / "run")
    model.write_bytes(model.read_bytes()[:100])
    again = run_study(write_study(tmp_path), progress=False)
    assert again.reused[:4] == ["labels", "pretrained", "transfer", "delta"]
    assert again.done[0] == "scratch"  # and outputs, unless the new weights are bit-identical
    assert again.metrics["models"]["scratch"] == first_run[1].metrics["models"]["scratch"]


def test_a_subset_of_comparisons_with_high_level_only_on_the_selected_points(tmp_path):
    text = (SMALL.replace('workers = 1', 'workers = 1\nhigh_on = "selected"')
            .replace('seed = 0\n', 'seed = 0\ncompare = ["scratch"]\n'))
    result = run_study(write_study(tmp_path, text), progress=False)
    assert list(result.steps) == ["labels", "pretrained", "scratch", "outputs"]
    models = result.metrics["models"]
    assert set(models) == {"pretrained", "scratch", "HF/STO-3G itself"}
    # errors against the high level only where it was computed: the 9 selected points
    assert result.metrics["details"]["scratch"]["all"]["n"] == 9
    assert result.metrics["details"]["pretrained"]["all"]["n"] == 26


def test_committee_selection_chooses_after_pretraining_and_reports_its_rounds(tmp_path):
    """[selection] method = "committee": the points come from query by committee on the
    pre-trained model, labelled through the cache; the report names the rounds and draws them;
    a second run reuses the selection."""
    text = (SMALL.replace('method = "every"\nstep = 3\nvalidation_every = 4',
                          'method = "committee"\ncount = 6\nbatch = 2\nmembers = 3')
            .replace('seed = 0\n', 'seed = 0\ncompare = ["transfer"]\n'))
    result = run_study(write_study(tmp_path, text), progress=False)
    assert list(result.steps) == ["labels", "pretrained", "selection", "transfer", "outputs"]
    record = json.loads((tmp_path / "run" / "selection.json").read_text())
    assert record["finished"] and record["method"] == "committee"
    chosen = record["indices"]
    assert len(chosen) == 6 == len(set(chosen))
    assert [r["round"] for r in record["history"]] == sorted({*record["rounds"]})
    assert sorted(result.metrics["high_level_points"]["train"]) == sorted(chosen)
    assert (tmp_path / "run" / "selection.png").is_file()
    assert "query by committee" in (tmp_path / "run" / "report.md").read_text()
    again = run_study(write_study(tmp_path, text), progress=False)
    assert again.steps["selection"].status == "reused"
    assert again.metrics == result.metrics


def test_design_selection_chooses_for_the_pretrained_model(tmp_path):
    """[selection] method = "design": the points come from Bayesian design on the pre-trained
    model (levelup.select with that model), after the pre-training; the report says so."""
    from levelup.selection.select import select as choose

    text = (SMALL.replace('method = "every"\nstep = 3\nvalidation_every = 4',
                          'method = "design"\ncount = 6')
            .replace('seed = 0\n', 'seed = 0\ncompare = ["transfer"]\n'))
    result = run_study(write_study(tmp_path, text), progress=False)
    assert list(result.steps) == ["labels", "pretrained", "transfer", "outputs"]
    train = result.metrics["high_level_points"]["train"]
    pretrained = levelup.load_model(result.steps["pretrained"].file)
    db = build_geometries(read_study(tmp_path / "study.toml").geometries)
    assert sorted(train) == sorted(choose(db, 6, "design", model=pretrained).indices)
    assert "Bayesian design" in (tmp_path / "run" / "report.md").read_text()


def test_fps_selection_is_levelup_selects_farthest_points():
    from levelup.selection.select import select as choose

    study = parse_study({**BASE, "selection": {"method": "fps", "count": 12,
                                               "validation_every": 6}})
    db = build_geometries(study.geometries)
    train, val = select(study.selection, db)
    chosen = sorted([*train, *val])
    assert chosen == sorted(choose(db, 12, "fps").indices)
    assert chosen[0] == 0 and chosen[-1] == len(db) - 1  # both ends of the H2 scan
    assert len(val) == 2 and len(train) == 10


def test_delta_on_low_level_labels(tmp_path):
    text = (SMALL.replace('seed = 0\n', 'seed = 0\ncompare = ["delta"]\n')
            .replace("[output]", '[delta]\nbase = "labels"\n[output]'))
    result = run_study(write_study(tmp_path, text), progress=False)
    assert list(result.steps) == ["labels", "pretrained", "delta", "outputs"]
    # low-level QM plus a kernel correction fitted on the 9 selected points (0.5-2.9 Angstrom,
    # every 0.3): the scan is smooth and the points cover it, so the correction removes nearly
    # all of HF's error (tens of kcal/mol)
    models = result.metrics["models"]
    assert models["delta"]["rmse_all_kcalmol"] < 0.05 * models["HF/STO-3G itself"]["rmse_all_kcalmol"]


def test_file_and_distortion_sources(tmp_path):
    from levelup.study.geometries import scan_coordinate
    from levelup.study.tutorial import h2_scan

    h2_scan()[::50].write(tmp_path / "frames.extxyz")
    study = parse_study({**BASE, "geometries": {"source": "file", "path": "frames.extxyz"},
                         "output": {"coordinate": [0, 1], "regions": {"short": [0.5, 1.0]}}},
                        base=tmp_path)
    db = build_geometries(study.geometries)
    x, label = scan_coordinate(study, db)
    assert len(db) == 10 and np.allclose(x, h2_scan().distance(0, 1)[::50])
    assert label == "distance 0-1 (Angstrom)"
    (tmp_path / "h2.xyz").write_text("2\nH2\nH 0 0 0\nH 0 0 0.74\n")
    table = {"source": "distort", "structure": "h2.xyz", "n": 5, "amplitude": 0.05}
    study = parse_study({**BASE, "seed": 7, "geometries": table}, base=tmp_path)
    assert study.geometries.seed == 7 and scan_coordinate(study, db)[0] is None
    a = build_geometries(study.geometries)
    b = build_geometries(parse_study({**BASE, "seed": 7, "geometries": table},
                                     base=tmp_path).geometries)
    assert len(a) == 5 and np.array_equal(a.coordinates, b.coordinates)
    assert np.abs(a.coordinates - [[0, 0, 0], [0, 0, 0.74]]).max() <= 0.05


# ---------------------------------------------------------------------------------- selection


def test_tutorial_selection_is_the_tutorials_split():
    from levelup.study.tutorial import h2_scan, tutorial_split

    study = read_study(EXAMPLE)
    db = build_geometries(study.geometries)
    train, val = select(study.selection, db)
    t, v = tutorial_split(h2_scan())
    assert np.array_equal(db[train].coordinates, t.coordinates)
    assert np.array_equal(db[val].coordinates, v.coordinates)
    assert len(train) == 10 and len(val) == 2
    assert np.allclose(db.distance(0, 1)[val], [0.5, 4.5])


def selection(**table):
    study = parse_study({"geometries": {"source": "h2_tutorial"},
                         "levels": {"low": "HF/STO-3G", "high": "CISD/cc-pVDZ"},
                         "selection": table})
    from levelup.study.tutorial import h2_scan

    return select(study.selection, h2_scan())


def test_every_random_and_explicit_selections():
    train, val = selection(method="every", step=100, offset=5, validation_every=2)
    assert train.tolist() == [105, 305] and val.tolist() == [5, 205, 405]
    tutorial = selection(method="tutorial")
    every = selection(method="every", step=40, validation_every=10)
    assert all(np.array_equal(a, b) for a, b in zip(tutorial, every, strict=True))
    train, val = selection(method="random", count=7, seed=3)
    assert len(set(train)) == 7 and len(val) == 0
    assert selection(method="random", count=7, seed=3)[0].tolist() == train.tolist()
    assert selection(method="random", count=7, seed=4)[0].tolist() != train.tolist()
    train, val = selection(method="indices", indices=[1, 2, 3], validation=[10])
    assert train.tolist() == [1, 2, 3] and val.tolist() == [10]
    with pytest.raises(ConfigError, match="out of range"):
        selection(method="indices", indices=[451])
    with pytest.raises(ConfigError, match="only 451"):
        selection(method="random", count=500)


# ---------------------------------------------------------------------------------- the file


def test_the_shipped_example_reads_as_the_tutorial_study():
    study = read_study(EXAMPLE)
    assert study.geometries.source == "h2_tutorial" and study.selection.method == "tutorial"
    assert (study.levels.low, study.levels.high) == ("HF/STO-3G", "CISD/cc-pVDZ")
    assert study.compare == ("transfer", "tutorial-protocol", "scratch", "delta")
    assert study.output.folder == EXAMPLE.parent / "runs" / "h2_tutorial"
    assert [r[0] for r in study.output.regions] == ["all", "0.5-2.5", "0.9-5.0", "0.5-0.9"]
    from levelup.train.loop import TrainConfig
    from levelup.transfer.recipe import LinearRecipe

    assert study.transfer == LinearRecipe(seed=0)
    assert study.pretrain == TrainConfig(seed=0) == study.scratch == study.delta
    assert study.delta_method == "kernel" and study.delta_base == "model"
    neural = parse_study({**BASE, "train": {"max_epochs": 7},
                          "delta": {"method": "neural", "base": "labels", "batch_size": 4}})
    assert neural.delta_method == "neural" and neural.delta_base == "labels"
    assert neural.delta == TrainConfig(seed=0, max_epochs=7, batch_size=4)


BASE = {"geometries": {"source": "h2_tutorial"}, "levels": {"low": "HF/STO-3G", "high": "CISD/cc-pVDZ"},
        "selection": {"method": "tutorial"}}


@pytest.mark.parametrize("change, where, valid", [
    ({"colour": "red"}, "top level", "geometries"),
    ({"transfer": {"recipe": "anchored", "anchor_strenght": 1.0}}, "[transfer]",
     "anchor_strength"),
    ({"transfer": {"anchor_strength": 1.0}}, "[transfer] (recipe 'linear')", "anchor"),
    ({"train": {"epochs": 5}}, "[train]", "max_epochs"),
    ({"pretrain": {"checkpoint": "x.ckpt"}}, "[pretrain]", "learning_rate"),
    ({"delta": {"bas": "model"}}, "[delta]", "base"),
    ({"delta": {"metod": "kernel"}}, "[delta]", "method"),
    ({"levels": {"low": "HF/STO-3G", "high": "x", "worker": 2}}, "[levels]", "workers"),
    ({"selection": {"method": "every", "step": 4, "count": 3}}, "[selection]", "offset"),
    ({"geometries": {"source": "scan", "structure": "a.xyz", "bond": [0, 1], "from": 1, "to": 2,
                     "step": 0.1, "steps": 3}}, "[geometries]", "dihedral"),
    ({"output": {"folders": "x"}}, "[output]", "regions"),
    ({"model": {"hiden": [8]}}, "[model]", "hidden"),
])
def test_unknown_keys_are_errors_listing_the_valid_ones(change, where, valid):
    with pytest.raises(ConfigError, match="unknown key") as info:
        parse_study({**BASE, **change})
    message = str(info.value)
    assert where in message and "valid keys" in message and valid in message


@pytest.mark.parametrize("change, match", [
    ({"selection": {"method": "best"}}, "method must be one of"),
    ({"geometries": {"source": "web"}}, "source must be one of"),
    ({"compare": ["transfer", "mlatom"]}, "compare must list"),
    ({"seed": "zero"}, "seed must be an integer"),
    ({"train": {"learning_rate": -1.0}}, r"\[pretrain\] \(with \[train\]\): learning_rate"),
    ({"transfer": {"recipe": "anchored", "self_energies": "guess"}}, "self_energies must be"),
    ({"transfer": {"recipe": "mine"}}, "recipe must be one of linear, anchored"),
    ({"transfer": {"ridge": 1.0}}, "ridge must be a list of numbers"),
    ({"transfer": {"folds": 1}}, "folds must be >= 2 and repeats >= 1"),
    ({"delta": {"method": "gp"}}, r"method must be one of \['kernel', 'neural'\]"),
    ({"delta": {"max_epochs": 10}}, "method = 'kernel' .* set method = 'neural'"),
    ({"delta": {"method": "neural", "max_epochs": 0}}, r"\[delta\] \(with \[train\]\)"),
    ({"transfer": {"recipe": "plain", "frozen_layers": 0}}, "frozen_layers must be a list"),
    ({"output": {"regions": {"bound": [2.5, 0.5]}}}, "lo <= hi"),
    ({"geometries": {"source": "file", "path": "x.xyz"}, "output": {"regions": {"b": [0, 1]}}},
     "need one"),
    ({"geometries": {"source": "scan", "structure": "a.xyz", "angle": [0, 1], "from": 1,
                     "to": 2, "step": 1}}, "angle needs 3"),
])
def test_bad_values_are_errors_that_say_what_is_expected(change, match):
    with pytest.raises(ConfigError, match=match):
        parse_study({**BASE, **change})


def test_missing_tables_and_bad_files(tmp_path):
    with pytest.raises(ConfigError, match=r"no \[selection\] table"):
        parse_study({k: v for k, v in BASE.items() if k != "selection"})
    with pytest.raises(ConfigError, match="cannot read study file"):
        read_study(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[levels\nlow = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_study(bad)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_study(binary)


def test_paths_are_relative_to_the_study_file(tmp_path):
    path = write_study(tmp_path / "sub")
    study = read_study(path)
    assert study.geometries.structure == tmp_path / "sub" / "h2.xyz"
    assert study.output.folder == tmp_path / "sub" / "run"
    db = build_geometries(study.geometries)
    assert len(db) == 26 and np.allclose(db.distance(0, 1)[[0, -1]], [0.5, 3.0])


def test_transfer_recipe_auto_reads_its_candidates():
    from levelup.transfer.auto import AutoRecipe

    study = parse_study({**BASE, "transfer": {"recipe": "auto", "candidates": ["linear",
                                                                                "mlatom"]}})
    assert study.transfer == AutoRecipe(candidates=("linear", "mlatom"), seed=0)
    with pytest.raises(ConfigError, match="AutoRecipe.candidates"):
        parse_study({**BASE, "transfer": {"recipe": "auto", "candidates": ["best"]}})
