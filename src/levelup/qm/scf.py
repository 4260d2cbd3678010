"""The self-consistent field of one molecule with PySCF: its initial guess (PySCF's MINAO
density, from a projection basis built once per kind of molecule instead of re-reading the ANO
basis file every time) and :func:`run_scf`, which tries harder (damping and level shift, then
a second-order solver) when the default DIIS does not converge.
"""

from __future__ import annotations

import numpy as np

from levelup.qm.levels import Level
from levelup.qm.settings import LabelSettings


class CalculationFailed(Exception):
    """Raised inside a calculation when it cannot give a trustworthy number."""


# ------------------------------------------------------------------------- initial guess
def minao_projection_basis(mol):
    """The MINAO projection basis (from the ANO set) per element, as PySCF's
    ``init_guess_by_minao`` builds it; None where that function must be called instead
    (effective core potentials, super-heavy elements)."""
    from pyscf import gto
    from pyscf.scf import atom_hf

    if mol.has_ecp() or any(mol.atom_charge(i) > 96 for i in range(mol.natm)):
        return None
    basis, occupations = {}, {}
    for ia in range(mol.natm):
        symb = mol.atom_symbol(ia)
        if symb in basis:
            continue
        std = gto.mole._std_symbol(symb)
        ano = gto.basis.load("ano", std)
        occ, shells = [], []
        for l in range(4):
            n_docc, frac = atom_hf.frac_occ(std, l)
            occ.append(np.repeat([2.0] * n_docc + [frac], 2 * l + 1))
            shells.append([l] + [b[:1] + b[1 : n_docc + 2] for b in ano[l][1:]])
        basis[symb], occupations[symb] = shells, np.hstack(occ)
    return basis, occupations


def _minao_dm(mol, minao):
    """PySCF's MINAO initial density matrix (identical numbers) without re-parsing the ANO
    basis file: project the atomic occupations from a prebuilt minimal basis."""
    from pyscf import gto, lib, scf

    if minao is None:
        return scf.hf.init_guess_by_minao(mol)
    basis, occupations = minao
    pmol = gto.Mole()
    pmol._atm, pmol._bas, pmol._env = pmol.make_env(mol._atom, basis, [])
    pmol._built = True
    occ = np.hstack([occupations[mol.atom_symbol(i)] for i in range(mol.natm)])
    s22 = mol.intor_symmetric("int1e_ovlp")
    s21 = gto.intor_cross("int1e_ovlp", mol, pmol)
    mo = lib.cho_solve(s22, s21, strict_sym_pos=False)  # project_mo_nr2nr(pmol, 1, mol)
    return lib.tag_array(lib.dot(mo * occ, mo.conj().T), mo_coeff=mo, mo_occ=occ)


def initial_guess(mf, minao):
    """The density matrix PySCF's ``mf.get_init_guess()`` would give (MINAO), made faster."""
    from pyscf import scf

    mol = mf.mol
    if isinstance(mf, scf.uhf.UHF):
        breaker = getattr(scf.uhf, "_break_dm_spin_symm", None)
        if breaker is None:
            return mf.get_init_guess()
        dm = _minao_dm(mol, minao) * 0.5
        dma, dmb = breaker(mol, (dm, dm), mf.init_guess_breaksym)
        return np.array((dma, dmb))
    if isinstance(mf, scf.rohf.ROHF):
        dm = _minao_dm(mol, minao)
        return np.array((dm * 0.5, dm * 0.5))
    if isinstance(mf, scf.hf.RHF):
        return _minao_dm(mol, minao)
    return mf.get_init_guess()


# ------------------------------------------------------------------------------------ SCF
def _closed_shell(mol) -> bool:
    return mol.spin == 0


def _new_scf(mol, level: Level, settings: LabelSettings):
    from pyscf import dft, scf

    closed = _closed_shell(mol)
    if level.family == "dft":
        mf = dft.RKS(mol, xc=level.xc) if closed else dft.UKS(mol, xc=level.xc)
        if settings.grid_level is not None:
            mf.grids.level = settings.grid_level
    elif level.family == "fci":
        mf = scf.RHF(mol)  # ROHF orbitals for open shells; FCI does not depend on them
    elif level.reference == "rhf":
        mf = scf.RHF(mol)  # PySCF gives ROHF for open shells
    elif level.reference == "uhf" or not closed:
        mf = scf.UHF(mol)
    else:
        mf = scf.RHF(mol)
    mf.verbose = 0
    mf.chkfile = None  # no checkpoint file per molecule
    mf.conv_tol = settings.conv_tol
    mf.max_cycle = settings.max_cycle
    return mf


def run_scf(mol, level: Level, settings: LabelSettings, minao=None, dm0=None):
    """A converged SCF object, trying harder when the default DIIS fails.

    The ladder: PySCF's default (DIIS from the MINAO guess); then damping 0.5 with a level
    shift of 0.25 Hartree and twice the cycles; then a second-order (Newton) solver. Each retry
    starts from the last density. Raises CalculationFailed when all fail.

    Returns (mf, note): note says which retry converged ("" for the first attempt).
    """
    mf = _new_scf(mol, level, settings)
    dm = initial_guess(mf, minao) if dm0 is None else dm0
    mf.kernel(dm0=dm)
    if mf.converged:
        return mf, ""
    history = [f"DIIS ({settings.max_cycle} cycles, last energy {mf.e_tot:.8f})"]
    if settings.retries:
        for name in ("damping 0.5 + level shift 0.25", "second-order (Newton)"):
            last = mf.make_rdm1() if mf.mo_coeff is not None else dm
            if not np.all(np.isfinite(last)):
                last = dm
            retry = _new_scf(mol, level, settings)
            if name.startswith("damping"):
                retry.damp = 0.5
                retry.level_shift = 0.25
                retry.diis_start_cycle = 2
                retry.max_cycle = 2 * settings.max_cycle
            else:
                retry = retry.newton()
            retry.kernel(dm0=last)
            if retry.converged:
                return retry, f"SCF converged with {name}"
            history.append(f"{name} (last energy {retry.e_tot:.8f})")
            mf = retry
    raise CalculationFailed("SCF did not converge: tried " + "; ".join(history))
