"""Streamed energy-only training data (levelup.train.streaming): features within a memory budget,
molecules read from an HDF5 file block by block, the same training as the in-memory layout."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import SELF, make_db, small_model

from levelup.errors import ConfigError, DataError
from levelup.train.batching import CachedEnergies
from levelup.train.config import TrainConfig
from levelup.train.optim import AveragedAdamW
from levelup.train.steps import evaluate, train_epoch
from levelup.train.streaming import (
    StreamedEnergies,
    block_order,
    energy_data,
    feature_widths,
    stream_file,
)
from levelup.train.streaming_sources import ArraySource, DiskFeatures, FileSource

DB = make_db(300, kinds=("H2O", "CH4", "H2O"))
#: molecules of DB per block and atoms per window in the tests that need several windows
BLOCK, WINDOW = 8, 64


def setup(db=DB):
    """A fresh seeded model with self energies set, and the arrays fit would hand the layout."""
    model = small_model()
    model.set_self_energies(SELF)
    species = model.species_index(db.species)
    xyz = torch.from_numpy(db.coordinates).float()
    residuals = torch.from_numpy(np.array(db.get("morse"))) - model.self_energy_sum(species)
    return model, species, xyz, residuals


def train(make, epochs: int = 3, db=DB):
    """Parameters after ``epochs`` of levelup.train.steps.train_epoch (the loop's own epoch) on
    the data ``make(model, species, xyz, residuals)`` lays out, and the validation numbers of
    the same data afterwards."""
    model, species, xyz, residuals = setup(db)
    data = make(model, species, xyz, residuals)
    optimizer = AveragedAdamW([(list(model.parameters()), 2e-3, 0.0)], ema_decay=0.0)
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        train_epoch(model, TrainConfig(), data, optimizer, generator, None)
    data.shuffle(np.arange(data.n), batch_size=4096)
    scores = evaluate(model, data, 0.0)
    optimizer.release()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, scores


def max_difference(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.fixture(scope="module")
def reference():
    return train(lambda m, s, x, r: CachedEnergies(m, s, x, r))


@pytest.fixture(scope="module")
def db_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("streaming") / "db.h5"
    DB.save(path)
    return path


@pytest.mark.parametrize("memory_mb", [0.0, 0.03, 100.0])
def test_same_training_as_in_memory(reference, memory_mb):
    """Within one window (300 small molecules) the batches and their order are those of
    CachedEnergies, so training is the same: no budget (everything recomputed every epoch), a
    tiny one (one block of 8 in memory, the rest recomputed) and a large one."""
    params, scores = train(lambda m, s, x, r: StreamedEnergies(
        m, ArraySource(s, x), r, memory_mb, block=BLOCK))
    # the features are recomputed by the same float32 code on the same molecules, but a block is
    # padded only to its own largest molecule (3 atoms for a block of waters, not 5): the AEV's
    # float32 sums may then round differently in the last bit (observed: 6e-8 after 3 epochs)
    assert max_difference(params, reference[0]) < 1e-6
    assert scores[:2] == pytest.approx(reference[1][:2], rel=1e-6)


def test_from_file_with_disk_cache(reference, db_file, tmp_path):
    """Read from the HDF5 file block by block, the features beyond the memory budget kept in a
    temporary folder on disk: the same training; the folder goes with the data."""
    made = []

    def make(model, species, xyz, residuals):
        made.append(stream_file(model, db_file, "morse", 0.03, cache_dir=tmp_path))
        return made[0]

    params, scores = train(make)
    assert max_difference(params, reference[0]) < 1e-6  # as above
    # less than a block of 256 molecules fits in 0.03 MB: every feature comes from disk
    assert made[0].cached == 0 and isinstance(made[0]._far, DiskFeatures)
    assert made[0].n == len(DB)
    assert len(list(tmp_path.iterdir())) == 1
    made.clear()
    assert list(tmp_path.iterdir()) == []


def test_several_windows_follow_the_block_order(db_file, tmp_path):
    """Windows of 64 atoms (12 molecules): the epoch visits the molecules in block_order of the
    seeded permutation; training equals CachedEnergies given that same order, whether the
    features come from memory, are recomputed from the file, or come back from disk. Float32
    rounding differs only where a window sums a molecule's atoms as a uniform block and the
    whole set does not (H2O and CH4 mixed), about 1e-7 relative."""
    span = WINDOW // 5 // BLOCK  # 5 atoms in the largest molecule

    class Grouped(CachedEnergies):
        def shuffle(self, order, batch_size):
            super().shuffle(block_order(order, BLOCK, span), batch_size)

    ref, ref_scores = train(lambda m, s, x, r: Grouped(m, s, x, r))
    for memory_mb, folder in ((0.0, None), (0.05, None), (0.05, tmp_path)):
        params, scores = train(lambda m, s, x, r, mb=memory_mb, d=folder: StreamedEnergies(
            m, FileSource(db_file, m), r, mb, cache_dir=d, window_atoms=WINDOW, block=BLOCK))
        assert max_difference(params, ref) < 1e-6
        assert scores[:2] == pytest.approx(ref_scores[:2], rel=1e-5)
    plain, _ = train(lambda m, s, x, r: CachedEnergies(m, s, x, r))
    assert max_difference(plain, ref) > 1e-4  # the order is not that of the plain permutation


def test_block_order():
    """A permutation, deterministic, idempotent, the permutation itself when one group holds
    everything; each group's molecules come from at most ``span`` blocks."""
    perm = np.random.default_rng(0).permutation(1000)
    order = block_order(perm, 10, 4)
    assert sorted(order) == list(range(1000))
    assert (order == block_order(perm.copy(), 10, 4)).all()
    assert (block_order(order, 10, 4) == order).all()
    assert (block_order(perm, 10, 100) == perm).all()
    assert (block_order(np.arange(1000), 10, 4) == np.arange(1000)).all()
    blocks = order // 10
    for g in range(25):
        assert len(np.unique(blocks[g * 40:(g + 1) * 40])) == 4
    other = block_order(np.random.default_rng(1).permutation(1000), 10, 4)
    assert not (other == order).all()
    model, species, xyz, residuals = setup()
    perm = np.random.default_rng(0).permutation(len(DB))
    assert CachedEnergies(model, species, xyz, residuals).epoch_order(perm) is perm
    streamed = StreamedEnergies(model, ArraySource(species, xyz), residuals, 0.0,
                                window_atoms=WINDOW, block=BLOCK)
    assert (streamed.epoch_order(perm) == block_order(perm, BLOCK, WINDOW // 5 // BLOCK)).all()


def test_energy_data_chooses_by_budget():
    """The factory keeps the in-memory layout when every feature fits, else streams."""
    model, species, xyz, residuals = setup()
    need = sum(int((species == k).sum()) * w * 4 for k, w in enumerate(feature_widths(model)))
    fits = energy_data(model, species, xyz, residuals, memory_mb=need / 2**20)
    assert type(fits) is CachedEnergies
    tight = energy_data(model, species, xyz, residuals, memory_mb=need / 2**20 * 0.99)
    assert isinstance(tight, StreamedEnergies) and tight.cached < len(DB)


def test_frozen_layers_are_cached_narrower():
    """With a frozen first layer the cache holds its 16-wide output, not the AEV."""
    model, species, xyz, residuals = setup()
    for net in model.networks.values():
        net[0].requires_grad_(False)
    assert feature_widths(model) == [16, 16, 16]
    data = StreamedEnergies(model, ArraySource(species, xyz), residuals, 100.0)
    assert data.cached == len(DB) and all(el.features.shape[1] == 16 for el in data.elements)


@pytest.mark.parametrize("budget", [-1.0, math.nan, math.inf, "big", True])
def test_bad_budget(budget):
    model, species, xyz, residuals = setup()
    with pytest.raises(ConfigError, match=r"cache_memory_mb .* finite number >= 0"):
        energy_data(model, species, xyz, residuals, memory_mb=budget)


def test_bad_cache_dir_and_rows(db_file, tmp_path):
    model, species, xyz, residuals = setup()
    with pytest.raises(ConfigError, match="cache_dir .* is not a folder"):
        energy_data(model, species, xyz, residuals, 0.0, cache_dir=tmp_path / "missing")
    with pytest.raises(DataError, match="increasing row numbers"):
        stream_file(model, db_file, "morse", 1.0, rows=np.array([3, 2]))
    with pytest.raises(DataError, match="no property 'energy'"):
        stream_file(model, db_file, "energy", 1.0)
    (tmp_path / "not.h5").write_text("molecules")
    with pytest.raises(DataError, match="not an HDF5 file"):
        stream_file(model, tmp_path / "not.h5", "morse", 1.0)


def test_file_errors(tmp_path):
    """A molecule without the energy, or energies not in Hartree, are refused by name."""
    db = make_db(20)
    values = np.array(db.get("morse"))
    values[3] = np.nan
    db.set("partial", values)
    db.set("ev", values * 27.2, unit="unknown")
    db.save(tmp_path / "db.h5")
    model = small_model()
    model.set_self_energies(SELF)
    with pytest.raises(DataError, match="1 molecules .* lack 'partial'"):
        stream_file(model, tmp_path / "db.h5", "partial", 1.0)
    with pytest.raises(DataError, match="'ev' is recorded in 'unknown'"):
        stream_file(model, tmp_path / "db.h5", "ev", 1.0)
    rows = np.flatnonzero(np.isfinite(values))
    data = stream_file(model, tmp_path / "db.h5", "partial", 1.0, rows=rows)
    assert data.n == 19


# ------------------------------------------------------------------------------ memory

_WORKER = """
import json, sys
import numpy as np, torch
torch.set_num_threads(1)
from levelup.model.ani import ANIModel
from levelup.train.config import TrainConfig
from levelup.train.optim import AveragedAdamW
from levelup.train.steps import evaluate, train_epoch
from levelup.train.streaming import StreamedEnergies
from levelup.train.streaming_sources import FileSource
path, memory_mb = sys.argv[1], float(sys.argv[2])


def high_water_mb():
    # this process's own peak resident memory (VmHWM: the peak of its address space, which
    # starts afresh at exec; ru_maxrss would also carry the parent's RSS at fork, i.e. pytest's)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


model = ANIModel(["H", "C", "N", "O"], hidden=(16, 8), seed=0)
model.set_self_energies([-0.5, -37.8, -54.6, -75.0])
before = high_water_mb()
source = FileSource(path, model)
data = StreamedEnergies(model, source, source.residuals("morse"), memory_mb, window_atoms=4096)
opt = AveragedAdamW([(list(model.parameters()), 1e-3, 0.0)], ema_decay=0.0)
train_epoch(model, TrainConfig(batch_size=512), data, opt, torch.Generator().manual_seed(0), None)
data.shuffle(np.arange(data.n), 4096)
evaluate(model, data, 0.0)
print(json.dumps({"before_mb": before, "peak_mb": high_water_mb(), "cached": data.cached}))
"""


def _peak(path: Path, memory_mb: float) -> dict:
    out = subprocess.run([sys.executable, "-c", _WORKER, str(path), str(memory_mb)], check=True,
                         capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_peak_memory_does_not_grow_with_the_file(tmp_path):
    """A streamed epoch (train and evaluate) over a file of 10,000 waters and one of 40,000
    (their ANI-1x features: 46 and 184 MB) with an 8 MB budget: peak memory (VmHWM of a fresh
    process) grows by less than 15 MB, the bookkeeping of ~30,000 more molecules; with a budget
    that holds everything it grows by the features."""
    sizes = {}
    for n in (10_000, 40_000):
        db = make_db(n, kinds=("H2O",))
        db.save(tmp_path / f"w{n}.h5")
        sizes[n] = n * 3 * 384 * 4 / 2**20  # MB of features
    small, large = _peak(tmp_path / "w10000.h5", 8.0), _peak(tmp_path / "w40000.h5", 8.0)
    unbounded = _peak(tmp_path / "w40000.h5", 1000.0)
    assert small["cached"] < 10_000 and large["cached"] == small["cached"]
    assert unbounded["cached"] == 40_000
    grown = large["peak_mb"] - small["peak_mb"]
    assert grown < 15.0, (small, large)
    # the same file with a budget that holds every feature: its peak is higher by about the
    # features (184 MB; the streamed run holds 8 MB of them, one window and a chunk's AEV)
    assert unbounded["peak_mb"] - large["peak_mb"] > 0.8 * sizes[40_000], (large, unbounded)


def test_fit_streams_within_the_budget(tmp_path):
    """fit with TrainConfig(cache_memory_mb=...) lays the data out within that budget and trains
    as in memory (300 small molecules: one window, the permutation kept); a bad budget or folder
    is a ConfigError when the config is made."""
    from levelup.train.loop import fit

    results = []
    for changes in ({}, {"cache_memory_mb": 0.0}, {"cache_memory_mb": 0.01, "cache_dir": tmp_path}):
        model = small_model()
        model.set_self_energies(SELF)
        history = fit(model, DB, property="morse", progress=False,
                      config=TrainConfig(max_epochs=4, **changes))
        results.append(({k: v.clone() for k, v in model.state_dict().items()}, history.val_rmse))
    for params, val_rmse in results[1:]:
        assert max_difference(params, results[0][0]) < 1e-6
        assert val_rmse == pytest.approx(results[0][1], rel=1e-5)
    with pytest.raises(ConfigError, match="cache_memory_mb"):
        TrainConfig(cache_memory_mb=-1)
    with pytest.raises(ConfigError, match="cache_dir .* is not a folder"):
        TrainConfig(cache_dir=tmp_path / "missing")
