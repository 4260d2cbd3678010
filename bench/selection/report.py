"""The "selection" section of bench/RESULTS.md and bench/selection/selection.png, from whatever
runs of bench/bench_selection.py are complete (the missing ones are named)."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
from bench_selection import BUDGETS, OUT, POLY, RESULTS, SEEDS, STRATEGIES
from results import write_section

COMMAND = "nice -n 10 .venv/bin/python bench/bench_selection.py && " \
          ".venv/bin/python bench/bench_selection.py --report"
MAIN = ("h2-tutorial", *POLY, "formaldehyde-dft", "methanol")


READING = (
    "The RMSE over all H2 geometries is dominated by r < 1 Angstrom (the well at 0.74 and the "
    "repulsive wall down to 0.50), where a curve that misses the region is off by tens of "
    "kcal/mol. Farthest points in log-AEV space space the points nearly evenly in r, so with 5 "
    "points none lies below 1.5 Angstrom, and with 12 only r = 0.50 does, the next at 1.08 "
    "(the same points for every seed: the descriptors depend on the AEV parameters only); "
    "whether the transfer then bridges the well depends on the pre-trained model: 16.1 "
    "kcal/mol with seed 0, 0.67 and 1.63 with seeds 1 and 2. The committee finds the well "
    "after its 4 fps starting points (below), which is where it gains at K = 12, but with "
    "K = 5 it has one point to add. Every k-th at 5 points "
    "(0.50, 1.62, 2.74, 3.86, 4.98) also misses the well, and the default recipe's "
    "cross-validation over 5 points picks its weakest priors (CV RMSE far above the others): "
    "17.9 kcal/mol here, against the 3.77 the issue quotes for an older recipe. On the "
    "polyatomic pools the geometries are drawn one at a time from a seeded generator, so "
    "every k-th is itself a random subset of the pool (a fixed one), not a scan's even "
    "spacing; differences between every k-th and random at one budget are within what the "
    "seeds spread. The committee starts from max(K // 4, 4) fps points and spends the rest where 4 "
    "bootstrap transfers disagree; at 8 and 16 points that costs it against random subsets "
    "(its fps start is poor on water and hcn), at 32 it is best on ammonia and hcn.")


def load() -> dict:
    """{(system, strategy, budget): [run dicts over seeds]}."""
    runs: dict = defaultdict(list)
    for path in sorted(RESULTS.glob("*.json")):
        r = json.loads(path.read_text())
        runs[(r["system"], r["strategy"], r["budget"])].append(r)
    return runs


def stats(runs: list[dict], key: str = "rmse_all") -> tuple[float, float, float]:
    """(median, min, max) of ``key`` over the runs."""
    v = np.array([r[key] for r in runs])
    return float(np.median(v)), float(v.min()), float(v.max())


def cell(runs: list[dict], key: str = "rmse_all") -> str:
    if not runs:
        return "-"
    med, lo, hi = stats(runs, key)
    seeds = "" if len(runs) == len(SEEDS) else f" [{len(runs)} seed{'s' * (len(runs) > 1)}]"
    return f"{med:.2f} ({lo:.2f}-{hi:.2f}){seeds}"


def systems(runs: dict) -> list[str]:
    have = {k[0] for k in runs}
    return [s for s in MAIN if s in have]


def tables(runs: dict) -> str:
    """One table per system: strategies x budgets, RMSE over all and over held-out points."""
    out = []
    for name in systems(runs):
        ks = BUDGETS[name]
        head = " | ".join(f"K={k}: all" for k in ks) + " | " + " | ".join(
            f"K={k}: held out" for k in ks)
        out += [f"**{name}** (RMSE kcal/mol, median (min-max) over seeds)", "",
                f"| strategy | {head} |", "|---" * (1 + 2 * len(ks)) + "|"]
        for s in STRATEGIES:
            cells = [cell(runs[(name, s, k)]) for k in ks]
            cells += [cell(runs[(name, s, k)], "rmse_heldout") for k in ks]
            out.append(f"| {s} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def median(runs: dict, name: str, s: str, k: int, key: str = "rmse_all") -> float | None:
    got = runs.get((name, s, k))
    return stats(got, key)[0] if got else None


def best(runs: dict, name: str, k: int, key: str = "rmse_all") -> tuple[str, float] | None:
    """(strategy, median) of the strategy with the lowest median at budget k."""
    found = [(m, s) for s in STRATEGIES if (m := median(runs, name, s, k, key)) is not None]
    return (min(found)[1], min(found)[0]) if found else None


def targets(runs: dict) -> str:
    """Issue 14's targets, each met or not, with the numbers."""
    lines = []
    for k, goal in ((5, 1.0), (12, 0.3)):
        b = best(runs, "h2-tutorial", k)
        if b:
            verdict = "met" if b[1] <= goal else "not met"
            lines.append(f"- H2, K = {k}: best median {b[1]:.2f} kcal/mol ({b[0]}) over all 451; "
                         f"target <= {goal}: **{verdict}**.")
    for name in systems(runs):
        if name == "h2-tutorial":
            continue
        ref = median(runs, name, "every", 32)
        found = [(median(runs, name, s, k), s, k) for k in (8, 16) for s in STRATEGIES
                 if median(runs, name, s, k) is not None]
        if ref is None or not found:
            continue
        reach = [(k, s, m) for m, s, k in sorted(found, key=lambda t: (t[2], t[0])) if m <= ref]
        b16 = best(runs, name, 16)
        verdict = (f"**met** ({reach[0][1]} at K = {reach[0][0]}: {reach[0][2]:.2f})" if reach
                   else f"**not met** (best at 16: {b16[0]} {b16[1]:.2f})" if b16
                   else "**not met**")
        lines.append(f"- {name}: every k-th at 32 gives {ref:.2f}; the best strategy with at "
                     f"most 16 points reaches it: {verdict}.")
    lines += ["", "Best strategy against every k-th, per budget (median RMSE over all "
              "geometries, kcal/mol; ratio every / best):", ""]
    for name in systems(runs):
        parts = []
        for k in BUDGETS[name]:
            b, e = best(runs, name, k), median(runs, name, "every", k)
            if b and e:
                parts.append(f"K={k}: {b[0]} {b[1]:.2f} vs {e:.2f} (x{e / b[1]:.1f})"
                             if b[0] != "every" else f"K={k}: every k-th is best ({e:.2f})")
        lines.append(f"- {name}: " + "; ".join(parts))
    return "\n".join(lines)


def noanchors(runs: dict) -> str:
    """Medians of the same transfer without ``anchors=pool`` (the priors act on the points)."""
    out = ["| system | strategy | " + " | ".join("K" for _ in range(3)) + " |",
           "|---|---|---|---|---|"]
    for name in systems(runs):
        for s in STRATEGIES:
            cells = [f"{k}: {m:.2f}" if (m := median(runs, name, s, k, "rmse_all_noanchors"))
                     is not None else f"{k}: -" for k in BUDGETS[name]]
            out.append(f"| {name} | {s} | " + " | ".join(cells + [""] * (3 - len(cells))) + " |")
    return "\n".join(out)


def timings(runs: dict) -> str:
    """Median seconds per run (selection + transfer) per system and strategy, largest budget."""
    out = ["| system | pre-training s (median) | " + " | ".join(STRATEGIES) + " |",
           "|---" * (2 + len(STRATEGIES)) + "|"]
    for name in systems(runs):
        k = max(BUDGETS[name])
        pre = [r["pretrain_seconds"] for s in STRATEGIES for kk in BUDGETS[name]
               for r in runs.get((name, s, kk), []) if r.get("pretrain_seconds")]
        cells = [f"{stats(runs[(name, s, k)], 'seconds')[0]:.1f}" if runs.get((name, s, k))
                 else "-" for s in STRATEGIES]
        pre_s = f"{np.median(pre):.0f}" if pre else "cached"
        out.append(f"| {name} (K={k}) | {pre_s} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def missing(runs: dict) -> str:
    gone = []
    for name in MAIN:
        for seed in SEEDS:
            n = sum(1 for s in STRATEGIES for k in BUDGETS[name]
                    if not any(r["seed"] == seed for r in runs.get((name, s, k), [])))
            if n:
                gone.append(f"{name} seed {seed} ({n} of {len(STRATEGIES) * len(BUDGETS[name])})")
    return "Runs missing: " + (", ".join(gone) if gone else "none") + "."


def h2_notes(runs: dict) -> str:
    """Where on the H2 scan (r = 0.50 + 0.01 row Angstrom) each strategy put its points, seed 0,
    and what the recipe's cross-validation chose."""
    lines = []
    for k in BUDGETS["h2-tutorial"]:
        for s in STRATEGIES:
            got = [r for r in runs.get(("h2-tutorial", s, k), []) if r["seed"] == 0]
            if got:
                r = ", ".join(f"{0.5 + 0.01 * i:.2f}" for i in sorted(got[0]["indices"]))
                lines.append(f"- K = {k}, {s}: r = {r} Angstrom; RMSE {got[0]['rmse_all']:.2f}, "
                             f"recipe CV RMSE {got[0]['cv_rmse']:.2f} kcal/mol")
    return "\n".join(lines)


def plot(runs: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    names = systems(runs)
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for j, s in enumerate(STRATEGIES):
            pts = [(k, *stats(runs[(name, s, k)])) for k in BUDGETS[name] if runs.get((name, s, k))]
            if not pts:
                continue
            k, med, lo, hi = map(np.array, zip(*pts, strict=True))
            x = k * (1 + 0.03 * (j - 1.5))  # small offsets so the bars do not overlap
            ax.errorbar(x, med, yerr=[med - lo, hi - med], marker="o", capsize=3, label=s)
        ax.set(xscale="log", yscale="log", title=name, xlabel="high-level points K")
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(BUDGETS[name], [str(k) for k in BUDGETS[name]])
    axes[0][0].set_ylabel("RMSE over the pool, kcal/mol")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "selection.png", dpi=110)


def report() -> None:
    runs = load()
    plot(runs)
    body = "\n\n".join([
        "Which K geometries get the high level: `levelup.select` with every k-th, seeded "
        "random, farthest points in AEV space (fps) and query by committee (4 bootstrap "
        "transfers of one model, batch K // 4, starting from 4 fps points), then the same "
        "default transfer for every strategy: `levelup.finetune(pretrained, pool[chosen], None, "
        "property=high, anchors=pool)` (LinearRecipe(); the pool as anchors, as the committee's "
        "own transfers and the transfer suite do). Pools and labels: bench/transfer_suite/data "
        "(H2: the tutorial's 451-point scan, HF/STO-3G -> CISD/cc-pVDZ; polyatomics: 300 "
        "geometries, HF/STO-3G -> CCSD(T)/cc-pVDZ); the committee reads the high-level energies "
        "from the pool (no PySCF). Pre-trained model per (system, seed): "
        "`ANIModel(elements, seed)` + `fit(TrainConfig(seed))` on every low-level energy. "
        "Seeds 0, 1, 2 (pre-training, random draw, committee bootstraps); one torch thread; "
        "2-core machine shared with other jobs.",
        missing(runs), tables(runs), "### Targets (issue 14)\n\n" + targets(runs),
        "### The same transfer without `anchors=pool` (median RMSE over all, kcal/mol)\n\n"
        + noanchors(runs),
        "### Reading\n\n" + READING,
        "### H2: where the points went (seed 0)\n\n" + h2_notes(runs),
        "### Wall time per run (selection + transfer, median seconds)\n\n" + timings(runs),
        "![selection](selection/selection.png)"])
    write_section("selection", "Choosing the high-level points (issue 14)", body, COMMAND)
