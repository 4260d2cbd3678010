"""``levelup.select``: choose which geometries of a pool get the expensive level of theory.

=============  ===============================================================================
``every``      evenly spaced rows, the tutorial's every k-th (:func:`~levelup.selection.
               strategies.every_kth`)
``random``     distinct rows drawn with ``seed``
``fps``        farthest points in AEV space (:mod:`levelup.selection.descriptors`), from a
               pre-trained model's AEV parameters or ANI-1x's
``design``     Bayesian experimental design for the default transfer (:mod:`levelup.selection.
               design`): the geometries whose labels most lower the transferred model's summed
               predictive variance over the pool; needs the pre-trained model, no label;
               with ``structures=``, also their energy differences' (a barrier; :mod:`levelup.
               selection.targets`)
``committee``  query by committee (:mod:`levelup.selection.committee`): labels at the high
               level where a committee of transferred models disagrees most, a batch at a
               time, until ``budget`` or ``target``
=============  ===============================================================================
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from levelup.atomicwrite import write_text_atomic
from levelup.data import Database
from levelup.errors import ConfigError, DataError
from levelup.selection.committee import (
    FEWEST,
    CommitteeRun,
    Round,
    committee_loop,
    minimum_budget,
)
from levelup.selection.descriptors import aev_descriptors, farthest_points
from levelup.selection.strategies import every_kth, random_rows

METHODS = ("every", "random", "fps", "design", "committee")


@dataclass(frozen=True)
class SelectionResult:
    """The geometries chosen, in the order chosen.

    Attributes:
        method: the strategy ("every", "random", "fps", "design", "committee").
        indices: pool rows (K,), in the order chosen, never one twice.
        rounds: the round that chose each row (0 for every row but the committee's later ones).
        history: the committee's rounds (:class:`~levelup.selection.committee.Round`: rows,
            label counts, predicted error and CV RMSE in kcal/mol); empty for the others.
        level: the high level the committee labelled with (canonical spelling), else None.
        energies: the high-level energies of ``indices`` (Hartree; NaN where a calculation
            failed) for the committee, else None.
        pool_size: geometries in the pool.
    """

    method: str
    indices: tuple[int, ...]
    rounds: tuple[int, ...]
    history: tuple[Round, ...] = ()
    level: str | None = None
    energies: tuple[float, ...] | None = None
    pool_size: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (energies in Hartree, errors in kcal/mol)."""
        energies = None if self.energies is None else [
            e if math.isfinite(e) else None for e in self.energies]
        return {"kind": "levelup-selection", "method": self.method, "pool_size": self.pool_size,
                "indices": list(self.indices), "rounds": list(self.rounds),
                "level": self.level, "energies": energies, "energy_unit": "Hartree",
                "error_unit": "kcal/mol", "history": [r.to_dict() for r in self.history]}


def select(pool: Database, budget: int, method: str = "every", *, seed: int = 0,
           model: Any = None, high: str | None = None, batch: int | None = None,
           target: float | None = None, cache: Any = None,
           state: str | os.PathLike | None = None, progress: bool = True,
           low: str | None = None, members: int = 4, recipe: Any = None,
           workers: int | None = None, structures: Mapping[str, Any] | None = None,
           constraints: Mapping[str, Any] | None = None, reference: str | None = None
           ) -> SelectionResult:
    """Choose ``budget`` geometries of ``pool`` for the high level (module docstring).

    Args:
        pool: the candidate geometries (a :class:`~levelup.data.Database`).
        budget: how many to choose (high-level calculations to spend), 1 to ``len(pool)``.
        method: "every", "random", "fps", "design" or "committee".
        seed: seeds "random" and the committee's bootstrap draws; same seed, same choice.
        model: the pre-trained model (ANIModel or Ensemble, or a model file's path): needed
            by "design" and "committee"; gives "fps" its AEV parameters (default ANI-1x's).
        high: the high level ("method/basis") the committee labels with. Where the pool
            already holds a finite energy in a property of that name (e.g. a pool labelled at
            both levels), the committee reads it instead of labelling (``reused`` in its rounds).
        batch: geometries labelled per committee round (default ``budget // 4``, at least 1;
            the first round takes at least 3, or 4 from a single model).
        target: stop the committee early once its predicted error (RMS spread over the pool)
            is at most this many kcal/mol.
        cache: the label cache (see :func:`levelup.qm.label.label`); every label goes
            through it, so a killed committee run started again recomputes none.
        state: JSON file written atomically after every committee round (the result so far,
            ``finished`` false until the end): the run's learning curve.
        progress: show the labelling progress bars.
        low: the pool's low-level energy property; when given, every geometry must have a
            finite value (checked before any work).
        members: committee members from a single model (bootstrap transfers).
        recipe: the transfer recipe (default :class:`~levelup.transfer.linear.LinearRecipe`).
        workers: parallel high-level calculations (default: the labeller's).
        structures: "design" only: name -> structure, two or more, whose energy differences
            (a barrier, a reaction energy) the points must pin as well as the pool
            (:mod:`levelup.selection.targets`); each is optimised on ``model`` first, under
            its ``constraints`` (name -> "planar", "dihedral:0,1,2,3=0", ...), and the
            differences are taken from ``reference`` (default: the first name).

    Raises:
        ConfigError: an unknown method, budget < 1, a bad batch or target, a design or
            committee without ``model``, a committee without ``high``, bad ``structures``.
        DataError: a pool smaller than the budget, or without the ``low`` property.
    """
    batch = _check(pool, budget, method, model=model, high=high, batch=batch, target=target,
                   low=low, members=members, aimed=structures is not None)
    model = None if model is None else _model(model)
    if method != "committee":
        rows = _label_free(pool, budget, method, seed, model,
                           _targets(model, structures, constraints, reference))
        return SelectionResult(method, _ints(rows), (0,) * budget, pool_size=len(pool))
    if budget < minimum_budget(model):
        raise ConfigError(f"query by committee needs a budget of at least "
                          f"{minimum_budget(model)} (the transfer's cross-validation needs "
                          f"{FEWEST} points, and bootstrap members of one model one more to "
                          f"differ); got {budget}: use method='fps' for fewer points")
    return _committee(pool, aev_descriptors(pool, model), CommitteeRun(
        pretrained=model, high=high, budget=budget, batch=batch, target=target, seed=seed,
        members=members, recipe=recipe, cache=cache, workers=workers, progress=progress), state)


def _targets(model: Any, structures: Mapping[str, Any] | None,
             constraints: Mapping[str, Any] | None, reference: str | None) -> Any:
    """The design's energy-difference targets (:mod:`levelup.selection.targets`), or None."""
    if structures is None:
        return None
    from levelup.selection.targets import energy_difference_targets

    return energy_difference_targets(model, structures, reference=reference,
                                     constraints=constraints)


def _label_free(pool: Database, budget: int, method: str, seed: int, model: Any,
                targets: np.ndarray | None = None) -> Any:
    """The rows chosen by the strategies that need no label: every, random, fps, design."""
    if method == "every":
        return every_kth(len(pool), budget)
    if method == "random":
        return random_rows(len(pool), budget, seed)
    if method == "fps":
        return farthest_points(aev_descriptors(pool, model), budget)
    from levelup.selection.design import design_rows

    return design_rows(pool, model, budget, targets)


def _committee(pool: Database, descriptors: np.ndarray, run: CommitteeRun,
               state: str | os.PathLike | None) -> SelectionResult:
    """Run the committee loop, saving the state after every round when ``state`` is a path."""
    from levelup.qm.levels import parse_level

    level = parse_level(run.high).name
    run = replace(run, high=level)

    def result(chosen, rounds, history, energies) -> SelectionResult:
        return SelectionResult("committee", _ints(chosen), _ints(rounds), tuple(history), level,
                               tuple(float(e) for e in energies), len(pool))

    def save(chosen, rounds, history, energies) -> None:
        if state is None:
            return
        data = result(chosen, rounds, history, energies).to_dict()
        done = len(chosen) >= run.budget or (run.target is not None
                                             and history[-1].predicted_error <= run.target)
        extra = {"budget": run.budget, "batch": run.batch, "target": run.target,
                 "seed": run.seed, "finished": done}
        write_text_atomic(state, json.dumps({**data, **extra}, indent=1) + "\n")

    return result(*committee_loop(pool, descriptors, run, save))


def _ints(rows: Any) -> tuple[int, ...]:
    return tuple(int(i) for i in rows)


def _model(model: Any) -> Any:
    if isinstance(model, (str, os.PathLike)):
        from levelup.model.files import load_model

        return load_model(model)
    return model


def _check(pool: Database, budget: int, method: str, *, model: Any, high: str | None,
           batch: int | None, target: float | None, low: str | None, members: int,
           aimed: bool = False) -> int:
    """Every argument error before any work; returns the batch size."""
    if method not in METHODS:
        raise ConfigError(f"unknown selection method {method!r}; choose one of "
                          f"{', '.join(METHODS)}")
    if aimed and method != "design":
        raise ConfigError(f"structures= aims the 'design' strategy at energy differences; "
                          f"method {method!r} cannot use them: use method='design'")
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
        raise ConfigError(f"budget must be a whole number >= 1 (high-level calculations to "
                          f"spend); got {budget!r}")
    if not isinstance(pool, Database):
        raise DataError(f"the pool must be a levelup Database; got {type(pool).__name__}")
    if len(pool) < budget:
        raise DataError(f"the pool has {len(pool)} geometries, fewer than the budget of "
                        f"{budget}: lower the budget or add geometries to the pool")
    if low is not None:
        _check_low(pool, low, method)
    batch = max(1, budget // 4) if batch is None else batch
    if method == "design" and model is None:
        raise ConfigError("the design strategy needs the pre-trained model (model=, an ANIModel "
                          "or Ensemble or a model file, e.g. 'pretrained.pt'): it chooses for "
                          "that model's transfer")
    if method != "committee":
        return batch
    if model is None:
        raise ConfigError("query by committee needs the pre-trained model (model=, an "
                          "ANIModel or Ensemble or a model file, e.g. 'pretrained.pt')")
    if high is None:
        raise ConfigError("query by committee needs the high level to label with (high=, "
                          "e.g. 'CISD/cc-pVDZ')")
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or not (
            1 <= batch <= budget):
        raise ConfigError(f"batch must be a whole number from 1 to the budget ({budget}); "
                          f"got {batch!r}")
    if target is not None and not (math.isfinite(target) and target > 0):
        raise ConfigError(f"target must be a finite error > 0 in kcal/mol (e.g. 0.5); got "
                          f"{target!r}")
    if members < 2:
        raise ConfigError(f"a committee needs at least 2 members; got {members}")
    from levelup.qm.levels import parse_level

    parse_level(high)
    return int(batch)


def _check_low(pool: Database, low: str, method: str) -> None:
    if low not in pool.properties:
        raise DataError(f"the pool has no low-level property {low!r} (method {method!r} was "
                        f"told its energies are there); it has {sorted(pool.properties) or 'none'}"
                        f": label it first, e.g. levelup.label(pool, {low!r})")
    bad = int((~np.isfinite(np.asarray(pool.get(low), dtype=np.float64))).sum())
    if bad:
        raise DataError(f"{bad} of the pool's {len(pool)} geometries have no {low!r} value "
                        "(NaN): label them again or leave them out of the pool")


__all__ = ["METHODS", "SelectionResult", "select"]
