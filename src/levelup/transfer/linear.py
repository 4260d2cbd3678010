"""levelup's default transfer: the output layers refitted by one linear solve, with the priors'
strengths chosen by k-fold cross-validation over the user's few high-level points.

With every layer but the last kept as pre-trained, energies and forces are linear in the
output layers' parameters (:mod:`levelup.transfer.outputlayer`). The loss on the few points and the two
priors of :mod:`levelup.transfer.priors` are then quadratic in the change ``dw`` of those parameters:

* energies: ``mean_i (x_i . dw - y_i)^2 / atoms_i`` (kcal/mol)^2, ``y`` the high-level energy
  minus the pre-trained model's;
* forces, when the points have high-level forces: ``force_weight`` (Angstrom^2) times the mean
  squared force error per Cartesian component;
* force anchor (``anchor``, Angstrom^2): the change of the forces at the anchor geometries
  (the pre-training set) stays small;
* smoothness (``smoothness``, Angstrom^4): the change of the forces varies slowly along random
  internal displacements of the anchors (finite differences, ``smoothness_step``);
* ridge: ``ridge * |dw|^2`` on the weights (the biases, i.e. the per-element energy offsets
  between the two levels, are free).

One solve gives the optimum in milliseconds, so every combination of strengths on a grid is
tried in k-fold cross-validation: for each fold, the change is solved on the other folds and the
held-out fold's energies are predicted (nothing about the held-out points, their energies
included, enters that solve). The combination with the lowest pooled held-out energy RMSE is
then solved on all points. The self-energy offsets are part of the solve (the output biases),
so no step before the cross-validation looks at the held-out points either.

Why this recipe: on the transfer suite (bench/transfer_suite: the H2 tutorial, water, HCN,
ammonia inversion, methanol, formaldehyde with a DFT low level, formamide from ANI-1x; random
8, 16 or 32 CCSD(T) points) it is at most MLatom's tutorial protocol's error on every system at
16 and 32 points, in about two seconds; fine-tuning every layer (``TransferRecipe.plain()``) is
better on some small polyatomics and much worse on H2 and from ANI-1x. The cross-validation picks
strong priors where the correction is smooth and simple (H2) and none where the levels disagree
about the shape. High-level forces (``forces=``) are the largest gain. The numbers are in
bench/RESULTS.md ("transfer-suite").
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from levelup.atomicwrite import write_text_atomic
from levelup.data import Database
from levelup.errors import ConfigError, DataError
from levelup.transfer.outputlayer import (
    add_to_parameters,
    bias_columns,
    directional_derivatives,
    feature_derivatives,
    features,
)
from levelup.transfer.priors import internal_directions
from levelup.units import ENERGY, HARTREE_TO_KCALMOL

KCAL2 = HARTREE_TO_KCALMOL**2
#: ``kind`` of a saved :class:`LinearChoice`
KIND = "linear-transfer"
#: ridge on the free biases, relative to the energy term; only breaks exact degeneracies
#: (e.g. water: H and O always 2:1)
BIAS_RIDGE = 1e-9


@dataclass(frozen=True)
class LinearRecipe:
    """How :func:`linear_transfer` refits the output layers (the default recipe of
    :func:`levelup.transfer.recipe.finetune`). Every strength tuple is a grid axis; the cross-validation
    tries every combination."""

    folds: int = 5  # k of the k-fold cross-validation (leave-one-out when there are fewer points)
    selection: str = "one-se"  # "one-se": the smallest weight change within one standard error
    #                            of the lowest CV error; "min": the lowest CV error
    tolerance: float = 1.0  # standard errors of the "one-se" rule
    repeats: int = 1  # k-fold cross-validations with different random folds, pooled (tried
    #                   3 and 6 on water and H2, seed 0, 8/16/32 points: no choice improved)
    anchor: tuple[float, ...] = (0.0, 1e-4, 1e-3, 1e-2, 1e-1)  # force anchor, Angstrom^2
    smoothness: tuple[float, ...] = (0.0, 1e-5, 1e-4, 1e-3, 1e-2)  # Angstrom^4
    ridge: tuple[float, ...] = (1e-4, 1e-2, 1.0, 100.0)  # (kcal/mol)^2 per squared weight
    force_weight: tuple[float, ...] = (0.03, 0.3, 3.0)  # Angstrom^2; only used with forces
    anchor_geometries: int = 512  # anchors drawn (seeded) from the anchor set; 0: all of them
    anchor_probes: int = 6  # derivative directions per anchor (exact when a molecule has at
    #                         most this many coordinates; 0: always exact)
    smoothness_step: float = 0.02  # finite-difference step, Angstrom
    directions: int = 2  # random internal directions per anchor for the smoothness prior
    seed: int = 0  # seeds the folds, the anchor draw and the directions

    def __post_init__(self) -> None:
        if self.folds < 2 or self.repeats < 1:
            raise ConfigError(f"folds must be >= 2 and repeats >= 1; got folds {self.folds}, "
                              f"repeats {self.repeats}")
        if self.selection not in ("one-se", "min"):
            raise ConfigError(f"selection must be 'one-se' or 'min'; got {self.selection!r}")
        for name in ("anchor", "smoothness", "ridge", "force_weight"):
            values = getattr(self, name)
            if not values or min(values) < 0 or not all(np.isfinite(values)):
                raise ConfigError(f"LinearRecipe.{name} must be a non-empty tuple of finite "
                                  f"strengths >= 0; got {values!r}")
        if (self.anchor_geometries < 0 or self.anchor_probes < 0 or self.directions < 1
                or self.smoothness_step <= 0):
            raise ConfigError("anchor_geometries and anchor_probes must be >= 0, directions >= 1 "
                              "and smoothness_step > 0")

    def grid(self, with_forces: bool) -> list[tuple[float, float, float, float]]:
        """Every (anchor, smoothness, ridge, force weight) combination tried."""
        weights = self.force_weight if with_forces else (0.0,)
        return list(itertools.product(self.anchor, self.smoothness, self.ridge, weights))


@dataclass
class LinearChoice:
    """What the cross-validation chose, and how well it predicted the held-out points."""

    anchor: float
    smoothness: float
    ridge: float
    force_weight: float
    cv_rmse: float  # kcal/mol: held-out energies, pooled over the folds
    train_rmse: float  # kcal/mol: the final solve on every point
    points: int
    force_points: int
    folds: int
    seconds: float
    grid: list[tuple[tuple[float, float, float, float], float]] = field(repr=False,
                                                                         default_factory=list)

    def summary(self) -> str:
        """One line for logs and reports."""
        forces = (f", force weight {self.force_weight:g} A^2 ({self.force_points} points with "
                  "forces)" if self.force_points else "")
        return (f"linear transfer: {self.folds}-fold CV RMSE {self.cv_rmse:.3f} kcal/mol over "
                f"{self.points} points (train {self.train_rmse:.3f}); chose anchor "
                f"{self.anchor:g} A^2, smoothness {self.smoothness:g} A^4, ridge "
                f"{self.ridge:g}{forces}; {len(self.grid)} settings in {self.seconds:.1f} s")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (``kind`` tells it from a training History)."""
        out = {k: v for k, v in vars(self).items() if k != "grid"}
        out["grid"] = [{"anchor": a, "smoothness": s, "ridge": r, "force_weight": f,
                        "cv_rmse": rmse} for (a, s, r, f), rmse in self.grid]
        return {"kind": KIND, "units": "kcal/mol", **out}

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_dict` as JSON (atomically)."""
        write_text_atomic(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LinearChoice:
        """The choice saved by :meth:`to_dict`; DataError for another kind of record."""
        if data.get("kind") != KIND:
            raise DataError(f"not a linear-transfer record (kind {data.get('kind')!r})")
        grid = [((g["anchor"], g["smoothness"], g["ridge"], g["force_weight"]), g["cv_rmse"])
                for g in data.get("grid", [])]
        names = {f for f in cls.__dataclass_fields__ if f != "grid"}
        return cls(**{k: data[k] for k in names}, grid=grid)


@dataclass
class _Problem:
    x: Tensor  # (n, P) energy rows
    y: Tensor  # (n,) Hartree, target minus model
    weight: Tensor  # (n,) 1 / atoms
    dx: Tensor | None  # (n, 3A, P) force rows (zeros where a point has no forces)
    g: Tensor | None  # (n, 3A) Hartree/Angstrom, model forces minus target (0: none)
    has_forces: Tensor  # (n,) bool
    components: Tensor  # (n,) Cartesian components with forces
    anchor_gram: Tensor  # (P, P)
    smooth_gram: Tensor  # (P, P)
    ridge: Tensor  # (P,) 1 on weights, BIAS_RIDGE on biases

    def grams(self, rows: np.ndarray) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Energy and force normal equations over ``rows``: (lhs_e, rhs_e, lhs_f, rhs_f)."""
        index = torch.from_numpy(rows)
        x, y, w = self.x[index], self.y[index], self.weight[index]
        lhs_e = (x * w[:, None]).T @ x / len(rows)
        rhs_e = (x * w[:, None]).T @ y / len(rows)
        p = x.shape[1]
        lhs_f, rhs_f = torch.zeros(p, p, dtype=x.dtype), torch.zeros(p, dtype=x.dtype)
        if self.dx is not None:
            forced = index[self.has_forces[index]]
            if len(forced):
                count = self.components[forced].sum()
                d = self.dx[forced].reshape(-1, p)
                lhs_f = d.T @ d / count
                rhs_f = d.T @ self.g[forced].reshape(-1) / count
        return lhs_e, rhs_e, lhs_f, rhs_f

    def solve(self, grams: tuple[Tensor, Tensor, Tensor, Tensor],
              strengths: tuple[float, float, float, float]) -> Tensor:
        """The change of the output-layer parameters minimising the loss (module docstring)."""
        anchor, smooth, ridge, force_weight = strengths
        lhs_e, rhs_e, lhs_f, rhs_f = grams
        lhs = (lhs_e + force_weight * lhs_f + anchor * self.anchor_gram
               + smooth * self.smooth_gram) * KCAL2
        lhs = lhs + torch.diag(self.ridge * ridge + (self.ridge < 1) * BIAS_RIDGE * KCAL2)
        return torch.linalg.solve(lhs, (rhs_e + force_weight * rhs_f) * KCAL2)


def _energies(db: Database, property: str) -> np.ndarray:
    if property not in db.properties:
        raise DataError(f"the high-level points have no property {property!r}; they have "
                        f"{sorted(db.properties)}")
    return np.asarray(db.get(property, unit=ENERGY), dtype=np.float64)


def design(model: Any, points: Database, property: str, forces: str | None,
             anchors: Database, recipe: LinearRecipe) -> _Problem:
    """The quadratic problem of transferring ``model`` to ``points`` (module docstring): energy
    rows and residuals, force rows where ``forces`` has values, and the anchor and smoothness
    normal matrices on ``recipe.anchor_geometries`` geometries drawn from ``anchors``."""
    species = model.species_index(points.species)
    xyz = torch.from_numpy(np.array(points.coordinates, dtype=np.float64))
    energies = torch.from_numpy(_energies(points, property).copy())
    with torch.no_grad():
        y = energies - model(species, xyz).double()
    atoms = (species >= 0).sum(1).double()
    x = features(model, species, xyz)
    dx = g = None
    has_forces = torch.zeros(len(points), dtype=torch.bool)
    components = 3 * atoms
    if forces is not None:
        if forces not in points.properties or not points.properties[forces].per_atom:
            raise DataError(f"the high-level points have no per-atom property {forces!r} "
                            f"(forces, Hartree/Angstrom); they have {sorted(points.properties)}")
        target = torch.from_numpy(np.array(points.get(forces), dtype=np.float64))
        real = (species >= 0).unsqueeze(-1)
        has_forces = torch.isfinite(torch.where(real, target, 0.0)).all(-1).all(-1)
        dx = feature_derivatives(model, species, xyz)
        xr = xyz.clone().to(model.dtype).requires_grad_(True)
        model_forces = -torch.autograd.grad(model(species, xr).sum(), xr)[0].double()
        g = torch.where(real & has_forces[:, None, None], model_forces - target, 0.0)
        g = g.reshape(len(points), -1)
        dx = dx * has_forces[:, None, None]
    anchor_gram, smooth_gram = _prior_grams(model, anchors, recipe)
    ridge = torch.ones(x.shape[1], dtype=torch.float64)
    ridge[bias_columns(model)] = 0.0
    return _Problem(x=x, y=y, weight=1.0 / atoms, dx=dx, g=g, has_forces=has_forces,
                    components=components, anchor_gram=anchor_gram, smooth_gram=smooth_gram,
                    ridge=ridge)


def _prior_grams(model: Any, anchors: Database, recipe: LinearRecipe) -> tuple[Tensor, Tensor]:
    """Normal matrices (P, P) of the force anchor (``sum |D dw|^2 / atoms``) and of the
    smoothness prior (the same for the finite-difference change of D along random internal
    displacements), over the anchor geometries. Exact (every Cartesian direction) when a
    molecule has at most ``recipe.anchor_probes`` coordinates, else estimated from that many
    Gaussian probe directions per geometry (unbiased; the cost stays flat as molecules grow)."""
    species, xyz = _anchor_set(model, anchors, recipe)
    generator = torch.Generator().manual_seed(recipe.seed)
    real = (species >= 0).unsqueeze(-1)
    m, a = species.shape
    probes = recipe.anchor_probes
    if probes == 0 or probes >= 3 * a:
        eye = torch.eye(3 * a, dtype=torch.float64).reshape(3 * a, a, 3)
        directions = eye.unsqueeze(0).expand(m, -1, -1, -1) * real.unsqueeze(1)
    else:
        directions = torch.randn((m, probes, a, 3), generator=generator,
                                 dtype=torch.float64) * real.unsqueeze(1)
    d = directional_derivatives(model, species, xyz, directions)  # (M, probes, P)
    scale = directions.shape[1] / (3 * a)  # exact: 1; probes: E[v v^T] = I, so t t^T per probe
    n_atoms = float(real.sum())
    flat = d.reshape(-1, d.shape[-1])
    anchor_gram = flat.T @ flat / (n_atoms * (scale if scale == 1 else directions.shape[1]))
    curvature = []
    for _ in range(recipe.directions):
        moved = xyz + recipe.smoothness_step * internal_directions(xyz, real, generator)
        curvature.append((directional_derivatives(model, species, moved, directions) - d)
                         / recipe.smoothness_step)
    s = torch.cat(curvature).reshape(-1, d.shape[-1])
    smooth_gram = s.T @ s / (n_atoms * recipe.directions
                             * (scale if scale == 1 else directions.shape[1]))
    return anchor_gram, smooth_gram


def _anchor_set(model: Any, anchors: Database, recipe: LinearRecipe) -> tuple[Tensor, Tensor]:
    index = np.arange(len(anchors))
    if recipe.anchor_geometries and len(anchors) > recipe.anchor_geometries:
        rng = np.random.default_rng(recipe.seed)
        index = np.sort(rng.choice(len(anchors), recipe.anchor_geometries, replace=False))
    sub = anchors[index]
    return (model.species_index(sub.species),
            torch.from_numpy(np.array(sub.coordinates, dtype=np.float64)))


def fold_indices(n: int, folds: int, seed: int) -> list[np.ndarray]:
    """The held-out points of each fold (a seeded permutation split into ``min(folds, n)``
    nearly equal parts)."""
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(part) for part in np.array_split(order, min(folds, n))]


def cv_partitions(n: int, recipe: LinearRecipe) -> list[list[np.ndarray]]:
    """The fold partitions of every repeat of the cross-validation (repeat k draws its folds
    with seed ``recipe.seed + 1000 k``); a leave-one-out split is the same every time, so it
    is done once."""
    repeats = 1 if recipe.folds >= n else recipe.repeats
    return [fold_indices(n, recipe.folds, recipe.seed + 1000 * k) for k in range(repeats)]


def cross_validate(problem: _Problem, recipe: LinearRecipe
                   ) -> tuple[tuple[float, float, float, float], float, list, np.ndarray]:
    """(chosen strengths, their CV RMSE kcal/mol pooled over every fold of every repeat, the
    RMSE of every grid point, the held-out predictions of the chosen one: (repeats, points)
    Hartree, the model's energy change at each point when its fold was held out).

    ``recipe.selection`` "min" takes the grid point with the lowest CV error; "one-se" (the
    one-standard-error rule) takes, among the grid points whose CV mean squared error is within
    one standard error of the lowest, the one whose solve on every point moves the output
    weights least: as accurate as the data can tell, and the smallest departure from the
    pre-trained model (large cancelling weights fit the points but make the surface rough
    between them)."""
    n = len(problem.y)
    partitions = cv_partitions(n, recipe)
    grams = [[problem.grams(np.setdiff1d(np.arange(n), held)) for held in parts]
             for parts in partitions]
    grid = recipe.grid(problem.dx is not None and bool(problem.has_forces.any()))
    results, squares, preds = [], [], []
    for strengths in grid:
        pred = torch.zeros((len(partitions), n), dtype=torch.float64)
        for k, parts in enumerate(partitions):
            for held, gram in zip(parts, grams[k], strict=True):
                change = problem.solve(gram, strengths)
                pred[k, held] = problem.x[torch.from_numpy(held)] @ change
        sq = ((pred - problem.y) * HARTREE_TO_KCALMOL).pow(2).reshape(-1).numpy()
        results.append((strengths, float(np.sqrt(sq.mean()))))
        squares.append(sq)
        preds.append(pred.numpy())
    mse = np.array([sq.mean() for sq in squares])
    if not np.isfinite(mse).any():
        raise DataError("linear transfer: every setting gave a non-finite cross-validation "
                        "error; check the high-level energies")
    best = int(np.nanargmin(np.where(np.isfinite(mse), mse, np.nan)))
    chosen = best
    if recipe.selection == "one-se":
        limit = mse[best] + recipe.tolerance * squares[best].std(ddof=1) / np.sqrt(
            len(squares[best]))
        full = problem.grams(np.arange(n))
        weights = problem.ridge > 0
        size = {i: float(problem.solve(full, grid[i])[weights].norm())
                for i in np.flatnonzero(mse <= limit)}
        chosen = min(size, key=lambda i: (size[i], i))
    return grid[chosen], results[chosen][1], results, preds[chosen]


def linear_transfer(pretrained: Any, points: Database, *, property: str,
                    forces: str | None = None, anchors: Database | None = None,
                    recipe: LinearRecipe | None = None) -> tuple[Any, LinearChoice]:
    """Transfer one pre-trained ANIModel (left untouched) to ``property`` (Hartree) of
    ``points`` by refitting its output layers (module docstring).

    Args:
        pretrained: the pre-trained :class:`~levelup.model.ani.ANIModel`.
        points: every high-level point (they are split into folds for the cross-validation
            and all used in the final solve). Points whose energy is NaN are left out.
        property: the high-level energy property.
        forces: optional per-atom property with high-level forces (Hartree/Angstrom) of
            ``points``; geometries whose forces are NaN contribute their energy only.
        anchors: geometries for the force anchor and the smoothness prior (typically the
            pre-training set; ``recipe.anchor_geometries`` of them are drawn); default:
            ``points``.
        recipe: the :class:`LinearRecipe` (default: ``LinearRecipe()``).

    Returns:
        (the transferred copy, the :class:`LinearChoice` made).
    """
    recipe = recipe or LinearRecipe()
    start = time.perf_counter()
    energies = _energies(points, property)
    points = points[np.isfinite(energies)]
    if len(points) < 3:
        raise DataError(f"linear transfer needs at least 3 high-level energies to "
                        f"cross-validate; {property!r} has {len(points)}")
    model = copy.deepcopy(pretrained)
    problem = design(model, points, property, forces, anchors if anchors is not None
                       else points, recipe)
    strengths, cv_rmse, grid, _ = cross_validate(problem, recipe)
    change = problem.solve(problem.grams(np.arange(len(points))), strengths)
    train_rmse = float(((problem.x @ change - problem.y) * HARTREE_TO_KCALMOL).pow(2).mean()
                       .sqrt())
    add_to_parameters(model, change)
    anchor, smoothness, ridge, force_weight = strengths
    return model, LinearChoice(
        anchor=anchor, smoothness=smoothness, ridge=ridge, force_weight=force_weight,
        cv_rmse=cv_rmse, train_rmse=train_rmse, points=len(points),
        force_points=int(problem.has_forces.sum()),
        folds=min(recipe.folds, len(points)), seconds=time.perf_counter() - start, grid=grid)


__all__ = ["LinearChoice", "LinearRecipe", "cross_validate", "cv_partitions", "design",
           "fold_indices",
           "linear_transfer"]
