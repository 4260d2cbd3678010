"""Transfer-learning toolkit: freeze/unfreeze, reinitialise, add layers, per-layer rates, L2-SP,
self-energy refit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from levelup import ConfigError
from levelup.data import Database
from levelup.model.ani import ANIModel, Ensemble
from levelup.study.tutorial import h2_scan
from levelup.train.loop import TrainConfig, fit
from levelup.transfer.priors import L2SP, ForceAnchor, SmoothCorrection, internal_directions
from levelup.transfer.selfenergies import refit_self_energies, set_self_energies
from levelup.transfer.surgery import (
    add_layer,
    freeze,
    frozen_parameters,
    linear_positions,
    parameter_groups,
    reinitialize,
    replace_output,
    unfreeze,
)
from levelup.units import HARTREE_TO_KCALMOL


def small_model(seed=0, elements=("H",)):
    return ANIModel(list(elements), hidden=(8, 6, 4), seed=seed)


def h2_data(n=40):
    db = h2_scan()[::451 // n]
    r = db.distance(0, 1)
    db.set("E", -1.0 + 0.1 * (r - 1.0) ** 2)
    return db


def water_and_h2(n=12, seed=0):
    rng = np.random.default_rng(seed)
    base = np.array([[0.0, 0.0, 0.117], [0.0, 0.757, -0.467], [0.0, -0.757, -0.467]])
    w = Database.from_numpy(coordinates=base + rng.normal(scale=0.03, size=(n, 3, 3)),
                            species=["O", "H", "H"])
    return Database.concatenate([w, h2_scan()[::40]])


def test_freeze_by_linear_position_and_element():
    model = small_model(elements=("H", "O"))
    freeze(model, [0, -1])
    names = frozen_parameters(model)
    assert "networks.H.0.weight" in names and "networks.H.6.bias" in names
    assert "networks.O.0.weight" in names and "networks.H.2.weight" not in names
    unfreeze(model)
    assert frozen_parameters(model) == []
    freeze(model, 1, elements="O")
    assert frozen_parameters(model) == ["networks.O.2.weight", "networks.O.2.bias"]
    with pytest.raises(ConfigError, match="Linear layer 4 does not exist"):
        freeze(model, 4)
    with pytest.raises(ConfigError, match="no network for"):
        freeze(model, 0, elements="C")


def test_frozen_parameters_bit_identical_through_fit():
    model = small_model()
    db = h2_data()
    fit(model, db, property="E", config=TrainConfig(max_epochs=3, seed=0), progress=False)
    freeze(model, [0, 2])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model, db, property="E", config=TrainConfig(max_epochs=5, seed=1, learning_rate=1e-2),
        progress=False)
    after = model.state_dict()
    for name in ("networks.H.0.weight", "networks.H.0.bias", "networks.H.4.weight"):
        assert torch.equal(before[name], after[name]), name
    assert not torch.equal(before["networks.H.2.weight"], after["networks.H.2.weight"])


def test_reinitialize_and_replace_output():
    model = small_model()
    w0 = model.networks["H"][0].weight.clone()
    out = model.networks["H"][6].weight.clone()
    replace_output(model, seed=3)
    assert torch.equal(model.networks["H"][0].weight, w0)
    assert not torch.equal(model.networks["H"][6].weight, out)
    reinitialize(model, 0, seed=3)
    assert not torch.equal(model.networks["H"][0].weight, w0)
    assert torch.count_nonzero(model.networks["H"][0].bias) == 0


def test_add_layer_then_train_it():
    model = small_model()
    db = h2_data()
    out_before = model.networks["H"][6].weight.clone()
    add_layer(model, 4, seed=1)  # same width as the output's input: output weights kept
    net = model.networks["H"]
    assert len(linear_positions(net)) == 5
    assert torch.equal(net[8].weight, out_before)
    new = net[6].weight.clone()
    fit(model, db, property="E", config=TrainConfig(max_epochs=5, learning_rate=1e-2),
        progress=False)
    assert not torch.equal(model.networks["H"][6].weight, new)  # the added layer trained
    add_layer(model, 7, before=1)  # a different width rebuilds the next layer
    assert model.networks["H"][2].out_features == 7
    assert model.networks["H"][4].in_features == 7
    assert np.isfinite(model.predict(db).energies).all()
    with pytest.raises(ConfigError):
        add_layer(model, 3, before=0)


def test_parameter_groups_scale_rates():
    model = small_model()
    freeze(model, 1)
    groups = parameter_groups(model, 1e-3, {0: 0.1, -1: 2.0})
    rates = sorted((round(g["lr"], 12), len(g["params"])) for g in groups)
    assert rates == [(1e-4, 2), (1e-3, 2), (2e-3, 2)]


def test_l2sp_pulls_toward_pretrained():
    db = h2_data()
    model = small_model()
    fit(model, db, property="E", config=TrainConfig(max_epochs=5), progress=False)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    other = h2_data()
    other.set("E", other.get("E") + 0.05 * other.distance(0, 1))  # a different level

    def drift(strength):
        m = small_model()
        m.load_state_dict(start)
        penalty = L2SP(m, strength) if strength else None
        fit(m, other, property="E", penalty=penalty, progress=False,
            config=TrainConfig(max_epochs=30, learning_rate=1e-2, seed=0))
        return sum(float((m.state_dict()[k] - start[k]).pow(2).sum())
                   for k in start if "networks" in k)

    free, pulled = drift(0.0), drift(1e4)
    assert pulled < 0.5 * free
    assert float(L2SP(model, 1.0)(model).detach()) == 0.0


def test_refit_self_energies_exact_on_linear_data():
    db = water_and_h2()
    model = ANIModel(["H", "O"], hidden=(8, 4), seed=0)
    truth = np.array([-0.5, -75.0])
    network = model.predict(db).energies - 0.0  # self energies start at zero
    counts = np.stack([(db.species == z).sum(1) for z in (1, 8)], axis=1)
    db.set("E", network + counts @ truth)
    values = refit_self_energies(model, db, "E")
    np.testing.assert_allclose(values, truth, atol=1e-9)
    np.testing.assert_allclose(model.predict(db).energies, db.get("E"), atol=1e-9)


def test_refit_warns_when_undetermined():
    base = np.array([[0.0, 0.0, 0.117], [0.0, 0.757, -0.467], [0.0, -0.757, -0.467]])
    water = Database.from_numpy(coordinates=np.stack([base] * 3), species=["O", "H", "H"])
    water.set("E", [-76.0, -76.0, -76.0])
    model = ANIModel(["H", "O"], hidden=(4,), seed=0)
    with pytest.warns(UserWarning, match="determine"):
        refit_self_energies(model, water, "E")


def test_set_self_energies_on_ensemble():
    ens = Ensemble([small_model(0), small_model(1)])
    set_self_energies(ens, {"H": -0.5})
    assert all(float(m.self_energies[0]) == -0.5 for m in ens.members)
    freeze(ens, 0)
    assert all(not m.networks["H"][0].weight.requires_grad for m in ens.members)


def test_refit_keeps_elements_absent_from_data():
    model = ANIModel(["H", "C", "O"], hidden=(4,), seed=0, self_energies=[-0.6, -38.0, -75.0])
    db = water_and_h2()[:12]  # water only: no carbon
    db.set("E", model.predict(db).energies + 0.01)
    with pytest.warns(UserWarning):  # water alone cannot separate H from O
        values = refit_self_energies(model, db, "E")
    assert values[1] == -38.0
    np.testing.assert_allclose(model.predict(db).energies, db.get("E"), atol=1e-9)


class _PlusCorrection(torch.nn.Module):
    """``model`` plus an analytic correction of the H2 bond length r: ``c1 r + c2 r^2``
    (Hartree, r in Angstrom)."""

    def __init__(self, model, c1=0.0, c2=0.0):
        super().__init__()
        self.model, self.c1, self.c2 = model, c1, c2

    def forward(self, species, xyz):
        r = (xyz[:, 1] - xyz[:, 0]).norm(dim=-1)
        return self.model(species, xyz) + self.c1 * r + self.c2 * r**2


def test_internal_directions_neither_translate_nor_rotate():
    db = Database.concatenate([h2_scan()[::100], Database.from_numpy(
        np.array([[[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]]]), [8, 1, 1])])
    model = ANIModel(["H", "O"], hidden=(8, 4), seed=0)
    species = model.species_index(db.species)
    xyz = torch.from_numpy(np.array(db.coordinates))
    real = (species >= 0).unsqueeze(-1)
    u = internal_directions(xyz, real, torch.Generator().manual_seed(0))
    assert torch.allclose(u.pow(2).sum((1, 2)), torch.ones(len(db), dtype=u.dtype))
    assert torch.all(u[~real.expand_as(u)] == 0)  # padding atoms stay put
    assert torch.allclose(u.sum(1), torch.zeros(len(db), 3, dtype=u.dtype), atol=1e-12)
    com = (xyz * real).sum(1, keepdim=True) / real.sum(1, keepdim=True)
    angular = torch.cross((xyz - com) * real, u, dim=-1).sum(1)
    assert torch.allclose(angular, torch.zeros_like(angular), atol=1e-12)
    # H2: the only internal motion is the stretch
    bond = xyz[:-1, 1] - xyz[:-1, 0]
    along = ((u[:-1, 1] - u[:-1, 0]) * bond).sum(-1).abs() / bond.norm(dim=-1)
    assert torch.allclose(along, torch.full_like(along, 2**0.5))


def test_smooth_correction_measures_curvature_of_the_change_only():
    db = h2_data(20)
    model = small_model().double()
    penalty = SmoothCorrection(model, db, strength=2.0, step=0.01, batch_size=8)
    assert float(penalty(model).detach()) == pytest.approx(0.0, abs=1e-12)
    # a constant shift (new self energies) or a change linear in r has no curvature ...
    set_self_energies(model, [-0.7])
    assert float(penalty(model).detach()) == pytest.approx(0.0, abs=1e-12)
    assert float(penalty(_PlusCorrection(model, c1=0.05)).detach()) == pytest.approx(0.0, abs=1e-9)
    assert float(ForceAnchor(model, db, strength=2.0)(_PlusCorrection(model, c1=0.05)).detach()) > 1.0
    # ... a quadratic one has: curvature 2 c2; along the unit stretch (r changes by sqrt(2) h)
    # the forces on both atoms change by 2 c2 sqrt(2) h each: |change|^2 / h^2 = 16 c2^2
    c2 = 0.01
    value = penalty(_PlusCorrection(model, c2=c2)).detach()
    assert float(value) == pytest.approx(2.0 * 16 * (c2 * HARTREE_TO_KCALMOL) ** 2, rel=1e-6)
    fixed = penalty.fixed()
    assert float(fixed(_PlusCorrection(model, c2=c2)).detach()) == pytest.approx(float(value), rel=1e-6)
    with pytest.raises(ConfigError):
        SmoothCorrection(model, db, strength=-1.0)
    with pytest.raises(ConfigError):
        SmoothCorrection(model, db, strength=1.0, step=0.0)
