"""The simple strategies for choosing K of N geometries: every k-th and random.

Both return row numbers (K,) int64 in the order chosen; neither looks at the molecules.
"""

from __future__ import annotations

import numpy as np


def every_kth(n: int, k: int) -> np.ndarray:
    """``k`` evenly spaced row numbers of ``n`` (k <= n), in increasing order.

    The tutorial's rule where it spans the pool: every ``s``-th from 0 with
    ``s = (n - 1) // (k - 1)`` (every 40th of 451 for 12 points), used when it ends within one
    step of the last row; otherwise (k close to n) the rounded ``linspace(0, n - 1, k)``.
    One point is row 0.
    """
    if k == 1:
        return np.zeros(1, dtype=np.int64)
    step = (n - 1) // (k - 1)
    if (n - 1) - step * (k - 1) < step:
        return np.arange(k, dtype=np.int64) * step
    return np.round(np.linspace(0, n - 1, k)).astype(np.int64)


def random_rows(n: int, k: int, seed: int) -> np.ndarray:
    """``k`` distinct row numbers of ``n`` drawn uniformly with ``seed``, in the order drawn
    (numpy's ``default_rng(seed).choice(n, k, replace=False)``)."""
    return np.random.default_rng(seed).choice(n, k, replace=False).astype(np.int64)


__all__ = ["every_kth", "random_rows"]
