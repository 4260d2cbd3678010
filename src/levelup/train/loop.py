"""Training an ANI model: :func:`fit`, one visible loop.

The recipe is TorchANI's and MLatom's: AdamW, the learning rate halved when the validation loss
has not improved for a number of epochs (ReduceLROnPlateau), training stops once the rate falls
below a floor, and the weights of the best validation epoch are restored. By default it runs on
batches of 16 at 2e-3 and validates a moving average of the weights (see :class:`TrainConfig`);
``TrainConfig.mlatom()`` with ``param_groups=torchani_groups(model)`` is MLatom's recipe (batch 8,
1e-3, no average, biases by plain SGD). The loss and the steps are in :mod:`levelup.train.steps`,
the record of a run in :mod:`levelup.train.history`.

Speed by design: the AEV depends only on the geometry, so energy-only training computes every AEV
once (and the outputs of frozen leading layers too) and reuses them every epoch; see
:mod:`levelup.train.batching`. Only parameters with ``requires_grad`` are handed to the optimizer, so
frozen ones stay bit-identical (AdamW's weight decay never touches them).

Data larger than memory: given the path of a native .h5 file instead of a Database, :func:`fit`
reads it in blocks and keeps at most ``TrainConfig.cache_memory_mb`` of features (energies only)
or of geometries and forces in memory (:mod:`levelup.train.trainsets`); within the budget the
training is exactly that of the Database.

Under torchrun, :func:`fit` trains with the other processes (:mod:`levelup.train.distributed`:
each batch shared, gradients combined, validation sums all_reduced; only rank 0 shows progress
and writes checkpoints); every process ends with the same weights.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from levelup.data import Database
from levelup.errors import ConfigError
from levelup.progress import progress_bar
from levelup.train import trainsets
from levelup.train.batching import CachedEnergies, GeometryBatches
from levelup.train.checkpoint import load_checkpoint, save_checkpoint
from levelup.train.config import TrainConfig
from levelup.train.distributed import Group, process_group
from levelup.train.history import History, TrainingInterrupted
from levelup.train.optim import AveragedAdamW, Plateau, plateau
from levelup.train.steps import Penalty, evaluate, train_epoch
from levelup.train.trainsets import DatabaseFile, as_set, layout, self_energies, split
from levelup.units import HARTREE_TO_KCALMOL as KCAL

#: called after every epoch as callback(epoch, history, model); True stops training
Callback = Callable[[int, History, torch.nn.Module], "bool | None"]


# ---------------------------------------------------------------------------------- set-up


def _self_energies_unset(model: torch.nn.Module) -> bool:
    se = model.self_energies
    return bool(torch.isnan(se).any() or (se == 0).all())


def _weight_decays(model: torch.nn.Module, config: TrainConfig) -> dict[int, float]:
    """id(parameter) -> weight decay: first/last Linear weights ``weight_decay``, hidden ones
    ``hidden_weight_decay``, everything else (biases) 0."""
    out: dict[int, float] = {}
    for net in model.networks.values():
        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        for k, layer in enumerate(linears):
            if k == 0 or k == len(linears) - 1 or not config.hidden_weight_decay:
                out[id(layer.weight)] = config.weight_decay
            else:
                out[id(layer.weight)] = config.hidden_weight_decay[
                    min(k - 1, len(config.hidden_weight_decay) - 1)]
    return out


def _optimizer(model: torch.nn.Module, config: TrainConfig,
               param_groups: Sequence[Mapping[str, Any]] | None) -> AveragedAdamW:
    """AdamW over the trainable parameters, grouped by (learning rate, weight decay); groups
    marked ``"sgd"`` by plain SGD (see :func:`torchani_groups`)."""
    decays = _weight_decays(model, config)
    groups = param_groups if param_groups is not None else [{"params": list(model.parameters())}]
    buckets: dict[tuple[float, float, bool], list[Tensor]] = {}
    for group in groups:
        lr = float(group.get("lr", config.learning_rate))
        sgd = bool(group.get("sgd", False))
        for p in group["params"]:
            if p.requires_grad:
                wd = 0.0 if sgd else float(group.get("weight_decay", decays.get(id(p), 0.0)))
                buckets.setdefault((lr, wd, sgd), []).append(p)
    if not buckets:
        raise ConfigError("the model has no trainable parameter (all are frozen): unfreeze some "
                          "layers before fitting")
    # an SGD group's rate applies to the loss in Hartree^2 (TorchANI's and MLatom's units);
    # the loss here is in (kcal/mol)^2, KCAL^2 times larger, and so are its gradients
    return AveragedAdamW([(ps, lr / KCAL ** 2, wd, "sgd") if sgd else (ps, lr, wd)
                          for (lr, wd, sgd), ps in buckets.items()], ema_decay=config.ema_decay)


def torchani_groups(model: torch.nn.Module) -> list[dict[str, Any]]:
    """Parameter groups of TorchANI's training example and of MLatom (``torchani_interface``):
    the weights by AdamW, the biases by plain SGD, for ``fit(..., param_groups=...)``.

    Plain SGD at the AdamW learning rate on a loss in Hartree^2 moves a bias by about
    ``rate * error``, i.e. hardly at all once the errors are below a milli-Hartree: the biases
    stay close to their initial values (zero for levelup's and TorchANI's initialisation) and
    the weights do the fitting. On the H2 tutorial this matters for what a pre-trained model
    does after transfer: models pre-trained so extrapolate far better below 0.9 Angstrom when
    fine-tuned from 10 points than models whose biases were trained by AdamW
    (bench/bench_tutorial_protocol.py). :meth:`TrainConfig.mlatom` with these groups is
    MLatom's recipe.
    """
    weights, biases = [], []
    for name, p in model.named_parameters():
        (biases if name.endswith("bias") else weights).append(p)
    return [{"params": weights}, {"params": biases, "sgd": True}]


@dataclass
class _Run:
    """What the loop works on and carries from epoch to epoch (all of it in a checkpoint)."""

    train: CachedEnergies | GeometryBatches
    validation: CachedEnergies | GeometryBatches | None
    optimizer: AveragedAdamW
    scheduler: Plateau
    generator: torch.Generator
    fingerprint: str
    history: History
    best_loss: float = math.inf
    best_state: dict[str, Tensor] | None = None
    first_epoch: int = 1
    group: Group | None = None  # the processes training together (levelup.train.distributed)
    val_group: Group | None = None  # the same when each holds a piece of the validation set


def _resume_or_start(model: torch.nn.Module, config: TrainConfig, prop: str,
                     train: Database | DatabaseFile, fingerprint: str) -> dict[str, Any] | None:
    """The checkpoint to resume from (its weights loaded into ``model``), or None after fitting
    the self energies when they were never set."""
    if config.resume and Path(config.checkpoint).exists():
        state = load_checkpoint(config.checkpoint)
        if state["fingerprint"] != fingerprint:
            raise ConfigError(f"checkpoint {config.checkpoint} belongs to another run (other data "
                              "or settings); delete it or set resume=False")
        model.load_state_dict(state["model"])
        return state
    if _self_energies_unset(model):
        model.set_self_energies(self_energies(model, train, prop))
    return None


def _prepare(model: torch.nn.Module, train: Database | DatabaseFile | str | os.PathLike,
             validation: Database | DatabaseFile | str | os.PathLike | None, prop: str,
             config: TrainConfig, forces: str | None,
             param_groups: Sequence[Mapping[str, Any]] | None) -> _Run:
    """Everything :func:`_loop` needs, restored from the checkpoint when resuming."""
    if not hasattr(model, "networks") or hasattr(model, "members"):
        raise ConfigError(f"fit trains one ANIModel; got {type(model).__name__} (train the members "
                          "of an ensemble one by one)")
    train = as_set(train, "training")
    validation = as_set(validation, "validation") if validation is not None else None
    train, validation = split(train, validation, prop, config)
    fingerprint = trainsets.fingerprint(config, prop, train,
                                        *([validation] if validation is not None else []))
    state = _resume_or_start(model, config, prop, train, fingerprint)
    group = process_group(next(model.parameters()).device)
    if group is not None:
        group.start(model, fingerprint, 1 if state is None else state["epoch"] + 1)
    val_group = group if group and validation is not None and len(validation) >= group.size \
        else None
    if val_group is not None:
        validation = validation[val_group.shard(len(validation))]
    forces = (forces or f"forces/{prop}") if config.force_weight > 0 else None
    train_data = layout(model, train, prop, forces, config)
    val_data = layout(model, validation, prop, forces, config) if validation is not None else None
    if isinstance(val_data, CachedEnergies):
        val_data.shuffle(np.arange(val_data.n), batch_size=4096)
    optimizer = _optimizer(model, config, param_groups)
    run = _Run(train_data, val_data, optimizer,
               plateau(optimizer, config.lr_factor, config.lr_patience, config.lr_threshold),
               torch.Generator().manual_seed(config.seed), fingerprint, History(), group=group,
               val_group=val_group)
    if state is not None:
        run.optimizer.load_state_dict(state["optimizer"])
        run.scheduler.load_state_dict(state["scheduler"])
        run.generator.set_state(state["generator"])
        run.history = History.from_dict(state["history"])
        run.best_loss, run.best_state = state["best_loss"], state["best_state"]
        run.first_epoch = state["epoch"] + 1
    return run


# ---------------------------------------------------------------------------------- fit


def fit(
    model: torch.nn.Module,
    train: Database | str | os.PathLike,
    validation: Database | str | os.PathLike | None = None,
    *,
    property: str,
    config: TrainConfig | None = None,
    progress: bool = True,
    forces: str | None = None,
    param_groups: Sequence[Mapping[str, Any]] | None = None,
    penalty: Penalty | None = None,
    callback: Callback | None = None,
) -> History:
    """Train ``model`` (an :class:`~levelup.model.ani.ANIModel`, in place) on energies ``property``
    (Hartree) of ``train``, and forces too when ``config.force_weight > 0``.

    Args:
        model: the model; parameters with ``requires_grad=False`` are left exactly as they are.
            Self energies that were never set (all zero or NaN) are first fitted by least
            squares to the training energies.
        train: training molecules, a Database or the path of a native database file (.h5),
            read block by block (:mod:`levelup.train.trainsets`); unlabelled ones left out.
        validation: validation molecules (the same kinds); None splits
            ``config.validation_fraction`` of ``train`` off at random (seeded by
            ``config.seed``; the same molecules whether ``train`` is a file or its Database).
        property: name of the energy property to learn.
        config: the recipe (default :class:`TrainConfig()`).
        progress: show a progress bar (epoch, losses in kcal/mol, learning rate).
        forces: name of the force property (Hartree/Angstrom) used when
            ``config.force_weight > 0``; default ``"forces/" + property``.
        param_groups: optimizer parameter groups to use instead of "every parameter at
            ``config.learning_rate``": dicts with ``"params"`` and optionally ``"lr"``,
            ``"weight_decay"`` and ``"sgd"`` (True: plain SGD instead of AdamW, the rate
            applying to the loss in Hartree^2; see :func:`torchani_groups`; e.g.
            :func:`levelup.transfer.surgery.parameter_groups`). Only the parameters listed (and
            trainable) are trained.
        penalty: a function of the model returning a scalar added to every batch loss, in
            (kcal/mol)^2 (e.g. :class:`levelup.transfer.priors.L2SP`).
        callback: called as ``callback(epoch, history, model)`` after every epoch, with the
            model holding the weights just validated (the moving average when
            ``config.ema_decay > 0``); returning True stops training (the best weights are
            still restored).

    Returns:
        The :class:`History`. The model ends with the weights of its best validation epoch (the
        moving average of the weights at that epoch when ``config.ema_decay > 0``).

    Raises:
        DataError: ``property`` is not recorded in Hartree (or the force property in
            Hartree/Angstrom), e.g. an "unknown" column of an ASE file: store it again with its
            unit (``db.set(name, values, unit="eV")`` converts).
        TrainingInterrupted: on Ctrl-C during the epochs, after restoring the best weights so
            far; its ``history`` holds the finished epochs.
    """
    config = config if config is not None else TrainConfig()
    run = _prepare(model, train, validation, property, config, forces, param_groups)
    try:
        return _loop(model, config, run, progress, penalty, callback)
    finally:
        run.optimizer.release()


def _loop(model: torch.nn.Module, config: TrainConfig, run: _Run, progress: bool,
          penalty: Penalty | None, callback: Callback | None) -> History:
    """The training loop of :func:`fit`: epochs of shuffled batches, validation, schedule,
    best weights, checkpoints. On KeyboardInterrupt: best weights restored, then
    :class:`TrainingInterrupted`."""
    history = run.history
    main = run.group is None or run.group.main  # only the main process shows and writes
    bar = progress_bar(total=config.max_epochs, initial=run.first_epoch - 1, desc="fit",
                       unit="epoch", enabled=progress and main)
    t0 = time.perf_counter() - (history.time[-1] if history.time else 0.0)
    epoch, stop = run.first_epoch - 1, "max_epochs"
    try:
        for epoch in range(run.first_epoch, config.max_epochs + 1):
            lr = run.optimizer.scale * config.learning_rate
            if lr < config.lr_floor:
                epoch, stop = epoch - 1, "lr_floor"
                break
            train_rmse, train_frmse = train_epoch(model, config, run.train, run.optimizer,
                                                  run.generator, penalty, run.group)
            val_loss, val_rmse, val_frmse = _validate(model, config, run, epoch, train_rmse)
            run.scheduler.step(val_loss)
            history.append(epoch=epoch, train_rmse=train_rmse, val_rmse=val_rmse,
                           train_force_rmse=train_frmse, val_force_rmse=val_frmse,
                           val_loss=val_loss, lr=lr, time=time.perf_counter() - t0)
            bar.update(1)
            bar.set_postfix_str(f"train {train_rmse:.4g} val {val_rmse:.4g} kcal/mol "
                                f"lr {lr:.2g}", refresh=False)
            if main and config.checkpoint and epoch % config.checkpoint_every == 0:
                _save(model, config, run, epoch)
            if callback is not None and _stop_asked(callback, epoch, model, run):
                stop = "callback"
                break
    except KeyboardInterrupt as exc:
        stop = "interrupted"
        raise TrainingInterrupted(history) from exc
    else:
        if main and config.checkpoint and (not history.epoch
                                           or history.epoch[-1] % config.checkpoint_every):
            _save(model, config, run, epoch)
    finally:
        bar.close()
        history.stop_reason = stop
        if run.best_state is not None:
            model.load_state_dict(run.best_state)
    return history


def _validate(model: torch.nn.Module, config: TrainConfig, run: _Run, epoch: int,
              train_rmse: float) -> tuple[float, float, float]:
    """(loss the schedule watches, energy RMSE kcal/mol, force RMSE kcal/mol/Angstrom) of the
    validation set, for the moving average of the weights; keeps them when the best so far."""
    with run.optimizer.averaged():
        if run.validation is not None:
            val_loss, val_rmse, val_frmse = evaluate(model, run.validation, config.force_weight,
                                                     run.val_group)
        else:
            val_loss, val_rmse, val_frmse = train_rmse ** 2, math.nan, math.nan
        if val_loss < run.best_loss:
            run.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            run.best_loss, run.history.best_epoch = val_loss, epoch
    return val_loss, val_rmse, val_frmse


def _stop_asked(callback: Callback, epoch: int, model: torch.nn.Module, run: _Run) -> bool:
    """Call ``callback`` with the model holding the weights just validated; True: stop (on
    every process when the callback of one asks)."""
    with run.optimizer.averaged():
        stop = bool(callback(epoch, run.history, model))
    return run.group.any(stop) if run.group is not None else stop


def _save(model: torch.nn.Module, config: TrainConfig, run: _Run, epoch: int) -> None:
    """Write the checkpoint of ``epoch``: everything needed to resume exactly."""
    save_checkpoint(config.checkpoint, {
        "model": {k: v.clone() for k, v in model.state_dict().items()},
        "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
        "generator": run.generator.get_state(), "epoch": epoch,
        "history": run.history.to_dict(), "best_loss": run.best_loss,
        "best_state": run.best_state, "fingerprint": run.fingerprint})
