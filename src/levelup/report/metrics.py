"""Error statistics of predicted against reference energies, overall and per region of a scan.

Inputs are in Hartree (the internal unit; forces in Hartree/Angstrom work the same way);
statistics come out in kcal/mol (kcal/mol/Angstrom for forces), the unit of reports and plots.
Missing values (NaN in either array) are left out of the statistics and counted.

:func:`calibration` asks how well an ensemble's spread predicts its own error.

Example, the H2 tutorial's regions::

    regions = {"all": (-inf, inf), "0.5-2.5": (0.5, 2.5), "0.9-5.0": (0.9, 5.0)}
    stats = region_stats(predicted, db.get("CISD/cc-pVDZ"), db.distance(0, 1), regions)
    stats["0.9-5.0"]["rmse"]   # kcal/mol
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from levelup.errors import DataError
from levelup.units import HARTREE_TO_KCALMOL

#: Slack on region bounds, in the unit of the coordinate: scan coordinates made with np.arange
#: (0.5 + 0.01 * k) miss a nominal bound such as 2.5 by a few ulp, and a bound is meant inclusive.
BOUND_TOLERANCE = 1e-9

#: Regions of the H2 tutorial (H-H distance, Angstrom): the whole scan, the bound region, and the
#: range the tutorial's training points span (below 0.9 Angstrom a model extrapolates).
H2_REGIONS: dict[str, tuple[float, float]] = {
    "all": (-math.inf, math.inf),
    "0.5-2.5": (0.5, 2.5),
    "0.9-5.0": (0.9, 5.0),
}

#: Names of the statistics :func:`error_stats` returns.
STAT_NAMES = ("rmse", "mae", "max", "mean", "n", "n_missing")


def signed_errors(predicted, reference) -> np.ndarray:
    """Predicted minus reference, converted from Hartree to kcal/mol (NaN where either is NaN).

    Args:
        predicted, reference: arrays of the same shape, Hartree (or Hartree/Angstrom).

    Returns:
        float64 array of that shape, kcal/mol (or kcal/mol/Angstrom).
    """
    p = np.asarray(predicted, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if p.shape != r.shape:
        raise DataError(f"predicted values have shape {p.shape} but reference values have shape "
                        f"{r.shape}; pass one value per molecule (or per atom) in both")
    return (p - r) * HARTREE_TO_KCALMOL


def error_stats(predicted, reference) -> dict[str, float | int]:
    """RMSE, MAE, maximum absolute error and mean signed error of ``predicted`` vs ``reference``.

    Args:
        predicted, reference: arrays of the same shape (any shape; flattened), Hartree.

    Returns:
        ``{"rmse", "mae", "max", "mean"}`` in kcal/mol (``max`` is the largest absolute error,
        ``mean`` the mean of predicted minus reference), ``"n"``: the number of pairs used and
        ``"n_missing"``: pairs left out because either value is NaN. With no pair left the four
        statistics are NaN.
    """
    diff = signed_errors(predicted, reference).ravel()
    ok = np.isfinite(diff)
    n = int(ok.sum())
    if n == 0:
        rmse = mae = largest = mean = math.nan
    else:
        d = diff[ok]
        rmse = float(np.sqrt(np.mean(d * d)))
        mae = float(np.mean(np.abs(d)))
        largest = float(np.max(np.abs(d)))
        mean = float(np.mean(d))
    return {"rmse": rmse, "mae": mae, "max": largest, "mean": mean, "n": n,
            "n_missing": int(diff.size - n)}


def region_mask(coordinate, lo: float, hi: float, *, tolerance: float = BOUND_TOLERANCE) -> np.ndarray:
    """Boolean mask of ``lo <= coordinate <= hi`` with both bounds inclusive (to ``tolerance``)."""
    c = np.asarray(coordinate, dtype=np.float64)
    if not lo <= hi:
        raise DataError(f"a region must have lo <= hi; got ({lo}, {hi})")
    return (c >= lo - tolerance) & (c <= hi + tolerance)


def region_stats(
    predicted,
    reference,
    coordinate,
    regions: Mapping[str, tuple[float, float]],
    *,
    tolerance: float = BOUND_TOLERANCE,
) -> dict[str, dict[str, float | int]]:
    """:func:`error_stats` over each region of a scan coordinate.

    Args:
        predicted, reference: (molecules,) energies, Hartree.
        coordinate: (molecules,) scan coordinate (a distance in Angstrom, an angle in degrees).
        regions: name -> (lo, hi), both bounds inclusive (to ``tolerance``); ``(-inf, inf)`` is the
            whole scan.

    Returns:
        name -> statistics (kcal/mol), in the order of ``regions``. A region holding no molecule
        gets NaN statistics with ``n == 0``.
    """
    p = np.asarray(predicted, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(coordinate, dtype=np.float64)
    if not (p.ndim == 1 and p.shape == r.shape == c.shape):
        raise DataError(f"predicted {p.shape}, reference {r.shape} and coordinate {c.shape} must "
                        "be one value per molecule each, of the same length")
    out = {}
    for name, bounds in regions.items():
        try:
            lo, hi = (float(b) for b in bounds)
        except (TypeError, ValueError):
            raise DataError(f"region {name!r} must be a pair (lo, hi); got {bounds!r}") from None
        mask = region_mask(c, lo, hi, tolerance=tolerance)
        out[name] = error_stats(p[mask], r[mask])
    return out


@dataclass(frozen=True)
class Calibration:
    """How well an ensemble's predicted spread (standard deviation over members) tracks its
    actual error, over ``n`` geometries.

    Attributes:
        pearson: Pearson correlation between the spread and the absolute error (NaN when
            either is constant over the geometries).
        spearman: Spearman rank correlation between the same two (ties share their mean rank).
        within_1sigma: share of geometries with ``|error| <= spread`` (0.68 for well-calibrated
            Gaussian errors).
        within_2sigma: share of geometries with ``|error| <= 2 * spread`` (0.95 for
            well-calibrated Gaussian errors).
        rms_spread: root mean square of the spread, kcal/mol.
        rmse: root mean square of the error, kcal/mol (equal to ``rms_spread`` on average when
            the spread is calibrated).
        n: geometries used.
    """

    pearson: float
    spearman: float
    within_1sigma: float
    within_2sigma: float
    rms_spread: float
    rmse: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        """The attributes as a plain dict (for JSON)."""
        return asdict(self)


def _ranks(values: np.ndarray) -> np.ndarray:
    """(n,) ranks 0..n-1 of ``values`` (n,), ties given the mean of the ranks they span."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(values.size)
    ranks[order] = np.arange(values.size, dtype=np.float64)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two (n,) arrays; NaN when either is constant."""
    da, db = a - a.mean(), b - b.mean()
    scale = math.sqrt(float(np.dot(da, da)) * float(np.dot(db, db)))
    return float(np.dot(da, db) / scale) if scale > 0 else math.nan


def calibration(errors, spread) -> Calibration:
    """Calibration of an ensemble's spread against its actual errors.

    Args:
        errors: (n,) predicted minus reference energies, Hartree (the ensemble mean's error).
        spread: (n,) the ensemble's standard deviation over members at the same geometries,
            Hartree (``Prediction.energies_std``).

    Returns:
        A :class:`Calibration` (correlations, shares within 1 and 2 sigma, RMS spread and RMSE
        in kcal/mol).

    Raises:
        DataError: arrays of different lengths or not one value per geometry, fewer than 3
            geometries, NaN or infinite values, a negative spread, or a spread that is zero
            everywhere (a single model, or an ensemble of identical members, has no spread to
            calibrate).
    """
    e = np.asarray(errors, dtype=np.float64)
    s = np.asarray(spread, dtype=np.float64)
    if e.ndim != 1 or e.shape != s.shape:
        raise DataError(f"errors {e.shape} and spread {s.shape} must be one value per geometry "
                        "each, of the same length")
    if e.size < 3:
        raise DataError(f"calibration needs at least 3 geometries; got {e.size}")
    for name, values in (("errors", e), ("spread", s)):
        bad = int((~np.isfinite(values)).sum())
        if bad:
            raise DataError(f"{name} holds {bad} NaN or infinite value(s) of {values.size}; "
                            "leave those geometries out first")
    if (s < 0).any():
        raise DataError(f"spread must be a standard deviation (>= 0); got minimum {s.min():g}")
    if not (s > 0).any():
        raise DataError("the spread is zero at every geometry: a single model (or an ensemble "
                        "of identical members) has no spread to calibrate; use an Ensemble of "
                        "independently trained members")
    size = np.abs(e)
    return Calibration(
        pearson=_pearson(s, size),
        spearman=_pearson(_ranks(s), _ranks(size)),
        within_1sigma=float(np.mean(size <= s)),
        within_2sigma=float(np.mean(size <= 2 * s)),
        rms_spread=float(np.sqrt(np.mean(s * s))) * HARTREE_TO_KCALMOL,
        rmse=float(np.sqrt(np.mean(e * e))) * HARTREE_TO_KCALMOL,
        n=int(e.size),
    )
