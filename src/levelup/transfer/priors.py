"""Priors for fine-tuning on a few high-level points: penalties added to the energy loss of
:func:`levelup.train.loop.fit` (``penalty=``) that keep the fine-tuned model close to the
pre-trained one where the new data says nothing.

* :class:`L2SP`: the weights stay near their pre-trained values (Li et al. 2018);
* :class:`ForceAnchor`: the forces stay near the pre-trained forces on anchor geometries;
* :class:`SmoothCorrection`: the change of the forces varies slowly (small curvature of the
  correction ``E_model - E_pretrained``) along internal motions of the anchors.

Each returns a scalar in (kcal/mol)^2, like the energy loss. :func:`internal_directions` gives
the random internal displacements the smoothness prior (and the linear recipe's) uses.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from levelup.data import Database
from levelup.data.rigidbody import rigid_motions
from levelup.errors import ConfigError, DataError


class L2SP:
    """L2-SP penalty (Li et al. 2018): ``strength * sum (w - w_pretrained)^2`` over the trainable
    network weights, pulling fine-tuned weights toward their pre-trained values: a guard
    against over-fitting a dozen points. Build it right before fine-tuning; pass it to ``fit``
    as ``penalty=``. ``strength`` is in (kcal/mol)^2 per squared weight, matching the loss."""

    def __init__(self, model: Any, strength: float) -> None:
        if strength < 0:
            raise ConfigError(f"L2-SP strength must be >= 0; got {strength}")
        self.strength = float(strength)
        self.reference = {name: p.detach().clone() for name, p in model.named_parameters()
                          if p.requires_grad and "networks" in name}

    def __call__(self, model: Any) -> torch.Tensor:
        total = None
        params = dict(model.named_parameters())
        for name, ref in self.reference.items():
            term = (params[name] - ref).pow(2).sum()
            total = term if total is None else total + term
        if total is None:
            return torch.zeros(())
        return self.strength * total


class ForceAnchor:
    """Function-space L2-SP: ``strength * mean |F_model - F_pretrained|^2`` over anchor geometries
    (forces in kcal/mol/Angstrom, ``strength`` in Angstrom^2, so the penalty is in (kcal/mol)^2
    like the energy loss).

    Fine-tuning on a dozen high-level energies leaves the surface free wherever there is no
    point; this penalty keeps the *shape* (forces) of the pre-trained surface there, while the
    energies at the new points pull the model to the new level. The correction between two
    levels of theory is smoother than either surface (the premise of delta-learning), so keeping
    the pre-trained forces where nothing else is known extrapolates far better than keeping the
    pre-trained weights (:class:`L2SP`). The anchors are geometries the pre-trained model knows,
    typically its own training set; no labels are needed.

    Build it right before fine-tuning (it records the current model's forces) and pass it to
    ``fit`` as ``penalty=``. Each call draws ``batch_size`` anchors at random (seeded).
    """

    def __init__(self, model: Any, anchors: Database, strength: float, batch_size: int = 128,
                 seed: int = 0) -> None:
        if strength < 0:
            raise ConfigError(f"ForceAnchor strength must be >= 0; got {strength}")
        if len(anchors) == 0:
            raise DataError("ForceAnchor needs at least one anchor geometry")
        from levelup.units import HARTREE_TO_KCALMOL

        self.strength = float(strength)
        self.batch_size = int(batch_size)
        self.generator = torch.Generator().manual_seed(seed)
        self.kcal = HARTREE_TO_KCALMOL
        self.species = model.species_index(anchors.species)
        self.coordinates = torch.from_numpy(np.array(anchors.coordinates)).to(model.dtype)
        self.real = (self.species >= 0).unsqueeze(-1)
        self.reference = torch.cat([
            self._forces(model, idx, create_graph=False).detach()
            for idx in torch.arange(len(anchors)).split(1024)])

    def _forces(self, model: Any, idx: Tensor, create_graph: bool) -> Tensor:
        xyz = self.coordinates[idx].clone().requires_grad_(True)
        energy = model(self.species[idx], xyz).sum()
        return -torch.autograd.grad(energy, xyz, create_graph=create_graph)[0]

    def __call__(self, model: Any) -> Tensor:
        n = self.species.shape[0]
        if n > self.batch_size:
            idx = torch.randperm(n, generator=self.generator)[: self.batch_size]
        else:
            idx = torch.arange(n)
        diff = (self._forces(model, idx, create_graph=True) - self.reference[idx]) * self.kcal
        diff = torch.where(self.real[idx], diff, torch.zeros_like(diff))
        per_atom = diff.pow(2).sum(-1).sum() / self.real[idx].sum()
        return self.strength * per_atom.to(torch.float64)

    is_fixed = False

    def fixed(self, most: int = 1024) -> ForceAnchor:
        """The same anchor on one fixed draw of at most ``most`` of its geometries, used at
        every call (L-BFGS needs a deterministic loss)."""
        import copy

        n = self.species.shape[0]
        idx = torch.randperm(n, generator=self.generator)[:most] if n > most else torch.arange(n)
        out = copy.copy(self)
        out.species, out.coordinates = self.species[idx], self.coordinates[idx]
        out.real, out.reference = self.real[idx], self.reference[idx]
        out.batch_size, out.is_fixed = len(idx), True
        return out


def internal_directions(coordinates: Tensor, real: Tensor, generator: torch.Generator) -> Tensor:
    """Random unit displacements (M, A, 3) of each geometry that neither translate nor rotate it:
    Gaussian draws with the rigid-body motions about the geometry projected out (padding atoms,
    ``real`` False, stay put). A geometry with no internal motion (one atom) gets zeros."""
    noise = torch.randn(coordinates.shape, generator=generator, dtype=coordinates.dtype)
    return _project_internal(noise, coordinates, real, normalise=True)


def _rigid_basis(coordinates: Tensor, real: Tensor) -> Tensor:
    """Orthonormal rigid-body motions (M, 3A, 6) per geometry (zero columns where a motion does
    not exist: the rotation about a linear molecule's axis, or rotations of one atom)."""
    basis = rigid_motions(coordinates.detach().cpu().numpy(),
                          real.squeeze(-1).detach().cpu().numpy())
    return torch.from_numpy(basis).to(coordinates.device)


def _project_internal(vectors: Tensor, coordinates: Tensor, real: Tensor, normalise: bool = False,
                      basis: Tensor | None = None) -> Tensor:
    m, a, _ = coordinates.shape
    basis = _rigid_basis(coordinates, real) if basis is None else basis
    flat = torch.where(real, vectors, torch.zeros_like(vectors)).reshape(m, 3 * a, 1)
    flat = flat - basis @ (basis.transpose(1, 2) @ flat)
    if normalise:
        norm = flat.norm(dim=1, keepdim=True)
        flat = torch.where(norm > 1e-12, flat / norm.clamp(min=1e-300), torch.zeros_like(flat))
    return flat.reshape(m, a, 3)


class SmoothCorrection:
    """A smoothness prior on the *correction* the fine-tuning makes: ``strength * mean
    |P [dF(x + h u) - dF(x)]|^2 / h^2`` over anchor geometries x, where ``dF = F_model -
    F_pretrained`` is the change of the forces (kcal/mol/Angstrom), u a random unit direction of
    internal motion (no translation or rotation), h = ``step`` (Angstrom) and P projects the
    rigid-body motions out. It is a finite-difference estimate of the curvature (Hessian) of the
    correction ``E_model - E_pretrained``: ``strength`` is in Angstrom^4, so the penalty is in
    (kcal/mol)^2 like the energy loss.

    :class:`ForceAnchor` asks the correction to be *flat* (zero force change) wherever there
    are anchors, so beyond the last high-level point the model returns to the pre-trained shape.
    This penalty asks the correction to be *smooth* instead: it may keep a slope, and beyond the
    data it continues linearly from the nearest points (what a natural spline does), while
    between the points it interpolates without wiggles. The difference between two levels of
    theory is smoother than either surface (the premise of delta-learning), so it is the
    curvature of the difference, not its slope, that has no reason to be large.

    Build it right before fine-tuning (it keeps a frozen copy of the current model as the
    reference) and pass it to ``fit`` as ``penalty=``. Each call draws ``batch_size`` anchors
    and one direction per anchor at random (seeded); :meth:`fixed` gives a deterministic one.
    """

    def __init__(self, model: Any, anchors: Database, strength: float, step: float = 0.02,
                 batch_size: int = 128, seed: int = 0) -> None:
        import copy

        from levelup.units import HARTREE_TO_KCALMOL

        if strength < 0:
            raise ConfigError(f"SmoothCorrection strength must be >= 0; got {strength}")
        if not step > 0:
            raise ConfigError(f"SmoothCorrection step must be > 0 Angstrom; got {step}")
        if len(anchors) == 0:
            raise DataError("SmoothCorrection needs at least one anchor geometry")
        self.strength, self.step = float(strength), float(step)
        self.batch_size = int(batch_size)
        self.generator = torch.Generator().manual_seed(seed)
        self.kcal = HARTREE_TO_KCALMOL
        self.reference_model = copy.deepcopy(model).requires_grad_(False)
        self.species = model.species_index(anchors.species)
        self.coordinates = torch.from_numpy(np.array(anchors.coordinates)).to(model.dtype)
        self.real = (self.species >= 0).unsqueeze(-1)
        self.directions: Tensor | None = None  # fixed directions (see fixed())
        self.is_fixed = False

    def _forces(self, model: Any, species: Tensor, xyz: Tensor, create_graph: bool) -> Tensor:
        xyz = xyz.clone().requires_grad_(True)
        energy = model(species, xyz).sum()
        return -torch.autograd.grad(energy, xyz, create_graph=create_graph)[0]

    def _pick(self) -> tuple[Tensor, Tensor]:
        n = self.species.shape[0]
        if self.directions is not None:
            return torch.arange(n), self.directions
        idx = (torch.randperm(n, generator=self.generator)[: self.batch_size]
               if n > self.batch_size else torch.arange(n))
        return idx, internal_directions(self.coordinates[idx], self.real[idx], self.generator)

    def __call__(self, model: Any) -> Tensor:
        idx, u = self._pick()
        species, xyz, real = self.species[idx], self.coordinates[idx], self.real[idx]
        both_species = torch.cat([species, species])
        both_xyz = torch.cat([xyz, xyz + self.step * u])
        with torch.enable_grad():
            ref = self._forces(self.reference_model, both_species, both_xyz, create_graph=False)
        change = self._forces(model, both_species, both_xyz, create_graph=True) - ref.detach()
        m = species.shape[0]
        diff = (change[m:] - change[:m]) * (self.kcal / self.step)
        diff = _project_internal(diff, xyz, real)
        has_motion = (u.pow(2).sum((1, 2)) > 0).to(diff.dtype)
        per_molecule = diff.pow(2).sum((1, 2)) * has_motion
        return self.strength * (per_molecule.sum() / has_motion.sum().clamp(min=1)).to(
            torch.float64)

    def fixed(self, most: int = 1024) -> SmoothCorrection:
        """The same penalty on one fixed draw of at most ``most`` anchors and one direction
        each, used at every call (L-BFGS needs a deterministic loss)."""
        import copy

        idx = torch.randperm(self.species.shape[0], generator=self.generator)[:most]
        out = copy.copy(self)
        out.species, out.coordinates, out.real = (self.species[idx], self.coordinates[idx],
                                                  self.real[idx])
        out.directions = internal_directions(out.coordinates, out.real, self.generator)
        out.batch_size, out.is_fixed = len(idx), True
        return out


__all__ = ["L2SP", "ForceAnchor", "SmoothCorrection", "internal_directions"]
