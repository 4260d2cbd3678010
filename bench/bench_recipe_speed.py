"""Benchmark (issue 12, item 6): wall time of the transfer step, levelup's default recipe
(``LinearRecipe()``: linear solve + cross-validation over the strengths) side by side with the
previous default (``TransferRecipe()``: every layer by AdamW under fixed priors, then L-BFGS),
one thread, pre-training excluded, on:

* the H2 tutorial (12 points, 451 anchors; labels from tests/data/h2_labels.npz);
* water from bench/transfer_suite (HF/STO-3G -> CCSD(T)/cc-pVDZ, 20 points: every 15th
  geometry, as the tutorial picks; 300 anchors);
* acetone, 10 atoms and 3 elements, the issue's size limit: 300 Cartesian distortions (+-0.08
  Angstrom, seeded) labelled here with PySCF at HF/STO-3G (pre-training) and 32 of them at
  HF/6-31G* with forces (the "high" level only sets the timing's data; cached in
  bench/_work/speed_labels.sqlite). Energies only, then energies + forces.

The RMSE over every geometry is printed beside the time so a fast but wrong recipe shows.

    .venv/bin/python bench/bench_recipe_speed.py [--no-previous]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from results import write_section  # noqa: E402

import levelup  # noqa: E402
from levelup.study.tutorial import tutorial_split  # noqa: E402
from levelup.transfer.gradient import TransferRecipe  # noqa: E402
from levelup.transfer.linear import LinearRecipe  # noqa: E402
from levelup.transfer.recipe import finetune  # noqa: E402
from levelup.units import HARTREE_TO_KCALMOL as KCAL  # noqa: E402

WORK = HERE / "_work"


def h2():
    db = levelup.Database.load(HERE / "transfer_suite" / "data" / "h2-tutorial.h5")
    train, val = tutorial_split(db)
    return db, train, val, "HF/STO-3G", "CISD/cc-pVDZ", None


def water():
    db = levelup.Database.load(HERE / "transfer_suite" / "data" / "water.h5")
    few = db[np.arange(0, len(db), 15)]
    keep = np.arange(len(few)) % 5 != 0
    return db, few[keep], few[~keep], "HF/STO-3G", "CCSD(T)/cc-pVDZ", None


def acetone():
    from ase.build import molecule

    atoms = molecule("CH3COCH3")
    rng = np.random.default_rng(10)
    xyz = atoms.positions[None] + rng.uniform(-0.08, 0.08, (300, len(atoms), 3))
    db = levelup.Database.from_numpy(coordinates=xyz, species=atoms.numbers)
    cache = WORK / "speed_labels.sqlite"
    WORK.mkdir(exist_ok=True)
    db = levelup.label(db, "HF/STO-3G", cache=cache, workers=1, progress=False)
    few = levelup.label(db[np.arange(0, 300, 300 // 32)[:32]], "HF/6-31G*", forces=True,
                        cache=cache, workers=1, progress=False)
    keep = np.arange(len(few)) % 5 != 0
    return db, few[keep], few[~keep], "HF/STO-3G", "HF/6-31G*", few


def measure(label: str, make, previous: bool) -> list[tuple]:
    """Rows (system, recipe, seconds, ratio, RMSE, over what) of one system."""
    db, train, val, low, high, with_forces = make()
    pre = levelup.ANIModel(sorted(set(db.elements)), seed=0)
    levelup.fit(pre, db, property=low, config=levelup.TrainConfig(seed=0), progress=False)
    scored = with_forces if with_forces is not None else db
    ref = np.asarray(scored.get(high))
    recipes = [("LinearRecipe() (default)", LinearRecipe(), None)]
    if with_forces is not None:
        recipes.append(("LinearRecipe() + forces", LinearRecipe(), f"forces/{high}"))
    if previous:
        recipes.append(("TransferRecipe() (previous default)", TransferRecipe(), None))
    rows, base = [], None
    where = "the 32 high-level points" if with_forces is not None else "all geometries"
    for name, recipe, forces in recipes:
        start = time.perf_counter()
        model, _ = finetune(pre, train, val, property=high, anchors=db, recipe=recipe,
                            forces=forces, progress=False)
        seconds = time.perf_counter() - start
        base = base or seconds
        err = float(np.sqrt(np.mean((model.predict(scored).energies - ref) ** 2)) * KCAL)
        rows.append((label, name, seconds, seconds / base, err, where))
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-previous", action="store_true", help="skip TransferRecipe()")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for label, make in (("H2 tutorial, 12 points", h2), ("water, 20 points", water),
                        ("acetone (10 atoms), 32 points", acetone)):
        rows += measure(label, make, not args.no_previous)
    body = ["Wall time of the transfer step (one thread; pre-training excluded) and, as a "
            "sanity check, the RMSE it reaches (kcal/mol; acetone: over its 32 HF/6-31G* "
            "points, which it was fitted on, so a training error). Ratio: time / the default's "
            "time on the same system.", "",
            "| system | recipe | seconds | ratio | RMSE | over |", "|---|---|---|---|---|---|"]
    body += [f"| {s} | {n} | {t:.1f} | {r:.1f}x | {e:.3f} | {w} |" for s, n, t, r, e, w in rows]
    write_section("recipe-speed", "Transfer recipe wall time: default vs previous default "
                  "(issue 12, item 6)", "\n".join(body),
                  "python bench/bench_recipe_speed.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
