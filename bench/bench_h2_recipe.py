"""Benchmark (issue 12): the default transfer recipe on the H2 tutorial itself, seeds 0, 1, 2.

Pre-training: default ``TrainConfig(seed)`` on the 451 HF/STO-3G energies (the models
bench/bench_transfer_suite.py caches in bench/_work/suite_models/ are reused when present).
Transfer: ``finetune`` on the tutorial's 12 CISD/cc-pVDZ points (10 train + 2 validate, pooled
by the cross-validation) with ``LinearRecipe(seed)`` (selection "one-se", the default) and
``LinearRecipe(seed, selection="min")``. Reported: RMSE over all 451 points and where there is no
training point (0.5-0.9 Angstrom), the norm of the change of the output weights, and the bond
length an ASE BFGS optimisation from 1.1 Angstrom finds (fmax 1e-4 eV/Angstrom; CISD/cc-pVDZ
minimum 0.7605 Angstrom from a spline of the labels).

    .venv/bin/python bench/bench_h2_recipe.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from results import write_section  # noqa: E402

import levelup  # noqa: E402
from levelup.study.tutorial import tutorial_split  # noqa: E402
from levelup.transfer.outputlayer import parameters  # noqa: E402
from levelup.units import HARTREE_TO_KCALMOL as KCAL  # noqa: E402

LOW, HIGH = "HF/STO-3G", "CISD/cc-pVDZ"


def bond_length(model) -> float:
    from ase import Atoms
    from ase.optimize import BFGS

    from levelup.ase import LevelupCalculator

    atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 1.1]])
    atoms.calc = LevelupCalculator(model)
    converged = BFGS(atoms, logfile=None).run(fmax=1e-4, steps=200)
    return atoms.get_distance(0, 1) if converged else float("nan")


def main() -> None:
    torch.set_num_threads(1)
    db = levelup.Database.load(HERE / "transfer_suite" / "data" / "h2-tutorial.h5")
    train, val = tutorial_split(db)
    r = np.asarray(db.distance(0, 1))
    ref = np.asarray(db.get(HIGH))
    rows = []
    for seed in (0, 1, 2):
        cached = HERE / "_work" / "suite_models" / f"h2-tutorial_seed{seed}_default.pt"
        if cached.exists():
            pre = levelup.load_model(cached)
        else:
            pre = levelup.ANIModel(["H"], seed=seed)
            levelup.fit(pre, db, property=LOW, config=levelup.TrainConfig(seed=seed),
                        progress=False)
        for selection in ("one-se", "min"):
            model, choice = levelup.finetune(pre, train, val, property=HIGH, anchors=db,
                                             recipe=levelup.LinearRecipe(seed=seed,
                                                                         selection=selection))
            err = (model.predict(db).energies - ref) * KCAL
            short = r < 0.9
            rows.append((seed, selection, float(np.sqrt(np.mean(err ** 2))),
                         float(np.sqrt(np.mean(err[short] ** 2))),
                         float((parameters(model) - parameters(pre)).norm()),
                         bond_length(model), choice.seconds))
            print(rows[-1], flush=True)
    body = ["RMSE vs CISD/cc-pVDZ (kcal/mol) of the default recipe on the tutorial's 12 points; "
            "|dw|: norm of the change of the output layers' weights (the pre-trained weights' "
            "norm is about 0.45); bond length: BFGS from 1.1 Angstrom (nan: not converged in "
            "200 steps); seconds: the transfer step, one thread.", "",
            "| seed | selection | RMSE all | RMSE 0.5-0.9 | abs(dw) | bond length (A) | seconds |",
            "|---|---|---|---|---|---|---|"]
    body += [f"| {s} | {sel} | {a:.3f} | {b:.2f} | {w:.2f} | {bl:.4f} | {t:.1f} |"
             for s, sel, a, b, w, bl, t in rows]
    for selection in ("one-se", "min"):
        values = [a for _, sel, a, *_ in rows if sel == selection]
        body.append("")
        body.append(f"{selection}: median RMSE over all 451 points {np.median(values):.3f} "
                    f"({min(values):.3f}-{max(values):.3f}) kcal/mol.")
    write_section("h2-recipe", "The default transfer recipe on the H2 tutorial (issue 12)",
                  "\n".join(body), "python bench/bench_h2_recipe.py")


if __name__ == "__main__":
    main()
