"""MLatom's tutorial, run unchanged (but for the import) through levelup.compat.mlatom."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import levelup.compat.mlatom as ml
from levelup import ConfigError

# The tutorial's script itself runs through this layer in tests/test_examples.py
# (test_notebook_and_script_give_the_same_numbers: labels, accuracy against MLatom's
# figures, frozen layers), beside the notebook, so the whole tutorial runs twice in the suite,
# not three times.


def small_db():
    xyz = np.zeros((20, 2, 3))
    xyz[:, 1, 2] = np.linspace(0.6, 2.0, 20)
    db = ml.molecular_database.from_numpy(coordinates=xyz, species=np.ones((20, 2), int))
    db.add_scalar_properties(-1.0 + 0.1 * (xyz[:, 1, 2] - 0.8) ** 2, "E")
    return db


def test_database_behaves_like_mlatom():
    db = small_db()
    assert len(db) == 20 and db.xyz_coordinates.shape == (20, 2, 3)
    sub = db[::5]
    assert len(sub) == 4 and sub[0] in db and db[1] not in sub
    rebuilt = ml.molecular_database([m for m in db if m not in sub])
    assert len(rebuilt) == 16
    np.testing.assert_allclose(rebuilt.get_properties("E")[0], db.get_properties("E")[1])
    assert db[3].E == pytest.approx(db.get_properties("E")[3])


def test_fix_layers_maps_sequential_positions(tmp_path):
    ani = ml.models.ani(model_file=str(tmp_path / "m.pt"), verbose=False,
                        hyperparameters={"max_epochs": 2})
    db = small_db()
    ani.train(molecular_database=db, property_to_learn="E")
    assert (tmp_path / "m.pt").exists()
    ani.fix_layers([[0, 6]])
    frozen = [n for n, p in ani.model.named_parameters() if not p.requires_grad]
    assert frozen == ["networks.H.0.weight", "networks.H.0.bias", "networks.H.6.weight",
                      "networks.H.6.bias"]
    with pytest.raises(ConfigError, match="not Linear layers"):
        ani.fix_layers([[1]])
    with pytest.raises(ConfigError, match="unknown hyperparameters"):
        ani.train(molecular_database=db, property_to_learn="E", hyperparameters={"foo": 1})
    ani.energy_shifter.self_energies = None
    assert ani.energy_shifter.self_energies is None
    reloaded = ml.models.ani(model_file=str(tmp_path / "m.pt"))
    reloaded.predict(molecular_database=db, property_to_predict="P")
    ani.predict(molecular_database=db, property_to_predict="Q")
    np.testing.assert_array_equal(db.get_properties("P"), db.get_properties("Q"))


def test_train_uses_mlatoms_recipe_seeded_by_torch(tmp_path, monkeypatch):
    """ani.train maps onto MLatom's recipe (TrainConfig.mlatom with the user's hyperparameters on
    top, biases by plain SGD) and, like MLatom, takes its random choices from torch's global
    generator: the same torch.manual_seed gives the same model."""
    import levelup.train.loop

    seen = []
    fit = levelup.train.loop.fit

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return fit(*args, **kwargs)

    monkeypatch.setattr(levelup.train.loop, "fit", spy)
    db = small_db()
    models = []
    for seed in (5, 5, 6):
        torch.manual_seed(seed)
        ani = ml.models.ani(model_file=str(tmp_path / f"m{len(models)}.pt"), verbose=False)
        ani.train(molecular_database=db, property_to_learn="E",
                  hyperparameters={"learning_rate": 5e-4, "max_epochs": 2})
        models.append(ani.model.state_dict())
    config = seen[0]["config"]
    assert (config.batch_size, config.learning_rate, config.ema_decay, config.max_epochs) == \
        (8, 5e-4, 0.0, 2)
    groups = seen[0]["param_groups"]
    sgd = [p for g in groups if g.get("sgd") for p in g["params"]]
    assert len(sgd) == 4 and all(p.dim() == 1 for p in sgd)  # the four biases of H
    assert seen[0]["config"].seed == seen[1]["config"].seed != seen[2]["config"].seed
    key = "networks.H.2.weight"
    assert torch.equal(models[0][key], models[1][key])
    assert not torch.equal(models[0][key], models[2][key])


def test_new_model_is_built_as_mlatom_builds_one():
    """A new ani model has MLatom 3.25's networks: 160-128-96 for every element and torch's
    nn.Linear initialisation (uniform biases within 1/sqrt(fan_in)), drawn from torch's global
    generator."""
    torch.manual_seed(3)
    a = ml.new_model([1, 8])
    torch.manual_seed(3)
    b = ml.new_model([1, 8])
    for sym in ("H", "O"):
        linears = [m for m in a.networks[sym] if isinstance(m, torch.nn.Linear)]
        assert [m.out_features for m in linears] == [160, 128, 96, 1]
        for m in linears:
            bound = 1 / m.in_features ** 0.5
            assert 0 < m.bias.abs().max() <= bound
            assert m.weight.abs().max() <= bound
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                  b.state_dict().values(), strict=True))
