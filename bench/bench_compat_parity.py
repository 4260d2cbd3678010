"""Where does levelup.compat.mlatom lose to MLatom 3.25.5 on the transfer suite: in the
pre-training or in the transfer step? (compat-parity.)

Per system and seed, at one budget (default 16 high-level points, ``protocol.pick``), four
combinations of pre-training and transfer step, each transfer step run with several transfer
seeds from the same pre-trained model:

* (a) MLatom pre-train -> MLatom transfer (bench/_mlatom_suite.py ``--save-pretrained``);
* (b) MLatom's pre-trained weights -> levelup compat transfer (``compat_transfer`` of
  bench/bench_transfer_suite.py: copy, freeze layers 0 and -1, refit self energies, fit with
  ``TrainConfig.mlatom(learning_rate=1e-4)`` and ``torchani_groups``);
* (c) levelup compat pre-train (``pretrained(..., kind="mlatom")`` of
  bench/bench_transfer_suite.py, cached in bench/_work/suite_models) -> MLatom transfer
  (bench/_mlatom_suite.py ``--pretrained``);
* (d) levelup compat pre-train -> levelup compat transfer.

Transfer seed T: MLatom seeds random/numpy/torch with S * 1000 + B + 100000 * T (T = 0 is the
seeding of bench/bench_mlatom_suite.py, so (a) T = 0 repeats its run); levelup's compat transfer
runs with ``TrainConfig.mlatom(seed=S + 1000 * T)`` (T = 0 is bench_transfer_suite's compat row).
Pre-trained weights are converted between the libraries by name (TorchANI's ``H.0.weight`` ...);
each conversion is checked to reproduce the other library's energies (``convert_max_diff_kcal``).

Raw results: bench/transfer_suite/results/parity/<system>_seed<S>_<part>.json (part a-d), skipped
when they exist, so the command resumes. ``--parts a`` and ``--parts d`` can run side by side
(each writes the weights the other combinations need); b and c wait for them.

    nice -n 10 .venv/bin/python bench/bench_compat_parity.py [--systems ...] [--seeds 0 1 2]
        [--parts a b c d] [--transfer-seeds 0 1 2] [--budget 16]
    .venv/bin/python bench/bench_compat_parity.py --report
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "transfer_suite"))

from bench_mlatom_suite import MLATOM_PYTHON, write_input  # noqa: E402
from bench_transfer_suite import compat_transfer, load, pretrained  # noqa: E402
from protocol import held_out, pick  # noqa: E402

from levelup.elements import atomic_number  # noqa: E402
from levelup.units import HARTREE_TO_KCALMOL as KCAL  # noqa: E402

RESULTS = HERE / "transfer_suite" / "results" / "parity"
WORK = HERE / "_work" / "parity"
SYSTEMS = ("water", "ammonia-inversion", "hcn")
PARTS = {"a": "MLatom pre-train -> MLatom transfer",
         "b": "MLatom pre-train -> compat transfer",
         "c": "compat pre-train -> MLatom transfer",
         "d": "compat pre-train -> compat transfer"}


def to_torchani(model) -> dict[str, np.ndarray]:
    """levelup ANIModel -> TorchANI/MLatom names (networks in the model's element order)."""
    out = {}
    for sym, net in zip(model.symbols, model.networks.values(), strict=True):
        out.update({f"{sym}.{k}": v.detach().numpy() for k, v in net.state_dict().items()})
    out["self_energies"] = model.self_energies.numpy().copy()
    out["elements"] = np.array(model.symbols)
    return out


def from_torchani(path: Path):
    """TorchANI/MLatom weights (npz with ``elements``) -> levelup ANIModel (float32)."""
    from levelup.model.ani import ANIModel

    w = np.load(path)
    elements = [str(e) for e in w["elements"]]
    # hidden widths from the weights: MLatom's default is 160-128-96 for every element,
    # levelup's ANI-1x widths per element (H 160-128-96, C 144-112-96, N, O 128-112-96)
    hidden = {e: [w[f"{e}.{k}.weight"].shape[0] for k in (0, 2, 4)] for e in elements}
    model = ANIModel([atomic_number(e) for e in elements], hidden=hidden, seed=0)
    for sym, net in zip(elements, model.networks.values(), strict=True):
        net.load_state_dict({k[len(sym) + 1:]: torch.from_numpy(w[k]) for k in w.files
                             if k.startswith(sym + ".")})
    model.set_self_energies(w["self_energies"])
    return model


def rmse(pred: np.ndarray, ref: np.ndarray, rows: np.ndarray | None = None) -> float:
    d = (np.asarray(pred, float) - np.asarray(ref, float)) * KCAL
    return float(np.sqrt(np.mean((d if rows is None else d[rows]) ** 2)))


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


def run_mlatom(name: str, seed: int, part: str, args) -> None:
    out = RESULTS / f"{name}_seed{seed}_{part}.json"
    weights_out = WORK / f"{name}_seed{seed}_mlatom.npz"
    cmd = [str(MLATOM_PYTHON), str(HERE / "_mlatom_suite.py"), str(write_input(name)),
           str(WORK / f"{name}_seed{seed}_{part}_raw.json"), "--seed", str(seed),
           "--budgets", str(args.budget), "--no-scratch",
           "--transfer-seeds", *map(str, args.transfer_seeds)]
    if part == "a":
        cmd += ["--save-pretrained", str(weights_out)]
    else:
        lu = WORK / f"{name}_seed{seed}_levelup.npz"
        if not lu.exists():
            print(f"{name} seed {seed} ({part}): {lu} missing (part d first), skipped")
            return
        cmd += ["--pretrained", str(lu)]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MLATOM_NO_VERSION_CHECK="1")
    log = WORK / f"{name}_seed{seed}_{part}.log"
    t0 = time.perf_counter()
    with open(log, "w") as handle:
        rc = subprocess.call(cmd, env=env, stdout=handle, stderr=subprocess.STDOUT)
    raw_path = WORK / f"{name}_seed{seed}_{part}_raw.json"
    if rc != 0 or not raw_path.exists():
        print(f"{name} seed {seed} ({part}): FAILED (exit {rc}), see {log}", flush=True)
        return
    raw = json.loads(raw_path.read_text())
    result = {"part": part, "what": PARTS[part], "system": name, "seed": seed,
              "budget": args.budget, "pretrain_rmse_vs_low": raw["pretrain_rmse_vs_low_kcal"],
              "pretrain_epochs": raw["pretrain_epochs"], "wall_seconds": time.perf_counter() - t0,
              "runs": [{"transfer_seed": r["transfer_seed"],
                        "rmse_all": r["transfer_rmse_all_kcal"],
                        "rmse_heldout": r["transfer_rmse_heldout_kcal"],
                        "epochs": r["transfer_epochs"], "seconds": r["transfer_seconds"]}
                       for r in raw["runs"]]}
    if part == "c":  # the converted levelup model, predicted by MLatom
        db, low, _ = load(name)
        pred = np.load(raw_path.with_suffix(".npz"))["pretrained"]
        model = from_torchani(WORK / f"{name}_seed{seed}_levelup.npz")
        result["convert_max_diff_kcal"] = float(np.abs(pred - model.predict(db).energies).max()
                                                * KCAL)
    write_json(RESULTS / f"{name}_seed{seed}_{part}.json", result)
    print(f"{name} seed {seed} ({part}): " + ", ".join(f"{r['rmse_all']:.2f}"
                                                       for r in result["runs"]), flush=True)
    del out


def run_levelup(name: str, seed: int, part: str, args) -> None:
    db, low, high = load(name)
    if part == "d":
        pre, _, pre_rmse = pretrained(name, db, low, seed, kind="mlatom")
        np.savez(WORK / f"{name}_seed{seed}_levelup.npz", **to_torchani(pre))
        extra: dict = {}
    else:
        path = WORK / f"{name}_seed{seed}_mlatom.npz"
        if not path.exists():
            print(f"{name} seed {seed} ({part}): {path} missing (part a first), skipped")
            return
        pre = from_torchani(path)
        pre_rmse = rmse(pre.predict(db).energies, db.get(low))
        raw = WORK / f"{name}_seed{seed}_a_raw.npz"
        extra = {"convert_max_diff_kcal": float(
            np.abs(np.load(raw)["pretrained"] - pre.predict(db).energies).max() * KCAL)}
    train_i, val_i = pick(len(db), args.budget, seed)
    unseen = held_out(len(db), args.budget, seed)
    ref = np.asarray(db.get(high))
    runs = []
    for t in args.transfer_seeds:
        t0 = time.perf_counter()
        history: list = []
        model = compat_transfer(pre, db[train_i], db[val_i], high, seed + 1000 * t,
                                history=history)
        pred = model.predict(db).energies
        runs.append({"transfer_seed": t, "rmse_all": rmse(pred, ref),
                     "rmse_heldout": rmse(pred, ref, unseen),
                     "epochs": len(history[0].epoch) if history else None,
                     "best_epoch": history[0].best_epoch if history else None,
                     "seconds": time.perf_counter() - t0})
    result = {"part": part, "what": PARTS[part], "system": name, "seed": seed,
              "budget": args.budget, "pretrain_rmse_vs_low": pre_rmse, **extra, "runs": runs}
    write_json(RESULTS / f"{name}_seed{seed}_{part}.json", result)
    print(f"{name} seed {seed} ({part}): " + ", ".join(f"{r['rmse_all']:.2f}" for r in runs),
          flush=True)


def table(systems, seeds) -> str:
    """Markdown: per system, each part's median (min-max) over seeds x transfer seeds, and
    the median over seeds of the per-seed transfer-seed medians."""
    lines = ["| system | " + " | ".join(f"({p}) {w}" for p, w in PARTS.items()) + " |",
             "|---" * (len(PARTS) + 1) + "|"]
    for name in systems:
        cells = []
        for part in PARTS:
            per_seed, every = [], []
            for seed in seeds:
                f = RESULTS / f"{name}_seed{seed}_{part}.json"
                if f.exists():
                    v = [r["rmse_all"] for r in json.loads(f.read_text())["runs"]]
                    per_seed.append(float(np.median(v)))
                    every += v
            cells.append(f"{np.median(every):.2f} ({min(every):.2f}-{max(every):.2f}), "
                         f"n={len(every)}" if every else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def med(v: list[float]) -> str:
    return f"{np.median(v):.2f} ({min(v):.2f}-{max(v):.2f})" if v else "-"


def ablation_table() -> str:
    """Median (min-max) over transfer seeds of bench/parity_ablate.py's runs, seed by seed."""
    path = RESULTS / "ablations.jsonl"
    if not path.exists():
        return ""
    rows: dict = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        key = (r["system"], r["seed"], r["start"], r["variant"])
        rows.setdefault(key, {})[r["transfer_seed"]] = r["rmse_all"]  # last run of a seed wins
    lines = ["| system | seed | pre-trained model | transfer variant | RMSE all (kcal/mol) |",
             "|---|---|---|---|---|"]
    for (name, seed, start, variant), v in sorted(rows.items()):
        lines.append(f"| {name} | {seed} | {START_NAMES.get(start, start)} | {variant} | "
                     f"{med(list(v.values()))} |")
    return "\n".join(lines)


START_NAMES = {"mlatom": "MLatom 3.25.5", "levelup": "compat before (ANI-1x widths, levelup init)",
               "levelup160": "levelup init, 160-128-96",
               "levelup160torch": "torch init, 160-128-96 (= new_model)",
               "levelup1xtorch": "torch init, ANI-1x widths",
               "levelup160nu": "Kaiming-normal weights + uniform biases, 160-128-96",
               "levelup160uz": "torch-uniform weights + zero biases, 160-128-96"}
SUITE = ("water", "ammonia-inversion", "hcn", "formaldehyde-dft", "methanol", "h2-tutorial")


def remeasure_table(budget: int = 16) -> str:
    """bench_transfer_suite's compat row now and before, next to MLatom 3.25.5's runs."""
    before = json.loads((RESULTS / "compat_before.json").read_text())["rows"]
    lines = ["| system | compat now | compat before | MLatom 3.25.5 | pre-training vs low: "
             "compat now / before / MLatom |", "|---|---|---|---|---|"]
    for name in SUITE:
        now, old, ml, pn, po, pm = [], [], [], [], [], []
        for seed in (0, 1, 2):
            f = HERE / "transfer_suite" / "results" / "levelup" / f"{name}_seed{seed}.json"
            r = json.loads(f.read_text()) if f.exists() else {"runs": {}}
            if f"{budget}/compat" in r["runs"]:
                now.append(r["runs"][f"{budget}/compat"]["rmse_all"])
                pn.append(r["pretrain_mlatom_recipe"]["rmse_vs_low"])
            b = before.get(f"{name}_seed{seed}.json")
            if b:
                old.append(b["16/compat"]["rmse_all"])
                po.append(b["pretrain_mlatom_recipe"]["rmse_vs_low"])
            m = HERE / "transfer_suite" / "results" / "mlatom" / f"{name}_seed{seed}.json"
            if m.exists():
                mr = json.loads(m.read_text())
                ml += [x["transfer_rmse_all_kcal"] for x in mr["runs"] if x["budget"] == budget]
                pm.append(mr["pretrain_rmse_vs_low_kcal"])
        lines.append(f"| {name} | {med(now)} | {med(old)} | {med(ml)} | "
                     f"{med(pn)} / {med(po)} / {med(pm)} |")
    return "\n".join(lines)


def report(systems, seeds) -> None:
    from results import write_section

    body = "\n\n".join([INTRO, table(systems, seeds), PER_SEED_NOTE, per_seed(systems, seeds),
                         "Transfer-step and pre-training ablations (bench/parity_ablate.py), "
                         "seed 0, median (min-max) over 3 transfer seeds:",
                         ablation_table(),
                         "After the fix: bench/bench_transfer_suite.py's `compat` row at 16 "
                         "points, seeds 0-2 (median (min-max), RMSE vs the high level over all "
                         "geometries, kcal/mol), MLatom 3.25.5's own runs "
                         "(results/mlatom, bench/bench_mlatom_suite.py) and the row before "
                         "(results/parity/compat_before.json):",
                         remeasure_table(), READING])
    print(body)
    write_section("compat-parity", "levelup.compat.mlatom vs MLatom 3.25.5 on the transfer "
                  "suite: pre-training or transfer step? (compat-parity)", body,
                  command="nice -n 10 .venv/bin/python bench/bench_compat_parity.py && "
                          ".venv/bin/python bench/parity_ablate.py ... && .venv/bin/python "
                          "bench/bench_transfer_suite.py --rows compat --budgets 16 && "
                          ".venv/bin/python bench/bench_compat_parity.py --report")


def per_seed(systems, seeds) -> str:
    lines = ["| system | seed | " + " | ".join(f"({p})" for p in PARTS) + " |",
             "|---" * (len(PARTS) + 2) + "|"]
    for name in systems:
        for seed in seeds:
            cells = []
            for part in PARTS:
                f = RESULTS / f"{name}_seed{seed}_{part}.json"
                cells.append(", ".join(f"{r['rmse_all']:.2f}" for r in
                                       json.loads(f.read_text())["runs"]) if f.exists() else "-")
            lines.append(f"| {name} | {seed} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


INTRO = """At 16 high-level points (`protocol.pick`), RMSE vs the high level over all geometries,
kcal/mol. Each cell: median (min-max) over seeds x 3 transfer seeds (n runs); each transfer seed
is a fresh transfer step from the same pre-trained model. Pre-trained weights are converted
between the libraries exactly (largest energy difference after conversion below 1e-4
kcal/mol). Parts (c) and (d) use the compat layer's pre-training *before* the fix below
(ANI-1x widths, levelup's initialisation)."""

PER_SEED_NOTE = "Per seed (transfer seeds 0, 1, 2):"

READING = """Reading it:

- **The gap was in the pre-trained model, not in the transfer step.** From the *same*
  pre-trained weights the two transfer steps land close together: from MLatom's, compat's
  transfer step is better on water and a little worse on ammonia (parts b vs a, seed 0); from
  levelup's old pre-training, MLatom's transfer step is about as bad as compat's (c vs d, every
  seed run). Changing the pre-trained model (a, b vs c, d) moves the result by far more.
- **Cause: how a new network is built.** MLatom 3.25.5's `ml.models.ani()` builds 160-128-96
  hidden layers for *every* element (its default `neurons` is `[[160, 128, 96]]`; levelup's
  compat used ANI-1x's widths: C 144-112-96, N and O 128-112-96) and its `NN_setup` does not call
  `NN_initialize`, so the Linear layers keep torch's default initialisation: Kaiming-uniform
  weights with a = sqrt(5) (std 1/sqrt(3 fan_in), sqrt(3) smaller than levelup's Kaiming-normal
  a = 1) and *uniform biases* in +-1/sqrt(fan_in) (levelup: zero). Biases then train by plain
  SGD at 1e-3 on a Hartree^2 loss, so they stay where they started. In the ablation table, the
  initialisation is what matters: torch's init brings water / ammonia / HCN (seed 0) from
  1.35-1.41 / 1.69-1.74 / 2.42-2.48 to 1.06-1.10 / 1.00-1.05 / 1.39-1.40 with levelup's widths,
  and to 0.88-0.90 / 1.13-1.14 / 1.45-1.47 with MLatom's widths (what the compat layer now
  builds, `levelup.transfer.tutorialprotocol.mlatom_model`); MLatom's widths with levelup's init are worse
  (1.56-1.59 / 1.77-1.84 / 3.91-4.06). Kaiming-normal weights with uniform biases sit in
  between on water (1.07-1.10): both the bias draw and the weight scale contribute. The
  accuracy of the pre-trained model on the low level says nothing about this (0.09-0.15 kcal/mol
  for all of them).
- **After the fix** (last table, medians of seeds 0-2): compat now beats MLatom 3.25.5 on water
  (0.88 vs 1.07) and HCN (0.95 vs 1.49) and is behind on ammonia (1.14 vs 1.04), formaldehyde
  (0.89 vs 0.80; before the fix 0.73) and methanol (2.79 vs 2.61; before 3.15), by 0.1-0.2
  kcal/mol, about the size of MLatom's own run-to-run scatter (below). So the done-when ("no
  worse than MLatom on the polyatomic systems") holds for water and HCN and, strictly, not
  for the other three medians; three seeds cannot tell those apart. On the suite's H2 the median
  improved (7.13 vs MLatom's 9.01) with a worse worst seed (59.3 vs 33.8).
- **Ruled out in the transfer step (measured, seed 0, 3 transfer seeds):** Adam's epsilon on a
  Hartree^2 loss instead of (kcal/mol)^2 (no change: water from MLatom's weights 0.76-0.77 vs
  0.76-0.78, from levelup's 1.35-1.42 vs 1.35-1.41; ammonia 1.71-1.74 vs 1.69-1.74). The self
  energies: MLatom's `energy_shifter.self_energies = None` refits them from scratch to the
  high-level energies of the training points (TorchANI's EnergyShifter, least squares, minimum
  norm for one composition), so the model starts off by the mean pre-trained network output
  over those points; levelup's `refit_self_energies` fits a correction to the residual, so it
  starts without offset. Doing it MLatom's way in compat gives, from MLatom's weights on water,
  1.01-1.03, i.e. MLatom's own result (0.92-1.08): this is the whole b-vs-a difference there,
  and levelup's way is the better one (0.76-0.78); from levelup's weights it changes little
  (water 1.27-1.30, ammonia 1.74-1.75). Kept as levelup does it. Read, not changed, and equal:
  optimiser groups and weight decays (AdamW 1e-2 on first/last weights, 1e-5 / 1e-6 hidden,
  SGD biases), frozen layers get no decay (no gradient), plateau 0.5 / 64 / threshold 0, floor
  1e-5, validation MSE vs levelup's loss (proportional for one composition), best-model kept.
  Not measured here: MLatom validates before each epoch (the starting model competes for best),
  and cuts its batches once (the fixed-batch test before this found 0-7%).
- **MLatom is noisy between runs with the same seeds**: rerunning (a) gave water seed 0
  0.92-1.08 (results/mlatom: 0.96) and ammonia seed 0 0.85-0.87 (results/mlatom: 1.04).
- **Trade-off on the H2 tutorial (issue 5).** On H2 the widths are the same (160-128-96 for H
  in both) and only the initialisation changed; there levelup's zero-bias initialisation
  extrapolated much better below 0.9 A (tutorial-protocol section). examples/mlatom_tutorial.py
  through the compat layer after `torch.manual_seed(0)` now gives ANI-TL vs CISD 14.02 kcal/mol
  over all 451 points (before: 6.02; MLatom 3.25.5 10.78-13.29 over 3 seeds), so
  tests/test_examples.py's slow `test_notebook_and_script_give_the_same_numbers` (ANI-TL <
  10.95) is expected to fail with this change (not run here)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS))
    parser.add_argument("--transfer-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=16)
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.report:
        report(args.systems, args.seeds)
        return
    WORK.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for name in args.systems:
            for part in args.parts:
                if (RESULTS / f"{name}_seed{seed}_{part}.json").exists():
                    continue
                (run_mlatom if part in "ac" else run_levelup)(name, seed, part, args)


if __name__ == "__main__":
    main()
