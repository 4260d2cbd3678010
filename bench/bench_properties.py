"""Properties a chemist checks after transfer (issue 15): harmonic frequencies and the equilibrium
geometry of water, and the inversion barrier of ammonia, HF/STO-3G -> CCSD(T)/cc-pVDZ, against
the high level computed directly with PySCF.

water: a pool of 200 normal-mode distortions of the HF/STO-3G minimum (Boltzmann at 600 K, seed
0; `levelup.data.sampling.normal_mode_distortions`), labelled at HF/STO-3G with forces; a model
pre-trained per seed (`ANIModel(elements, seed)`, `TrainConfig(seed, force_weight=0.1)`, energies
and forces); K points chosen by `levelup.select(..., "design")` and labelled at CCSD(T)/cc-pVDZ
with forces; the default linear transfer with those forces (`finetune(..., forces=...,
anchors=pool)`); then `levelup.properties.frequencies` (optimised on the model, autograd Hessian)
against the same on CCSD(T)/cc-pVDZ (optimised with CCSD(T) gradients, Hessian by central
differences of gradients).

ammonia: the transfer suite's 300-geometry umbrella-path pool (bench/transfer_suite/data, HF/STO-3G
and CCSD(T)/cc-pVDZ energies and forces of every geometry), the selection bench's pre-trained
models (energies only), K design points with and without their forces; the barrier is the energy
of the planar structure optimised under the "planar" constraint minus that of the optimised
pyramid (`levelup.properties.energy_differences`), on the model and on CCSD(T)/cc-pVDZ. Each
K is chosen twice: design for the pool alone, and design aimed at the barrier too
(`levelup.select(..., structures=, constraints=)`, levelup.selection.targets); and the transfer
from every pool geometry, the recipe's floor on this pool.

methanol (held out: it took no part in choosing the aimed design's share): the transfer suite's
200-geometry torsion pool (CCSD(T) forces for 10 geometries only, so energies only), the torsion
barrier between the staggered minimum and the eclipsed structure optimised with the dihedral
H2-C0-O1-H3 held at 0 degrees, the same two designs.

Every calculation goes through one label cache, bench/_work/props_cache.sqlite. Results:
bench/properties/results/*.json; ``--report`` writes the "properties" section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one PySCF thread per calculation (2 shared cores)

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "transfer_suite"))

import levelup  # noqa: E402
from levelup.atomicwrite import write_text_atomic  # noqa: E402
from levelup.data.sampling import normal_mode_distortions  # noqa: E402
from levelup.properties import (  # noqa: E402
    compare_frequencies,
    compare_geometries,
    energy_differences,
    frequencies,
)

CACHE = HERE / "_work" / "props_cache.sqlite"
MODELS = HERE / "_work" / "properties_models"
OUT = HERE / "properties"
RESULTS = OUT / "results"
LOW, HIGH = "HF/STO-3G", "CCSD(T)/cc-pVDZ"
SEEDS = (0, 1, 2)
WATER = {"temperature": 600.0, "n": 200, "force_weight": 0.1, "budgets": (20, 40)}
AMMONIA_BUDGETS = (20,)


def water_start() -> levelup.Database:
    from ase.build import molecule

    return levelup.Database.from_ase([molecule("H2O")])


def planar_nh3() -> levelup.Database:
    """NH3 with every atom in the z = 0 plane (the inversion saddle's symmetry), N-H 1.0 A."""
    angles = np.deg2rad([90.0, 210.0, 330.0])
    xyz = np.array([[0.0, 0.0, 0.0]] + [[np.cos(a), np.sin(a), 0.0] for a in angles])
    return levelup.Database.from_numpy(xyz[None], [7, 1, 1, 1])


def pyramidal_nh3() -> levelup.Database:
    from ase.build import molecule

    return levelup.Database.from_ase([molecule("NH3")])


def save(name: str, data: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    write_text_atomic(path, json.dumps(data, indent=1) + "\n")


def freq_row(freq, ref) -> dict:
    cmp = compare_frequencies(freq, ref)
    geo = compare_geometries(freq.structure, ref.structure).to_dict()
    return {"wavenumbers": [float(w) for w in freq.wavenumbers],
            "d_wavenumbers": [float(d) for d in cmp.differences], "max_abs_d_wavenumber":
            float(cmp.max_abs), "max_abs_d_bond": float(geo["max_abs"]["bonds"]),
            "max_abs_d_angle": float(geo["max_abs"]["angles"]),
            "geometry": geo["values"]}


def water_reference() -> tuple:
    start = time.perf_counter()
    ref = frequencies(water_start(), HIGH, cache=str(CACHE), workers=1)
    low = frequencies(water_start(), LOW, cache=str(CACHE), workers=1)
    optimisation = int(ref.optimized.computed + ref.optimized.cached)
    hessian = 6 * len(ref.structure.symbols) if ref.hessian_method == "gradients" else 0
    cost = {"gradients": optimisation + hessian, "optimisation_gradients": optimisation,
            "hessian_gradients": hessian, "hessian": ref.hessian_method,
            "seconds": time.perf_counter() - start}
    return ref, low, cost


def water_pool(low) -> levelup.Database:
    pool = normal_mode_distortions(low.structure, low.hessian, WATER["n"],
                                   temperature=WATER["temperature"], seed=0)
    return levelup.label(pool, LOW, forces=True, cache=str(CACHE), workers=1, progress=False)


def water_pretrained(pool: levelup.Database, seed: int):
    path = MODELS / f"water_T{WATER['temperature']:g}_seed{seed}.pt"
    if path.exists():
        return levelup.load_model(path)
    model = levelup.ANIModel(sorted(set(pool.elements)), seed=seed)
    levelup.fit(model, pool, property=LOW, forces=f"forces/{LOW}", progress=False,
                config=levelup.TrainConfig(seed=seed, force_weight=WATER["force_weight"]))
    MODELS.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return model


def water_transfer(pool: levelup.Database, pre, k: int):
    """(the transferred model, the pool rows it was given): K design points with CCSD(T)
    energies and forces, the default linear transfer."""
    rows = np.sort(np.array(levelup.select(pool, k, "design", model=pre).indices))
    points = levelup.label(pool[rows], HIGH, forces=True, cache=str(CACHE), workers=1,
                           progress=False)
    model, _ = levelup.finetune(pre, points, None, property=HIGH, anchors=pool,
                                forces=f"forces/{HIGH}", progress=False)
    return model, rows


def run_nve(k: int = 20) -> None:
    """10 ps of NVE (velocity Verlet, 0.5 fs) with each seed's transferred water model, from
    its own minimum with 600 K Maxwell-Boltzmann velocities (about 300 K once shared with the
    potential energy): the energy drift and fluctuation catch holes in the surface."""
    from levelup.explore.nve import nve_check
    from levelup.properties import optimize

    _, low, _ = water_reference()
    pool = water_pool(low)
    for seed in SEEDS:
        model, _ = water_transfer(pool, water_pretrained(pool, seed), k)
        start = time.perf_counter()
        result = nve_check(optimize(water_start(), model).structure, model, temperature=600.0,
                           time=10_000.0, timestep=0.5, every=20, seed=seed, progress=False)
        lowest = float(np.nanmin(result.potential - result.potential[0]) * 627.509474)
        save(f"water_nve_seed{seed}_K{k}", {**result.summary(), "seconds":
                                             time.perf_counter() - start, "text": result.text(),
                                             "lowest_potential_rel_start_kcalmol": lowest,
                                             "start_temperature_K": float(result.temperature[0])})
        print(f"water NVE seed {seed} K={k}: {result.text()}", flush=True)


def run_water() -> None:
    ref, low, cost = water_reference()
    pool = water_pool(low)
    save("water_reference", {"high": freq_row(ref, ref), "low": freq_row(low, ref),
                             "cost": cost})
    for seed in SEEDS:
        pre = water_pretrained(pool, seed)
        save(f"water_pretrained_seed{seed}", freq_row(frequencies(water_start(), pre), ref))
        for k in WATER["budgets"]:
            model, rows = water_transfer(pool, pre, k)
            row = freq_row(frequencies(water_start(), model), ref)
            save(f"water_seed{seed}_K{k}", {**row, "seed": seed, "K": k, "rows": rows.tolist()})
            print(f"water seed {seed} K={k}: max |d freq| {row['max_abs_d_wavenumber']:.1f} "
                  f"cm-1, bond {row['max_abs_d_bond']:.4f} A, angle "
                  f"{row['max_abs_d_angle']:.2f} deg", flush=True)


#: the larger pre-training of the GP-correction rows: 1000 distortions, force weight 1 A^2
WATER_LARGE = {"n": 1000, "force_weight": 1.0}


def water_large(low, seed: int) -> tuple[levelup.Database, object]:
    """(the 1000-geometry HF/STO-3G pool, the model pre-trained on it for ``seed``)."""
    pool = normal_mode_distortions(low.structure, low.hessian, WATER_LARGE["n"],
                                   temperature=WATER["temperature"], seed=0)
    pool = levelup.label(pool, LOW, forces=True, cache=str(CACHE), workers=1, progress=False)
    path = MODELS / f"water_T{WATER['temperature']:g}_N{WATER_LARGE['n']}_fw1_seed{seed}.pt"
    if path.exists():
        return pool, levelup.load_model(path)
    model = levelup.ANIModel(sorted(set(pool.elements)), seed=seed)
    levelup.fit(model, pool, property=LOW, forces=f"forces/{LOW}", progress=False,
                config=levelup.TrainConfig(seed=seed, force_weight=WATER_LARGE["force_weight"]))
    MODELS.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return pool, model


def run_water_gp(k: int = 20) -> None:
    """The GP correction (levelup.transfer.gpcorrection) next to the linear recipe, on the
    same K design points with CCSD(T) energies and forces: from the 200-geometry pre-training
    and from the 1000-geometry one (force weight 1)."""
    from levelup.transfer.gpcorrection import gp_transfer

    ref, low, _ = water_reference()
    small = water_pool(low)
    for seed in SEEDS:
        runs = {"": (small, water_pretrained(small, seed)), "N1000_": water_large(low, seed)}
        for tag, (pool, pre) in runs.items():
            if tag:
                save(f"water_{tag}pretrained_seed{seed}",
                     freq_row(frequencies(water_start(), pre), ref))
            rows = np.sort(np.array(levelup.select(pool, k, "design", model=pre).indices))
            points = levelup.label(pool[rows], HIGH, forces=True, cache=str(CACHE), workers=1,
                                   progress=False)
            models = {"gp": gp_transfer(pre, points, property=HIGH, forces=f"forces/{HIGH}")[0]}
            if tag:
                models["linear"] = levelup.finetune(pre, points, None, property=HIGH,
                                                    anchors=pool, forces=f"forces/{HIGH}",
                                                    progress=False)[0]
            for recipe, model in models.items():
                row = freq_row(frequencies(water_start(), model), ref)
                save(f"water_{tag}seed{seed}_K{k}_{recipe}", {**row, "seed": seed, "K": k,
                                                              "rows": rows.tolist()})
                print(f"water {tag}seed {seed} K={k} {recipe}: max |d freq| "
                      f"{row['max_abs_d_wavenumber']:.1f} cm-1", flush=True)


def methanol_start() -> levelup.Database:
    """The transfer suite's methanol minimum (staggered: H2-C0-O1-H3 anti)."""
    from systems import BY_NAME

    return levelup.Database.from_numpy(BY_NAME["methanol"].xyz0[None], [6, 8, 1, 1, 1, 1])


#: barrier systems: name -> (the pool's name in the transfer suite, structures, constraints of
#: the saddle). Methanol's torsion took no part in choosing the aimed design's share.
BARRIERS = {
    "ammonia": ("ammonia-inversion", lambda: {"minimum": pyramidal_nh3(), "saddle": planar_nh3()},
                {"saddle": "planar"}),
    "methanol": ("methanol", lambda: {"minimum": methanol_start(), "saddle": methanol_start()},
                 {"saddle": "dihedral:2,0,1,3=0"}),
}


def barrier(source, system: str = "ammonia") -> tuple[float, dict]:
    _, structures, constraints = BARRIERS[system]
    diff = energy_differences(structures(), source, constraints=constraints, cache=str(CACHE),
                              workers=1)
    runs = {k: v.to_dict() for k, v in diff.optimized.items() if v is not None}
    return float(diff.relative["saddle"]), runs


def barrier_points(pool, pre, system: str, k: int, aimed: bool) -> np.ndarray:
    """K design rows of the pool: for the pool alone, or aimed at the barrier too."""
    _, structures, constraints = BARRIERS[system]
    aim = {"structures": structures(), "constraints": constraints} if aimed else {}
    return np.sort(np.array(levelup.select(pool, k, "design", model=pre, **aim).indices))


def run_barrier(system: str) -> None:
    from bench_selection import DATA, pretrained

    start = time.perf_counter()
    high, runs = barrier(HIGH, system)
    gradients = sum(r.get("computed", 0) + r.get("cached", 0) for r in runs.values())
    low, _ = barrier(LOW, system)
    save(f"{system}_reference", {"high": high, "low": low, "cost": {
        "gradients": int(gradients), "seconds": time.perf_counter() - start}})
    name = BARRIERS[system][0]
    pool = levelup.Database.load(DATA / f"{name}.h5")
    with_forces = bool(np.isfinite(np.asarray(pool.get(f"forces/{HIGH}"))).all())
    for seed in SEEDS:
        pre, _ = pretrained(name, pool, LOW, seed)
        save(f"{system}_pretrained_seed{seed}", {"barrier": barrier(pre, system)[0]})
        for k, aimed in itertools.product((*AMMONIA_BUDGETS, len(pool)), (False, True)):
            if k == len(pool) and aimed:
                continue  # every geometry: the recipe's floor on this pool, no choice to make
            rows = (np.arange(len(pool)) if k == len(pool)
                    else barrier_points(pool, pre, system, k, aimed))
            for forces in (None, f"forces/{HIGH}") if with_forces else (None,):
                model, _ = levelup.finetune(pre, pool[rows], None, property=HIGH, anchors=pool,
                                            forces=forces, progress=False)
                value = barrier(model, system)[0]
                tag = "forces" if forces else "energies"
                label = f"{system}{'_aimed' if aimed else ''}_seed{seed}_K{k}_{tag}"
                save(label, {"barrier": value, "seed": seed, "K": k, "forces": bool(forces),
                             "aimed": aimed, "high": high, "rows": rows.tolist()})
                print(f"{label}: barrier {value:.3f} (CCSD(T) {high:.3f}) kcal/mol", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", nargs="+",
                        default=["water", "water-gp", "ammonia", "methanol", "nve"])
    parser.add_argument("--report", action="store_true", help="write the report only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.report:
        from properties_report import report

        report()
        return
    if "water" in args.systems:
        run_water()
    if "water-gp" in args.systems:
        run_water_gp()
    for system in BARRIERS:
        if system in args.systems:
            run_barrier(system)
    if "nve" in args.systems:
        run_nve()


if __name__ == "__main__":
    main()
