"""Benchmark (issue 12, exploratory): transfer as one linear least-squares problem in the output
layer, with the priors' strengths chosen by k-fold cross-validation, side by side with the default
recipe (``TransferRecipe()``) and plain fine-tuning (every layer, no priors).

Why it can work: with every layer but the last frozen, a molecule's energy is linear in the
output layers' weights (E = sum_i w_s(i) . h_i + b_s(i), h_i the last hidden activations of atom
i), and so are its forces (F = -sum_i w . dh_i/dx). The energy loss on the few high-level points,
the ForceAnchor (force change at the anchors) and the SmoothCorrection (finite-difference
curvature of the force change along internal directions) are then all quadratic in the change of
those weights: one linear solve gives the optimum, in milliseconds, so k-fold cross-validation
over a grid of prior strengths is cheap. The solver lives here, not in the library, until the
suite (bench/transfer_suite) says whether it should.

Systems: the H2 tutorial (HF/STO-3G -> CISD/cc-pVDZ, tests/data/h2_labels.npz, the tutorial's
12 points; all 451 scored) and water (300 random stretches and bends, r 0.8-1.4 Angstrom, angle
80-140 degrees, HF/STO-3G -> MP2/cc-pVDZ labelled here with PySCF, 20 points every 15th: 16 train
+ 4 validation for the recipes, all 20 in the cross-validation of the linear solve; all 300
scored). Pre-training: default TrainConfig on all low-level energies, one torch thread.

    .venv/bin/python bench/bench_linear_transfer.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import copy
import itertools
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.autograd.forward_ad as fwad

sys.path.insert(0, str(Path(__file__).parent))
from results import write_section  # noqa: E402

import levelup  # noqa: E402
from levelup.study.tutorial import tutorial_split  # noqa: E402
from levelup.transfer.gradient import TransferRecipe  # noqa: E402
from levelup.transfer.priors import internal_directions  # noqa: E402
from levelup.transfer.recipe import finetune  # noqa: E402
from levelup.transfer.selfenergies import refit_self_energies  # noqa: E402
from levelup.units import HARTREE_TO_KCALMOL as KCAL  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: (anchor strength Angstrom^2, smoothness Angstrom^4, L2 on the weight change) searched by CV
GRID = list(itertools.product([0, 1e-4, 1e-3, 1e-2, 1e-1], [0, 1e-5, 1e-4, 1e-3, 1e-2],
                              [1e-8, 1e-6, 1e-4]))


def _summed_features(model, species, x):
    """(molecules, params): per element, the summed last-hidden activations and the atom count
    (the output layer's weight and bias columns)."""
    m, a = species.shape
    aev = model.compute_aev(species, x)
    flat_s, flat = species.reshape(-1), aev.reshape(-1, aev.shape[-1])
    blocks = []
    for index, name in enumerate(model.symbols):
        mask = (flat_s == index).to(flat.dtype).unsqueeze(-1)
        hidden = model.networks[name][:-1](flat) * mask  # (molecules * atoms, hidden)
        blocks += [hidden.reshape(m, a, -1).sum(1), mask.reshape(m, a).sum(1, keepdim=True)]
    return torch.cat(blocks, -1)


def features(model, species, xyz, derivatives=False):
    """Summed features (M, P) and, with ``derivatives``, their Cartesian derivatives (M, 3A, P),
    per Angstrom, by forward-mode differentiation (one pass per coordinate)."""
    x0 = xyz.to(model.dtype)
    with torch.no_grad():
        if not derivatives:
            return _summed_features(model, species, x0).double()
        columns = []
        with fwad.dual_level():
            for k in range(3 * species.shape[1]):
                tangent = torch.zeros_like(x0)
                tangent[:, k // 3, k % 3] = 1.0
                primal, d = fwad.unpack_dual(_summed_features(model, species, fwad.make_dual(
                    x0, tangent)))
                columns.append(d)
    return primal.double(), torch.stack(columns, 1).double()


def output_weights(model) -> torch.Tensor:
    return torch.cat([torch.cat([model.networks[n][-1].weight.reshape(-1),
                                 model.networks[n][-1].bias.reshape(-1)]) for n in model.symbols])


def set_output_weights(model, w: torch.Tensor) -> None:
    offset = 0
    with torch.no_grad():
        for name in model.symbols:
            layer = model.networks[name][-1]
            for p in (layer.weight, layer.bias):
                p.copy_(w[offset:offset + p.numel()].reshape(p.shape).to(p.dtype))
                offset += p.numel()


def design(model, few, prop, anchors, step=0.02, directions=2, seed=0):
    """The quadratic problem's pieces: energy rows X (n, P) and residuals y (n,) Hartree, atom
    counts, force rows at the anchors D (M, 3A, P), curvature rows S (M * directions, 3A, P)."""
    species = model.species_index(few.species)
    xyz = torch.from_numpy(np.array(few.coordinates))
    with torch.no_grad():
        y = torch.from_numpy(np.array(few.get(prop))) - model(species, xyz).double()
    a_species = model.species_index(anchors.species)
    a_xyz = torch.from_numpy(np.array(anchors.coordinates))
    _, d = features(model, a_species, a_xyz, derivatives=True)
    generator = torch.Generator().manual_seed(seed)
    real = (a_species >= 0).unsqueeze(-1)
    s = [(features(model, a_species, a_xyz + step * internal_directions(a_xyz, real, generator),
                   derivatives=True)[1] - d) / step for _ in range(directions)]
    return features(model, species, xyz), y, (species >= 0).sum(1).double(), d, torch.cat(s)


def solve(x, y, atoms, d, s, strengths, rows=None):
    """Weight change minimising the energy loss (kcal/mol^2, weighted 1/atoms as in training) +
    anchor * |dF|^2 + smoothness * |curvature of dF|^2 + l2 * |dw|^2."""
    anchor, smooth, l2 = strengths
    w = atoms.rsqrt()
    if rows is not None:
        x, y, w = x[rows], y[rows], w[rows]
    xw = x * w[:, None]
    dm, sm = d.reshape(-1, d.shape[-1]), s.reshape(-1, s.shape[-1])
    lhs = (xw.T @ xw / len(y) + anchor * dm.T @ dm / (dm.shape[0] / 3)
           + smooth * sm.T @ sm / s.shape[0]) * KCAL**2 + l2 * torch.eye(x.shape[1],
                                                                         dtype=x.dtype)
    return torch.linalg.solve(lhs, xw.T @ (y * w) * KCAL**2 / len(y))


def cross_validate(x, y, atoms, d, s, folds=5, seed=0):
    """(CV RMSE kcal/mol, strengths) of the best grid point: k-fold over the few points."""
    order = np.random.default_rng(seed).permutation(len(y))
    parts = np.array_split(order, min(folds, len(y)))
    best = None
    for strengths in GRID:
        sq = []
        for held in parts:
            rows = torch.from_numpy(np.setdiff1d(order, held))
            dw = solve(x, y, atoms, d, s, strengths, rows)
            sq.append(((x[held] @ dw - y[held]) * KCAL).pow(2))
        rmse = float(torch.cat(sq).mean().sqrt())
        if best is None or rmse < best[0]:
            best = (rmse, strengths)
    return best


def linear_transfer(pretrained, few, prop, anchors, seed=0):
    model = copy.deepcopy(pretrained)
    refit_self_energies(model, few, prop)
    x, y, atoms, d, s = design(model, few, prop, anchors, seed=seed)
    cv, strengths = cross_validate(x, y, atoms, d, s, seed=seed)
    set_output_weights(model, output_weights(model).double() + solve(x, y, atoms, d, s, strengths))
    return model, cv, strengths


def h2_system():
    ref = np.load(ROOT / "tests" / "data" / "h2_labels.npz")
    xyz = np.zeros((451, 2, 3))
    xyz[:, 1, 2] = ref["r"]
    db = levelup.Database.from_numpy(coordinates=xyz, species=[1, 1])
    db.set("HF/STO-3G", ref["hf"], level="HF/STO-3G")
    db.set("CISD/cc-pVDZ", ref["cisd"], level="CISD/cc-pVDZ")
    train, val = tutorial_split(db)
    return db, train, val, "HF/STO-3G", "CISD/cc-pVDZ"


def water_system():
    rng = np.random.default_rng(123)
    n = 300
    r1, r2 = rng.uniform(0.8, 1.4, n), rng.uniform(0.8, 1.4, n)
    angle = np.radians(rng.uniform(80, 140, n))
    xyz = np.zeros((n, 3, 3))
    xyz[:, 1, 0] = r1
    xyz[:, 2, 0], xyz[:, 2, 1] = r2 * np.cos(angle), r2 * np.sin(angle)
    db = levelup.Database.from_numpy(coordinates=xyz, species=[8, 1, 1])
    for level in ("HF/STO-3G", "MP2/cc-pVDZ"):
        db = levelup.label(db, level, progress=False, workers=1)
    few = db[np.arange(0, n, 15)]
    keep = np.arange(len(few)) % 5 != 0
    return db, few[keep], few[~keep], "HF/STO-3G", "MP2/cc-pVDZ"


def suite_system(name: str):
    """A system of bench/transfer_suite (its stored labels), with the tutorial's protocol: every
    15th geometry, 4 of each 5 to train and 1 to validate."""
    db = levelup.Database.load(Path(__file__).parent / "transfer_suite" / "data" / f"{name}.h5")
    energies = [n for n, info in db.properties.items() if not info.per_atom]
    low, high = energies[0], energies[1]
    few = db[np.arange(0, len(db), 15)]
    keep = np.arange(len(few)) % 5 != 0
    return db, few[keep], few[~keep], low, high


def run(system, seed: int, with_default: bool) -> dict:
    db, train, val, low, high = system
    pre = levelup.ANIModel(sorted(set(db.elements)), seed=seed)
    levelup.fit(pre, db, property=low, config=levelup.TrainConfig(seed=seed), progress=False)
    ref = np.asarray(db.get(high))

    def rmse(model) -> float:
        return float(np.sqrt(np.mean((model.predict(db).energies - ref) ** 2)) * KCAL)

    few = levelup.Database.concatenate([train, val])
    out = {}
    t = time.perf_counter()
    model, cv, strengths = linear_transfer(pre, few, high, db, seed=seed)
    out["linear"] = (rmse(model), time.perf_counter() - t, f"CV {cv:.2f}, chose {strengths}")
    recipes = {"plain": TransferRecipe(anchor_strength=0, smoothness=0, polish_smoothness=0,
                                       polish_anchor_strength=0, seed=seed)}
    if with_default:
        recipes["default"] = TransferRecipe(seed=seed)
    for name, recipe in recipes.items():
        t = time.perf_counter()
        model, _ = finetune(pre, train, val, property=high, anchors=db, recipe=recipe,
                            progress=False)
        out[name] = (rmse(model), time.perf_counter() - t, "")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--no-default", action="store_true", help="skip the default recipe")
    parser.add_argument("--suite", nargs="+", metavar="SYSTEM", help="systems of "
                        "bench/transfer_suite instead (their stored labels; own section)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    systems = ([(name, lambda name=name: suite_system(name)) for name in args.suite] if args.suite
               else [("H2 tutorial, HF/STO-3G -> CISD/cc-pVDZ, 12 points", h2_system),
                     ("water, HF/STO-3G -> MP2/cc-pVDZ, 20 points", water_system)])
    for label, make in systems:
        system = make()
        if args.suite:
            label = f"{label}, {system[3]} -> {system[4]}, {len(system[1]) + len(system[2])} points"
        for seed in args.seeds:
            result = run(system, seed, not args.no_default)
            for name, (err, seconds, note) in result.items():
                rows.append((label, seed, name, err, seconds, note))
                print(label, seed, name, f"{err:.3f} kcal/mol, {seconds:.1f} s {note}", flush=True)
    body = ["RMSE over every geometry of the system (kcal/mol) and wall time of the transfer "
            "step (s, one thread; pre-training excluded). 'linear': output-layer weights by one "
            "linear solve, strengths of the force anchor, smoothness prior and L2 chosen by "
            "5-fold CV over the few points (75 grid points); 'plain': TransferRecipe with every "
            "prior off (every layer, AdamW, L-BFGS polish); 'default': TransferRecipe().", "",
            "| system | seed | transfer | RMSE | seconds | chosen |", "|---|---|---|---|---|---|"]
    body += [f"| {s} | {seed} | {n} | {e:.3f} | {t:.1f} | {note} |"
             for s, seed, n, e, t, note in rows]
    suite_name = "-suite" + ("" if args.suite == ["water", "hcn", "ammonia-inversion"]
                             else "-" + "-".join(args.suite)) if args.suite else ""
    write_section("linear-transfer" + suite_name,
                  "Linear output-layer transfer with CV-chosen priors (issue 12, exploratory"
                  + (", transfer-suite systems)" if args.suite else ")"), "\n".join(body),
                  "python bench/bench_linear_transfer.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
