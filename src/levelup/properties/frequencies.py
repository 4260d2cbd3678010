"""Harmonic vibrational frequencies of a structure on a model or a level of theory, by default
at the structure optimised on that same source:

    f = frequencies("water.xyz", "HF/STO-3G")   # optimise, then PySCF's analytic Hessian
    f = frequencies("water.xyz", "transferred.pt")
    f.wavenumbers                                # cm^-1, ascending; negative = imaginary

The Hessian comes from :mod:`levelup.properties.hessians` (autograd for a model; PySCF's
analytic Hessian for HF and DFT; central differences of analytic gradients for other levels);
translations and rotations are projected out in :mod:`levelup.data.normalmodes`. A saddle point
found by constrained minimisation (planar NH3) shows its imaginary mode as a negative number.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from levelup.data.molecule import Molecule
from levelup.data.normalmodes import NormalModes, normal_modes
from levelup.errors import DataError
from levelup.properties.hessians import hessian_and_method
from levelup.properties.optimize import FMAX, STEPS, Optimized, optimize, starting_structure
from levelup.properties.sources import source_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frequencies:
    """Harmonic vibrations of one structure on one source.

    Attributes:
        wavenumbers: (modes,) cm^-1, ascending; negative for imaginary frequencies (a structure
            that is not a minimum: a saddle point has one).
        modes: the normal modes (displacements (modes, atoms, 3), force constants, masses).
        structure: the geometry they were computed at (optimised unless asked otherwise).
        source: the model or level.
        hessian_method: "autograd" (a model), "analytic" (PySCF's analytic Hessian) or
            "gradients" (central differences of forces).
        hessian: (3A, 3A) Cartesian Hessian, Hartree/Angstrom^2, atom-major.
        optimized: the optimisation that gave ``structure``, or None when it was taken as given.
    """

    wavenumbers: np.ndarray
    modes: NormalModes
    structure: Molecule
    source: str
    hessian_method: str
    hessian: np.ndarray
    optimized: Optimized | None = None

    @property
    def imaginary(self) -> np.ndarray:
        """The imaginary frequencies, as negative wavenumbers (cm^-1)."""
        return self.wavenumbers[self.wavenumbers < 0]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (units in the keys); the Hessian and the mode displacements
        are left out of this summary (they are attributes)."""
        return {
            "source": self.source,
            "hessian_method": self.hessian_method,
            "wavenumbers_cm-1": [float(w) for w in self.wavenumbers],
            "imaginary": int(self.imaginary.size),
            "symbols": self.structure.symbols,
            "coordinates_angstrom": np.asarray(self.structure.coordinates).tolist(),
            "optimized": self.optimized.to_dict() if self.optimized is not None else None,
        }


def frequencies(structure: Any, source: Any, *, optimize_first: bool = True,
                constraints: Any = None, method: str = "auto", fmax: float = FMAX,
                steps: int = STEPS, step: float = 0.005, cache: Any = None,
                workers: int | None = 1, progress: bool = False,
                settings: Any = None) -> Frequencies:
    """Harmonic wavenumbers (cm^-1) and normal modes of ``structure`` on ``source``.

    Args:
        structure: a Molecule, a one-molecule Database, an ase.Atoms, a file, or an
            :class:`Optimized` (taken as it is: no second optimisation).
        source: a model, a model file, or a level of theory "method/basis".
        optimize_first: optimise on ``source`` first (with ``constraints``, ``fmax``,
            ``steps``; see :func:`levelup.properties.optimize.optimize`); frequencies away from a
            stationary point mean little.
        constraints: for the optimisation only (e.g. "planar" for NH3's inversion saddle); the
            Hessian is always the full, unconstrained one.
        method: "auto", "analytic" or "gradients" (:func:`levelup.properties.hessians.hessian`).
        step: finite-difference displacement, Angstrom ("gradients" only).
        cache, workers, progress, settings: how a level is labelled (:func:`levelup.label`);
            analytic Hessians are cached in the same file.
    """
    src = source_of(source, cache=cache, workers=workers, settings=settings)
    opt = structure if isinstance(structure, Optimized) else None
    mol = starting_structure(structure)
    src.check(mol)
    if optimize_first and opt is None:
        opt = optimize(mol, src, fmax=fmax, steps=steps, constraints=constraints,
                       progress=progress, cache=cache, workers=workers, settings=settings)
        if not opt.converged:
            log.warning("the optimisation on %s did not converge in %d steps (largest force "
                        "%.1e Hartree/Angstrom): its frequencies are not those of a stationary "
                        "point", src.name, opt.steps, opt.fmax)
    if opt is not None:
        mol = opt.structure
    h, how = hessian_and_method(mol, src, method=method, step=step, cache=cache, workers=workers,
                                progress=progress, settings=settings)
    modes = normal_modes(mol, h)
    return Frequencies(wavenumbers=modes.wavenumbers, modes=modes, structure=mol,
                       source=src.name, hessian_method=how, hessian=h, optimized=opt)


@dataclass(frozen=True)
class FrequencyComparison:
    """One set of harmonic wavenumbers against a reference's (a model's against the high
    level's), mode by mode in ascending order.

    Attributes:
        wavenumbers: (modes,) cm^-1 of the structure compared.
        reference: (modes,) cm^-1 of the reference.
        differences: (modes,) wavenumbers minus reference, cm^-1.
    """

    wavenumbers: np.ndarray
    reference: np.ndarray
    differences: np.ndarray

    @property
    def max_abs(self) -> float:
        """The largest absolute difference, cm^-1."""
        return float(np.abs(self.differences).max(initial=0.0))

    @property
    def mean_abs(self) -> float:
        """The mean absolute difference, cm^-1 (0 without modes)."""
        return float(np.abs(self.differences).mean()) if self.differences.size else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (cm^-1)."""
        return {"wavenumbers_cm-1": [float(w) for w in self.wavenumbers],
                "reference_cm-1": [float(w) for w in self.reference],
                "differences_cm-1": [float(d) for d in self.differences],
                "max_abs_cm-1": self.max_abs, "mean_abs_cm-1": self.mean_abs}


def compare_frequencies(freq: Frequencies, reference: Frequencies) -> FrequencyComparison:
    """``freq``'s wavenumbers minus ``reference``'s, the k-th lowest against the k-th lowest.

    Pairing by order is right while both surfaces order the modes alike; where two modes
    cross (a poor model), compare the modes (``Frequencies.modes.displacements``) by hand.
    Raises DataError for structures of different atoms."""
    if not np.array_equal(freq.structure.species, reference.structure.species):
        raise DataError(f"frequencies of different molecules ({freq.structure.formula} vs "
                        f"{reference.structure.formula}) cannot be compared mode by mode")
    mine, theirs = np.sort(freq.wavenumbers), np.sort(reference.wavenumbers)
    if mine.shape != theirs.shape:  # a linear and a bent geometry of the same atoms
        raise DataError(f"{mine.size} modes against {theirs.size}: one structure is linear and "
                        "the other is not; compare structures of the same shape")
    return FrequencyComparison(wavenumbers=mine, reference=theirs, differences=mine - theirs)
