"""The GP correction transfer (levelup.transfer.gpcorrection): its closed-form posterior mean is
the textbook one, it is symmetric under exchanging like atoms, its forces are the gradient of its
energies, it reproduces the points it was given, it recovers the curvature of a known
correction from 20 geometries' energies and forces, and it refuses data it cannot use."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import levelup
from levelup.data import Database
from levelup.errors import DataError
from levelup.transfer.gpcorrection import (
    _Kernel,
    gp_transfer,
    like_atom_permutations,
)

WATER = np.array([[0.0, 0.0, 0.119], [0.0, 0.763, -0.477], [0.0, -0.763, -0.477]])
HIGH, FORCES = "high", "forces/high"


def _correction(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A known smooth correction (Hartree) and its forces: harmonic in the two O-H bonds and
    the H-H distance, symmetric in the hydrogens."""
    x = torch.tensor(xyz, requires_grad=True)
    r1 = torch.linalg.norm(x[:, 1] - x[:, 0], dim=-1)
    r2 = torch.linalg.norm(x[:, 2] - x[:, 0], dim=-1)
    r3 = torch.linalg.norm(x[:, 2] - x[:, 1], dim=-1)
    e = 0.05 * ((r1 - 0.95) ** 2 + (r2 - 0.95) ** 2) + 0.02 * (r3 - 1.5) ** 2 - 0.3
    (g,) = torch.autograd.grad(e.sum(), x)
    return e.detach().numpy(), -g.numpy()


@pytest.fixture(scope="module")
def setting():
    """A small water model (untrained networks) as the 'pre-trained' one, 20 distorted
    geometries labelled with that model plus the known correction, energies and forces."""
    model = levelup.ANIModel(["H", "O"], hidden=(16, 8), seed=0, self_energies=[-0.5, -75.0])
    rng = np.random.default_rng(0)
    xyz = WATER[None] + rng.normal(0, 0.04, (20, 3, 3))
    points = Database.from_numpy(xyz, [8, 1, 1])
    base = model.predict(points, forces=True)
    e, f = _correction(xyz)
    points.set(HIGH, base.energies + e, level="high")
    points.set(FORCES, base.forces + f, unit="Hartree/Angstrom", level="high")
    corrected, choice = gp_transfer(model, points, property=HIGH, forces=FORCES)
    return model, points, corrected, choice


def test_the_closed_form_is_the_textbook_posterior_mean(setting):
    model, points, corrected, choice = setting
    x = torch.tensor(np.asarray(points.coordinates))
    perms = torch.tensor(like_atom_permutations([8, 1, 1]))
    kernel = _Kernel(3, perms, choice.length, choice.variance)
    probe = x[:5] + 0.01
    alpha = torch.linalg.solve(
        kernel.joint(x, x) + torch.diag(torch.tensor(([1e-10] + [1e-8] * 9) * len(x))),
        _targets(model, points))
    textbook = (kernel.joint(probe, x) @ alpha).reshape(5, 10)[:, 0] + corrected.offset
    np.testing.assert_allclose(corrected.correction(probe).numpy(), textbook.numpy(),
                               rtol=1e-6, atol=1e-9)


def _targets(model, points) -> torch.Tensor:
    base = model.predict(points, forces=True)
    d_e = np.asarray(points.get(HIGH)) - base.energies
    d_f = np.asarray(points.get(FORCES)) - base.forces
    return torch.tensor(np.concatenate([np.concatenate([[e - d_e.mean()], -f.reshape(-1)])
                                        for e, f in zip(d_e, d_f, strict=True)]))


def test_symmetric_in_like_atoms_and_forces_are_the_gradient(setting):
    _, points, corrected, _ = setting
    probe = Database.from_numpy(WATER[None] + np.array([[0.0, 0.02, 0.0], [0.0, 0.03, 0.01],
                                                        [0.01, -0.02, 0.02]]), [8, 1, 1])
    swapped = Database.from_numpy(np.asarray(probe.coordinates)[:, [0, 2, 1]], [8, 1, 1])
    a, b = corrected.correction(torch.tensor(np.asarray(probe.coordinates))), \
        corrected.correction(torch.tensor(np.asarray(swapped.coordinates)))
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-12)
    # forces = -gradient: the corrected model's forces are the pre-trained model's plus minus
    # the correction's gradient, and that gradient matches central differences (float64)
    x = torch.tensor(np.asarray(probe.coordinates), requires_grad=True)
    (grad,) = torch.autograd.grad(corrected.correction(x).sum(), x)
    step, numeric = 1e-5, np.zeros((3, 3))
    for atom in range(3):
        for axis in range(3):
            shift = torch.zeros_like(x)
            shift[0, atom, axis] = step
            numeric[atom, axis] = float(corrected.correction(x.detach() + shift)[0]
                                        - corrected.correction(x.detach() - shift)[0]) / (2 * step)
    np.testing.assert_allclose(grad[0].numpy(), numeric, atol=1e-8)
    pred = corrected.predict(probe, forces=True)
    np.testing.assert_allclose(
        pred.forces, corrected.pretrained.predict(probe, forces=True).forces - grad.numpy(),
        atol=1e-6)


def test_it_reproduces_its_points_and_recovers_a_known_curvature(setting):
    model, points, corrected, choice = setting
    pred = corrected.predict(points, forces=True)
    assert np.abs(pred.energies - np.asarray(points.get(HIGH))).max() < 1e-4  # Hartree
    assert np.abs(pred.forces - np.asarray(points.get(FORCES))).max() < 1e-3
    assert choice.points == 20 and choice.permutations == 2
    centre = Database.from_numpy(WATER[None], [8, 1, 1])
    learnt = corrected.predict(centre, hessians=True).hessians[0] - \
        model.predict(centre, hessians=True).hessians[0]
    x = torch.tensor(WATER)
    truth = torch.autograd.functional.hessian(
        lambda z: torch.tensor(0.0) + _torch_correction(z), x).reshape(9, 9).numpy()
    assert np.abs(learnt - truth).max() < 0.02 * np.abs(truth).max()


def _torch_correction(x):
    r1 = torch.linalg.norm(x[1] - x[0])
    r2 = torch.linalg.norm(x[2] - x[0])
    r3 = torch.linalg.norm(x[2] - x[1])
    return 0.05 * ((r1 - 0.95) ** 2 + (r2 - 0.95) ** 2) + 0.02 * (r3 - 1.5) ** 2


def test_bad_points_and_other_molecules_are_refused(setting):
    model, points, corrected, _ = setting
    with pytest.raises(DataError, match="no property 'forces/nope'"):
        gp_transfer(model, points, property=HIGH, forces="forces/nope")
    broken = points.copy()
    f = np.asarray(broken.get(FORCES)).copy()
    f[3] = np.nan
    broken.set(FORCES, f, unit="Hartree/Angstrom", level="high")
    with pytest.raises(DataError, match="1 high-level points lack a finite energy or forces"):
        gp_transfer(model, broken, property=HIGH, forces=FORCES)
    reordered = Database.from_numpy(np.asarray(points.coordinates)[:, [1, 0, 2]], [1, 8, 1])
    with pytest.raises(DataError, match="describes one molecule"):
        corrected.predict(reordered)
    mixed = Database.concatenate([points, Database.from_numpy(
        np.asarray(points.coordinates)[:1, [1, 0, 2]], [1, 8, 1])])
    with pytest.raises(DataError, match="same atoms in the same order"):
        gp_transfer(model, mixed, property=HIGH, forces=FORCES)


def test_a_corrected_model_saves_and_loads_to_the_same_predictions(setting, tmp_path):
    _, points, corrected, _ = setting
    corrected.save(tmp_path / "gp.pt", metadata={"recipe": "gp"})
    back = levelup.load_model(tmp_path / "gp.pt")
    assert type(back).__name__ == "GPCorrected"
    a, b = corrected.predict(points, hessians=True), back.predict(points, hessians=True)
    np.testing.assert_array_equal(a.energies, b.energies)
    np.testing.assert_array_equal(a.hessians, b.hessians)
    assert levelup.model.files.load_metadata(tmp_path / "gp.pt") == {"recipe": "gp"}
    data = (tmp_path / "gp.pt").read_bytes()
    (tmp_path / "bad.pt").write_bytes(data.replace(b'pretrained_kind', b'pretrained_kinx'))
    with pytest.raises(levelup.errors.ModelFileError, match="corrupted GP correction"):
        levelup.load_model(tmp_path / "bad.pt")


def test_finetune_and_the_cli_run_the_gp_recipe(setting, tmp_path, capsys):
    from levelup.cli.main import main
    from levelup.errors import ConfigError
    from levelup.transfer.recipe import recipe

    model, points, corrected, _ = setting
    tuned, choice = levelup.finetune(model, points, property=HIGH, forces=FORCES,
                                     recipe=recipe("gp"))
    np.testing.assert_array_equal(tuned.predict(points).energies,
                                  corrected.predict(points).energies)
    assert "GP correction on 20 points" in choice.summary()
    with pytest.raises(ConfigError, match="gp recipe fits the high-level forces too"):
        levelup.finetune(model, points, property=HIGH, recipe=recipe("gp"))
    model.save(tmp_path / "pre.pt")
    points.save(tmp_path / "points.h5")
    out = tmp_path / "gp.pt"
    assert main(["finetune", str(tmp_path / "pre.pt"), str(tmp_path / "points.h5"), "-o",
                 str(out), "--property", HIGH, "--forces", FORCES, "--recipe", "gp"]) == 0
    assert "GP correction on 20 points" in capsys.readouterr().out
    np.testing.assert_array_equal(levelup.load_model(out).predict(points).energies,
                                  corrected.predict(points).energies)
    assert main(["finetune", str(tmp_path / "pre.pt"), str(tmp_path / "points.h5"), "-o",
                 str(tmp_path / "x.pt"), "--property", HIGH, "--recipe", "gp"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("levelup: error: --recipe gp fits the high-level forces too")
    assert err.count("\n") == 1 and not (tmp_path / "x.pt").exists()


def test_the_ase_calculator_takes_a_corrected_model(setting):
    from ase import Atoms
    from ase.units import Hartree

    from levelup.ase import LevelupCalculator

    _, points, corrected, _ = setting
    atoms = Atoms("OH2", positions=np.asarray(points.coordinates)[4])
    atoms.calc = LevelupCalculator(corrected)
    pred = corrected.predict(points[[4]], forces=True)
    assert atoms.get_potential_energy() == pytest.approx(pred.energies[0] * Hartree, abs=1e-9)
    np.testing.assert_allclose(atoms.get_forces(), pred.forces[0] * Hartree, atol=1e-9)
