"""levelup's transfer recipe: ForceAnchor, polish, finetune."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from levelup import ConfigError
from levelup.model.ani import ANIModel, Ensemble
from levelup.study.tutorial import h2_scan, tutorial_split
from levelup.train.loop import TrainConfig, fit
from levelup.transfer.gradient import TransferRecipe, polish
from levelup.transfer.priors import ForceAnchor
from levelup.transfer.recipe import finetune


def two_levels():
    db = h2_scan()[::5]
    r = db.distance(0, 1)
    db.set("low", -1.0 + 0.2 * (r - 0.75) ** 2 / (1 + r))
    db.set("high", db.get("low") - 0.05 - 0.02 * r)
    return db


def pretrained_model(db):
    model = ANIModel(["H"], hidden=(16, 8), seed=0)
    fit(model, db, property="low", progress=False,
        config=TrainConfig(max_epochs=200, batch_size=32, learning_rate=1e-2))
    return model


def test_force_anchor_is_zero_at_start_and_grows_with_change():
    db = two_levels()
    model = pretrained_model(db)
    anchor = ForceAnchor(model, db, strength=1.0, batch_size=16)
    assert float(anchor(model).detach()) == pytest.approx(0.0, abs=1e-12)
    with torch.no_grad():
        model.networks["H"][0].weight.mul_(1.1)
    value = anchor(model)
    assert float(value.detach()) > 0
    value.backward()  # differentiable with respect to the weights
    assert model.networks["H"][0].weight.grad is not None
    with pytest.raises(ConfigError):
        ForceAnchor(model, db, strength=-1.0)


def test_polish_fits_a_few_points_closely():
    db = two_levels()
    model = pretrained_model(db)
    few = db[::10]
    before = np.sqrt(np.mean((model.predict(few).energies - few.get("high")) ** 2)) * 627.5
    after = polish(model, few, property="high", iterations=100)
    assert after < 0.1 * before


def test_finetune_leaves_the_pretrained_model_alone_and_beats_it():
    db = two_levels()
    model = pretrained_model(db)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    train, val = db[1::9], db[::20]
    tuned, history = finetune(model, train, val, property="high", anchors=db, progress=False,
                              recipe=TransferRecipe(epochs=100, polish_iterations=50))
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k])
    err = tuned.predict(db).energies - db.get("high")
    base = model.predict(db).energies - db.get("high")
    assert np.sqrt(np.mean(err**2)) < 0.25 * np.sqrt(np.mean(base**2))
    assert len(history.epoch) == 100


def test_recipe_validation():
    with pytest.raises(ConfigError, match="self_energies"):
        TransferRecipe(self_energies="guess")
    with pytest.raises(ConfigError, match="level"):
        TransferRecipe(self_energies="atoms")


def test_tutorial_split():
    train, val = tutorial_split(h2_scan())
    np.testing.assert_allclose(train.distance(0, 1), [0.9, 1.3, 1.7, 2.1, 2.5, 2.9, 3.3, 3.7,
                                                      4.1, 4.9], atol=1e-9)
    np.testing.assert_allclose(val.distance(0, 1), [0.5, 4.5], atol=1e-9)


def test_finetune_an_ensemble_tunes_each_member_with_its_own_seed():
    db = two_levels()
    members = [pretrained_model(db)]
    members.append(ANIModel(["H"], hidden=(16, 8), seed=1))
    fit(members[1], db, property="low", progress=False,
        config=TrainConfig(max_epochs=200, batch_size=32, learning_rate=1e-2, seed=1))
    ensemble = Ensemble(members)
    state = {k: v.clone() for k, v in ensemble.state_dict().items()}
    train, val = db[1::9], db[::20]
    recipe = TransferRecipe(epochs=40, polish_iterations=20, anchor_batch=8, seed=3)
    tuned, histories = finetune(ensemble, train, val, property="high", anchors=db,
                                recipe=recipe, progress=False)
    assert isinstance(tuned, Ensemble) and len(tuned) == 2
    assert len(histories) == 2 and all(len(h.epoch) == 40 for h in histories)
    for k, v in ensemble.state_dict().items():  # the pre-trained ensemble is left alone
        assert torch.equal(v, state[k])
    # member k is exactly what finetune makes of that member alone with seed 3 + k
    for k, member in enumerate(members):
        alone, _ = finetune(member, train, val, property="high", anchors=db, progress=False,
                            recipe=TransferRecipe(epochs=40, polish_iterations=20, anchor_batch=8,
                                                  seed=3 + k))
        for (name, a), b in zip(alone.state_dict().items(), tuned.members[k].state_dict().values(),
                                strict=True):
            assert torch.equal(a, b), name
    pred = tuned.predict(db)
    err = pred.energies - db.get("high")
    base = ensemble.predict(db).energies - db.get("high")
    assert np.sqrt(np.mean(err**2)) < 0.25 * np.sqrt(np.mean(base**2))
    assert np.all(pred.energies_std > 0)  # the members differ



def test_force_anchor_recipe_is_the_earlier_default():
    old = TransferRecipe.force_anchor()
    assert (old.smoothness, old.polish_smoothness, old.learning_rate) == (0.0, 0.0, 1e-3)
    assert old.anchor_strength == TransferRecipe().anchor_strength
    assert TransferRecipe.force_anchor(seed=3).seed == 3
    assert TransferRecipe().smoothness > 0
