"""An output never replaces an input, an existing property is replaced only with --overwrite, and
bad paths fail in one line before any work (issue: data safety of the command line)."""

from __future__ import annotations

import numpy as np
import pytest
from reliability_cases import make_fixtures, read_only_folder

import levelup.cli.label as cli_label
from levelup import ANIModel, Database
from levelup.cli import common
from levelup.cli.main import main
from levelup.errors import ConfigError
from levelup.qm.settings import LabelSettings


@pytest.fixture()
def fx(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return make_fixtures(tmp_path)


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("levelup: error: ") and err.count("\n") == 1, err
    return err


def test_predict_into_its_input_is_refused_and_the_labels_survive(fx, capsys):
    before = open(fx["db"], "rb").read()
    assert main(["-q", "predict", fx["model"], fx["db"], "-o", fx["db"], "--name",
                 "CISD/cc-pVDZ"]) == 1
    assert "also an input" in one_line(capsys)
    assert open(fx["db"], "rb").read() == before
    assert Database.read(fx["db"]).properties["CISD/cc-pVDZ"].level == "CISD/cc-pVDZ"


def test_predict_replaces_a_property_only_with_overwrite(fx, tmp_path, capsys):
    out = tmp_path / "new" / "p.h5"
    argv = ["-q", "predict", fx["model"], fx["db"], "-o", str(out), "--name", "HF/STO-3G"]
    assert main(argv) == 1
    line = one_line(capsys)
    assert "--overwrite" in line and "--name" in line and not out.exists()
    assert main([*argv, "--overwrite"]) == 0
    db = Database.read(out)
    assert db.properties["HF/STO-3G"].level is None  # now the model's, with its spec
    assert not np.allclose(db.get("HF/STO-3G"), Database.read(fx["db"]).get("HF/STO-3G"))


def test_predict_checks_the_forces_name_too(fx, tmp_path, capsys):
    out = tmp_path / "new" / "p.h5"
    assert main(["-q", "predict", fx["model"], fx["db_pred"], "-o", str(out), "--forces"]) == 1
    assert "'predicted_forces'" in one_line(capsys)
    assert main(["-q", "predict", fx["model"], fx["db_pred"], "-o", str(out)]) == 0  # no forces


@pytest.mark.parametrize("command", [
    ["finetune", "{model}", "{db}", "-o", "{model}", "--property", "HF/STO-3G"],
    ["finetune", "{model}", "{db}", "-o", "{db_pred}", "--property", "HF/STO-3G", "--validation",
     "{db_pred}"],
    ["export", "{model}", "-o", "{model}"],
])
def test_a_model_output_never_replaces_an_input(fx, capsys, command):
    argv = [a.format(**fx) for a in command]
    target = argv[argv.index("-o") + 1]
    before = open(target, "rb").read()
    assert main(["-q", *argv]) == 1
    assert "also an input" in one_line(capsys)
    assert open(target, "rb").read() == before


def _labelled(fx, tmp_path, level="HF/STO-3G", settings_key=None) -> str:
    db = Database.read(fx["db"])
    spec = {"settings_key": settings_key or LabelSettings().result_key()}
    db.set(level, db.get(level), level=level, spec=spec)
    path = tmp_path / "labelled.h5"
    db.save(path)
    return str(path)


def test_label_reuses_a_property_of_the_same_level_and_settings(fx, tmp_path, capsys):
    src = _labelled(fx, tmp_path)
    out = tmp_path / "new" / "l.h5"
    assert main(["-q", "label", src, "HF/STO-3G", "-o", str(out), "--no-cache",
                 "--workers", "1"]) == 0
    np.testing.assert_array_equal(Database.read(out).get("HF/STO-3G"),
                                  Database.read(src).get("HF/STO-3G"))


def test_label_refuses_other_labels_before_any_calculation(fx, tmp_path, capsys, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("labelled although the output was refused")

    monkeypatch.setattr(cli_label, "label_with_report", never)
    src = _labelled(fx, tmp_path, settings_key="other")
    out = tmp_path / "new" / "l.h5"
    assert main(["-q", "label", src, "HF/STO-3G", "-o", str(out), "--no-cache"]) == 1
    assert "--overwrite" in one_line(capsys)
    assert main(["-q", "label", fx["db"], "HF/STO-3G", "-o", str(out), "--no-cache", "--name",
                 "CISD/cc-pVDZ"]) == 1
    assert "'CISD/cc-pVDZ'" in one_line(capsys)
    for bad in (fx["db"], fx["dir"], fx["ro_dir"] + "/l.h5", str(tmp_path / "new" / "l.weird")):
        assert main(["-q", "label", fx["db"], "MP2/STO-3G", "-o", bad, "--no-cache"]) == 1
        one_line(capsys)
    assert not out.exists()


def test_output_file_probes_the_folder_for_real(tmp_path):
    ro = read_only_folder(tmp_path)
    with pytest.raises(ConfigError, match="not writable"):
        common.output_file(ro / "x.h5")
    assert common.output_file(tmp_path / "x.h5", database=True) == tmp_path / "x.h5"
    with pytest.raises(ConfigError, match="does not exist"):
        common.output_file(tmp_path / "no" / "x.h5")
    with pytest.raises(ConfigError, match="'.weird'"):
        common.output_file(tmp_path / "x.weird", database=True)
    assert common.output_folder(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    with pytest.raises(ConfigError, match="not writable"):
        common.output_folder(ro / "run")


def test_read_helpers_name_the_kind_of_file(tmp_path):
    ANIModel(["H"], hidden=[4], seed=0).save(tmp_path / "m.pt")
    with pytest.raises(Exception, match="model file .*not a database"):
        common.read_database(tmp_path / "m.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(Exception, match="empty"):
        common.read_model(tmp_path / "empty.pt")


@pytest.mark.parametrize(("value", "ok"), [(1.0, True), (0.0, False), (float("nan"), False),
                                           (float("inf"), False), (None, True)])
def test_check_number(value, ok):
    if ok:
        common.check_number(value, "--x", above=0)
    else:
        with pytest.raises(ConfigError, match="--x must be a finite number > 0"):
            common.check_number(value, "--x", above=0)


def test_scan_refuses_an_absurd_number_of_geometries_before_allocating():
    from levelup.data.sampling import scan_values

    with pytest.raises(Exception, match="2,000,000,000,001 geometries"):
        scan_values(0.5, 2.5, 1e-12)
    assert len(scan_values(0.5, 2.5, 0.5)) == 5


def test_run_check_validates_levels_and_files(fx, capsys):
    assert main(["run", fx["study"], "--check"]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["run", fx["study_bad_basis"], "--check"]) == 1
    assert "unknown basis 'cc-pVQQZ'" in one_line(capsys)
    assert main(["run", fx["study_no_structure"], "--check"]) == 1
    assert "missing.xyz does not exist" in one_line(capsys)
