"""Benchmark: levelup's training side by side with MLatom 3.25.5 (issue 4), in one run.

Run:   bash bench/mlatom_env.sh            # once: MLatom in its own venv, bench/.mlatom-venv
       .venv/bin/python bench/bench_train.py [--seeds 0 1 2] [--threads 1] [--skip-big]

Measures, on the tutorial's 451 H2 geometries with the HF/STO-3G labels of
../shared/reference/h2_labels.npz (all 451 handed to training; both split 80/20 at random):

1. MLatom's ANI training exactly as the tutorial calls it (batch 8, its defaults), per seed: epochs,
   wall time of ``train``, median seconds per epoch, RMSE vs HF over all 451 points (kcal/mol).
2. levelup with the same recipe, batch size and architecture (AdamW 1e-3, plateau 0.5/64, floor
   1e-5, ANI-1x H network 160-128-96 on a 48-long AEV): the same numbers.
3. levelup's default recipe (TrainConfig()): wall time to reach MLatom's median final RMSE (the
   time of the bench's per-epoch RMSE check is subtracted) and its own final RMSE.
4. 10,000 distorted water and methanol geometries labelled at HF/STO-3G (with levelup.qm.label,
   cached in bench/_work/): seconds per epoch at batch 8 and peak memory, levelup and MLatom.

Every training runs in its own process (fresh interpreter, its peak RSS measured), with the same
number of torch threads for both programs (--threads; default 1: at batch 8 a step is a few
small matrix products, and on a busy machine one thread per process is the fast, fair choice).
Writes its section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
WORK = BENCH / "_work"
MLATOM_PY = BENCH / ".mlatom-venv" / "bin" / "python"
REFERENCE = BENCH.parents[1] / "shared" / "reference"
KCAL = 627.509474
sys.path.insert(0, str(BENCH))


# ------------------------------------------------------------------------------ data


def h2_input() -> Path:
    """The 451 H2 geometries with their HF/STO-3G energies, as the MLatom driver reads them."""
    path = WORK / "h2_hf.npz"
    if not path.exists():
        ref = np.load(REFERENCE / "h2_labels.npz")
        xyz = np.zeros((len(ref["r"]), 2, 3))
        xyz[:, 1, 2] = ref["r"]
        WORK.mkdir(exist_ok=True)
        np.savez(path, species=np.ones((len(xyz), 2), dtype=int), coordinates=xyz,
                 energies=ref["hf"])
    return path


def water_methanol_input(n: int = 10_000) -> Path:
    """``n`` randomly distorted waters and methanols (half each) labelled at HF/STO-3G.

    Geometries: equilibrium structures plus Gaussian noise of 0.06 Angstrom per coordinate
    (seed 0). Labels come from levelup.qm.label with its cache in bench/_work/labels.sqlite, so a
    killed run loses nothing.
    """
    path = WORK / f"water_methanol_{n}.npz"
    if path.exists():
        return path
    from levelup import Database
    from levelup.qm import label

    water = ([8, 1, 1], [[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]])
    methanol = ([6, 8, 1, 1, 1, 1],
                [[-0.0465, 0.6631, 0.0], [-0.0465, -0.7561, 0.0], [-1.0862, 0.9759, 0.0],
                 [0.4373, 1.0773, 0.8906], [0.4373, 1.0773, -0.8906], [0.8624, -1.0837, 0.0]])
    rng = np.random.default_rng(0)
    species = np.zeros((n, 6), dtype=int)
    xyz = np.zeros((n, 6, 3))
    for i in range(n):
        z, r = water if i % 2 == 0 else methanol
        species[i, :len(z)] = z
        xyz[i, :len(z)] = np.array(r) + rng.normal(scale=0.06, size=(len(z), 3))
    db = label(Database(species, xyz), "HF/STO-3G", workers=1, threads=1,
               cache=WORK / "labels.sqlite", progress=True)
    np.savez(path, species=db.species, coordinates=db.coordinates, energies=db.get("HF/STO-3G"))
    return path


# ------------------------------------------------------------------------------ workers


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def levelup_worker(args: argparse.Namespace) -> dict:
    """One levelup training in this process (called as ``--worker``): JSON on stdout."""
    import torch

    torch.set_num_threads(args.threads)
    from levelup import Database
    from levelup.model.ani import ANIModel
    from levelup.train.loop import TrainConfig, fit

    data = np.load(args.input)
    db = Database(data["species"], data["coordinates"])
    db.set("ref", data["energies"])
    recipe = json.loads(args.recipe)
    model = ANIModel(db.elements, seed=args.seed)
    if args.preset_self_energies:
        # the least squares fit() would do, without levelup.model.selfenergies' rank diagnostic (an
        # SVD with full_matrices=True, which allocates molecules^2 floats: see RESULTS)
        counts = np.stack([(db.species == z).sum(1) for z in model.elements], 1).astype(float)
        model.set_self_energies(np.linalg.lstsq(counts, data["energies"], rcond=None)[0])
    species = model.species_index(db.species)
    xyz = torch.from_numpy(db.coordinates).to(model.dtype)
    check = {"spent": 0.0, "reached": None, "target": args.target}

    def callback(epoch, history, m):  # RMSE over all molecules after each epoch
        if not args.target:
            return None
        t = time.perf_counter()
        with torch.no_grad():
            pred = m(species, xyz).numpy()
        rmse = float(np.sqrt(np.mean((pred - data["energies"]) ** 2)) * KCAL)
        now = time.perf_counter()
        check["spent"] += now - t
        if check["reached"] is None and rmse <= args.target:
            check["reached"] = {"epoch": epoch, "seconds": now - t_start - check["spent"],
                                "rmse": rmse}
        return None

    config = TrainConfig(**recipe, seed=args.seed)
    t_start = time.perf_counter()
    with warnings.catch_warnings():  # one formula per element pair: self energies min-norm
        warnings.simplefilter("ignore")
        history = fit(model, db, property="ref", config=config, progress=False,
                      callback=callback)
    seconds = time.perf_counter() - t_start - check["spent"]
    pred = model.predict(db).energies
    epoch_times = np.diff(history.time)
    return {
        "seed": args.seed, "recipe": recipe, "train_seconds": seconds,
        "epochs": len(history.epoch), "best_epoch": history.best_epoch,
        "median_epoch_seconds": float(np.median(epoch_times)) if len(epoch_times) else seconds,
        "rmse_kcalmol": float(np.sqrt(np.mean((pred - data["energies"]) ** 2)) * KCAL),
        "reached": check["reached"], "peak_mb": _peak_mb(), "torch_threads": args.threads,
        "stop_reason": history.stop_reason,
    }


def run_levelup(input_path: Path, seed: int, recipe: dict, threads: int,
                target: float = 0.0, preset: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--input", str(input_path), "--seed", str(seed),
           "--recipe", json.dumps(recipe), "--threads", str(threads), "--target", str(target)]
    cmd += ["--preset-self-energies"] if preset else []
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_mlatom(input_path: Path, seed: int, threads: int, max_epochs: int = 0) -> dict:
    if not MLATOM_PY.exists():
        raise SystemExit("bench/.mlatom-venv is missing: run `bash bench/mlatom_env.sh` first")
    out = WORK / f"mlatom_{input_path.stem}_seed{seed}_t{threads}_e{max_epochs}.json"
    cmd = [str(MLATOM_PY), str(BENCH / "_mlatom_train.py"), str(input_path), str(out),
           "--seed", str(seed), "--threads", str(threads), "--workdir", str(WORK / "mlatom")]
    if max_epochs:
        cmd += ["--max-epochs", str(max_epochs)]
    subprocess.run(cmd, check=True, capture_output=True, text=True,
                   env={**os.environ, "MLATOM_NO_VERSION_CHECK": "1"})
    return json.loads(out.read_text())


# ------------------------------------------------------------------------------ main


def _median(rows: list[dict], key: str) -> float:
    return float(np.median([r[key] for r in rows]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-big", action="store_true", help="skip the 10,000-molecule part")
    parser.add_argument("--label-only", action="store_true", help="only make the big data set")
    parser.add_argument("--big-epochs", type=int, default=3)
    parser.add_argument("--rewrite", action="store_true",
                        help="rewrite the RESULTS section from bench/_work/bench_train.json")
    # worker mode (internal)
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--input")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recipe", default="{}")
    parser.add_argument("--target", type=float, default=0.0)
    parser.add_argument("--preset-self-energies", action="store_true")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(levelup_worker(args)))
        return
    WORK.mkdir(exist_ok=True)
    if args.rewrite:
        saved = json.loads((WORK / "bench_train.json").read_text())
        ml = saved["mlatom"]
        write_results(args, ml, saved["levelup_same"], saved["levelup_default"],
                      _median(ml, "rmse_kcalmol"), saved["big"], saved["load"])
        return
    if args.label_only:
        print(water_methanol_input())
        return

    load = os.getloadavg()
    h2 = h2_input()
    same = {"batch_size": 8, "learning_rate": 1e-3, "ema_decay": 0.0}  # TrainConfig.mlatom()
    rows_ml, rows_same, rows_default = [], [], []
    for seed in args.seeds:
        rows_ml.append(run_mlatom(h2, seed, args.threads))
        print("MLatom", rows_ml[-1], flush=True)
        rows_same.append(run_levelup(h2, seed, same, args.threads))
        print("levelup batch 8", rows_same[-1], flush=True)
    target = _median(rows_ml, "rmse_kcalmol")
    for seed in args.seeds:
        rows_default.append(run_levelup(h2, seed, {}, args.threads, target=target))
        print("levelup default", rows_default[-1], flush=True)

    big = None
    if not args.skip_big:
        wm = water_methanol_input()
        big = {"mlatom": run_mlatom(wm, 0, args.threads, max_epochs=args.big_epochs),
               "levelup": run_levelup(wm, 0, {"batch_size": 8, "max_epochs": args.big_epochs},
                                      args.threads, preset=True)}
        print("big", big, flush=True)
    write_results(args, rows_ml, rows_same, rows_default, target, big, load)


def write_results(args, rows_ml, rows_same, rows_default, target, big, load) -> None:
    from results import write_section

    def cell(rows, key, fmt):
        vals = [r[key] for r in rows]
        return f"{fmt.format(np.median(vals))} ({fmt.format(min(vals))}-{fmt.format(max(vals))})"

    def reached(rows):
        secs = [r["reached"]["seconds"] if r["reached"] else float("inf") for r in rows]
        return secs

    t_ml = [r["train_seconds"] for r in rows_ml]
    t_def = reached(rows_default)
    ep_ml, ep_same = _median(rows_ml, "median_epoch_seconds"), _median(rows_same,
                                                                        "median_epoch_seconds")
    lines = [
        f"H2, 451 HF/STO-3G energies, seeds {args.seeds}, {args.threads} torch thread(s) per "
        f"process; load average at start {load[0]:.1f}. Median (min-max) over seeds.",
        "",
        "| run | epochs | s/epoch | train s | RMSE vs HF, all 451 (kcal/mol) |",
        "|---|---|---|---|---|",
        f"| MLatom 3.25.5, tutorial defaults (batch 8) | {cell(rows_ml, 'epochs', '{:.0f}')} | "
        f"{cell(rows_ml, 'median_epoch_seconds', '{:.4f}')} | "
        f"{cell(rows_ml, 'train_seconds', '{:.1f}')} | {cell(rows_ml, 'rmse_kcalmol', '{:.3f}')} |",
        f"| levelup, same recipe and batch 8 | {cell(rows_same, 'epochs', '{:.0f}')} | "
        f"{cell(rows_same, 'median_epoch_seconds', '{:.4f}')} | "
        f"{cell(rows_same, 'train_seconds', '{:.1f}')} | "
        f"{cell(rows_same, 'rmse_kcalmol', '{:.3f}')} |",
        f"| levelup, default recipe | {cell(rows_default, 'epochs', '{:.0f}')} | "
        f"{cell(rows_default, 'median_epoch_seconds', '{:.4f}')} | "
        f"{cell(rows_default, 'train_seconds', '{:.1f}')} | "
        f"{cell(rows_default, 'rmse_kcalmol', '{:.3f}')} |",
        "",
        f"- Seconds per epoch at batch 8, same architecture: MLatom / levelup = "
        f"**{ep_ml / ep_same:.1f}x** (median epoch of each run; target >= 3x).",
        f"- Time to reach MLatom's median final RMSE ({target:.3f} kcal/mol) with levelup's "
        f"default recipe: {np.median(t_def):.2f} s (per seed: "
        f"{', '.join(f'{t:.2f}' for t in t_def)}) against MLatom's whole training "
        f"{np.median(t_ml):.1f} s: **{np.median(t_ml) / np.median(t_def):.1f}x** less (target >= "
        "10x).",
        f"- levelup's default recipe ends at {cell(rows_default, 'rmse_kcalmol', '{:.3f}')} "
        "kcal/mol vs HF over all 451 points (target <= 0.04).",
    ]
    if big:
        ml, lu = big["mlatom"], big["levelup"]
        lines += [
            "",
            f"10,000 distorted water and methanol geometries (HF/STO-3G), batch 8, "
            f"{lu['epochs']} epochs each (80/20 split), ANI-1x architecture (H, C, O):",
            "",
            "| | s/epoch | peak memory (MB) |",
            "|---|---|---|",
            f"| MLatom 3.25.5 | {ml['median_epoch_seconds']:.2f} | {ml['peak_mb']:.0f} |",
            f"| levelup | {lu['median_epoch_seconds']:.2f} | {lu['peak_mb']:.0f} |",
            "",
            f"Ratio of seconds per epoch: {ml['median_epoch_seconds'] / lu['median_epoch_seconds']:.1f}x.",
        ]
    lines += [
        "",
        "Notes. Each training runs in a fresh process with one torch thread (MLatom with two "
        "threads on this shared 2-core machine ran ten times slower per epoch). MLatom seeds "
        "nothing itself; the driver seeds random, numpy and torch with the seed. levelup's runs "
        "use the seed for the split, the batch order and the initial weights. 'Same recipe' is "
        "`TrainConfig.mlatom()`: batch 8, AdamW 1e-3 with TorchANI's weight decays, plateau "
        "0.5/64, floor 1e-5, no weight averaging. The default recipe is `TrainConfig()`: batch "
        "16, 2e-3, moving average of the weights (decay 0.99) validated and kept. Its "
        "s/epoch column includes the bench's own per-epoch RMSE check over all 451 points "
        "(needed to time when MLatom's accuracy is reached); its reach times exclude it. The "
        "10,000-molecule levelup run is given least-squares self energies computed in the bench: "
        "levelup.model.selfenergies' rank diagnostic (an SVD with full_matrices=True) allocates "
        "molecules^2 floats, about 1 GB here, which would otherwise dominate the peak memory.",
    ]
    command = ("bash bench/mlatom_env.sh && .venv/bin/python bench/bench_train.py --seeds "
               + " ".join(str(s) for s in args.seeds) + f" --threads {args.threads}")
    write_section("train", "Training: levelup vs MLatom 3.25.5 (issue 4)", "\n".join(lines),
                  command.strip())
    (WORK / "bench_train.json").write_text(json.dumps(
        {"mlatom": rows_ml, "levelup_same": rows_same, "levelup_default": rows_default,
         "big": big, "load": load}, indent=1))


if __name__ == "__main__":
    main()
