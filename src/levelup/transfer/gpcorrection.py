"""Transfer one molecule's potential by a Gaussian-process correction fitted to the high-level
points' energies *and* forces: the transferred energy is the pre-trained model's plus the
posterior mean of a GP on the difference, ``E(x) = E_pre(x) + m + f(x)``.

Why: the default linear recipe changes only the output layers, and on water's harmonic
frequencies from 20 CCSD(T) points it added 20-45 cm^-1 to the pre-trained model's own error;
a GP that is given each point's forces as derivative observations pins the curvature of the
difference where the points are (bench/RESULTS.md, "frequency-floor"). It is a one-molecule
tool: every point must have the same atoms in the same order, and the correction knows
nothing outside the region the points cover (there it tends to the constant ``m``).

The kernel is a squared exponential on the inverse interatomic distances, averaged over the
permutations of like atoms, so the correction is symmetric under exchanging equivalent atoms
(``k(x, y) = s2 * mean_P exp(-|d(x) - d(Py)|^2 / (2 l^2))``). Energies and forces enter as
observations of ``f`` and of its gradient (the joint covariance of values and derivatives,
Rasmussen & Williams 2006, section 9.4; the sGDML / GDML force-field kernels use the same
construction). The length ``l`` (1/Angstrom) and variance ``s2`` (Hartree^2) are the grid
point of largest marginal likelihood; the noise is a fixed small jitter (:data:`NOISE_ENERGY`,
:data:`NOISE_FORCE`). Fitting builds the ``n(1 + 3A)`` square covariance with ``torch.func``;
prediction uses the closed form of the posterior mean, ordinary torch operations that autograd
differentiates for forces and Hessians.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from levelup.atomicwrite import write_text_atomic
from levelup.data import Database
from levelup.errors import ConfigError, DataError
from levelup.model.gpcorrected import GPCorrected

#: grid of length scales, 1/Angstrom (inverse-distance space)
LENGTHS = (0.1, 0.14, 0.2, 0.28, 0.4, 0.56, 0.8)
#: grid of signal variances, Hartree^2
VARIANCES = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
#: observation noise variances: energies (Hartree^2) and force components ((Hartree/A)^2)
NOISE_ENERGY, NOISE_FORCE = 1e-10, 1e-8
#: ``kind`` of a saved :class:`GPChoice`
KIND = "gp-correction"
#: the most permutations of like atoms averaged over (beyond: refused, say which)
MAX_PERMUTATIONS = 720


def like_atom_permutations(species: np.ndarray) -> np.ndarray:
    """(permutations, atoms): every reordering that only exchanges atoms of one element."""
    groups: dict[int, list[int]] = {}
    for i, z in enumerate(np.asarray(species).tolist()):
        groups.setdefault(int(z), []).append(i)
    count = math.prod(math.factorial(len(g)) for g in groups.values())
    if count > MAX_PERMUTATIONS:
        raise DataError(f"the GP correction averages over the {count} permutations of like "
                        f"atoms, more than {MAX_PERMUTATIONS}: it is meant for small molecules; "
                        "use the linear recipe")
    out = []
    for combo in itertools.product(*[itertools.permutations(g) for g in groups.values()]):
        p = list(range(len(species)))
        for g, q in zip(groups.values(), combo, strict=True):
            for a, b in zip(g, q, strict=True):
                p[a] = b
        out.append(p)
    return np.array(out, dtype=np.int64)


@dataclass(frozen=True)
class GPRecipe:
    """``recipe("gp")``: :func:`gp_transfer` as a :func:`levelup.finetune` recipe (needs
    ``forces=``; one molecule). The grids of the marginal-likelihood search are its fields."""

    lengths: tuple[float, ...] = LENGTHS  # 1/Angstrom
    variances: tuple[float, ...] = VARIANCES  # Hartree^2
    seed: int = 0  # unused (the fit is deterministic); kept so every recipe takes a seed

    def __post_init__(self) -> None:
        for name in ("lengths", "variances"):
            values = getattr(self, name)
            if not values or min(values) <= 0 or not all(np.isfinite(values)):
                raise ConfigError(f"GPRecipe.{name} must be a non-empty tuple of finite values "
                                  f"> 0; got {values!r}")


@dataclass(frozen=True)
class GPChoice:
    """What the fit chose: length (1/Angstrom), variance (Hartree^2), its log marginal
    likelihood, the points and the permutations averaged over."""

    length: float
    variance: float
    log_likelihood: float
    points: int
    permutations: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (``kind`` tells it from a training History)."""
        return {"kind": KIND, "length": self.length, "variance": self.variance,
                "log_likelihood": self.log_likelihood, "points": self.points,
                "permutations": self.permutations,
                "units": {"length": "1/Angstrom", "variance": "Hartree^2"}}

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_dict` as JSON (atomically)."""
        write_text_atomic(path, json.dumps(self.to_dict(), indent=1) + "\n")

    def summary(self) -> str:
        """One line for logs and the CLI."""
        return (f"GP correction on {self.points} points: length {self.length:g} 1/A, variance "
                f"{self.variance:g} Ha^2 (largest marginal likelihood of the grid)")


class _Kernel:
    """The permutation-averaged squared exponential on inverse distances, for fitting."""

    def __init__(self, atoms: int, perms: Tensor, length: float, variance: float) -> None:
        self.atoms, self.perms, self.length, self.variance = atoms, perms, length, variance
        self.pairs = torch.triu_indices(atoms, atoms, 1)

    def descriptor(self, x: Tensor) -> Tensor:
        return 1.0 / torch.linalg.norm(x[..., self.pairs[0], :] - x[..., self.pairs[1], :],
                                       dim=-1)

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        d = self.descriptor(x) - self.descriptor(y[self.perms])  # (permutations, pairs)
        return self.variance * torch.exp(-0.5 * (d * d).sum(-1) / self.length**2).mean()

    def joint(self, a: Tensor, b: Tensor) -> Tensor:
        """Covariance of [f, df/dx] at every geometry of ``a`` with the same at ``b``."""
        from torch.func import jacfwd, jacrev, vmap

        pair = lambda fn: vmap(vmap(fn, (None, 0)), (0, None))  # noqa: E731
        value = pair(self)(a, b)
        grad_b = pair(jacrev(self, 1))(a, b)
        grad_a = pair(jacrev(self, 0))(a, b)
        cross = pair(jacfwd(jacrev(self, 0), 1))(a, b)
        n, m, c = len(a), len(b), 3 * self.atoms
        top = torch.cat([value[:, :, None], grad_b.reshape(n, m, c)], 2)
        bottom = torch.cat([grad_a.reshape(n, m, c)[..., None], cross.reshape(n, m, c, c)], 3)
        block = torch.cat([top[:, :, None, :], bottom], 2)
        return block.permute(0, 2, 1, 3).reshape(n * (1 + c), m * (1 + c))


def _solve(covariance: Tensor, noise: Tensor, y: Tensor) -> tuple[Tensor | None, float]:
    """(alpha (one per observation, None where the covariance is singular), log marginal
    likelihood up to a constant)."""
    chol, info = torch.linalg.cholesky_ex(covariance + torch.diag(noise))
    if int(info) != 0:
        return None, -math.inf
    alpha = torch.cholesky_solve(y[:, None], chol)[:, 0]
    return alpha, float(-0.5 * y @ alpha - torch.log(torch.diagonal(chol)).sum())


def _check_points(points: Database, property: str, forces: str) -> np.ndarray:
    """The one molecule's atomic numbers, after every check of the points."""
    if len(points) == 0:
        raise DataError("the GP correction needs at least one high-level point")
    for name in (property, forces):
        if name not in points.properties:
            raise DataError(f"the high-level points have no property {name!r}; they have "
                            f"{sorted(points.properties)}")
    species = np.asarray(points.species)
    if np.any(species != species[0]):
        raise DataError("the GP correction describes one molecule: every point must have the "
                        "same atoms in the same order; use the linear recipe for mixed data")
    bad = ~(np.isfinite(np.asarray(points.get(property)))
            & np.isfinite(np.asarray(points.get(forces))).all((1, 2)))
    if bad.any():
        raise DataError(f"{int(bad.sum())} high-level points lack a finite energy or forces "
                        f"(rows {np.flatnonzero(bad)[:10].tolist()}); the GP correction needs "
                        "both at every point: drop them or label them with forces")
    return species[0][species[0] > 0]


def gp_transfer(pretrained: Any, points: Database, *, property: str, forces: str,
                recipe: GPRecipe | None = None) -> tuple[GPCorrected, GPChoice]:
    """Transfer ``pretrained`` (an ANIModel or Ensemble, left untouched) to the level of
    ``property`` (Hartree) and ``forces`` (Hartree/Angstrom) of ``points``, all of one
    molecule, by a GP correction (module docstring). Returns (the corrected model, the
    choice of hyperparameters)."""
    species = _check_points(points, property, forces)
    atoms = len(species)
    base = pretrained.predict(points, forces=True)
    d_e = np.asarray(points.get(property), dtype=np.float64) - base.energies
    d_f = np.asarray(points.get(forces), dtype=np.float64)[:, :atoms] - base.forces[:, :atoms]
    return fit_correction(pretrained, species, np.asarray(points.coordinates)[:, :atoms], d_e,
                          d_f, recipe)


def fit_correction(base: Any, species: np.ndarray, coordinates: np.ndarray,
                   energies: np.ndarray, forces: np.ndarray, recipe: GPRecipe | None = None
                   ) -> tuple[GPCorrected, GPChoice]:
    """``base`` plus the GP fitted to a level difference of one molecule: ``energies`` (n,)
    Hartree and ``forces`` (n, atoms, 3) Hartree/Angstrom observed at ``coordinates`` (n,
    atoms, 3) Angstrom (:func:`gp_transfer` passes the high level minus ``base``)."""
    atoms = len(species)
    offset = float(np.mean(energies))
    y = torch.from_numpy(np.concatenate([np.concatenate([[e - offset], -f.reshape(-1)])
                                         for e, f in zip(energies, forces, strict=True)]))
    x = torch.from_numpy(np.asarray(coordinates, dtype=np.float64))
    perms = torch.from_numpy(like_atom_permutations(species))
    recipe = recipe or GPRecipe()
    noise = torch.tensor(([NOISE_ENERGY] + [NOISE_FORCE] * 3 * atoms) * len(x),
                         dtype=torch.float64)
    best = (-math.inf, None, None, None)
    for length in recipe.lengths:  # the covariance is variance x that of variance 1
        unit = _Kernel(atoms, perms, length, 1.0).joint(x, x)
        for variance in recipe.variances:
            alpha, loglik = _solve(variance * unit, noise, y)
            if loglik > best[0]:
                best = (loglik, length, variance, alpha)
    loglik, length, variance, alpha = best
    if alpha is None:
        raise DataError("the GP correction's covariance was singular for every length scale: "
                        "are two points the same geometry? Drop duplicates")
    kernel = _Kernel(atoms, perms, length, variance)
    model = GPCorrected(base, species, *_closed_form(kernel, x, alpha.reshape(len(x), -1)),
                        length, variance, offset)
    return model, GPChoice(length, variance, loglik, len(x), len(perms))


def _closed_form(kernel: _Kernel, x: Tensor, alpha: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(descriptors d_ip, directions v_ip, energy weights a_i) of :class:`GPCorrected`."""
    from torch.func import jacrev, vmap

    permuted = x[:, kernel.perms]  # (points, perms, atoms, 3)
    descriptors = kernel.descriptor(permuted)
    jac = vmap(vmap(jacrev(lambda y, p: kernel.descriptor(y[p])), (None, 0)), (0, None))(
        x, kernel.perms)  # (points, perms, pairs, atoms, 3)
    grads = alpha[:, 1:].reshape(len(x), 1, 1, -1)
    directions = (jac.reshape(*jac.shape[:3], -1) * grads).sum(-1)
    return descriptors, directions, alpha[:, 0].clone()


__all__ = ["GPChoice", "GPCorrected", "GPRecipe", "fit_correction", "gp_transfer",
           "like_atom_permutations"]
