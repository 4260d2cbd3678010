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

import numpy as np
import torch
from torch import Tensor

from levelup.train.batching import CachedEnergies, GeometryBatches
from levelup.train.config import TrainConfig
from levelup.train.distributed import Group
from levelup.train.optim import AveragedAdamW
from levelup.units import HARTREE_TO_KCALMOL as KCAL

#: a function of the model added to every batch loss, (kcal/mol)^2
Penalty = Callable[[torch.nn.Module], Tensor]


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


def evaluate(model: torch.nn.Module, data: CachedEnergies | GeometryBatches, force_weight: float,
             group: Group | None = None) -> tuple[float, float, float]:
    """(loss, energy RMSE kcal/mol, force RMSE kcal/mol/Angstrom or NaN) of a whole set
    (:class:`CachedEnergies` or :class:`GeometryBatches`), no parameter gradients. With a
    ``group``, ``data`` is this rank's piece of the set and the result is the whole set's (the
    same on every rank)."""
    sums = _evaluation_sums(model, data, force_weight)
    loss, e_sq, f_sq, count, n_comp = group.sum(sums) if group is not None else sums
    return loss / count, math.sqrt(e_sq / count), math.sqrt(f_sq / max(n_comp, 1))


def _evaluation_sums(model: torch.nn.Module, data: CachedEnergies | GeometryBatches,
                     force_weight: float) -> list[float]:
    """[loss summed over molecules, energy squared errors, force squared errors (NaN without
    forces), molecules, known force components] of ``data``."""
    if isinstance(data, CachedEnergies):
        with torch.no_grad():
            loss, e_sq, count = 0.0, 0.0, 0
            for start, stop in data.batches():
                target, w = data.batch_targets(start, stop)
                batch_loss, sq = energy_loss(data.energies(start, stop), target, w)
                loss += float(batch_loss) * (stop - start)
                e_sq += float(sq)
                count += stop - start
        return [loss, e_sq, math.nan, count, 0]
    loss, e_sq, f_sq, count, n_comp = 0.0, 0.0, 0.0, 0, 0
    for idx in data.batches(1024, None):
        batch = data.take(idx)
        batch_loss, sq, fsq = geometry_step(model, batch, force_weight, create_graph=False)
        loss += float(batch_loss.detach()) * len(idx)
        e_sq, f_sq, count = e_sq + float(sq), f_sq + float(fsq), count + len(idx)
        n_comp += int(torch.isfinite(batch[3]).sum())
    return [loss, e_sq, f_sq, count, n_comp]


def _cached_parts(data: CachedEnergies, batch_size: int, generator: torch.Generator,
                  group: Group | None) -> list[tuple[tuple[int, int] | None, int]]:
    """The epoch's batches of cached data in a fresh random order (as the data groups it:
    :meth:`CachedEnergies.epoch_order`): (this rank's (start, stop) in the order laid out, or
    None when it has no molecule of that batch; the batch's size)."""
    order = data.epoch_order(torch.randperm(data.n, generator=generator).numpy())
    if group is None:
        data.shuffle(order, batch_size)
        return [((s, e), e - s) for s, e in data.batches()]
    mine, sizes = group.epoch_order(order, batch_size)
    spans = []
    if len(mine):
        start, stop = group.piece_bounds(batch_size)
        data.shuffle(mine, stop - start)
        spans = data.batches()
    return [(spans[k] if k < len(spans) else None, size) for k, size in enumerate(sizes)]


def _geometry_parts(data: GeometryBatches, batch_size: int, generator: torch.Generator,
                    group: Group | None) -> list[tuple[np.ndarray | None, int]]:
    """The epoch's batches with forces: (this rank's molecule indices or None, batch size)."""
    out = []
    for idx in data.batches(batch_size, generator):
        mine = idx if group is None else group.piece(idx, batch_size)
        out.append((mine if len(mine) else None, len(idx)))
    return out


def _gradients(model: torch.nn.Module, config: TrainConfig,
               data: CachedEnergies | GeometryBatches, part: tuple[int, int] | np.ndarray,
               optimizer: AveragedAdamW, penalty: Penalty | None) -> tuple[Tensor, Tensor, int]:
    """The gradient of one batch's loss (+ penalty) written into the parameters' ``.grad``;
    returns (energy squared-error sum, force squared-error sum, known force components)."""
    if isinstance(data, CachedEnergies):
        start, end = part
        if data.handwritten:  # same loss and gradients, without autograd's overhead
            loss, sq = data.loss_and_gradients(start, end, KCAL)
            if penalty is not None:
                penalty(model).backward()  # adds to the gradients just written
            return sq, sq.new_zeros(()), 0
        target, w = data.batch_targets(start, end)
        loss, sq = energy_loss(data.energies(start, end), target, w)
        fsq, n_f = sq.new_zeros(()), 0
    else:
        batch = data.take(part)
        loss, sq, fsq = geometry_step(model, batch, config.force_weight, True)
        n_f = int(torch.isfinite(batch[3]).sum())
    if penalty is not None:
        loss = loss + penalty(model)
    optimizer.zero_grad()
    loss.backward()
    return sq, fsq, n_f


def _handwritten_epoch(data: CachedEnergies, parts: list[tuple[tuple[int, int] | None, int]],
                       optimizer: AveragedAdamW) -> float:
    """The epoch of :func:`train_epoch` on cached energies by the hand-written backward pass,
    one process, no penalty: the same steps without the bookkeeping those need (it costs a few
    per cent of a step of 8 small molecules). Returns the energy RMSE, kcal/mol."""
    e_sq = []
    for (start, stop), _ in parts:
        e_sq.append(data.loss_and_gradients(start, stop, KCAL)[1])
        optimizer.step()
    return math.sqrt(float(torch.stack(e_sq).sum()) / data.n)


def train_epoch(model: torch.nn.Module, config: TrainConfig,
                train_data: CachedEnergies | GeometryBatches,
                optimizer: AveragedAdamW, generator: torch.Generator,
                penalty: Penalty | None, group: Group | None = None) -> tuple[float, float]:
    """One pass over the training set in a fresh random order (drawn from ``generator``), one
    optimizer step per batch: (energy RMSE kcal/mol, force RMSE kcal/mol/Angstrom or NaN
    without forces) of its batches. ``penalty(model)``, in (kcal/mol)^2, joins every batch
    loss. With a ``group`` (:mod:`levelup.train.distributed`), each rank computes the gradient
    of its piece of every batch and the pieces' gradients are combined into the batch's."""
    if isinstance(train_data, CachedEnergies):
        parts = _cached_parts(train_data, config.batch_size, generator, group)
        if group is None and penalty is None and train_data.handwritten:
            return _handwritten_epoch(train_data, parts, optimizer), math.nan
    else:
        parts = _geometry_parts(train_data, config.batch_size, generator, group)
    e_sq, f_sq, n_f = [], [], 0
    for part, size in parts:
        if part is not None:
            sq, fsq, n = _gradients(model, config, train_data, part, optimizer, penalty)
            e_sq.append(sq)
            f_sq.append(fsq)
            n_f += n
        else:  # no molecule of this batch here: only the penalty, which counts for nothing
            optimizer.zero_grad()  # below, but keeps its random draws in step with the others
            if penalty is not None:
                penalty(model).backward()
        if group is not None:
            mine = 0 if part is None else (part[1] - part[0] if isinstance(part, tuple)
                                           else len(part))
            group.average_gradients(optimizer.params, mine / size)
        optimizer.step()
    sums = [float(torch.stack(e_sq).sum()) if e_sq else 0.0,
            float(torch.stack(f_sq).sum()) if f_sq else 0.0, n_f]
    e_total, f_total, n_f = group.sum(sums) if group is not None else sums
    train_rmse = math.sqrt(e_total / train_data.n)
    forces = isinstance(train_data, GeometryBatches)
    return train_rmse, math.sqrt(f_total / max(n_f, 1)) if forces else math.nan
