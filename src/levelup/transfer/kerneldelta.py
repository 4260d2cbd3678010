"""Kernel ridge regression of (high level - low level): the delta-learning baseline for a handful
of expensive points (Ramakrishnan et al. 2015, with a kernel instead of a network).

The descriptor of a molecule is its inverse interatomic distances 1/r_ij (all pairs i < j, in the
molecule's atom order, Angstrom^-1), standardized over the points fitted; the model is
scikit-learn's ``KernelRidge`` on a precomputed Matern or Gaussian kernel, plus a constant offset
(the mean of the target, fitted separately). The kernel kind, the regularisation ``alpha`` and
the length scale (in standardized descriptor units) are chosen by cross-validation
(``GridSearchCV``: leave-one-out up to 20 points, else 5-fold, deterministic). Forces of the
correction are the analytic gradient through the descriptor. Every molecule must have the same
elements in the same order::

    delta = fit_kernel_delta(None, train, validation, high="CISD/cc-pVDZ", low="HF/STO-3G")
    delta.correction.chosen, delta.correction.cv_rmse_kcalmol
    delta.predict(db, forces=True)          # HF + correction, Hartree and Hartree/Angstrom
    delta.correction.save("delta.npz")      # plain npz + JSON; load_kernel_delta reads it back
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
import zipfile
from typing import Any

import numpy as np

from levelup.data import Database
from levelup.errors import DataError, ModelFileError
from levelup.model.predict import Prediction
from levelup.units import HARTREE_TO_KCALMOL

#: Kernel kinds and their Matern smoothness nu (inf: the Gaussian/RBF kernel). All are at least
#: once differentiable, so forces are continuous.
KINDS = {"matern32": 1.5, "matern52": 2.5, "rbf": np.inf}
#: The default grid searched by cross-validation (alpha: relative to the kernel's diagonal, 1;
#: length scales: in units of the standardized descriptors).
ALPHAS = (1e-10, 1e-8, 1e-6, 1e-4, 1e-2)
LENGTH_SCALES = tuple(float(v) for v in np.round(np.logspace(-0.5, 1.5, 9), 4))
FORMAT, VERSION = "levelup-kernel-delta", 1


# ---------------------------------------------------------------------------------- descriptor


def molecule_species(db: Database, what: str = "the database") -> np.ndarray:
    """The one species row (A,) shared by every molecule of ``db``; DataError otherwise."""
    species = np.asarray(db.species)
    if len(species) == 0:
        raise DataError(f"{what} holds no molecule")
    counts = (species > 0).sum(axis=1)
    row = species[0, :counts[0]]
    same = (counts == counts[0]) & (species[:, :counts[0]] == row).all(axis=1)
    if not same.all():
        bad = int(np.flatnonzero(~same)[0])
        raise DataError(f"kernel delta-learning needs the same atoms in the same order in every "
                        f"molecule: molecule 0 of {what} has atomic numbers {row.tolist()}, "
                        f"molecule {bad} has {species[bad, :counts[bad]].tolist()}; reorder the "
                        f"atoms, or fit one model per molecule")
    if counts[0] < 2:
        raise DataError(f"kernel delta-learning needs molecules of 2 atoms or more; {what} has "
                        f"{int(counts[0])}")
    return row


def inverse_distances(coordinates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse distances of all atom pairs i < j (``np.triu_indices`` order) and their gradient.

    Args:
        coordinates: (N, A, 3) Angstrom, no padding.
    Returns:
        (d, u): d (N, P) 1/r_ij in Angstrom^-1, P = A(A-1)/2; u (N, P, 3) = (x_i - x_j)/r_ij^3,
        so that d d_ij / d x_i = -u and d d_ij / d x_j = +u (Angstrom^-2).
    """
    i, j = np.triu_indices(coordinates.shape[1], 1)
    diff = coordinates[:, i] - coordinates[:, j]
    r = np.linalg.norm(diff, axis=-1)
    if (r < 1e-8).any():
        raise DataError("two atoms of a molecule sit on top of each other (distance 0): the "
                        "inverse-distance descriptor is undefined there")
    return 1.0 / r, diff / r[..., None] ** 3


# ---------------------------------------------------------------------------------- kernels


def kernel_matrix(kind: str, a: np.ndarray, b: np.ndarray, length_scale: float,
                  gradient: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """k(a_n, b_m) (Na, Nb) for standardized descriptors a (Na, P), b (Nb, P), and with
    ``gradient`` its derivative with respect to a: (Na, Nb, P); else None."""
    diff = (a[:, None, :] - b[None, :, :]) / length_scale
    s = np.sqrt((diff ** 2).sum(-1))
    if kind == "rbf":
        k = np.exp(-0.5 * s ** 2)
        factor = -k
    elif kind == "matern32":
        e = np.exp(-np.sqrt(3.0) * s)
        k, factor = (1 + np.sqrt(3.0) * s) * e, -3.0 * e
    elif kind == "matern52":
        e = np.exp(-np.sqrt(5.0) * s)
        k = (1 + np.sqrt(5.0) * s + 5.0 / 3.0 * s ** 2) * e
        factor = -5.0 / 3.0 * (1 + np.sqrt(5.0) * s) * e
    else:
        raise DataError(f"unknown kernel kind {kind!r}; choose among {list(KINDS)}")
    grad = factor[..., None] * diff / length_scale if gradient else None
    return k, grad


def _sklearn_kernel(kind: str, length_scale: float) -> Any:
    from sklearn.gaussian_process.kernels import RBF, Matern

    return RBF(length_scale) if kind == "rbf" else Matern(length_scale, nu=KINDS[kind])


def _estimator() -> Any:
    """A scikit-learn regressor: standardize the descriptors, subtract the mean target, fit
    ``KernelRidge`` on the precomputed kernel (so that cross-validation refits all three)."""
    from sklearn.base import BaseEstimator, RegressorMixin
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.preprocessing import StandardScaler

    class CenteredKernelRidge(RegressorMixin, BaseEstimator):
        def __init__(self, kind: str = "matern32", alpha: float = 1e-8,
                     length_scale: float = 1.0) -> None:
            self.kind, self.alpha, self.length_scale = kind, alpha, length_scale

        def fit(self, x: np.ndarray, y: np.ndarray) -> Any:
            self.scaler_ = StandardScaler().fit(x)
            self.z_ = self.scaler_.transform(x)
            self.offset_ = float(np.mean(y))
            gram = _sklearn_kernel(self.kind, self.length_scale)(self.z_)
            self.krr_ = KernelRidge(alpha=self.alpha, kernel="precomputed").fit(gram, y - self.offset_)
            return self

        def predict(self, x: np.ndarray) -> np.ndarray:
            k = _sklearn_kernel(self.kind, self.length_scale)(self.scaler_.transform(x), self.z_)
            return self.offset_ + self.krr_.predict(k)

    return CenteredKernelRidge()


# ---------------------------------------------------------------------------------- the model


class KernelCorrection:
    """A fitted kernel model of (high - low) energies; plugs into ``DeltaModel`` as its correction.

    Attributes:
        species: (A,) atomic numbers every molecule predicted must have, in this order.
        mean, scale: (P,) standardization of the inverse distances, Angstrom^-1.
        points: (M, P) standardized descriptors of the M points fitted.
        dual: (M,) KernelRidge dual coefficients, Hartree.
        offset: the mean target, Hartree.
        chosen: {"kind", "alpha", "length_scale"} picked by cross-validation.
        cv_rmse_kcalmol: the cross-validated RMSE of those settings, kcal/mol.
        info: how it was fitted (points, folds, whether validation points were pooled, ...).
    """

    def __init__(self, species: np.ndarray, mean: np.ndarray, scale: np.ndarray,
                 points: np.ndarray, dual: np.ndarray, offset: float, chosen: dict[str, Any],
                 cv_rmse_kcalmol: float, info: dict[str, Any] | None = None) -> None:
        self.species = np.asarray(species, dtype=np.int64)
        self.mean, self.scale = np.asarray(mean, float), np.asarray(scale, float)
        self.points, self.dual = np.asarray(points, float), np.asarray(dual, float).reshape(-1)
        self.offset, self.chosen = float(offset), dict(chosen)
        self.cv_rmse_kcalmol = float(cv_rmse_kcalmol)
        self.info = dict(info or {})

    def __repr__(self) -> str:
        return (f"KernelCorrection({self.chosen['kind']}, alpha={self.chosen['alpha']:g}, "
                f"length_scale={self.chosen['length_scale']:g}, {len(self.points)} points, "
                f"CV RMSE {self.cv_rmse_kcalmol:.3g} kcal/mol)")

    def descriptors(self, db: Database) -> tuple[np.ndarray, np.ndarray]:
        """(standardized descriptors (N, P), gradient u (N, P, 3)) of ``db``'s molecules."""
        row = molecule_species(db)
        if not np.array_equal(row, self.species):
            raise DataError(f"this kernel correction was fitted on molecules with atomic numbers "
                            f"{self.species.tolist()} (in that order); the database has "
                            f"{row.tolist()}: predict molecules with the same atoms in the same order")
        d, u = inverse_distances(np.asarray(db.coordinates)[:, :len(row)])
        return (d - self.mean) / self.scale, u

    def predict(self, db: Database, *, forces: bool = False, batch_size: int = 4096,
                **options: Any) -> Prediction:
        """Correction energies (N,) Hartree, and with ``forces`` (N, A, 3) Hartree/Angstrom
        (minus the analytic gradient, 0 for padding atoms). Other options (device, ...) are
        accepted and ignored: the model is numpy."""
        z, u = self.descriptors(db)
        n, atoms = len(db), len(self.species)
        energies = np.empty(n)
        out_f = np.zeros((n, np.asarray(db.coordinates).shape[1], 3)) if forces else None
        i, j = np.triu_indices(atoms, 1)
        for lo in range(0, n, batch_size):
            part = slice(lo, lo + batch_size)
            k, grad = kernel_matrix(self.chosen["kind"], z[part], self.points,
                                    self.chosen["length_scale"], gradient=forces)
            energies[part] = self.offset + k @ self.dual
            if forces:
                de_dd = np.einsum("nmp,m->np", grad, self.dual) / self.scale  # Hartree Angstrom
                pair = de_dd[..., None] * u[part]  # dE/dd_ij * u_ij, (n, P, 3)
                f = np.zeros((len(pair), atoms, 3))
                np.add.at(f, (slice(None), i), pair)  # F_i = -dE/dx_i = +dE/dd * u
                np.add.at(f, (slice(None), j), -pair)
                out_f[part, :atoms] = f
        return Prediction(energies=energies, forces=out_f)

    # ------------------------------------------------------------------ files
    def _meta(self, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "offset": self.offset, "chosen": self.chosen,
                "cv_rmse_kcalmol": self.cv_rmse_kcalmol, "info": self.info,
                "metadata": metadata if metadata is not None else self.info.get("metadata", {})}

    def checksum(self) -> str:
        """SHA-256 of the arrays and settings that determine the predictions."""
        digest = hashlib.sha256(json.dumps([self.offset, self.chosen], sort_keys=True).encode())
        for arr in (self.species, self.mean, self.scale, self.points, self.dual):
            digest.update(np.ascontiguousarray(arr).tobytes())
        return digest.hexdigest()

    def save(self, path: str | os.PathLike, metadata: dict[str, Any] | None = None) -> None:
        """Write a plain .npz (arrays, and the settings as a JSON string; no pickle)."""
        from levelup.atomicwrite import write_bytes_atomic

        buffer = io.BytesIO()
        np.savez(buffer, species=self.species, mean=self.mean, scale=self.scale,
                 points=self.points, dual=self.dual, meta=np.array(json.dumps(self._meta(metadata))))
        write_bytes_atomic(path, buffer.getvalue())


def load_kernel_delta(path: str | os.PathLike) -> KernelCorrection:
    """Read a :meth:`KernelCorrection.save` file (never unpickles). ModelFileError when the file
    is missing, truncated or not one; its ``info["metadata"]`` is what was saved with it."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in ("species", "mean", "scale", "points", "dual", "meta")}
        meta = json.loads(str(arrays.pop("meta")))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelFileError(f"{path} is not a readable kernel delta model (.npz written by "
                             f"KernelCorrection.save): {exc}; fit it again") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ModelFileError(f"{path} is not a kernel delta model of format {FORMAT!r} version "
                             f"{VERSION}; fit it again with this levelup")
    info = {**meta.get("info", {}), "metadata": meta.get("metadata", {})}
    return KernelCorrection(arrays["species"], arrays["mean"], arrays["scale"], arrays["points"],
                            arrays["dual"], meta["offset"], meta["chosen"], meta["cv_rmse_kcalmol"],
                            info)


# ---------------------------------------------------------------------------------- fitting


def fit_kernel_correction(db: Database, target: np.ndarray, *, seed: int = 0,
                          kinds: tuple[str, ...] = tuple(KINDS), alphas: tuple[float, ...] = ALPHAS,
                          length_scales: tuple[float, ...] = LENGTH_SCALES) -> KernelCorrection:
    """Fit a :class:`KernelCorrection` to ``target`` (N,) Hartree on the molecules of ``db``,
    choosing kind, alpha and length scale by cross-validation over these N points: leave-one-out
    for N <= 20, else 5-fold with folds shuffled by ``seed``. Ties go to the first of the grid."""
    from sklearn.model_selection import GridSearchCV, KFold, LeaveOneOut

    species = molecule_species(db, "the training set")
    target = np.asarray(target, dtype=np.float64)
    if target.shape != (len(db),) or not np.isfinite(target).all():
        raise DataError(f"the delta target must be one finite energy per molecule ({len(db)}); "
                        f"got shape {target.shape} with {int((~np.isfinite(target)).sum())} "
                        f"missing: label every fitted molecule at both levels")
    if len(db) < 3:
        raise DataError(f"kernel delta-learning cross-validates its settings and needs at least 3 "
                        f"high-level points; got {len(db)}")
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise DataError(f"unknown kernel kinds {bad or '(none given)'}; choose among {list(KINDS)}")
    d, _ = inverse_distances(np.asarray(db.coordinates)[:, :len(species)])
    cv = LeaveOneOut() if len(db) <= 20 else KFold(5, shuffle=True, random_state=seed)
    grid = {"kind": list(kinds), "alpha": list(alphas), "length_scale": list(length_scales)}
    search = GridSearchCV(_estimator(), grid, cv=cv, scoring="neg_mean_squared_error",
                          error_score="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ill-conditioned trial settings: CV scores them badly
        search.fit(d, target)
    best = search.best_estimator_
    chosen = {"kind": best.kind, "alpha": float(best.alpha),
              "length_scale": float(best.length_scale)}
    info = {"points": len(db), "cv": "leave-one-out" if len(db) <= 20 else "5-fold",
            "seed": seed, "grid": {k: [str(x) if isinstance(x, str) else float(x) for x in v]
                                   for k, v in grid.items()}}
    return KernelCorrection(species, best.scaler_.mean_, best.scaler_.scale_, best.z_,
                            best.krr_.dual_coef_, best.offset_, chosen,
                            np.sqrt(-search.best_score_) * HARTREE_TO_KCALMOL, info)


def fit_kernel_delta(base: Any, train: Database, validation: Database | None = None, *, high: str,
                     low: str | None = None, seed: int = 0, pool_validation: bool = True,
                     **grid: Any) -> Any:
    """Fit kernel ridge regression of high - low and return the combined ``DeltaModel``.

    The low level is ``base``'s prediction, or property ``low`` (Hartree) of the databases when
    ``base`` is None, like :func:`levelup.transfer.delta.fit_delta`. With ``pool_validation`` (default)
    the validation points join the training points, in the cross-validation and in the final
    fit (a kernel model has no early stopping to spend them on); otherwise they are only scored:
    ``correction.info["validation_rmse_kcalmol"]``. ``grid``: kinds, alphas, length_scales.
    """
    from levelup.transfer.delta import DeltaModel, delta_target

    if base is None and low is None:
        raise DataError("give a low-level model (base) or the low-level property (low)")
    fitted = train
    if validation is not None and len(validation) and pool_validation:
        fitted = Database.concatenate([train, validation])
    correction = fit_kernel_correction(fitted, delta_target(fitted, base, high, low), seed=seed,
                                       **grid)
    correction.info["pooled_validation"] = bool(fitted is not train)
    if validation is not None and len(validation) and not pool_validation:
        err = correction.predict(validation).energies - delta_target(validation, base, high, low)
        correction.info["validation_rmse_kcalmol"] = float(np.sqrt(np.mean(err ** 2))
                                                           * HARTREE_TO_KCALMOL)
    return DeltaModel(base, correction, low)


__all__ = ["KINDS", "KernelCorrection", "fit_kernel_correction", "fit_kernel_delta",
           "inverse_distances", "kernel_matrix", "load_kernel_delta", "molecule_species"]
