"""Rigid-body motions of a geometry: the translations and rotations that leave every distance
unchanged, as an orthonormal basis of Cartesian displacement space.

One implementation serves two uses: normal modes (:mod:`levelup.data.normalmodes`) project them
out of the mass-weighted Hessian (weights = atomic masses), and the smoothness prior of
:mod:`levelup.transfer.priors` projects them out of random displacements and force changes in
plain Cartesian coordinates (weights = 1 for real atoms, 0 for padding).
"""

from __future__ import annotations

import numpy as np


def rigid_motions(coordinates: np.ndarray, weights: np.ndarray, tolerance: float = 1e-8
                  ) -> np.ndarray:
    """Orthonormal basis of the rigid-body motions of each geometry in ``sqrt(weights)``-scaled
    coordinates (with masses as weights: the mass-weighted coordinates of normal-mode analysis).

    The three translations ``sqrt(w_i) e_k`` and three rotations ``sqrt(w_i) e_k x (r_i - c)``
    about the weighted centre ``c = sum_i w_i r_i / sum_i w_i`` are orthonormalised by an SVD.
    Motions that do not exist (the rotation about a linear molecule's axis, the rotations of one
    atom) give zero columns, so every geometry of a batch has the same number of columns; keep
    ``basis[..., basis.any(axis=-2)]`` for one geometry's non-zero columns only.

    Args:
        coordinates: (..., atoms, 3) Angstrom; any leading batch shape (geometries).
        weights: (..., atoms) per-atom weight >= 0: masses (amu) for mass-weighted coordinates,
            1 for plain Cartesian ones; 0 marks a padding atom (its rows stay zero).
        tolerance: a motion is kept when its singular value exceeds ``tolerance`` times the
            largest one of its geometry.

    Returns:
        (..., 3 * atoms, min(3 * atoms, 6)) array, the dtype of ``coordinates``; rows atom-major (x0, y0, z0,
        x1, ...), columns orthonormal or zero.
    """
    xyz = np.asarray(coordinates)
    w = np.asarray(weights, dtype=xyz.dtype)[..., None]  # (..., atoms, 1)
    total = w.sum(-2, keepdims=True)
    total = np.where(total > 0, total, 1)  # a geometry of padding only: any centre will do
    centre = (xyz * w).sum(-2, keepdims=True) / total
    root = np.sqrt(w)
    relative = (xyz - centre) * root
    eye = np.eye(3, dtype=xyz.dtype)
    motions = []  # translation then rotation along each axis (the order fixes the SVD's signs)
    for k in range(3):
        motions.append(np.broadcast_to(root * eye[k], xyz.shape))
        motions.append(np.cross(np.broadcast_to(eye[k], xyz.shape), relative))
    shape = (*xyz.shape[:-2], 3 * xyz.shape[-2])
    vectors = np.stack([v.reshape(shape) for v in motions], axis=-1)
    u, s, _ = np.linalg.svd(vectors, full_matrices=False)  # (..., 3A, 6), (..., 6)
    keep = s > tolerance * np.maximum(s[..., :1], 1e-300)
    return u * keep[..., None, :]


__all__ = ["rigid_motions"]
