"""fit(), TrainConfig, History, checkpoints and the cached training layout (levelup.train.loop,
levelup.train.batching, levelup.train.checkpoint).

Synthetic labels: a Morse pair potential (closed form, with analytic forces) on small random
molecules, so that every test trains for a few epochs in well under a second or two.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from levelup.data import Database
from levelup.errors import ConfigError, DataError
from levelup.model.ani import ANIModel
from levelup.train.batching import CachedEnergies, trainable_split
from levelup.train.history import History
from levelup.train.loop import TrainConfig, fit, torchani_groups
from levelup.train.optim import AveragedAdamW, plateau

SMALL = (16, 8)  # hidden widths of the test networks: fast, still an MLP
SELF = {1: -0.5, 6: -37.8, 8: -75.0}


def morse(species: np.ndarray, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Energies (Hartree) and forces (Hartree/Angstrom) of a Morse pair potential plus self
    energies, for padded (N, A) species / (N, A, 3) coordinates."""
    n, a = species.shape
    energies = np.array([sum(SELF[int(z)] for z in row if z) for row in species], dtype=float)
    forces = np.zeros_like(xyz)
    for i in range(a):
        for j in range(i + 1, a):
            real = (species[:, i] > 0) & (species[:, j] > 0)
            vec = xyz[:, j] - xyz[:, i]
            r = np.linalg.norm(vec, axis=-1)
            x = np.exp(-1.8 * (r - 1.1))
            e = 0.15 * (1 - x) ** 2 - 0.15
            de_dr = 0.15 * 2 * (1 - x) * 1.8 * x
            energies += np.where(real, e, 0.0)
            g = (de_dr / np.where(real, r, 1.0))[:, None] * vec * real[:, None]
            forces[:, i] += g
            forces[:, j] -= g
    return energies, forces


def make_db(n: int = 60, seed: int = 0, kinds=("H2", "H2O", "CH4"), forces: bool = False
            ) -> Database:
    rng = np.random.default_rng(seed)
    shapes = {
        "H2": ([1, 1], [[0, 0, 0], [0, 0, 0.74]]),
        "H2O": ([8, 1, 1], [[0, 0, 0.12], [0, 0.76, -0.47], [0, -0.76, -0.47]]),
        "CH4": ([6, 1, 1, 1, 1], [[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63],
                                  [-0.63, 0.63, -0.63], [0.63, -0.63, -0.63]]),
    }
    width = max(len(shapes[k][0]) for k in kinds)
    species = np.zeros((n, width), dtype=int)
    xyz = np.zeros((n, width, 3))
    for m in range(n):
        z, r = shapes[kinds[m % len(kinds)]]
        species[m, :len(z)] = z
        xyz[m, :len(z)] = np.array(r) + rng.normal(scale=0.08, size=(len(z), 3))
    db = Database(species, xyz)
    energies, f = morse(species, xyz)
    db.set("morse", energies)
    if forces:
        db.set("forces/morse", f)
    return db


def small_model(elements=("H", "C", "O"), seed: int = 0) -> ANIModel:
    return ANIModel(list(elements), hidden=SMALL, seed=seed)


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def rmse_kcal(model: ANIModel, db: Database, prop: str = "morse") -> float:
    return float(np.sqrt(np.mean((model.predict(db).energies - db.get(prop)) ** 2)) * 627.509474)


# ------------------------------------------------------------------------ TrainConfig


def test_config_defaults_and_the_mlatom_recipe():
    c = TrainConfig()
    assert (c.lr_factor, c.lr_patience, c.lr_floor, c.lr_threshold) == (0.5, 64, 1e-5, 0.0)
    assert c.validation_fraction == 0.2 and c.force_weight == 0.0
    assert TrainConfig.from_dict(c.to_dict()) == c
    m = TrainConfig.mlatom(seed=3)
    assert (m.batch_size, m.learning_rate, m.ema_decay, m.seed) == (8, 1e-3, 0.0, 3)
    assert (m.weight_decay, m.hidden_weight_decay) == (1e-2, (1e-5, 1e-6))


def test_config_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict({"learnin_rate": 1e-4})
    assert "learnin_rate" in str(err.value) and "learning_rate" in str(err.value)
    assert "batch_size" in str(err.value)


@pytest.mark.parametrize("bad", [{"batch_size": 0}, {"lr_factor": 1.5}, {"learning_rate": -1},
                                 {"validation_fraction": 1.0}, {"batch_size": "8"},
                                 {"batch_size": 8.5}, {"resume": True}, {"lr_floor": 0.1}])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ConfigError):
        TrainConfig.from_dict(bad)


@pytest.mark.parametrize("field, value, words", [
    ("learning_rate", math.inf, "learning_rate (--learning-rate, --lr) must be a finite number > 0"),
    ("learning_rate", math.nan, "> 0; got nan"), ("learning_rate", 0.0, "> 0; got 0.0"),
    ("weight_decay", math.nan, "weight_decay (--weight-decay) must be a finite number >= 0"),
    ("weight_decay", math.inf, ">= 0; got inf"), ("force_weight", -1.0, ">= 0; got -1.0"),
    ("hidden_weight_decay", (1e-5, math.nan), "hidden_weight_decay (--hidden-weight-decay)"),
    ("ema_decay", 1.0, "in [0, 1); got 1.0"), ("lr_factor", math.nan, "in (0, 1); got nan"),
    ("lr_threshold", -0.1, "in [0, 1)"), ("lr_floor", math.inf, "lr_floor (--lr-floor)"),
    ("validation_fraction", math.nan, "validation_fraction (--validation-fraction)"),
    ("batch_size", -4, "batch_size (--batch-size) must be an integer >= 1; got -4"),
    ("max_epochs", 0, "max_epochs (--max-epochs, --epochs) must be an integer >= 1; got 0"),
    ("lr_patience", -1, "lr_patience (--lr-patience) must be an integer >= 0"),
    ("checkpoint_every", 0, "checkpoint_every (--checkpoint-every)"),
    ("seed", -1, "seed (--seed) must be an integer in [0, 2**63); got -1"),
])
def test_config_every_number_finite_and_in_range(field, value, words):
    """Checked when the config is made, from the constructor and from a dict: nothing trains
    (or fails writing JSON) on a NaN or infinite setting."""
    for make in (lambda: TrainConfig(**{field: value}),
                 lambda: TrainConfig.from_dict({field: list(value) if isinstance(value, tuple)
                                                else value})):
        with pytest.raises(ConfigError) as err:
            make()
        assert words in str(err.value)


def test_config_from_toml(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text('[train]\nbatch_size = 32\nlearning_rate = 5e-4\n'
                    'hidden_weight_decay = [0, 0]\ncheckpoint = "run.ckpt"\n')
    c = TrainConfig.from_toml(path, table="train")
    assert c.batch_size == 32 and c.learning_rate == 5e-4 and c.hidden_weight_decay == (0, 0)
    assert c.checkpoint == "run.ckpt"
    path.write_text("batch_size = 32\nepochs = 3\n")
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig.from_toml(path)


# ------------------------------------------------------------------------ optimizer


@pytest.mark.parametrize("fused", [None, False])  # torch's fused kernel, or "foreach"
@pytest.mark.parametrize("bias_lr", [1e-2, 3e-3])  # one rate or several
def test_averaged_adamw_is_torch_adamw(bias_lr, fused):
    torch.manual_seed(0)
    nets = [torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.CELU(0.1), torch.nn.Linear(7, 1))
            for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    mine, ref = nets
    x = torch.randn(11, 5)
    flat = AveragedAdamW([([mine[0].weight, mine[2].weight], 1e-2, 0.01),
                          ([mine[0].bias], 1e-2, 0.0), ([mine[2].bias], bias_lr, 0.0)],
                         fused=fused)
    torch_opt = torch.optim.AdamW([{"params": [ref[0].weight, ref[2].weight]},
                                   {"params": [ref[0].bias], "weight_decay": 0.0},
                                   {"params": [ref[2].bias], "weight_decay": 0.0, "lr": bias_lr}],
                                  lr=1e-2, weight_decay=0.01)
    for step in range(30):
        if step == 15:
            flat.set_scale(0.5)
            for group in torch_opt.param_groups:
                group["lr"] *= 0.5
        flat.zero_grad()
        mine(x).pow(2).sum().backward()
        flat.step()
        torch_opt.zero_grad()
        ref(x).pow(2).sum().backward()
        torch_opt.step()
    for a, b in zip(mine.parameters(), ref.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5)
    flat.release()
    assert all(p.grad is None for p in mine.parameters())


def test_handwritten_gradients_equal_autograd():
    """levelup.train.backprop's loss and gradients equal autograd's on the same batch: mixed
    compositions, a frozen middle layer, and an element absent from a batch."""
    db = make_db(12, kinds=("H2O", "CH4", "H2O", "H2O"))
    model = small_model()
    model.set_self_energies(SELF)
    model.networks["H"][2].requires_grad_(False)
    species = model.species_index(db.species)
    xyz = torch.from_numpy(db.coordinates).float()
    residual = torch.from_numpy(np.array(db.get("morse"))) - model.self_energy_sum(species)
    data = CachedEnergies(model, species, xyz, residual)
    assert data.handwritten
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.full_like(p, 7.0)  # stale values must be overwritten
    order = np.array([0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11])  # 2 batches without carbon
    data.shuffle(order, batch_size=3)
    for start, stop in data.batches():
        loss, sq = data.loss_and_gradients(start, stop, 627.5)
        mine = [p.grad.clone() for p in params]
        target, w = data.batch_targets(start, stop)
        diff = (data.energies(start, stop) - target) * 627.5
        ref_loss = (diff * diff * w).mean()
        ref = torch.autograd.grad(ref_loss, params, allow_unused=True, materialize_grads=True)
        assert torch.allclose(loss, ref_loss, rtol=1e-5)
        assert torch.allclose(sq, (diff * diff).sum(), rtol=1e-5)
        for a, b in zip(mine, ref, strict=True):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()) + 1e-12)


def test_moving_average():
    p = torch.nn.Parameter(torch.zeros(2))
    opt = AveragedAdamW([([p], 0.1, 0.0)], ema_decay=0.5)
    values = []
    for _ in range(3):
        p.grad.fill_(-1.0)  # Adam's first steps move each weight by about +lr
        opt.step()
        values.append(p.detach().clone())
    expected = torch.zeros(2)
    for t, v in enumerate(values, start=1):
        decay = min(0.5, (1 + t) / (10 + t))
        expected = decay * expected + (1 - decay) * v
    with opt.averaged():
        assert torch.allclose(p.detach(), expected)
    assert torch.equal(p.detach(), values[-1])


def test_sgd_group_is_plain_sgd_beside_adamw():
    """A group marked "sgd" steps p -= lr * grad (no decay, no moments); the AdamW group next to
    it matches torch's AdamW."""
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    b = torch.nn.Parameter(torch.tensor([0.5]))
    w_ref = torch.nn.Parameter(w.detach().clone())
    ref = torch.optim.AdamW([w_ref], lr=0.1, weight_decay=0.01)
    opt = AveragedAdamW([([w], 0.1, 0.01), ([b], 0.2, 0.3, "sgd")])
    expected_b = 0.5
    for g in (0.3, -1.0, 2.0):
        w.grad.fill_(g)
        b.grad.fill_(g)
        w_ref.grad = torch.full_like(w_ref, g)
        opt.step()
        ref.step()
        expected_b -= 0.2 * g
    assert torch.allclose(w.detach(), w_ref.detach(), atol=1e-6)
    assert b.item() == pytest.approx(expected_b, abs=1e-6)
    opt.set_scale(0.5)
    b.grad.fill_(1.0)
    opt.step()
    assert b.item() == pytest.approx(expected_b - 0.1, abs=1e-6)


def test_torchani_groups_step_biases_by_sgd_in_hartree_units():
    """fit with torchani_groups: one step moves each bias by -rate * dL/db with L the loss in
    Hartree^2 (TorchANI's and MLatom's plain SGD); the weights go to AdamW."""
    import copy

    db = make_db(12)
    model = small_model()
    model.set_self_energies(SELF)
    start = copy.deepcopy(model)
    groups = torchani_groups(model)
    weight_ids = {id(p) for p in groups[0]["params"]}
    assert all(n.endswith("weight") for n, p in model.named_parameters() if id(p) in weight_ids)
    assert groups[1]["sgd"] and all(p.dim() == 1 for p in groups[1]["params"])
    rate = 1e-3
    fit(model, db, db, property="morse", progress=False, param_groups=groups,
        config=TrainConfig.mlatom(max_epochs=1, batch_size=len(db), learning_rate=rate))
    species = start.species_index(db.species)
    pred = start(species, torch.from_numpy(db.coordinates).float())
    ref = torch.from_numpy(np.array(db.get("morse")))
    n_atoms = torch.from_numpy((db.species > 0).sum(1)).double()
    loss = ((pred - ref) ** 2 / n_atoms.sqrt()).mean()  # Hartree^2
    names = [n for n, _ in start.named_parameters() if n.endswith("bias")]
    grads = torch.autograd.grad(loss, [dict(start.named_parameters())[n] for n in names])
    after = dict(model.named_parameters())
    for name, g in zip(names, grads, strict=True):
        expected = dict(start.named_parameters())[name].detach() - rate * g.float()
        assert torch.allclose(after[name].detach(), expected, rtol=1e-4, atol=1e-7), name
    assert not torch.equal(after["networks.H.0.weight"], start.networks["H"][0].weight)


def test_checkpoints_of_the_former_optimizer_are_refused(tmp_path):
    """Layout 1 held FlatAdamW's flat state, which torch's AdamW cannot continue from."""
    import io

    from levelup.train.checkpoint import load_checkpoint

    buffer = io.BytesIO()
    torch.save({"levelup_checkpoint": 1, "model": {}}, buffer)
    (tmp_path / "old.pt").write_bytes(buffer.getvalue())
    with pytest.raises(ConfigError, match="older levelup .* delete it to train afresh"):
        load_checkpoint(tmp_path / "old.pt")


def test_plateau_schedule():
    p = torch.nn.Parameter(torch.zeros(3))
    q = torch.nn.Parameter(torch.zeros(1))
    opt = AveragedAdamW([([p], 1.0, 0.0), ([q], 0.25, 0.0, "sgd")])
    schedule = plateau(opt, factor=0.5, patience=2)
    for loss in (3.0, 2.0, 2.0, 2.5, 2.0):  # 3 epochs without improvement > patience 2
        schedule.step(loss)
    assert opt.scale == 0.5 and schedule.num_bad_epochs == 0
    schedule.step(1.0)
    assert schedule.best == 1.0 and opt.scale == 0.5
    q.grad.fill_(1.0)
    opt.step()  # the SGD group follows the schedule too
    assert q.item() == pytest.approx(-0.125)


# ------------------------------------------------------------------------ cached layout


def test_cached_energies_equal_the_model():
    """The per-element flat rows (with and without a frozen, cached first layer) give the same
    energies as the model itself, for mixed sizes and compositions, in any order."""
    db = make_db(30)
    model = small_model()
    model.set_self_energies(SELF)
    species = model.species_index(db.species)
    xyz = torch.from_numpy(db.coordinates).float()
    with torch.no_grad():
        expected = model(species, xyz) - model.self_energy_sum(species)
    residual = torch.zeros(len(db), dtype=torch.float64)
    for frozen in (False, True):
        for net in model.networks.values():
            net[0].requires_grad_(not frozen)
        assert trainable_split(model.networks["H"]) == (2 if frozen else 0)
        data = CachedEnergies(model, species, xyz, residual)
        order = np.random.default_rng(1).permutation(len(db))
        data.shuffle(order, batch_size=7)
        with torch.no_grad():
            got = torch.cat([data.energies(a, b) for a, b in data.batches()])
        assert torch.allclose(got.double(), expected[order], atol=1e-5)


# ------------------------------------------------------------------------ fit


def test_fit_learns_and_records_history(tmp_path):
    db = make_db(90)
    model = small_model()
    before = rmse_kcal(model, db) if not math.isnan(model.self_energies[0]) else math.inf
    history = fit(model, db, property="morse", progress=False,
                  config=TrainConfig(max_epochs=25, batch_size=16, learning_rate=3e-3))
    assert history.epoch == list(range(1, 26)) and history.stop_reason == "max_epochs"
    assert len(history.val_rmse) == len(history.train_rmse) == len(history.lr) == 25
    assert all(math.isnan(x) for x in history.val_force_rmse)
    assert history.val_rmse[-1] < history.val_rmse[0]
    assert rmse_kcal(model, db) < before
    # the self energies were fitted (the model was built without any)
    assert (model.self_energies != 0).all()
    # best validation weights restored
    assert history.val_rmse[history.best_epoch - 1] == min(history.val_rmse)
    path = tmp_path / "history.json"
    history.save(path)
    back = History.load(path)
    assert back.val_rmse == history.val_rmse and back.best_epoch == history.best_epoch


def test_same_seed_same_result_other_seed_differs():
    db = make_db(40)
    results = []
    for seed in (3, 3, 4):
        model = small_model(seed=0)
        fit(model, db, property="morse", progress=False,
            config=TrainConfig(max_epochs=4, seed=seed, batch_size=8))
        results.append(state(model))
    assert all(torch.equal(results[0][k], results[1][k]) for k in results[0])
    assert not all(torch.equal(results[0][k], results[2][k]) for k in results[0])


def test_frozen_parameters_stay_bit_identical():
    """Layers 0 and -1 frozen (the tutorial's fix_layers([[0, 6]])): they do not move by a bit,
    weight decay included; the others train."""
    db = make_db(40)
    model = small_model()
    model.set_self_energies(SELF)
    for net in model.networks.values():
        net[0].requires_grad_(False)
        net[4].requires_grad_(False)
    before = state(model)
    fit(model, db, property="morse", progress=False,
        config=TrainConfig(max_epochs=5, weight_decay=0.5, learning_rate=1e-2))
    after = state(model)
    for name in before:
        moved = not torch.equal(before[name], after[name])
        frozen = ".0." in name or ".4." in name
        if name.startswith("networks.") and name.split(".")[1] in ("H", "C", "O"):
            assert moved != frozen, name
    assert torch.equal(before["self_energies"], after["self_energies"])


def test_resume_gives_the_uninterrupted_result(tmp_path):
    db = make_db(40)
    config = TrainConfig(max_epochs=8, batch_size=8, checkpoint=str(tmp_path / "run.ckpt"),
                         checkpoint_every=3, resume=True, lr_patience=1)
    straight = small_model()
    h_straight = fit(straight, db, property="morse", progress=False,
                     config=TrainConfig(max_epochs=8, batch_size=8, lr_patience=1))

    class Interrupt(Exception):
        pass

    def crash(epoch, history, model):
        if epoch == 7:  # after the checkpoint of epoch 6
            raise Interrupt

    broken = small_model()
    with pytest.raises(Interrupt):
        fit(broken, db, property="morse", progress=False, config=config, callback=crash)
    resumed = small_model(seed=99)  # different start: everything comes from the checkpoint
    h_resumed = fit(resumed, db, property="morse", progress=False, config=config)
    assert h_resumed.epoch == h_straight.epoch
    assert h_resumed.val_rmse == h_straight.val_rmse and h_resumed.lr == h_straight.lr
    assert h_resumed.best_epoch == h_straight.best_epoch
    for k, v in state(straight).items():
        assert torch.equal(v, state(resumed)[k]), k
    # a checkpoint of another run is refused
    with pytest.raises(ConfigError, match="another run"):
        fit(small_model(), make_db(41), property="morse", progress=False, config=config)


def test_stops_at_the_learning_rate_floor():
    db = make_db(30)
    history = fit(small_model(), db, property="morse", progress=False,
                  config=TrainConfig(max_epochs=500, lr_patience=0, lr_factor=0.1, lr_floor=2e-6,
                                     learning_rate=1e-3))
    assert history.stop_reason == "lr_floor" and len(history.epoch) < 500
    assert min(history.lr) >= 2e-6


def test_forces_training(tmp_path):
    db = make_db(30, kinds=("H2O", "CH4"), forces=True)
    model = small_model()
    model.set_self_energies(SELF)
    history = fit(model, db, property="morse", progress=False,
                  config=TrainConfig(max_epochs=6, force_weight=0.1, learning_rate=3e-3))
    assert all(np.isfinite(history.val_force_rmse)) and all(np.isfinite(history.train_force_rmse))
    assert history.val_loss[-1] < history.val_loss[0]
    with pytest.raises(DataError, match="forces/nothing"):
        fit(model, db, property="morse", forces="forces/nothing", progress=False,
            config=TrainConfig(max_epochs=1, force_weight=1.0))


def test_explicit_validation_missing_labels_and_hooks():
    db = make_db(40)
    energies = db.get("morse").copy()
    energies[:5] = np.nan
    db.set("morse", energies)
    val = make_db(10, seed=5)
    model = small_model()
    calls = []

    def penalty(m):
        calls.append(1)
        return 0.0 * m.networks["H"][0].weight.sum()

    last = [p for n, p in model.named_parameters() if n.endswith(".4.weight")]
    before = state(model)
    with pytest.warns(UserWarning, match="5 of 40"):
        history = fit(model, db, val, property="morse", progress=False, penalty=penalty,
                      param_groups=[{"params": last, "lr": 1e-2}],
                      config=TrainConfig(max_epochs=2, batch_size=16))
    assert len(calls) == 2 * math.ceil(35 / 16)
    after = state(model)
    for name in before:
        if name.startswith("networks."):
            assert (name.endswith(".4.weight")) != torch.equal(before[name], after[name]), name
    assert history.epoch == [1, 2]


def test_no_validation_fraction_zero_and_errors():
    db = make_db(20)
    history = fit(small_model(), db, property="morse", progress=False,
                  config=TrainConfig(max_epochs=2, validation_fraction=0.0))
    assert all(math.isnan(v) for v in history.val_rmse)
    with pytest.raises(DataError, match="no property"):
        fit(small_model(), db, property="nothing", progress=False)
    frozen = small_model()
    frozen.requires_grad_(False)
    with pytest.raises(ConfigError, match="no trainable"):
        fit(frozen, db, property="morse", progress=False)


def test_interrupt_restores_the_best_weights_and_keeps_the_history():
    """Ctrl-C during the epochs (here raised by the callback after epoch 6): fit restores the
    best epoch's weights and raises TrainingInterrupted (a KeyboardInterrupt) carrying the
    history of the finished epochs."""
    from levelup.train.history import TrainingInterrupted

    db = make_db(30)
    model = small_model()
    states = {}

    def interrupt(epoch, history, m):
        states[epoch] = state(m)  # the weights validated at this epoch
        if epoch == 6:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted) as err:
        fit(model, db, property="morse", progress=False, callback=interrupt,
            config=TrainConfig(max_epochs=100))
    history = err.value.history
    assert isinstance(err.value, KeyboardInterrupt)
    assert history.stop_reason == "interrupted" and history.epoch == [1, 2, 3, 4, 5, 6]
    assert 1 <= history.best_epoch <= 6
    best = states[history.best_epoch]
    # the best epoch's moving average, not the raw weights of the interrupted epoch
    assert all(torch.equal(v, best[k]) for k, v in model.state_dict().items())


def test_progress_bar_runs(capsys):
    fit(small_model(), make_db(20), property="morse", progress=True,
        config=TrainConfig(max_epochs=2))
    assert "epoch" in capsys.readouterr().err


def test_warnings_are_not_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit(small_model(), make_db(20), property="morse", progress=False,
            config=TrainConfig(max_epochs=1))


# ------------------------------------------------------------------------ CLI


def test_cli_train_writes_model_and_history(tmp_path, capsys):
    import dataclasses

    from levelup.cli.main import build_parser, main
    from levelup.model.files import load_model

    db = make_db(24, kinds=("H2", "H2O"))
    db.save(tmp_path / "train.h5")
    (tmp_path / "study.toml").write_text("[train]\nbatch_size = 4\nlearning_rate = 2e-3\n")
    out = tmp_path / "model.pt"
    code = main(["-q", "train", str(tmp_path / "train.h5"), "-o", str(out), "--property", "morse",
                 "--config", str(tmp_path / "study.toml"), "--epochs", "3", "--batch-size", "6"])
    assert code == 0
    assert "trained 3 epochs" in capsys.readouterr().out
    model = load_model(out)
    assert model.elements == [1, 8]
    history = History.load(f"{out}.history.json")
    assert history.epoch == [1, 2, 3]
    # every TrainConfig field has its flag
    train_parser = build_parser()._subparsers._group_actions[0].choices["train"]
    dests = {a.dest for a in train_parser._actions}
    assert {f.name for f in dataclasses.fields(TrainConfig)} <= dests
    assert main(["train", str(tmp_path / "train.h5"), "-o", str(out), "--property", "nope"]) == 1
    assert "levelup: error: no property 'nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_h2_hf_accuracy_with_the_default_recipe(h2_labels):
    """The issue's accuracy target: trained on the tutorial's 451 HF/STO-3G energies with the
    default recipe, RMSE vs HF over all 451 points <= 0.04 kcal/mol (MLatom 3.25: 0.075 median).
    About 20 s on one core; deterministic (fixed seed, one thread)."""
    from levelup.study.tutorial import h2_scan

    db = h2_scan()
    db.set("HF/STO-3G", h2_labels["hf"])
    model = ANIModel(["H"], seed=0)
    history = fit(model, db, property="HF/STO-3G", progress=False)
    assert history.stop_reason == "lr_floor"
    assert rmse_kcal(model, db, "HF/STO-3G") <= 0.04
