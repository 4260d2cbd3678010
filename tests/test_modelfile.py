"""Model files: round trips, and every way a file can be wrong."""

from __future__ import annotations

import json
import os
import pickle
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from levelup.data import Database
from levelup.errors import ModelFileError
from levelup.model.ani import ANIModel, Ensemble
from levelup.model.fileformat import FORMAT_VERSION
from levelup.model.files import load_metadata, load_model, read_header


@pytest.fixture(scope="module")
def molecules():
    rng = np.random.default_rng(0)
    base = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
    water = base + rng.normal(scale=0.05, size=(20, 3, 3))
    h2 = np.zeros((5, 3, 3))
    h2[:, 1, 0] = np.linspace(0.6, 1.2, 5)
    species = np.array([[8, 1, 1]] * 20 + [[1, 1, 0]] * 5)
    return Database(species, np.concatenate([water, h2]))


def _model(seed=0):
    return ANIModel(["H", "O"], seed=seed, hidden={"H": (16, 8), "O": (12,)},
                    self_energies=[-0.51234567890123, -75.0987654321])


def test_round_trip_bit_identical(tmp_path, molecules):
    model = _model()
    model.networks["O"][0].weight.requires_grad_(False)
    path = tmp_path / "water.pt"
    model.save(path, metadata={"level": "HF/STO-3G", "n_train": 20})
    assert [p.name for p in tmp_path.iterdir()] == ["water.pt"]  # no temporary file left
    loaded = load_model(path)
    assert isinstance(loaded, ANIModel)
    assert loaded.elements == [1, 8] and loaded.dtype == torch.float32
    for key, value in model.state_dict().items():
        other = loaded.state_dict()[key]
        assert other.dtype == value.dtype and torch.equal(other, value), key
    assert not loaded.networks["O"][0].weight.requires_grad
    assert loaded.networks["O"][2].weight.requires_grad
    a = model.predict(molecules, forces=True)
    b = loaded.predict(molecules, forces=True)
    assert np.array_equal(a.energies, b.energies) and np.array_equal(a.forces, b.forces)
    assert load_metadata(path) == {"level": "HF/STO-3G", "n_train": 20}
    header = read_header(path)
    assert header["format_version"] == FORMAT_VERSION and header["kind"] == "ANIModel"
    assert header["units"]["energy"] == "Hartree" and header["units"]["length"] == "Angstrom"
    member = header["members"][0]
    assert member["elements"] == ["H", "O"] and member["frozen"] == ["networks.O.0.weight"]
    assert member["self_energies"]["H"] == -0.51234567890123
    assert [layer["type"] for layer in member["networks"]["O"]] == ["Linear", "CELU", "Linear"]


def test_ensemble_float64_and_added_layers_round_trip(tmp_path, molecules):
    members = [_model(seed=s).double() for s in range(3)]
    # a transfer-learning style surgery: one more hidden layer in H of member 1
    net = members[1].networks["H"]
    extra = torch.nn.Linear(8, 8).double()
    members[1].networks["H"] = torch.nn.Sequential(*net[:-1], extra, torch.nn.CELU(0.1), net[-1])
    ens = Ensemble(members)
    ens.save(tmp_path / "ens.pt")
    loaded = load_model(tmp_path / "ens.pt")
    assert isinstance(loaded, Ensemble) and len(loaded) == 3 and loaded.dtype == torch.float64
    assert len(loaded.members[1].networks["H"]) == 7
    a, b = ens.predict(molecules, forces=True), loaded.predict(molecules, forces=True)
    assert np.array_equal(a.energies, b.energies) and np.array_equal(a.forces, b.forces)
    assert np.array_equal(a.energies_std, b.energies_std)


def test_loading_leaves_global_random_stream_alone(tmp_path):
    _model().save(tmp_path / "m.pt")
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    load_model(tmp_path / "m.pt")
    assert torch.equal(torch.rand(3), expected)


def test_unsupported_layer_cannot_be_saved(tmp_path):
    model = _model()
    model.networks["H"][1] = torch.nn.Dropout(0.1)
    with pytest.raises(ModelFileError, match="Dropout"):
        model.save(tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()
    with pytest.raises(ModelFileError, match="JSON"):
        _model().save(tmp_path / "m.pt", metadata={"bad": object()})


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.pt"
    _model().save(path)
    return path, path.read_bytes()


@pytest.mark.parametrize("keep", [0, 5, 100, 0.5, -1, -100])
def test_truncated(saved, keep):
    path, data = saved
    cut = int(len(data) * keep) if isinstance(keep, float) else (keep if keep >= 0
                                                                 else len(data) + keep)
    path.write_bytes(data[:cut])
    with pytest.raises(ModelFileError, match="truncated|not a levelup model"):
        load_model(path)


def test_corrupted_tensor_bytes(saved):
    path, data = saved
    bad = bytearray(data)
    bad[-50] ^= 0x01  # one bit of one weight
    path.write_bytes(bytes(bad))
    with pytest.raises(ModelFileError, match="checksum"):
        load_model(path)


def test_corrupted_header(saved):
    path, data = saved
    (size,) = struct.unpack("<Q", data[:8])
    bad = bytearray(data)
    bad[8 + size // 2] = ord("\x01")
    path.write_bytes(bytes(bad))
    with pytest.raises(ModelFileError):
        load_model(path)


def _rewrite_header(data: bytes, change) -> bytes:
    (size,) = struct.unpack("<Q", data[:8])
    raw = json.loads(data[8:8 + size])
    header = json.loads(raw["__metadata__"]["levelup"])
    change(header)
    return st_save(st_load(data), metadata={"levelup": json.dumps(header)})


def test_newer_format_version(saved):
    path, data = saved
    path.write_bytes(_rewrite_header(data, lambda h: h.update(format_version=FORMAT_VERSION + 1,
                                                               levelup_version="9.0")))
    with pytest.raises(ModelFileError, match=r"format version 2.*upgrade levelup"):
        load_model(path)


def test_foreign_units(saved):
    path, data = saved
    path.write_bytes(_rewrite_header(data, lambda h: h["units"].update(energy="kcal/mol")))
    with pytest.raises(ModelFileError, match="units"):
        load_model(path)


def test_header_that_does_not_fit_the_tensors(saved):
    path, data = saved

    def widen(h):
        h["members"][0]["networks"]["O"][0]["out"] = 13
        h["members"][0]["networks"]["O"][2]["in"] = 13

    path.write_bytes(_rewrite_header(data, widen))
    with pytest.raises(ModelFileError, match="do not fit"):
        load_model(path)
    path.write_bytes(_rewrite_header(data, lambda h: h["members"][0]["networks"]["O"].append(
        {"type": "Conv9000"})))
    with pytest.raises(ModelFileError, match="unknown layer type"):
        load_model(path)


def test_foreign_files(tmp_path):
    cases = {
        "other.safetensors": st_save({"w": torch.zeros(3)}, metadata={"format": "pt"}),
        "wrong_format.safetensors": st_save({"w": torch.zeros(3)},
                                            metadata={"levelup": json.dumps({"format": "x"})}),
        "text.pt": b"H 0 0 0\nH 0 0 0.74\n" * 5,
        "empty.pt": b"",
    }
    np.savez(tmp_path / "arrays.npz", a=np.zeros(3))
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    for name in [*cases, "arrays.npz"]:
        with pytest.raises(ModelFileError):
            load_model(tmp_path / name)


class _Payload:
    """Unpickling this creates a marker file: what a malicious model file would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_payload_never_runs(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}))
    with pytest.raises(ModelFileError, match="pickled"):
        load_model(path)
    assert not marker.exists()
    # the same payload inside a torch.save zip archive
    torch.save({"state_dict": _Payload(marker)}, path)
    assert not marker.exists()
    with pytest.raises(ModelFileError, match="pickled"):
        load_model(path)
    with pytest.raises(ModelFileError):
        read_header(path)
    assert not marker.exists()
    # a sanity check that the payload is live: unpickling it really creates the marker
    pickle.loads(pickle.dumps(_Payload(marker))).close()
    assert marker.exists()
    os.remove(marker)


def test_header_length_starting_with_0x80_is_not_mistaken_for_a_pickle():
    import json as _json

    from levelup.model.fileformat import _raw_header

    header = _json.dumps({"__metadata__": {}}).ljust(0x0F80).encode()
    data = len(header).to_bytes(8, "little") + header
    assert data[:1] == b"\x80"
    assert _raw_header(data, "x") == {"__metadata__": {}}
