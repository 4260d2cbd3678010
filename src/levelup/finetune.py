"""levelup's recommended transfer-learning recipe, composed from the toolkit in
:mod:`levelup.transfer` and :func:`levelup.train.fit`.

The recipe (``TransferRecipe()``), for a handful of high-level energies:

1. copy the pre-trained model; refit its self energies to the new level, keeping the networks
   (:func:`~levelup.transfer.refit_self_energies`);
2. fine-tune every layer with full-batch AdamW (no weight decay) while a
   :class:`~levelup.transfer.ForceAnchor` keeps the pre-trained model's forces on the
   pre-training geometries; the best-validation weights are kept;
3. polish: re-anchor on the model of step 2 and minimise the same loss to convergence with
   L-BFGS, so the new points are fitted closely while the shape learned in step 2 stays.

Why: fine-tuning on ~10 points with frozen layers (MLatom's tutorial) leaves the surface free
where there are no points, and it extrapolates badly (a spurious well ~30 kcal/mol deep below
the shortest training distance of the H2 tutorial). The correction between levels of theory is
smoother than either surface, so anchoring the *forces* of the pre-trained surface where
nothing else is known is the right prior; see bench/RESULTS.md for the measured effect.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from .data import Database
from .errors import ConfigError
from .train import History, TrainConfig, fit
from .transfer import L2SP, ForceAnchor, freeze, refit_self_energies, self_energies_from_atoms
from .units import HARTREE_TO_KCALMOL


@dataclass(frozen=True)
class TransferRecipe:
    """How :func:`finetune` transfers a pre-trained model to a new level of theory."""

    frozen_layers: tuple[int, ...] = ()  # Linear layers kept as pre-trained (MLatom's
    #                                      tutorial: (0, -1)); the anchor makes freezing unneeded
    self_energies: str = "refit"  # "refit" (least squares on the new data, networks kept),
    #                               "atoms" (isolated atoms at `level` with PySCF) or "keep"
    level: str | None = None  # level of theory for self_energies="atoms"
    anchor_strength: float = 1e-3  # ForceAnchor strength, Angstrom^2 (0: no anchor)
    anchor_batch: int = 128  # anchor geometries drawn per step
    l2sp: float = 0.0  # L2-SP strength on the weights, (kcal/mol)^2 per squared weight
    learning_rate: float = 1e-3  # AdamW rate of step 2
    epochs: int = 3000  # epochs of step 2 (full batch: one step per epoch)
    polish_iterations: int = 200  # L-BFGS iterations of step 3 (0: no polish)
    polish_anchor_strength: float = 1e-2  # anchor strength of step 3, on step 2's model
    seed: int = 0  # seeds the anchor draws and the batch order

    def __post_init__(self) -> None:
        if self.self_energies not in ("refit", "atoms", "keep"):
            raise ConfigError(f"self_energies must be 'refit', 'atoms' or 'keep'; got "
                              f"{self.self_energies!r}")
        if self.self_energies == "atoms" and not self.level:
            raise ConfigError("self_energies='atoms' needs level='method/basis'")
        if min(self.anchor_strength, self.l2sp, self.polish_anchor_strength) < 0:
            raise ConfigError("penalty strengths must be >= 0")


def finetune(pretrained: Any, train: Database, validation: Database | None = None, *,
             property: str, anchors: Database | None = None,
             recipe: TransferRecipe | None = None, progress: bool = True
             ) -> tuple[Any, History]:
    """Transfer ``pretrained`` (left untouched) to ``property`` (Hartree) of ``train``.

    Args:
        pretrained: the pre-trained ANIModel, or an :class:`~levelup.model.Ensemble` of them:
            then every member is fine-tuned by the same recipe, member k with seed
            ``recipe.seed + k`` (its own anchor draws and batch order), each anchored on its own
            pre-trained forces.
        train, validation: the high-level data (validation picks the best epoch of step 2).
        property: the high-level energy property.
        anchors: geometries whose pre-trained forces are kept where the new data says nothing
            (typically the pre-training set); default: ``train`` and ``validation`` only.
        recipe: the :class:`TransferRecipe` (default: levelup's recommended one).

    Returns:
        (the fine-tuned copy, the History of step 2); for an Ensemble, (a new Ensemble of the
        fine-tuned members, a list with each member's History).
    """
    recipe = recipe or TransferRecipe()
    if hasattr(pretrained, "members"):
        from .model import Ensemble

        tuned, histories = [], []
        for k, member in enumerate(pretrained.members):
            one, history = finetune(member, train, validation, property=property, anchors=anchors,
                                    recipe=replace(recipe, seed=recipe.seed + k),
                                    progress=progress)
            tuned.append(one)
            histories.append(history)
        return Ensemble(tuned), histories
    model = copy.deepcopy(pretrained)
    if recipe.frozen_layers:
        freeze(model, list(recipe.frozen_layers))
    if recipe.self_energies == "refit":
        refit_self_energies(model, train, property)
    elif recipe.self_energies == "atoms":
        self_energies_from_atoms(model, recipe.level)
    if anchors is None:
        anchors = train if validation is None else Database.concatenate([train, validation])
    penalties = []
    if recipe.anchor_strength > 0:
        penalties.append(ForceAnchor(model, anchors, recipe.anchor_strength,
                                     recipe.anchor_batch, recipe.seed))
    if recipe.l2sp > 0:
        penalties.append(L2SP(model, recipe.l2sp))
    config = TrainConfig(learning_rate=recipe.learning_rate, batch_size=len(train),
                         weight_decay=0.0, hidden_weight_decay=(0.0,),
                         lr_patience=recipe.epochs, max_epochs=recipe.epochs,
                         lr_floor=0.0, seed=recipe.seed,
                         validation_fraction=0.0 if validation is None else 0.2)
    history = fit(model, train, validation, property=property, config=config,
                  progress=progress, penalty=_sum(penalties))
    if recipe.polish_iterations > 0:
        polish(model, train, property=property,
               penalty=ForceAnchor(model, anchors, recipe.polish_anchor_strength,
                                   recipe.anchor_batch, recipe.seed)
               if recipe.polish_anchor_strength > 0 else None,
               iterations=recipe.polish_iterations)
    return model, history


def _sum(penalties: list[Any]) -> Any:
    if not penalties:
        return None
    if len(penalties) == 1:
        return penalties[0]
    return lambda model: sum(p(model) for p in penalties)


def polish(model: Any, train: Database, *, property: str, penalty: Any = None,
           iterations: int = 200) -> float:
    """Minimise the energy loss on ``train`` (+ ``penalty``) with full-batch L-BFGS; returns the
    final training RMSE in kcal/mol. For small data sets (a few hundred molecules at most):
    every iteration uses all of them."""
    energies = np.asarray(train.get(property), dtype=np.float64)
    keep = np.isfinite(energies)
    species = model.species_index(train.species[keep])
    xyz = torch.from_numpy(np.array(train.coordinates[keep]))
    target = torch.from_numpy(energies[keep])
    with torch.no_grad():
        aev = model.compute_aev(species, xyz)
    weight = (species >= 0).sum(1).double().rsqrt()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.LBFGS(params, lr=1.0, max_iter=iterations, history_size=50,
                                  tolerance_grad=1e-10, tolerance_change=1e-14,
                                  line_search_fn="strong_wolfe")
    if penalty is not None and hasattr(penalty, "batch_size"):
        penalty = replace_batch(penalty)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        diff = (model.energies_from_aev(species, aev) - target) * HARTREE_TO_KCALMOL
        loss = (diff.pow(2) * weight).mean()
        if penalty is not None:
            loss = loss + penalty(model)
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        diff = (model.energies_from_aev(species, aev) - target) * HARTREE_TO_KCALMOL
    return float(diff.pow(2).mean().sqrt())


def replace_batch(anchor: ForceAnchor, most: int = 1024) -> ForceAnchor:
    """The same anchor on one fixed draw of at most ``most`` of its geometries, used at every
    call (L-BFGS needs a deterministic loss)."""
    n = anchor.species.shape[0]
    idx = torch.randperm(n, generator=anchor.generator)[:most] if n > most else torch.arange(n)
    fixed = copy.copy(anchor)
    fixed.species, fixed.coordinates = anchor.species[idx], anchor.coordinates[idx]
    fixed.real, fixed.reference = anchor.real[idx], anchor.reference[idx]
    fixed.batch_size = len(idx)
    return fixed


__all__ = ["TransferRecipe", "finetune", "polish"]
