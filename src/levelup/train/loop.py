"""Training an ANI model: :class:`TrainConfig`, :class:`History` and :func:`fit`, one visible loop.

The recipe is TorchANI's and MLatom's: AdamW, the learning rate halved when the validation loss
has not improved for a number of epochs (ReduceLROnPlateau), training stops once the rate falls
below a floor, and the weights of the best validation epoch are restored. By default it runs on
batches of 16 at 2e-3 and validates a moving average of the weights (see :class:`TrainConfig`);
``TrainConfig.mlatom()`` with ``param_groups=torchani_groups(model)`` is MLatom's recipe (batch 8,
1e-3, no average, biases by plain SGD).

Loss (per batch, energies in kcal/mol so that losses and penalties read in familiar units)::

    loss = mean over molecules of (E_pred - E_ref)^2 / sqrt(atoms)
           + force_weight * mean over molecules of sum over atoms, xyz (F_pred - F_ref)^2 / atoms

the division by sqrt(atoms) is MLatom's and TorchANI's (big molecules' errors grow with size).

Speed by design: the AEV depends only on the geometry, so energy-only training computes every AEV
once (and the outputs of frozen leading layers too) and reuses them every epoch; see
:mod:`levelup.train.batching`. Only parameters with ``requires_grad`` are handed to the optimizer, so
frozen ones stay bit-identical (AdamW's weight decay never touches them).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from levelup.atomicwrite import write_text_atomic
from levelup.data import Database
from levelup.errors import ConfigError, DataError
from levelup.train.batching import CachedEnergies, GeometryBatches
from levelup.train.checkpoint import load_checkpoint, save_checkpoint
from levelup.train.config import TrainConfig
from levelup.train.optim import FlatAdamW, Plateau
from levelup.units import ENERGY, FORCE
from levelup.units import HARTREE_TO_KCALMOL as KCAL


@dataclass
class History:
    """Per-epoch record of a :func:`fit` run (lists, one entry per epoch).

    Attributes:
        epoch: epoch numbers (1-based).
        train_rmse: energy RMSE over the training batches of that epoch, kcal/mol.
        val_rmse: energy RMSE on the validation set after that epoch, kcal/mol (NaN without one).
        train_force_rmse / val_force_rmse: force RMSE, kcal/mol/Angstrom (NaN unless forces).
        val_loss: the loss the schedule watches (validation, or training without validation).
        lr: learning rate used in that epoch (of the first parameter group).
        time: seconds since the start of training at the end of that epoch.
        best_epoch: epoch whose weights were restored at the end.
        stop_reason: why training stopped ("lr_floor", "max_epochs", "callback" or
            "interrupted": see :class:`TrainingInterrupted`).
    """

    epoch: list[int] = field(default_factory=list)
    train_rmse: list[float] = field(default_factory=list)
    val_rmse: list[float] = field(default_factory=list)
    train_force_rmse: list[float] = field(default_factory=list)
    val_force_rmse: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    time: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stop_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def append(self, **values: float) -> None:
        """Record one epoch: a value for each per-epoch list (``epoch=3, train_rmse=0.2, ...``)."""
        for name, value in values.items():
            getattr(self, name).append(value)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        return cls(**{f.name: copy.deepcopy(data[f.name]) for f in dataclasses.fields(cls)
                      if f.name in data})

    def save(self, path: str | os.PathLike) -> None:
        """Write as JSON (atomically); NaN is written as null."""
        clean = {k: ([None if isinstance(x, float) and math.isnan(x) else x for x in v]
                     if isinstance(v, list) else v) for k, v in self.to_dict().items()}
        write_text_atomic(path, json.dumps({"units": "kcal/mol", **clean}, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> History:
        data = json.loads(Path(path).read_text())
        return cls.from_dict({k: ([math.nan if x is None else x for x in v]
                                  if isinstance(v, list) else v) for k, v in data.items()})


class TrainingInterrupted(KeyboardInterrupt):  # noqa: N818 (it is a KeyboardInterrupt)
    """Raised by :func:`fit` when a KeyboardInterrupt (Ctrl-C; SIGTERM too under the ``levelup``
    command) arrives during the epochs. It is a KeyboardInterrupt, so a script stops as usual;
    a caller that wants the work done so far catches it: the model already holds the weights
    of the best epoch so far (as after a normal end), and ``history`` records the finished
    epochs with ``stop_reason = "interrupted"`` (``history.best_epoch`` is 0, and the model's
    weights those of a partly trained first epoch, when no epoch finished). No checkpoint is
    written for the unfinished epoch: resuming starts from the last periodic checkpoint.

    Attributes:
        history: the :class:`History` of the epochs that finished.
    """

    def __init__(self, history: History) -> None:
        super().__init__(f"training interrupted after {len(history.epoch)} epochs")
        self.history = history


# ---------------------------------------------------------------------------------- set-up


def _labelled(db: Database, prop: str, role: str) -> Database:
    """Molecules of ``db`` that carry ``prop`` (others dropped with a warning)."""
    if not isinstance(db, Database):
        raise DataError(f"the {role} set must be a levelup Database; got {type(db).__name__}")
    if db.get(prop).ndim != 1:
        raise DataError(f"property {prop!r} holds per-atom values; train on an energy property")
    values = db.get(prop, unit=ENERGY)  # energies are trained on in Hartree, nothing else
    keep = np.isfinite(values)
    if not keep.any():
        raise DataError(f"no molecule of the {role} set has a value for {prop!r}")
    if not keep.all():
        warnings.warn(f"{int((~keep).sum())} of {len(db)} molecules of the {role} set lack "
                      f"{prop!r} and are left out", stacklevel=3)
        db = db[keep]
    return db


def _self_energies_unset(model: torch.nn.Module) -> bool:
    se = model.self_energies
    return bool(torch.isnan(se).any() or (se == 0).all())


def _tensors(model: torch.nn.Module, db: Database, prop: str) -> tuple[Tensor, Tensor, Tensor]:
    """(species indices, coordinates in the model's dtype, residual energies float64)."""
    species = model.species_index(db.species)
    coordinates = torch.from_numpy(db.coordinates).to(model.dtype)
    with torch.no_grad():
        residuals = torch.from_numpy(db.get(prop).astype(np.float64)) - model.self_energy_sum(species)
    return species, coordinates, residuals


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
               param_groups: Sequence[Mapping[str, Any]] | None) -> FlatAdamW:
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
    return FlatAdamW([(ps, lr / KCAL ** 2, wd, "sgd") if sgd else (ps, lr, wd)
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


def _fingerprint(config: TrainConfig, prop: str, *sets: Database) -> str:
    """Hash of what decides the result, to refuse resuming a checkpoint of another run."""
    h = hashlib.sha256(prop.encode())
    for key, value in sorted(config.to_dict().items()):
        if key not in ("checkpoint", "checkpoint_every", "resume", "max_epochs"):
            h.update(f"{key}={value};".encode())
    for db in sets:
        h.update(np.ascontiguousarray(db.coordinates).tobytes())
        h.update(np.ascontiguousarray(db.get(prop)).tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------- steps


def _energy_loss(pred: Tensor, target: Tensor, inv_sqrt_atoms: Tensor) -> tuple[Tensor, Tensor]:
    """(loss in (kcal/mol)^2, detached sum of squared errors in kcal^2) of one batch."""
    diff = (pred - target) * KCAL
    sq = diff * diff
    return (sq * inv_sqrt_atoms).mean(), sq.detach().sum()


def _geometry_step(model: torch.nn.Module, batch: tuple[Tensor, ...], force_weight: float,
                   create_graph: bool) -> tuple[Tensor, Tensor, Tensor]:
    """(loss, energy squared-error sum, force squared-error sum) of one batch with forces."""
    species, xyz, residuals, f_ref = batch
    xyz = xyz.detach().requires_grad_(True)
    pred = model.atomic_energies(species, model.compute_aev(species, xyz)).sum(-1)
    f_pred = -torch.autograd.grad(pred.sum(), xyz, create_graph=create_graph)[0]
    n_atoms = (species >= 0).sum(1).to(pred.dtype)
    e_loss, e_sq = _energy_loss(pred, residuals.to(pred.dtype), n_atoms.rsqrt())
    known = torch.isfinite(f_ref)
    f_diff = torch.where(known, (f_pred - f_ref.nan_to_num()) * KCAL, torch.zeros_like(f_pred))
    f_sq = (f_diff * f_diff).sum((1, 2))  # (molecules,)
    loss = e_loss + force_weight * (f_sq / n_atoms).mean()
    return loss, e_sq, f_sq.detach().sum()


def _evaluate(model: torch.nn.Module, data: Any, force_weight: float
              ) -> tuple[float, float, float]:
    """(loss, energy RMSE kcal/mol, force RMSE kcal/mol/A) of a whole set, no parameter grads."""
    if isinstance(data, CachedEnergies):
        with torch.no_grad():
            loss, e_sq, count = 0.0, 0.0, 0
            for start, stop in data.batches():
                target, w = data.batch_targets(start, stop)
                batch_loss, sq = _energy_loss(data.energies(start, stop), target, w)
                loss += float(batch_loss) * (stop - start)
                e_sq += float(sq)
                count += stop - start
        return loss / count, math.sqrt(e_sq / count), math.nan
    loss, e_sq, f_sq, count, n_comp = 0.0, 0.0, 0.0, 0, 0
    for idx in data.batches(1024, None):
        batch = data.take(idx)
        batch_loss, sq, fsq = _geometry_step(model, batch, force_weight, create_graph=False)
        loss += float(batch_loss.detach()) * len(idx)
        e_sq, f_sq, count = e_sq + float(sq), f_sq + float(fsq), count + len(idx)
        n_comp += int(torch.isfinite(batch[3]).sum())
    return loss / count, math.sqrt(e_sq / count), math.sqrt(f_sq / max(n_comp, 1))


# ---------------------------------------------------------------------------------- fit


def fit(
    model: torch.nn.Module,
    train: Database,
    validation: Database | None = None,
    *,
    property: str,
    config: TrainConfig | None = None,
    progress: bool = True,
    forces: str | None = None,
    param_groups: Sequence[Mapping[str, Any]] | None = None,
    penalty: Callable[[torch.nn.Module], Tensor] | None = None,
    callback: Callable[[int, History, torch.nn.Module], bool | None] | None = None,
) -> History:
    """Train ``model`` (an :class:`~levelup.model.ani.ANIModel`, in place) on energies ``property``
    (Hartree) of ``train``, and forces too when ``config.force_weight > 0``.

    Args:
        model: the model; parameters with ``requires_grad=False`` are left exactly as they are.
            Self energies that were never set (all zero or NaN) are first fitted by least
            squares to the training energies.
        train: training molecules; those without a value of ``property`` are left out.
        validation: validation molecules; None splits ``config.validation_fraction`` of
            ``train`` off at random (seeded by ``config.seed``).
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
            (kcal/mol)^2 (e.g. :class:`levelup.transfer.surgery.L2SP`).
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
    if not hasattr(model, "networks") or hasattr(model, "members"):
        raise ConfigError(f"fit trains one ANIModel; got {type(model).__name__} (train the members "
                          "of an ensemble one by one)")
    train = _labelled(train, property, "training")
    if validation is None and config.validation_fraction > 0:
        train, validation = train.split(1 - config.validation_fraction,
                                        config.validation_fraction, seed=config.seed)
        if len(validation) == 0 or len(train) == 0:
            raise DataError(f"cannot split {len(train) + len(validation)} molecules into training "
                            "and validation sets: give validation= or more molecules")
    elif validation is not None:
        validation = _labelled(validation, property, "validation")
    use_forces = config.force_weight > 0
    forces = forces or f"forces/{property}"
    fingerprint = _fingerprint(config, property, train, *([validation] if validation else []))
    state = None
    if config.resume and Path(config.checkpoint).exists():
        state = load_checkpoint(config.checkpoint)
        if state["fingerprint"] != fingerprint:
            raise ConfigError(f"checkpoint {config.checkpoint} belongs to another run (other data "
                              "or settings); delete it or set resume=False")
        model.load_state_dict(state["model"])
    elif _self_energies_unset(model):
        from levelup.model.selfenergies import fit_self_energies

        model.set_self_energies(fit_self_energies(train.species, train.get(property),
                                                  model.elements))

    def prepare(db: Database) -> CachedEnergies | GeometryBatches:
        species, xyz, residuals = _tensors(model, db, property)
        if not use_forces:
            return CachedEnergies(model, species, xyz, residuals)
        f = torch.from_numpy(np.array(db.get(forces, unit=FORCE), dtype=np.float64)
                             ).to(model.dtype)
        return GeometryBatches(species, xyz, residuals.to(model.dtype), f)

    train_data = prepare(train)
    val_data = prepare(validation) if validation is not None else None
    if isinstance(val_data, CachedEnergies):
        val_data.shuffle(np.arange(val_data.n), batch_size=4096)
    optimizer = _optimizer(model, config, param_groups)
    try:
        return _loop(model, config, train_data, val_data, optimizer, fingerprint, state, progress,
                     penalty, callback)
    finally:
        optimizer.release()


def _train_epoch(model: torch.nn.Module, config: TrainConfig, train_data: Any,
                 optimizer: FlatAdamW, generator: torch.Generator,
                 penalty: Callable[[torch.nn.Module], Tensor] | None) -> tuple[float, float]:
    """One pass over the training set in a fresh random order: (energy RMSE kcal/mol, force
    RMSE kcal/mol/Angstrom or NaN without forces) of its batches."""
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
                loss, sq = _energy_loss(train_data.energies(start, end), target, w)
                if penalty is not None:
                    loss = loss + penalty(model)
                optimizer.zero_grad()
                loss.backward()
            optimizer.step()
            e_sq.append(sq)
    else:
        for idx in train_data.batches(config.batch_size, generator):
            batch = train_data.take(idx)
            loss, sq, fsq = _geometry_step(model, batch, config.force_weight, True)
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


def _loop(model: torch.nn.Module, config: TrainConfig, train_data: Any, val_data: Any,
          optimizer: FlatAdamW, fingerprint: str, state: dict[str, Any] | None, progress: bool,
          penalty: Callable[[torch.nn.Module], Tensor] | None,
          callback: Callable[[int, History, torch.nn.Module], bool | None] | None) -> History:
    """The training loop of :func:`fit`: epochs of shuffled batches, validation, schedule,
    best weights, checkpoints. On KeyboardInterrupt: best weights restored, then
    :class:`TrainingInterrupted`."""
    scheduler = Plateau(optimizer, config.lr_factor, config.lr_patience, config.lr_threshold)
    generator = torch.Generator().manual_seed(config.seed)
    history, best_loss, best_state, first_epoch, t_offset = History(), math.inf, None, 1, 0.0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        history = History.from_dict(state["history"])
        best_loss, best_state = state["best_loss"], state["best_state"]
        first_epoch, t_offset = state["epoch"] + 1, history.time[-1] if history.time else 0.0

    def save(epoch: int) -> None:
        save_checkpoint(config.checkpoint, {
            "model": {k: v.clone() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "generator": generator.get_state(), "epoch": epoch, "history": history.to_dict(),
            "best_loss": best_loss, "best_state": best_state, "fingerprint": fingerprint})

    from tqdm.auto import tqdm

    bar = tqdm(total=config.max_epochs, initial=first_epoch - 1, disable=not progress,
               unit="epoch", desc="fit", dynamic_ncols=True)
    t0 = time.perf_counter() - t_offset
    epoch, stop = first_epoch - 1, "max_epochs"
    try:
        for epoch in range(first_epoch, config.max_epochs + 1):
            lr = optimizer.scale * config.learning_rate
            if lr < config.lr_floor:
                epoch, stop = epoch - 1, "lr_floor"
                break
            train_rmse, train_frmse = _train_epoch(model, config, train_data, optimizer,
                                                   generator, penalty)
            with optimizer.averaged():  # validate (and keep) the moving average of the weights
                if val_data is not None:
                    val_loss, val_rmse, val_frmse = _evaluate(model, val_data, config.force_weight)
                else:
                    val_loss, val_rmse, val_frmse = train_rmse ** 2, math.nan, math.nan
                if val_loss < best_loss:
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    best_loss, history.best_epoch = val_loss, epoch
            scheduler.step(val_loss)
            history.append(epoch=epoch, train_rmse=train_rmse, val_rmse=val_rmse,
                           train_force_rmse=train_frmse, val_force_rmse=val_frmse,
                           val_loss=val_loss, lr=lr, time=time.perf_counter() - t0)
            bar.update(1)
            if progress:
                bar.set_postfix_str(f"train {train_rmse:.4g} val {val_rmse:.4g} kcal/mol "
                                    f"lr {lr:.2g}", refresh=False)
            if config.checkpoint and epoch % config.checkpoint_every == 0:
                save(epoch)
            if callback is not None:
                with optimizer.averaged():
                    if callback(epoch, history, model):
                        stop = "callback"
                        break
    except KeyboardInterrupt as exc:
        stop = "interrupted"
        raise TrainingInterrupted(history) from exc
    else:
        if config.checkpoint and (not history.epoch or history.epoch[-1] % config.checkpoint_every):
            save(epoch)
    finally:
        bar.close()
        history.stop_reason = stop
        if best_state is not None:
            model.load_state_dict(best_state)
    return history
