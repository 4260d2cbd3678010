"""One training step and one pass over a set: the arithmetic of :func:`levelup.train.loop.fit`.

Loss (per batch, energies in kcal/mol so that losses and penalties read in familiar units)::

    loss = mean over molecules of (E_pred - E_ref)^2 / sqrt(atoms)
           + force_weight * mean over molecules of sum over atoms, xyz (F_pred - F_ref)^2 / atoms

the division by sqrt(atoms) is MLatom's and TorchANI's (big molecules' errors grow with size).
Energy-only data (:class:`~levelup.train.batching.CachedEnergies`) steps through cached features,
by the hand-written backward pass where the networks allow it; data with forces
(:class:`~levelup.train.batching.GeometryBatches`) recomputes the AEV under autograd.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from levelup.train.batching import CachedEnergies, GeometryBatches
from levelup.train.config import TrainConfig
from levelup.train.optim import AveragedAdamW
from levelup.units import HARTREE_TO_KCALMOL as KCAL


def energy_loss(pred: Tensor, target: Tensor, inv_sqrt_atoms: Tensor) -> tuple[Tensor, Tensor]:
    """(loss in (kcal/mol)^2, detached sum of squared errors in (kcal/mol)^2) of one batch:
    predicted and reference energies (m,) Hartree, 1/sqrt(atoms) (m,)."""
    diff = (pred - target) * KCAL
    sq = diff * diff
    return (sq * inv_sqrt_atoms).mean(), sq.detach().sum()


def geometry_step(model: torch.nn.Module, batch: tuple[Tensor, ...], force_weight: float,
                  create_graph: bool) -> tuple[Tensor, Tensor, Tensor]:
    """(loss in (kcal/mol)^2, energy squared-error sum in (kcal/mol)^2, force squared-error sum
    in (kcal/mol/Angstrom)^2) of one batch with forces: ``batch`` is (species (m, atoms),
    coordinates (m, atoms, 3) Angstrom, residual energies (m,) Hartree, forces (m, atoms, 3)
    Hartree/Angstrom, NaN where unknown), as :meth:`GeometryBatches.take` gives it.
    ``create_graph``: keep the force graph, to differentiate the loss (training)."""
    species, xyz, residuals, f_ref = batch
    xyz = xyz.detach().requires_grad_(True)
    pred = model.atomic_energies(species, model.compute_aev(species, xyz)).sum(-1)
    f_pred = -torch.autograd.grad(pred.sum(), xyz, create_graph=create_graph)[0]
    n_atoms = (species >= 0).sum(1).to(pred.dtype)
    e_loss, e_sq = energy_loss(pred, residuals.to(pred.dtype), n_atoms.rsqrt())
    known = torch.isfinite(f_ref)
    f_diff = torch.where(known, (f_pred - f_ref.nan_to_num()) * KCAL, torch.zeros_like(f_pred))
    f_sq = (f_diff * f_diff).sum((1, 2))  # (molecules,)
    loss = e_loss + force_weight * (f_sq / n_atoms).mean()
    return loss, e_sq, f_sq.detach().sum()


def evaluate(model: torch.nn.Module, data: CachedEnergies | GeometryBatches, force_weight: float
             ) -> tuple[float, float, float]:
    """(loss, energy RMSE kcal/mol, force RMSE kcal/mol/Angstrom or NaN) of a whole set
    (:class:`CachedEnergies` or :class:`GeometryBatches`), no parameter gradients."""
    if isinstance(data, CachedEnergies):
        with torch.no_grad():
            loss, e_sq, count = 0.0, 0.0, 0
            for start, stop in data.batches():
                target, w = data.batch_targets(start, stop)
                batch_loss, sq = energy_loss(data.energies(start, stop), target, w)
                loss += float(batch_loss) * (stop - start)
                e_sq += float(sq)
                count += stop - start
        return loss / count, math.sqrt(e_sq / count), math.nan
    loss, e_sq, f_sq, count, n_comp = 0.0, 0.0, 0.0, 0, 0
    for idx in data.batches(1024, None):
        batch = data.take(idx)
        batch_loss, sq, fsq = geometry_step(model, batch, force_weight, create_graph=False)
        loss += float(batch_loss.detach()) * len(idx)
        e_sq, f_sq, count = e_sq + float(sq), f_sq + float(fsq), count + len(idx)
        n_comp += int(torch.isfinite(batch[3]).sum())
    return loss / count, math.sqrt(e_sq / count), math.sqrt(f_sq / max(n_comp, 1))


def train_epoch(model: torch.nn.Module, config: TrainConfig,
                train_data: CachedEnergies | GeometryBatches,
                optimizer: AveragedAdamW, generator: torch.Generator,
                penalty: Callable[[torch.nn.Module], Tensor] | None) -> tuple[float, float]:
    """One pass over the training set in a fresh random order (drawn from ``generator``), one
    optimizer step per batch: (energy RMSE kcal/mol, force RMSE kcal/mol/Angstrom or NaN
    without forces) of its batches. ``penalty(model)``, in (kcal/mol)^2, joins every batch
    loss."""
    e_sq, f_sq, n_f = [], [], 0
    if isinstance(train_data, CachedEnergies):
        train_data.shuffle(torch.randperm(train_data.n, generator=generator).numpy(),
                           config.batch_size)
        for start, end in train_data.batches():
            if train_data.handwritten:  # same loss and gradients, without autograd's overhead
                loss, sq = train_data.loss_and_gradients(start, end, KCAL)
                if penalty is not None:
                    penalty(model).backward()  # adds to the gradients just written
            else:
                target, w = train_data.batch_targets(start, end)
                loss, sq = energy_loss(train_data.energies(start, end), target, w)
                if penalty is not None:
                    loss = loss + penalty(model)
                optimizer.zero_grad()
                loss.backward()
            optimizer.step()
            e_sq.append(sq)
    else:
        for idx in train_data.batches(config.batch_size, generator):
            batch = train_data.take(idx)
            loss, sq, fsq = geometry_step(model, batch, config.force_weight, True)
            if penalty is not None:
                loss = loss + penalty(model)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            e_sq.append(sq)
            f_sq.append(fsq)
            n_f += int(torch.isfinite(batch[3]).sum())
    train_rmse = math.sqrt(float(torch.stack(e_sq).sum()) / train_data.n)
    train_frmse = math.sqrt(float(torch.stack(f_sq).sum()) / max(n_f, 1)) if f_sq else math.nan
    return train_rmse, train_frmse
