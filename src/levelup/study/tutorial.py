"""The H2 study of MLatom's transfer-learning tutorial, levelup's main job (``levelup demo``).

451 H2 geometries (r = 0.50 ... 5.00 Angstrom), labelled at HF/STO-3G and CISD/cc-pVDZ with
PySCF (cached); an ANI model pre-trained on all HF energies; transferred to CISD from the
tutorial's 12 points (10 to train, 2 to validate); compared with the same architecture trained
from scratch, delta-learning on top of the pre-trained model, and the tutorial's own transfer
protocol (first and last layers frozen, learning rate 1e-4). Errors are reported over all 451
points and per region, so a reader sees where a model extrapolates (below 0.9 Angstrom the
tutorial puts no training point).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from levelup.data import Database
from levelup.model.ani import ANIModel
from levelup.qm import label
from levelup.train.loop import TrainConfig, fit, torchani_groups
from levelup.transfer.kerneldelta import fit_kernel_delta
from levelup.transfer.recipe import finetune
from levelup.transfer.selfenergies import refit_self_energies
from levelup.transfer.surgery import freeze

LOW, HIGH = "HF/STO-3G", "CISD/cc-pVDZ"
REGIONS = {"all": (-np.inf, np.inf), "0.5-2.5": (0.5, 2.5), "0.9-5.0": (0.9, 5.0),
           "0.5-0.9": (0.5, 0.9)}
REGION_NOTES = {
    "all": "all 451 geometries, 0.50-5.00 Angstrom",
    "0.5-2.5": "0.5 <= r <= 2.5 Angstrom: the bound region",
    "0.9-5.0": "0.9 <= r <= 5.0 Angstrom: the range the training points span",
    "0.5-0.9": "0.5 <= r <= 0.9 Angstrom: no training point (extrapolation)",
}


def h2_scan() -> Database:
    """The tutorial's 451 H2 geometries: atom 0 at the origin, atom 1 at (0, 0, r), r in
    0.50, 0.51, ..., 5.00 Angstrom (exactly the tutorial's ``np.arange(0.5, 5.01, 0.01)``)."""
    xyz = np.zeros((451, 2, 3))
    xyz[:, 1, 2] = np.arange(0.5, 5.01, 0.01)
    return Database.from_numpy(coordinates=xyz, species=[1, 1])


def tutorial_split(db: Database) -> tuple[Database, Database]:
    """The tutorial's 12 high-level points: every 40th geometry; of those, every 10th validates
    (r = 0.5, 4.5 Angstrom) and the other 10 train (r = 0.9, 1.3, ..., 4.1, 4.9)."""
    twelve = db[::40]
    return twelve[np.arange(len(twelve)) % 10 != 0], twelve[::10]


def run_h2_study(out: str | Path, *, seed: int = 0, cache: Any = None, progress: bool = True,
                 log: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    """Run the study; write plots, ``metrics.json`` and ``report.md`` to ``out``.

    Returns the contents of ``metrics.json``. ``seed`` drives every random choice (weight
    initialisation, validation split of the pre-training, batch order, anchor draws).
    """
    import torch

    out = Path(out)
    # networks this small train fastest on one thread: intra-op parallelism costs more than it
    # gains at a few hundred molecules per step (and oversubscribes a busy machine)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(out, seed, cache, progress, log)
    finally:
        torch.set_num_threads(threads)


def _run(out: Path, seed: int, cache: Any, progress: bool,
         log: Callable[[str], None]) -> dict[str, Any]:
    from levelup.report import markdown as report
    from levelup.report import plots as plot
    from levelup.report.metrics import region_stats

    times: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        times[name] = round(now - clock, 2)
        clock = now
        log(f"{name}: {times[name]:.1f} s")

    db = h2_scan()
    db = label(db, LOW, cache=cache, progress=progress)
    db = label(db, HIGH, cache=cache, progress=progress)
    lap("labels")
    train, val = tutorial_split(db)

    pretrained = ANIModel(["H"], seed=seed)
    history_pre = fit(pretrained, db, property=LOW, config=TrainConfig(seed=seed),
                      progress=progress)
    pretrained.save(out / "ani-hf.pt", metadata={"level": LOW, "trained_on": "451 H2 geometries"})
    lap("pre-training")

    transfer, choice = finetune(pretrained, train, val, property=HIGH, anchors=db,
                                progress=progress)
    transfer.save(out / "ani-transfer.pt", metadata={"level": HIGH, "recipe": "linear"})
    lap("transfer")

    # the tutorial's protocol, as MLatom runs it (what levelup.compat.mlatom does): a model
    # pre-trained with MLatom's recipe (batch 8, AdamW on the weights, plain SGD on the biases),
    # first and last Linear layers frozen, self energies refit, learning rate 1e-4, fresh
    # optimizer. (Fine-tuned from the default-recipe model above instead, whose biases AdamW
    # trained, it extrapolates far worse below 0.9 Angstrom: bench_tutorial_protocol.)
    tutorial = ANIModel(["H"], seed=seed)
    fit(tutorial, db, property=LOW, progress=progress, config=TrainConfig.mlatom(seed=seed),
        param_groups=torchani_groups(tutorial))
    freeze(tutorial, [0, -1])
    refit_self_energies(tutorial, train, HIGH)
    fit(tutorial, train, val, property=HIGH, progress=progress,
        config=TrainConfig.mlatom(learning_rate=1e-4, seed=seed),
        param_groups=torchani_groups(tutorial))
    lap("transfer (tutorial protocol)")

    scratch = ANIModel(["H"], seed=seed + 1)
    history_scratch = fit(scratch, train, val, property=HIGH, progress=progress,
                          config=TrainConfig(seed=seed))
    lap("scratch")

    delta = fit_kernel_delta(pretrained, train, val, high=HIGH, seed=seed)
    lap("delta")

    r = db.distance(0, 1)
    predictions = {
        "pretrained": pretrained.predict(db).energies,
        "transfer": transfer.predict(db).energies,
        "transfer (tutorial protocol)": tutorial.predict(db).energies,
        "scratch": scratch.predict(db).energies,
        "delta": delta.predict(db).energies,
    }
    hf, cisd = np.asarray(db.get(LOW)), np.asarray(db.get(HIGH))
    references = {name: (LOW if name == "pretrained" else HIGH) for name in predictions}
    stats = {name: region_stats(pred, hf if references[name] == LOW else cisd, r, REGIONS)
             for name, pred in predictions.items()}
    stats[f"{LOW} itself"] = region_stats(hf, cisd, r, REGIONS)
    references[f"{LOW} itself"] = HIGH

    r_train, r_val = train.distance(0, 1), val.distance(0, 1)
    curves = {HIGH: cisd, "ANI-HF (pre-trained)": predictions["pretrained"],
              "transfer (levelup)": predictions["transfer"],
              "transfer (tutorial protocol)": predictions["transfer (tutorial protocol)"],
              "scratch": predictions["scratch"], "delta": predictions["delta"], LOW: hf}
    points = {"training points": (r_train, np.asarray(train.get(HIGH))),
              "validation points": (r_val, np.asarray(val.get(HIGH)))}
    figures = {
        "energy_curves": plot.energy_curves(r, curves, points=points, relative_to=HIGH,
                                            ylim=(-60, 200),
                                            title="H2: CISD/cc-pVDZ from 12 points"),
        "errors": plot.error_curves(r, {k: v - cisd for k, v in predictions.items()
                                        if k != "pretrained"},
                                    regions={"no training point": (0.5, 0.9)},
                                    marks={"training points": r_train}),
        "parity": plot.parity(cisd, {k: v for k, v in predictions.items()
                                     if k != "pretrained"}, reference_label=HIGH),
        "learning_curves": plot.learning_curves({"pre-training (HF)": history_pre,
                                                 "scratch": history_scratch}),
    }
    notes = [
        "transfer (levelup): levelup's default recipe (levelup.transfer.linear.LinearRecipe): "
        "the output layers refitted by one linear solve, the strengths of a force anchor on the "
        "451 pre-training geometries, a smoothness prior on the correction and a ridge chosen "
        "by 5-fold cross-validation over the 12 CISD points; " + choice.summary() + ".",
        "transfer (tutorial protocol): MLatom's tutorial as MLatom trains (pre-trained on HF "
        "with MLatom's recipe, TrainConfig.mlatom() with torchani_groups), layers [0, 6] frozen, "
        "learning rate 1e-4; its time includes that pre-training.",
        "delta: kernel ridge regression of CISD - ANI-HF on inverse distances "
        "(levelup.transfer.kerneldelta), hyperparameters by cross-validation over the same 12 points, "
        "added to ANI-HF.",
        f"pre-trained model: {len(history_pre.epoch)} epochs.",
    ]
    report.write_run_folder(
        out, title="H2: transfer learning from HF/STO-3G to CISD/cc-pVDZ", metrics=stats,
        figures=figures, notes=notes, references=references, regions=REGION_NOTES,
        extra={"seed": seed, "times_s": times},
        intro="MLatom's transfer-learning tutorial run by levelup: 451 H2 geometries, an ANI "
              "model pre-trained on HF/STO-3G and transferred to CISD/cc-pVDZ from 12 points "
              "(10 train, 2 validate). Errors in kcal/mol.")
    import json

    return json.loads((out / "metrics.json").read_text())
