"""Per-molecule descriptors in AEV space, and farthest-point sampling over them.

A molecule's descriptor is the sum of its atoms' AEVs (Smith et al. 2017), one block per
element: (elements * aev_length,), so molecules of any size compare. Its logarithm is taken
(with a floor, :data:`FLOOR`) and each column is standardised over the pool (zero mean, unit
variance; constant columns dropped), so that no radial or angular shell dominates the distance
by its scale alone.

Why the logarithm: an AEV term is a Gaussian in the distance, ``exp(-eta (r - Rs)^2)``, so
its logarithm is a polynomial in r, and distances in log space grow with the change in geometry
instead of saturating once two geometries sit in different Gaussians' tails. On the tutorial's
H2 scan the raw sums put r = 0.5 and r = 5.0 Angstrom next to each other (every term is small
at both), and farthest points of 12 miss both ends; in log space they take both ends and
space the rest nearly evenly in r (0.5, 1.08, 1.57, ..., 4.55, 5.0).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from levelup.data import Database
from levelup.errors import DataError
from levelup.model.aev import AEVComputer, AEVParams

#: floor under the AEV sums before the logarithm (dimensionless; terms below it count as absent)
FLOOR = 1e-6
#: molecules per AEV batch (keeps memory flat on large pools)
CHUNK = 2048


def aev_descriptors(pool: Database, model: Any = None) -> np.ndarray:
    """Standardised logarithms of the per-element AEV sums of every molecule of ``pool``
    (module docstring): (molecules, features) float64, dimensionless.

    The AEV parameters and element order are ``model``'s (an ANIModel or Ensemble: its
    ``aev_params`` and ``elements``) or, without a model, ANI-1x's over the pool's elements.
    """
    if len(pool) == 0:
        raise DataError("cannot compute descriptors of an empty pool")
    if model is not None:
        params, elements = model.aev_params, list(model.elements)
        missing = sorted(set(pool.elements) - set(elements))
        if missing:
            raise DataError(f"the pool has elements {missing} (atomic numbers) that the model "
                            f"lacks (it has {elements}): give a model trained on them")
    else:
        params, elements = AEVParams.ani1x(), sorted(pool.elements)
    sums = _element_sums(pool, params, elements)
    return standardise(np.log(np.maximum(sums, 0.0) + FLOOR))


def _element_sums(pool: Database, params: AEVParams, elements: list[int]) -> np.ndarray:
    """(molecules, elements * aev_length) float64: per-element sums of the atomic AEVs."""
    computer = AEVComputer(params, len(elements)).double()
    lookup = np.full(max(max(elements), int(pool.species.max())) + 1, -1, dtype=np.int64)
    lookup[elements] = np.arange(len(elements))
    z = np.asarray(pool.species)
    index = np.where(z > 0, lookup[z], -1)  # (molecules, atoms), -1 padding
    length = params.length(len(elements))
    out = np.zeros((len(pool), len(elements) * length))
    for start in range(0, len(pool), CHUNK):
        rows = slice(start, start + CHUNK)
        species = torch.from_numpy(index[rows])
        xyz = torch.from_numpy(np.array(pool.coordinates[rows], dtype=np.float64))
        with torch.no_grad():
            aev = computer(species, xyz).numpy()  # (molecules, atoms, aev_length)
        for e in range(len(elements)):
            mask = (index[rows] == e)[..., None]
            out[rows, e * length:(e + 1) * length] = (aev * mask).sum(axis=1)
    return out


def standardise(features: np.ndarray) -> np.ndarray:
    """Columns of ``features`` (molecules, columns) scaled to zero mean and unit variance;
    columns that are constant over the molecules (std below 1e-12) are dropped."""
    std = features.std(axis=0)
    keep = std > 1e-12
    if not keep.any():
        return np.zeros((len(features), 1))
    return (features[:, keep] - features[:, keep].mean(axis=0)) / std[keep]


def farthest_points(descriptors: np.ndarray, k: int, *, taken: np.ndarray | None = None,
                    candidates: np.ndarray | None = None) -> np.ndarray:
    """Greedy max-min (farthest-point) sampling: ``k`` row numbers of ``descriptors``
    (molecules, features), in the order chosen.

    Each pick is the candidate farthest (Euclidean) from every row picked so far and from the
    rows ``taken`` before (already chosen elsewhere). Without ``taken``, the first pick is the
    row farthest from the descriptors' mean (deterministic; on a scan, one of its ends). Ties go
    to the lowest row number. ``candidates`` (row numbers) limits where picks come from.
    """
    n = len(descriptors)
    pool = np.arange(n) if candidates is None else np.asarray(candidates, dtype=np.int64)
    if k > len(pool):
        raise DataError(f"cannot pick {k} farthest points from {len(pool)} candidates")
    d = descriptors[pool]
    if taken is not None and len(taken):
        nearest = np.full(len(pool), np.inf)
        for row in np.asarray(taken, dtype=np.int64):
            nearest = np.minimum(nearest, np.linalg.norm(d - descriptors[row], axis=1))
    else:
        nearest = np.linalg.norm(d - descriptors.mean(axis=0), axis=1)
        first = int(np.argmax(nearest))
        nearest = np.linalg.norm(d - d[first], axis=1)
        nearest[first] = -np.inf
        picks = [first]
        return _greedy(d, nearest, picks, k, pool)
    return _greedy(d, nearest, [], k, pool)


def _greedy(d: np.ndarray, nearest: np.ndarray, picks: list[int], k: int,
            pool: np.ndarray) -> np.ndarray:
    """Continue max-min picks over ``d`` (candidates, features) from ``nearest`` (candidates,),
    each candidate's distance to the nearest pick so far (-inf once picked)."""
    nearest = nearest.copy()
    for p in picks:
        nearest[p] = -np.inf
    while len(picks) < k:
        best = int(np.argmax(nearest))
        picks.append(best)
        nearest = np.minimum(nearest, np.linalg.norm(d - d[best], axis=1))
        nearest[picks] = -np.inf
    return pool[np.array(picks[:k], dtype=np.int64)]


__all__ = ["aev_descriptors", "farthest_points", "standardise"]
