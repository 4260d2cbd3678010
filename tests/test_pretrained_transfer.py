"""The transfer toolkit on the published ANI-1x ensemble (issue 7): freeze on every member,
refit self energies, fine-tune one member and every member (a loop over members with
``levelup.train.loop.fit``, and ``levelup.transfer.recipe.finetune`` on the Ensemble), delta-learning on top
of ANI-1x, the ensemble's uncertainty, and save/load of the fine-tuned ensemble.

The new level is HF/STO-3G on a few distorted water, methane and H2 molecules (labelled by
levelup.label through the session's label cache, well under a second of PySCF): cheap, and far
enough from ANI-1x's wB97X/6-31G(d) that every step has something to do. The real ANI-1x files
come from the torchani 2.2.4 wheel in levelup's cache (``make test`` fetches it once); a missing
wheel is a failure that says how to fetch it (see tests/test_pretrained.py).
"""

from __future__ import annotations

import copy
import re
import warnings

import numpy as np
import pytest
import torch

from levelup.data import Database
from levelup.model.ani import ANIModel, Ensemble
from levelup.model.files import load_metadata, load_model
from levelup.model.published.catalog import pretrained, wheel_path
from levelup.model.selfenergies import SelfEnergyWarning
from levelup.qm import label
from levelup.train.loop import TrainConfig, fit
from levelup.transfer.delta import DeltaModel, fit_delta
from levelup.transfer.gradient import TransferRecipe
from levelup.transfer.recipe import finetune
from levelup.transfer.selfenergies import refit_self_energies
from levelup.transfer.surgery import freeze, frozen_parameters
from levelup.units import HARTREE_TO_KCALMOL

LEVEL = "HF/STO-3G"
FROZEN = (0, -1)  # first and output Linear layers, as in MLatom's tutorial


def water(r1: float, r2: float, degrees: float) -> np.ndarray:
    """O, H, H coordinates (3, 3), Angstrom, with bond lengths r1, r2 and the HOH angle."""
    theta = np.radians(degrees)
    return np.array([[0.0, 0, 0], [r1, 0, 0], [r2 * np.cos(theta), r2 * np.sin(theta), 0]])


METHANE = np.array([[0.0, 0, 0], [0.629, 0.629, 0.629], [-0.629, -0.629, 0.629],
                    [-0.629, 0.629, -0.629], [0.629, -0.629, -0.629]])


def rmse_kcal(pred: np.ndarray, ref: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred - ref) ** 2)) * HARTREE_TO_KCALMOL)


@pytest.fixture(scope="module", autouse=True)
def _one_thread_for_module_fixtures():
    """conftest's one-thread fixture is per test, so it starts after module fixtures: the
    fine-tuning in ``tuned`` would run on all threads (ten times the CPU on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ani1x() -> Ensemble:
    """The published ensemble (float32, 8 members, H C N O); tests work on copies."""
    if not wheel_path("ani-1x").is_file():
        pytest.fail(f"the ANI-1x wheel is not in levelup's cache ({wheel_path('ani-1x')}); fetch it "
                    "once with `.venv/bin/levelup pretrained ani-1x --download-only`")
    return pretrained("ani-1x", progress=False)


@pytest.fixture(scope="module")
def data() -> tuple[Database, Database]:
    """(train, validation) near equilibrium, labelled at HF/STO-3G (Hartree): 10 water and 10
    methane geometries (random distortions, seeded) and 4 H2 bond lengths; the three
    compositions determine the H, C and O self energies. Validation: 2 water, 2 methane."""
    rng = np.random.default_rng(7)
    waters = np.array([water(*(np.array([0.958, 0.958, 104.5]) + rng.normal(0, [0.03, 0.03, 4.0])))
                       for _ in range(10)])
    methanes = METHANE + rng.normal(0, 0.04, (10, 5, 3))
    h2 = np.zeros((4, 2, 3))
    h2[:, 1, 0] = [0.68, 0.72, 0.76, 0.80]
    parts = [Database.from_numpy(waters, ["O", "H", "H"]),
             Database.from_numpy(methanes, ["C", "H", "H", "H", "H"]),
             Database.from_numpy(h2, ["H", "H"])]
    db = label(Database.concatenate(parts), LEVEL, progress=False)
    assert np.isfinite(db.get(LEVEL)).all()
    val = np.array([8, 9, 18, 19])
    return db[np.setdiff1d(np.arange(len(db)), val)], db[val]


@pytest.fixture(scope="module")
def tuned(ani1x, data) -> tuple[Ensemble, list]:
    """ANI-1x fine-tuned by ``finetune`` on the Ensemble (every member; member k with seed k),
    the first and output layers frozen, a short run of the force-anchor recipe (AdamW at 1e-3:
    15 epochs are enough to move every member). (Ensemble, the members' Histories)."""
    train, val = data
    recipe = TransferRecipe.force_anchor(frozen_layers=FROZEN, epochs=15, polish_iterations=0)
    return finetune(ani1x, train, val, property=LEVEL, recipe=recipe, progress=False)


def linear_layers(member: ANIModel, element: str) -> list[torch.nn.Linear]:
    return [m for m in member.networks[element] if isinstance(m, torch.nn.Linear)]


def test_freeze_every_member_then_fine_tune_each_in_a_loop(ani1x, data):
    train, val = data
    ens = copy.deepcopy(ani1x)
    freeze(ens, list(FROZEN))
    # 8 members x 4 elements x 2 layers x (weight, bias), and nothing else
    frozen = frozen_parameters(ens)
    assert len(frozen) == 8 * 4 * 2 * 2
    assert all(re.search(r"\.networks\.[HCNO]\.(0|6)\.(weight|bias)$", name) for name in frozen)
    refit_self_energies(ens, train, LEVEL)
    before = rmse_kcal(ens.predict(train).energies, train.get(LEVEL))
    first_member = copy.deepcopy(ens.members[0])
    histories = [fit(member, train, val, property=LEVEL, progress=False,
                     config=TrainConfig(learning_rate=1e-3, max_epochs=10, seed=k))
                 for k, member in enumerate(ens.members)]
    for k, (old, new) in enumerate(zip(ani1x.members, ens.members, strict=True)):
        for element in ("H", "C", "N", "O"):
            old_layers, new_layers = linear_layers(old, element), linear_layers(new, element)
            for position in (0, -1):  # frozen: bit-identical after training
                assert torch.equal(old_layers[position].weight, new_layers[position].weight)
                assert torch.equal(old_layers[position].bias, new_layers[position].bias)
        for element in ("H", "C", "O"):  # present in the data: the hidden layers trained
            assert not torch.equal(linear_layers(old, element)[1].weight,
                                   linear_layers(new, element)[1].weight), (k, element)
    assert all(h.train_rmse[-1] < 0.9 * h.train_rmse[0] for h in histories)
    after = rmse_kcal(Ensemble(list(ens.members)).predict(train).energies, train.get(LEVEL))
    assert after < 0.8 * before
    # members train independently: member 0 fine-tuned alone (a copy taken before the loop) is
    # the member the loop produced
    alone = first_member
    fit(alone, train, val, property=LEVEL, progress=False,
        config=TrainConfig(learning_rate=1e-3, max_epochs=10, seed=0))
    for mine, theirs in zip(alone.parameters(), ens.members[0].parameters(), strict=True):
        assert torch.equal(mine, theirs)


def test_refit_self_energies_on_the_ensemble(ani1x, data):
    train, _ = data
    ens = copy.deepcopy(ani1x)
    before = rmse_kcal(ens.predict(train).energies, train.get(LEVEL))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SelfEnergyWarning)  # H2O, CH4, H2 determine H, C, O
        refit_self_energies(ens, train, LEVEL)
    after = rmse_kcal(ens.predict(train).energies, train.get(LEVEL))
    assert before > 100 * after and after < 10  # wB97X/6-31G(d) vs HF/STO-3G: ~1 Ha per O atom
    counts = np.stack([(train.species == z).sum(1) for z in (1, 6, 8)], axis=1)  # (N, 3)
    n_index = ani1x.elements.index(7)
    for old, new in zip(ani1x.members, ens.members, strict=True):
        # networks kept, N (absent from the data) kept, H C O moved
        for a, b in zip(old.networks.parameters(), new.networks.parameters(), strict=True):
            assert torch.equal(a, b)
        assert new.self_energies[n_index] == old.self_energies[n_index]
        assert (new.self_energies - old.self_energies).abs().sum() > 1.0
        # least squares per member: the residual is orthogonal to the composition counts
        residual = train.get(LEVEL) - new.predict(train).energies
        np.testing.assert_allclose(counts.T @ residual, 0.0, atol=1e-6)


def test_finetune_one_member(ani1x, data):
    train, val = data
    member = ani1x.members[3]
    start = copy.deepcopy(member.state_dict())
    refit_only = copy.deepcopy(member)
    refit_self_energies(refit_only, train, LEVEL)
    # levelup's default recipe (whatever it is now), shortened
    model, history = finetune(member, train, val, property=LEVEL, progress=False,
                              recipe=TransferRecipe(epochs=20, polish_iterations=5))
    assert isinstance(model, ANIModel)
    assert all(torch.equal(v, member.state_dict()[k]) for k, v in start.items())  # untouched
    assert history.train_rmse[-1] < history.train_rmse[0]
    assert (rmse_kcal(model.predict(train).energies, train.get(LEVEL))
            < 0.85 * rmse_kcal(refit_only.predict(train).energies, train.get(LEVEL)))
    one = Ensemble([model]).predict(val)  # an ensemble of the one fine-tuned member predicts
    np.testing.assert_array_equal(one.energies, model.predict(val).energies)
    np.testing.assert_array_equal(one.energies_std, 0.0)


def test_finetune_every_member_of_the_ensemble(ani1x, data, tuned):
    train, val = data
    ens, histories = tuned
    assert isinstance(ens, Ensemble) and len(ens) == 8 and len(histories) == 8
    assert ens.elements == ani1x.elements and ens.aev_params == ani1x.aev_params
    assert all(h.train_rmse[-1] < 0.9 * h.train_rmse[0] for h in histories)
    refit_only = copy.deepcopy(ani1x)
    refit_self_energies(refit_only, train, LEVEL)
    pred = ens.predict(train)
    assert (rmse_kcal(pred.energies, train.get(LEVEL))
            < 0.8 * rmse_kcal(refit_only.predict(train).energies, train.get(LEVEL)))
    # the members moved apart from ANI-1x differently (own seeds, own starting weights)
    assert np.ptp(pred.member_energies, axis=0).min() > 0
    for old, new in zip(ani1x.members, ens.members, strict=True):
        assert old is not new
        for position in FROZEN:  # the recipe's frozen layers, on every member
            assert torch.equal(linear_layers(old, "O")[position].weight,
                               linear_layers(new, "O")[position].weight)
        assert not torch.equal(linear_layers(old, "O")[1].weight, linear_layers(new, "O")[1].weight)
    # a fine-tuned ensemble predicts molecules it never saw, with forces
    out = ens.predict(Database.from_numpy(water(0.97, 0.95, 106.0)[None], ["O", "H", "H"]),
                      forces=True)
    assert np.isfinite(out.energies).all() and out.forces.shape == (1, 3, 3)
    assert np.abs(out.forces).max() > 1e-3


def test_delta_learning_on_top_of_ani1x(ani1x, data):
    train, val = data
    correction = ANIModel(["H", "C", "O"], hidden=(32, 16), seed=0)
    delta, history = fit_delta(ani1x, correction, train, val, high=LEVEL, progress=False,
                               config=TrainConfig(max_epochs=150, learning_rate=2e-3))
    assert isinstance(delta, DeltaModel) and delta.base is ani1x
    base = ani1x.predict(train, forces=True)
    pred = delta.predict(train, forces=True)
    corr = correction.predict(train, forces=True)
    np.testing.assert_allclose(pred.energies, base.energies + corr.energies, rtol=0, atol=1e-9)
    np.testing.assert_allclose(pred.forces, base.forces + corr.forces, rtol=0, atol=1e-9)
    # ANI-1x alone is ~1 Hartree per heavy atom from HF/STO-3G; with the correction, a few kcal/mol
    assert rmse_kcal(base.energies, train.get(LEVEL)) > 300
    assert rmse_kcal(pred.energies, train.get(LEVEL)) < 5.0
    assert history.train_rmse[-1] < history.train_rmse[0]
    assert rmse_kcal(delta.predict(val).energies, val.get(LEVEL)) < 10.0


def distorted_waters() -> Database:
    """Water far from equilibrium: O-H 0.75 and 1.60 Angstrom, angles 60 and 170 degrees."""
    return Database.from_numpy(np.array([water(0.75, 0.958, 104.5), water(1.60, 0.958, 104.5),
                                         water(0.958, 0.958, 60.0), water(0.958, 0.958, 170.0)]),
                               ["O", "H", "H"])


def test_uncertainty_grows_away_from_the_data(ani1x, data, tuned):
    train, _ = data
    equilibrium = Database.from_numpy(water(0.958, 0.958, 104.5)[None], ["O", "H", "H"])
    far = distorted_waters()
    # as published: its members agree on equilibrium water (trained on molecules near it) and
    # disagree on strongly distorted water, which its data sampled little
    pred_eq, pred_far = ani1x.predict(equilibrium), ani1x.predict(far)
    np.testing.assert_allclose(pred_far.energies_std, pred_far.member_energies.std(0, ddof=1))
    assert pred_eq.energies_std[0] * HARTREE_TO_KCALMOL < 1.0
    assert pred_far.energies_std.min() > 3 * pred_eq.energies_std[0]
    # fine-tuned on near-equilibrium water and methane: spread at the training water geometries
    # well below the spread at the distorted ones
    ens, _ = tuned
    waters = train[train.n_atoms == 3]
    at_data = ens.predict(waters).energies_std
    away = ens.predict(far).energies_std
    assert away.min() > 2 * np.median(at_data)


def test_save_and_load_the_fine_tuned_ensemble(tuned, data, tmp_path):
    _, val = data
    ens, _ = tuned
    path = tmp_path / "ani1x-hf.pt"
    ens.save(path, metadata={"level": LEVEL, "from": "ani-1x"})
    loaded = load_model(path)
    assert isinstance(loaded, Ensemble) and len(loaded) == 8
    assert loaded.elements == ens.elements and loaded.aev_params == ens.aev_params
    assert loaded.dtype == ens.dtype
    assert load_metadata(path)["level"] == LEVEL
    for a, b in zip(ens.members, loaded.members, strict=True):
        assert torch.equal(a.self_energies, b.self_energies)
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(p, q), name
    probe = Database.concatenate([val, distorted_waters()])
    before, after = ens.predict(probe, forces=True), loaded.predict(probe, forces=True)
    np.testing.assert_array_equal(after.energies, before.energies)
    np.testing.assert_array_equal(after.energies_std, before.energies_std)
    np.testing.assert_array_equal(after.forces, before.forces)
