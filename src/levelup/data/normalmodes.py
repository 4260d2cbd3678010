"""Harmonic normal modes of a molecule from its Cartesian Hessian: mass-weighting, translations
and rotations projected out, wavenumbers in cm^-1 (ASE's conversion). Pure numpy: where the
Hessian comes from (a model or a level of theory) is :mod:`levelup.properties.hessians`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from levelup.data.rigidbody import rigid_motions
from levelup.data.structure import as_molecule
from levelup.errors import DataError


@dataclass(frozen=True)
class NormalModes:
    """Harmonic vibrations of a molecule (translations and rotations projected out).

    Attributes:
        wavenumbers: (modes,) cm^-1, ascending; negative for imaginary frequencies (a structure
            that is not a minimum).
        force_constants: (modes,) curvature along each mass-weighted mode, Hartree/(Angstrom^2
            amu); negative for imaginary modes.
        displacements: (modes, atoms, 3) Cartesian displacement (Angstrom) per unit of
            mass-weighted normal coordinate (Angstrom amu^1/2): M^-1/2 times the orthonormal
            mass-weighted eigenvector.
        masses: (atoms,) amu.
    """

    wavenumbers: np.ndarray
    force_constants: np.ndarray
    displacements: np.ndarray
    masses: np.ndarray


def wavenumber_per_root_curvature() -> float:
    """cm^-1 per sqrt(Hartree/(Angstrom^2 amu)): ASE's conversion (ase.vibrations),
    hbar omega = s sqrt(curvature in eV/(Angstrom^2 amu))."""
    from ase.units import Hartree, _amu, _e, _hbar, invcm

    s = _hbar * 1e10 / np.sqrt(_e * _amu)  # eV per sqrt(eV/(Angstrom^2 amu))
    return float(s * np.sqrt(Hartree) / invcm)


def normal_modes(structure: Any, hessian: np.ndarray) -> NormalModes:
    """Normal modes of ``structure`` from its Cartesian Hessian (3A, 3A), Hartree/Angstrom^2,
    ordered atom-major (x0, y0, z0, x1, ...), e.g. ``model.predict(db, hessians=True)`` or
    :func:`levelup.properties.hessians.hessian`. Masses are ASE's standard atomic masses.
    """
    from ase.data import atomic_masses

    mol = as_molecule(structure)
    n3 = 3 * len(mol)
    h = np.asarray(hessian, dtype=np.float64)
    if h.shape != (n3, n3) or not np.isfinite(h).all():
        raise DataError(f"the Hessian of a {len(mol)}-atom molecule must be a finite ({n3}, {n3}) "
                        f"array; got shape {h.shape}")
    masses = atomic_masses[mol.species]
    inv_sqrt_m = np.repeat(masses ** -0.5, 3)
    weighted = inv_sqrt_m[:, None] * (h + h.T) / 2 * inv_sqrt_m[None]
    rigid = rigid_motions(mol.coordinates, masses, tolerance=1e-6)  # mass-weighted
    rigid = rigid[:, rigid.any(axis=0)]  # a linear molecule has one rotation fewer
    # an orthonormal basis of the vibrations: the complement of the rigid motions
    q, _ = np.linalg.qr(np.concatenate([rigid, np.eye(n3)], axis=1))
    basis = q[:, rigid.shape[1]:n3]
    curvature, vectors = np.linalg.eigh(basis.T @ weighted @ basis)
    modes = (basis @ vectors).T  # (modes, 3A), orthonormal in mass-weighted coordinates
    wavenumbers = np.sign(curvature) * np.sqrt(np.abs(curvature)) * wavenumber_per_root_curvature()
    return NormalModes(wavenumbers=wavenumbers, force_constants=curvature,
                       displacements=(modes * inv_sqrt_m[None]).reshape(-1, len(mol), 3),
                       masses=masses)
