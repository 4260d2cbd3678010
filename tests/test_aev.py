"""AEV: agreement with TorchANI, invariances, cutoffs, edge cases."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import torch

from levelup.model.aev import AEVComputer, AEVParams, NoNeighbourWarning, _neighbour_pairs


@pytest.fixture(scope="module")
def ref(reference_dir):
    with np.load(reference_dir / "aev_torchani.npz") as f:
        return {k: f[k] for k in f.files}


def _aev(species, xyz, n_species=4, params=None, dtype=torch.float64):
    comp = AEVComputer(params or AEVParams.ani1x(), n_species)
    comp.warn_isolated = False
    return comp(torch.as_tensor(species), torch.as_tensor(xyz, dtype=dtype))


def _rotation(seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


@pytest.mark.parametrize("prefix,n_species", [("h", 1), ("hcno", 4)])
def test_equals_torchani_reference(ref, prefix, n_species):
    out = _aev(ref[f"{prefix}_species"], ref[f"{prefix}_coordinates"], n_species).numpy()
    expected = ref[f"{prefix}_aev"]
    assert out.shape == expected.shape
    assert np.abs(out - expected).max() < 1e-6
    # the presets hold TorchANI's float32 constants, so agreement is to rounding, not 1e-7
    assert np.abs(out - expected).max() < 1e-12


def test_lengths_and_presets():
    assert AEVParams.ani1x().length(4) == 384
    assert AEVParams.ani2x().length(7) == 1008
    assert AEVComputer(AEVParams.ani2x(), 7).aev_length == 1008
    p = AEVParams.ani2x()
    assert (p.Rcr, p.Rca) == (5.1, 3.5)
    assert np.allclose(p.ShfR, 0.8 + 0.26875 * np.arange(16), atol=1e-6)
    assert np.allclose(p.ShfA, 0.8 + 0.3375 * np.arange(8), atol=1e-6)
    assert np.allclose(p.ShfZ, math.pi / 8 + np.arange(4) * math.pi / 4, atol=1e-6)
    assert np.allclose([p.EtaR[0], p.EtaA[0], p.Zeta[0]], [19.7, 12.5, 14.1], atol=1e-5)
    assert AEVParams.from_dict(AEVParams.ani2x().to_dict()) == AEVParams.ani2x()
    with pytest.raises(ValueError, match="unknown AEV parameters"):
        AEVParams.from_dict({"Rc": 5.0})


def test_rotation_translation_permutation(ref):
    species = ref["hcno_species"]
    xyz = ref["hcno_coordinates"]
    base = _aev(species, xyz).numpy()
    rot = _rotation(3)
    moved = np.where((species >= 0)[..., None], xyz @ rot.T + np.array([1.5, -2.0, 0.7]), 0.0)
    assert np.abs(_aev(species, moved).numpy() - base).max() < 1e-10
    # swap two like atoms (hydrogens 1 and 2 of molecule 3): their AEV rows swap, others stay
    perm = np.arange(species.shape[1])
    perm[[1, 2]] = [2, 1]
    sp_p, xyz_p = species[3:4, perm], xyz[3:4, perm]
    out_p = _aev(sp_p, xyz_p).numpy()[0]
    assert np.abs(out_p - base[3][perm]).max() < 1e-12


def test_zero_beyond_cutoffs():
    p = AEVParams.ani1x()
    # two atoms just beyond the radial cutoff: exactly zero
    xyz = np.array([[[0.0, 0.0, 0.0], [0.0, 0.0, p.Rcr + 1e-9]]])
    assert (_aev([[0, 1]], xyz).numpy() == 0).all()
    # three atoms whose pairs are all between Rca and Rcr: radial part only, angular exactly zero
    d = 4.0
    tri = np.array([[[0, 0, 0], [d, 0, 0], [d / 2, d * math.sqrt(3) / 2, 0]]], dtype=float)
    out = _aev([[0, 0, 0]], tri).numpy()[0]
    comp = AEVComputer(p, 4)
    assert (out[:, : comp.radial_length] > 0).any()
    assert (out[:, comp.radial_length:] == 0).all()
    # continuity: just inside the cutoff the AEV is tiny
    xyz[0, 1, 2] = p.Rcr - 1e-4
    assert 0 < np.abs(_aev([[0, 1]], xyz).numpy()).max() < 1e-8


def test_h2_and_isolated_atom_finite_with_warning():
    comp = AEVComputer(AEVParams.ani1x(), 1)
    species = torch.tensor([[0, 0], [0, -1], [0, 0]])
    xyz = torch.tensor([[[0, 0, 0], [0, 0, 0.74]], [[0, 0, 0], [0, 0, 0]], [[0, 0, 0], [0, 0, 6.0]]],
                       dtype=torch.float64, requires_grad=True)
    with pytest.warns(NoNeighbourWarning, match="3 atom"):
        out = comp(species, xyz)
    assert torch.isfinite(out).all()
    assert (out[1:] == 0).all()
    (grad,) = torch.autograd.grad(out.sum(), xyz, create_graph=True)
    assert torch.isfinite(grad).all()
    (grad2,) = torch.autograd.grad(grad.pow(2).sum(), xyz)
    assert torch.isfinite(grad2).all()
    # no warning when every atom has a neighbour
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        comp(species[:1], xyz[:1].detach())


def test_linear_molecule_and_padding_gradients_finite():
    # collinear H-H-H: cos = -1 at the middle atom, where acos has an infinite slope without 0.95
    species = torch.tensor([[0, 0, 0, -1]])
    xyz = torch.tensor([[[0, 0, 0], [0, 0, 0.9], [0, 0, 1.8], [0, 0, 0]]], dtype=torch.float64,
                       requires_grad=True)
    comp = AEVComputer(AEVParams.ani1x(), 1)
    out = comp(species, xyz)
    (grad,) = torch.autograd.grad(out.sum(), xyz)
    assert torch.isfinite(grad).all() and (grad[0, 3] == 0).all()


def test_float32_close_to_float64(ref):
    a64 = _aev(ref["hcno_species"], ref["hcno_coordinates"]).numpy()
    a32 = _aev(ref["hcno_species"], ref["hcno_coordinates"], dtype=torch.float32).numpy()
    assert a32.dtype == np.float32
    assert np.abs(a32 - a64).max() < 1e-5


def test_ani2x_seven_elements_invariant():
    rng = np.random.default_rng(0)
    species = np.array([[0, 1, 2, 3, 4, 5, 6, 0]])
    xyz = rng.uniform(-1.5, 1.5, size=(1, 8, 3))
    out = _aev(species, xyz, 7, AEVParams.ani2x()).numpy()
    assert out.shape == (1, 8, 1008) and np.isfinite(out).all()
    moved = xyz @ _rotation(1).T - 3.0
    assert np.abs(_aev(species, moved, 7, AEVParams.ani2x()).numpy() - out).max() < 1e-10


def test_neighbour_pairs_brute_force():
    centre = torch.tensor([3, 1, 3, 3, 7, 1, 3, 9])
    c, e1, e2 = _neighbour_pairs(centre)
    got = sorted((int(a), *sorted((int(x), int(y)))) for a, x, y in zip(c, e1, e2, strict=True))
    want = sorted((int(centre[x]), x, y) for x, y in itertools.combinations(range(8), 2)
                  if centre[x] == centre[y])
    assert got == want
    empty = _neighbour_pairs(torch.tensor([0, 1, 2]))
    assert all(t.numel() == 0 for t in empty)


def test_bad_input_shapes():
    comp = AEVComputer(AEVParams.ani1x(), 1)
    with pytest.raises(ValueError, match="expects species"):
        comp(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="out of range"):
        comp(torch.ones(1, 2, dtype=torch.long), torch.zeros(1, 2, 3))
