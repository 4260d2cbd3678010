"""``levelup train`` as users run it: bad settings and paths fail in one line before any work,
and Ctrl-C or SIGTERM during training (real processes, real signals) writes the best model so far,
says so in one line and exits 130."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from levelup.cli.main import main
from levelup.data import Database


def h2_database(path: Path, n: int = 40) -> Database:
    """n H2 geometries with a synthetic Morse-like energy "morse" (Hartree), saved at path."""
    r = np.linspace(0.55, 3.0, n)
    xyz = np.zeros((n, 2, 3))
    xyz[:, 1, 2] = r
    db = Database.from_numpy(xyz, ["H", "H"])
    db.set("morse", 0.17 * (1 - np.exp(-1.9 * (r - 0.74))) ** 2 - 1.17)
    db.save(path)
    return db


@pytest.fixture
def h2(tmp_path) -> Path:
    path = tmp_path / "h2.h5"
    h2_database(path)
    return path


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("levelup: error: "), err
    return lines[0]


@pytest.mark.parametrize("flags, message", [
    (["--validation-fraction", "0"], "--validation-fraction 0 without --validation leaves no "
                                     "validation set"),
    (["--lr", "inf"], "learning_rate (--learning-rate, --lr) must be a finite number > 0; got inf"),
    (["--lr", "nan"], "learning_rate (--learning-rate, --lr) must be a finite number > 0; got nan"),
    (["--lr=-1e-3"], "must be a finite number > 0; got -0.001"),
    (["--batch-size", "0"], "batch_size (--batch-size) must be an integer >= 1; got 0"),
    (["--epochs", "-5"], "max_epochs (--max-epochs, --epochs) must be an integer >= 1; got -5"),
    (["--force-weight", "nan"], "force_weight (--force-weight) must be a finite number >= 0"),
    (["--validation-fraction", "1"], "validation_fraction (--validation-fraction) must be a "
                                     "finite number in [0, 1); got 1.0"),
])
def test_bad_settings_fail_before_work(tmp_path, h2, capsys, flags, message):
    out = tmp_path / "model.pt"
    code = main(["-q", "train", str(h2), "-o", str(out), "--property", "morse", *flags])
    assert code == 1
    assert message in one_error_line(capsys)
    assert not out.exists() and not Path(f"{out}.history.json").exists()


def test_output_replacing_the_database_is_refused(h2, capsys):
    before = h2.read_bytes()
    assert main(["-q", "train", str(h2), "-o", str(h2), "--property", "morse"]) == 1
    assert one_error_line(capsys) == (f"levelup: error: -o {h2} is also an input of this command "
                                      "and would be overwritten: write the output to another file")
    assert h2.read_bytes() == before  # the database is still the database
    assert Database.load(h2).properties["morse"].unit == "Hartree"


@pytest.mark.parametrize("case", ["history=database", "history=-o", "checkpoint=-o", "init=-o",
                                  "folder", "missing folder", "missing database"])
def test_bad_paths_fail_before_work(tmp_path, h2, capsys, case):
    out = tmp_path / "model.pt"
    init = tmp_path / "init.pt"
    init.write_bytes(b"not used: refused first")
    args = {"history=database": ["-o", str(out), "--history", str(h2)],
            "history=-o": ["-o", str(out), "--history", str(out)],
            "checkpoint=-o": ["-o", str(out), "--checkpoint", str(out)],
            "init=-o": ["-o", str(init), "--init", str(init)],
            "folder": ["-o", str(tmp_path)],
            "missing folder": ["-o", str(tmp_path / "nope" / "m.pt")],
            "missing database": ["-o", str(out)]}[case]
    db = str(tmp_path / "absent.h5") if case == "missing database" else str(h2)
    assert main(["-q", "train", db, *args, "--property", "morse"]) == 1
    line = one_error_line(capsys)
    expected = {"history=database": "--history", "history=-o": "--history",
                "checkpoint=-o": "--checkpoint", "init=-o": "-o", "folder": "is a folder",
                "missing folder": "does not exist", "missing database": "does not exist"}[case]
    assert expected in line
    assert not out.exists() and init.read_bytes() == b"not used: refused first"


def test_read_only_folder_fails_before_work(tmp_path, h2, capsys):
    """A folder no file can be created in (chmod, or a read-only mount when running as root)."""
    from reliability_cases import read_only_folder

    folder = read_only_folder(tmp_path)
    try:
        assert main(["-q", "train", str(h2), "-o", str(folder / "m.pt"), "--property",
                     "morse"]) == 1
        assert "not writable" in one_error_line(capsys)
    finally:
        (tmp_path / "ro").chmod(0o755)


def test_property_of_unknown_unit_is_refused(tmp_path, h2, capsys):
    db = Database.load(h2)
    db.set("raw", db.get("morse"), unit="unknown")
    db.save(tmp_path / "raw.h5")
    assert main(["-q", "train", str(tmp_path / "raw.h5"), "-o", str(tmp_path / "m.pt"),
                 "--property", "raw"]) == 1
    assert "'raw' is recorded in 'unknown', but Hartree is needed" in one_error_line(capsys)


# ------------------------------------------------------------------- interrupts (real signals)


def _train_until_progress(tmp_path: Path, h2: Path, epochs: int = 3
                          ) -> tuple[subprocess.Popen, list[str]]:
    """Start ``levelup train`` (which would run for hours) with its stderr on a terminal (a
    pseudo-terminal, so the progress bar redraws in place as a user sees it) and return once the
    bar shows ``epochs`` finished epochs; the list collects its stderr."""
    import fcntl
    import pty
    import struct
    import termios

    cmd = [sys.executable, "-m", "levelup.cli.main", "train", str(h2), "-o",
           str(tmp_path / "model.pt"), "--property", "morse", "--epochs", "100000000",
           "--lr-floor", "0", "--batch-size", "8"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    master, terminal = pty.openpty()
    # 24 rows, 100 columns: a new pseudo-terminal has size 0 x 0, where tqdm draws nothing
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    # a shell's background job may ignore SIGINT, and a child inherits that: undo it
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=terminal, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    os.close(terminal)
    chunks: list[str] = []

    def read() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data.decode(errors="replace"))
        os.close(master)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        done = [int(m) for m in re.findall(r"\|\s*(\d+)/100000000", "".join(chunks))]
        if done and max(done) >= epochs:
            return proc, chunks
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"no training progress: {''.join(chunks)[-2000:]}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_training_writes_the_best_model(tmp_path, h2, signum):
    from levelup.model.files import load_model

    proc, chunks = _train_until_progress(tmp_path, h2)
    proc.send_signal(signum)
    code = proc.wait(timeout=60)
    time.sleep(0.2)  # let the reader thread take the last bytes
    stderr = "".join(chunks).replace("\r", "\n")
    assert code == 130, stderr[-3000:]  # the message, if not: seen once as exit 1 in make test
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("levelup:")]
    assert len(lines) == 1, stderr[-2000:]
    model_path = tmp_path / "model.pt"
    match = re.fullmatch(r"levelup: interrupted after (\d+) epochs: wrote the best model so far "
                         r"\(epoch (\d+), validation RMSE ([\d.]+) kcal/mol\) to (\S+); history in "
                         r"(\S+)", lines[0])
    assert match, lines[0]
    done, best = int(match[1]), int(match[2])
    assert done >= 3 and 1 <= best <= done
    assert match[4] == str(model_path) and match[5] == f"{model_path}.history.json"
    history = json.loads(Path(match[5]).read_text())
    assert history["stop_reason"] == "interrupted" and history["best_epoch"] == best
    assert len(history["epoch"]) == done
    assert history["val_rmse"][best - 1] == pytest.approx(float(match[3]), abs=1e-4)
    model = load_model(model_path)
    db = Database.load(h2)
    energies = model.predict(db).energies
    assert energies.shape == (40,) and np.isfinite(energies).all()
    assert proc.stdout.read() == b""  # the line went to stderr; nothing else was printed
