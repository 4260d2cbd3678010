"""Tables and a plot of the transfer suite (``bench_transfer_suite.py --report``): levelup's rows
from results/levelup/, MLatom 3.25.5's own from results/mlatom/ (bench_mlatom_suite.py), into
bench/RESULTS.md (section ``transfer-suite``) and bench/transfer_suite/suite.png.

Each cell is the median over the seeds found of the RMSE against the high level over every
geometry of the system (kcal/mol), with the min-max in brackets and the number of seeds when
fewer than three.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from protocol import BUDGETS  # noqa: E402
from results import write_section  # noqa: E402
from systems import SYSTEMS  # noqa: E402

ROWS = ("auto", "linear", "linear-min", "linear-ens3", "linear+forces", "kernel-delta", "plain",
        "compat", "scratch", "anchored")
NAMES = {"auto": "auto (linear or plain by CV)", "linear": "levelup default (linear)",
         "linear-ens3": "default, 3 pre-trained models",
         "linear-min": "default, lowest-CV selection",
         "linear+forces": "default + high-level forces",
         "kernel-delta": "kernel delta (low level at every point)",
         "plain": "plain fine-tuning (every layer)", "compat": "levelup.compat.mlatom",
         "scratch": "scratch", "anchored": "previous default (anchored)",
         "mlatom": "MLatom 3.25.5 tutorial protocol", "mlatom-scratch": "MLatom scratch"}


def collect() -> dict:
    """{system: {row: {budget: [rmse per seed]}}} plus pre-training errors and linear times."""
    table: dict = {}
    pretrain: dict = {}
    seconds: list[float] = []
    for system in SYSTEMS:
        rows: dict = {}
        for path in sorted((HERE / "results" / "levelup").glob(f"{system.name}_seed*.json")):
            data = json.loads(path.read_text())
            pretrain.setdefault(system.name, {}).setdefault("levelup", []).append(
                data["pretrain"]["rmse_vs_low"])
            if "pretrain_mlatom_recipe" in data:
                pretrain[system.name].setdefault("compat", []).append(
                    data["pretrain_mlatom_recipe"]["rmse_vs_low"])
            for key, run in data["runs"].items():
                budget, row = key.split("/")
                rows.setdefault(row, {}).setdefault(int(budget), []).append(run["rmse_all"])
                if row == "linear":
                    seconds.append(run["seconds"])
        for path in sorted((HERE / "results" / "mlatom").glob(f"{system.name}_seed*.json")):
            data = json.loads(path.read_text())
            pretrain.setdefault(system.name, {}).setdefault("mlatom", []).append(
                data["pretrain_rmse_vs_low_kcal"])
            for run in data["runs"]:
                rows.setdefault("mlatom", {}).setdefault(run["budget"], []).append(
                    run["transfer_rmse_all_kcal"])
                rows.setdefault("mlatom-scratch", {}).setdefault(run["budget"], []).append(
                    run["scratch_rmse_all_kcal"])
        table[system.name] = rows
    return {"table": table, "pretrain": pretrain, "linear_seconds": seconds}


def cell(values: list[float] | None) -> str:
    if not values:
        return "-"
    v = np.asarray(values)
    text = f"{np.median(v):.2f} ({v.min():.2f}-{v.max():.2f})"
    return text + (f" [{len(v)}]" if len(v) < 3 else "")


def median(values: list[float] | None) -> float:
    return float(np.median(values)) if values else float("nan")


def tables(data: dict) -> str:
    table = data["table"]
    columns = ["linear", "auto", "mlatom", "compat", "plain", "kernel-delta", "scratch",
               "mlatom-scratch", "linear-min", "linear-ens3", "linear+forces"]
    out = []
    for budget in BUDGETS:
        out += [f"### {budget} high-level points", "",
                "| system | " + " | ".join(NAMES[c] for c in columns) + " |",
                "|---|" + "---|" * len(columns)]
        for system in SYSTEMS:
            rows = table.get(system.name, {})
            out.append(f"| `{system.name}` | " + " | ".join(
                cell(rows.get(c, {}).get(budget)) for c in columns) + " |")
        medians = {c: [median(table[s.name].get(c, {}).get(budget)) for s in SYSTEMS
                       if table.get(s.name, {}).get(c, {}).get(budget)] for c in columns}
        out.append("| **median over systems** | " + " | ".join(
            f"{np.median(medians[c]):.2f} ({len(medians[c])} systems)" if medians[c] else "-"
            for c in columns) + " |")
        wins = [s.name for s in SYSTEMS
                if table.get(s.name, {}).get("mlatom", {}).get(budget)
                and table[s.name].get("linear", {}).get(budget)
                and median(table[s.name]["linear"][budget])
                <= median(table[s.name]["mlatom"][budget])]
        both = [s.name for s in SYSTEMS
                if table.get(s.name, {}).get("mlatom", {}).get(budget)
                and table[s.name].get("linear", {}).get(budget)]
        if both:
            ratio = (np.median([median(table[s]["mlatom"][budget]) for s in both])
                     / np.median([median(table[s]["linear"][budget]) for s in both]))
            out.append("")
            out.append(f"Default at most MLatom's error on {len(wins)} of {len(both)} systems "
                       f"with both ({', '.join(wins) or 'none'}); median over those systems: "
                       f"MLatom / default = {ratio:.2f}.")
        out.append("")
    out += ["### Pre-training error against the low level (kcal/mol, all geometries)", "",
            "| system | levelup TrainConfig() | MLatom 3.25.5 | levelup TrainConfig.mlatom() |",
            "|---|---|---|---|"]
    for system in SYSTEMS:
        p = data["pretrain"].get(system.name, {})
        if system.pretrained == "ani-1x":
            out.append(f"| `{system.name}` | ANI-1x members (wB97X/6-31G(d)), not trained on "
                       f"{system.low} | - | - |")
            continue
        out.append(f"| `{system.name}` | {cell(p.get('levelup'))} | {cell(p.get('mlatom'))} | "
                   f"{cell(p.get('compat'))} |")
    s = np.asarray(data["linear_seconds"])
    if len(s):
        out += ["", f"Default recipe wall time (one thread, CV included): median {np.median(s):.1f}"
                f" s, max {s.max():.1f} s over {len(s)} runs."]
    return "\n".join(out)


def plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ["linear", "auto", "mlatom", "compat", "plain", "kernel-delta", "linear-ens3",
               "linear+forces"]
    systems = [s.name for s in SYSTEMS]
    fig, axes = plt.subplots(1, len(BUDGETS), figsize=(5 * len(BUDGETS), 5.2), sharey=True)
    width = 0.8 / len(columns)
    for ax, budget in zip(axes, BUDGETS, strict=True):
        for k, c in enumerate(columns):
            meds, lo, hi = [], [], []
            for s in systems:
                v = data["table"].get(s, {}).get(c, {}).get(budget)
                meds.append(np.median(v) if v else np.nan)
                lo.append(np.median(v) - min(v) if v else 0)
                hi.append(max(v) - np.median(v) if v else 0)
            x = np.arange(len(systems)) + (k - len(columns) / 2 + 0.5) * width
            ax.bar(x, meds, width, yerr=[lo, hi], label=NAMES[c], capsize=2)
        ax.set_yscale("log")
        ax.set_xticks(np.arange(len(systems)), systems, rotation=35, ha="right")
        ax.set_title(f"{budget} high-level points")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("RMSE vs high level, all geometries (kcal/mol)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report() -> None:
    data = collect()
    plot(data, HERE / "suite.png")
    body = ("RMSE against the high level over every geometry of each system, kcal/mol: median "
            "over seeds (min-max; [n] seeds when fewer than 3). Points: "
            "bench/transfer_suite/protocol.py (random, seeded; a fifth validate for the recipes "
            "that validate). 'levelup default (linear)': finetune's LinearRecipe, CV over all "
            "points; 'default + high-level forces': the same with the points' CCSD(T) forces, "
            "drawn among the geometries that have them (none for H2 and formamide; too few for "
            "methanol and formaldehyde at the larger budgets); 'MLatom 3.25.5': MLatom itself "
            "(bench/bench_mlatom_suite.py; not run on formamide-ani1x: it needs ANI-1x "
            "downloaded). Plot: bench/transfer_suite/suite.png.\n\n" + tables(data))
    write_section("transfer-suite", "Transfer suite: every recipe on seven systems (issue 12)",
                  body, "python bench/bench_transfer_suite.py [--slow --budgets 16] --report")
    print(body)
