"""Benchmark: delta-learning baselines on the H2 tutorial, neural (fit_delta) vs kernel ridge
regression (levelup.transfer.kerneldelta) (issue 12, item 5).

Run: .venv/bin/python bench/bench_delta.py [--seed 0] [--no-write]
Labels: tests/data/h2_labels.npz (the tutorial's 451 geometries at HF/STO-3G and CISD/cc-pVDZ,
no PySCF needed). High-level points: the tutorial's 10 training + 2 validation points. Each
correction is added either to HF/STO-3G itself or to an ANI model pre-trained on the 451 HF
energies (default TrainConfig, as the study does). Writes the "delta" section of
bench/RESULTS.md: RMSE (kcal/mol) against CISD over all 451 points, over 0.9-5.0 Angstrom (what
the training points span) and 0.5-0.9 (extrapolation), and each fit's time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from results import write_section  # noqa: E402

from levelup.data import Database  # noqa: E402
from levelup.model.ani import ANIModel  # noqa: E402
from levelup.study.tutorial import tutorial_split  # noqa: E402
from levelup.train.loop import TrainConfig, fit  # noqa: E402
from levelup.transfer.delta import fit_delta  # noqa: E402
from levelup.transfer.kerneldelta import fit_kernel_delta  # noqa: E402
from levelup.units import HARTREE_TO_KCALMOL  # noqa: E402

LABELS = Path(__file__).resolve().parents[1] / "tests" / "data" / "h2_labels.npz"
REGIONS = {"all": (0.0, 10.0), "0.9-5.0": (0.9, 5.0), "0.5-0.9": (0.5, 0.9)}


def scan() -> Database:
    with np.load(LABELS) as f:
        r, hf, cisd = f["r"], f["hf"], f["cisd"]
    xyz = np.zeros((len(r), 2, 3))
    xyz[:, 1, 2] = r
    db = Database.from_numpy(xyz, [1, 1])
    db.set("HF", hf)
    db.set("CISD", cisd)
    return db


def errors(db: Database, energies: np.ndarray) -> dict[str, float]:
    r = db.distance(0, 1)
    err = (energies - np.asarray(db.get("CISD"))) * HARTREE_TO_KCALMOL
    return {name: float(np.sqrt(np.mean(err[(r >= lo - 1e-9) & (r <= hi + 1e-9)] ** 2)))
            for name, (lo, hi) in REGIONS.items()}


def gaussian_process(db: Database, train: Database, val: Database, pooled: bool
                     ) -> tuple[np.ndarray, str]:
    """The alternative measured against KernelRidge + CV: scikit-learn's GP regression of CISD - HF
    on the same standardized inverse distances, Matern 3/2 (the kind CV picks) times a constant
    plus white noise, hyperparameters by marginal likelihood (5 restarts)."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
    from sklearn.preprocessing import StandardScaler

    fitted = Database.concatenate([train, val]) if pooled else train
    x = 1.0 / fitted.distance(0, 1)[:, None]
    y = np.asarray(fitted.get("CISD")) - np.asarray(fitted.get("HF"))
    scaler = StandardScaler().fit(x)
    kernel = ConstantKernel(1.0) * Matern(1.0, nu=1.5) + WhiteKernel(1e-6, (1e-12, 1e-2))
    gp = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gp.fit(scaler.transform(x), y)
    delta = gp.predict(scaler.transform(1.0 / db.distance(0, 1)[:, None]))
    return np.asarray(db.get("HF")) + delta, f"fitted kernel {gp.kernel_}"


def run(seed: int) -> tuple[list[dict], float]:
    """Every baseline for one seed: rows of (name, errors, fit seconds, notes)."""
    db = scan()
    train, val = tutorial_split(db)
    rows = []

    def kernel(name: str, base, pool: bool) -> None:
        t = time.perf_counter()
        model = fit_kernel_delta(base, train, val, high="CISD", low=None if base else "HF",
                                 seed=seed, pool_validation=pool)
        seconds = time.perf_counter() - t
        c = model.correction
        note = (f"{c.chosen['kind']}, alpha {c.chosen['alpha']:g}, length scale "
                f"{c.chosen['length_scale']:g}; LOO CV RMSE {c.cv_rmse_kcalmol:.2f} on "
                f"{c.info['points']} points")
        if "validation_rmse_kcalmol" in c.info:
            note += f"; validation RMSE {c.info['validation_rmse_kcalmol']:.2f}"
        rows.append({"name": name, **errors(db, model.predict(db).energies), "s": seconds,
                     "note": note})

    def neural(name: str, base) -> None:
        t = time.perf_counter()
        model, history = fit_delta(base, ANIModel(["H"], seed=seed + 2), train, val, high="CISD",
                                   low=None if base else "HF", config=TrainConfig(seed=seed),
                                   progress=False)
        rows.append({"name": name, **errors(db, model.predict(db).energies),
                     "s": time.perf_counter() - t, "note": f"{len(history.epoch)} epochs"})

    kernel("kernel delta on HF/STO-3G (10 + 2 points pooled)", None, True)
    kernel("kernel delta on HF/STO-3G (10 points; 2 validate)", None, False)
    for pooled in (True, False):
        t = time.perf_counter()
        energies, note = gaussian_process(db, train, val, pooled)
        rows.append({"name": "GaussianProcessRegressor on HF/STO-3G "
                     + ("(10 + 2 pooled)" if pooled else "(10 points)"), **errors(db, energies),
                     "s": time.perf_counter() - t, "note": note})
    neural("neural delta on HF/STO-3G", None)
    t = time.perf_counter()
    pretrained = ANIModel(["H"], seed=seed)
    fit(pretrained, db, property="HF", config=TrainConfig(seed=seed), progress=False)
    pretrain_s = time.perf_counter() - t
    kernel("kernel delta on ANI-HF (10 + 2 pooled; the study's default)", pretrained, True)
    neural("neural delta on ANI-HF (the study's before)", pretrained)
    rows.append({"name": "HF/STO-3G itself", **errors(db, np.asarray(db.get("HF"))), "s": 0.0,
                 "note": ""})
    return rows, pretrain_s


def main(argv: list[str] | None = None) -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    rows, pretrain_s = run(args.seed)
    lines = ["| model | RMSE all | RMSE 0.9-5.0 | RMSE 0.5-0.9 | fit s | chosen / notes |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['name']} | {row['all']:.3g} | {row['0.9-5.0']:.3g} | "
                     f"{row['0.5-0.9']:.3g} | {row['s']:.1f} | {row['note']} |")
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    body = (
        "RMSE vs CISD/cc-pVDZ in kcal/mol over the tutorial's 451 H2 geometries (labels from "
        "tests/data/h2_labels.npz), from the tutorial's 12 CISD points (r = 0.9, 1.3, ..., 4.1, "
        f"4.9 train; 0.5 and 4.5 validate), seed {args.seed}, torch on 1 thread. Kernel delta: "
        "`fit_kernel_delta` (KernelRidge on standardized inverse distances, kernel kind, alpha and "
        "length scale chosen by leave-one-out cross-validation over 3 kinds x 5 alphas x 9 "
        "length scales); neural delta: `fit_delta` with an ANI network and the default "
        "TrainConfig; GaussianProcessRegressor: the alternative measured (Matern 3/2, hyperparameters "
        "by marginal likelihood, see `gaussian_process`). 'pooled': the 2 validation points join "
        "the fit and the cross-validation. "
        f"ANI-HF pre-training (default TrainConfig, all 451 HF energies): {pretrain_s:.1f} s, "
        "not counted in the fit times. For comparison, transfer learning: 0.5-0.8 kcal/mol all "
        "points (h2-study and study-rerun sections).\n\n" + "\n".join(lines) + "\n\n"
        f"Whole benchmark {time.perf_counter() - start:.0f} s (machine shared with other jobs; "
        f"load average at the end {load})."
    )
    print(body)
    if not args.no_write:
        write_section("delta", "H2 delta-learning baselines: kernel ridge regression vs neural "
                      "(issue 12)", body, "python bench/bench_delta.py --seed " + str(args.seed))


if __name__ == "__main__":
    main()
