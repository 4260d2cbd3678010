"""Error statistics on closed-form inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from levelup.errors import DataError
from levelup.report.metrics import (
    H2_REGIONS,
    calibration,
    error_stats,
    region_mask,
    region_stats,
    signed_errors,
)
from levelup.units import HARTREE_TO_KCALMOL

K = HARTREE_TO_KCALMOL


def test_error_stats_closed_form():
    reference = np.zeros(4)
    predicted = np.array([3.0, -4.0, 0.0, 1.0]) / K  # kcal/mol errors 3, -4, 0, 1
    s = error_stats(predicted, reference)
    assert s["n"] == 4 and s["n_missing"] == 0
    assert s["rmse"] == pytest.approx(math.sqrt((9 + 16 + 0 + 1) / 4))
    assert s["mae"] == pytest.approx(2.0)
    assert s["max"] == pytest.approx(4.0)  # absolute, although the error is -4
    assert s["mean"] == pytest.approx(0.0)


def test_error_stats_ignores_and_counts_nan():
    reference = np.array([-1.0, np.nan, -1.0, -1.0])
    predicted = np.array([-1.0 + 2 / K, -1.0, np.nan, -1.0 - 2 / K])
    s = error_stats(predicted, reference)
    assert s["n"] == 2 and s["n_missing"] == 2
    assert s["rmse"] == pytest.approx(2.0) and s["mae"] == pytest.approx(2.0)
    assert s["max"] == pytest.approx(2.0) and s["mean"] == pytest.approx(0.0, abs=1e-9)


def test_error_stats_all_missing_is_nan_not_an_error():
    s = error_stats([np.nan, 1.0], [0.0, np.nan])
    assert s["n"] == 0 and s["n_missing"] == 2
    assert all(math.isnan(s[k]) for k in ("rmse", "mae", "max", "mean"))


def test_error_stats_shape_mismatch_is_a_data_error():
    with pytest.raises(DataError, match="shape"):
        error_stats(np.zeros(3), np.zeros(4))


def test_signed_errors_works_for_forces_shape():
    f = np.ones((2, 3, 3))
    assert signed_errors(f, f * 0).shape == (2, 3, 3)
    assert np.allclose(signed_errors(f, f * 0), K)


def test_region_bounds_are_inclusive_for_arange_coordinates():
    # np.arange misses 2.5 by a few ulp: the point must still count as inside 0.5-2.5
    r = np.arange(0.5, 5.01, 0.01)  # the tutorial's scan
    assert r[200] > 2.5 and r[450] > 5.0 and abs(r[200] - 2.5) < 1e-12
    assert region_mask(r, 0.5, 2.5).sum() == 201
    assert region_mask(r, 0.9, 5.0).sum() == 411
    assert region_mask(r, -math.inf, math.inf).sum() == 451


def test_region_stats_per_region():
    r = np.arange(0.5, 5.01, 0.01)
    reference = np.zeros_like(r)
    predicted = np.where(r < 0.9 - 1e-9, 10.0, 1.0) / K  # 10 kcal/mol below 0.9, 1 elsewhere
    stats = region_stats(predicted, reference, r, H2_REGIONS)
    assert list(stats) == ["all", "0.5-2.5", "0.9-5.0"]
    assert stats["0.9-5.0"]["n"] == 411
    assert stats["0.9-5.0"]["rmse"] == pytest.approx(1.0)
    assert stats["0.9-5.0"]["max"] == pytest.approx(1.0)
    assert stats["all"]["max"] == pytest.approx(10.0)
    assert stats["all"]["rmse"] == pytest.approx(math.sqrt((40 * 100 + 411) / 451))
    assert stats["0.5-2.5"]["n"] == 201
    assert stats["0.5-2.5"]["mae"] == pytest.approx((40 * 10 + 161) / 201)


def test_region_stats_empty_region_and_bad_input():
    r = np.linspace(0.5, 1.0, 6)
    stats = region_stats(r, r, r, {"far": (3.0, 4.0)})
    assert stats["far"]["n"] == 0 and math.isnan(stats["far"]["rmse"])
    with pytest.raises(DataError, match="lo <= hi"):
        region_stats(r, r, r, {"bad": (2.0, 1.0)})
    with pytest.raises(DataError, match="pair"):
        region_stats(r, r, r, {"bad": 1.0})
    with pytest.raises(DataError, match="same length"):
        region_stats(r, r, r[:3], H2_REGIONS)


# ---------------------------------------------------------------------------------- calibration
def test_calibration_of_gaussian_errors_with_their_true_sigma():
    rng = np.random.default_rng(0)
    sigma = rng.uniform(0.2, 3.0, 20000) / K  # Hartree; errors drawn with exactly this spread
    errors = rng.normal(0.0, sigma)
    c = calibration(errors, sigma)
    assert c.n == 20000
    assert c.within_2sigma == pytest.approx(0.9545, abs=0.01)
    assert c.within_1sigma == pytest.approx(0.6827, abs=0.01)
    assert c.rmse == pytest.approx(c.rms_spread, rel=0.03)  # kcal/mol, calibrated on average
    # |error| grows with sigma: E|e| = sigma sqrt(2/pi), so the correlation is clearly positive
    assert 0.3 < c.pearson < 0.7 and 0.3 < c.spearman < 0.7


def test_calibration_of_an_unrelated_or_too_small_spread():
    rng = np.random.default_rng(1)
    errors = rng.normal(0.0, 1.0, 20000) / K
    unrelated = rng.uniform(0.5, 1.5, 20000) / K
    c = calibration(errors, unrelated)
    assert abs(c.pearson) < 0.03 and abs(c.spearman) < 0.03
    overconfident = calibration(errors, np.full(20000, 0.1) / K)
    assert overconfident.within_2sigma == pytest.approx(0.159, abs=0.01)  # P(|z| <= 0.2)
    assert math.isnan(overconfident.pearson)  # a constant spread has no correlation


def test_calibration_closed_form_units_and_ranks():
    errors = np.array([1.0, -2.0, 3.0, -4.0]) / K
    spread = np.array([1.0, 0.5, 2.0, 1.0]) / K
    c = calibration(errors, spread)
    # 1 sigma: 1<=1, 2>0.5, 3>2, 4>1; 2 sigma: 1<=2, 2>1, 3<=4, 4>2
    assert c.within_1sigma == 0.25 and c.within_2sigma == 0.5
    assert c.rmse == pytest.approx(math.sqrt(30 / 4))
    assert c.rms_spread == pytest.approx(math.sqrt(6.25 / 4))
    # ranks of spread (ties share 1.5) against ranks of |error| 0..3
    assert c.spearman == pytest.approx(np.corrcoef([1.5, 0, 3, 1.5], [0, 1, 2, 3])[0, 1])
    assert c.pearson == pytest.approx(np.corrcoef(spread, np.abs(errors))[0, 1])
    assert c.as_dict()["n"] == 4 and set(c.as_dict()) >= {"pearson", "within_2sigma"}


@pytest.mark.parametrize("errors, spread, message", [
    ([0.1, 0.2, 0.3], [0.0, 0.0, 0.0], "zero at every geometry: a single model"),
    ([0.1, np.nan, 0.3], [0.1, 0.1, 0.1], "errors holds 1 NaN"),
    ([0.1, 0.2, 0.3], [0.1, np.inf, 0.1], "spread holds 1 NaN or infinite"),
    ([0.1, 0.2, 0.3], [0.1, -0.1, 0.1], "standard deviation"),
    ([0.1, 0.2, 0.3], [0.1, 0.1], "same length"),
    ([0.1, 0.2], [0.1, 0.1], "at least 3 geometries"),
])
def test_calibration_refuses_what_it_cannot_judge(errors, spread, message):
    with pytest.raises(DataError, match=message):
        calibration(errors, spread)
