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
    from levelup.model import ANIModel

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
        print(table(args.systems, args.seeds))
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
