"""Faults survived, with real processes and real signals: a disk that fills up while a file is
written (the process's file-size limit, RLIMIT_FSIZE, makes the write fail as a full disk would),
SIGKILL while a database is being saved, and SIGKILL during training followed by a resume.

RELIABILITY.md lists these with the commands that reproduce them.
"""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import levelup
from levelup.errors import OutputError

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "levelup.cli.main"]


def _h2(n: int, shift: float = 0.0) -> levelup.Database:
    xyz = np.zeros((n, 2, 3))
    xyz[:, 1, 2] = np.linspace(0.6, 2.5, n) + shift
    db = levelup.Database.from_numpy(coordinates=xyz, species=[1, 1])
    r = xyz[:, 1, 2]
    db.set("morse", 0.17 * (1 - np.exp(-1.0 * (r - 0.74))) ** 2 - 1.17, unit="Hartree")
    return db


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def _limit_file_size(limit: int):
    def preexec() -> None:  # in the child, before exec: writes past `limit` bytes fail (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    return preexec


def _stray_temporaries(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".") and p.suffix == ".tmp"]


def test_disk_full_while_writing_leaves_the_old_output_and_says_so(tmp_path):
    """`levelup predict` whose output cannot be written (file-size limit of the process): one
    line naming the output, exit 1, the previous output unchanged, no temporary file left."""
    model = tmp_path / "model.pt"
    levelup.ANIModel(["H"], seed=0).save(model)
    big = tmp_path / "big.h5"
    _h2(4000).save(big)
    out = tmp_path / "out.h5"
    _h2(3).save(out)
    before = out.read_bytes()
    proc = subprocess.run([*CLI, "-q", "predict", str(model), str(big), "-o", str(out)],
                          capture_output=True, text=True, timeout=120, env=_env(),
                          preexec_fn=_limit_file_size(len(before) + 20_000))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("levelup: error: cannot write"), proc.stderr
    assert str(out) in lines[0] and "left as it was" in lines[0]
    assert ".tmp" not in lines[0]
    assert out.read_bytes() == before
    assert _stray_temporaries(tmp_path) == []


def test_disk_full_while_exporting_torchscript(tmp_path):
    """`levelup export` (TorchScript is written by torch, whose own write errors are not OSErrors)
    under the same limit: one line naming the output, exit 1, nothing created."""
    model = tmp_path / "model.pt"
    levelup.ANIModel(["H"], seed=0).save(model)
    out = tmp_path / "model.ts"
    proc = subprocess.run([*CLI, "-q", "export", str(model), "-o", str(out)], capture_output=True,
                          text=True, timeout=120, env=_env(), preexec_fn=_limit_file_size(20_000))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"levelup: error: cannot write {out}: File too large"), lines[0]
    assert not out.exists() and _stray_temporaries(tmp_path) == []


def test_no_space_left_on_device_in_process(tmp_path, monkeypatch):
    """ENOSPC from the final sync of an atomic save: OutputError (an OSError too) naming the
    target, the old file intact, the temporary file removed."""
    path = tmp_path / "model.pt"
    model = levelup.ANIModel(["H"], seed=0)
    model.save(path)
    before = path.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError, match="No space left on device") as caught:
        levelup.ANIModel(["H"], seed=1).save(path)
    assert caught.value.errno == errno.ENOSPC and str(path) in str(caught.value)
    assert path.read_bytes() == before
    assert _stray_temporaries(tmp_path) == []


_SAVER = """
import sys
import numpy as np
import levelup
path = sys.argv[1]
dbs = []
for n in (20000, 30000):
    xyz = np.zeros((n, 2, 3)); xyz[:, 1, 2] = np.linspace(0.5, 5.0, n)
    db = levelup.Database.from_numpy(coordinates=xyz, species=[1, 1])
    db.set("e", np.full(n, float(n)), unit="Hartree")
    dbs.append(db)
dbs[0].save(path)
print("ready", flush=True)
i = 0
while True:
    i += 1
    dbs[i % 2].save(path)
"""


def test_sigkill_while_saving_never_leaves_a_broken_database(tmp_path):
    """A process saving a database over and over is killed with SIGKILL at five moments: the
    file always loads, whole, as one of the two versions written."""
    path = tmp_path / "db.h5"
    for attempt in range(5):
        proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(path)], stdout=subprocess.PIPE,
                                text=True, env=_env())
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.05 + 0.13 * attempt)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        db = levelup.Database.load(path)
        assert len(db) in (20000, 30000)
        np.testing.assert_array_equal(db.get("e"), float(len(db)))


def _train(tmp_path: Path, name: str, *extra: str) -> subprocess.Popen:
    args = [*CLI, "-q", "train", str(tmp_path / "train.h5"), "-o", str(tmp_path / name),
            "--property", "morse", "--epochs", "40", "--batch-size", "8", "--seed", "3",
            "--ema-decay", "0", *extra]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())


def test_sigkill_during_training_then_resume_gives_the_uninterrupted_model(tmp_path):
    """`levelup train --checkpoint` killed with SIGKILL after a checkpoint was written, then run
    again with --resume: the model equals, bit for bit, one trained without interruption."""
    _h2(60).save(tmp_path / "train.h5")
    whole = _train(tmp_path, "whole.pt")
    assert whole.wait(timeout=300) == 0, whole.stderr.read()
    ckpt = tmp_path / "run.ckpt"
    flags = ("--checkpoint", str(ckpt), "--checkpoint-every", "5")
    victim = _train(tmp_path, "resumed.pt", *flags)
    deadline = time.time() + 240
    while not ckpt.exists() and victim.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert victim.poll() is None, "training finished before it could be killed"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert not (tmp_path / "resumed.pt").exists()
    again = _train(tmp_path, "resumed.pt", *flags, "--resume")
    assert again.wait(timeout=300) == 0, again.stderr.read()
    a = levelup.load_model(tmp_path / "whole.pt").predict(_h2(50, shift=0.01)).energies
    b = levelup.load_model(tmp_path / "resumed.pt").predict(_h2(50, shift=0.01)).energies
    np.testing.assert_array_equal(a, b)
