"""Error statistics on closed-form inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from levelup.errors import DataError
from levelup.report.metrics import H2_REGIONS, error_stats, region_mask, region_stats, signed_errors
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
