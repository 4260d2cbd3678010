"""Query by committee: label at the high level where a committee of transferred models
disagrees most, a batch at a time, until the budget is spent or the committee's predicted
error falls below a target.

One round (:func:`committee_loop`):

1. label the round's geometries at the high level with :func:`levelup.qm.label.label_with_report`
   (PySCF behind the SQLite label cache, so a killed run that is started again finds every
   label it had already computed: the loop is deterministic for a seed, and re-running it asks
   for the same geometries in the same order); a geometry whose high-level energy the pool
   already holds (a finite value of a Hartree property named as the level, e.g.
   "CCSD(T)/cc-pVDZ") is read from the pool instead (:func:`high_energies`), so a pool labelled
   at both levels (a benchmark's) costs no calculation;
2. transfer the pre-trained model to everything labelled so far (the recipe's CV RMSE is the
   round's estimate of the transfer's error), and fit the committee (:func:`fit_committee`);
3. predict the pool with every member: the spread (sample standard deviation over members) at
   each geometry, and its RMS over the pool, the committee's predicted error (kcal/mol);
4. stop when the budget is spent or the predicted error is at most the target; else pick the
   next batch (:func:`next_batch`): the most disputed geometries, kept diverse.

The first round takes farthest points in AEV space (:mod:`levelup.selection.descriptors`).
Energies are Hartree inside; the per-round numbers are kcal/mol.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from levelup.data import Database
from levelup.errors import DataError
from levelup.model.ani import Ensemble
from levelup.qm.label import label_with_report
from levelup.selection.descriptors import farthest_points
from levelup.transfer.recipe import finetune
from levelup.units import HARTREE_TO_KCALMOL

#: fewest labelled points a transfer cross-validates on (the linear recipe needs 3)
FEWEST = 3
#: candidates per pick of a batch: the batch is spread (farthest points) over the
#: ``CANDIDATES * batch`` most disputed geometries, or the most disputed :data:`SHARE` of the
#: unlabelled pool if that is more, so that it is not ``batch`` neighbours (on the H2 scan the
#: 6 most disputed of a batch of 2 were one peak of the spread, and the batch two neighbours)
CANDIDATES = 3
SHARE = 0.1


@dataclass(frozen=True)
class Round:
    """One round of the loop: what was labelled and how sure the committee then was.

    Attributes:
        round: 0 for the starting points, then 1, 2, ...
        chosen: pool rows labelled in this round, in the order chosen.
        labelled: points labelled after this round (all rounds so far).
        computed: labels computed by this run in this round (the others came from the cache).
        cached: labels of this round found in the label cache.
        reused: energies of this round read from the pool (:func:`high_energies`).
        predicted_error: RMS over the pool of the members' spread after this round, kcal/mol.
        cv_rmse: cross-validation RMSE of the transfer to every labelled point, kcal/mol (NaN
            for a recipe that reports none).
        seconds: wall time of the round (labels, transfers, predictions).
    """

    round: int
    chosen: tuple[int, ...]
    labelled: int
    computed: int
    cached: int
    predicted_error: float
    cv_rmse: float
    seconds: float
    reused: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (kcal/mol, seconds)."""
        return {**asdict(self), "chosen": list(self.chosen)}


def minimum_budget(pretrained: Any) -> int:
    """Fewest points the committee starts from: :data:`FEWEST` from an Ensemble, one more from
    a single model (so that its bootstrap members can differ)."""
    return FEWEST if isinstance(pretrained, Ensemble) else FEWEST + 1


def starting_size(pretrained: Any, budget: int, batch: int) -> int:
    """Points labelled in round 0: ``batch``, at least :func:`minimum_budget`, at most
    ``budget``."""
    return min(budget, max(batch, minimum_budget(pretrained)))


def bootstrap_rows(n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted distinct rows (at least :data:`FEWEST`) of a bootstrap draw of ``n`` rows.

    The distinct rows, not the draw with repeats: a repeated point would sit in a training fold
    and in a held-out fold of the recipe's cross-validation at once and make it choose the
    weakest priors. A draw with fewer than :data:`FEWEST` distinct rows, or (with more than
    that many points) with every row, is drawn again; after 100 tries one row is left out.
    """
    for _ in range(100):
        rows = np.unique(rng.integers(0, n, n))
        if len(rows) >= FEWEST and (len(rows) < n or n <= FEWEST):
            return rows
    return np.delete(np.arange(n), int(rng.integers(n)))


def fit_committee(pretrained: Any, points: Database, *, property: str, anchors: Database,
                  members: int, seed: int, recipe: Any = None) -> tuple[Ensemble, float]:
    """(the committee, the CV RMSE in kcal/mol of the transfer to all ``points``).

    From an Ensemble: each of its members transferred to every point (``finetune`` does that;
    ``members`` is ignored). From one model: ``members`` transfers, each to the distinct rows
    of its own seeded bootstrap draw (:func:`bootstrap_rows`), plus the transfer to every point
    for the CV RMSE.
    """
    energies = np.asarray(points.get(property), dtype=np.float64)
    points = points[np.isfinite(energies)]
    if len(points) < FEWEST:
        raise DataError(f"query by committee: only {len(points)} of the labelled points have a "
                        f"finite {property!r} energy; the transfer needs {FEWEST}")
    if isinstance(pretrained, Ensemble):
        committee, choices = finetune(pretrained, points, property=property, anchors=anchors,
                                      recipe=recipe, progress=False)
        return committee, float(np.mean([_cv(c) for c in choices]))
    _, choice = finetune(pretrained, points, property=property, anchors=anchors, recipe=recipe,
                         progress=False)
    rng = np.random.default_rng([seed, len(points)])
    fitted = [finetune(pretrained, points[bootstrap_rows(len(points), rng)], property=property,
                       anchors=anchors, recipe=recipe, progress=False)[0]
              for _ in range(members)]
    return Ensemble(fitted), _cv(choice)


def _cv(choice: Any) -> float:
    return float(getattr(choice, "cv_rmse", float("nan")))


def next_batch(spread: np.ndarray, descriptors: np.ndarray, taken: np.ndarray,
               size: int) -> np.ndarray:
    """``size`` untaken rows: the most disputed one (largest ``spread`` (molecules,)), then
    farthest points (``descriptors`` (molecules, features)) from every taken or picked row
    among the :data:`CANDIDATES` * ``size`` (or :data:`SHARE` of the untaken rows) most
    disputed. Ties go to the lowest row."""
    free = np.setdiff1d(np.arange(len(spread)), taken)
    order = free[np.lexsort((free, -spread[free]))]
    top = order[:max(CANDIDATES * size, int(np.ceil(SHARE * len(free))))]
    first = top[:1]
    if size == 1:
        return first
    rest = farthest_points(descriptors, size - 1, taken=np.concatenate([taken, first]),
                           candidates=top[1:])
    return np.concatenate([first, rest])


@dataclass(frozen=True)
class CommitteeRun:
    """What :func:`committee_loop` needs besides the pool: see its docstring."""

    pretrained: Any
    high: str
    budget: int
    batch: int
    target: float | None = None
    seed: int = 0
    members: int = 4
    recipe: Any = None
    cache: Any = None
    workers: int | None = None
    progress: bool = False


def high_energies(pool: Database, rows: np.ndarray, run: CommitteeRun
                  ) -> tuple[np.ndarray, int, int, int]:
    """(high-level energies of ``pool`` rows ``rows`` in Hartree (NaN where a calculation
    failed), labels computed, labels from the cache, energies read from the pool).

    Where the pool holds a finite energy in a property named as the level ``run.high``
    (canonical spelling, unit Hartree, one value per molecule), that value is taken as it is;
    the other rows are labelled through the labeller and its cache.
    """
    values = np.full(len(rows), np.nan)
    info = pool.properties.get(run.high)
    if info is not None and not info.per_atom and info.unit == "Hartree":
        values = np.asarray(pool.get(run.high), dtype=np.float64)[rows].copy()
    todo = ~np.isfinite(values)
    computed = cached = 0
    if todo.any():
        labelled, report = label_with_report(pool[rows[todo]], run.high, cache=run.cache,
                                             progress=run.progress, workers=run.workers)
        values[todo] = labelled.get(report.name)
        computed, cached = report.computed, report.cached
    return values, computed, cached, int((~todo).sum())


def committee_loop(pool: Database, descriptors: np.ndarray, run: CommitteeRun,
                   on_round: Callable[[list[int], list[int], list[Round], np.ndarray], None]
                   | None = None) -> tuple[list[int], list[int], list[Round], np.ndarray]:
    """Query by committee over ``pool`` (module docstring).

    Returns (rows in the order chosen, the round of each, the rounds, the high-level energies
    of the rows in Hartree (NaN where a calculation failed)). ``on_round`` is called with the
    same four after every round (to save the state of the run).
    """
    chosen = [int(i) for i in farthest_points(descriptors, starting_size(
        run.pretrained, run.budget, run.batch))]
    rounds, history = [0] * len(chosen), []
    energies = np.zeros(0)
    new = list(chosen)
    while True:
        start = time.perf_counter()
        values, computed, cached, reused = high_energies(pool, np.array(new), run)
        energies = np.concatenate([energies, values])
        points = pool[np.array(chosen)]
        points.set(run.high, energies, level=run.high)
        committee, cv_rmse = fit_committee(run.pretrained, points, property=run.high,
                                           anchors=pool, members=run.members, seed=run.seed,
                                           recipe=run.recipe)
        spread = committee.predict(pool).energies_std  # (molecules,) Hartree
        error = float(np.sqrt(np.mean(spread**2)) * HARTREE_TO_KCALMOL)
        history.append(Round(round=len(history), chosen=tuple(new), labelled=len(chosen),
                             computed=computed, cached=cached, reused=reused,
                             predicted_error=error, cv_rmse=cv_rmse,
                             seconds=time.perf_counter() - start))
        if on_round is not None:
            on_round(chosen, rounds, history, energies)
        if len(chosen) >= run.budget or (run.target is not None and error <= run.target):
            return chosen, rounds, history, energies
        size = min(run.batch, run.budget - len(chosen))
        new = [int(i) for i in next_batch(spread, descriptors, np.array(chosen), size)]
        chosen += new
        rounds += [len(history)] * len(new)


__all__ = ["CommitteeRun", "Round", "bootstrap_rows", "committee_loop", "fit_committee",
           "high_energies", "minimum_budget", "next_batch", "starting_size"]
