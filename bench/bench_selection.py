"""Selection strategies side by side (issue 14's targets): which K geometries of a pool get the
high level, chosen by ``levelup.select`` ("every", "random", "fps", "committee"), and how well
the default transfer from them does.

Pools and labels are the transfer suite's (bench/transfer_suite/data/<system>.h5: every geometry
holds both levels), so no quantum chemistry runs: the committee reads the high-level energies of
the geometries it asks for from the pool (``levelup.selection.committee.high_energies``).

For each (system, seed): one pre-trained model, ``ANIModel(elements, seed=seed)`` fitted with
``TrainConfig(seed=seed)`` on every geometry's low-level energy, cached in
bench/_work/selection_models/ (a file of the transfer suite's identical pre-training,
bench/_work/suite_models/<system>_seed<S>_default.pt, is copied when present). For each strategy
and budget K: ``levelup.select(pool, K, strategy, seed=seed, model=pretrained, high=high)``,
then the default recipe on the chosen points, the same call for every strategy:
``levelup.finetune(pretrained, pool[chosen], None, property=high, anchors=pool)`` (the pool as
anchors, as the committee's own transfers and the transfer suite do); the same without
``anchors`` is recorded as ``*_noanchors``. Scores: RMSE (kcal/mol) against the high level over
every geometry of the pool ("all") and over the geometries not chosen ("held out"). One JSON per
(system, seed, strategy, budget) in bench/selection/results/, skipped when present.

    nice -n 10 .venv/bin/python bench/bench_selection.py            # default order, resumable
    .venv/bin/python bench/bench_selection.py --report              # RESULTS.md + selection.png
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "transfer_suite"))

from systems import BY_NAME  # noqa: E402

import levelup  # noqa: E402
from levelup.atomicwrite import write_text_atomic  # noqa: E402
from levelup.units import HARTREE_TO_KCALMOL as KCAL  # noqa: E402

DATA = HERE / "transfer_suite" / "data"
MODELS = HERE / "_work" / "selection_models"
SUITE_MODELS = HERE / "_work" / "suite_models"
OUT = HERE / "selection"
RESULTS = OUT / "results"
STRATEGIES = ("every", "random", "fps", "design", "committee")
BUDGETS = {"h2-tutorial": (5, 12), "water": (8, 16, 32), "ammonia-inversion": (8, 16, 32),
           "hcn": (8, 16, 32), "formaldehyde-dft": (8, 16, 32), "methanol": (8, 16, 32)}
SEEDS = (0, 1, 2)
POLY = ("water", "ammonia-inversion", "hcn")
#: (system, seed) in the order run: H2 first, then each polyatomic at seed 0, then seeds 1-2
ORDER = ([("h2-tutorial", s) for s in SEEDS] + [(n, 0) for n in POLY]
         + [(n, s) for s in SEEDS[1:] for n in POLY]
         + [(n, s) for n in ("formaldehyde-dft", "methanol") for s in SEEDS])


def pretrained(name: str, pool: levelup.Database, low: str, seed: int):
    """(the pre-trained model, seconds it took here or 0 when cached)."""
    path = MODELS / f"{name}_seed{seed}.pt"
    suite = SUITE_MODELS / f"{name}_seed{seed}_default.pt"
    MODELS.mkdir(parents=True, exist_ok=True)
    if not path.exists() and suite.exists():
        shutil.copyfile(suite, path)
    if path.exists():
        return levelup.load_model(path), 0.0
    start = time.perf_counter()
    model = levelup.ANIModel(sorted(set(pool.elements)), seed=seed)
    levelup.fit(model, pool, property=low, config=levelup.TrainConfig(seed=seed),
                progress=False)
    seconds = time.perf_counter() - start
    model.save(path, metadata={"seconds": seconds})
    return model, seconds


def rmse(pred: np.ndarray, ref: np.ndarray, rows: np.ndarray | slice = slice(None)) -> float:
    """RMSE in kcal/mol of ``pred`` against ``ref`` (Hartree) over ``rows``."""
    return float(np.sqrt(np.mean(((pred - ref) * KCAL)[rows] ** 2)))


def run_one(name: str, seed: int, strategy: str, budget: int, pool, pre, low: str,
            high: str) -> dict:
    """Select, transfer and score one run (module docstring)."""
    start = time.perf_counter()
    sel = levelup.select(pool, budget, strategy, seed=seed, model=pre, high=high, low=low,
                         cache=False, progress=False, workers=1)
    selected = time.perf_counter()
    chosen = np.sort(np.array(sel.indices))
    model, choice = levelup.finetune(pre, pool[chosen], None, property=high, anchors=pool)
    transferred = time.perf_counter()
    plain, _ = levelup.finetune(pre, pool[chosen], None, property=high)
    ref = np.asarray(pool.get(high), dtype=np.float64)
    unseen = np.setdiff1d(np.arange(len(pool)), chosen)
    pred, pred_plain = model.predict(pool).energies, plain.predict(pool).energies
    return {"system": name, "seed": seed, "strategy": strategy, "budget": budget,
            "rmse_all": rmse(pred, ref), "rmse_heldout": rmse(pred, ref, unseen),
            "rmse_all_noanchors": rmse(pred_plain, ref),
            "rmse_heldout_noanchors": rmse(pred_plain, ref, unseen),
            "cv_rmse": float(getattr(choice, "cv_rmse", float("nan"))),
            "select_seconds": selected - start, "transfer_seconds": transferred - selected,
            "seconds": transferred - start, "indices": [int(i) for i in sel.indices],
            "rounds": list(sel.rounds), "history": [h.to_dict() for h in sel.history],
            "pool_size": len(pool), "unit": "kcal/mol"}


def oracle(name: str, seed: int, budget: int, draws: int) -> None:
    """The best of ``draws`` random ``budget``-point subsets (numpy seed 1000 + seed), each
    transferred by the same default recipe and scored over the whole pool with its high-level
    labels: what any choice of points can be expected to reach with this recipe and model
    (a label-peeking upper bound on selection, not a strategy)."""
    path = RESULTS.parent / "oracle" / f"{name}_seed{seed}_{budget}.json"
    if path.exists():
        return
    system = BY_NAME[name]
    pool = levelup.Database.load(DATA / f"{name}.h5")
    pre, _ = pretrained(name, pool, system.low, seed)
    ref = np.asarray(pool.get(system.high), dtype=np.float64)
    rng = np.random.default_rng(1000 + seed)
    scores = []
    for _ in range(draws):
        rows = np.sort(rng.choice(len(pool), budget, replace=False))
        model, _ = levelup.finetune(pre, pool[rows], None, property=system.high, anchors=pool)
        scores.append((rmse(model.predict(pool).energies, ref), [int(i) for i in rows]))
    scores.sort()
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"system": name, "seed": seed, "budget": budget, "draws": draws,
              "best": scores[0][0], "best_rows": scores[0][1],
              "median": float(np.median([e for e, _ in scores])), "unit": "kcal/mol"}
    write_text_atomic(path, json.dumps(record, indent=1) + "\n")
    print(f"{name} seed {seed} oracle K={budget}: best of {draws} {scores[0][0]:.3f} kcal/mol",
          flush=True)


def run_system(name: str, seed: int, strategies: list[str], budgets: list[int] | None) -> None:
    """Every missing (strategy, budget) of one (system, seed)."""
    todo = [(s, k) for k in (budgets or BUDGETS[name]) for s in strategies
            if not (RESULTS / f"{name}_seed{seed}_{s}_{k}.json").exists()]
    if not todo:
        return
    system = BY_NAME[name]
    pool = levelup.Database.load(DATA / f"{name}.h5")
    pre, seconds = pretrained(name, pool, system.low, seed)
    if seconds:
        print(f"{name} seed {seed}: pre-trained in {seconds:.0f} s", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for strategy, budget in todo:
        result = run_one(name, seed, strategy, budget, pool, pre, system.low, system.high)
        result["pretrain_seconds"] = seconds
        path = RESULTS / f"{name}_seed{seed}_{strategy}_{budget}.json"
        write_text_atomic(path, json.dumps(result, indent=1) + "\n")
        print(f"{name} seed {seed} {strategy} K={budget}: all {result['rmse_all']:.3f} held out "
              f"{result['rmse_heldout']:.3f} kcal/mol, {result['seconds']:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", nargs="+", help="default: the ORDER's systems")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--budgets", type=int, nargs="+", help="default: BUDGETS per system")
    parser.add_argument("--report", action="store_true", help="write the report only")
    parser.add_argument("--oracle", type=int, metavar="DRAWS", help="instead: the best of DRAWS "
                        "random subsets per (system, seed, budget) (an upper bound on selection)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.report:
        from selection.report import report

        report()
        return
    if args.oracle:
        for name, seed in ORDER:
            if (args.systems is None or name in args.systems) and seed in args.seeds:
                for budget in args.budgets or BUDGETS[name]:
                    oracle(name, seed, budget, args.oracle)
        return
    for name, seed in ORDER:
        if (args.systems is None or name in args.systems) and seed in args.seeds:
            run_system(name, seed, args.strategies, args.budgets)


if __name__ == "__main__":
    main()
