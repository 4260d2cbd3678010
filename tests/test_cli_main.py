import json
import subprocess
import sys

import pytest

from levelup.cli.main import main


def test_error_is_one_line(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing.h5")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("levelup: error:") and err.count("\n") == 1


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name in ("demo", "label", "train", "predict", "info", "plot", "build", "pretrained", "run",
                 "export", "finetune"):
        assert name in out


def test_console_script_runs_as_subprocess(tmp_path):
    out = subprocess.run([sys.executable, "-m", "levelup.cli.main", "info", str(tmp_path / "x")],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "levelup: error:" in out.stderr


@pytest.mark.slow
def test_demo_main_path_as_subprocess(tmp_path, session_label_cache):
    """The main job end to end, as a user runs it: labels, pre-training, transfer, baselines,
    plots, metrics.json, report.md."""
    out = tmp_path / "demo"
    run = subprocess.run([sys.executable, "-m", "levelup.cli.main", "--quiet", "demo", "--out",
                          str(out), "--seed", "0", "--cache", str(session_label_cache)],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["seed"] == 0 and "labels" in metrics["times_s"]
    keys = {"rmse_all_kcalmol", "rmse_0.5-2.5_kcalmol", "rmse_0.9-5.0_kcalmol", "mae_all_kcalmol",
            "max_all_kcalmol"}
    for name in ("pretrained", "transfer", "scratch", "delta"):
        assert keys <= set(metrics["models"][name]), name
    models = metrics["models"]
    # transfer learning from 12 points beats training from scratch on them
    assert models["transfer"]["rmse_all_kcalmol"] < models["scratch"]["rmse_all_kcalmol"]
    for name in ("energy_curves.png", "errors.png", "parity.png", "learning_curves.png",
                 "report.md", "ani-transfer.pt"):
        assert (out / name).exists(), name
    assert "energy_curves.png" in (out / "report.md").read_text()
