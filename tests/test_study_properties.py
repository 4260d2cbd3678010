"""A study's [properties] table and its properties step (levelup.study.propertystep): every model
beside the high level computed directly and the low level, in properties.json and the report;
and [levels] forces (labels with forces, fitted by the pre-training and the linear transfer).

One small water study (HF/STO-3G -> MP2/STO-3G: MP2 has analytic gradients but no analytic
Hessian in PySCF, so the reference takes the finite-difference path that CCSD(T) takes) is run
once per module; the other tests read or re-run its folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import levelup
from levelup.errors import ConfigError
from levelup.study.reader import parse_study, read_study
from levelup.study.runner import run_study

WATER = "3\nwater\nO 0 0 0.119262\nH 0 0.763239 -0.477047\nH 0 -0.763239 -0.477047\n"
LOW, HIGH = "HF/STO-3G", "MP2/STO-3G"
STUDY = f"""
title = "small water study"
seed = 0
compare = ["transfer", "scratch", "delta"]
[geometries]
source = "distort"
structure = "water.xyz"
n = 30
normal_modes = true
temperature = 1000
[levels]
low = "{LOW}"
high = "{HIGH}"
workers = 1
high_on = "selected"
forces = "both"
cache = "labels.sqlite"
[selection]
method = "design"
count = 8
[model]
hidden = [16, 8]
[train]
max_epochs = 20
[pretrain]
max_epochs = 30
force_weight = 0.1
[transfer]
folds = 3
[output]
folder = "run"
plots = []
formats = ["png"]
[properties]
structure = "water.xyz"
energies = {{ minimum = "water.xyz", bent = "water.xyz" }}
constraints = {{ bent = "angle:1,0,2=150" }}
reference = "minimum"
"""
ROWS = ["high", "pretrained", "transfer", "scratch", "delta", "low"]


def write_study(folder: Path, text: str = STUDY) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "water.xyz").write_text(WATER)
    path = folder / "study.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """The study run once: (its folder, its StudyResult, properties.json)."""
    folder = tmp_path_factory.mktemp("water")
    result = run_study(write_study(folder), progress=False)
    return folder, result, json.loads((folder / "run" / "properties.json").read_text())


def rerun(first_run, tmp_path, text: str = STUDY):
    """Run ``text`` in a copy of the first run's folder (its label cache too); (result, the
    sources whose rows were computed)."""
    shutil.copytree(first_run[0] / "run", tmp_path / "run")
    shutil.copy(first_run[0] / "labels.sqlite", tmp_path / "labels.sqlite")
    lines: list[str] = []
    result = run_study(write_study(tmp_path, text), progress=False, log=lines.append)
    computed = [line.split("computing on ")[1].split(" ")[0] for line in lines
                if "computing on" in line]
    return result, computed


# ------------------------------------------------------------------------------ the table

def _study(tmp_path: Path, properties: dict, **tables) -> object:
    (tmp_path / "water.xyz").write_text(WATER)
    return parse_study({"geometries": {"source": "h2_tutorial"},
                        "levels": {"low": LOW, "high": HIGH},
                        "selection": {"method": "tutorial"}, "properties": properties,
                        **tables}, base=tmp_path)


def test_the_table_reads_with_paths_relative_to_the_study_file(tmp_path):
    props = _study(tmp_path, {"structure": "water.xyz", "fmax": 1e-3, "frequencies": False,
                              "energies": {"a": "water.xyz", "b": "water.xyz"},
                              "constraints": {"b": "angle:1,0,2=150"}, "reference": "b"}
                   ).properties
    assert props.structures == (tmp_path / "water.xyz",)
    assert props.energies == (("a", tmp_path / "water.xyz"), ("b", tmp_path / "water.xyz"))
    assert props.constraints == (("b", ("angle:1,0,2=150",)),)
    assert (props.fmax, props.frequencies, props.optimize, props.reference) == (1e-3, False,
                                                                                True, "b")
    assert not _study(tmp_path, {}).properties.wanted  # no table: no properties step


@pytest.mark.parametrize("properties, match", [
    ({"structure": "water.xyz", "frequency": True}, r"\[properties\]: unknown key 'frequency'; "
                                                    r"valid keys: structures, structure"),
    ({"structures": ["nope.xyz"]}, r"\[properties\] structures: no such file .*nope.xyz"),
    ({"structure": "water.xyz", "structures": ["water.xyz"]}, "not both"),
    ({"optimize": True}, "needs structures = "),
    ({"energies": {"a": "water.xyz"}}, "two or more named structures"),
    ({"energies": ["water.xyz"]}, r"energies must be a table of name = structure file"),
    ({"energies": {"a": "water.xyz", "b": "water.xyz"}, "reference": "c"},
     r"reference = 'c' is not a name of energies \(\['a', 'b'\]\)"),
    ({"energies": {"a": "water.xyz", "b": "water.xyz"}, "constraints": {"c": "planar"}},
     r"constraints.c: 'c' is not a name of energies"),
    ({"energies": {"a": "water.xyz", "b": "water.xyz"},
      "constraints": {"b": "dihedral:0,1,2=180"}}, r"constraints.b: .*a dihedral names 4 atoms"),
    ({"energies": {"a": "water.xyz", "b": "water.xyz"}, "constraints": {"b": "bond:0,7"}},
     r"constraints.b: .*indices must be distinct and in 0..2"),
    ({"energies": {"a": "water.xyz", "b": "water.xyz"}, "constraints": {"b": "planar"},
      "optimize": False}, "optimize = false"),
    ({"structure": "water.xyz", "fmax": -1.0}, "fmax must be a positive number"),
    ({"structure": "water.xyz", "fmax": "tight"}, r"\[properties\] fmax must be a number"),
])
def test_bad_tables_are_errors_that_name_the_key(tmp_path, properties, match):
    with pytest.raises(ConfigError, match=match):
        _study(tmp_path, properties)


@pytest.mark.parametrize("tables, match", [
    ({"pretrain": {"force_weight": 0.1}}, r"\[pretrain\] force_weight = 0.1 fits low-level "
                                          r"forces, but \[levels\] forces = 'none'"),
    ({"levels": {"low": LOW, "high": HIGH, "forces": "low"}, "scratch": {"force_weight": 0.1}},
     r"\[scratch\] force_weight = 0.1 fits high-level forces"),
    ({"levels": {"low": LOW, "high": HIGH, "forces": "high"}, "transfer": {"recipe": "plain"}},
     "only the linear and gp recipes fit"),
    ({"levels": {"low": LOW, "high": HIGH, "forces": "all"}}, r"forces must be one of"),
])
def test_forces_that_nothing_labels_or_fits_are_errors(tmp_path, tables, match):
    with pytest.raises(ConfigError, match=match):
        _study(tmp_path, {}, **tables)


# ------------------------------------------------------------------------------ the step

def test_a_row_per_model_the_high_and_the_low_level(first_run):
    folder, result, props = first_run
    assert list(result.steps) == ["labels", "pretrained", "transfer", "scratch", "delta",
                                  "properties", "outputs"]
    assert list(props["rows"]) == ROWS == list(props["labels"])
    assert props["labels"]["high"] == f"{HIGH} (reference)"
    assert props["labels"]["low"] == f"{LOW} (no transfer)"
    for row in ROWS:
        water = props["rows"][row]["structures"]["water"]
        assert water["optimized"]["converged"], row
        assert len(water["frequencies"]["wavenumbers_cm-1"]) == 3
        bent = props["rows"][row]["energies"]["relative_kcal_per_mol"]["bent"]
        assert np.isfinite(bent), row  # the models extrapolate: 150 degrees is far outside
        if row in ("high", "low"):     # their 30 geometries
            assert 10 < bent < 100, row  # bent open to 150 degrees: tens of kcal/mol
    methods = {r: props["rows"][r]["structures"]["water"]["frequencies"]["hessian_method"]
               for r in ROWS}
    assert methods == {"high": "gradients", "pretrained": "autograd", "transfer": "autograd",
                       "scratch": "autograd", "delta": "gradients", "low": "analytic"}
    diffs = props["differences"]
    assert set(diffs) == set(ROWS) - {"high"}
    # the transfer fitted MP2 energies and forces: closer to MP2 than HF itself
    assert diffs["transfer"]["max_abs_bond_angstrom"] < diffs["low"]["max_abs_bond_angstrom"]


def test_the_reference_is_levelup_properties_on_the_high_level(first_run):
    folder, _, props = first_run
    from levelup.properties import energy_differences, frequencies

    direct = frequencies(folder / "water.xyz", HIGH, cache=folder / "labels.sqlite")
    row = props["rows"]["high"]
    water = row["structures"]["water"]
    np.testing.assert_allclose(water["frequencies"]["wavenumbers_cm-1"], direct.wavenumbers,
                               atol=1e-6)
    np.testing.assert_allclose(water["coordinates_angstrom"], direct.structure.coordinates,
                               atol=1e-9)
    diff = energy_differences({"minimum": folder / "water.xyz", "bent": folder / "water.xyz"},
                              HIGH, constraints={"bent": "angle:1,0,2=150"},
                              cache=folder / "labels.sqlite")
    assert row["energies"]["relative_kcal_per_mol"]["bent"] == pytest.approx(
        diff.relative["bent"], abs=1e-6)
    # the cost: the optimisations' gradients, 6 x 3 displaced gradients for the Hessian (MP2
    # has no analytic one), the minimum shared with the structure's optimisation
    steps = [water["optimized"], row["energies"]["optimized"]["bent"]]
    gradients = sum(s["computed"] + s["cached"] for s in steps) + 18
    assert row["cost"] == {"gradients": gradients, "hessians": 0, "energies": 0}
    assert props["high_level_cost"] == {"reference": row["cost"],
                                        "models": {"energies": 8, "gradients": 8}}


def test_the_report_opens_with_the_properties_tables(first_run):
    folder, _, props = first_run
    report = (folder / "run" / "report.md").read_text()
    assert report.index("## Properties") < report.index("## Accuracy")
    section = report[report.index("## Properties"):report.index("## Accuracy")]
    head = ("| source | O0-H1 (Å) | O0-H2 (Å) | H1-O0-H2 (°) | ω1 (cm⁻¹) | ω2 (cm⁻¹) | ω3 (cm⁻¹) "
            "| bent − minimum (kcal/mol) |")
    assert head in section
    for row in ROWS:
        assert section.count(f"| {props['labels'][row]} |") == (1 if row == "high" else 2)
    high = props["rows"]["high"]["structures"]["water"]["frequencies"]["wavenumbers_cm-1"]
    assert f"| {sorted(high)[0]:.1f} |" in section
    assert "| source | max \\|Δω\\| (cm⁻¹) | max \\|Δbond\\| (Å) | max \\|Δangle\\| (°) | " \
           "\\|Δ bent\\| (kcal/mol) |" in section
    assert f"{props['high_level_cost']['reference']['gradients']} gradients" in section


def test_a_second_run_reuses_the_step_and_a_new_model_recomputes_its_row(first_run, tmp_path):
    again, computed = rerun(first_run, tmp_path / "same")
    assert again.steps["properties"].status == "reused" and computed == []
    assert json.loads((tmp_path / "same" / "run" / "properties.json").read_text()) == first_run[2]
    changed, computed = rerun(first_run, tmp_path / "changed",
                              STUDY.replace("folds = 3", "folds = 4"))
    assert changed.steps["transfer"].status == "done"
    assert changed.steps["properties"].status == "done" and computed == ["transfer"]


def test_a_delta_on_labels_is_no_potential_and_says_so(first_run, tmp_path):
    text = (STUDY.replace('compare = ["transfer", "scratch", "delta"]', 'compare = ["delta"]')
            .replace("[output]", '[delta]\nbase = "labels"\n[output]'))
    result, computed = rerun(first_run, tmp_path, text)
    props = json.loads((tmp_path / "run" / "properties.json").read_text())
    assert list(props["rows"]) == ["high", "pretrained", "low"] and computed == []
    assert "not a potential" in props["skipped"]["delta"]
    assert "No row for delta: a correction added to the low-level labels" in result.report.read_text()


# ------------------------------------------------------------------------------ forces

def test_forces_are_labelled_and_fitted(first_run):
    folder, result, _ = first_run
    with np.load(folder / "run" / "labels.npz") as f:
        low_f, high_f, high_e = f["low_forces"], f["high_forces"], f["high"]
    from levelup.study.geometries import build_geometries

    db = build_geometries(read_study(folder / "study.toml").geometries)
    chosen = np.flatnonzero(np.isfinite(high_e))
    assert len(chosen) == 8 and np.isfinite(high_f[chosen]).all()
    assert np.isnan(high_f[np.isnan(high_e)]).all()
    fresh = levelup.label(db[[0, int(chosen[0])]], HIGH, forces=True, cache=False, progress=False,
                          workers=1)
    np.testing.assert_allclose(high_f[chosen[0]], fresh.get(f"forces/{HIGH}")[1], atol=1e-7)
    fresh_low = levelup.label(db[[0]], LOW, forces=True, cache=False, progress=False, workers=1)
    np.testing.assert_allclose(low_f[0], fresh_low.get(f"forces/{LOW}")[0], atol=1e-7)
    run = result.steps
    history = json.loads(Path(str(run["pretrained"].file).replace(".pt", ".history.json"))
                         .read_text())
    assert np.isfinite(history["train_force_rmse"]).all()  # the pre-training fitted HF forces
    choice = json.loads(Path(str(run["transfer"].file).replace(".pt", ".history.json"))
                        .read_text())
    assert choice["force_points"] == 8  # the linear transfer fitted MP2 forces at its points


def test_the_water_example_reads():
    """examples/water_ccsdt.toml (the README's polyatomic study; run by hand, ~70 s on 2 cores, a
    rerun ~3 s): water's geometry and frequencies at CCSD(T), 20 points by design, forces."""
    example = Path(__file__).resolve().parents[1] / "examples" / "water_ccsdt.toml"
    study = read_study(example)
    assert (study.levels.low, study.levels.high) == ("HF/STO-3G", "CCSD(T)/cc-pVDZ")
    assert study.properties.structures == (example.parent / "water.xyz",)
    assert study.properties.frequencies and study.properties.optimize
    assert (study.selection.method, study.selection.count) == ("design", 20)
    assert study.geometries.source == "distort" and study.geometries.normal_modes
    assert study.levels.forces == "both" and study.pretrain.force_weight > 0
    from levelup.data.structure import read_structure

    assert read_structure(study.properties.structures[0]).formula == "H2O"


def test_the_differences_table_shows_the_columns_some_source_has(first_run):
    from levelup.report.propertytables import differences_table_markdown

    props = json.loads(json.dumps(first_run[2]))
    for d in props["differences"].values():
        d["max_abs_wavenumber_cm-1"] = None  # as without frequencies = false
    table = differences_table_markdown(props)
    assert "Δω" not in table and "Δbond" in table and "Δ bent" in table
    assert table.count("\n| ") == len(ROWS) - 1  # a line per source but the reference


def test_levelup_run_prints_the_differences_from_the_high_level(first_run, capsys):
    from levelup.cli.run import print_properties

    folder, _, data = first_run
    print_properties(folder / "run" / "properties.json")
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"properties: largest differences from {data['levels']['high']}")
    assert len(out) == 2 + len(data["differences"])
    for line, (key, row) in zip(out[2:], data["differences"].items(), strict=True):
        assert line.startswith(data["labels"][key][:34])
        wavenumber = row.get("max_abs_wavenumber_cm-1")
        if wavenumber is not None:
            assert f"{wavenumber:.1f}" in line
    print_properties(folder / "missing.json")  # a study without [properties]: nothing
    assert capsys.readouterr().out == ""


def test_the_design_aims_at_the_named_energy_differences(first_run):
    """[selection] design with [properties] energies naming two structures (focus "energies",
    the default): the points are levelup.select's design aimed at their difference."""
    from levelup.selection.select import select
    from levelup.study.geometries import build_geometries
    from levelup.study.propertytable import structure_of

    folder, result, _ = first_run
    db = build_geometries(read_study(folder / "study.toml").geometries)
    pretrained = levelup.load_model(result.steps["pretrained"].file)
    water = structure_of(folder / "water.xyz", "energies")
    aimed = select(db, 8, "design", model=pretrained, structures={"minimum": water, "bent": water},
                   constraints={"bent": ("angle:1,0,2=150",)}, reference="minimum").indices
    plain = select(db, 8, "design", model=pretrained).indices
    train = result.metrics["high_level_points"]["train"]
    assert sorted(train) == sorted(aimed) != sorted(plain)
    assert "energy differences of [properties] energies" in (folder / "run" / "report.md"
                                                             ).read_text()


def test_the_design_focus_reads_and_a_bad_one_is_an_error(tmp_path):
    props = {"energies": {"a": "water.xyz", "b": "water.xyz"}}
    study = _study(tmp_path, props, selection={"method": "design", "count": 4, "focus": "pool"})
    assert study.selection.focus == "pool"
    with pytest.raises(ConfigError, match='focus must be "energies" or "pool"'):
        _study(tmp_path, props, selection={"method": "design", "count": 4, "focus": "barrier"})


def test_the_gp_recipe_runs_in_a_study_and_needs_high_forces(first_run, tmp_path):
    """[transfer] recipe = "gp": the transfer row is the GP-corrected model (a GPCorrected
    model file), with its properties beside the others; without high-level forces it is an
    error before any work."""
    text = STUDY.replace("[transfer]\nfolds = 3", '[transfer]\nrecipe = "gp"')
    result, computed = rerun(first_run, tmp_path, text)
    model = levelup.load_model(result.steps["transfer"].file)
    assert type(model).__name__ == "GPCorrected"
    assert len(computed) == 1  # only the transfer's row is new
    row = json.loads((tmp_path / "run" / "properties.json").read_text())["rows"]["transfer"]
    assert np.isfinite(row["structures"]["water"]["frequencies"]["wavenumbers_cm-1"]).all()
    assert np.isfinite(row["energies"]["relative_kcal_per_mol"]["bent"])
    with pytest.raises(ConfigError, match="recipe = 'gp' fits the high-level forces too"):
        _study(tmp_path, {}, levels={"low": LOW, "high": HIGH, "forces": "low"},
               transfer={"recipe": "gp"}, compare=["transfer"])
