"""Choose the transfer recipe itself by k-fold cross-validation over the high-level points.

No single recipe wins on every molecule of the transfer suite (bench/transfer_suite): the linear
output-layer solve (:mod:`levelup.transfer.linear`) is best where the correction is large and
smooth and the points must be extrapolated from (the H2 dissociation curve) or where the
pre-trained model is a foundation model (ANI-1x); fine-tuning every layer without priors
(``TransferRecipe.plain()``) is best on small polyatomics whose two levels disagree about bond
lengths and force constants. :class:`AutoRecipe` runs each candidate on k-1 folds, predicts the
held-out fold, and keeps the candidate with the lowest pooled held-out energy RMSE, then runs it
on every point. The linear candidate's own strength selection happens inside each training
fold (nested), so neither candidate ever sees the fold it is scored on.
"""

from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from levelup.atomicwrite import write_text_atomic
from levelup.data import Database
from levelup.errors import ConfigError, DataError
from levelup.transfer.gradient import GRADIENT_RECIPES, TransferRecipe, gradient_transfer
from levelup.transfer.linear import LinearRecipe, fold_indices, linear_transfer
from levelup.transfer.surgery import for_each_member
from levelup.units import ENERGY, HARTREE_TO_KCALMOL

#: The candidates :class:`AutoRecipe` compares by default.
CANDIDATES = ("linear", "plain")
#: The recipes a candidate may name (every recipe of levelup.transfer.recipe.RECIPES but "auto").
SINGLE_RECIPES: dict[str, Any] = {"linear": LinearRecipe, **GRADIENT_RECIPES}


@dataclass(frozen=True)
class AutoRecipe:
    """Which recipes :func:`auto_transfer` compares, and how (k-fold CV, seeded)."""

    candidates: tuple[Any, ...] = CANDIDATES  # recipe names (levelup.transfer.recipe.RECIPES) or
    #                                             recipe objects (LinearRecipe, TransferRecipe)
    folds: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [c for c in self.candidates if not isinstance(c, (LinearRecipe, TransferRecipe))
                   and c not in SINGLE_RECIPES]
        if not self.candidates or unknown:
            raise ConfigError(f"AutoRecipe.candidates must name recipes among "
                              f"{', '.join(SINGLE_RECIPES)}; got "
                              f"{self.candidates!r}")
        if self.folds < 2:
            raise ConfigError(f"folds must be >= 2; got {self.folds}")


@dataclass
class AutoChoice:
    """The recipe chosen, every candidate's CV error, and the chosen run's own record."""

    recipe: str
    cv_rmse: dict[str, float]  # kcal/mol, pooled held-out energies, per candidate
    folds: int
    points: int
    seconds: float
    record: Any = field(repr=False, default=None)  # the final run's LinearChoice or History

    def summary(self) -> str:
        """One line for logs and reports (with the chosen run's own summary)."""
        errors = ", ".join(f"{k} {v:.3f}" for k, v in self.cv_rmse.items())
        inner = f"; {self.record.summary()}" if hasattr(self.record, "summary") else ""
        return (f"auto: chose {self.recipe} by {self.folds}-fold CV over {self.points} points "
                f"(CV RMSE kcal/mol: {errors}) in {self.seconds:.1f} s{inner}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (``kind`` "auto-transfer"; the chosen run's record inside)."""
        record = self.record.to_dict() if hasattr(self.record, "to_dict") else None
        return {"kind": "auto-transfer", "recipe": self.recipe, "cv_rmse": self.cv_rmse,
                "folds": self.folds, "points": self.points, "seconds": self.seconds,
                "record": record}

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_dict` as JSON (atomically)."""
        write_text_atomic(path, json.dumps(self.to_dict(), indent=1) + "\n")


def _candidate(name: Any, seed: int) -> Any:
    if isinstance(name, str):
        return SINGLE_RECIPES[name](seed=seed)
    return replace(name, seed=seed)


def _transfer(pretrained: Any, points: Database, *, property: str, anchors: Database | None,
              recipe: Any, progress: bool) -> tuple[Any, Any]:
    """One candidate's run on ``points`` (an Ensemble member by member, as finetune does)."""
    if isinstance(recipe, LinearRecipe):
        return for_each_member(linear_transfer, pretrained, recipe, points=points,
                               property=property, anchors=anchors)
    return for_each_member(gradient_transfer, pretrained, recipe, train=points,
                           property=property, anchors=anchors, progress=progress)


def _name(candidate: Any) -> str:
    if isinstance(candidate, str):
        return candidate
    return "linear" if hasattr(candidate, "folds") else "gradient"


def auto_transfer(pretrained: Any, points: Database, *, property: str,
                  anchors: Database | None = None, recipe: AutoRecipe | None = None,
                  progress: bool = False) -> tuple[Any, AutoChoice]:
    """Transfer ``pretrained`` with the candidate recipe that cross-validates best on
    ``points`` (every high-level point; energies ``property`` in Hartree)."""
    recipe = recipe or AutoRecipe()
    start = time.perf_counter()
    energies = np.asarray(points.get(property, unit=ENERGY), dtype=np.float64)
    points = points[np.isfinite(energies)]
    energies = energies[np.isfinite(energies)]
    if len(points) < max(3, recipe.folds // 2):
        raise DataError(f"choosing a recipe by cross-validation needs at least 3 high-level "
                        f"energies; {property!r} has {len(points)}")
    parts = fold_indices(len(points), recipe.folds, recipe.seed)
    cv: dict[str, float] = {}
    names = [_name(c) for c in recipe.candidates]
    if len(set(names)) < len(names):
        names = [f"{n}#{k}" for k, n in enumerate(names)]
    for name, candidate in zip(names, recipe.candidates, strict=True):
        chosen = _candidate(candidate, recipe.seed)
        if hasattr(chosen, "folds"):  # the linear recipe's inner CV must fit in a training fold
            inner = min(chosen.folds, min(len(points) - len(p) for p in parts))
            chosen = replace(chosen, folds=max(2, inner))
        sq = []
        for held in parts:
            rest = np.setdiff1d(np.arange(len(points)), held)
            model, _ = _transfer(copy.deepcopy(pretrained), points[rest], property=property,
                                 anchors=anchors, recipe=chosen, progress=progress)
            sq.append((model.predict(points[held]).energies - energies[held])
                      * HARTREE_TO_KCALMOL)
        cv[name] = float(np.sqrt(np.mean(np.concatenate(sq) ** 2)))
    best = min(cv, key=lambda k: (cv[k], names.index(k)))
    model, record = _transfer(pretrained, points, property=property, anchors=anchors,
                              recipe=_candidate(recipe.candidates[names.index(best)], recipe.seed),
                              progress=progress)
    return model, AutoChoice(recipe=best, cv_rmse=cv, folds=len(parts), points=len(points),
                             seconds=time.perf_counter() - start, record=record)


__all__ = ["AutoChoice", "AutoRecipe", "auto_transfer"]
