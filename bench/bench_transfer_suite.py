"""The transfer suite (issue 12): every recipe on every system of bench/transfer_suite, several
point budgets and seeds, from the stored labels (no quantum chemistry is run).

For each (system, seed): one pre-trained model (default ``TrainConfig(seed)`` on the low level's
energies of every geometry; for ``formamide-ani1x`` member ``seed`` of ANI-1x), cached in
bench/_work/suite_models/. For each budget, the points of ``protocol.pick`` (train + validation)
and these rows:

* ``linear``: levelup's default, ``finetune`` with ``LinearRecipe(seed)`` (CV over every point);
* ``linear-min``: ``LinearRecipe(seed, selection="min")``, the lowest CV error instead of the
  one-standard-error rule;
* ``linear+forces``: the same with the high-level forces of the points too, the points drawn by
  ``protocol.pick`` among the geometries that have forces (only where there are enough);
* ``linear-ens3``: the default recipe applied to each of three pre-trained models (seeds 0, 1,
  2; ANI-1x members 0, 1, 2), energies averaged: the same points, three times the cheap
  pre-training;
* ``auto`` (``--slow``): ``AutoRecipe(seed)``, linear or plain by 5-fold CV over the points;
* ``kernel-delta``: ``fit_kernel_delta`` of high - low on the low level's own labels
  (delta-learning: the low level is computed at every geometry predicted);
* ``plain`` (``--slow``): ``TransferRecipe.plain(seed)``, every layer, no prior;
* ``anchored`` (``--slow``): ``TransferRecipe(seed)``, levelup's previous default;
* ``compat`` (``--slow``): MLatom's tutorial protocol as ``levelup.compat.mlatom`` runs it
  (MLatom's networks, ``compat.mlatom.new_model``, pre-trained with ``TrainConfig.mlatom`` and
  ``torchani_groups``, layers 0 and -1 frozen,
  self energies refit, rate 1e-4), its own pre-training cached like the default one;
* ``scratch`` (``--slow``): the same architecture trained on the points only.

Every run is scored against the high level on every geometry ("all") and on the geometries the
run never saw ("held out"), kcal/mol. Results go to bench/transfer_suite/results/levelup/
<system>_seed<S>.json, one entry per (budget, row), so the run resumes where it stopped.
``--report`` writes the tables (medians over seeds, min-max) and a plot into bench/RESULTS.md,
next to MLatom's own numbers (bench/bench_mlatom_suite.py).

    .venv/bin/python bench/bench_transfer_suite.py                    # fast rows, all systems
    .venv/bin/python bench/bench_transfer_suite.py --slow --budgets 16 # slow rows at 16 points
    .venv/bin/python bench/bench_transfer_suite.py --report
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "transfer_suite"))

from protocol import BUDGETS, DATA, SEEDS, held_out, pick  # noqa: E402
from systems import BY_NAME, SYSTEMS  # noqa: E402

import levelup  # noqa: E402
from levelup.atomicwrite import write_text_atomic  # noqa: E402
from levelup.transfer.gradient import TransferRecipe  # noqa: E402
from levelup.transfer.kerneldelta import fit_kernel_delta  # noqa: E402
from levelup.transfer.linear import LinearRecipe  # noqa: E402
from levelup.transfer.recipe import finetune  # noqa: E402
from levelup.units import HARTREE_TO_KCALMOL as KCAL  # noqa: E402

MODELS = HERE / "_work" / "suite_models"
RESULTS = HERE / "transfer_suite" / "results" / "levelup"
FAST = ("linear", "linear-min", "linear+forces", "kernel-delta", "linear-ens3")
SLOW = ("plain", "compat", "scratch", "auto", "anchored")


def load(name: str) -> tuple[levelup.Database, str, str]:
    db = levelup.Database.load(DATA / f"{name}.h5")
    system = BY_NAME[name]
    return db, system.low, system.high


def pretrained(name: str, db: levelup.Database, low: str, seed: int, kind: str = "default"):
    """(model, seconds to pre-train or 0 when cached, RMSE vs the low level kcal/mol)."""
    MODELS.mkdir(parents=True, exist_ok=True)
    # "mlatom": the networks MLatom builds (compat.mlatom.new_model: 160-128-96 everywhere,
    # torch's nn.Linear initialisation); the files of the earlier ANI-1x-style pre-training were
    # named _mlatom.pt
    path = MODELS / f"{name}_seed{seed}_{'mlatom-net' if kind == 'mlatom' else kind}.pt"
    seconds = 0.0
    if BY_NAME[name].pretrained == "ani-1x" and kind == "default":
        model = levelup.pretrained("ani-1x", progress=False).members[seed]
    elif path.exists():
        model = levelup.load_model(path)
    else:
        start = time.perf_counter()
        if kind == "default":
            model = levelup.ANIModel(sorted(set(db.elements)), seed=seed)
            levelup.fit(model, db, property=low, config=levelup.TrainConfig(seed=seed),
                        progress=False)
        else:  # MLatom's networks and recipe, as levelup.compat.mlatom trains
            from levelup.transfer.tutorialprotocol import mlatom_pretrain

            model, _ = mlatom_pretrain(db, low, seed=seed)
        seconds = time.perf_counter() - start
        model.save(path, metadata={"seconds": seconds})
    rmse = float(np.sqrt(np.mean((model.predict(db).energies - np.asarray(db.get(low))) ** 2))
                 * KCAL)
    return model, seconds, rmse


def compat_transfer(pre, train, val, high: str, seed: int, history: list | None = None):
    """MLatom's tutorial step as levelup.compat.mlatom maps it (the fit's History appended to
    ``history`` when given)."""
    from levelup.transfer.tutorialprotocol import mlatom_transfer

    model, record = mlatom_transfer(pre, train, val, high=high, seed=seed)
    if history is not None:
        history.append(record)
    return model


def score(pred: np.ndarray, ref: np.ndarray, unseen: np.ndarray) -> dict:
    err = (pred - ref) * KCAL
    return {"rmse_all": float(np.sqrt(np.mean(err ** 2))),
            "rmse_heldout": float(np.sqrt(np.mean(err[unseen] ** 2)))}


def run_one(name: str, seed: int, budgets: list[int], rows: list[str]) -> None:
    db, low, high = load(name)
    out_file = RESULTS / f"{name}_seed{seed}.json"
    record = json.loads(out_file.read_text()) if out_file.exists() else {"runs": {}}
    todo = [(b, r) for b in budgets for r in rows if f"{b}/{r}" not in record["runs"]]
    if not todo:
        return
    torch.manual_seed(seed)
    pre = None  # the compat and kernel-delta rows do not use the default pre-trained model
    if "pretrain" not in record or any(r not in ("compat", "kernel-delta") for _, r in todo):
        pre, seconds, pre_rmse = pretrained(name, db, low, seed)
        record.setdefault("pretrain", {"rmse_vs_low": pre_rmse, "seconds": seconds})
    ref = np.asarray(db.get(high))
    forces = f"forces/{high}"
    has_forces = (np.isfinite(np.asarray(db.get(forces))).all(axis=(1, 2))
                  if forces in db.properties else np.zeros(len(db), bool))
    for budget, row in todo:
        train_i, val_i = pick(len(db), budget, seed)
        unseen = held_out(len(db), budget, seed)
        train, val = db[train_i], db[val_i]
        start = time.perf_counter()
        extra: dict = {}
        if row == "linear":
            model, choice = finetune(pre, train, val, property=high, anchors=db,
                                     recipe=LinearRecipe(seed=seed))
            extra = {"cv_rmse": choice.cv_rmse, "chose": [choice.anchor, choice.smoothness,
                                                          choice.ridge]}
        elif row == "linear-min":
            model, choice = finetune(pre, train, val, property=high, anchors=db,
                                     recipe=LinearRecipe(seed=seed, selection="min"))
            extra = {"cv_rmse": choice.cv_rmse, "chose": [choice.anchor, choice.smoothness,
                                                          choice.ridge]}
        elif row == "linear+forces":
            with_forces = np.flatnonzero(has_forces)
            if len(with_forces) < budget:
                continue
            f_train, f_val = pick(len(with_forces), budget, seed)
            chosen = with_forces[np.concatenate([f_train, f_val])]
            unseen = np.setdiff1d(np.arange(len(db)), chosen)
            model, choice = finetune(pre, db[np.sort(chosen)], property=high, anchors=db,
                                     forces=forces, recipe=LinearRecipe(seed=seed))
            extra = {"cv_rmse": choice.cv_rmse, "chose": [choice.anchor, choice.smoothness,
                                                          choice.ridge, choice.force_weight]}
        elif row == "linear-ens3":
            members = [pretrained(name, db, low, k)[0] for k in range(3)]
            tuned = [finetune(m, train, val, property=high, anchors=db,
                              recipe=LinearRecipe(seed=seed))[0] for m in members]
            model = levelup.Ensemble(tuned)
        elif row == "kernel-delta":
            model = fit_kernel_delta(None, train, val, high=high, low=low, seed=seed)
        elif row == "auto":
            from levelup.transfer.auto import AutoRecipe

            model, choice = finetune(pre, train, val, property=high, anchors=db,
                                     recipe=AutoRecipe(seed=seed))
            extra = {"chose": choice.recipe, "cv_rmse": choice.cv_rmse}
        elif row == "plain":
            model, _ = finetune(pre, train, val, property=high, anchors=db,
                                recipe=TransferRecipe.plain(seed=seed), progress=False)
        elif row == "anchored":
            model, _ = finetune(pre, train, val, property=high, anchors=db,
                                recipe=TransferRecipe(seed=seed), progress=False)
        elif row == "compat":
            if BY_NAME[name].pretrained == "ani-1x":
                continue  # MLatom's tutorial pre-trains on the low level; ANI-1x is given
            pre_m, _, pre_m_rmse = pretrained(name, db, low, seed, kind="mlatom")
            record["pretrain_mlatom_recipe"] = {"rmse_vs_low": pre_m_rmse}
            model = compat_transfer(pre_m, train, val, high, seed)
        elif row == "scratch":
            model = levelup.ANIModel(sorted(set(db.elements)), seed=seed + 1)
            levelup.fit(model, train, val, property=high, progress=False,
                        config=levelup.TrainConfig(seed=seed))
        else:
            raise SystemExit(f"unknown row {row}")
        seconds = time.perf_counter() - start
        result = {**score(model.predict(db).energies, ref, unseen), "seconds": seconds, **extra}
        # re-read before writing: another process may be filling other rows of this file
        latest = json.loads(out_file.read_text()) if out_file.exists() else {"runs": {}}
        record = {**record, **{k: v for k, v in latest.items() if k != "runs"},
                  "runs": {**record["runs"], **latest["runs"], f"{budget}/{row}": result}}
        RESULTS.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out_file, json.dumps(record, indent=1) + "\n")
        print(f"{name} seed {seed} budget {budget} {row}: all {result['rmse_all']:.3f} held out "
              f"{result['rmse_heldout']:.3f} kcal/mol, {seconds:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", nargs="+", default=[s.name for s in SYSTEMS])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS))
    parser.add_argument("--rows", nargs="+", help=f"rows to run (default {' '.join(FAST)}; "
                        f"with --slow {' '.join(SLOW[:3])})")
    parser.add_argument("--slow", action="store_true", help="the gradient-trained rows")
    parser.add_argument("--report", action="store_true", help="write the tables only")
    parser.add_argument("--results", type=Path, default=None,
                        help="write the runs' JSON here instead (a re-measurement beside the "
                        "stored runs; --report reads only the default folder)")
    args = parser.parse_args()
    if args.results is not None:
        global RESULTS
        RESULTS = args.results
    torch.set_num_threads(1)
    if args.report:
        from suite_report import report

        report()
        return
    rows = args.rows or list(SLOW[:3] if args.slow else FAST)
    for seed in args.seeds:
        for name in args.systems:
            run_one(name, seed, args.budgets, rows)


if __name__ == "__main__":
    main()
