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
    """The main job end to end, as a user runs it: the bundled study through the study runner
    (labels, pre-training, transfer, the tutorial protocol, baselines, plots, metrics.json,
    report.md); run again, it reuses every step."""
    out = tmp_path / "demo"
    command = [sys.executable, "-m", "levelup.cli.main", "--quiet", "demo", "--out", str(out),
               "--seed", "0", "--cache", str(session_label_cache)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["seed"] == 0 and "pretrained" in metrics["times_s"]
    keys = {"rmse_all_kcalmol", "rmse_0.5-2.5_kcalmol", "rmse_0.9-5.0_kcalmol", "mae_all_kcalmol",
            "max_all_kcalmol"}
    for name in ("pretrained", "transfer", "tutorial-protocol", "scratch", "delta"):
        assert keys <= set(metrics["models"][name]), name
    models = metrics["models"]
    # transfer learning from 12 points beats training from scratch and the tutorial's protocol
    assert models["transfer"]["rmse_all_kcalmol"] < models["scratch"]["rmse_all_kcalmol"]
    assert models["transfer"]["rmse_all_kcalmol"] < models["tutorial-protocol"]["rmse_all_kcalmol"]
    for name in ("energy_curves.png", "errors.png", "parity.png", "learning_curves.png",
                 "report.md", "study.toml", "labels.npz"):
        assert (out / name).exists(), name
    assert len(list((out / "models").glob("transfer-*.pt"))) == 1
    assert "energy_curves.png" in (out / "report.md").read_text()

    again = subprocess.run(command[:3] + command[4:], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "reused: labels, pretrained, transfer, tutorial-protocol, scratch, delta, outputs" in \
        again.stdout
    assert json.loads((out / "metrics.json").read_text()) == metrics


# ------------------------------------------------------------------- signals and pipes


def test_sigterm_is_an_interrupt_only_while_main_runs(tmp_path, capsys, monkeypatch):
    """A real SIGTERM during a subcommand runs the Ctrl-C path (one line, exit 130); the handler
    is installed by main(), not at import, and the previous one is back afterwards."""
    import os
    import signal
    import time

    import levelup.cli.info as info

    code = ("import signal, levelup, levelup.cli.main; "
            "assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL")
    subprocess.run([sys.executable, "-c", code], check=True)

    def wait_for_sigterm(args):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this at once
        raise AssertionError("SIGTERM did not interrupt")

    monkeypatch.setattr(info, "run", wait_for_sigterm)
    before = signal.getsignal(signal.SIGTERM)
    started = time.monotonic()
    assert main(["info", str(tmp_path / "x.h5")]) == 130
    assert time.monotonic() - started < 4
    assert capsys.readouterr().err == "levelup: interrupted\n"
    assert signal.getsignal(signal.SIGTERM) is before


def _many_properties(path, n=600):
    import numpy as np

    from levelup.data import Database

    xyz = np.zeros((3, 2, 3))
    xyz[:, 1, 2] = [0.7, 0.8, 0.9]
    db = Database.from_numpy(xyz, ["H", "H"])
    for k in range(n):
        db.set(f"property-{k:04d}-" + "x" * 100, np.arange(3.0))
    db.save(path)


def test_stdout_closed_early_stops_quietly(tmp_path):
    """``levelup info db.h5 | head -1``: ~100 kB of output into a pipe whose reader leaves after
    one line: no traceback, no 'Exception ignored', exit 141 (as if killed by SIGPIPE)."""
    _many_properties(tmp_path / "big.h5")
    proc = subprocess.Popen([sys.executable, "-m", "levelup.cli.main", "info",
                             str(tmp_path / "big.h5")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, stderr
    assert b"levelup database, 3 molecules" in first
    assert stderr == ""


def test_help_into_a_closed_pipe_stops_quietly():
    proc = subprocess.Popen([sys.executable, "-m", "levelup.cli.main", "--help"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # gone before levelup writes anything
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) in (0, 141)
    assert stderr == ""


def test_a_broken_pipe_that_is_not_stdout_is_an_ordinary_error(tmp_path, capsys, monkeypatch):
    import levelup.cli.info as info

    def broken(args):
        raise BrokenPipeError(32, "Broken pipe (a worker's pipe)")

    monkeypatch.setattr(info, "run", broken)
    assert main(["info", str(tmp_path / "x.h5")]) == 1
    assert capsys.readouterr().err.startswith("levelup: error: [Errno 32] Broken pipe")
