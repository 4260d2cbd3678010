"""ANIModel and Ensemble: energies, forces, Hessians, batching, configuration."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from levelup.data import Database
from levelup.errors import ConfigError, DataError
from levelup.model.ani import ANIModel, Ensemble

SELF = {"H": -0.6, "C": -38.1, "N": -54.6, "O": -75.2}


@pytest.fixture(scope="module")
def hcno(reference_dir):
    """The reference molecules as a Database (atomic numbers, 0 padding)."""
    with np.load(reference_dir / "aev_torchani.npz") as f:
        species, xyz, order = f["hcno_species"], f["hcno_coordinates"], f["hcno_order"]
    z = np.where(species >= 0, order[np.clip(species, 0, None)], 0)
    return Database(z, xyz)


def _model(seed=0, **kw):
    return ANIModel(["H", "C", "N", "O"], seed=seed, self_energies=SELF, **kw)


def test_architecture_and_defaults():
    m = _model(hidden={"N": (64, 32)})
    assert m.elements == [1, 6, 7, 8]
    assert set(m.networks) == {"H", "C", "N", "O"}
    sizes = {k: [net[i].out_features for i in (0, 2, 4, 6)] for k, net in m.networks.items()
             if k != "N"}
    assert sizes == {"H": [160, 128, 96, 1], "C": [144, 112, 96, 1], "O": [128, 112, 96, 1]}
    assert [layer.out_features for layer in m.networks["N"][::2]] == [64, 32, 1]
    assert isinstance(m.networks["H"][1], torch.nn.CELU) and m.networks["H"][1].alpha == 0.1
    assert m.networks["H"][0].in_features == 384
    assert m.dtype == torch.float32 and m.self_energies.dtype == torch.float64
    assert all((net[0].bias == 0).all() for net in m.networks.values())
    std = float(m.networks["H"][0].weight.detach().std())
    assert abs(std - 384 ** -0.5) < 0.1 * 384 ** -0.5  # Kaiming normal, a=1
    s = ANIModel(["S", "H"])
    assert [layer.out_features for layer in s.networks["S"][::2]] == [128, 112, 96, 1]


def test_seeded_initialisation():
    a, b, c = _model(seed=1), _model(seed=1), _model(seed=2)
    for k in a.state_dict():
        assert torch.equal(a.state_dict()[k], b.state_dict()[k])
    assert not torch.equal(a.networks["C"][2].weight, c.networks["C"][2].weight)


def test_self_energies_stay_float64():
    m = _model()
    m.float()
    m.to(torch.float16)
    assert m.self_energies.dtype == torch.float64
    assert m.self_energies[3].item() == -75.2
    m.double()
    assert m.dtype == torch.float64 and m.self_energies.dtype == torch.float64
    with pytest.raises(DataError, match="missing for O"):
        m.set_self_energies({"H": 0, "C": 0, "N": 0})


def test_species_index_and_unknown_element():
    m = _model()
    idx = m.species_index(np.array([[8, 1, 1, 0], [6, 7, 0, 0]]))
    assert idx.dtype == torch.long
    assert idx.tolist() == [[3, 0, 0, -1], [1, 2, -1, -1]]
    with pytest.raises(DataError, match="no network for S, Cl"):
        m.species_index(np.array([[1, 16, 17]]))


def test_energy_decomposition(hcno):
    m = _model().double()
    species = m.species_index(hcno.species)
    xyz = torch.as_tensor(hcno.coordinates)
    energies = m(species, xyz)
    aev = m.compute_aev(species, xyz)
    atomic = m.atomic_energies(species, aev)
    assert (atomic[species < 0] == 0).all()
    se = torch.tensor([sum(SELF["HCNO"[s]] for s in row if s >= 0) for row in species.tolist()],
                      dtype=torch.float64)
    assert torch.allclose(energies, atomic.sum(1) + se, rtol=0, atol=1e-12)
    assert torch.equal(m.energies_from_aev(species, aev), energies)


def test_far_apart_atoms_cost_their_isolated_energies():
    m = _model().double()
    xyz = np.array([[[0, 0, 0], [0, 0, 20.0]]])
    with pytest.warns(UserWarning, match="no neighbour"):
        e_pair = m.predict(Database(np.array([[1, 8]]), xyz, multiplicities=[2])).energies[0]
        e_h = m.predict(Database(np.array([[1]]), xyz[:, :1], multiplicities=[2])).energies[0]
        e_o = m.predict(Database(np.array([[8]]), xyz[:, :1], multiplicities=[3])).energies[0]
    assert abs(e_pair - (e_h + e_o)) < 1e-12


def test_predict_matches_forward_in_mixed_batches(hcno):
    m = _model()
    pred = m.predict(hcno, batch_size=2)
    species = m.species_index(hcno.species)
    with torch.no_grad():
        direct = m(species, torch.as_tensor(hcno.coordinates)).numpy()
    assert pred.energies.dtype == np.float64 and pred.energies.shape == (len(hcno),)
    assert np.abs(pred.energies - direct).max() < 1e-5  # float32 networks, different batching
    assert pred.forces is None and pred.hessians is None and pred.energies_std is None


def _displaced(db, h):
    """All +h/-h single-coordinate displacements of every molecule, as one database; returns it
    and the (molecule, atom, axis) of each pair of rows."""
    keys, rows_sp, rows_xyz = [], [], []
    for mol in range(len(db)):
        for atom in range(int(db.n_atoms[mol])):
            for axis in range(3):
                for sign in (1, -1):
                    xyz = db.coordinates[mol].copy()
                    xyz[atom, axis] += sign * h
                    rows_sp.append(db.species[mol])
                    rows_xyz.append(xyz)
                keys.append((mol, atom, axis))
    return Database(np.array(rows_sp), np.array(rows_xyz)), keys


def test_forces_are_minus_numerical_gradient(hcno):
    m = _model(seed=3).double()
    db = hcno[[3, 8]]
    pred = m.predict(db, forces=True)
    assert pred.forces.shape == (2, db.max_atoms, 3)
    h = 1e-5
    shifted, keys = _displaced(db, h)
    e = m.predict(shifted).energies.reshape(-1, 2)
    for (mol, atom, axis), (ep, em) in zip(keys, e, strict=True):
        assert abs(pred.forces[mol, atom, axis] + (ep - em) / (2 * h)) < 1e-7
    # padding atoms get zero force; forces sum to zero (translation invariance)
    assert (pred.forces[0, db.n_atoms[0]:] == 0).all()
    assert np.abs(pred.forces.sum(axis=1)).max() < 1e-10


def test_hessian_symmetric_and_matches_force_differences(hcno):
    m = _model(seed=4).double()
    db = hcno[[0, 6]]  # 3 and 4 atoms: grouped into separate batches
    pred = m.predict(db, forces=True, hessians=True)
    width = db.max_atoms
    assert pred.hessians.shape == (2, 3 * width, 3 * width)
    assert np.abs(pred.hessians - pred.hessians.transpose(0, 2, 1)).max() < 1e-10
    h = 1e-5
    shifted, keys = _displaced(db, h)
    f = m.predict(shifted, forces=True).forces.reshape(-1, 2, width * 3)
    for (mol, atom, axis), (fp, fm) in zip(keys, f, strict=True):
        n3 = 3 * int(db.n_atoms[mol])
        column = -(fp - fm)[:n3] / (2 * h)
        assert np.abs(pred.hessians[mol, :n3, 3 * atom + axis] - column).max() < 1e-6
    for mol in range(2):
        assert (pred.hessians[mol, 3 * int(db.n_atoms[mol]):] == 0).all()


def test_ensemble_mean_and_std(hcno):
    members = [_model(seed=s).double() for s in range(3)]
    ens = Ensemble(members)
    pred = ens.predict(hcno, forces=True)
    single = [m.predict(hcno, forces=True) for m in members]
    e = np.stack([p.energies for p in single])
    assert np.abs(pred.energies - e.mean(0)).max() < 1e-12
    assert np.abs(pred.energies_std - e.std(0, ddof=1)).max() < 1e-12
    assert np.abs(pred.member_energies - e).max() < 1e-12
    f = np.stack([p.forces for p in single]).mean(0)
    assert np.abs(pred.forces - f).max() < 1e-12
    assert len(ens) == 3 and ens.elements == [1, 6, 7, 8]
    with pytest.raises(DataError, match="members must agree"):
        Ensemble([_model(), ANIModel(["H"])])


def test_device_errors(hcno):
    m = _model()
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA"):
            m.predict(hcno, device="cuda")
    else:  # on a GPU machine the prediction runs there and leaves the model on the CPU
        gpu = m.predict(hcno, device="cuda").energies
        assert np.abs(gpu - m.predict(hcno).energies).max() < 1e-4
        assert m.device.type == "cpu"
    with pytest.raises(ConfigError, match="unknown device"):
        m.predict(hcno, device="abacus")


def test_from_networks_checks_inputs(hcno):
    base = _model(seed=5)
    nets = {z: base.networks[s] for z, s in zip(base.elements, base.symbols, strict=True)}
    rebuilt = ANIModel.from_networks(["H", "C", "N", "O"], nets, self_energies=SELF)
    assert np.array_equal(rebuilt.predict(hcno).energies, base.predict(hcno).energies)
    with pytest.raises(DataError, match="missing"):
        ANIModel.from_networks(["H", "C"], {"H": base.networks["H"]})
    with pytest.raises(DataError, match="takes 384 inputs"):
        ANIModel.from_networks(["H"], {"H": base.networks["H"]})  # one element: AEV of 48


def test_single_member_ensemble_and_hessian_only(hcno):
    m = _model(seed=6).double()
    pred = Ensemble([m]).predict(hcno[:2], hessians=True)
    assert (pred.energies_std == 0).all() and pred.forces is None
    assert pred.hessians.shape == (2, 3 * hcno[:2].max_atoms, 3 * hcno[:2].max_atoms)
    assert np.array_equal(pred.energies, m.predict(hcno[:2]).energies)


def test_ani2x_preset_model():
    from levelup.model.aev import AEVParams
    from levelup.model.networks import ANI2X_HIDDEN

    m = ANIModel(["H", "C", "N", "O", "S", "F", "Cl"], aev=AEVParams.ani2x(), hidden=ANI2X_HIDDEN,
                 seed=0)
    assert m.networks["Cl"][0].in_features == 1008
    assert [layer.out_features for layer in m.networks["C"][::2]] == [224, 192, 160, 1]
    db = Database(np.array([[16, 9, 17, 1]]), np.array([[[0, 0, 0], [1.6, 0, 0], [0, 2.0, 0],
                                                         [0, 0, 1.3]]]), multiplicities=[2])
    assert np.isfinite(m.predict(db, forces=True).forces).all()
