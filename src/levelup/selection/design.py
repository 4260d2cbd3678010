"""Choosing the high-level points by Bayesian experimental design in the transfer's own
feature space: the ``design`` strategy of :func:`levelup.select`.

The default transfer (:mod:`levelup.transfer.linear`) changes only the output layers, so the
transferred energy of a geometry ``x`` is the pre-trained one plus ``phi(x) . dw``, with
``phi(x)`` the derivative of the energy with respect to the output layers' parameters
(:func:`levelup.transfer.outputlayer.features`: the summed last hidden activations per element,
and the atom counts for the biases). Give the change ``dw`` a Gaussian prior (unit variance per
weight, :data:`BIAS_VARIANCE` per bias, so the per-element offsets are nearly free) and each
label Gaussian noise; then the variance of the transferred energy at every pool geometry after
labelling a set ``S`` is the Gaussian-process posterior variance with the kernel
``phi(x)^T P phi(y)``, and it does not depend on the labels.

The strategy picks, one at a time, the geometry whose label lowers the *summed* posterior
variance over the whole pool the most (integrated variance reduction, an I-optimal design;
MacKay 1992, Cohn et al. 1996). Summed over the pool, not the largest at one geometry: the
largest-variance rule takes outliers (it is farthest-point sampling in this space), while the
summed one takes geometries that stand for many others, which is what an RMSE over the pool
rewards. With the posterior covariance ``C`` (parameters x parameters) and ``G = Phi^T Phi``
over the pool, the reduction from labelling ``x`` is
``phi^T C G C phi / (phi^T C phi + noise)``; after the pick, ``C`` takes the rank-one update.

It needs the pre-trained model and the geometries only: no label at either level, no seed, and
it costs ``O(budget * pool * parameters^2)`` (a 451-geometry pool and 194 parameters: under a
second). From an Ensemble, the members' feature columns are put side by side (the kernel is the
sum of the members').

With ``targets`` (linear functionals of the same weights: the energy differences between named
structures, :mod:`levelup.selection.targets`), the summed variance is a mixture: a share
:data:`TARGET_SHARE` of the targets' mean variance and the rest the pool's mean variance, each
first scaled to 1 under the prior. So the points pin the barrier without leaving the rest of
the surface unlabelled. The equal share was the one value tried; on the ammonia inversion (20
points) it took the barrier's error from 0.27-0.36 to 0.13-0.23 kcal/mol (energies) and from
0.25-0.54 to 0.00-0.03 (with forces). On the methanol torsion, which took no part in the
choice, it neither helped nor hurt (0.44 against 0.49 kcal/mol): there even every pool geometry
leaves 0.14-0.43, the pre-trained model being the limit (bench/RESULTS.md, "properties").

The noise (:data:`NOISE`, relative to the mean prior variance of a pool energy) sets how soon a
neighbourhood counts as known. 0.01 was chosen against 0.1 on the selection benchmark's H2,
water, ammonia, HCN and methanol pools (bench/RESULTS.md, section "selection"), and checked
unchanged on formaldehyde, which took no part in the choice.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from levelup.data import Database
from levelup.errors import ConfigError, DataError
from levelup.transfer.outputlayer import bias_columns, features

#: label noise variance, relative to the mean prior variance of the pool's energies (module
#: docstring)
NOISE = 0.01
#: share of the summed variance given to the targets' mean variance when there are targets
TARGET_SHARE = 0.5
#: prior variance of an output bias (a per-element energy offset), relative to a weight's 1
BIAS_VARIANCE = 1e3
#: molecules per feature batch (keeps memory flat on large pools)
CHUNK = 2048


def transfer_features(pool: Database, model: Any) -> tuple[np.ndarray, np.ndarray]:
    """(features (molecules, parameters) float64, prior variance of each parameter).

    The features of every pool geometry for the output layers of ``model`` (an ANIModel, or
    an Ensemble: its members' columns side by side); the prior variance is 1 for a weight and
    :data:`BIAS_VARIANCE` for a bias.
    """
    if len(pool) == 0:
        raise DataError("cannot choose from an empty pool")
    members = list(getattr(model, "members", None) or [model])
    missing = sorted(set(pool.elements) - set(members[0].elements))
    if missing:
        raise DataError(f"the pool has elements {missing} (atomic numbers) that the model "
                        f"lacks (it has {list(members[0].elements)}): give a model trained on "
                        "them")
    blocks, variances = [], []
    xyz = torch.from_numpy(np.asarray(pool.coordinates, dtype=np.float64))
    for member in members:
        species = member.species_index(pool.species)
        rows = [features(member, species[i:i + CHUNK], xyz[i:i + CHUNK]).numpy()
                for i in range(0, len(pool), CHUNK)]
        blocks.append(np.concatenate(rows))
        prior = np.ones(blocks[-1].shape[1])
        prior[bias_columns(member)] = BIAS_VARIANCE
        variances.append(prior)
    return np.concatenate(blocks, 1), np.concatenate(variances)


def integrated_variance_design(phi: np.ndarray, prior: np.ndarray, budget: int,
                               noise: float = NOISE, targets: np.ndarray | None = None,
                               share: float = TARGET_SHARE) -> np.ndarray:
    """``budget`` distinct rows of ``phi`` (molecules, parameters), chosen greedily to lower the
    summed posterior variance over all rows the most (module docstring); ``prior`` is the prior
    variance of each parameter, ``noise`` the label noise relative to the mean prior variance
    of a row's value from the weights (columns with prior variance 1). With ``targets``
    (functionals, parameters), a ``share`` of the objective is their mean variance and the rest
    the rows' mean variance, each scaled to 1 under the prior. Deterministic: ties go to the
    lowest row."""
    phi = np.asarray(phi, dtype=np.float64)
    weights = prior == 1.0
    scale = float(np.mean(np.sum(phi[:, weights] ** 2, 1))) if weights.any() else 1.0
    sigma2 = noise * scale if scale > 0 else noise
    covariance = np.diag(prior.astype(np.float64))
    gram = _objective(phi, prior, targets, share)
    taken = np.zeros(len(phi), dtype=bool)
    chosen = []
    for _ in range(budget):
        projected = phi @ covariance  # (molecules, parameters): C phi per row
        variance = np.einsum("ij,ij->i", projected, phi)
        reduction = np.einsum("ij,ij->i", projected @ gram, projected)
        score = reduction / (np.maximum(variance, 0.0) + sigma2)
        score[taken] = -np.inf
        pick = int(np.argmax(score))
        chosen.append(pick)
        taken[pick] = True
        u = projected[pick]
        covariance = covariance - np.outer(u, u) / (variance[pick] + sigma2)
    return np.array(chosen, dtype=np.int64)


def _objective(phi: np.ndarray, prior: np.ndarray, targets: np.ndarray | None,
               share: float) -> np.ndarray:
    """The (parameters, parameters) matrix ``G`` whose ``trace(C G)`` the design lowers: the
    rows' Gram matrix, or with targets the mixture of the module docstring."""
    if targets is None or len(targets) == 0:
        return phi.T @ phi
    if not 0.0 <= share <= 1.0:
        raise ConfigError(f"the targets' share must be from 0 to 1; got {share}")
    targets = np.asarray(targets, dtype=np.float64)
    if targets.ndim != 2 or targets.shape[1] != phi.shape[1]:
        raise DataError(f"targets must be (functionals, {phi.shape[1]}) feature rows; got "
                        f"shape {targets.shape}")
    pool = phi.T @ phi / max(float(np.einsum("ij,j,ij->", phi, prior, phi)), 1e-300)
    sizes = np.einsum("ij,j,ij->i", targets, prior, targets)
    if np.any(sizes <= 0):
        raise DataError("a target does not depend on the output layers (two named structures "
                        "with the same features, e.g. the same geometry twice): name "
                        "structures that differ")
    unit = targets / np.sqrt(sizes)[:, None]
    return (1.0 - share) * pool + share * unit.T @ unit / len(unit)


def design_rows(pool: Database, model: Any, budget: int,
                targets: np.ndarray | None = None) -> np.ndarray:
    """The ``design`` strategy: ``budget`` rows of ``pool`` (in the order chosen) for the
    transfer of ``model`` (module docstring), aimed also at ``targets`` when given (rows of
    :func:`levelup.selection.targets.energy_difference_targets`)."""
    phi, prior = transfer_features(pool, model)
    return integrated_variance_design(phi, prior, budget, targets=targets)


__all__ = ["BIAS_VARIANCE", "NOISE", "TARGET_SHARE", "design_rows", "integrated_variance_design",
           "transfer_features"]
