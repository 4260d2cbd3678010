"""No code runs from a file levelup reads, and every reader fails with levelup's own errors.

Each payload test first shows that its payload is live (the usual loader runs it and a marker
file appears), then that levelup describes or refuses the file without the marker appearing.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import warnings
import zipfile
from typing import Tuple  # noqa: UP035 - TorchScript needs typing.Tuple in annotations

import h5py
import numpy as np
import pytest
import torch

from levelup import ANIModel, Database
from levelup.cli.main import main
from levelup.data.io.asefiles import SAFE_FORMATS
from levelup.errors import ConfigError, DataError, ModelFileError
from levelup.model.export import EXTRA_FILE, read_export_info
from levelup.model.files import load_model, model_to_bytes, read_header
from levelup.train.checkpoint import load_checkpoint


class _Evil(torch.nn.Module):
    """A module whose scripted __setstate__ (run by torch.jit.load) writes a marker file."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @torch.jit.export
    def __getstate__(self) -> Tuple[str, bool]:  # noqa: UP006
        return (self.marker, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, bool]) -> None:  # noqa: UP006
        self.marker = state[0]
        self.training = state[1]
        torch.save(torch.zeros(1), state[0])


def _evil_torchscript(path, marker, record: str | None = '{"kind": "ANIModel"}'):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(_Evil(str(marker)))
        extra = {EXTRA_FILE: record} if record is not None else {}
        torch.jit.save(scripted, str(path), _extra_files=extra)
    assert not marker.exists()
    return path


def _prove_live(path, marker):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.load(str(path))
    assert marker.exists(), "the payload did not run: the test would prove nothing"
    os.remove(marker)


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# ---------------------------------------------------------------------------------- TorchScript
def test_info_describes_malicious_torchscript_without_loading_it(tmp_path, capsys):
    marker = tmp_path / "PWNED"
    path = _evil_torchscript(tmp_path / "evil.ts", marker)
    assert main(["info", str(path)]) == 0
    assert "TorchScript export of a levelup ANIModel" in capsys.readouterr().out
    assert not marker.exists()
    _prove_live(path, marker)


def test_info_refuses_torchscript_without_levelup_record(tmp_path, capsys):
    marker = tmp_path / "PWNED"
    path = _evil_torchscript(tmp_path / "other.ts", marker, record=None)
    assert main(["info", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"without levelup's {EXTRA_FILE} record" in err and "not a TorchScript file written" in err
    assert not marker.exists()
    _prove_live(path, marker)


def test_info_in_a_subprocess_never_runs_the_payload(tmp_path):
    marker = tmp_path / "PWNED"
    path = _evil_torchscript(tmp_path / "evil.ts", marker)
    done = subprocess.run([sys.executable, "-m", "levelup.cli.main", "info", str(path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "TorchScript export" in done.stdout
    assert not marker.exists()


def test_model_readers_refuse_torchscript(tmp_path, capsys):
    """predict, finetune and export read models through levelup.model.files, which refuses zips."""
    marker = tmp_path / "PWNED"
    path = _evil_torchscript(tmp_path / "evil.ts", marker)
    for read in (load_model, read_header):
        with pytest.raises(ModelFileError, match="TorchScript export"):
            read(path)
    db = tmp_path / "db.h5"
    Database(np.array([[1, 1]]), np.array([[[0, 0, 0], [0, 0, 0.74]]])).save(db)
    for argv in (["predict", str(path), str(db), "-o", str(tmp_path / "out.h5")],
                 ["export", str(path), "-o", str(tmp_path / "out.ts")],
                 ["finetune", str(path), str(db), "-o", str(tmp_path / "ft.pt"), "--property", "e"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert "levelup: error:" in err and "TorchScript export" in err, (argv, err)
    assert not marker.exists()


def test_export_record_is_bounded_and_checked(tmp_path):
    """A zip bomb in the record, a corrupt zip, and a record that is not a JSON object."""
    bomb = tmp_path / "bomb.ts"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"bomb/extra/{EXTRA_FILE}", b" " * 5_000_000)
    assert bomb.stat().st_size < 100_000
    with pytest.raises(ModelFileError, match="more than"):
        read_export_info(bomb)
    listed = tmp_path / "list.ts"
    with zipfile.ZipFile(listed, "w") as z:
        z.writestr(f"list/extra/{EXTRA_FILE}", b"[1, 2]")
    with pytest.raises(ModelFileError, match="not an object"):
        read_export_info(listed)
    corrupt = tmp_path / "corrupt.ts"
    corrupt.write_bytes(listed.read_bytes()[:40])
    with pytest.raises(ModelFileError, match="not a TorchScript file"):
        read_export_info(corrupt)


# ---------------------------------------------------------------------------------- ASE formats
def test_pickle_trajectory_is_refused(tmp_path):
    marker = tmp_path / "PWNED"
    payload = pickle.dumps({"positions": _Payload(marker)})
    path = tmp_path / "old.traj"
    path.write_bytes(b"PickleTrajectory" + payload)
    with pytest.raises(DataError, match="PickleTrajectory"):
        Database.read(path)
    plain = tmp_path / "plain.xyz"
    plain.write_bytes(payload)
    with pytest.raises(DataError, match="unpickl"):
        Database.read(plain)
    assert not marker.exists()
    pickle.loads(payload)["positions"].close()  # the payload is live
    assert marker.exists()


def test_unsafe_ase_formats_are_refused_with_the_allowlist(tmp_path):
    path = tmp_path / "x.xyz"
    path.write_text("1\n\nH 0 0 0\n")
    assert len(Database.read(path)) == 1
    for fmt in ("bundletrajectory", "db", "lammps-data"):
        with pytest.raises(DataError, match="extxyz, xyz, traj") as info:
            Database.read(path, format=fmt)
        assert repr(fmt) in str(info.value)
    assert "traj" in SAFE_FORMATS and "bundletrajectory" not in SAFE_FORMATS


def test_readers_name_the_file_and_the_problem(tmp_path, capsys):
    folder = tmp_path / "somedir"
    folder.mkdir()
    short = tmp_path / "short.xyz"
    short.write_text("2\nProperties=species:S:1:pos:R:3:forces:R:3 energy=1.0\n"
                     "H 0 0 0 1 2 3\nH 0 0 0.7\n")
    unknown = tmp_path / "qq.xyz"
    unknown.write_text("1\n\nQq 0 0 0\n")
    with pytest.raises(DataError, match="is a folder, not a file of molecules"):
        Database.read(folder)
    with pytest.raises(DataError, match=r"line 4 has 4 columns but the header on line 2 "
                                        r"declares 7"):
        Database.read(short)
    with pytest.raises(DataError, match=r"unknown element symbol 'Qq' in .*qq\.xyz"):
        Database.read(unknown)
    assert main(["info", str(folder)]) == 1
    assert "is a folder, not a file" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- checkpoints
def test_checkpoint_pickle_payload_never_runs(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "ckpt.pt"
    buffer = io.BytesIO()
    torch.save({"levelup_checkpoint": 1, "model": _Payload(marker)}, buffer)
    path.write_bytes(buffer.getvalue())
    with pytest.raises(ConfigError, match="cannot read training checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the payload is live
    assert marker.exists()


# ---------------------------------------------------------------------------------- HDF5
def test_database_refuses_data_outside_the_file(tmp_path):
    """External raw storage and links would read other files into the database."""
    db = Database(np.array([[1, 1]]), np.array([[[0, 0, 0], [0, 0, 0.74]]]))
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(2, dtype=np.int64).tobytes())
    for how in ("external", "soft", "external_link"):
        path = tmp_path / f"{how}.h5"
        db.save(path)
        with h5py.File(path, "a") as f:
            del f["charges"]
            if how == "external":
                f.create_dataset("charges", shape=(1,), dtype=np.int64,
                                 external=[(str(secret), 0, 8)])
            elif how == "soft":
                f["charges"] = h5py.SoftLink("/multiplicities")
            else:
                f["charges"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/charges")
        with pytest.raises(DataError, match="charges"):
            Database.load(path)


def test_hand_edited_model_header_is_a_levelup_error(tmp_path, capsys):
    import json
    import struct

    data = model_to_bytes(ANIModel(["H"], seed=0, hidden=(4,)))
    (size,) = struct.unpack("<Q", data[:8])
    raw = json.loads(data[8:8 + size])
    header = json.loads(raw["__metadata__"]["levelup"])
    header["members"][0]["aev"] = 5
    raw["__metadata__"]["levelup"] = json.dumps(header)
    text = json.dumps(raw).encode()
    path = tmp_path / "edited.pt"
    path.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + size:])
    assert main(["info", str(path)]) == 1
    assert "corrupted or hand-edited file" in capsys.readouterr().err


def test_xyz_diagnosis_stops_on_a_negative_atom_count(tmp_path):
    """Found by the fuzzer: a negative count once sent the column check into an endless loop."""
    from levelup.data.io.asefiles import _xyz_problem

    path = tmp_path / "neg.xyz"
    path.write_text("1\n\nH 0 0 0\n-2\nx\nH 0 0\n")
    assert "the number of atoms is -2, below 0" in _xyz_problem(path)


@pytest.mark.timeout(60)
def test_an_xyz_count_beyond_the_file_is_refused_before_ase_reads(tmp_path):
    """Found by the fuzzer: a count line of 30 nines made ASE's extxyz reader call readline()
    that many times (a CI run hung on it); levelup now refuses it first, in one line."""
    import levelup
    from levelup.errors import DataError

    for text, line in (("9" * 30, 1), ("1\n\nH 0 0 0\n5\ncomment\nH 0 0 0\n", 4)):
        path = tmp_path / "big.xyz"
        path.write_text(text)
        with pytest.raises(DataError, match=f"line {line} declares .* atoms but only"):
            levelup.Database.read(path)
    good = tmp_path / "good.xyz"
    good.write_text("2\n\nH 0 0 0\nH 0 0 0.74\n1\nx\nH 0 0 0\n")
    assert len(levelup.Database.read(good)) == 2
