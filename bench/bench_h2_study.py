"""Benchmark: accuracy of the H2 study (levelup demo) over seeds 0, 1, 2 (issue 5).

Run: .venv/bin/python bench/bench_h2_study.py [--seeds 0 1 2]
Writes the "h2-study" section of bench/RESULTS.md: per model, RMSE (kcal/mol) over all 451
points and per region, median and range over the seeds, beside MLatom 3.25's numbers from
../shared/reference/anchor.md (measured there on the same labels).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from results import write_section  # noqa: E402

from levelup.studies.h2 import run_h2_study  # noqa: E402

MLATOM = {  # anchor.md: median (min-max) of seeds 0, 1, 2
    "pretrained": {"all": "0.075 (0.037-0.088)"},
    "transfer (tutorial protocol)": {"all": "10.95 (10.71-11.87)", "0.9-5.0": "2.66 (2.61-4.03)"},
    "scratch": {"all": "24.68 (19.31-27.20)"},
}
REGIONS = ("all", "0.9-5.0", "0.5-2.5", "0.5-0.9")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    runs = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            metrics = run_h2_study(Path(tmp) / "run", seed=seed, progress=False)
            metrics["wall_s"] = time.perf_counter() - t0
            runs.append(metrics)
            print(f"seed {seed}: " + ", ".join(
                f"{k} {v['rmse_all_kcalmol']:.3f}" for k, v in metrics["models"].items()))
    models = list(runs[0]["models"])
    lines = [f"Seeds {args.seeds}; RMSE in kcal/mol, median (min-max). Pre-trained vs HF/STO-3G, "
             "all others vs CISD/cc-pVDZ. MLatom 3.25 columns: ../shared/reference/anchor.md.",
             "", "| model | " + " | ".join(REGIONS) + " | MLatom all | MLatom 0.9-5.0 |",
             "|---|" + "---|" * (len(REGIONS) + 2)]
    for name in models:
        cells = []
        for region in REGIONS:
            vals = [r["models"][name].get(f"rmse_{region}_kcalmol") for r in runs]
            vals = [v for v in vals if v is not None]
            cells.append(f"{np.median(vals):.3g} ({min(vals):.3g}-{max(vals):.3g})")
        ml = MLATOM.get(name, {})
        lines.append(f"| {name} | " + " | ".join(cells)
                     + f" | {ml.get('all', '')} | {ml.get('0.9-5.0', '')} |")
    phases = list(runs[0]["times_s"])
    lines += ["", "Time per phase, seconds (median over seeds; labels from the warm cache):", "",
              "| " + " | ".join(phases) + " | whole study |", "|" + "---|" * (len(phases) + 1),
              "| " + " | ".join(f"{np.median([r['times_s'][p] for r in runs]):.1f}"
                                for p in phases)
              + f" | {np.median([r['wall_s'] for r in runs]):.1f} |"]
    write_section("h2-study", "H2 study: transfer learning HF/STO-3G -> CISD/cc-pVDZ from 12 "
                  "points (issue 5)", "\n".join(lines),
                  command="python bench/bench_h2_study.py --seeds " + " ".join(map(str, args.seeds)))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
