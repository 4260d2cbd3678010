"""The "properties" section of bench/RESULTS.md, from bench/properties/results/*.json
(bench/bench_properties.py)."""

from __future__ import annotations

import json

import numpy as np
from bench_properties import AMMONIA_BUDGETS, RESULTS, SEEDS, WATER
from results import write_section

COMMAND = "nice -n 10 .venv/bin/python bench/bench_properties.py && " \
          ".venv/bin/python bench/bench_properties.py --report"


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def med(values: list[float], digits: int = 2) -> str:
    v = np.array(values, dtype=float)
    return (f"{np.median(v):.{digits}f} ({v.min():.{digits}f}-{v.max():.{digits}f})"
            if v.size else "-")


def water_table() -> str:
    ref = load("water_reference")
    if ref is None:
        return "No water runs yet."
    high, low, cost = ref["high"], ref["low"], ref["cost"]
    lines = ["| model | K (CCSD(T) points, with forces) | seed | wavenumbers, cm^-1 | max abs "
             "diff, cm^-1 | max abs diff bond, A | max abs diff angle, deg |",
             "|---|---|---|---|---|---|---|"]

    def row(name: str, k: str, seed: str, r: dict) -> str:
        w = ", ".join(f"{x:.1f}" for x in r["wavenumbers"])
        return (f"| {name} | {k} | {seed} | {w} | {r['max_abs_d_wavenumber']:.1f} | "
                f"{r['max_abs_d_bond']:.4f} | {r['max_abs_d_angle']:.2f} |")

    lines.append(row("CCSD(T)/cc-pVDZ itself", "-", "-", high))
    lines.append(row("HF/STO-3G itself (no transfer)", "-", "-", low))
    for seed in SEEDS:
        r = load(f"water_pretrained_seed{seed}")
        if r:
            lines.append(row("pre-trained on HF/STO-3G", "0", str(seed), r))
    summary = []
    for k in WATER["budgets"]:
        runs = [r for s in SEEDS if (r := load(f"water_seed{s}_K{k}"))]
        for r in runs:
            lines.append(row("transferred (design points, linear recipe)", str(k),
                             str(r["seed"]), r))
        if runs:
            summary.append(
                f"- K = {k}: max |d wavenumber| {med([r['max_abs_d_wavenumber'] for r in runs])}"
                f" cm^-1; max |d bond| {med([r['max_abs_d_bond'] for r in runs], 4)} A; max |d "
                f"angle| {med([r['max_abs_d_angle'] for r in runs])} deg (median (min-max) "
                f"over {len(runs)} seeds)")
    g = high["geometry"]
    geometry = ", ".join(f"{k} {v:.4f} A" for k, v in g["bonds_angstrom"].items()) + ", " + \
        ", ".join(f"{k} {v:.2f} deg" for k, v in g["angles_degrees"].items())
    cost_text = (f"CCSD(T)/cc-pVDZ reference: {cost['gradients']} analytic gradients "
                 f"({cost['optimisation_gradients']} for the optimisation, "
                 f"{cost['hessian_gradients']} for the Hessian by central differences); its "
                 f"structure: {geometry}. A transfer costs K CCSD(T) energies and gradients.")
    return "\n".join(lines) + "\n\n" + "\n".join(summary) + "\n\n" + cost_text


def water_gp_table() -> str:
    rows = [("pre-trained on 1000 HF/STO-3G geometries (force weight 1)", "water_N1000_pretrained"
             "_seed{s}"),
            ("200-geometry pre-training, linear recipe (above)", "water_seed{s}_K20"),
            ("200-geometry pre-training, GP correction", "water_seed{s}_K20_gp"),
            ("1000-geometry pre-training, linear recipe", "water_N1000_seed{s}_K20_linear"),
            ("1000-geometry pre-training, GP correction", "water_N1000_seed{s}_K20_gp")]
    lines = ["| model | largest abs. wavenumber error per seed, cm^-1 | median (min-max) | max "
             "abs. bond / angle error |", "|---|---|---|---|"]
    for name, pattern in rows:
        runs = [r for s in SEEDS if (r := load(pattern.format(s=s)))]
        if not runs:
            continue
        errors = [r["max_abs_d_wavenumber"] for r in runs]
        lines.append(f"| {name} | {', '.join(f'{e:.1f}' for e in errors)} | {med(errors, 1)} | "
                     f"{max(r['max_abs_d_bond'] for r in runs):.4f} A / "
                     f"{max(r['max_abs_d_angle'] for r in runs):.2f} deg |")
    return "\n".join(lines)


def barrier_table(system: str) -> str:
    ref = load(f"{system}_reference")
    if ref is None:
        return f"No {system} runs yet."
    high = ref["high"]
    pre = [r["barrier"] for s in SEEDS if (r := load(f"{system}_pretrained_seed{s}"))]
    lines = ["| model | points chosen by | K | barrier, kcal/mol (seeds 0, 1, 2) | abs. error, "
             "median (min-max) |", "|---|---|---|---|---|",
             f"| CCSD(T)/cc-pVDZ itself | - | - | {high:.3f} | - |",
             f"| HF/STO-3G itself (no transfer) | - | - | {ref['low']:.3f} | "
             f"{abs(ref['low'] - high):.2f} |"]
    if pre:
        lines.append(f"| pre-trained on HF/STO-3G | - | 0 | {', '.join(f'{b:.3f}' for b in pre)}"
                     f" | {med([abs(b - high) for b in pre])} |")
    sizes = {"ammonia": 300, "methanol": 200}
    for k in (*AMMONIA_BUDGETS, sizes[system]):
        for aimed, how in (("", "design (pool)" if k != sizes[system] else "every pool geometry"),
                           ("_aimed", "design aimed at the barrier")):
            for tag, what in (("energies", "energies"), ("forces", "energies and forces")):
                runs = [r for s in SEEDS if (r := load(f"{system}{aimed}_seed{s}_K{k}_{tag}"))]
                if runs:
                    values = ", ".join(f"{r['barrier']:.3f}" for r in runs)
                    lines.append(f"| transferred, {what} | {how} | {k} | {values} | "
                                 f"{med([abs(r['barrier'] - high) for r in runs])} |")
    return "\n".join(lines) + (f"\n\nCCSD(T)/cc-pVDZ reference: {ref['cost']['gradients']} "
                               "analytic gradients (two optimisations).")


def nve_table() -> str:
    runs = [(s, r) for s in SEEDS if (r := load(f"water_nve_seed{s}_K20"))]
    if not runs:
        return "No NVE runs yet."
    lines = ["| seed | completed | drift, kcal/mol | fluctuation (std), kcal/mol | max abs "
             "deviation, kcal/mol | lowest potential energy - start's, kcal/mol | temperature at "
             "start, mean (min-max), K | s |", "|---|---|---|---|---|---|---|---|"]
    for seed, r in runs:
        lines.append(f"| {seed} | {r['completed']} | {r['drift_kcalmol']:.4f} | "
                     f"{r['fluctuation_kcalmol']:.4f} | {r['max_deviation_kcalmol']:.4f} | "
                     f"{r.get('lowest_potential_rel_start_kcalmol', float('nan')):.4f} | "
                     f"{r.get('start_temperature_K', float('nan')):.0f}; "
                     f"{r['temperature_mean_K']:.0f} ({r['temperature_min_K']:.0f}-"
                     f"{r['temperature_max_K']:.0f}) | {r['seconds']:.0f} |")
    return "\n".join(lines)


NVE_READING = (
    "Over 10 ps the total energy drifts by at most 0.016 kcal/mol and never strays more than "
    "0.033 kcal/mol from its start, and no trajectory found a potential energy below the "
    "model's minimum (a hole in the surface would show as one, with a temperature that climbs). "
    "Seed 2's run is hotter (about 1000 K) because its seeded Maxwell-Boltzmann draw gave the "
    "6 degrees of freedom 1150 K at the start (three atoms: the kinetic temperature of one draw "
    "scatters widely).")


READING = (
    "Targets of issue 15 (at most 20 CCSD(T) points; median over three pre-training seeds): "
    "bond lengths within 0.002 A and angles within 0.3 deg are met on every seed and recipe. "
    "Harmonic frequencies within 10 cm^-1: met by the GP correction (`[transfer] recipe = "
    "\"gp\"`) on a model pre-trained on 1000 HF/STO-3G geometries with force weight 1, largest "
    "error 4.1 (3.3-15.2) cm^-1; not by the default linear recipe (47.4 from the 200-geometry "
    "pre-training, 44.9 from the 1000-geometry one), nor by the GP correction on the 200-geometry "
    "pre-training (45.2). Both changes are needed: the frequency-floor section shows the "
    "200-geometry model's own curvature 20-35 cm^-1 off HF/STO-3G's at the CCSD(T) minimum, and "
    "the linear recipe adds 20-70 cm^-1 even to the better model. The ammonia barrier within "
    "0.2 kcal/mol: met by the design aimed at the barrier, 0.19 (0.13-0.23) kcal/mol from 20 "
    "energies and 0.02 (0.00-0.03) with their forces, against 0.33 and 0.28 for the design for "
    "the pool alone. On the held-out methanol torsion the aimed design made no difference "
    "(0.44 against 0.49 kcal/mol) and the target is missed: even every pool geometry leaves "
    "0.30 (0.14-0.43), so there the energy-only pre-trained model is the limit. Tried and not "
    "kept (prototypes, not in these results): the design aimed at curvatures at the minimum "
    "(no gain with the linear recipe), fine-tuning every layer on the 20 points' energies and "
    "forces after the linear solve (44-46 cm^-1 on seed 0), pre-training at 1500 K, ensembles "
    "of three pre-trained models. The linear recipe's 300 prior settings on seed 0's 20 points: "
    "the best gave 25.4 cm^-1 (the cross-validation chose 47.4).")


def report() -> None:
    body = "\n\n".join([
        "HF/STO-3G -> CCSD(T)/cc-pVDZ; seeds 0, 1, 2 (pre-training); how every number is made: "
        "bench/bench_properties.py's docstring. Water: pool of 200 normal-mode distortions of "
        "the HF/STO-3G minimum at 600 K with HF/STO-3G energies and forces, pre-training with "
        "force weight 0.1 A^2, K points by `levelup.select(..., \"design\")` with CCSD(T) "
        "energies and forces, the default linear transfer; wavenumbers and structures from "
        "`levelup.properties.frequencies` (optimised on each source). One PySCF thread per "
        "calculation; 2-core machine shared with other jobs.",
        "### Water: harmonic wavenumbers and structure\n\n" + water_table(),
        "### Water: the GP correction, and a larger pre-training\n\n"
        "The same 20 design points per seed with CCSD(T) energies and forces; the transfer "
        "either by the linear recipe or by `levelup.transfer.gpcorrection.gp_transfer` (the "
        "pre-trained model plus a Gaussian process on the level difference fitted to the "
        "points' energies and forces). The 1000-geometry pool is drawn like the 200-geometry "
        "one (normal modes at 600 K, seed 0), pre-training with force weight 1 A^2; its 20 "
        "points are chosen by design from it.\n\n" + water_gp_table(),
        "### Ammonia: inversion barrier (planar saddle by constrained optimisation)\n\n"
        "The transfer suite's umbrella-path pool (300 geometries) and the selection bench's "
        "pre-trained models (HF/STO-3G energies only), K design points, for the pool alone or "
        "aimed at the barrier too (`levelup.select(..., structures=, constraints=)`).\n\n"
        + barrier_table("ammonia"),
        "### Methanol: torsion barrier (held out; eclipsed structure with a dihedral held)\n\n"
        "The transfer suite's torsion pool (200 geometries; energies only), the selection "
        "bench's pre-trained models, the same two designs. It took no part in choosing the "
        "aimed design's share.\n\n" + barrier_table("methanol"),
        "### Water: 10 ps NVE with the transferred model (K = 20)\n\n"
        "`levelup.explore.nve_check`: velocity Verlet, 0.5 fs, from the model's own minimum "
        "with 600 K Maxwell-Boltzmann velocities (seeded), energies every 20 steps.\n\n"
        + nve_table() + "\n\n" + NVE_READING,
        "### Reading\n\n" + READING])
    write_section("properties", "Properties after transfer: frequencies, structure, barrier, "
                  "NVE (issue 15)", body, COMMAND)
