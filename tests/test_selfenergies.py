"""Self energies: least squares without intercept, under-determined compositions, isolated
atoms."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from levelup.errors import DataError
from levelup.model.ani import ANIModel
from levelup.model.selfenergies import SelfEnergyWarning, composition_counts, fit_self_energies
from levelup.transfer.selfenergies import self_energies_from_atoms

TRUE = {1: -0.5, 6: -37.8, 7: -54.5, 8: -75.0}
FORMULAS = [[1, 1, 0, 0, 0], [8, 1, 1, 0, 0], [6, 1, 1, 1, 1], [7, 1, 1, 1, 0], [8, 8, 0, 0, 0],
            [6, 8, 0, 0, 0]]


def _energies(species):
    return np.array([sum(TRUE.get(int(z), 0.0) for z in row) for row in species])


def test_exact_recovery_and_order():
    species = np.array(FORMULAS * 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted = fit_self_energies(species, _energies(species), ["O", "H", "N", "C"])
    assert np.allclose(fitted, [-75.0, -0.5, -54.5, -37.8], rtol=0, atol=1e-10)


def test_noisy_data_is_least_squares():
    rng = np.random.default_rng(1)
    species = np.array(FORMULAS * 20)
    e = _energies(species) + rng.normal(scale=1e-3, size=len(species))
    fitted = fit_self_energies(species, e, [1, 6, 7, 8])
    counts = composition_counts(species, [1, 6, 7, 8])
    expected = np.linalg.solve(counts.T @ counts, counts.T @ e)
    assert np.allclose(fitted, expected, rtol=0, atol=1e-9)


def test_single_element_single_formula_is_determined():
    species = np.array([[1, 1]] * 4)
    e = np.array([-1.1, -1.0, -1.05, -1.12])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted = fit_self_energies(species, e, ["H"])
    assert np.isclose(fitted[0], e.mean() / 2)


def test_water_only_is_under_determined():
    species = np.array([[8, 1, 1]] * 3)
    e = np.array([-76.0, -76.1, -75.9])
    with pytest.warns(SelfEnergyWarning, match=r"only 1 of 2 .*H, O cannot be separated"):
        fitted = fit_self_energies(species, e, ["H", "O"])
    assert np.isclose(2 * fitted[0] + fitted[1], -76.0)
    # minimum norm: the solution is proportional to the composition (2, 1)
    assert np.isclose(fitted[0], 2 * fitted[1])


def test_absent_element_gets_zero_with_warning():
    species = np.array(FORMULAS[:2] * 2)
    with pytest.warns(SelfEnergyWarning, match="absent from the data: C"):
        fitted = fit_self_energies(species, _energies(species), ["H", "C", "O"])
    assert fitted[1] == 0 and np.allclose(fitted[[0, 2]], [-0.5, -75.0], atol=1e-10)


def test_bad_inputs():
    species = np.array([[1, 1], [8, 1]])
    with pytest.raises(DataError, match="O, which is not among"):
        fit_self_energies(species, [-1.0, -75.5], ["H"])
    with pytest.raises(DataError, match="NaN"):
        fit_self_energies(species, [-1.0, np.nan], ["H", "O"])
    with pytest.raises(DataError, match="3 energies for 2 molecules"):
        fit_self_energies(species, [-1.0, -2.0, -3.0], ["H", "O"])


def test_self_energies_from_isolated_atoms():
    model = ANIModel(["H"], hidden=(4,), seed=0)
    values = self_energies_from_atoms(model, "HF/STO-3G")
    # H atom, UHF/STO-3G: -0.46658 Hartree
    assert values.shape == (1,) and abs(values[0] + 0.46658) < 1e-4
    assert model.self_energies.tolist() == values.tolist()
