"""The default transfer recipe: output layers by one linear solve, strengths by k-fold CV."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from levelup.data import Database
from levelup.errors import ConfigError, DataError
from levelup.model.ani import ANIModel
from levelup.transfer.linear import (
    LinearChoice,
    cross_validate,
    cv_partitions,
    design,
    fold_indices,
    linear_transfer,
)
from levelup.transfer.outputlayer import add_to_parameters, feature_derivatives, features, parameters
from levelup.transfer.recipe import LinearRecipe, finetune, recipe

SMALL = LinearRecipe(anchor=(0.0, 1e-3), smoothness=(0.0, 1e-4), ridge=(1e-4, 1e-2),
                     force_weight=(0.3, 3.0), anchor_geometries=8)


def _water(n: int, seed: int) -> Database:
    rng = np.random.default_rng(seed)
    r1, r2 = rng.uniform(0.85, 1.2, n), rng.uniform(0.85, 1.2, n)
    angle = np.radians(rng.uniform(90, 125, n))
    xyz = np.zeros((n, 3, 3))
    xyz[:, 1, 0] = r1
    xyz[:, 2, 0], xyz[:, 2, 1] = r2 * np.cos(angle), r2 * np.sin(angle)
    return Database.from_numpy(coordinates=xyz, species=[8, 1, 1])


def _model(seed: int = 0) -> ANIModel:
    return ANIModel(["H", "O"], hidden=(16, 8), seed=seed, self_energies=[-0.5, -75.0])


def _target(model: ANIModel, seed: int = 1) -> ANIModel:
    """``model`` with other output weights and self energies: a correction the linear recipe
    can represent exactly."""
    target = copy.deepcopy(model)
    change = torch.from_numpy(np.random.default_rng(seed).normal(0, 0.01, len(parameters(model))))
    add_to_parameters(target, change)
    return target


def _label(db: Database, model: ANIModel, forces: bool = False) -> Database:
    pred = model.predict(db, forces=forces)
    db.set("high", pred.energies)
    if forces:
        db.set("forces/high", pred.forces)
    return db


def test_feature_derivatives_match_finite_differences():
    model, db = _model(), _water(3, 0)
    species = model.species_index(db.species)
    xyz = torch.from_numpy(np.array(db.coordinates))
    d = feature_derivatives(model, species, xyz)
    h = 1e-3
    for k in (0, 4, 8):
        step = torch.zeros_like(xyz)
        step[:, k // 3, k % 3] = h
        fd = (features(model, species, xyz + step) - features(model, species, xyz - step)) / (2 * h)
        assert torch.allclose(d[:, k], fd, atol=2e-3 * fd.abs().max())


def test_recovers_a_correction_it_can_represent_from_energies():
    model, anchors = _model(), _water(40, 1)
    target = _target(model)
    points = _label(_water(24, 2), target)
    tuned, choice = linear_transfer(model, points, property="high", anchors=anchors,
                                    recipe=SMALL)
    test = _water(50, 3)
    err = np.abs(tuned.predict(test).energies - target.predict(test).energies).max() * 627.5
    before = np.abs(model.predict(test).energies - target.predict(test).energies).max() * 627.5
    assert err < 0.05 * before and isinstance(choice, LinearChoice)
    assert choice.points == 24 and choice.folds == 5 and choice.cv_rmse < 0.1 * before
    assert len(choice.grid) == 8 and choice.force_points == 0
    # only the output layers (and, for their biases, the self energies) change
    for name in ("H", "O"):
        for k in (0, 2):
            assert torch.equal(tuned.networks[name][k].weight, model.networks[name][k].weight)
        assert torch.equal(tuned.networks[name][-1].bias, model.networks[name][-1].bias)
    assert not torch.equal(tuned.self_energies, model.self_energies)


def test_forces_it_fits_are_minus_the_gradient_of_the_energy_it_learned():
    model, anchors = _model(), _water(40, 4)
    target = _target(model, seed=5)
    points = _label(_water(6, 6), target, forces=True)
    tuned, choice = linear_transfer(model, points, property="high", forces="forces/high",
                                    anchors=anchors, recipe=SMALL)
    assert choice.force_points == 6 and choice.force_weight in (0.3, 3.0)
    # the fitted forces are the learned surface's: central differences of its energy
    probe = _water(2, 7)
    forces = tuned.predict(probe, forces=True).forces
    xyz, h = np.array(probe.coordinates), 1e-3
    for atom, axis in ((0, 0), (1, 1), (2, 0)):
        plus, minus = xyz.copy(), xyz.copy()
        plus[:, atom, axis] += h
        minus[:, atom, axis] -= h
        e = [tuned.predict(Database.from_numpy(coordinates=c, species=[8, 1, 1])).energies
             for c in (plus, minus)]
        assert np.allclose(-(e[0] - e[1]) / (2 * h), forces[:, atom, axis], atol=2e-4)
    # and they are the target's: 6 geometries with forces fix what 6 energies could not
    energies_only, _ = linear_transfer(model, points, property="high", anchors=anchors,
                                       recipe=SMALL)
    test = _water(50, 8)
    ref = target.predict(test, forces=True)

    def force_error(m):
        return np.sqrt(np.mean((m.predict(test, forces=True).forces - ref.forces) ** 2))

    assert force_error(tuned) < 0.3 * force_error(energies_only)


def test_choice_is_deterministic_with_a_seed():
    model, anchors = _model(), _water(30, 9)
    points = _label(_water(15, 10), _target(model, seed=2))
    points.set("high", np.asarray(points.get("high"))
               + np.random.default_rng(0).normal(0, 1e-3, len(points)))  # noisy: CV matters
    one = linear_transfer(model, points, property="high", anchors=anchors, recipe=SMALL)
    two = linear_transfer(model, points, property="high", anchors=anchors, recipe=SMALL)
    assert one[1].grid == two[1].grid and one[1].cv_rmse == two[1].cv_rmse
    assert torch.equal(parameters(one[0]), parameters(two[0]))
    assert [list(f) for f in fold_indices(15, 5, 0)] == [list(f) for f in fold_indices(15, 5, 0)]
    assert [list(f) for f in fold_indices(15, 5, 0)] != [list(f) for f in fold_indices(15, 5, 1)]


def test_cross_validation_never_sees_the_held_out_fold():
    """The held-out predictions of a fold do not move when that fold's energies change (nor do
    they depend on anything fitted to them before the folds are split), in every repeat."""
    model, anchors = _model(), _water(30, 11)
    points = _label(_water(15, 12), _target(model, seed=3))
    one_setting = LinearRecipe(anchor=(1e-3,), smoothness=(1e-4,), ridge=(1e-2,),
                               anchor_geometries=8, repeats=2)
    base = design(model, points, "high", None, anchors, one_setting)
    _, _, _, pred = cross_validate(base, one_setting)
    partitions = cv_partitions(15, one_setting)
    assert len(partitions) == 2 and pred.shape == (2, 15)
    for k, parts in enumerate(partitions):
        assert sorted(np.concatenate(parts)) == list(range(15))
        for held in parts:
            moved = copy.deepcopy(points)
            energies = np.asarray(moved.get("high")).copy()
            energies[held] += 0.05  # 31 kcal/mol
            moved.set("high", energies)
            problem = design(model, moved, "high", None, anchors, one_setting)
            _, _, _, again = cross_validate(problem, one_setting)
            assert np.allclose(again[k, held], pred[k, held], rtol=0, atol=1e-12)
            others = np.setdiff1d(np.arange(15), held)
            assert not np.allclose(again[k, others], pred[k, others], atol=1e-6)


def test_finetune_defaults_to_it_and_tunes_each_ensemble_member():
    from levelup.model.ani import Ensemble

    model, anchors = _model(), _water(20, 13)
    points = _label(_water(10, 14), _target(model))
    tuned, choice = finetune(model, points[:8], points[8:], property="high", anchors=anchors,
                             recipe=SMALL)
    assert isinstance(choice, LinearChoice) and choice.points == 10  # validation joins the CV
    pair, choices = finetune(Ensemble([model, _model(1)]), points, property="high",
                             anchors=anchors, recipe=SMALL)
    assert isinstance(pair, Ensemble) and len(choices) == 2
    assert isinstance(recipe("linear"), LinearRecipe)
    with pytest.raises(ConfigError, match="unknown transfer recipe"):
        recipe("best")
    with pytest.raises(ConfigError, match="needs the linear or gp recipe"):
        finetune(model, points, property="high", recipe=recipe("plain"), forces="forces/high")


def test_bad_input_is_a_clear_error():
    model = _model()
    points = _label(_water(2, 15), model)
    with pytest.raises(DataError, match="at least 3 high-level energies"):
        linear_transfer(model, points, property="high")
    with pytest.raises(DataError, match="no property 'CCSD'"):
        linear_transfer(model, points, property="CCSD")
    points = _label(_water(5, 15), model)
    with pytest.raises(DataError, match="no per-atom property 'forces/high'"):
        linear_transfer(model, points, property="high", forces="forces/high")
    with pytest.raises(ConfigError, match="folds must be >= 2 and repeats >= 1"):
        LinearRecipe(folds=1)
    with pytest.raises(ConfigError, match="ridge must be a non-empty tuple"):
        LinearRecipe(ridge=())


def test_choice_round_trips_through_json(tmp_path):
    model, anchors = _model(), _water(20, 16)
    _, choice = linear_transfer(model, _label(_water(8, 17), _target(model)), property="high",
                                anchors=anchors, recipe=SMALL)
    choice.save(tmp_path / "choice.json")
    import json

    back = LinearChoice.from_dict(json.loads((tmp_path / "choice.json").read_text()))
    assert back == choice and "chose anchor" in back.summary()


def test_auto_recipe_keeps_the_candidate_that_cross_validates_better():
    from levelup.transfer.auto import AutoChoice, AutoRecipe
    from levelup.transfer.gradient import TransferRecipe

    model, anchors = _model(), _water(20, 18)
    points = _label(_water(12, 19), _target(model, seed=4))  # exactly linear-representable
    few_epochs = TransferRecipe.plain(epochs=30, polish_iterations=0)
    auto = AutoRecipe(candidates=(SMALL, few_epochs), folds=3)
    tuned, choice = finetune(model, points, property="high", anchors=anchors, recipe=auto)
    assert isinstance(choice, AutoChoice) and set(choice.cv_rmse) == {"linear", "gradient"}
    assert choice.recipe == "linear" and choice.cv_rmse["linear"] < choice.cv_rmse["gradient"]
    assert "auto: chose linear by 3-fold CV over 12 points" in choice.summary()
    again = finetune(model, points, property="high", anchors=anchors, recipe=auto)[1]
    assert again.cv_rmse == choice.cv_rmse  # deterministic with the seed
    test = _water(30, 20)
    assert (np.abs(tuned.predict(test).energies - _target(model, seed=4).predict(test).energies)
            .max() < np.abs(model.predict(test).energies
                            - _target(model, seed=4).predict(test).energies).max())
    with pytest.raises(ConfigError, match="AutoRecipe.candidates"):
        AutoRecipe(candidates=("auto",))
