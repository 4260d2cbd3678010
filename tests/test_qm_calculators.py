"""One molecule at a time: every method against plain PySCF calls, forces against finite
differences, the SCF retry ladder. Small bases keep it to seconds."""

import numpy as np
import pytest
from pyscf import cc, ci, dft, fci, gto, mp, scf

from levelup.qm.calculators import Job, compute
from levelup.qm.levels import parse_level
from levelup.qm.scf import initial_guess, minao_projection_basis
from levelup.qm.serial import limited_threads
from levelup.qm.settings import LabelSettings

WATER = ((8, 1, 1), np.array([[0.0, 0.0, 0.0], [0.0, 0.757, 0.587], [0.0, -0.757, 0.587]]), 0, 1)
HYDROXYL = ((8, 1), np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.97]]), 0, 2)
HEH_CATION = ((2, 1), np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.774]]), 1, 1)
H2 = ((1, 1), np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.74]]), 0, 1)
SYMBOLS = {1: "H", 2: "He", 8: "O"}


def plain_mole(system, basis):
    species, xyz, charge, mult = system
    atoms = [(SYMBOLS[z], tuple(p)) for z, p in zip(species, xyz, strict=True)]
    return gto.M(atom=atoms, basis=basis, charge=charge, spin=mult - 1, verbose=0)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny molecules run fastest on one OpenMP thread (and the suite shares the cores)."""
    with limited_threads(1):
        yield


def plain_energy(system, method, basis, tight=False):
    """The textbook PySCF calls: what a user would write without levelup. ``tight`` converges
    everything far below PySCF's defaults (for finite-difference references)."""
    mol = plain_mole(system, basis)
    closed = mol.spin == 0
    opts = {"conv_tol": 1e-12} if tight else {}
    if method == "B3LYP":
        mf = dft.RKS(mol, xc="b3lyp") if closed else dft.UKS(mol, xc="b3lyp")
        return mf.run(**opts).e_tot
    mf = (scf.RHF(mol) if closed else scf.UHF(mol)).run(**opts)
    cc_opts = {"conv_tol": 1e-12, "conv_tol_normt": 1e-9} if tight else {}
    if method == "HF":
        return mf.e_tot
    if method == "MP2":
        return mp.MP2(mf).run().e_tot
    if method == "CISD":
        return ci.CISD(mf).run(**opts).e_tot
    if method == "CCSD":
        return cc.CCSD(mf).run(**cc_opts).e_tot
    if method == "CCSD(T)":
        mycc = cc.CCSD(mf).run(**cc_opts)
        return mycc.e_tot + mycc.ccsd_t()
    if method == "FCI":
        return fci.FCI(scf.RHF(mol).run()).kernel()[0]  # ROHF orbitals for open shells
    raise ValueError(method)


def run(system, level, forces="none", settings=None):
    species, xyz, charge, mult = system
    job = Job(parse_level(level), species, charge, mult, forces, settings or LabelSettings())
    return compute(job, xyz)


@pytest.mark.parametrize("system", [WATER, HYDROXYL, HEH_CATION], ids=["H2O", "OH", "HeH+"])
@pytest.mark.parametrize("method", ["HF", "B3LYP", "MP2", "CISD", "CCSD", "CCSD(T)", "FCI"])
def test_every_method_equals_plain_pyscf(system, method):
    out = run(system, f"{method}/STO-3G")
    assert out.ok, out.error
    assert out.energy == pytest.approx(plain_energy(system, method, "sto-3g"), abs=1e-8)


def test_two_electron_methods_agree_on_h2():
    """CISD, CCSD and CCSD(T) are exact (= FCI) for two electrons."""
    e = {m: run(H2, f"{m}/cc-pVDZ").energy for m in ("HF", "MP2", "CISD", "CCSD", "CCSD(T)",
                                                     "FCI")}
    assert e["CISD"] == pytest.approx(e["FCI"], abs=1e-7)
    assert e["CCSD"] == pytest.approx(e["FCI"], abs=1e-6)
    assert e["CCSD(T)"] == pytest.approx(e["CCSD"], abs=1e-9)
    assert e["HF"] > e["MP2"] > e["FCI"]
    assert run(H2, "HF/STO-3G").energy == pytest.approx(-1.1167, abs=2e-4)  # DESIGN.md


def test_open_shell_gets_uhf_and_rhf_is_restricted():
    uhf = run(HYDROXYL, "HF/STO-3G").energy
    rohf = run(HYDROXYL, "RHF/STO-3G").energy
    assert uhf == pytest.approx(scf.UHF(plain_mole(HYDROXYL, "sto-3g")).run().e_tot, abs=1e-8)
    assert rohf == pytest.approx(scf.ROHF(plain_mole(HYDROXYL, "sto-3g")).run().e_tot, abs=1e-8)
    assert uhf < rohf


def test_initial_guess_equals_pyscfs_default():
    for system in (WATER, HYDROXYL):
        mol = plain_mole(system, "cc-pvdz")
        minao = minao_projection_basis(mol)
        for cls in (scf.RHF, scf.UHF, scf.ROHF, dft.RKS, dft.UKS):
            mf = cls(mol)
            mine = np.asarray(initial_guess(mf, minao))
            assert np.abs(mine - np.asarray(mf.get_init_guess())).max() < 1e-12, cls


def numerical_force(system, method, basis, atom, axis, step=2e-3):
    """-dE/dx (Hartree/Angstrom) by central differences of tightly converged plain PySCF
    energies: independent of levelup's code and units."""
    species, xyz, charge, mult = system
    e = []
    for sign in (1, -1):
        moved = xyz.copy()
        moved[atom, axis] += sign * step
        e.append(plain_energy((species, moved, charge, mult), method, basis, tight=True))
    return -(e[0] - e[1]) / (2 * step)


@pytest.mark.parametrize("method, basis, system, tol", [
    ("HF", "6-31G", WATER, 1e-5),
    ("B3LYP", "STO-3G", WATER, 3e-4),  # PySCF's DFT gradient omits the grid response
    ("MP2", "STO-3G", WATER, 1e-5),
    ("CISD", "STO-3G", WATER, 1e-5),
    ("CCSD", "STO-3G", WATER, 2e-5),
    ("CCSD(T)", "STO-3G", WATER, 2e-5),
    ("HF", "STO-3G", HYDROXYL, 1e-5),
    ("CCSD(T)", "STO-3G", HYDROXYL, 2e-5),
])
def test_analytic_forces_match_finite_differences(method, basis, system, tol):
    out = run(system, f"{method}/{basis}", forces="analytic")
    assert out.ok, out.error
    assert out.forces.shape == (len(system[0]), 3)
    components = [(0, 2), (1, 1), (1, 2)] if len(system[0]) == 3 else [(0, 2)]
    for atom, axis in components:
        reference = numerical_force(system, method, basis, atom, axis)
        assert abs(out.forces[atom, axis] - reference) < tol, (atom, axis)
    if method != "B3LYP":
        assert np.abs(out.forces.sum(axis=0)).max() < 1e-6  # no net force


def test_numerical_forces_for_fci():
    out = run(H2, "FCI/cc-pVDZ", forces="numerical")
    ref = run(H2, "CISD/cc-pVDZ", forces="analytic")  # CISD = FCI for H2
    assert out.ok and out.forces[1, 2] > 0  # 0.74 Angstrom is inside the 0.76 minimum: pushed out
    assert np.abs(out.forces - ref.forces).max() < 1e-5


def test_failing_scf_is_reported_not_stored():
    stretched = ((8, 1, 1), np.array([[0, 0, 0], [0, 2.0, 1.5], [0, -2.0, 1.5]]), 0, 1)
    out = run(stretched, "HF/6-31G", settings=LabelSettings(max_cycle=2))
    assert not out.ok and np.isnan(out.energy) and out.forces is None
    assert "SCF did not converge" in out.error and "second-order" in out.error
    out = run(stretched, "HF/6-31G", settings=LabelSettings(max_cycle=2, retries=False))
    assert not out.ok and "damping" not in out.error


def test_retry_ladder_converges_to_the_same_energy():
    stretched = ((8, 1, 1), np.array([[0, 0, 0], [0, 2.0, 1.5], [0, -2.0, 1.5]]), 0, 1)
    rescued = run(stretched, "HF/6-31G", settings=LabelSettings(max_cycle=3))
    normal = run(stretched, "HF/6-31G")
    assert rescued.ok and "converged with" in rescued.note and normal.note == ""
    assert rescued.energy == pytest.approx(normal.energy, abs=1e-8)


def test_bad_geometry_becomes_a_failure_not_an_exception():
    species, xyz, charge, mult = WATER
    out = compute(Job(parse_level("HF/STO-3G"), species, charge, mult), xyz[:2])
    assert not out.ok and "shape" in out.error
