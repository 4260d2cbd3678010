"""Force training within a memory budget (levelup.train.streaming_forces, levelup.train.trainsets):
fit from a native .h5 file trains exactly as from its Database while everything fits; beyond
the budget, windows of blocks read from the file, the same result from every source and budget;
peak memory that does not grow with the file; a missing force property named in one line."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import SELF, make_db, small_model

from levelup.cli.main import main
from levelup.errors import ConfigError, DataError
from levelup.train.batching import GeometryBatches
from levelup.train.config import TrainConfig
from levelup.train.loop import fit
from levelup.train.optim import AveragedAdamW
from levelup.train.steps import evaluate, train_epoch
from levelup.train.streaming import block_order
from levelup.train.streaming_forces import StreamedGeometries, geometry_bytes
from levelup.train.streaming_sources import ArraySource, FileSource
from levelup.units import FORCE

DB = make_db(200, kinds=("H2O", "CH4", "H2O", "H2"), forces=True)
#: molecules per block and atoms per window where several windows are wanted (12 molecules)
BLOCK, WINDOW = 4, 60


@pytest.fixture(scope="module")
def db_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("forces") / "db.h5"
    DB.save(path)
    return path


def trained(model, data, epochs=2):
    """Parameters after ``epochs`` of train_epoch with forces, and evaluate's numbers."""
    optimizer = AveragedAdamW([(list(model.parameters()), 2e-3, 0.0)], ema_decay=0.0)
    generator = torch.Generator().manual_seed(0)
    config = TrainConfig(force_weight=0.1)
    for _ in range(epochs):
        train_epoch(model, config, data, optimizer, generator, None)
    scores = evaluate(model, data, 0.1)
    optimizer.release()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, scores


def arrays(model):
    species = model.species_index(DB.species)
    xyz = torch.from_numpy(DB.coordinates).float()
    residuals = torch.from_numpy(np.array(DB.get("morse"))) - model.self_energy_sum(species)
    forces = torch.from_numpy(np.array(DB.get("forces/morse", unit=FORCE))).float()
    return species, xyz, residuals, forces


def fitted(data, **changes):
    model = small_model()
    history = fit(model, data, property="morse", progress=False,
                  config=TrainConfig(max_epochs=3, **changes))
    return model.state_dict(), history


def test_fit_from_a_file_equals_the_database(tmp_path):
    """fit on the path of the saved database draws the same validation split, self energies and
    batches as fit on the Database, and trains to the same weights, bit for bit: with forces
    (geometries all within the budget, or none in memory but one window holding the set) and
    without (features in memory); a molecule without energy is left out with the same warning."""
    db = make_db(120, kinds=("H2O", "CH4", "H2O", "H2"), forces=True)
    energies = np.array(db.get("morse"))
    energies[7] = np.nan
    db.set("morse", energies)
    db.save(tmp_path / "db.h5")
    for changes in ({"force_weight": 0.1}, {"force_weight": 0.1, "cache_memory_mb": 0.0}, {}):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ref_state, ref = fitted(db, **changes)
            state, history = fitted(tmp_path / "db.h5", **changes)
        assert [str(w.message) for w in caught] == ["1 of 120 molecules of the training set lack "
                                                    "'morse' and are left out"] * 2
        assert all(w.filename == __file__ for w in caught)
        assert all(torch.equal(state[k], ref_state[k]) for k in ref_state), changes
        assert history.val_rmse == ref.val_rmse and history.train_rmse == ref.train_rmse
        assert history.val_force_rmse == ref.val_force_rmse or "force_weight" not in changes
    assert np.isfinite(history.val_rmse).all()
    # a validation file as well
    train, val = db.split(0.8, 0.2, seed=3)
    train.save(tmp_path / "train.h5")
    val.save(tmp_path / "val.h5")
    model_a, model_b = small_model(), small_model()
    config = TrainConfig(max_epochs=2, force_weight=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = fit(model_a, train, val, property="morse", progress=False, config=config)
        b = fit(model_b, tmp_path / "train.h5", str(tmp_path / "val.h5"), property="morse",
                progress=False, config=config)
    assert a.val_force_rmse == b.val_force_rmse
    assert all(torch.equal(v, model_b.state_dict()[k]) for k, v in model_a.state_dict().items())


def test_resume_from_a_file(db_file, tmp_path):
    """A checkpoint of training from a file resumes to the uninterrupted run's weights; the
    same checkpoint refuses another file (its fingerprint hashes the file's molecules)."""
    config = {"force_weight": 0.1, "cache_memory_mb": 0.0, "checkpoint": str(tmp_path / "c"),
              "checkpoint_every": 1, "resume": True}
    whole, _ = fitted(db_file, **{**config, "checkpoint": str(tmp_path / "whole")})
    model = small_model()
    fit(model, db_file, property="morse", progress=False,
        config=TrainConfig(max_epochs=2, **config))
    resumed, history = fitted(db_file, **config)
    assert history.epoch == [1, 2, 3]
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)
    other = tmp_path / "other.h5"
    make_db(200, seed=1, kinds=("H2O", "CH4", "H2O", "H2"), forces=True).save(other)
    with pytest.raises(ConfigError, match="belongs to another run"):
        fitted(other, **config)


def test_in_memory_when_it_fits(db_file):
    """Within the budget every geometry is kept (unpadded) and the batches are GeometryBatches'
    own: the same training bit for bit, from arrays or from the file."""
    model = small_model()
    model.set_self_energies(SELF)
    species, xyz, residuals, forces = arrays(model)
    ref = trained(model, GeometryBatches(species, xyz, residuals.float(), forces))
    for make in (lambda m: StreamedGeometries(m, ArraySource(species, xyz, forces), residuals,
                                              1.0),
                 lambda m: StreamedGeometries(m, FileSource(db_file, m, forces="forces/morse"),
                                              residuals, 1.0)):
        model = small_model()
        model.set_self_energies(SELF)
        data = make(model)
        assert data.cached == len(DB)
        params, scores = trained(model, data)
        assert all(torch.equal(params[k], ref[0][k]) for k in params)
        assert scores == ref[1]


def test_several_windows(db_file):
    """Beyond the budget (windows of 12 molecules, blocks of 4): each pass visits every molecule
    once, in batches of one size that each lie in one window of at most 3 + 1 blocks; the batches
    depend only on the generator, so training is the same bit for bit whether the geometries
    come from memory, from the file, or partly from each; it differs from GeometryBatches'."""
    model = small_model()
    model.set_self_energies(SELF)
    species, xyz, residuals, forces = arrays(model)
    sources = {"arrays": ArraySource(species, xyz, forces),
               "file": FileSource(db_file, model, forces="forces/morse")}
    data = StreamedGeometries(model, sources["file"], residuals, 0.0, window_atoms=WINDOW,
                              block=BLOCK)
    batches = data.batches(5, torch.Generator().manual_seed(1))
    assert sorted(np.concatenate(batches)) == list(range(len(DB)))
    n_atoms = (species >= 0).sum(1).numpy()
    for idx in batches:
        assert len(np.unique(n_atoms[idx])) == 1 and len(idx) <= 5
        assert len(np.unique(idx // BLOCK)) <= 4
    perm = torch.randperm(len(DB), generator=torch.Generator().manual_seed(1)).numpy()
    grouped = block_order(perm, BLOCK, 3)
    assert [set(w) for w in data._windows] == [set(grouped[s:s + 12]) for s in range(0, 200, 12)]
    again = data.batches(5, torch.Generator().manual_seed(1))
    assert all((a == b).all() for a, b in zip(batches, again, strict=True))
    assert sorted(np.concatenate(data.batches(5, None))) == list(range(len(DB)))

    results = []
    for name, memory_mb in (("arrays", 0.0), ("file", 0.0), ("file", 0.01), ("arrays", 0.01)):
        model = small_model()
        model.set_self_energies(SELF)
        data = StreamedGeometries(model, sources[name], residuals, memory_mb,
                                  window_atoms=WINDOW, block=BLOCK)
        assert 0 < data.cached < len(DB) if memory_mb else data.cached == 0
        results.append(trained(model, data))
    for params, scores in results[1:]:
        assert all(torch.equal(params[k], results[0][0][k]) for k in params)
        assert scores == pytest.approx(results[0][1], rel=1e-6)  # summed in another order
    model = small_model()
    model.set_self_energies(SELF)
    plain, _ = trained(model, GeometryBatches(species, xyz, residuals.float(), forces))
    assert max(float((plain[k] - results[0][0][k]).abs().max()) for k in plain) > 1e-4


def test_budget_counts_whole_blocks(db_file):
    """The cache holds as many whole blocks as fit: their bytes within the budget."""
    model = small_model()
    source = FileSource(db_file, model, forces="forces/morse")
    n_atoms = (model.species_index(DB.species) >= 0).sum(1).numpy()
    per = geometry_bytes(n_atoms, 4)
    for memory_mb in (0.003, 0.006, 0.012):
        data = StreamedGeometries(model, source, torch.zeros(len(DB)), memory_mb, block=BLOCK)
        assert data.cached % BLOCK == 0
        assert per[:data.cached].sum() <= memory_mb * 2**20 < per[:data.cached + BLOCK].sum()


@pytest.mark.filterwarnings("ignore::levelup.model.selfenergies.SelfEnergyWarning")  # waters only
def test_missing_or_wrong_forces_are_named(tmp_path, capsys):
    """A file without the force property, or with forces in no known unit: one line saying what
    and how to fix it, from fit and from levelup train (exit 1, no model written)."""
    db = make_db(30, kinds=("H2O",))
    db.set("ev_forces", np.zeros((30, 3, 3)), unit="unknown")
    db.save(tmp_path / "db.h5")
    model = small_model()
    model.set_self_energies(SELF)
    config = TrainConfig(max_epochs=1, force_weight=0.1)
    with pytest.raises(DataError, match=r"has no per-atom force property 'forces/morse' \(its "
                       r"per-atom properties: 'ev_forces'\): give the forces' name \(forces= / "
                       r"--forces NAME\), or train on energies only \(force_weight 0\)"):
        fit(model, tmp_path / "db.h5", property="morse", progress=False, config=config)
    with pytest.raises(DataError, match="'ev_forces' is recorded in 'unknown'"):
        fit(model, tmp_path / "db.h5", property="morse", forces="ev_forces", progress=False,
            config=config)
    out = tmp_path / "model.pt"
    code = main(["-q", "train", str(tmp_path / "db.h5"), "-o", str(out), "--property", "morse",
                 "--force-weight", "0.1", "--epochs", "1"])
    err = capsys.readouterr().err.splitlines()
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith("levelup: error: ") and "no per-atom force property 'forces/morse'" \
        in err[0]
    assert not out.exists()


# ------------------------------------------------------------------------------ memory

_WORKER = """
import json, sys
import numpy as np, torch
torch.set_num_threads(1)
from levelup.model.ani import ANIModel
from levelup.train.config import TrainConfig
from levelup.train.optim import AveragedAdamW
from levelup.train.steps import train_epoch
from levelup.train.streaming_forces import StreamedGeometries
from levelup.train.streaming_sources import FileSource
path, memory_mb = sys.argv[1], float(sys.argv[2])


def high_water_mb():  # this process's own peak resident memory (see test_streaming.py)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


model = ANIModel(["H", "C", "N", "O"], hidden=(16, 8), seed=0)
model.set_self_energies([-0.5, -37.8, -54.6, -75.0])
before = high_water_mb()
source = FileSource(path, model, forces="forces/morse")
data = StreamedGeometries(model, source, source.residuals("morse"), memory_mb, window_atoms=4096)
opt = AveragedAdamW([(list(model.parameters()), 1e-3, 0.0)], ema_decay=0.0)
train_epoch(model, TrainConfig(batch_size=128, force_weight=0.1), data, opt,
            torch.Generator().manual_seed(0), None)
print(json.dumps({"before_mb": before, "peak_mb": high_water_mb(), "cached": data.cached}))
"""


def _peak(path: Path, memory_mb: float) -> dict:
    out = subprocess.run([sys.executable, "-c", _WORKER, str(path), str(memory_mb)], check=True,
                         capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_peak_memory_with_forces_does_not_grow_with_the_file(tmp_path):
    """A training epoch with forces (batch 128) streamed from a file of 25,000 waters and one of
    100,000 with a 1 MB budget: peak memory (VmHWM of a fresh process) stays within the budget
    plus 60 MB (a step's autograd graph, one window, the bookkeeping; measured ~39 MB) and grows
    by less than 10 MB from the small file to the large one: the bookkeeping of 75,000 more
    molecules (atom counts, targets, the epoch's order and batches; measured 6 MB, ~80 bytes
    each, with h5py's reads and the allocator). With a budget that holds every geometry the same
    file's peak is higher by at least half its geometries and forces (8.3 MB; measured 16-17 MB
    here, 5.9 MB once in a fresh clone on a loaded machine, where the allocator reused more).
    Waters carry less data per molecule than that bookkeeping; bigger molecules carry more.
    (evaluate's graph of a batch of 1024, a constant ~20 MB that varies by a few, is left out:
    its batches come from the same layout.)"""
    sizes = {}
    for n in (25_000, 100_000):
        make_db(n, kinds=("H2O",), forces=True).save(tmp_path / f"w{n}.h5")
        sizes[n] = geometry_bytes(np.full(n, 3), 4).sum() / 2**20
    small, large = _peak(tmp_path / "w25000.h5", 1.0), _peak(tmp_path / "w100000.h5", 1.0)
    unbounded = _peak(tmp_path / "w100000.h5", 1000.0)
    assert small["cached"] == large["cached"] < 25_000 and unbounded["cached"] == 100_000
    assert large["peak_mb"] - large["before_mb"] < 1.0 + 60.0, large
    assert large["peak_mb"] - small["peak_mb"] < 10.0, (small, large)
    assert unbounded["peak_mb"] - large["peak_mb"] > 0.5 * sizes[100_000], (large, unbounded)


# ------------------------------------------------------------------------------ torchrun

_RANK = """
import json, os, sys
import torch
torch.set_num_threads(1)
from levelup.model.ani import ANIModel
from levelup.train.loop import TrainConfig, fit
from levelup.train.streaming_forces import StreamedGeometries
# windows of 12 molecules, blocks of 4, as fit lays the file out
StreamedGeometries.__init__.__kwdefaults__.update(window_atoms=60, block=4)
model = ANIModel(["H", "C", "O"], hidden=(16, 8), seed=0)
history = fit(model, sys.argv[1], property="morse", progress=False, config=TrainConfig(
    max_epochs=3, force_weight=0.1, cache_memory_mb=0.005, batch_size=8))
with open(sys.argv[2] + os.environ.get("RANK", "-1"), "w") as f:
    json.dump({"val": history.val_rmse, "val_forces": history.val_force_rmse,
               "train": history.train_rmse,
               "weights": [p.detach().double().sum().item() for p in model.parameters()]}, f)
"""


def test_two_processes_stream_as_one(tmp_path, db_file):
    """fit with forces from a file beyond the budget (several windows) under torchrun, two
    processes (each reads the windows itself and trains its piece of every batch), against one
    process: the same losses and weights within float32 rounding (measured 1e-8 relative)."""
    script = tmp_path / "rank.py"
    script.write_text(_RANK)
    out = str(tmp_path / "out")
    subprocess.run([sys.executable, str(script), str(db_file), out], check=True, timeout=120,
                   capture_output=True)
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node", "2", str(script), str(db_file), out],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    one, *ranks = (json.loads(Path(out + r).read_text()) for r in ("-1", "0", "1"))
    assert ranks[0] == ranks[1]
    for key in ("val", "val_forces", "train", "weights"):
        assert ranks[0][key] == pytest.approx(one[key], rel=1e-5, abs=1e-6), key
