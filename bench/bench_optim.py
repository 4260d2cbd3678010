"""Benchmark (issue 13, item 5): levelup's former hand-written optimizer and schedule against
torch's.

``FlatAdamW`` (every trainable parameter a view into one flat buffer, one fused Adam kernel per
step) and ``Plateau``, levelup's before this benchmark and kept in bench/_flat_adamw.py, against
``torch.optim.AdamW`` (``foreach=True`` and ``fused=True``, torch's own CPU kernels) with
``torch.optim.lr_scheduler.ReduceLROnPlateau``, which levelup used after this benchmark. Since
issue 16 (bench/bench_step_overhead.py, section "step-overhead") ``levelup.train.optim`` calls
torch's fused AdamW kernel itself on its own state and writes out ReduceLROnPlateau's rule
(``AveragedAdamW``, ``Plateau``): bit-identical to torch.optim, without its per-step wrapper
or the import of torch._dynamo; this benchmark's "fused" column still builds torch.optim.
All three are driven by the same :func:`levelup.fit` loop (the same data, batches, loss,
hand-written backpropagation and moving average of the weights), one torch thread.

Cases (TrainConfig() defaults: batch 16, AdamW 2e-3, moving average 0.99, 20% validation):

* H2 tutorial: 451 geometries, HF/STO-3G energies (bench/transfer_suite/data/h2-tutorial.h5);
* water: 300 geometries, HF/STO-3G energies (bench/transfer_suite/data/water.h5);
* water with forces: the same 300 geometries, CCSD(T)/cc-pVDZ energies and forces
  (force_weight 0.1, batches recomputing the AEV under autograd).

Each case trains a fixed number of epochs (the learning-rate floor is set out of reach so every
variant does the same work) from the same initial weights; the variants run interleaved,
``--repeats`` times, and the table gives the median CPU time per epoch, its ratio to
FlatAdamW's, and the final validation RMSE (same data and seed, so the variants must agree
within the tolerance of a different rounding order). It also times what constructing the first
``torch.optim`` optimizer costs in a fresh interpreter (it imports ``torch._dynamo``), a
once-per-process cost.

    .venv/bin/python bench/bench_optim.py [--epochs 60] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _flat_adamw import FlatAdamW, Plateau  # noqa: E402
from results import write_section  # noqa: E402

import levelup  # noqa: E402
import levelup.train.loop as loop  # noqa: E402
from levelup.model.ani import ANIModel  # noqa: E402
from levelup.train.optim import AveragedAdamW  # noqa: E402

DATA = HERE / "transfer_suite" / "data"
#: the largest |relative difference| of the final validation RMSE accepted as "the same"
TOLERANCE = 0.05


def variant(name: str):
    """Make levelup.train.loop build optimizer ``name`` ("flat": the former FlatAdamW with its
    Plateau; "foreach" or "fused": levelup's AveragedAdamW on torch's AdamW of that kind, with
    ReduceLROnPlateau); returns a function that undoes it."""
    before = loop.AveragedAdamW, loop.plateau
    if name == "flat":
        loop.AveragedAdamW, loop.plateau = FlatAdamW, Plateau
    else:
        fused = name == "fused"
        loop.AveragedAdamW = lambda groups, ema_decay: AveragedAdamW(groups, ema_decay=ema_decay,
                                                                     fused=fused)

    def undo() -> None:
        """Put levelup's own optimizer back."""
        loop.AveragedAdamW, loop.plateau = before
    return undo


def cases() -> dict[str, tuple[levelup.Database, str, dict[str, Any]]]:
    """name -> (database, energy property, TrainConfig changes)."""
    h2 = levelup.Database.load(DATA / "h2-tutorial.h5")
    water = levelup.Database.load(DATA / "water.h5")
    return {
        "H2 tutorial, 451 HF/STO-3G energies": (h2, "HF/STO-3G", {}),
        "water, 300 HF/STO-3G energies": (water, "HF/STO-3G", {}),
        "water, 300 CCSD(T) energies + forces": (water, "CCSD(T)/cc-pVDZ",
                                                 {"force_weight": 0.1}),
    }


def train_once(db, prop: str, changes: dict[str, Any], name: str, epochs: int
               ) -> tuple[float, float]:
    """(median CPU seconds per epoch, final validation RMSE kcal/mol) of one run of ``name``.

    CPU time of this process (one torch thread), read at the end of every epoch by fit's
    callback: unlike wall time it does not count the waits of a loaded machine."""
    model = ANIModel(db.elements, seed=0)
    config = levelup.TrainConfig(max_epochs=epochs, lr_floor=1e-12, seed=0, **changes)
    stamps = [time.process_time()]
    undo = variant(name)
    try:
        history = levelup.fit(model, db, property=prop, config=config, progress=False,
                              callback=lambda *_: stamps.append(time.process_time()))
    finally:
        undo()
    per_epoch = float(np.median(np.diff(stamps)[1:]))  # the first epoch also holds the set-up
    return per_epoch, history.val_rmse[-1]


def first_optimizer_seconds() -> float:
    """Seconds to construct the first torch.optim.AdamW in a fresh interpreter (torch imported)."""
    code = ("import time, torch; p = [torch.nn.Parameter(torch.zeros(3))]; t = time.perf_counter();"
            " torch.optim.AdamW(p); print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


NAMES = ["flat", "foreach", "fused"]
LABELS = {"flat": "FlatAdamW + Plateau", "foreach": "AdamW(foreach) + ReduceLROnPlateau rule",
          "fused": "AdamW(fused) + ReduceLROnPlateau rule"}


def measure(epochs: int, repeats: int) -> tuple[list[str], dict[str, np.ndarray], bool]:
    """Table rows, each torch variant's time ratios to FlatAdamW (repeats, cases) paired within
    a repeat, and whether every variant's final error agrees with FlatAdamW's."""
    rows, same = [], True
    ratios = {n: np.zeros((repeats, 0)) for n in NAMES[1:]}
    for case, (db, prop, changes) in cases().items():
        times: dict[str, list[float]] = {n: [] for n in NAMES}
        rmse: dict[str, float] = {}
        for _ in range(repeats):
            for n in NAMES:  # interleaved, so machine load hits every variant alike
                t, rmse[n] = train_once(db, prop, changes, n, epochs)
                times[n].append(t)
        for n in NAMES:
            paired = np.array(times[n]) / np.array(times["flat"])
            agree = abs(rmse[n] / rmse["flat"] - 1) <= TOLERANCE
            same &= agree
            rows.append(f"| {case} | {LABELS[n]} | {1e3 * statistics.median(times[n]):.2f} | "
                        f"{np.median(paired):.2f}x ({paired.min():.2f}-{paired.max():.2f}) | "
                        f"{rmse[n]:.4f} | {'yes' if agree else 'NO'} |")
            if n != "flat":
                ratios[n] = np.column_stack([ratios[n], paired])
            print(rows[-1], flush=True)
    return rows, ratios, same


def verdict(ratios: dict[str, np.ndarray]) -> str:
    """FlatAdamW's gain over each torch variant (per repeat, the geometric mean of the per-case
    ratios; then the median over repeats) and the issue's 1.3x rule against the better one."""
    per_repeat = {n: np.exp(np.log(r).mean(1)) for n, r in ratios.items()}
    gains = {n: float(np.median(g)) for n, g in per_repeat.items()}
    best = min(gains, key=gains.get)
    summary = ", ".join(f"{LABELS[n].split(' +')[0]} {gains[n]:.2f}x (repeats "
                        f"{g.min():.2f}-{g.max():.2f})" for n, g in per_repeat.items())
    return (f"FlatAdamW's gain (geometric mean over the cases, median over repeats): {summary}; "
            f"against the better torch variant {gains[best]:.2f}x, " + (
                "at least 1.3x: FlatAdamW and Plateau are kept." if gains[best] >= 1.3 else
                "under 1.3x: levelup.train dropped FlatAdamW for torch's AdamW kernels (FlatAdamW "
                "now lives only in bench/_flat_adamw.py, for this comparison). The foreach and "
                "fused rows are levelup's own AveragedAdamW on that kernel, which since issue 16 "
                "it calls directly on its own state (bit-identical to torch.optim.AdamW, without "
                "its per-step wrapper; section \"step-overhead\")."))


def main() -> None:
    """Run every case, print the table and write the "optimizer" section of RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows, ratios, same = measure(args.epochs, args.repeats)
    start = first_optimizer_seconds()
    body = (
        f"{args.epochs} epochs from the same initial weights, `TrainConfig()` defaults (batch 16, "
        "moving average 0.99) with the learning-rate floor out of reach, one torch thread, "
        f"{args.repeats} interleaved repeats. ms/epoch: median CPU time of the process per epoch "
        "(one thread; wall time on a shared machine swings with its load); time ratio to "
        "FlatAdamW's (above 1: FlatAdamW faster), median and range of the ratios paired within "
        "a repeat; final validation RMSE (kcal/mol; 'same' = within "
        f"{100 * TOLERANCE:.0f}% of FlatAdamW's).\n\n"
        "| case | optimizer + schedule | CPU ms/epoch | time / FlatAdamW's | val RMSE | same |\n"
        "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        f"Constructing the first `torch.optim` optimizer in a fresh interpreter: {start:.2f} s "
        "(it imports `torch._dynamo`; once per process).\n\n"
        "Verdict (issue 13: keep the hand-written ones only with a gain of at least 1.3x): "
        f"{verdict(ratios)}" + ("" if same else " Some final errors differ by more than the "
                                "tolerance."))
    print(body)
    if not args.no_write:
        write_section("optimizer", "Optimizer: FlatAdamW + Plateau vs torch's AdamW kernels "
                      "(issue 13; re-run after issue 16)", body,
                      f".venv/bin/python bench/bench_optim.py --epochs {args.epochs} "
                      f"--repeats {args.repeats}")


if __name__ == "__main__":
    main()
