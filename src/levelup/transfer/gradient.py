"""The gradient recipe: fine-tune a pre-trained model's layers by gradient descent under priors
(:class:`TransferRecipe`, :func:`gradient_transfer`; ``recipe("anchored")`` and its variants in
:mod:`levelup.transfer.recipe`).

The gradient recipe (``TransferRecipe()``, "anchored"), for a handful of high-level energies:

1. copy the pre-trained model; refit its self energies to the new level, keeping the networks
   (:func:`~levelup.transfer.selfenergies.refit_self_energies`);
2. fine-tune every layer with full-batch AdamW (no weight decay, rate 3e-4) under two priors
   on the *correction* the fine-tuning makes to the pre-trained surface, both on the
   pre-training geometries (the anchors): a :class:`~levelup.transfer.priors.ForceAnchor` (the change
   of the forces stays small) and a :class:`~levelup.transfer.priors.SmoothCorrection` (the change
   of the forces varies slowly: the correction has a small curvature); the best-validation
   weights are kept;
3. polish: re-anchor the forces on the model of step 2, keep the smoothness prior, and minimise
   the same loss to convergence with L-BFGS, so the new points are fitted closely while the
   shape learned in step 2 stays.

Why: fine-tuning on ~10 points with frozen layers (MLatom's tutorial) leaves the surface free
where there are no points, and it extrapolates badly (a spurious well ~30 kcal/mol deep below
the shortest training distance of the H2 tutorial). The correction between levels of theory is
smoother than either surface. The force anchor alone asks it to be *flat* where there is no
point, so beyond the data the model falls back to the pre-trained shape (H2: minimum at the
HF/STO-3G bond length); the smoothness prior alone lets it continue *linearly* from the nearest
points (H2: 0.79 Angstrom, as a natural spline of the correction does); together they keep the
correction's slope near the data and let it fade far away. On the H2 tutorial this cut the
error where there is no training point (0.5-0.9 Angstrom) from 10.2 to ~1.4 kcal/mol; the
measurements are in bench/RESULTS.md. ``TransferRecipe.force_anchor()`` is the earlier recipe
(force anchor only, rate 1e-3).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from levelup.data import Database
from levelup.errors import ConfigError
from levelup.train.config import TrainConfig
from levelup.train.history import History
from levelup.train.loop import fit
from levelup.transfer.priors import L2SP, ForceAnchor, SmoothCorrection
from levelup.transfer.selfenergies import refit_self_energies, self_energies_from_atoms
from levelup.transfer.surgery import freeze
from levelup.units import ENERGY, HARTREE_TO_KCALMOL


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
    smoothness: float = 1e-4  # SmoothCorrection strength, Angstrom^4 (0: off); needs a rate
    #                           <= ~3e-4 (at 1e-3 the curvature term makes AdamW oscillate)
    smoothness_step: float = 0.02  # finite-difference step of SmoothCorrection, Angstrom
    l2sp: float = 0.0  # L2-SP strength on the weights, (kcal/mol)^2 per squared weight
    learning_rate: float = 3e-4  # AdamW rate of step 2
    epochs: int = 3000  # epochs of step 2 (full batch: one step per epoch)
    polish_iterations: int = 200  # L-BFGS iterations of step 3 (0: no polish)
    polish_anchor_strength: float = 1e-2  # anchor strength of step 3, on step 2's model
    polish_smoothness: float = 1e-4  # SmoothCorrection strength of step 3 (vs the pre-trained)
    seed: int = 0  # seeds the anchor draws and the batch order

    def __post_init__(self) -> None:
        if self.self_energies not in ("refit", "atoms", "keep"):
            raise ConfigError(f"self_energies must be 'refit', 'atoms' or 'keep'; got "
                              f"{self.self_energies!r}")
        if self.self_energies == "atoms" and not self.level:
            raise ConfigError("self_energies='atoms' needs level='method/basis'")
        if min(self.anchor_strength, self.l2sp, self.polish_anchor_strength, self.smoothness,
               self.polish_smoothness) < 0:
            raise ConfigError("penalty strengths must be >= 0")

    @classmethod
    def force_anchor(cls, **changes: Any) -> TransferRecipe:
        """The earlier recipe: the force anchor alone (no smoothness prior), AdamW at 1e-3."""
        return cls(**({"smoothness": 0.0, "polish_smoothness": 0.0, "learning_rate": 1e-3}
                      | changes))

    @classmethod
    def plain(cls, **changes: Any) -> TransferRecipe:
        """Every layer fine-tuned with no prior at all (AdamW, then the L-BFGS polish)."""
        return cls(**({"anchor_strength": 0.0, "smoothness": 0.0, "polish_smoothness": 0.0,
                       "polish_anchor_strength": 0.0} | changes))

    @classmethod
    def mlatom(cls, **changes: Any) -> TransferRecipe:
        """MLatom's tutorial step: first and output layers frozen, AdamW at 1e-4 for the
        epochs, no prior, no polish (levelup's optimiser and schedule, not MLatom's; the exact
        protocol is :mod:`levelup.compat.mlatom`)."""
        return cls(**({"frozen_layers": (0, -1), "anchor_strength": 0.0, "smoothness": 0.0,
                       "polish_smoothness": 0.0, "polish_anchor_strength": 0.0,
                       "learning_rate": 1e-4, "polish_iterations": 0} | changes))


#: The gradient recipes by name (part of :data:`levelup.transfer.recipe.RECIPES`).
GRADIENT_RECIPES: dict[str, Any] = {
    "anchored": TransferRecipe,
    "force-anchor": TransferRecipe.force_anchor,
    "plain": TransferRecipe.plain,
    "mlatom": TransferRecipe.mlatom,
}


def gradient_transfer(pretrained: Any, train: Database, validation: Database | None = None, *,
                      property: str, anchors: Database | None = None,
                      recipe: TransferRecipe | None = None, progress: bool = True
                      ) -> tuple[Any, History]:
    """Transfer one pre-trained ANIModel (left untouched) to ``property`` (Hartree) of ``train``
    by the gradient recipe (module docstring): self energies, fine-tuning under the priors on
    ``anchors`` (default: ``train`` and ``validation``; the best epoch on ``validation``), then
    the L-BFGS polish. Returns (the transferred copy, the History of the fine-tuning)."""
    recipe = recipe if recipe is not None else TransferRecipe()
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
    smooth = None
    if recipe.smoothness > 0 or recipe.polish_smoothness > 0:
        smooth = SmoothCorrection(model, anchors, recipe.smoothness, recipe.smoothness_step,
                                  recipe.anchor_batch, recipe.seed)
        if recipe.smoothness > 0:
            penalties.append(smooth)
    config = TrainConfig(learning_rate=recipe.learning_rate, batch_size=len(train),
                         weight_decay=0.0, hidden_weight_decay=(0.0,),
                         lr_patience=recipe.epochs, max_epochs=recipe.epochs,
                         lr_floor=0.0, seed=recipe.seed,
                         validation_fraction=0.0 if validation is None else 0.2)
    history = fit(model, train, validation, property=property, config=config,
                  progress=progress, penalty=_sum(penalties))
    if recipe.polish_iterations > 0:
        _polish_step(model, train, property, anchors, recipe, smooth)
    return model, history


def _polish_step(model: Any, train: Database, property: str, anchors: Database,
                 recipe: TransferRecipe, smooth: SmoothCorrection | None) -> None:
    """Step 3: re-anchor the forces on the fine-tuned model, keep the smoothness prior against
    the pre-trained one, and minimise with L-BFGS."""
    penalties = []
    if recipe.polish_anchor_strength > 0:
        penalties.append(ForceAnchor(model, anchors, recipe.polish_anchor_strength,
                                     recipe.anchor_batch, recipe.seed).fixed())
    if recipe.polish_smoothness > 0:
        fixed = smooth.fixed()
        fixed.strength = recipe.polish_smoothness
        penalties.append(fixed)
    polish(model, train, property=property, penalty=_sum(penalties),
           iterations=recipe.polish_iterations)


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
    energies = np.asarray(train.get(property, unit=ENERGY), dtype=np.float64)
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
    if penalty is not None and hasattr(penalty, "fixed") and not getattr(penalty, "is_fixed",
                                                                            False):
        penalty = penalty.fixed()  # a random anchor draw per call would confuse L-BFGS

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
    """The same anchor on one fixed draw of at most ``most`` of its geometries (see
    :meth:`ForceAnchor.fixed`)."""
    return anchor.fixed(most)


__all__ = ["GRADIENT_RECIPES", "TransferRecipe", "gradient_transfer", "polish", "replace_batch"]
