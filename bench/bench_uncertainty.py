"""Benchmark: is an ensemble's spread a usable error bar after transfer? (issue 14, uncertainty)

Run: .venv/bin/python bench/bench_uncertainty.py [--seeds 0 1 2] [--budget 16] [--system water]

On one system of the transfer suite (bench/transfer_suite; default water: HF/STO-3G ->
CCSD(T)/cc-pVDZ, 300 geometries), an ensemble of three independently pre-trained models
(``levelup.fit`` with the default ``TrainConfig(seed=k)``, k = 0, 1, 2, on the low level's
energies of every geometry; the same cached files as bench/bench_transfer_suite.py's
``linear-ens3`` row, in bench/_work/suite_models/) is transferred with levelup's default recipe
(``finetune(Ensemble, train, val, property=high, anchors=db, recipe=LinearRecipe(seed))``;
member k gets recipe seed ``seed + k``) on the ``budget`` points of ``protocol.pick(300, budget,
seed)``. Over the geometries the run never saw (``protocol.held_out``) it compares the
ensemble's spread (``Prediction.energies_std``, sample standard deviation over the three members)
with the ensemble mean's actual error against the high level: ``report.metrics.calibration``.

The benchmark seed changes the points and the recipe's folds; the three pre-trained members are
the same for every seed. Per-seed results are cached in bench/_work/uncertainty/ (delete to
recompute). Writes the "uncertainty" section of bench/RESULTS.md and bench/uncertainty.png
(water; another system: "uncertainty-<system>" and bench/uncertainty-<system>.png).
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

from bench_transfer_suite import load, pretrained  # noqa: E402
from protocol import held_out, pick  # noqa: E402
from results import write_section  # noqa: E402

import levelup  # noqa: E402
from levelup.report.figure import save_figure  # noqa: E402
from levelup.report.metrics import calibration  # noqa: E402
from levelup.report.plots import spread_vs_error  # noqa: E402
from levelup.transfer.linear import LinearRecipe  # noqa: E402
from levelup.transfer.recipe import finetune  # noqa: E402
from levelup.units import HARTREE_TO_KCALMOL as KCAL  # noqa: E402

WORK = HERE / "_work" / "uncertainty"
MEMBERS = (0, 1, 2)


def run_seed(name: str, budget: int, seed: int) -> dict:
    """Transfer the ensemble on one seed's points; cache and return its held-out errors and
    spread (Hartree) and the calibration."""
    path = WORK / f"{name}_b{budget}_seed{seed}.json"
    if path.exists():
        return json.loads(path.read_text())
    db, low, high = load(name)
    members = [pretrained(name, db, low, k)[0] for k in MEMBERS]
    train_i, val_i = pick(len(db), budget, seed)
    unseen = held_out(len(db), budget, seed)
    start = time.perf_counter()
    tuned, _ = finetune(levelup.Ensemble(members), db[train_i], db[val_i], property=high,
                        anchors=db, recipe=LinearRecipe(seed=seed))
    seconds = time.perf_counter() - start
    pred = tuned.predict(db)
    errors = (pred.energies - np.asarray(db.get(high)))[unseen]
    spread = pred.energies_std[unseen]
    each = (pred.member_energies - np.asarray(db.get(high)))[:, unseen] * KCAL  # (members, n)
    record = {"errors": errors.tolist(), "spread": spread.tolist(), "seconds": seconds,
              "member_rmse": np.sqrt(np.mean(each ** 2, axis=1)).tolist(),
              "calibration": calibration(errors, spread).as_dict()}
    WORK.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record) + "\n")
    return record


def spread_of(values: list[float], fmt: str) -> str:
    """'median (min-max)' of ``values``."""
    return (f"{format(float(np.median(values)), fmt)} ({format(min(values), fmt)}-"
            f"{format(max(values), fmt)})")


def reading(records: dict[int, dict]) -> str:
    """One paragraph that says what the numbers mean, from the numbers."""
    cal = [r["calibration"] for r in records.values()]
    rho = float(np.median([c["spearman"] for c in cal]))
    inside = float(np.median([c["within_2sigma"] for c in cal]))
    ratio = [c["rms_spread"] / c["rmse"] for c in cal]
    verdict = "too small (over-confident)" if inside < 0.9 else "about right"
    return (f"Reading: the spread ranks the held-out geometries by their error (median Spearman "
            f"{rho:.2f}), but as an error bar it is {verdict}: a median {inside:.0%} of errors "
            f"lie within 2 sigma (95% if calibrated), and the RMS spread is "
            f"{spread_of(ratio, '.2f')} of the RMSE. Three members give a noisy estimate of "
            "the spread; a larger ensemble or a scale factor fitted on the training points' "
            "cross-validation errors would be the next things to try.")


def report(name: str, budget: int, records: dict[int, dict], command: str) -> str:
    """Write the RESULTS.md section and the figure; return the table."""
    keys = (("pearson", "Pearson r (spread, abs. error)", ".2f"),
            ("spearman", "Spearman rho (spread, abs. error)", ".2f"),
            ("within_1sigma", "share with abs. error <= 1 sigma", ".2f"),
            ("within_2sigma", "share with abs. error <= 2 sigma", ".2f"),
            ("rms_spread", "RMS spread (kcal/mol)", ".3f"),
            ("rmse", "RMSE of the ensemble mean (kcal/mol)", ".3f"))
    seeds = sorted(records)
    lines = ["| | " + " | ".join(f"seed {s}" for s in seeds) + " | median (min-max) |",
             "|---|" + "---:|" * (len(seeds) + 1)]
    for key, label, fmt in keys:
        values = [records[s]["calibration"][key] for s in seeds]
        lines.append(f"| {label} | " + " | ".join(format(v, fmt) for v in values)
                     + f" | {spread_of(values, fmt)} |")
    lines.append("| RMSE of each member (kcal/mol) | " + " | ".join(
        "/".join(f"{v:.2f}" for v in records[s]["member_rmse"]) for s in seeds) + " | |")
    n = records[seeds[0]]["calibration"]["n"]
    table = "\n".join(lines)
    fig = spread_vs_error({f"seed {s}": (records[s]["errors"], records[s]["spread"])
                           for s in seeds},
                          title=f"{name}, {budget} high-level points, 3-member ensemble")
    stem = "uncertainty" if name == "water" else f"uncertainty-{name}"  # one section per system
    save_figure(fig, HERE / f"{stem}.png", formats=("png",))
    body = (
        f"{name} (transfer suite), an ensemble of 3 models pre-trained on the low level "
        f"(TrainConfig seeds {', '.join(map(str, MEMBERS))}), each transferred by the default "
        f"linear recipe on {budget} high-level points (`protocol.pick`, benchmark seeds "
        f"{', '.join(map(str, seeds))}: the seed changes the points and the folds, the members "
        f"stay the same; the members pre-trained with the full default TrainConfig, cached in "
        f"bench/_work/suite_models/; the transfer took "
        f"{spread_of([r['seconds'] for r in records.values()], '.1f')} s per ensemble). "
        f"Scored on the {n} held-out geometries: the ensemble's spread "
        "(standard deviation over members) against the ensemble mean's error vs the high level "
        "(`levelup.report.metrics.calibration`). Well-calibrated Gaussian errors would put 0.68 "
        "within 1 sigma and 0.95 within 2 sigma, with the RMS spread equal to the RMSE.\n\n"
        f"{table}\n\n{reading(records)}\n\n![spread vs error]({stem}.png)\n")
    write_section(stem, f"Ensemble spread as an error bar after transfer: {name} (issue 14)",
                  body, command)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--system", default="water")
    parser.add_argument("--budget", type=int, default=16)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    records = {}
    for seed in args.seeds:
        records[seed] = run_seed(args.system, args.budget, seed)
        c = records[seed]["calibration"]
        print(f"seed {seed}: pearson {c['pearson']:.2f} spearman {c['spearman']:.2f} within 2 "
              f"sigma {c['within_2sigma']:.2f} rms spread {c['rms_spread']:.3f} rmse "
              f"{c['rmse']:.3f} kcal/mol ({records[seed]['seconds']:.1f} s)", flush=True)
    command = "python bench/bench_uncertainty.py " + " ".join(sys.argv[1:])
    print(report(args.system, args.budget, records, command.strip()))


if __name__ == "__main__":
    main()
