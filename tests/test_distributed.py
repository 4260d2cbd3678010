"""Training on several processes (levelup.train.distributed): two CPU processes launched by
torchrun on loopback (gloo) against one process with the same settings.

Why the tolerances hold: both split the training set into the same global batches in the same
order, and the two ranks' gradients, each scaled by its share of the batch, sum to the batch's
gradient; so every optimizer step is the one-process step up to the order of float32 additions
(relative 1e-7 per gradient). Over the 8 and 4 epochs trained here that shows as validation
losses within 1e-5 relative (measured: 6e-7 and 2e-7) and final energies within 1e-3 kcal/mol
(measured: 5e-5 and 9e-5) of models 30 kcal/mol from their targets. A wrong combination is far
outside: the plain mean of the ranks' gradients (what DDP does) moved the energies by 4 and 16
kcal/mol. An ensemble spread over the ranks trains each member alone with its own seed, so it
equals the one-process ensemble exactly; the ranks end with bit-identical weights.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import distributed_worker as worker
import numpy as np
import pytest
import torch

from levelup.errors import ConfigError
from levelup.model.files import load_model
from levelup.train.distributed import Group, process_group

WORKER = Path(worker.__file__)
LAUNCH = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def _launch(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """torchrun with two processes on this machine (a free port chosen by --standalone)."""
    run = subprocess.run(LAUNCH + args, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> tuple[Path, list[dict]]:
    """Every run of distributed_worker.py in two processes: (folder, each rank's results)."""
    out = tmp_path_factory.mktemp("distributed")
    _launch([str(WORKER), str(out)], out)
    return out, [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]


def test_ranks_end_with_identical_weights(ranks):
    _, (r0, r1) = ranks
    for run in ("energy", "forces", "ensemble"):
        assert r0[run].keys() == r1[run].keys()
        for name, value in r0[run].items():
            assert torch.equal(value, r1[run][name]), (run, name)
    for key in ("val_loss", "train_rmse", "lr", "best_epoch", "stop_reason"):  # not the clock
        assert r0["energy_history"][key] == r1["energy_history"][key]


def test_only_rank0_writes_the_checkpoint(ranks):
    out, _ = ranks
    assert (out / "ckpt0").stat().st_size > 0
    assert not (out / "ckpt1").exists()  # rank 1 was given its own path and wrote nothing


@pytest.mark.parametrize("run, seed, molecules", [("energy", 0, 58), ("forces", 1, 40)])
def test_two_processes_train_as_one(ranks, run, seed, molecules):
    """Energy-only (cached AEVs, a penalty, a last batch that leaves rank 1 empty) and energies
    with forces (batches within size groups): same losses and models as one process."""
    _, (r0, _) = ranks
    model, history = worker.energy_run() if run == "energy" else worker.force_run()
    theirs = r0["energy_history" if run == "energy" else "force_history"]
    assert theirs["epoch"] == history["epoch"] and theirs["best_epoch"] == history["best_epoch"]
    np.testing.assert_allclose(theirs["val_loss"], history["val_loss"], rtol=1e-5)
    np.testing.assert_allclose(theirs["train_rmse"], history["train_rmse"], rtol=1e-5)
    other = worker.small_model(seed)
    other.load_state_dict(r0[run])
    db = worker.morse_db(molecules, seed=seed)
    ours, two = model.predict(db).energies, other.predict(db).energies
    assert np.abs(two - ours).max() * 627.509 < 1e-3
    assert np.abs(ours - db.get("morse")).max() * 627.509 > 1.0  # a model still learning


def test_an_ensemble_spread_over_processes_equals_one_process(ranks):
    _, (r0, _) = ranks
    ensemble = worker.ensemble_run()
    before = worker.small_model(1).state_dict()
    moved = False
    for name, value in ensemble.state_dict().items():
        assert torch.equal(value, r0["ensemble"][name]), name
        if name.startswith("members.1.") and name[10:] in before and value.is_floating_point():
            moved |= not torch.equal(value, before[name[10:]])
    assert moved and len(ensemble.members) == 3  # member 1 was fine-tuned on rank 1


def test_levelup_train_under_torchrun(tmp_path):
    """Rank 0 prints and writes the model and history; rank 1 prints nothing; the model is the
    one-process model."""
    from levelup.cli.main import main

    worker.morse_db(50).save(tmp_path / "db.h5")
    flags = ["db.h5", "--property", "morse", "--epochs", "3", "--batch-size", "8", "--seed", "1"]
    _launch(["--log-dir", "logs", "--redirects", "3", "-m", "levelup.cli.main", "train",
             *flags, "-o", "two.pt"], tmp_path)
    logs = {int(p.parent.name): p.read_text() for p in (tmp_path / "logs").rglob("stdout.log")}
    assert "two.pt: trained 3 epochs" in logs[0] and logs[1] == ""
    assert (tmp_path / "two.pt.history.json").exists()
    assert main(["-q", "train", *[str(tmp_path / f) if f == "db.h5" else f for f in flags],
                 "-o", str(tmp_path / "one.pt")]) == 0
    db = worker.morse_db(50)
    one, two = (load_model(tmp_path / f).predict(db).energies for f in ("one.pt", "two.pt"))
    assert np.abs(one - two).max() * 627.509 < 1e-3


def test_pieces_of_the_batches_make_the_one_process_batches():
    order = np.random.default_rng(0).permutation(46)
    groups = [Group(r, 3, torch.device("cpu")) for r in range(3)]
    assert [g.piece_bounds(7) for g in groups] == [(0, 3), (3, 5), (5, 7)]
    orders = [g.epoch_order(order, 7) for g in groups]
    assert orders[0][1] == [7] * 6 + [4]
    shares = [stop - start for start, stop in (g.piece_bounds(7) for g in groups)]
    for k in range(7):  # batch k: the ranks' k-th pieces (their shares), in rank order
        pieces = [mine[k * share:(k + 1) * share]
                  for share, (mine, _) in zip(shares, orders, strict=True)]
        assert np.array_equal(np.concatenate(pieces), order[7 * k:7 * k + 7])
    assert len(orders[2][0]) == 6 * 2  # the last batch of 4 leaves rank 2 nothing
    assert sorted(np.concatenate([g.shard(5) for g in groups])) == list(range(5))


def test_one_process_without_torchrun(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert process_group() is None
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ConfigError, match="WORLD_SIZE='two'"):
        process_group()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(ConfigError, match="launch with torchrun|Launch with torchrun"):
        process_group()
