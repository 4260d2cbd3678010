"""The Cartesian Hessian of a structure from a model (exact, by autograd) or from a level of
theory (central differences of analytic forces labelled with PySCF, cached like every label).
Hartree/Angstrom^2, atom-major (x0, y0, z0, x1, ...).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from levelup.data.structure import as_molecule, database_of
from levelup.errors import DataError


def hessian(structure: Any, source: Any, *, step: float = 0.005, cache: Any = None,
            workers: int | None = None, progress: bool = False) -> np.ndarray:
    """Cartesian Hessian (3A, 3A), Hartree/Angstrom^2, atom-major, of ``structure``.

    Args:
        source: a model (ANIModel or Ensemble: exact second derivatives by autograd), a model
            file, or a level of theory "method/basis" with analytic forces ("HF/STO-3G"):
            central differences of forces labelled with :func:`levelup.label` (6A + ...
            gradient calculations, cached like every label).
        step: finite-difference displacement, Angstrom (levels only).
        cache, workers, progress: passed to :func:`levelup.label` (levels only).
    """
    mol = as_molecule(structure)
    db = database_of(mol, mol.coordinates[None])
    if isinstance(source, (str, os.PathLike)) and os.path.isfile(source):
        from levelup.model.files import load_model

        source = load_model(source)
    if hasattr(source, "predict"):
        return source.predict(db, hessians=True).hessians[0]
    if not isinstance(source, str):
        raise DataError(f"a Hessian comes from a model, a model file or a level of theory string; "
                        f"got {type(source).__name__}")
    if not step > 0:
        raise DataError(f"step must be a positive number of Angstrom; got {step}")
    from levelup.qm import label

    n3 = 3 * len(mol)
    shifts = np.zeros((2 * n3, len(mol), 3))
    for k in range(n3):
        shifts[2 * k].reshape(-1)[k] = step
        shifts[2 * k + 1].reshape(-1)[k] = -step
    displaced = database_of(mol, mol.coordinates[None] + shifts)
    labelled = label(displaced, source, forces=True, cache=cache, workers=workers,
                     progress=progress, name="hessian")
    forces = labelled.get("forces/hessian").reshape(2 * n3, n3)
    if not np.isfinite(forces).all():
        raise DataError(f"some displaced geometries could not be labelled at {source}; the "
                        "Hessian needs all of them")
    h = -(forces[0::2] - forces[1::2]) / (2 * step)  # row k: d(gradient)/d(x_k)
    return (h + h.T) / 2
