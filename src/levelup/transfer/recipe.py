"""Transfer a pre-trained model to a new level of theory: :func:`finetune` and its recipes.

The default recipe is :class:`~levelup.transfer.linear.LinearRecipe`: the output layers refitted
by one linear solve, the strengths of the priors chosen by k-fold cross-validation over the
high-level points (:mod:`levelup.transfer.linear`; seconds; on the transfer suite of
bench/transfer_suite at most MLatom's tutorial error on every system from 16 points, numbers in
bench/RESULTS.md). The recipes by name (:data:`RECIPES`, :func:`recipe`):

=================  ============================================================================
``linear``         ``LinearRecipe()``, the default
``anchored``       ``TransferRecipe()``: every layer by gradient descent under fixed priors
                   (:mod:`levelup.transfer.gradient`; levelup's default before the transfer
                   suite, shaped on H2)
``force-anchor``   ``TransferRecipe.force_anchor()``: the force anchor alone, AdamW at 1e-3
``plain``          ``TransferRecipe.plain()``: every layer, no prior (AdamW + L-BFGS polish)
``mlatom``         ``TransferRecipe.mlatom()``: MLatom's tutorial (layers 0 and -1 frozen,
                   rate 1e-4, no prior, no polish)
``auto``           ``AutoRecipe()``: linear or plain, whichever cross-validates better on the
                   points (:mod:`levelup.transfer.auto`; about 6 runs of each, so tens of seconds)
``gp``             ``GPRecipe()``: the pre-trained model plus a Gaussian process on the level
                   difference fitted to the points' energies and forces (needs ``forces=``;
                   one molecule; :mod:`levelup.transfer.gpcorrection`)
=================  ============================================================================

The gradient recipes and why they are built as they are: :mod:`levelup.transfer.gradient`.

Under torchrun (several processes, :mod:`levelup.train.distributed`), an Ensemble fine-tuned by a
gradient recipe is spread over the processes: member k on process k % (number of processes),
then every member's weights are broadcast, so every process returns the whole ensemble, equal to
the one a single process makes. One ANIModel by a gradient recipe is trained data-parallel (the
processes share each batch). The linear and auto recipes take seconds: every process computes the
whole result itself, with no communication.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from levelup.data import Database
from levelup.errors import ConfigError
from levelup.train.distributed import Group, alone, process_group, spread
from levelup.train.history import History
from levelup.transfer.auto import AutoChoice, AutoRecipe, auto_transfer
from levelup.transfer.gpcorrection import GPRecipe, gp_transfer
from levelup.transfer.gradient import GRADIENT_RECIPES, TransferRecipe, gradient_transfer
from levelup.transfer.linear import LinearChoice, LinearRecipe, linear_transfer
from levelup.transfer.surgery import for_each_member

#: A transfer recipe: what :func:`finetune` takes.
Recipe = LinearRecipe | TransferRecipe | AutoRecipe | GPRecipe
#: The recipes by name (``levelup finetune --recipe``, study files' ``[transfer] recipe``).
RECIPES: dict[str, Any] = {"linear": LinearRecipe, **GRADIENT_RECIPES, "auto": AutoRecipe,
                           "gp": GPRecipe}


def recipe(name: str, **changes: Any) -> Recipe:
    """The recipe called ``name`` (:data:`RECIPES`), with ``changes`` to its fields."""
    if name not in RECIPES:
        raise ConfigError(f"unknown transfer recipe {name!r}; choose one of "
                          f"{', '.join(RECIPES)}")
    try:
        return RECIPES[name](**changes)
    except TypeError as exc:
        raise ConfigError(f"recipe {name!r}: {exc}") from None


def finetune(pretrained: Any, train: Database, validation: Database | None = None, *,
             property: str, anchors: Database | None = None, recipe: Recipe | None = None,
             forces: str | None = None, progress: bool = True
             ) -> tuple[Any, History | LinearChoice | AutoChoice]:
    """Transfer ``pretrained`` (left untouched) to ``property`` (Hartree) of ``train``.

    Args:
        pretrained: the pre-trained ANIModel, or an :class:`~levelup.model.ani.Ensemble` of them:
            then every member is transferred by the same recipe, member k with seed
            ``recipe.seed + k`` (its own folds, anchor draws and batch order), each anchored on
            its own pre-trained forces.
        train, validation: the high-level data. The linear recipe cross-validates over both
            together (no point is spent on validation only); the gradient recipes pick their best
            epoch on ``validation``.
        property: the high-level energy property.
        anchors: geometries on which the priors act where the new data says nothing (the
            pre-trained forces are anchored there, and the correction kept smooth); typically
            the pre-training set; default: ``train`` and ``validation`` only.
        recipe: a :class:`~levelup.transfer.linear.LinearRecipe` (default) or a
            :class:`~levelup.transfer.gradient.TransferRecipe` or an
            :class:`~levelup.transfer.auto.AutoRecipe` or a
            :class:`~levelup.transfer.gpcorrection.GPRecipe`; :func:`recipe` gives them by name.
        forces: per-atom property of high-level forces (Hartree/Angstrom) to fit as well
            (linear recipe: NaN forces are skipped; gp recipe: required at every point).

    Returns:
        (the transferred copy, the :class:`~levelup.transfer.linear.LinearChoice` made or the
        History of step 2; for the gp recipe a GPCorrected model, which wraps an Ensemble whole,
        and its :class:`~levelup.transfer.gpcorrection.GPChoice`); for an Ensemble by the
        other recipes, (a new Ensemble of the members, a list with each member's choice or
        History).
    """
    recipe = recipe if recipe is not None else LinearRecipe()
    _check_recipe(recipe, forces)
    if isinstance(recipe, TransferRecipe):
        options = {"train": train, "validation": validation, "property": property,
                   "anchors": anchors}
        group = None
        if hasattr(pretrained, "members"):
            group = process_group(next(pretrained.parameters()).device)
        if group is not None:
            return _spread_members(group, pretrained, recipe, progress, options)
        return for_each_member(gradient_transfer, pretrained, recipe, progress=progress,
                               **options)
    points = train
    if validation is not None and len(validation):
        points = Database.concatenate([train, validation])
    with alone():  # seconds of work: every process makes the whole result itself
        if isinstance(recipe, GPRecipe):
            return gp_transfer(pretrained, points, property=property, forces=forces,
                               recipe=recipe)
        if isinstance(recipe, AutoRecipe):
            return for_each_member(auto_transfer, pretrained, recipe, points=points,
                                   property=property, anchors=anchors)
        return for_each_member(linear_transfer, pretrained, recipe, points=points,
                               property=property, forces=forces, anchors=anchors)


def _check_recipe(recipe: Any, forces: str | None) -> None:
    """ConfigError for an object that is no recipe, or forces a recipe cannot use or needs."""
    if not isinstance(recipe, (LinearRecipe, TransferRecipe, AutoRecipe, GPRecipe)):
        raise ConfigError(f"recipe must be a LinearRecipe, TransferRecipe, AutoRecipe or "
                          f"GPRecipe (or levelup.transfer.recipe.recipe(name)); got "
                          f"{type(recipe).__name__}")
    if forces is not None and not isinstance(recipe, (LinearRecipe, GPRecipe)):
        raise ConfigError("fitting high-level forces needs the linear or gp recipe; the "
                          "gradient recipes (TransferRecipe) fit energies only")
    if isinstance(recipe, GPRecipe) and forces is None:
        raise ConfigError("the gp recipe fits the high-level forces too: give forces= (e.g. "
                          "'forces/CCSD(T)/cc-pVDZ'), or use the linear recipe")


def _spread_members(group: Group, ensemble: Any, recipe: TransferRecipe, progress: bool,
                    options: dict[str, Any]) -> tuple[Any, list[History]]:
    """An Ensemble fine-tuned by a gradient recipe over torchrun's processes: member k (seed
    ``recipe.seed + k``, as :func:`~levelup.transfer.surgery.for_each_member` gives it) on
    process k % size, then every member on every process."""
    from levelup.model.ani import Ensemble

    members = list(ensemble.members)

    def work(k: int) -> tuple[Any, History]:
        return gradient_transfer(members[k], recipe=replace(recipe, seed=recipe.seed + k),
                                 progress=progress and group.main, **options)

    pairs = spread(group, len(members), work, lambda k: copy.deepcopy(members[k]))
    return Ensemble([model for model, _ in pairs]), [history for _, history in pairs]


__all__ = ["RECIPES", "Recipe", "finetune", "recipe"]
