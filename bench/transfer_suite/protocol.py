"""Which high-level points each run of the transfer suite may use (issue 12, item 1).

One run = (system, budget, seed). ``budget`` high-level energies are drawn without replacement
from the system's geometries by ``numpy.random.default_rng(seed * 1000 + budget)``; in sorted
order, every fifth of them (the 1st, 6th, ...; ``budget // 5`` points, at least one) is the
validation part for the recipes that use one (MLatom's tutorial protocol, plain fine-tuning,
scratch), the rest the training part. Recipes that choose their settings by cross-validation
use all ``budget`` points. Every run is scored on every geometry of the system (the tutorial's
"all points" RMSE) and on the geometries the run never saw ("held out").

Only numpy here, so MLatom's environment (bench/.mlatom-venv) can import it too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
BUDGETS = (8, 16, 32)
SEEDS = (0, 1, 2)


def pick(n_geometries: int, budget: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training indices, validation indices) of one run, both sorted, disjoint."""
    if not 2 <= budget <= n_geometries:
        raise ValueError(f"budget must be 2..{n_geometries}; got {budget}")
    rng = np.random.default_rng(seed * 1000 + budget)
    chosen = np.sort(rng.choice(n_geometries, budget, replace=False))
    n_val = max(1, budget // 5)
    val = chosen[::5][:n_val]
    train = np.setdiff1d(chosen, val)
    return train, val


def held_out(n_geometries: int, budget: int, seed: int) -> np.ndarray:
    """Indices of the geometries a run never saw at the high level."""
    train, val = pick(n_geometries, budget, seed)
    return np.setdiff1d(np.arange(n_geometries), np.concatenate([train, val]))
