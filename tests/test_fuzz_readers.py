"""Property-based fuzzing (hypothesis) of every reader of untrusted files: levelup databases
(HDF5), model files (safetensors), training checkpoints, study files (TOML) and extxyz files.

The property: whatever the bytes, a reader returns or raises a
:class:`~levelup.errors.LevelupError` subclass; never a KeyError, IndexError, a numpy or h5py
ValueError, UnicodeDecodeError, OverflowError, MemoryError, RecursionError, ...

Budget: the settings profile below runs ``max_examples=200`` examples per test (10 tests, so
2000 files in all) with ``deadline=None``; the whole file takes about 20 s on a 2-core machine
(60 s at most with the cores shared). Set ``LEVELUP_FUZZ_EXAMPLES=2000`` for a longer run (about
65 s). No example database is written (``database=None``), so a run leaves nothing in the
working tree.
"""

from __future__ import annotations

import json
import math
import os
import struct

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from levelup import ANIModel, Database, read_study
from levelup.cli.main import main
from levelup.errors import LevelupError
from levelup.model.files import load_model, model_to_bytes, read_header
from levelup.train.checkpoint import load_checkpoint, save_checkpoint

EXAMPLES = int(os.environ.get("LEVELUP_FUZZ_EXAMPLES", "200"))
settings.register_profile(
    "readers", max_examples=EXAMPLES, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture])
FUZZ = settings.get_profile("readers")


def _only_levelup_errors(call, *args):
    """Run ``call(*args)``; a LevelupError is an accepted outcome, anything else propagates."""
    try:
        call(*args)
    except LevelupError as exc:
        assert str(exc), "a levelup error must say what is wrong"


# ---------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def valid_db(work):
    species = np.array([[8, 1, 1], [1, 1, 0]])
    xyz = np.random.default_rng(0).normal(size=(2, 3, 3))
    db = Database(species, xyz)
    db.set("energy", np.array([-76.0, -1.1]), unit="Hartree", level="HF/STO-3G")
    db.set("forces", np.zeros((2, 3, 3)), unit="Hartree/Angstrom")
    path = work / "valid.h5"
    db.save(path)
    extxyz = work / "valid.extxyz"
    db.write(extxyz)
    return path.read_bytes(), extxyz.read_text()


@pytest.fixture(scope="module")
def valid_model():
    return model_to_bytes(ANIModel(["H", "O"], seed=0, hidden=(4,)), metadata={"note": "x"})


@pytest.fixture(scope="module")
def valid_checkpoint(work):
    model = ANIModel(["H"], seed=0, hidden=(4,))
    path = work / "valid.ckpt"
    save_checkpoint(path, {"model": model.state_dict(), "epoch": 3, "history": {"loss": [1.0]},
                           "generator": torch.Generator().get_state(), "fingerprint": "abc"})
    return path.read_bytes()


def _mutations(size: int):
    """A truncation length, and byte flips (position, new byte) within ``size`` bytes."""
    return st.tuples(st.integers(0, size),
                     st.lists(st.tuples(st.integers(0, size - 1), st.integers(0, 255)),
                              max_size=8))


def _mutate(data: bytes, mutation) -> bytes:
    cut, flips = mutation
    out = bytearray(data)
    for pos, byte in flips:
        out[pos] = byte
    return bytes(out[:cut]) if cut < len(data) else bytes(out)


# ---------------------------------------------------------------------------------- databases
@FUZZ
@given(data=st.binary(max_size=4096))
def test_database_random_bytes(work, data):
    (work / "random.h5").write_bytes(data)
    _only_levelup_errors(Database.load, work / "random.h5")


@FUZZ
@given(mutation=st.data())
def test_database_mutated(work, valid_db, mutation):
    raw = valid_db[0]
    changed = _mutate(raw, mutation.draw(_mutations(len(raw))))
    (work / "mutated.h5").write_bytes(changed)
    _only_levelup_errors(Database.load, work / "mutated.h5")


_DTYPES = st.sampled_from(["int16", "int64", "float64", "float32", "bool", "S4", "complex128"])
_ATTR = st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.floats(),
                  st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]),
                          max_size=8),  # h5py writes UTF-8: no lone surrogates
                  st.sampled_from(["levelup-database", "Angstrom", "Hartree", "{}", "[1]"]),
                  st.lists(st.integers(-5, 5), min_size=1, max_size=3))


@st.composite
def _array(draw):
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    dtype = draw(_DTYPES)
    values = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape) % 9
    return values.astype(dtype)


@st.composite
def _h5_layout(draw):
    """A valid-looking HDF5 file with random datasets, shapes, dtypes and attributes."""
    attrs = {"format": "levelup-database", "format_version": 1, "length_unit": "Angstrom"}
    for key in list(attrs):
        choice = draw(st.integers(0, 3))
        if choice == 1:
            attrs.pop(key)
        elif choice == 2:
            attrs[key] = draw(_ATTR)
    datasets = {name: draw(st.one_of(st.none(), _array()))
                for name in ("species", "coordinates", "charges", "multiplicities")}
    props = draw(st.lists(st.tuples(_array(), st.dictionaries(
        st.sampled_from(["name", "unit", "level", "per_atom", "spec"]), _ATTR)), max_size=3))
    return attrs, datasets, props, draw(st.booleans())


@FUZZ
@given(layout=_h5_layout())
def test_database_wrong_layout(work, layout):
    attrs, datasets, props, group_missing = layout
    path = work / "layout.h5"
    with h5py.File(path, "w") as f:
        for key, value in attrs.items():
            if value is not None:
                f.attrs[key] = value
        for name, value in datasets.items():
            if value is not None:
                f.create_dataset(name, data=value)
        if not group_missing:
            group = f.create_group("properties")
            for k, (value, ds_attrs) in enumerate(props):
                ds = group.create_dataset(f"p{k}", data=value)
                for key, attr in ds_attrs.items():
                    if attr is not None:
                        ds.attrs[key] = attr
    _only_levelup_errors(Database.load, path)


# ---------------------------------------------------------------------------------- model files
@FUZZ
@given(mutation=st.data())
def test_model_file_mutated(work, valid_model, mutation):
    changed = _mutate(valid_model, mutation.draw(_mutations(len(valid_model))))
    (work / "model.pt").write_bytes(changed)
    _only_levelup_errors(load_model, work / "model.pt")
    _only_levelup_errors(read_header, work / "model.pt")


_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=12)


def _replace_somewhere(value, path, new):
    """``value`` with the item at the path of indices ``path`` (followed as far as it goes)
    replaced by ``new``."""
    if not path or not isinstance(value, (dict, list)) or not value:
        return new
    keys = list(value) if isinstance(value, dict) else list(range(len(value)))
    key = keys[path[0] % len(keys)]
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[key] = _replace_somewhere(value[key], path[1:], new)
    return copy


@FUZZ
@given(path=st.lists(st.integers(0, 50), max_size=6), new=_JSON, wrap_raw=st.booleans())
def test_model_file_random_headers(work, valid_model, path, new, wrap_raw):
    """A valid safetensors frame and tensors under a levelup header with one item replaced by
    random JSON (or, with ``wrap_raw``, the whole safetensors header's item replaced)."""
    (size,) = struct.unpack("<Q", valid_model[:8])
    raw = json.loads(valid_model[8:8 + size])
    tensors = valid_model[8 + size:]
    if wrap_raw:
        raw = _replace_somewhere(raw, path, new)
    else:
        header = json.loads(raw["__metadata__"]["levelup"])
        raw["__metadata__"]["levelup"] = json.dumps(_replace_somewhere(header, path, new))
    text = json.dumps(raw).encode()
    (work / "header.pt").write_bytes(struct.pack("<Q", len(text)) + text + tensors)
    _only_levelup_errors(load_model, work / "header.pt")
    assert main(["info", str(work / "header.pt")]) in (0, 1)


# ---------------------------------------------------------------------------------- checkpoints
@FUZZ
@given(data=st.binary(max_size=2048))
def test_checkpoint_random_bytes(work, data):
    (work / "random.ckpt").write_bytes(data)
    _only_levelup_errors(load_checkpoint, work / "random.ckpt")


@FUZZ
@given(mutation=st.data())
def test_checkpoint_mutated(work, valid_checkpoint, mutation):
    changed = _mutate(valid_checkpoint, mutation.draw(_mutations(len(valid_checkpoint))))
    (work / "mutated.ckpt").write_bytes(changed)
    _only_levelup_errors(load_checkpoint, work / "mutated.ckpt")


# ---------------------------------------------------------------------------------- study files
_KEYS = ["title", "seed", "compare", "source", "structure", "index", "bond", "angle", "from",
         "to", "step", "n", "amplitude", "path", "low", "high", "high_on", "method", "count",
         "indices", "validation", "validation_every", "offset", "elements", "aev", "hidden",
         "max_epochs", "learning_rate", "batch_size", "anchors", "base", "folder", "plots",
         "formats", "coordinate", "regions", "ylim", "freeze", "unknown_key"]
_TABLES = ["geometries", "levels", "selection", "model", "train", "pretrain", "transfer",
           "scratch", "delta", "output", "bogus"]
_TOML_SCALAR = st.one_of(
    st.integers(-(2**63), 2**63 - 1), st.floats(), st.booleans(),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=12),
    st.sampled_from(["h2_tutorial", "scan", "file", "HF/STO-3G", "tutorial", "random", "every",
                     "indices", "transfer", "model", "labels", "all", "auto", "png"]))
_TOML_VALUE = st.one_of(_TOML_SCALAR, st.lists(_TOML_SCALAR, max_size=4),
                        st.lists(st.lists(st.integers(-3, 30), max_size=3), max_size=3))


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value) if isinstance(value, str) else str(value)


@FUZZ
@given(top=st.dictionaries(st.sampled_from(_KEYS), _TOML_VALUE, max_size=3),
       tables=st.dictionaries(st.sampled_from(_TABLES), st.dictionaries(
           st.sampled_from(_KEYS), _TOML_VALUE, max_size=5), max_size=8))
def test_study_random_documents(work, top, tables):
    lines = [f"{k} = {_toml(v)}" for k, v in top.items()]
    for table, keys in tables.items():
        lines.append(f"[{table}]")
        lines += [f"{k} = {_toml(v)}" for k, v in keys.items()]
    (work / "study.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    _only_levelup_errors(read_study, work / "study.toml")


@FUZZ
@given(text=st.one_of(st.binary(max_size=512), st.text(max_size=512)))
def test_study_random_text(work, text):
    path = work / "text.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    _only_levelup_errors(read_study, path)


# ---------------------------------------------------------------------------------- extxyz
@FUZZ
@given(mutation=st.data(), text=st.text(max_size=300), random_text=st.booleans())
def test_extxyz_random_and_mutated(work, valid_db, mutation, text, random_text):
    valid = valid_db[1]
    if random_text:
        content = text
    else:  # replace a slice of the valid file by random text
        start = mutation.draw(st.integers(0, len(valid)))
        stop = mutation.draw(st.integers(start, min(len(valid), start + 40)))
        content = valid[:start] + text[:40] + valid[stop:]
    path = work / "fuzz.extxyz"
    path.write_text(content, encoding="utf-8", errors="surrogatepass")
    _only_levelup_errors(Database.read, path)
