"""Start from a foundation: ANI-1x fine-tuned vs HF-pretrained transfer vs scratch vs delta on
ANI-1x, with a budget of 16 CCSD(T)/cc-pVDZ points of water (issue 7).

Water geometries: bond lengths 0.80-1.25 Angstrom and angles 80-140 degrees drawn at random
(seeded). The first 200 are the held-out test set; the 16 high-level points of each seed are drawn
from the rest (13 to train, 3 to validate). HF/cc-pVDZ labels every non-test geometry for the
HF-pretrained model. Labels go through levelup.label and its cache (a rerun computes nothing).

Models, each against CCSD(T)/cc-pVDZ on the 200 test geometries (RMSE, kcal/mol), median of
seeds 0, 1, 2:

* ANI-1x, self energies refit: the published ensemble, only its self energies refit to the 16
  points (least squares; for one composition the minimum-norm solution).
* ANI-1x fine-tuned: the same, then every member fine-tuned (first and last layers frozen,
  learning rate 1e-4, fresh AdamW); the ensemble mean predicts.
* HF transfer: an ANI model (H, O; ANI-1x architecture) trained from scratch on the HF/cc-pVDZ
  labels of the non-test geometries, then transferred the same way (the tutorial's recipe).
* scratch: the same architecture trained on the 16 CCSD(T) points only.
* delta on ANI-1x: a model of CCSD(T) minus ANI-1x trained on the 16 points, added to ANI-1x.
* ANI-1x, ForceAnchor recipe: :func:`levelup.transfer.recipe.finetune` with
  ``TransferRecipe.force_anchor()`` (self energies refit, every layer trained by AdamW at 1e-3 with
  a ForceAnchor, L-BFGS polish: levelup's default recipe until d823244, which added a
  SmoothCorrection prior and AdamW at 3e-4; that default is not measured here) applied to each of the 8
  members (13 train + 3 validation points; anchors: the 400 pool geometries, unlabelled at the
  high level), the ensemble mean predicting; and one member alone (member 0, which is the same
  model as member 0 of the ensemble row: the recipe is deterministic).
* HF transfer, ForceAnchor recipe: the same recipe on the HF-pretrained model (anchors: its own
  pre-training geometries, the same pool).

The ensemble rows also give the spread of the members on the held-out set (mean over the 200
geometries of the members' sample standard deviation, kcal/mol), beside the RMSE of the mean.

    .venv/bin/python bench/bench_ani1x.py [--quick] [--resume] [--seeds 0 1 2] [--partial]

``--quick`` (fewer geometries and epochs) checks the script runs; its numbers are not reported.
Each seed's numbers are kept in bench/_work/ani1x/seed<N>.json; ``--resume`` reuses those that
exist (a run cut short goes on where it stopped). ``--seeds`` runs only the seeds named (one
process per seed runs them side by side); the section of bench/RESULTS.md is written once every
seed's numbers exist (``--resume`` gathers them; ``--partial`` writes it with the seeds done).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results import write_section  # noqa: E402

from levelup.data import Database  # noqa: E402
from levelup.model.ani import ANIModel, Ensemble  # noqa: E402
from levelup.model.published.catalog import pretrained  # noqa: E402
from levelup.qm import label  # noqa: E402
from levelup.train.loop import TrainConfig, fit  # noqa: E402
from levelup.transfer.gradient import TransferRecipe  # noqa: E402
from levelup.transfer.recipe import finetune  # noqa: E402
from levelup.transfer.selfenergies import refit_self_energies  # noqa: E402
from levelup.transfer.surgery import freeze  # noqa: E402
from levelup.units import HARTREE_TO_KCALMOL  # noqa: E402

HIGH = "CCSD(T)/cc-pVDZ"
LOW = "HF/cc-pVDZ"
WORK = Path(__file__).resolve().parent / "_work" / "ani1x"
SEEDS = (0, 1, 2)


def water_geometries(n: int = 600, seed: int = 2024) -> Database:
    """``n`` water molecules (O, H, H) with r1, r2 in [0.80, 1.25] Angstrom and the angle in
    [80, 140] degrees, in a plane (the energy does not depend on orientation)."""
    rng = np.random.default_rng(seed)
    r1, r2, theta = rng.uniform((0.80, 0.80, np.radians(80.0)), (1.25, 1.25, np.radians(140.0)),
                                (n, 3)).T
    xyz = np.zeros((n, 3, 3))
    xyz[:, 1, 0] = r1
    xyz[:, 2, 0] = r2 * np.cos(theta)
    xyz[:, 2, 1] = r2 * np.sin(theta)
    return Database.from_numpy(xyz, ["O", "H", "H"])


def rmse_kcal(pred: np.ndarray, ref: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred - ref) ** 2)) * HARTREE_TO_KCALMOL)


def fine_tune(model: ANIModel, train: Database, val: Database, prop: str, seed: int,
              epochs: int) -> None:
    """The transfer recipe: refit self energies, freeze the first and last Linear layers, train
    the rest with a fresh AdamW at 1e-4."""
    refit_self_energies(model, train + val, prop)
    freeze(model, [0, -1])
    fit(model, train, val, property=prop, progress=False,
        config=TrainConfig(learning_rate=1e-4, lr_floor=1e-6, seed=seed, max_epochs=epochs))


def scratch_model(train: Database, val: Database, prop: str, seed: int, epochs: int) -> ANIModel:
    model = ANIModel(["H", "O"], seed=seed)
    fit(model, train, val, property=prop, progress=False,
        config=TrainConfig(seed=seed, max_epochs=epochs))
    return model


def spread_kcal(ensemble: Ensemble, db: Database) -> float:
    """Mean over ``db`` of the members' sample standard deviation of the energy, kcal/mol."""
    return float(np.mean(ensemble.predict(db).energies_std) * HARTREE_TO_KCALMOL)


def run_seed(seed: int, test: Database, pool: Database, ani1x_test: np.ndarray, epochs: int,
             cache: Path, recipe: TransferRecipe) -> dict:
    rng = np.random.default_rng(seed)
    picked = label(pool[rng.choice(len(pool), 16, replace=False)], HIGH, cache=cache)
    train, val = picked[:13], picked[13:]
    ref = test.get(HIGH)
    out: dict[str, float] = {}
    times: dict[str, float] = {}
    spread: dict[str, float] = {}
    recipe = TransferRecipe(**{**recipe.__dict__, "seed": seed})

    t = time.perf_counter()
    ens = pretrained("ani-1x", progress=False)
    spread["ANI-1x as published"] = spread_kcal(ens, test)
    refit_self_energies(ens, picked, HIGH)
    out["ANI-1x, self energies refit"] = rmse_kcal(ens.predict(test).energies, ref)
    spread["ANI-1x, self energies refit"] = spread_kcal(ens, test)
    for member in ens.members:
        fine_tune(member, train, val, HIGH, seed, epochs)
    out["ANI-1x fine-tuned (8 members)"] = rmse_kcal(ens.predict(test).energies, ref)
    spread["ANI-1x fine-tuned (8 members)"] = spread_kcal(ens, test)
    times["ANI-1x fine-tuned (8 members)"] = time.perf_counter() - t

    t = time.perf_counter()
    # finetune() on an Ensemble fine-tunes member k with seed recipe.seed + k; member 0 is
    # exactly what fine-tuning member 0 alone gives (tests/test_finetune.py checks it)
    recipe_ens, _ = finetune(pretrained("ani-1x", progress=False), train, val, property=HIGH,
                             anchors=pool, recipe=recipe, progress=False)
    out["ANI-1x, ForceAnchor recipe (8 members)"] = rmse_kcal(recipe_ens.predict(test).energies, ref)
    spread["ANI-1x, ForceAnchor recipe (8 members)"] = spread_kcal(recipe_ens, test)
    times["ANI-1x, ForceAnchor recipe (8 members)"] = time.perf_counter() - t
    tuned = list(recipe_ens.members)
    singles = [rmse_kcal(m.predict(test).energies, ref) for m in tuned]
    out["ANI-1x, ForceAnchor recipe (1 member)"] = singles[0]

    t = time.perf_counter()
    low_train, low_val = pool.split(0.9, 0.1, seed=seed)
    hf = scratch_model(low_train, low_val, LOW, seed, epochs)
    hf_s = time.perf_counter() - t
    t = time.perf_counter()
    hf_recipe, _ = finetune(hf, train, val, property=HIGH, anchors=pool, recipe=recipe,
                            progress=False)
    out["HF/cc-pVDZ-pretrained, ForceAnchor recipe"] = rmse_kcal(hf_recipe.predict(test).energies, ref)
    times["HF/cc-pVDZ-pretrained, ForceAnchor recipe"] = time.perf_counter() - t + hf_s
    t = time.perf_counter()
    fine_tune(hf, train, val, HIGH, seed, epochs)
    out["HF/cc-pVDZ-pretrained transfer"] = rmse_kcal(hf.predict(test).energies, ref)
    times["HF/cc-pVDZ-pretrained transfer"] = time.perf_counter() - t + hf_s

    t = time.perf_counter()
    scratch = scratch_model(train, val, HIGH, seed, epochs)
    out["scratch (16 points)"] = rmse_kcal(scratch.predict(test).energies, ref)
    times["scratch (16 points)"] = time.perf_counter() - t

    t = time.perf_counter()
    base = pretrained("ani-1x", progress=False)
    for part in (train, val):
        part.set("delta", part.get(HIGH) - base.predict(part).energies, unit="Hartree")
    delta = scratch_model(train, val, "delta", seed, epochs)
    out["delta on ANI-1x"] = rmse_kcal(ani1x_test + delta.predict(test).energies, ref)
    times["delta on ANI-1x"] = time.perf_counter() - t
    return {"rmse": out, "times": times, "spread": spread, "single_members": singles}


ORDER = (
    "ANI-1x, self energies refit",
    "ANI-1x fine-tuned (8 members)",
    "ANI-1x, ForceAnchor recipe (8 members)",
    "ANI-1x, ForceAnchor recipe (1 member)",
    "HF/cc-pVDZ-pretrained transfer",
    "HF/cc-pVDZ-pretrained, ForceAnchor recipe",
    "scratch (16 points)",
    "delta on ANI-1x",
)


def revision() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def table(runs: list[dict], seeds: list[int]) -> str:
    rows = []
    for name in ORDER:
        values = [r["rmse"][name] for r in runs]
        seconds = [r["times"].get(name) for r in runs]
        time_text = (f"{np.median(seconds):.0f}" if None not in seconds else
                     "(member 0 of the row above)" if "1 member" in name else "(with the row below)")
        spreads = [r["spread"].get(name) for r in runs]
        spread_text = (f"{np.median(spreads):.2f} ({' / '.join(f'{v:.2f}' for v in spreads)})"
                       if None not in spreads else "")
        rows.append(f"| {name} | {np.median(values):.2f} | {' / '.join(f'{v:.2f}' for v in values)}"
                    f" | {spread_text} | {time_text} |")
    return (f"| model | RMSE (median) | seeds {' / '.join(map(str, seeds))} | ensemble spread "
            "(median; seeds) | seconds (median) |\n|---|---|---|---|---|\n" + "\n".join(rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run to check the script")
    parser.add_argument("--resume", action="store_true",
                        help="reuse the per-seed results kept by an earlier run")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS),
                        help="run only these seeds; the others are read back from their files")
    parser.add_argument("--partial", action="store_true",
                        help="write the table even when some seeds have no numbers yet")
    args = parser.parse_args()
    # one torch thread: these networks are small, and on a busy 2-core machine two threads spend
    # their time waiting on each other (an AdamW step measured 57 ms with 2 threads, 0.2 ms with 1)
    torch.set_num_threads(1)
    n_test, n_pool, epochs = (20, 40, 30) if args.quick else (200, 400, 10_000)
    recipe = TransferRecipe.force_anchor(**({"epochs": 30, "polish_iterations": 5} if args.quick else {}))
    WORK.mkdir(parents=True, exist_ok=True)
    cache = WORK / "labels.sqlite"
    rev = revision()

    geometries = water_geometries()  # the same 600 whatever the run: the cache serves reruns
    t = time.perf_counter()
    test = label(geometries[:n_test], HIGH, cache=cache)
    pool = label(geometries[200:200 + n_pool], LOW, cache=cache)
    for seed in SEEDS:  # the 16 high-level points of each seed, labelled up front for the timing
        label(pool[np.random.default_rng(seed).choice(len(pool), 16, replace=False)], HIGH, cache=cache)
    label_s = time.perf_counter() - t

    ani1x_test = pretrained("ani-1x", progress=False).predict(test).energies
    runs, done = [], []
    for seed in SEEDS:
        kept = WORK / f"seed{seed}{'-quick' if args.quick else ''}.json"
        if seed not in args.seeds or (args.resume and kept.exists()):
            if kept.exists():
                runs.append(json.loads(kept.read_text()))
                done.append(seed)
            continue
        run = run_seed(seed, test, pool, ani1x_test, epochs, cache, recipe)
        run["revision"], run["loadavg_end"] = rev, os.getloadavg()
        kept.write_text(json.dumps(run, indent=1))
        runs.append(run)
        done.append(seed)
        print(f"seed {seed}: " + ", ".join(f"{k} {v:.2f}" for k, v in run["rmse"].items()), flush=True)
    if len(runs) < len(SEEDS) and not (args.partial and runs):
        print(f"seeds {args.seeds} done; the table needs every seed: run again with --resume")
        return 0
    load_after = os.getloadavg()
    singles = "; ".join(f"seed {s}: " + " / ".join(f"{v:.2f}" for v in r["single_members"])
                        for s, r in zip(done, runs, strict=True))
    revisions = sorted({r.get("revision", "unknown") for r in runs})
    body = (
        f"Water, {n_test} held-out geometries (r 0.80-1.25 Angstrom, angle 80-140 degrees), "
        f"16 {HIGH} points per seed (13 train + 3 validation); HF transfer pre-trained on "
        f"{n_pool} {LOW} points. RMSE against {HIGH} over the held-out set, kcal/mol, median of "
        f"seeds {', '.join(map(str, done))}"
        + ("" if len(done) == len(SEEDS) else f" (only these finished: a partial table; seeds "
           f"{', '.join(str(x) for x in SEEDS if x not in done)} are missing)")
        + f". Labels took {label_s:.0f} s (0 when cached); "
        "torch on 1 thread.\n\n"
        "Rows: *fine-tuned* and *transfer* are the tutorial's recipe (self energies refit, first and "
        "last layers frozen, AdamW 1e-4); *ForceAnchor recipe* is `levelup.transfer.recipe.finetune` with "
        "`TransferRecipe.force_anchor()` (self energies refit, all layers trained by AdamW at 1e-3 with "
        f"a ForceAnchor on the {n_pool} pool geometries, L-BFGS polish; levelup's default recipe until "
        "d823244, which added a SmoothCorrection prior: the new default is not measured here), "
        "applied to every member (8 members; member k with seed + k) or to member 0 alone (1 "
        "member). Ensemble spread: mean over the held-out set of the members' standard deviation, "
        "kcal/mol (ANI-1x as published, before any refit: "
        f"{np.median([r['spread']['ANI-1x as published'] for r in runs]):.2f}).\n\n"
        + table(runs, done)
        + f"\n\nRMSE of each member of the ForceAnchor-recipe ensemble on its own, members 0-7: {singles}."
        + f"\n\nRevision {', '.join(revisions)}. Load average (1, 5, 15 min) when each seed ended: "
        + "; ".join(f"seed {s}: " + ", ".join(f"{v:.1f}" for v in r["loadavg_end"])
                    for s, r in zip(done, runs, strict=True))
        + "; when this table was written: " + ", ".join(f"{v:.1f}" for v in load_after)
        + " (2 cores shared with other jobs, seeds run side by side: the seconds drift with the load)."
    )
    print(body)
    if not args.quick:
        command = ".venv/bin/python bench/bench_ani1x.py"
        if args.resume or set(args.seeds) != set(SEEDS):
            command = (f"{command} --seeds N, one process per seed side by side, then {command} "
                       + " ".join(a for a in sys.argv[1:]))
        write_section("ani1x", "ANI-1x as a foundation: 16 CCSD(T) points of water (issue 7)", body,
                      command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
