"""Geometry generation: scans move the right fragment rigidly and hit the values asked for;
distortions are seeded and bounded; normal modes match closed forms and PySCF's analytic Hessian;
Boltzmann sampling gives kT/2 per mode."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.units import Hartree, kB

from levelup.data import Database
from levelup.data.normalmodes import normal_modes
from levelup.data.sampling import (
    moving_fragment,
    normal_mode_distortions,
    random_distortions,
    scan_angle,
    scan_dihedral,
    scan_distance,
    scan_values,
)
from levelup.data.structure import read_structure
from levelup.errors import DataError
from levelup.model.ani import ANIModel
from levelup.properties.hessians import hessian

WATER = Atoms("OH2", [[0.0, 0.0, 0.0], [0.989, 0.0, 0.0],
                      [0.989 * np.cos(np.radians(100.0)), 0.989 * np.sin(np.radians(100.0)), 0.0]])


def _distances(xyz: np.ndarray, atoms: list[int]) -> np.ndarray:
    sub = xyz[atoms]
    return np.linalg.norm(sub[:, None] - sub[None], axis=-1)


def test_scan_values_include_the_end_point():
    np.testing.assert_allclose(scan_values(0.5, 2.5, 0.05), np.linspace(0.5, 2.5, 41))
    np.testing.assert_allclose(scan_values(180, 0, -30), [180, 150, 120, 90, 60, 30, 0])
    np.testing.assert_allclose(scan_values(1.0, 1.25, 0.1), [1.0, 1.1, 1.2])
    with pytest.raises(DataError, match="step"):
        scan_values(1.0, 2.0, -0.1)
    with pytest.raises(DataError, match="step"):
        scan_values(1.0, 2.0, 0)


def test_bond_scan_moves_the_fragment_rigidly():
    meoh = molecule("CH3OH")  # C 0, O 1, H 2 (on O? see below), ...
    c, o = 0, 1
    fragment = moving_fragment(meoh, c, o)
    assert o in fragment and c not in fragment
    symbols = meoh.get_chemical_symbols()
    assert sorted(symbols[i] for i in fragment) == ["H", "O"]  # the hydroxyl group
    methyl = [i for i in range(len(meoh)) if i not in fragment]
    db = scan_distance(meoh, c, o, [1.3, 1.43, 1.6])
    assert len(db) == 3 and db.properties["scan"].unit == "Angstrom"
    np.testing.assert_allclose(db.get("scan"), [1.3, 1.43, 1.6])
    for xyz, d in zip(db.coordinates, [1.3, 1.43, 1.6], strict=True):
        assert np.linalg.norm(xyz[o] - xyz[c]) == pytest.approx(d, abs=1e-12)
        np.testing.assert_allclose(xyz[methyl], meoh.positions[methyl], atol=1e-12)  # stays put
        np.testing.assert_allclose(_distances(xyz, fragment), _distances(meoh.positions, fragment),
                                   atol=1e-12)  # the hydroxyl moves as a whole
        # ... along the C-O line: displacement parallel to the original bond
        shift = xyz[fragment] - meoh.positions[fragment]
        axis = meoh.positions[o] - meoh.positions[c]
        np.testing.assert_allclose(np.cross(shift, axis), 0, atol=1e-12)
    assert db.properties["scan"].spec["moved"] == fragment


def test_angle_scan_keeps_bond_lengths():
    db = scan_angle(WATER, 1, 0, 2, scan_values(90, 120, 10))
    assert db.properties["scan"].unit == "degree"
    for mol, angle in zip(db, [90, 100, 110, 120], strict=True):
        atoms = mol.to_ase()
        assert atoms.get_angle(1, 0, 2) == pytest.approx(angle, abs=1e-9)
        assert atoms.get_distance(0, 1) == pytest.approx(0.989, abs=1e-12)
        assert atoms.get_distance(0, 2) == pytest.approx(0.989, abs=1e-12)
        np.testing.assert_allclose(atoms.positions[:2], WATER.positions[:2], atol=1e-12)


def test_dihedral_scan_rotates_one_methyl_group():
    ethane = molecule("C2H6")  # C 0, C 1, H 2-4 on C 0, H 5-7 on C 1
    symbols = ethane.get_chemical_symbols()
    assert symbols[:2] == ["C", "C"]
    near0 = [i for i in range(2, 8) if ethane.get_distance(0, i) < 1.2]
    near1 = [i for i in range(2, 8) if ethane.get_distance(1, i) < 1.2]
    h_a, h_b = near0[0], near1[0]
    values = [0.0, 60.0, 120.0, 200.0]
    db = scan_dihedral(ethane, h_a, 0, 1, h_b, values)
    moved = db.properties["scan"].spec["moved"]
    assert sorted(moved) == sorted([1, *near1])
    for mol, angle in zip(db, values, strict=True):
        atoms = mol.to_ase()
        assert atoms.get_dihedral(h_a, 0, 1, h_b) == pytest.approx(angle, abs=1e-7)
        np.testing.assert_allclose(atoms.positions[[0, *near0]], ethane.positions[[0, *near0]],
                                   atol=1e-12)
        np.testing.assert_allclose(_distances(atoms.positions, moved),
                                   _distances(ethane.positions, moved), atol=1e-10)
    # the three hydrogens of the rotating methyl keep their dihedral offsets (rigid rotation)
    first = db[0].to_ase()
    second = db[1].to_ase()
    for h in near1:
        assert (second.get_dihedral(h_a, 0, 1, h) - first.get_dihedral(h_a, 0, 1, h)) % 360 \
            == pytest.approx(60.0, abs=1e-7)


def test_ring_bond_moves_only_the_last_atom():
    benzene = molecule("C6H6")
    ring = [i for i, s in enumerate(benzene.get_chemical_symbols()) if s == "C"]
    c0 = ring[0]
    c1 = next(j for j in ring[1:] if benzene.get_distance(c0, j) < 1.5)
    assert moving_fragment(benzene, c0, c1) == [c1]
    db = scan_distance(benzene, c0, c1, [1.5])
    moved = np.flatnonzero(np.abs(db.coordinates[0] - benzene.positions).sum(1) > 1e-12)
    assert moved.tolist() == [c1]
    # explicit atoms to move
    db = scan_distance(benzene, c0, c1, [1.5], move=[c1])
    assert db.properties["scan"].spec["moved"] == [c1]
    with pytest.raises(DataError, match="stay put"):
        scan_distance(benzene, c0, c1, [1.5], move=[c0, c1])


def test_scan_errors_are_actionable():
    with pytest.raises(DataError, match="out of range"):
        scan_distance(WATER, 0, 3, [1.0])
    with pytest.raises(DataError, match="twice"):
        scan_angle(WATER, 1, 0, 1, [90])
    with pytest.raises(DataError, match="positive"):
        scan_distance(WATER, 0, 1, [0.0])
    with pytest.raises(DataError, match="between 0 and 180"):
        scan_angle(WATER, 1, 0, 2, [180])
    linear = Atoms("CO2", [[0, 0, 0], [1.16, 0, 0], [-1.16, 0, 0]])
    with pytest.raises(DataError, match="line"):
        scan_angle(linear, 1, 0, 2, [120])
    with pytest.raises(DataError, match="structure"):
        scan_distance(42, 0, 1, [1.0])


def test_random_distortions_are_seeded_bounded_and_keep_spin():
    oh = Database.from_numpy(np.array([[0.0, 0, 0], [0.97, 0, 0]]), ["O", "H"], multiplicities=2)
    a = random_distortions(oh, 50, 0.1, seed=3)
    b = random_distortions(oh, 50, 0.1, seed=3)
    c = random_distortions(oh, 50, 0.1, seed=4)
    assert np.array_equal(a.coordinates, b.coordinates)
    assert not np.array_equal(a.coordinates, c.coordinates)
    shift = a.coordinates - oh.coordinates
    assert np.abs(shift).max() <= 0.1 and np.abs(shift).max() > 0.08
    assert (a.multiplicities == 2).all() and (a.species == [8, 1]).all()
    with pytest.raises(DataError, match="amplitude"):
        random_distortions(oh, 5, -0.1)
    with pytest.raises(DataError, match="one molecule"):
        random_distortions(a, 5, 0.1)


def test_read_structure(tmp_path):
    random_distortions(WATER, 3, 0.05, seed=0).write(tmp_path / "w.xyz")
    with pytest.raises(DataError, match="holds 3 molecules"):
        read_structure(tmp_path / "w.xyz")
    mol = read_structure(tmp_path / "w.xyz", index=-1)
    assert mol.formula == "H2O"
    Database.from_molecules([mol]).save(tmp_path / "one.h5")
    db = scan_distance(tmp_path / "one.h5", 0, 1, [1.0])
    assert len(db) == 1 and db[0].to_ase().get_distance(0, 1) == pytest.approx(1.0)


def test_h2_normal_mode_matches_the_harmonic_oscillator():
    k = 0.4  # Hartree/Angstrom^2 along the bond
    p = np.diag([0.0, 0.0, 1.0])
    h = np.block([[k * p, -k * p], [-k * p, k * p]])
    modes = normal_modes(Atoms("H2", [[0, 0, 0], [0, 0, 0.74]]), h)
    assert modes.wavenumbers.shape == (1,)  # 3N - 5 for a linear molecule
    from ase.data import atomic_masses
    from ase.units import _amu, _c

    mu = atomic_masses[1] / 2 * _amu  # kg
    omega = np.sqrt(k * Hartree * 1.602176634e-19 / 1e-20 / mu)  # rad/s (eV -> J, A^2 -> m^2)
    expected = omega / (2 * np.pi * _c * 100)  # cm^-1
    assert modes.wavenumbers[0] == pytest.approx(expected, rel=1e-6)
    # the displacement stretches the bond symmetrically
    d = modes.displacements[0]
    np.testing.assert_allclose(d[0], -d[1], atol=1e-12)
    assert abs(d[0, 2]) > 0 and np.allclose(d[:, :2], 0)


def test_level_hessian_matches_pyscf_analytic(tmp_path):
    from pyscf import gto, scf

    h = hessian(WATER, "HF/STO-3G", cache=tmp_path / "c.sqlite")
    mol = gto.M(atom=[(s, p) for s, p in zip(WATER.get_chemical_symbols(), WATER.positions,
                                             strict=True)], basis="sto-3g", verbose=0)
    mf = scf.RHF(mol).run()
    bohr = 0.529177210903
    analytic = mf.Hessian().kernel().transpose(0, 2, 1, 3).reshape(9, 9) / bohr ** 2
    assert np.abs(h - analytic).max() < 2e-3  # Hartree/Angstrom^2 (central differences, 0.005 A)
    ours = normal_modes(WATER, h).wavenumbers
    theirs = normal_modes(WATER, analytic).wavenumbers
    assert ours.shape == (3,)
    np.testing.assert_allclose(ours, theirs, atol=1.0)  # cm^-1
    # HF/STO-3G water: bend near 2170, stretches near 4140 and 4390 cm^-1
    np.testing.assert_allclose(ours, [2170, 4145, 4396], atol=10)


def test_model_hessian_and_boltzmann_sampling():
    model = ANIModel(["H", "O"], hidden=(16,), seed=0).double()
    db = Database.from_ase([WATER])
    h = hessian(WATER, model)
    np.testing.assert_allclose(h, model.predict(db, hessians=True).hessians[0])
    assert normal_modes(WATER, h).wavenumbers.shape == (3,)
    # sample on an exact harmonic potential: a positive-definite Hessian of the vibrations
    analytic_h = _harmonic_water_hessian()
    modes = normal_modes(WATER, analytic_h)
    assert (modes.wavenumbers > 100).all()
    n, temperature = 4000, 500.0
    samples = normal_mode_distortions(WATER, analytic_h, n, temperature=temperature, seed=1)
    dx = (samples.coordinates - WATER.positions[None]).reshape(n, -1)
    energy = 0.5 * np.einsum("ni,ij,nj->n", dx, analytic_h, dx)  # Hartree
    kt = kB * temperature / Hartree
    assert energy.mean() / kt == pytest.approx(1.5, rel=0.05)  # kT/2 per mode, 3 modes
    # no net translation: the centre of mass stays put
    masses = modes.masses
    com_shift = np.einsum("a,nac->nc", masses, samples.coordinates - WATER.positions[None])
    np.testing.assert_allclose(com_shift, 0, atol=1e-10)
    again = normal_mode_distortions(WATER, analytic_h, 5, seed=1, temperature=temperature)
    np.testing.assert_array_equal(again.coordinates, samples.coordinates[:5])


def _harmonic_water_hessian() -> np.ndarray:
    """Hessian (Hartree/Angstrom^2) of two O-H springs and an H-H spring at WATER's geometry:
    positive definite on the vibrations."""
    h = np.zeros((9, 9))
    for (a, b), k in (((0, 1), 0.5), ((0, 2), 0.5), ((1, 2), 0.1)):
        u = WATER.positions[b] - WATER.positions[a]
        u /= np.linalg.norm(u)
        block = k * np.outer(u, u)
        for i, j, sign in ((a, a, 1), (b, b, 1), (a, b, -1), (b, a, -1)):
            h[3 * i:3 * i + 3, 3 * j:3 * j + 3] += sign * block
    return h
