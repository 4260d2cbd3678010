"""One molecule -> energy (and forces) with PySCF. The only module that knows Bohr.

Geometries go to PySCF in Angstrom (PySCF converts with its own Bohr constant); gradients come
back in Hartree/Bohr and are converted here, with that same constant, to forces in
Hartree/Angstrom.

What makes many small calculations fast: each worker thread keeps, per molecule type (species,
charge, multiplicity, level), one PySCF ``Mole`` whose basis was parsed once, and moves its atoms
with ``set_geom_``; the SCF initial guess is PySCF's own default (MINAO) but computed from a
projection basis built once instead of re-reading the ANO basis file for every molecule; no
checkpoint files, nothing printed, no background I/O threads in CISD/CCSD. The numbers are those
of plain PySCF with default settings.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from levelup.elements import symbol
from levelup.qm.levels import Level, basis_ecp
from levelup.qm.scf import CalculationFailed, minao_projection_basis, run_scf
from levelup.qm.settings import LabelSettings


@dataclass(frozen=True)
class Job:
    """What to compute for one kind of molecule (everything but the coordinates).

    Attributes:
        level: the level of theory.
        species: atomic numbers, (atoms,).
        charge: total charge.
        multiplicity: 2S+1.
        forces: "none", "analytic" or "numerical".
        settings: convergence settings.
    """

    level: Level
    species: tuple[int, ...]
    charge: int = 0
    multiplicity: int = 1
    forces: str = "none"
    settings: LabelSettings = field(default_factory=LabelSettings)


@dataclass
class Outcome:
    """The result of one calculation.

    Attributes:
        energy: total energy, Hartree (NaN when the calculation failed).
        forces: (atoms, 3) Hartree/Angstrom, or None when not asked or failed.
        error: None on success, else why the calculation failed (a non-converged SCF, ...).
        seconds: wall time of the calculation.
        note: how the SCF converged when it needed a retry ("" for the first attempt).
    """

    energy: float
    forces: np.ndarray | None = None
    error: str | None = None
    seconds: float = 0.0
    note: str = ""

    @property
    def ok(self) -> bool:
        """True when the calculation gave a number (no ``error``)."""
        return self.error is None


def compute(job: Job, coordinates: np.ndarray) -> Outcome:
    """Energy (and forces) of one molecule. Never raises for a failed calculation: the reason
    is in ``Outcome.error`` and the energy is NaN.

    Args:
        job: level, species, charge, multiplicity, forces mode, settings.
        coordinates: (atoms, 3) Angstrom.
    """
    start = time.perf_counter()
    try:
        energy, forces, note = _compute(job, np.asarray(coordinates, dtype=np.float64))
    except CalculationFailed as exc:
        return Outcome(math.nan, None, str(exc), time.perf_counter() - start)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # a PySCF error on one molecule must not stop the run
        text = " ".join(str(exc).split())[:300]
        return Outcome(math.nan, None, f"{type(exc).__name__}: {text}", time.perf_counter() - start)
    return Outcome(energy, forces, None, time.perf_counter() - start, note)


def compute_many(job: Job, coordinates: list[np.ndarray], threads: int | None = None
                 ) -> list[Outcome]:
    """:func:`compute` for several geometries of one kind of molecule (one task on Dask).

    ``threads`` sets PySCF's OpenMP threads for the calling thread (OpenMP's setting is per
    thread, so this does not touch other threads of a Dask worker)."""
    if threads is not None:
        from pyscf import lib

        lib.num_threads(threads)
    return [compute(job, xyz) for xyz in coordinates]


# ---------------------------------------------------------------------------------- systems
class _System:
    """A PySCF Mole built once per kind of molecule, and the pieces of its initial guess."""

    def __init__(self, job: Job, coordinates: np.ndarray) -> None:
        from pyscf import gto

        symbols = [symbol(z) for z in job.species]
        self.mol = gto.M(
            atom=list(zip(symbols, coordinates.tolist(), strict=True)),
            basis=job.level.basis,
            ecp=basis_ecp(job.level.basis, set(symbols)),
            charge=job.charge,
            spin=job.multiplicity - 1,
            unit="Angstrom",
            verbose=0,
        )
        self.minao = minao_projection_basis(self.mol)

    def move(self, coordinates: np.ndarray):
        self.mol.set_geom_(coordinates, unit="Angstrom")
        return self.mol


_local = threading.local()
_MAX_SYSTEMS = 32  # kinds of molecules kept per thread


def _system(job: Job, coordinates: np.ndarray) -> _System:
    systems = getattr(_local, "systems", None)
    if systems is None:
        systems = _local.systems = OrderedDict()
    key = (job.level.basis, job.species, job.charge, job.multiplicity)
    found = systems.get(key)
    if found is None:
        found = systems[key] = _System(job, coordinates)
        if len(systems) > _MAX_SYSTEMS:
            systems.popitem(last=False)
    else:
        systems.move_to_end(key)
        found.move(coordinates)
    return found


# ------------------------------------------------------------------------- energy/forces
def _compute(job: Job, coordinates: np.ndarray) -> tuple[float, np.ndarray | None, str]:
    if coordinates.shape != (len(job.species), 3):
        raise CalculationFailed(f"coordinates have shape {coordinates.shape}; expected "
                                f"({len(job.species)}, 3)")
    system = _system(job, coordinates)
    mol = system.mol
    if job.forces == "numerical":
        return _numerical(job, system, coordinates)
    mf, note = run_scf(mol, job.level, job.settings, system.minao)
    energy, solver = _correlate(mf, job.level)
    forces = None
    if job.forces == "analytic":
        forces = -_gradient(mf, solver, job.level) / _bohr()  # (atoms, 3) Hartree/Angstrom
        if not np.all(np.isfinite(forces)):
            raise CalculationFailed("the analytic gradient is not finite")
    if not math.isfinite(energy):
        raise CalculationFailed("the energy is not finite")
    return energy, forces, note


def _bohr() -> float:
    """Angstrom per Bohr as PySCF uses it, so that gradients convert back consistently with
    the geometry PySCF was given."""
    from pyscf.lib import param

    return float(param.BOHR)


def _correlate(mf, level: Level):
    """Total energy (Hartree) at ``level`` on top of converged ``mf``, and the solver object."""
    family = level.family
    if family in ("hf", "dft"):
        return float(mf.e_tot), mf
    if family == "mp2":
        from pyscf import mp

        solver = mp.MP2(mf)
        solver.verbose = 0
        solver.kernel()
        return float(solver.e_tot), solver
    if family == "cisd":
        from pyscf import ci

        solver = ci.CISD(mf)
        solver.verbose = 0
        solver.async_io = False  # a prefetch thread per contraction costs more than it saves here
        solver.kernel()
        if not solver.converged:
            raise CalculationFailed("CISD (Davidson) did not converge")
        return float(solver.e_tot), solver
    if family in ("ccsd", "ccsd(t)"):
        from pyscf import cc

        solver = cc.CCSD(mf)
        solver.verbose = 0
        solver.async_io = False
        solver.kernel()
        if not solver.converged:
            raise CalculationFailed("CCSD amplitudes did not converge")
        energy = float(solver.e_tot)
        if family == "ccsd(t)":
            energy += float(solver.ccsd_t())
        return energy, solver
    if family == "fci":
        from pyscf import fci

        solver = fci.FCI(mf)
        solver.verbose = 0
        s = (mf.mol.multiplicity - 1) / 2
        fci.addons.fix_spin_(solver, ss=s * (s + 1))  # the asked spin state, not the lowest
        energy, _ = solver.kernel()
        if not getattr(solver, "converged", True):
            raise CalculationFailed("FCI (Davidson) did not converge")
        return float(energy), solver
    raise CalculationFailed(f"unknown method family {family!r}")


def _gradient(mf, solver, level: Level) -> np.ndarray:
    """Analytic nuclear gradient, (atoms, 3) Hartree/Bohr."""
    family = level.family
    if family in ("hf", "dft"):
        grad = mf.nuc_grad_method()
    elif family == "ccsd(t)":
        return _ccsd_t_gradient(mf, solver)
    else:
        grad = solver.nuc_grad_method()
    grad.verbose = 0
    out = np.asarray(grad.kernel(), dtype=np.float64)
    if getattr(solver, "converged_lambda", True) is False:
        raise CalculationFailed(f"{level.method} lambda equations did not converge")
    return out


def _ccsd_t_gradient(mf, solver) -> np.ndarray:
    """CCSD(T) gradient: it needs the (T) lambda amplitudes (the CCSD ones give gradients off
    by ~1e-4 Hartree/Angstrom)."""
    from pyscf import scf

    if isinstance(mf, scf.uhf.UHF):
        from pyscf.cc import uccsd_t_lambda as lambdas
    else:
        from pyscf.cc import ccsd_t_lambda as lambdas
    eris = solver.ao2mo()
    t1, t2 = solver.t1, solver.t2
    converged, l1, l2 = lambdas.kernel(solver, eris, t1, t2, verbose=0)
    if not converged:
        raise CalculationFailed("CCSD(T) lambda equations did not converge")
    if isinstance(mf, scf.uhf.UHF):
        return _uccsd_t_gradient(solver, t1, t2, l1, l2, eris)
    from pyscf.grad import ccsd_t

    grad = ccsd_t.Gradients(solver)
    grad.verbose = 0
    return np.asarray(grad.kernel(t1, t2, l1, l2, eris=eris), dtype=np.float64)


def _uccsd_t_gradient(solver, t1, t2, l1, l2, eris) -> np.ndarray:
    """UCCSD(T) gradient, as ``pyscf.grad.uccsd_t.grad_elec`` but with the virtual-virtual
    blocks of the two-particle density compressed here, correctly: PySCF 2.14 counts the
    mixed-spin block twice (pyscf issue 3305, fixed by pyscf PR 3387), which puts its
    gradients ~1e-3 Hartree/Angstrom off finite differences. Compressing the uncompressed
    density ourselves gives the right answer with either version."""
    from pyscf import lib
    from pyscf.cc import uccsd_t_rdm
    from pyscf.grad import uccsd as uccsd_grad

    d1 = uccsd_t_rdm._gamma1_intermediates(solver, t1, t2, l1, l2, eris, for_grad=True)
    d2 = uccsd_t_rdm._gamma2_intermediates(solver, t1, t2, l1, l2, eris, compress_vvvv=False)
    nvira, nvirb = t2[1].shape[2:]
    idxa = np.tril_indices(nvira)
    idxa = idxa[0] * nvira + idxa[1]
    idxb = np.tril_indices(nvirb)
    idxb = idxb[0] * nvirb + idxb[1]

    def compress(block, n1, n2, i1, i2):  # (ab|cd) -> lower triangles of ab and cd, symmetrized
        block = block + block.transpose(1, 0, 2, 3)
        return lib.take_2d(block.reshape(n1 * n1, n2 * n2), i1, i2) * 0.5

    dvvvv, dvvVV, dVVvv, dVVVV = d2[1]
    vvvv = (compress(dvvvv, nvira, nvira, idxa, idxa), compress(dvvVV, nvira, nvirb, idxa, idxb),
            dVVvv, compress(dVVVV, nvirb, nvirb, idxb, idxb))
    d2 = (d2[0], vvvv, *d2[2:])
    grad = uccsd_grad.Gradients(solver)
    grad.verbose = 0
    de = uccsd_grad.grad_elec(grad, t1, t2, l1, l2, eris, None, d1, d2, verbose=0)
    return np.asarray(de + grad.grad_nuc(), dtype=np.float64)


def _numerical(job: Job, system: _System, coordinates: np.ndarray):
    """Energy and central finite-difference forces: 6N + 1 energies."""
    mol = system.mol
    mf, note = run_scf(mol, job.level, job.settings, system.minao)
    energy, _ = _correlate(mf, job.level)
    dm_ref = mf.make_rdm1()
    step = job.settings.fd_step
    forces = np.zeros_like(coordinates)
    for atom in range(len(coordinates)):
        for axis in range(3):
            values = []
            for sign in (1.0, -1.0):
                displaced = coordinates.copy()
                displaced[atom, axis] += sign * step
                system.move(displaced)
                shifted, _ = run_scf(mol, job.level, job.settings, system.minao, dm0=dm_ref)
                values.append(_correlate(shifted, job.level)[0])
            forces[atom, axis] = -(values[0] - values[1]) / (2.0 * step)
    system.move(coordinates)
    return energy, forces, note
