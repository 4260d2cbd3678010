"""``levelup run STUDY.toml``, in-process through levelup.cli.main.main."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from levelup.cli.main import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "h2_tutorial.toml"

STUDY = """
title = "tiny"
compare = ["transfer", "delta"]
[geometries]
source = "scan"
structure = "h2.xyz"
bond = [0, 1]
from = 0.6
to = 2.6
step = 0.1
[levels]
low = "HF/STO-3G"
high = "CISD/cc-pVDZ"
workers = 1
[selection]
method = "indices"
indices = [2, 6, 10, 14, 18]
validation = [4, 16]
[model]
hidden = [8]
[train]
max_epochs = 10
[transfer]
folds = 3
[output]
folder = "out"
plots = ["parity"]
formats = ["svg"]
"""


def write(tmp_path: Path, text: str = STUDY) -> Path:
    (tmp_path / "h2.xyz").write_text("2\nH2\nH 0 0 0\nH 0 0 0.74\n")
    path = tmp_path / "study.toml"
    path.write_text(text)
    return path


def test_run_trains_then_reuses_everything(tmp_path, capsys):
    path = write(tmp_path)
    assert main(["-q", "run", str(path)]) == 0
    first = capsys.readouterr().out
    assert "pre-training: trained in" in first and "transfer: trained in" in first
    assert "0 of 5 steps reused" in first and "transfer" in first.splitlines()[-3]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert set(metrics["models"]) == {"pretrained", "transfer", "delta", "HF/STO-3G itself"}
    assert (tmp_path / "out" / "parity.svg").is_file()

    assert main(["-q", "run", str(path)]) == 0
    second = capsys.readouterr().out
    assert "5 of 5 steps reused" in second and "trained in" not in second
    for step in ("labels", "pre-training", "transfer", "delta", "outputs"):
        assert f"{step}: reused" in second
    assert json.loads((tmp_path / "out" / "metrics.json").read_text()) == metrics
    # the table printed is the same numbers
    assert first.splitlines()[-4:] == second.splitlines()[-4:]


def test_run_out_flag_and_check(tmp_path, capsys):
    path = write(tmp_path)
    assert main(["run", str(path), "--check"]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "scan" in out and not (tmp_path / "out").exists()
    assert main(["run", str(EXAMPLE), "--check"]) == 0
    assert "tutorial" in capsys.readouterr().out


def test_unknown_key_is_one_error_line_listing_the_valid_keys(tmp_path, capsys):
    path = write(tmp_path, STUDY.replace("[transfer]\n", "[transfer]\nanchr = 0.1\n"))
    assert main(["run", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("levelup: error: [transfer] (recipe 'linear'): "
                                               "unknown key")
    assert "'anchr'" in err[0] and "valid keys:" in err[0] and "anchor" in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content, message", [
    (None, "study.toml does not exist"),
    ("[geometries\n", "not valid TOML"),
    ("[geometries]\nsource = 'h2_tutorial'\n", "no [levels] table"),
])
def test_bad_study_files_are_one_error_line(tmp_path, capsys, content, message):
    path = tmp_path / "study.toml"
    if content is not None:
        path.write_text(content)
    assert main(["run", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("levelup: error:") and message in err[0]


def test_a_missing_structure_file_is_one_error_line(tmp_path, capsys):
    path = write(tmp_path, STUDY.replace('"h2.xyz"', '"nowhere.xyz"'))
    assert main(["run", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("levelup: error:") and "nowhere.xyz" in err[0]


def test_help_shows_an_example(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "levelup run examples/h2_tutorial.toml" in out and "[selection]" in out
