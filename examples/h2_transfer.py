"""H2 from HF/STO-3G to CISD/cc-pVDZ with levelup's own API: the study of MLatom's
transfer-learning tutorial (examples/mlatom_tutorial.py runs the tutorial's code), step by step.

1. 451 H2 geometries, r = 0.50 ... 5.00 Angstrom;
2. energies at HF/STO-3G and CISD/cc-pVDZ from PySCF (cached: a second run computes nothing);
3. an ANI model pre-trained on all 451 HF energies;
4. transfer to CISD from the tutorial's 12 points with levelup's default recipe (the output
   layers refitted by one linear solve, its prior strengths chosen by cross-validation over the
   12 points);
5. two baselines on the same 12 points: the same network trained from scratch (10 train, 2
   validate, as the tutorial picks them), and delta-learning (kernel ridge regression of CISD
   minus the pre-trained model, hyperparameters by cross-validation);
6. a run folder: the models, energy curves, errors along r, a parity plot, learning curves,
   metrics.json and report.md (errors in kcal/mol over all points and per region).

Run it:  python examples/h2_transfer.py --out runs/h2_transfer  (a few minutes on one core;
``--quick`` trains for a few epochs only, to check the plumbing). ``levelup demo`` runs the same
study from the command line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import levelup
from levelup.report import plots as plot
from levelup.report.learning import learning_curves
from levelup.report.markdown import write_run_folder
from levelup.report.metrics import region_stats
from levelup.transfer.kerneldelta import fit_kernel_delta
from levelup.transfer.recipe import finetune

LOW, HIGH = "HF/STO-3G", "CISD/cc-pVDZ"
# where the errors are measured (H-H distance, Angstrom); below 0.9 there is no training point
REGIONS = {"all": (0.5, 5.0), "0.5-2.5": (0.5, 2.5), "0.9-5.0": (0.9, 5.0), "0.5-0.9": (0.5, 0.9)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/h2_transfer", help="run folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    parser.add_argument("--cache", default=None, help="label cache file (default: the user's)")
    parser.add_argument("--quick", action="store_true", help="a few epochs only (for tests)")
    args = parser.parse_args(argv)
    out, seed = Path(args.out), args.seed
    # networks this small train fastest on one thread
    torch.set_num_threads(1)

    # 1-2. geometries and labels (Angstrom in, Hartree out)
    xyz = np.zeros((451, 2, 3))
    xyz[:, 1, 2] = np.arange(0.5, 5.01, 0.01)
    db = levelup.Database.from_numpy(coordinates=xyz, species=[1, 1])
    db = levelup.label(db, LOW, cache=args.cache)
    db = levelup.label(db, HIGH, cache=args.cache)
    r = db.distance(0, 1)

    # the tutorial's 12 CISD points: every 40th geometry; every 10th of those validates
    twelve = db[::40]
    train = twelve[np.arange(len(twelve)) % 10 != 0]  # r = 0.9, 1.3, ..., 4.1, 4.9
    validation = twelve[::10]  # r = 0.5, 4.5

    # training lengths: the real study, or a few epochs to check that everything runs
    config = levelup.TrainConfig(seed=seed, max_epochs=10 if args.quick else 10_000)

    # 3. pre-train on HF (a fifth of the 451 points, drawn with the seed, validates)
    pretrained = levelup.ANIModel(["H"], seed=seed)
    history_hf = levelup.fit(pretrained, db, property=LOW, config=config)
    pretrained.save(out / "ani-hf.pt", metadata={"level": LOW})

    # 4. transfer: refit the output layers by one linear solve; how strongly the pre-trained
    # forces are kept where CISD says nothing (anchors: the 451 geometries), how smooth the
    # correction is and the ridge are chosen by 5-fold cross-validation over the 12 points
    transfer, choice = finetune(pretrained, train, validation, property=HIGH, anchors=db,
                                recipe=levelup.LinearRecipe(seed=seed))
    print(choice.summary())
    transfer.save(out / "ani-cisd-transfer.pt", metadata={"level": HIGH})

    # 5. baselines on the same 12 points
    scratch = levelup.ANIModel(["H"], seed=seed + 1)
    history_scratch = levelup.fit(scratch, train, validation, property=HIGH, config=config)
    scratch.save(out / "ani-cisd-scratch.pt", metadata={"level": HIGH})
    delta = fit_kernel_delta(pretrained, train, validation, high=HIGH, seed=seed)
    delta.correction.save(out / "delta-correction.npz", metadata={"level": f"{HIGH} - ANI-HF"})

    # 6. errors (kcal/mol) and the run folder
    hf, cisd = np.asarray(db.get(LOW)), np.asarray(db.get(HIGH))
    energies = {name: model.predict(db).energies for name, model in
                [("pretrained", pretrained), ("transfer", transfer), ("scratch", scratch),
                 ("delta", delta)]}
    stats = {"pretrained": region_stats(energies["pretrained"], hf, r, REGIONS)}
    stats |= {name: region_stats(energies[name], cisd, r, REGIONS)
              for name in ("transfer", "scratch", "delta")}
    stats[f"{LOW} itself"] = region_stats(hf, cisd, r, REGIONS)
    references = {name: HIGH for name in stats} | {"pretrained": LOW}

    at_cisd = {name: energies[name] for name in ("transfer", "scratch", "delta")}
    points = {"training points": (train.distance(0, 1), train.get(HIGH)),
              "validation points": (validation.distance(0, 1), validation.get(HIGH))}
    figures = {
        "energy_curves": plot.energy_curves(
            r, {HIGH: cisd, LOW: hf, "ANI-HF (pre-trained)": energies["pretrained"], **at_cisd},
            points=points, relative_to=HIGH, ylim=(-60, 200)),
        "errors": plot.error_curves(r, {name: e - cisd for name, e in at_cisd.items()},
                                    regions={"no training point": (0.5, 0.9)}),
        "parity": plot.parity(cisd, at_cisd, reference_label=HIGH),
        "learning_curves": learning_curves({"pre-training (HF)": history_hf,
                                                 "scratch": history_scratch}),
    }
    write_run_folder(out, title="H2: transfer learning from HF/STO-3G to CISD/cc-pVDZ",
                     metrics=stats, figures=figures, references=references,
                     extra={"seed": seed, "quick": args.quick},
                     intro="Written by examples/h2_transfer.py: an ANI model pre-trained on 451 "
                           "HF/STO-3G energies of H2, transferred to CISD/cc-pVDZ from 12 points "
                           "(10 train, 2 validate), beside scratch and delta-learning baselines.",
                     notes=["--quick: a few epochs only; these errors say nothing about the "
                            "methods"] if args.quick else [],
                     regions={name: f"{lo} <= r <= {hi} Angstrom" for name, (lo, hi) in
                              REGIONS.items()})

    print(f"{'model':22s} {'vs':13s} {'RMSE all':>9s} {'0.9-5.0':>8s} {'0.5-2.5':>8s}  kcal/mol")
    for name, by_region in stats.items():
        print(f"{name:22s} {references[name]:13s} {by_region['all']['rmse']:9.2f} "
              f"{by_region['0.9-5.0']['rmse']:8.2f} {by_region['0.5-2.5']['rmse']:8.2f}")
    print(f"run folder: {out}/report.md")
    return stats


if __name__ == "__main__":
    main()
