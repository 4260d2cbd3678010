"""The properties chemists check (issue 15): optimised geometries, harmonic frequencies, barrier
energies, on a model or a level of theory, against PySCF itself. Real PySCF, small molecules
and a minimal basis (HF/STO-3G water and ammonia)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule

from levelup.cli.main import main
from levelup.data.normalmodes import normal_modes
from levelup.data.structure import database_of
from levelup.errors import ConfigError, DataError, LevelOfTheoryError
from levelup.model.ani import ANIModel
from levelup.properties.energies import energy_differences
from levelup.properties.frequencies import compare_frequencies, frequencies
from levelup.properties.geometry import compare_geometries, geometry_parameters
from levelup.properties.hessians import hessian
from levelup.properties.optimize import optimize
from levelup.qm.cache import LabelCache
from levelup.qm.hessian import HessianCache, analytic_hessian, has_analytic_hessian

BOHR = 0.529177210903  # Angstrom (CODATA 2018, PySCF's value)
# RHF/STO-3G water minimum from PySCF's energies alone (Nelder-Mead over r and the angle of
# symmetric water, conv_tol 1e-12, xatol 1e-7; run once for this test): r = 0.989409 Angstrom,
# angle = 100.0269 degrees, E = -74.96590119 Hartree. The literature value is 0.989 / 100.0.
WATER_R, WATER_ANGLE, WATER_E = 0.989409, 100.0269, -74.96590119


@pytest.fixture(autouse=True)
def one_thread():
    """One torch and one PySCF (OpenMP) thread: the test machine is shared, and busy cores slow
    PySCF's threaded small matrix products down twentyfold. Restored afterwards."""
    from pyscf import lib

    before, before_omp = torch.get_num_threads(), lib.num_threads()
    torch.set_num_threads(1)
    lib.num_threads(1)
    yield
    torch.set_num_threads(before)
    lib.num_threads(before_omp)


def _water(r: float = 0.96, degrees: float = 104.0) -> Atoms:
    a = np.radians(degrees)
    return Atoms("OH2", [[0.0, 0.0, 0.0], [r, 0.0, 0.0], [r * np.cos(a), r * np.sin(a), 0.0]])


def _ammonia() -> Atoms:
    return Atoms("NH3", [[0.0, 0.0, 0.12], [0.94, 0.0, -0.1], [-0.47, 0.81, -0.1],
                         [-0.47, -0.81, -0.1]])


def _pyscf_hessian(atoms: Atoms):
    """(mol, PySCF's analytic RHF/STO-3G Hessian (atoms, atoms, 3, 3) Hartree/Bohr^2)."""
    from pyscf import gto, scf

    mol = gto.M(atom=list(zip(atoms.get_chemical_symbols(), atoms.positions.tolist(),
                              strict=True)), basis="sto-3g", verbose=0)
    mf = scf.RHF(mol).run()
    return mol, mf, mf.Hessian().kernel()


def test_hf_water_optimum_and_a_repeat_computes_nothing(tmp_path):
    cache = tmp_path / "labels.sqlite"
    opt = optimize(_water(), "HF/STO-3G", cache=cache)
    assert opt.converged and opt.fmax < 1e-4 and opt.computed == opt.steps + 1 > 3
    geo = geometry_parameters(opt)
    assert set(geo.bonds) == {"O0-H1", "O0-H2"} and set(geo.angles) == {"H1-O0-H2"}
    for r in geo.bonds.values():
        assert r == pytest.approx(WATER_R, abs=5e-4)
    assert geo.angles["H1-O0-H2"] == pytest.approx(WATER_ANGLE, abs=0.1)
    assert opt.energy == pytest.approx(WATER_E, abs=1e-7)
    # PySCF's own analytic gradient at the result: a stationary point to the threshold
    _, mf, _ = _pyscf_hessian(opt.structure.to_ase())
    assert np.abs(mf.nuc_grad_method().kernel()).max() / BOHR < 1e-4
    # the same optimisation again: every gradient from the label cache, the same path
    with LabelCache(cache) as store:
        stored = len(store)
    again = optimize(_water(), "HF/STO-3G", cache=cache)
    assert again.computed == 0 and again.cached == opt.computed
    np.testing.assert_array_equal(again.structure.coordinates, opt.structure.coordinates)
    with LabelCache(cache) as store:
        assert len(store) == stored


def test_hf_frequencies_match_pyscf_analytic_and_finite_differences(tmp_path):
    from pyscf.hessian import thermo

    cache = tmp_path / "labels.sqlite"
    freq = frequencies(_water(), "HF/STO-3G", cache=cache)
    assert freq.hessian_method == "analytic" and freq.optimized.converged
    mol, _, h = _pyscf_hessian(freq.structure.to_ase())
    theirs = np.sort(thermo.harmonic_analysis(mol, h, imaginary_freq=False)["freq_wavenumber"])
    assert theirs.shape == freq.wavenumbers.shape == (3,)
    np.testing.assert_allclose(freq.wavenumbers, theirs, atol=1.0)  # cm^-1
    np.testing.assert_allclose(freq.hessian, h.transpose(0, 2, 1, 3).reshape(9, 9) / BOHR ** 2,
                               atol=1e-6)  # Hartree/Angstrom^2
    fd = frequencies(freq.optimized, "HF/STO-3G", method="gradients", cache=cache)
    assert fd.hessian_method == "gradients" and fd.optimized is freq.optimized
    np.testing.assert_allclose(fd.wavenumbers, freq.wavenumbers, atol=3.0)
    table = compare_frequencies(fd, freq)
    np.testing.assert_allclose(table.differences, fd.wavenumbers - freq.wavenumbers)
    assert 0 < table.mean_abs <= table.max_abs < 3.0
    with pytest.raises(DataError, match="different molecules"):
        compare_frequencies(fd, frequencies(_ammonia(), "HF/STO-3G", optimize_first=False,
                                            cache=False))
    # the analytic Hessian is cached in the label cache's file, keyed like a label
    with HessianCache(cache) as store:
        assert len(store) == 1
    z, xyz = freq.structure.species, freq.structure.coordinates
    again = analytic_hessian(z, xyz, "hf/sto-3g", cache=cache)
    assert again.cached
    np.testing.assert_array_equal(again.hessian, freq.hessian)
    assert not analytic_hessian(z, xyz + 0.01, "HF/STO-3G", cache=cache).cached


def test_model_frequencies_equal_differences_of_its_forces(water):
    model = ANIModel(["H", "O"], hidden=(16,), seed=0).double()
    freq = frequencies(water, model, optimize_first=False)
    assert freq.hessian_method == "autograd" and freq.optimized is None
    step = 1e-4  # Angstrom
    shifts = np.zeros((18, 3, 3))
    for k in range(9):
        shifts[2 * k].reshape(-1)[k], shifts[2 * k + 1].reshape(-1)[k] = step, -step
    mol = freq.structure
    forces = model.predict(database_of(mol, mol.coordinates[None] + shifts),
                           forces=True).forces.reshape(18, 9)
    h = -(forces[0::2] - forces[1::2]) / (2 * step)
    np.testing.assert_allclose(freq.hessian, (h + h.T) / 2, atol=1e-6)
    np.testing.assert_allclose(freq.wavenumbers, normal_modes(mol, h).wavenumbers, atol=0.05)
    assert np.abs(freq.wavenumbers).min() > 10  # a curved surface, not a flat one


def test_model_optimisation_is_ase_bfgs_on_the_levelup_calculator(water):
    from ase.optimize import BFGS
    from ase.units import Hartree

    from levelup.ase import LevelupCalculator

    model = ANIModel(["H", "O"], hidden=(16,), seed=0).double()
    opt = optimize(water, model, steps=4)
    atoms = water.copy()
    atoms.calc = LevelupCalculator(model)
    BFGS(atoms, logfile=None).run(fmax=1e-4 * Hartree, steps=4)
    assert opt.steps == 4 and opt.computed == 0
    np.testing.assert_allclose(opt.structure.coordinates, atoms.positions, atol=1e-10)
    assert opt.energy == pytest.approx(atoms.get_potential_energy() / Hartree, abs=1e-12)


def test_planar_ammonia_is_the_inversion_saddle(tmp_path):
    cache = tmp_path / "labels.sqlite"
    saddle = optimize(_ammonia(), "HF/STO-3G", constraints="planar", cache=cache)
    xyz = saddle.structure.coordinates
    assert saddle.converged and saddle.constraints == ("planar",)
    normal = np.linalg.svd(xyz - xyz.mean(0))[2][-1]
    assert np.abs((xyz - xyz.mean(0)) @ normal).max() < 1e-8  # planar
    freq = frequencies(saddle, "HF/STO-3G", cache=cache)
    assert freq.imaginary.size == 1 and freq.wavenumbers[0] < -500
    umbrella = freq.modes.displacements[0]  # the nitrogen moves out of the plane
    assert abs(umbrella[0] @ normal) > 0.9 * np.linalg.norm(umbrella[0])
    assert (freq.wavenumbers[1:] > 1000).all()
    diff = energy_differences({"pyramidal": _ammonia(), "planar": saddle}, "HF/STO-3G",
                              cache=cache)
    pyramid = diff.optimized["pyramidal"]
    assert pyramid.converged and diff.optimized["planar"] is saddle
    barrier = (saddle.energy - pyramid.energy) * 627.509474
    assert diff.relative == {"pyramidal": 0.0, "planar": pytest.approx(barrier, abs=1e-9)}
    assert 5 < barrier < 20  # kcal/mol: HF/STO-3G gives about 11
    assert json.loads(json.dumps(diff.to_dict()))["relative_kcal_per_mol"]["planar"] == barrier


def test_an_eclipsed_torsion_by_a_held_dihedral(tmp_path):
    ethane = molecule("C2H6")  # staggered; atoms C0 C1 H2-H4 on C0, H5-H7 on C1
    diff = energy_differences({"staggered": ethane, "eclipsed": ethane}, "HF/STO-3G",
                              constraints={"eclipsed": "dihedral:2,0,1,5=0"},
                              cache=tmp_path / "c.sqlite")
    eclipsed = geometry_parameters(diff.optimized["eclipsed"]).dihedrals
    assert len(eclipsed) == 9 and abs(eclipsed["H2-C0-C1-H5"]) < 1e-6
    staggered = geometry_parameters(diff.optimized["staggered"]).dihedrals
    assert abs(staggered["H2-C0-C1-H5"]) == pytest.approx(180, abs=0.5)
    assert 2 < diff.relative["eclipsed"] < 4  # kcal/mol; ethane's barrier, about 3


def test_geometry_comparison_names_and_wraps():
    ethane = molecule("C2H6")
    moved = ethane.copy()
    moved.rotate(40, "z")
    moved.translate([1.0, -2.0, 0.5])
    same = compare_geometries(moved, ethane)
    assert all(same.max_abs(kind) < 1e-9 for kind in ("bonds", "angles", "dihedrals"))
    twisted = ethane.copy()
    twisted.set_dihedral(2, 0, 1, 5, 178.0, indices=[5, 6, 7])  # the reference has 180
    other = ethane.copy()
    other.set_dihedral(2, 0, 1, 5, -178.0, indices=[5, 6, 7])
    diff = compare_geometries(twisted, other).differences["dihedrals"]["H2-C0-C1-H5"]
    assert diff == pytest.approx(-4.0, abs=1e-6)  # not 356
    longer = ethane.copy()
    longer.set_distance(0, 1, ethane.get_distance(0, 1) + 0.01, fix=0, indices=[1, 5, 6, 7])
    assert compare_geometries(longer, ethane).differences["bonds"]["C0-C1"] == \
        pytest.approx(0.01, abs=1e-9)
    with pytest.raises(DataError, match="same atoms"):
        compare_geometries(_water(), ethane)


def test_bad_input_is_a_clear_error(water, tmp_path):
    with pytest.raises(LevelOfTheoryError, match="neither an existing model file nor a level"):
        optimize(water, "HF/STO-3X")
    with pytest.raises(DataError, match="no network for O"):
        frequencies(water, ANIModel(["H"], hidden=(4,), seed=0))
    with pytest.raises(DataError, match="does not exist"):
        optimize(water, str(tmp_path / "missing.pt"))
    with pytest.raises(DataError, match="dihedral names 4 atoms"):
        optimize(water, "HF/STO-3G", constraints="dihedral:0,1,2", cache=False)
    with pytest.raises(DataError, match="0..2"):
        optimize(water, "HF/STO-3G", constraints="bond:0,3", cache=False)
    with pytest.raises(ConfigError, match="optimizer"):
        optimize(water, "HF/STO-3G", optimizer="newton", cache=False)
    with pytest.raises(ConfigError, match="at least two"):
        energy_differences({"only": water}, "HF/STO-3G")
    with pytest.raises(LevelOfTheoryError, match="no analytic Hessian"):
        hessian(water, "MP2/STO-3G", method="analytic", cache=False)
    assert has_analytic_hessian("B3LYP/STO-3G") and has_analytic_hessian("HF/STO-3G", 2)
    assert not has_analytic_hessian("RHF/STO-3G", 2) and not has_analytic_hessian("CCSD/STO-3G")


def test_cli_properties(tmp_path, capsys):
    _water().write(tmp_path / "water.xyz")
    out, cache = tmp_path / "props.json", str(tmp_path / "c.sqlite")
    argv = ["properties", str(tmp_path / "water.xyz"), "--level", "HF/STO-3G", "--optimize",
            "--frequencies", "-o", str(out), "--cache", cache]
    assert main(["-q", *argv]) == 0
    printed = capsys.readouterr().out
    assert "O0-H1" in printed and "frequencies (cm^-1, analytic Hessian)" in printed
    result = json.loads(out.read_text())
    assert result["optimized"]["converged"] and result["source"] == "HF/STO-3G"
    assert result["geometry"]["bonds_angstrom"]["O0-H1"] == pytest.approx(WATER_R, abs=5e-4)
    assert len(result["frequencies"]["wavenumbers_cm-1"]) == 3
    for bad, says in ((["--level", "HF/STO-3X"], "neither an existing model file"),
                      (["--level", "HF/STO-3G", "--constraint", "planar"], "add --optimize"),
                      (["--level", "HF/STO-3G", "--optimize", "--constraint", "twist:0"],
                       "not a spec"),
                      (["--model", str(tmp_path / "water.xyz")], "not a model file")):
        assert main([argv[0], argv[1], *bad, "-o", str(tmp_path / "x.json")]) == 1
        err = capsys.readouterr().err
        assert err.startswith("levelup: error: ") and err.count("\n") == 1 and says in err
    assert not (tmp_path / "x.json").exists()
    ANIModel(["H", "O"], hidden=(16,), seed=0).double().save(tmp_path / "m.pt")
    assert main(["-q", argv[0], argv[1], "--model", str(tmp_path / "m.pt"), "--frequencies",
                 "-o", str(out)]) == 0
    assert "at the geometry given (not optimised)" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["source"] == str(tmp_path / "m.pt") and result["optimized"] is None
    assert result["frequencies"]["hessian_method"] == "autograd"
