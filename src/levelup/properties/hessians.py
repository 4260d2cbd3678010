"""The Cartesian Hessian of a structure from a model (exact, by autograd) or from a level of
theory: PySCF's analytic Hessian where it has one (HF and DFT, :mod:`levelup.qm.hessian`, cached
in the label cache's file), else central differences of analytic forces labelled with
:func:`levelup.label` (cached like every label). Hartree/Angstrom^2, atom-major (x0, y0, z0,
x1, ...).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from levelup.data.molecule import Molecule
from levelup.data.structure import as_molecule, database_of
from levelup.errors import ConfigError, DataError
from levelup.properties.sources import Source, source_of

#: What ``method=`` accepts: "auto" (autograd for a model; analytic where PySCF has it, else
#: "gradients"), "analytic" (autograd for a model), "gradients" (central differences of forces).
METHODS = ("auto", "analytic", "gradients")


def hessian(structure: Any, source: Any, *, method: str = "auto", step: float = 0.005,
            cache: Any = None, workers: int | None = None, progress: bool = False,
            settings: Any = None) -> np.ndarray:
    """Cartesian Hessian (3A, 3A), Hartree/Angstrom^2, atom-major, of ``structure``.

    Args:
        source: a model (ANIModel or Ensemble: exact second derivatives by autograd), a model
            file, or a level of theory "method/basis".
        method: "auto": a model's autograd; a level's analytic Hessian where PySCF has one (HF,
            DFT; :func:`levelup.qm.hessian.has_analytic_hessian`), else "gradients";
            "analytic": insist on an analytic Hessian (LevelOfTheoryError where PySCF has none);
            "gradients": central differences of forces (6A labelled gradients for a level).
        step: finite-difference displacement, Angstrom ("gradients" only).
        cache, workers, progress, settings: as for :func:`levelup.label` (levels only).
    """
    return hessian_and_method(structure, source, method=method, step=step, cache=cache,
                              workers=workers, progress=progress, settings=settings)[0]


def hessian_and_method(structure: Any, source: Any, *, method: str = "auto",
                       step: float = 0.005, cache: Any = None, workers: int | None = None,
                       progress: bool = False, settings: Any = None) -> tuple[np.ndarray, str]:
    """:func:`hessian` and how it was obtained: "autograd", "analytic" or "gradients"."""
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if not (np.isfinite(step) and step > 0):
        raise DataError(f"step must be a positive number of Angstrom; got {step}")
    mol = as_molecule(structure)
    src = source_of(source, cache=cache, workers=workers, settings=settings)
    src.check(mol)
    how = chosen_method(src, mol, method)
    if how == "autograd":
        db = database_of(mol, mol.coordinates[None])
        return src.model.predict(db, hessians=True).hessians[0], how
    if how == "analytic":
        from levelup.qm.hessian import analytic_hessian

        return analytic_hessian(mol.species, mol.coordinates, src.level, charge=mol.charge,
                                multiplicity=mol.multiplicity, settings=src.settings,
                                cache=src.cache).hessian, how
    return force_differences(mol, src, step, progress), how


def chosen_method(src: Source, mol: Molecule, method: str = "auto") -> str:
    """How ``method`` ("auto", "analytic", "gradients") gets the Hessian of ``mol`` from
    ``src``: "autograd", "analytic" or "gradients"."""
    if src.is_model:
        return "gradients" if method == "gradients" else "autograd"
    if method == "auto":
        from levelup.qm.hessian import has_analytic_hessian

        return "analytic" if has_analytic_hessian(src.level, mol.multiplicity) else "gradients"
    return method


def force_differences(mol: Molecule, src: Source, step: float = 0.005,
                      progress: bool = False) -> np.ndarray:
    """The Hessian of ``mol`` by central differences of ``src``'s forces, Hartree/Angstrom^2:
    each Cartesian coordinate displaced by +-``step`` Angstrom (6A gradients), symmetrised."""
    n3 = 3 * len(mol)
    shifts = np.zeros((2 * n3, len(mol), 3))
    for k in range(n3):
        shifts[2 * k].reshape(-1)[k] = step
        shifts[2 * k + 1].reshape(-1)[k] = -step
    _, forces = src.energies(mol, mol.coordinates[None] + shifts, forces=True, progress=progress)
    forces = np.asarray(forces).reshape(2 * n3, n3)
    h = -(forces[0::2] - forces[1::2]) / (2 * step)  # row k: d(gradient)/d(x_k)
    return (h + h.T) / 2
