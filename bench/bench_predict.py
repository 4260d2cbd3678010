"""Benchmark: prediction speed (energies, forces, Hessians), levelup next to TorchANI 2.2.4.

Run: .venv/bin/python bench/bench_predict.py  (--quick: 1,000 geometries, one repeat, for a smoke
test; it still writes the section)
Writes its section of bench/RESULTS.md. The TorchANI column needs bench/.mlatom-venv (made by
bench/mlatom_env.sh); without it only levelup's numbers are written.

Workloads: the tutorial's 451 H2 geometries (one H network, ANI-1x size) and 10,000 distorted
water and methanol geometries (H, C, O networks of ANI-1x size), batches of 1024 grouped by
molecule size, float32 networks, one torch thread. Both codes get the same weights and the
same batches; each time is the least CPU time of a few repeats (CPU time of one thread is
little disturbed by other jobs sharing the machine, unlike wall time).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from results import write_section  # noqa: E402

from levelup.data import Database  # noqa: E402
from levelup.model.ani import ANIModel, Ensemble  # noqa: E402
from levelup.study.tutorial import h2_scan  # noqa: E402

HERE = Path(__file__).parent
TORCHANI_PYTHON = HERE / ".mlatom-venv" / "bin" / "python"
REPEATS = 1 if "--quick" in sys.argv else 5
N_MIXED = 1000 if "--quick" in sys.argv else 10_000
WATER = np.array([[0.0, 0.0, 0.117], [0.0, 0.757, -0.467], [0.0, -0.757, -0.467]])
METHANOL = np.array([[-0.046, 0.663, 0.0], [-0.046, -0.758, 0.0], [-1.086, 0.975, 0.0],
                     [0.438, 1.079, 0.889], [0.438, 1.079, -0.889], [0.873, -1.049, 0.0]])


def water_methanol(n: int = 10_000, seed: int = 0) -> Database:
    rng = np.random.default_rng(seed)
    half = n // 2
    xyz = np.zeros((n, 6, 3))
    xyz[:half, :3] = WATER + rng.normal(scale=0.08, size=(half, 3, 3))
    xyz[half:] = METHANOL + rng.normal(scale=0.08, size=(n - half, 6, 3))
    species = np.zeros((n, 6), dtype=int)
    species[:half, :3] = [8, 1, 1]
    species[half:] = [6, 8, 1, 1, 1, 1]
    return Database(species, xyz)


def best_of(fn, repeats=REPEATS):
    """Least CPU time (one thread, so CPU time ~ work, little disturbed by other jobs)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t)
    return best, out


def export(model: ANIModel | Ensemble, db: Database, work: str, forces: bool, data: dict) -> None:
    members = model.members if isinstance(model, Ensemble) else [model]
    data[f"{work}_symbols"] = np.array(members[0].symbols)
    data[f"{work}_members"] = len(members)
    data[f"{work}_forces"] = forces
    for k, m in enumerate(members):
        for s, net in m.networks.items():
            linears = [layer for layer in net if isinstance(layer, torch.nn.Linear)]
            data[f"{work}_m{k}_{s}_n"] = len(linears)
            for i, lin in enumerate(linears):
                data[f"{work}_m{k}_{s}_w{i}"] = lin.weight.detach().numpy()
                data[f"{work}_m{k}_{s}_b{i}"] = lin.bias.detach().numpy()
        data[f"{work}_m{k}_self"] = m.self_energies.numpy()
    # the same batches levelup makes: molecules grouped by size, in order of size
    species = members[0].species_index(db.species).numpy()
    sizes = np.unique(db.n_atoms)
    data[f"{work}_groups"] = len(sizes)
    order = []
    for g, size in enumerate(sizes):
        rows = np.flatnonzero(db.n_atoms == size)
        order.append(rows)
        data[f"{work}_species{g}"] = species[rows, :size]
        data[f"{work}_xyz{g}"] = db.coordinates[rows, :size]
    data[f"{work}_order"] = np.concatenate(order)


def main() -> None:
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    h2 = h2_scan()
    mixed = water_methanol(N_MIXED)
    se = {"H": -0.6, "C": -38.0, "O": -75.0}
    h_model = ANIModel(["H"], seed=0, self_energies=[-0.5])
    hco = ANIModel(["H", "C", "O"], seed=0, self_energies=se)
    ens = Ensemble([ANIModel(["H", "C", "O"], seed=s, self_energies=se) for s in range(8)])
    hess_db = mixed[-100:]  # 100 methanol geometries
    cases = [
        ("h2_e", "H2 scan, 451 geometries: energies", h_model, h2, False),
        ("h2_f", "H2 scan, 451 geometries: energies + forces", h_model, h2, True),
        ("wm_e", f"{N_MIXED:,} water/methanol: energies", hco, mixed, False),
        ("wm_f", f"{N_MIXED:,} water/methanol: energies + forces", hco, mixed, True),
        ("wm8_f", f"{N_MIXED:,} water/methanol, ensemble of 8: energies + forces", ens, mixed, True),
    ]
    data, ours = {"repeats": REPEATS}, {}
    for work, _label, model, db, forces in cases:
        seconds, pred = best_of(lambda m=model, d=db, f=forces: m.predict(d, forces=f))
        ours[work] = (seconds, pred.energies)
        export(model, db, work, forces, data)
    data["workloads"] = np.array([c[0] for c in cases])

    species = hco.species_index(mixed.species)
    xyz = torch.as_tensor(mixed.coordinates, dtype=torch.float32)
    order = np.argsort(mixed.n_atoms, kind="stable")

    def aev_only():
        for size in np.unique(mixed.n_atoms):
            rows = order[mixed.n_atoms[order] == size]
            for s in range(0, len(rows), 1024):
                r = rows[s:s + 1024]
                hco.compute_aev(species[r, :size], xyz[r, :size])

    t_aev, _ = best_of(aev_only)
    t_hess, _ = best_of(lambda: hco.predict(hess_db, hessians=True), repeats=1)

    theirs = {}
    note = ""
    if TORCHANI_PYTHON.exists():
        with tempfile.TemporaryDirectory() as tmp:
            inp, out = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
            for k in ("EtaR", "ShfR", "EtaA", "Zeta", "ShfA", "ShfZ", "Rcr", "Rca"):
                data[f"aev_{k}"] = np.array(getattr(hco.aev_params, k))
            np.savez(inp, **data)
            env = dict(os.environ)
            done = subprocess.run([str(TORCHANI_PYTHON), str(HERE / "_torchani_predict.py"),
                                   str(inp), str(out)], env=env, capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"the TorchANI side failed:\n{done.stderr[-3000:]}")
            with np.load(out) as f:
                for work, *_ in cases:
                    theirs[work] = (float(f[f"{work}_seconds"]), f[f"{work}_energies"])
    else:
        note = "\nTorchANI column empty: bench/.mlatom-venv not found (run bench/mlatom_env.sh).\n"

    lines = ["| workload | levelup CPU s | TorchANI 2.2.4 CPU s | TorchANI / levelup | max abs energy "
             "difference, Hartree |", "|---|---|---|---|---|"]
    for work, label, *_ in cases:
        t_ours, e_ours = ours[work]
        if work in theirs:
            t_theirs, e_theirs = theirs[work]
            diff = np.abs(e_ours[data[f"{work}_order"]] - e_theirs).max()
            lines.append(f"| {label} | {t_ours:.3f} | {t_theirs:.3f} | {t_theirs / t_ours:.2f} "
                         f"| {diff:.1e} |")
        else:
            lines.append(f"| {label} | {t_ours:.3f} | | | |")
    body = "\n".join(lines) + "\n" + note + (
        f"\nlevelup only: AEVs of the {N_MIXED:,} water/methanol geometries {t_aev:.3f} s "
        f"({1e6 * t_aev / len(mixed):.0f} us per molecule); Hessians of 100 methanol geometries "
        f"(18x18, double autograd) {t_hess:.3f} s.\n\n"
        f"Same weights and batches (1024, grouped by size) in both codes, float32 networks, "
        f"torch {torch.__version__}, one thread; least CPU time of {REPEATS} runs. "
        f"Load average when the run ended: {os.getloadavg()[0]:.1f} (other jobs share the "
        f"machine; compare ratios).\n")
    write_section("predict", "Prediction speed: levelup next to TorchANI (issue 4)", body,
                  "python bench/bench_predict.py")
    print(body)


if __name__ == "__main__":
    main()
