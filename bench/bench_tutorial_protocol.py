"""Benchmark: the tutorial's own protocol through levelup.compat.mlatom vs MLatom 3.25.5, on the
same labels, over seeds (issue 5: "no worse than MLatom's on the same labels").

Run: .venv/bin/python bench/bench_tutorial_protocol.py [--seeds 0 1 2] [--reuse] [--report-only]
Needs bench/.mlatom-venv (bash bench/mlatom_env.sh). About 30 minutes on the shared 2-core machine
(MLatom's pre-training dominates); --reuse takes MLatom's runs from bench/_work/protocol when they
are there.

Three parts, each per seed, all on the same 451 HF/STO-3G and CISD/cc-pVDZ labels (levelup's label
cache, written to bench/_work/protocol/labels.npz for MLatom):

1. The tutorial script, examples/mlatom_tutorial.py, run in this process through the compat layer
   after ``torch.manual_seed(seed)`` (pre-training, transfer, scratch).
2. MLatom's three trainings, as the tutorial writes them, on the same labels
   (bench/_mlatom_tutorial.py in bench/.mlatom-venv, random/numpy/torch seeded with the seed).
3. The transfer step alone from the *same* pre-trained model, done by both libraries: MLatom's
   pre-trained model converted to levelup (compat fine-tuning), levelup's converted to MLatom
   (MLatom fine-tuning), and a model pre-trained with levelup's default recipe ``TrainConfig()``
   (what the compat layer used before) fine-tuned by both. This separates the fine-tuning from the
   pre-trained model it starts from.

Writes the "tutorial-protocol" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from results import write_section  # noqa: E402

KCAL = 627.509474
WORK = HERE / "_work" / "protocol"
MLATOM_PY = HERE / ".mlatom-venv" / "bin" / "python"
REGIONS = {"all": (0.0, 99.0), "0.9-5.0": (0.895, 99.0), "0.5-0.9": (0.0, 0.905)}
MODELS = [("ANI_HF_energy", "hf", "ANI-HF vs HF"), ("ANI_TL_energy", "cisd", "ANI-TL vs CISD"),
          ("ANI_CISD_energy", "cisd", "ANI-CISD (scratch) vs CISD")]


def rmse(pred: np.ndarray, ref: np.ndarray, r: np.ndarray, region: str) -> float:
    lo, hi = REGIONS[region]
    m = (r >= lo) & (r <= hi)
    return float(np.sqrt(np.mean((pred[m] - ref[m]) ** 2)) * KCAL)


def labels() -> dict[str, np.ndarray]:
    from levelup.qm import label
    from levelup.study.tutorial import HIGH, LOW, h2_scan

    db = label(label(h2_scan(), LOW, progress=False), HIGH, progress=False)
    out = {"r": db.distance(0, 1), "hf": np.array(db.get(LOW)), "cisd": np.array(db.get(HIGH))}
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "labels.npz"
    if not path.exists() or any(not np.array_equal(np.load(path)[k], v) for k, v in out.items()):
        np.savez(path, **out)
    return out


def to_torchani(model) -> dict[str, np.ndarray]:
    """levelup ANIModel (H only) -> TorchANI/MLatom names."""
    out = {f"H.{k}": v.detach().numpy() for k, v in model.networks["H"].state_dict().items()}
    out["self_energies"] = model.self_energies.numpy().copy()
    return out


def from_torchani(path: Path):
    """TorchANI/MLatom weights (npz) -> levelup ANIModel."""
    import torch

    from levelup.model.ani import ANIModel

    w = np.load(path)
    model = ANIModel(["H"], seed=0)
    model.networks["H"].load_state_dict({k[2:]: torch.from_numpy(w[k]) for k in w
                                         if k.startswith("H.")})
    model.set_self_energies(w["self_energies"])
    return model


def compat_tutorial(seed: int) -> dict:
    """examples/mlatom_tutorial.py through the compat layer, in a temporary folder."""
    import torch

    import levelup.train.loop

    epochs: list[int] = []
    fit = levelup.train.loop.fit

    def counted(*a, **k):
        history = fit(*a, **k)
        epochs.append(len(history.epoch))
        return history

    levelup.train.loop.fit = counted
    cwd = os.getcwd()
    tmp = Path(tempfile.mkdtemp(prefix="levelup-protocol-"))
    try:
        os.chdir(tmp)
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        ns = runpy.run_path(str(ROOT / "examples" / "mlatom_tutorial.py"), run_name="__main__")
        seconds = time.perf_counter() - t0
        from levelup.model.files import load_model

        np.savez(WORK / f"levelup_s{seed}_pretrained.npz", **to_torchani(load_model("ANI-HF.pt")))
    finally:
        os.chdir(cwd)
        levelup.train.loop.fit = fit
        shutil.rmtree(tmp, ignore_errors=True)
        import matplotlib.pyplot as plt

        plt.close("all")
    db = ns["molDB"]
    return {"pred": {n: np.array(db.get_properties(n)) for n, _, _ in MODELS},
            "epochs": epochs, "seconds": seconds}


def compat_transfer(model_npz: Path, seed: int) -> np.ndarray:
    """The tutorial's transfer step alone, through the compat layer, from a given pre-trained
    model; returns the ANI-TL energies (451,)."""
    import torch

    import levelup.compat.mlatom as ml
    from levelup.study.tutorial import h2_scan

    lab = np.load(WORK / "labels.npz")
    tmp = Path(tempfile.mkdtemp(prefix="levelup-protocol-"))
    try:
        from_torchani(model_npz).save(tmp / "ANI-HF-TL.pt")
        torch.manual_seed(seed)
        molDB = ml.molecular_database(h2_scan())  # noqa: N806 - the tutorial's names
        molDB.add_scalar_properties(lab["cisd"], "CISD_energy")
        ani = ml.models.ani(model_file=str(tmp / "ANI-HF-TL.pt"), verbose=False)
        ani.fix_layers([[0, 6]])
        step = 40
        val = molDB[::step][::10]
        sub = ml.molecular_database([mol for mol in molDB[::step] if mol not in val])
        ani.energy_shifter.self_energies = None
        ani.train(molecular_database=sub, validation_molecular_database=val,
                  property_to_learn="CISD_energy", hyperparameters={"learning_rate": 0.0001},
                  reset_optimizer=True)
        ani.predict(molecular_database=molDB, property_to_predict="ANI_TL_energy")
        return np.array(molDB.get_properties("ANI_TL_energy"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def default_pretrained(seed: int) -> Path:
    """A model pre-trained on the 451 HF energies with levelup's default recipe (what the compat
    layer did before it mapped onto MLatom's recipe)."""
    from levelup.model.ani import ANIModel
    from levelup.study.tutorial import LOW, h2_scan
    from levelup.train.loop import TrainConfig, fit

    lab = np.load(WORK / "labels.npz")
    db = h2_scan()
    db.set(LOW, lab["hf"])
    model = ANIModel(["H"], seed=seed)
    fit(model, db, property=LOW, config=TrainConfig(seed=seed), progress=False)
    path = WORK / f"default_s{seed}_pretrained.npz"
    np.savez(path, **to_torchani(model))
    return path


def mlatom(prefix: str, seed: int, pretrained: Path | None, reuse: bool) -> dict:
    out = WORK / prefix
    if not (reuse and (WORK / f"{prefix}.json").exists()):
        cmd = [str(MLATOM_PY), str(HERE / "_mlatom_tutorial.py"), str(WORK / "labels.npz"),
               str(out), "--seed", str(seed)]
        if pretrained is not None:
            cmd += ["--pretrained", str(pretrained), "--no-scratch"]
        subprocess.run(cmd, check=True)
    data = np.load(f"{out}.npz")
    info = json.loads((WORK / f"{prefix}.json").read_text())
    return {"pred": {n: data[n] for n, _, _ in MODELS}, "epochs": info["epochs"],
            "seconds": info["times_s"]}


def cross(start: str, pretrained: Path, seed: int, reuse: bool) -> dict:
    """The transfer step from one pre-trained model, by the compat layer and by MLatom."""
    key = {"MLatom": "mlatom", "levelup compat": "levelup", "levelup TrainConfig()": "default"}
    return {"compat": compat_transfer(pretrained, seed),
            "mlatom": mlatom(f"cross_{key[start]}_s{seed}", seed, pretrained,
                             reuse)["pred"]["ANI_TL_energy"]}


def measure(seeds: list[int], reuse: bool) -> dict:
    import torch

    torch.set_num_threads(1)
    lab = labels()
    runs: dict = {"seeds": seeds, "load": [os.getloadavg()[0]], "compat": {}, "mlatom": {},
                  "cross": {}}
    starts = {"levelup compat": "levelup_s{}_pretrained.npz",
              "levelup TrainConfig()": "default_s{}_pretrained.npz",
              "MLatom": "mlatom_s{}_pretrained.npz"}
    for seed in seeds:  # levelup's runs first, MLatom's (the longest) last
        runs["compat"][seed] = compat_tutorial(seed)
        default_pretrained(seed)
        runs["cross"][seed] = {}
        for start in ("levelup compat", "levelup TrainConfig()"):
            runs["cross"][seed][start] = cross(start, WORK / starts[start].format(seed), seed, reuse)
        runs["load"].append(os.getloadavg()[0])
        print(f"seed {seed}: levelup done", flush=True)
    for seed in seeds:
        runs["mlatom"][seed] = mlatom(f"mlatom_s{seed}", seed, None, reuse)
        runs["cross"][seed]["MLatom"] = cross("MLatom", WORK / starts["MLatom"].format(seed), seed,
                                              reuse)
        runs["load"].append(os.getloadavg()[0])
        print(f"seed {seed}: MLatom done", flush=True)
    runs["r"], runs["hf"], runs["cisd"] = lab["r"], lab["hf"], lab["cisd"]
    return runs


def med(values: list[float]) -> str:
    v = np.asarray(values)
    return f"{np.median(v):.2f} ({v.min():.2f}-{v.max():.2f})"


def report(runs: dict, seeds: list[int]) -> None:
    r, ref = np.asarray(runs["r"]), {"hf": np.asarray(runs["hf"]), "cisd": np.asarray(runs["cisd"])}
    lines = [
        f"Seeds {seeds}; RMSE in kcal/mol, median (min-max) over seeds, on the same labels (levelup's "
        "PySCF labels, given to MLatom). levelup: examples/mlatom_tutorial.py through "
        "levelup.compat.mlatom after torch.manual_seed(seed); the compat layer trains with "
        "MLatom's recipe (`TrainConfig.mlatom()` with `torchani_groups`: batch 8, AdamW 1e-3 on "
        "the weights, plain SGD on the biases, plateau 0.5/64, floor 1e-5, best weights kept). "
        "MLatom 3.25.5: the tutorial's three trainings (bench/_mlatom_tutorial.py), random, numpy "
        "and torch seeded. torch on 1 thread in both.", "",
        "| model | region | levelup.compat.mlatom | MLatom 3.25.5 |", "|---|---|---|---|"]
    for pred, level, name in MODELS:
        for region in REGIONS:
            a = [rmse(np.asarray(runs["compat"][s]["pred"][pred]), ref[level], r, region)
                 for s in seeds]
            b = [rmse(np.asarray(runs["mlatom"][s]["pred"][pred]), ref[level], r, region)
                 for s in seeds]
            lines.append(f"| {name} | {region} | {med(a)} | {med(b)} |")
    def tl_all(part: str) -> str:
        return ", ".join(f"{rmse(np.asarray(runs[part][s]['pred']['ANI_TL_energy']), ref['cisd'], r, 'all'):.2f}"  # noqa: E501
                         for s in seeds)

    lines += ["", f"Per seed, ANI-TL vs CISD over all 451 points: levelup {tl_all('compat')}; "
              f"MLatom {tl_all('mlatom')}.",
              "Epochs (pre-training / transfer / scratch), per seed: levelup "
              + ", ".join(" / ".join(map(str, runs["compat"][s]["epochs"])) for s in seeds)
              + "; MLatom " + ", ".join(" / ".join(str(runs["mlatom"][s]["epochs"][k]) for k in
                                                   ("pretraining", "transfer", "scratch"))
                                        for s in seeds) + ".", "",
              "The transfer step alone from the same pre-trained model (ANI-TL vs CISD, kcal/mol, "
              "all 451 points / 0.5-0.9 Å; median over seeds, per seed in brackets). Each "
              "pre-trained model is converted between the two libraries exactly (same energies "
              "to float32 precision):", "",
              "| pre-trained by | fine-tuned by compat (all) | fine-tuned by MLatom (all) | "
              "compat (0.5-0.9) | MLatom (0.5-0.9) |", "|---|---|---|---|---|"]
    starts = {"MLatom": "MLatom 3.25.5 (its own recipe)",
              "levelup compat": "levelup.compat.mlatom (MLatom's recipe, this revision)",
              "levelup TrainConfig()": "levelup's default recipe `TrainConfig()` (the compat "
                                       "layer's mapping before this revision)"}
    for start, label in starts.items():
        cells = []
        for region in ("all", "0.5-0.9"):
            for who in ("compat", "mlatom"):
                v = [rmse(np.asarray(runs["cross"][s][start][who]), ref["cisd"], r, region)
                     for s in seeds]
                cells.append(f"{np.median(v):.2f} [{', '.join(f'{x:.1f}' for x in v)}]")
        lines.append(f"| {label} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} |")
    lines += ["", "Load average (1 min) at the start, after each seed's levelup runs and after each "
              "seed's MLatom runs: "
              + " / ".join(f"{x:.1f}" for x in runs["load"]) + ".", "", READING]
    print("\n".join(lines))
    write_section("tutorial-protocol", "The tutorial's own protocol: levelup.compat.mlatom vs "
                  "MLatom 3.25.5 on the same labels (issue 5)", "\n".join(lines),
                  command="python bench/bench_tutorial_protocol.py --seeds "
                          + " ".join(map(str, seeds)))


READING = """Reading it:

- **The fine-tuning is not where the gap was.** From the same pre-trained model, the compat
  layer's fine-tuning and MLatom's land within 1.5 kcal/mol of each other over all points (last
  table, each row; MLatom's is the lower one in all nine pairs, by 0.1-1.4 kcal/mol), while the
  pre-trained model moves the result by 6-15 kcal/mol. What decides the transferred model's
  error below 0.9 Å, where the tutorial has no training point, is the pre-trained model.
- **What made levelup's pre-trained models transfer worse:** the biases. MLatom (like TorchANI's
  training example) steps the biases by plain SGD at the AdamW learning rate on a loss in
  Hartree^2, so they hardly move from their initial values; levelup's default recipe trains them
  with AdamW like the weights. Models pre-trained so put a spurious well into the 0.5-0.9 Å
  region after fine-tuning from 10 points, with either library's fine-tuning (row
  "TrainConfig()": about 20 kcal/mol over all points, 65-70 below 0.9 Å). Training the biases as
  MLatom does (`torchani_groups`) with MLatom's batch, rate and schedule (`TrainConfig.mlatom()`)
  is what the compat layer now maps `ani.train()` onto: the meaning the tutorial's user asked
  for. Before, it mapped onto `TrainConfig()` and reached 18.7 kcal/mol (h2-study section).
- **Initialisation differs and stays levelup's:** MLatom 3.25 builds a new model's networks with
  torch's default `nn.Linear` initialisation (uniform biases up to 1/sqrt(fan_in), which SGD then
  barely changes; its `NN_initialize`, TorchANI's Kaiming-normal weights with zero biases, is not
  called for a new model), while levelup initialises as TorchANI's example does (zero biases).
  With near-zero biases the transfer extrapolates better, whichever library fine-tunes (row
  "levelup.compat.mlatom" against row "MLatom"), so levelup keeps its initialisation; this is
  why the compat layer ends below MLatom rather than level with it.
- **ANI-HF** (the pre-trained model, vs HF): 0.06 kcal/mol median against MLatom's 0.05 in this
  run (0.075 in anchor.md), inside MLatom's spread over seeds; worse than levelup's default
  recipe (0.028, issue 4), as MLatom's recipe is.
- **What is left between the two fine-tunings** (up to 1.4 kcal/mol, not investigated further):
  MLatom cuts its batches once and keeps them every epoch, validates before each epoch (so the
  starting model competes for "best"), and its Adam epsilon acts on a loss in Hartree^2.
- The frozen layers are MLatom's: `fix_layers([[0, 6]])` freezes the weights *and* biases of
  positions 0 and 6 in both libraries (checked: MLatom's transferred model has them bit-identical
  to the pre-trained one, and moved its hidden biases by at most 7e-5 while the hidden weights
  moved by 0.05)."""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--reuse", action="store_true",
                        help="take MLatom's runs from bench/_work/protocol when they exist")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the section from the last run (bench/_work/protocol/runs.json)")
    args = parser.parse_args()
    saved = WORK / "runs.json"
    if args.report_only:
        runs = json.loads(saved.read_text())
        seeds = runs["seeds"]
        for part in ("compat", "mlatom", "cross"):
            runs[part] = {int(k): v for k, v in runs[part].items()}
    else:
        if not MLATOM_PY.exists():
            raise SystemExit("bench/.mlatom-venv is missing: run bash bench/mlatom_env.sh first")
        seeds = args.seeds
        runs = measure(seeds, args.reuse)

        def plain(x):
            if isinstance(x, np.ndarray):
                return x.tolist()
            if isinstance(x, dict):
                return {str(k): plain(v) for k, v in x.items()}
            return x

        saved.write_text(json.dumps(plain(runs)))
    report(runs, seeds)


if __name__ == "__main__":
    main()
