"""Self energies: the per-element constants an ANI model adds to its networks' outputs.

``E(molecule) ~ sum over atoms of self_energy[element]``, so the networks only learn the
(much smaller) rest. Here: the least-squares fit to the training energies
(:func:`fit_self_energies`, what TorchANI and MLatom do). Setting a model's self energies to
isolated-atom energies at a level of theory needs quantum chemistry, so it lives above the
model: :func:`levelup.transfer.selfenergies.self_energies_from_atoms`. All energies in Hartree.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from levelup.elements import atomic_number, symbol
from levelup.errors import DataError


class SelfEnergyWarning(UserWarning):
    """The compositions in the data cannot determine every self energy separately (for example
    a data set of one formula, or an element that never occurs); a minimum-norm solution is
    used instead."""


def composition_counts(species_z: np.ndarray, elements: Sequence[str | int]) -> np.ndarray:
    """Number of atoms of each element in each molecule, (molecules, n_elements) float64.

    Args:
        species_z: atomic numbers (molecules, atoms), 0 for padding.
        elements: the elements (symbols or Z), in the order of the columns.

    Raises DataError when a molecule holds an element not in ``elements``.
    """
    z = np.asarray(species_z)
    if z.ndim != 2:
        raise DataError(f"species must be atomic numbers of shape (molecules, atoms); got {z.shape}")
    zs = [atomic_number(e) for e in elements]
    counts = np.stack([(z == e).sum(axis=1) for e in zs], axis=1).astype(np.float64)
    unknown = np.setdiff1d(np.unique(z[z > 0]), zs)
    if unknown.size:
        raise DataError(f"the molecules contain {', '.join(symbol(int(u)) for u in unknown)}, "
                        f"which is not among the elements {[symbol(e) for e in zs]}")
    return counts


def fit_self_energies(
    species_z: np.ndarray, energies: np.ndarray, elements: Sequence[str | int]
) -> np.ndarray:
    """Least-squares self energies without intercept: minimise
    ``sum_n (E_n - sum_e count_ne * s_e)^2``.

    Args:
        species_z: atomic numbers (molecules, atoms), 0 for padding.
        energies: (molecules,) Hartree.
        elements: elements (symbols or Z) in the order of the result.

    Returns:
        (n_elements,) float64 Hartree, in ``elements`` order.

    Warns :class:`SelfEnergyWarning` when the compositions leave some self energies
    undetermined (e.g. only H2O: H and O cannot be told apart; only H2 is fine for H alone);
    the minimum-norm solution is returned then, and elements absent from the data get 0.
    """
    counts = composition_counts(species_z, elements)
    e = np.asarray(energies, dtype=np.float64).reshape(-1)
    if e.shape[0] != counts.shape[0]:
        raise DataError(f"{e.shape[0]} energies for {counts.shape[0]} molecules")
    if e.shape[0] == 0:
        raise DataError("no molecules to fit self energies to")
    if not np.isfinite(e).all():
        raise DataError(f"{int((~np.isfinite(e)).sum())} energies are NaN or infinite; drop those "
                        "molecules before fitting self energies")
    solution, _, rank, singular = np.linalg.lstsq(counts, e, rcond=None)
    n = counts.shape[1]
    if rank < n:
        # the (elements x elements) normal matrix has the same null space as counts, without the
        # molecules^2 memory of a full SVD of counts
        _, _, vt = np.linalg.svd(counts.T @ counts)
        null = vt[rank:]  # directions the data cannot see
        loose = [symbol(atomic_number(el)) for el, col in zip(elements, null.T, strict=True)
                 if np.abs(col).max() > 1e-8]
        absent = [symbol(atomic_number(el)) for el, col in zip(elements, counts.T, strict=True)
                  if not col.any()]
        detail = f"; absent from the data: {', '.join(absent)}" if absent else ""
        warnings.warn(
            f"the compositions determine only {rank} of {n} self energies: {', '.join(loose)} "
            f"cannot be separated{detail}. Using the minimum-norm solution; add molecules of "
            "other compositions or give the self energies explicitly",
            SelfEnergyWarning, stacklevel=2,
        )
    return solution


__all__ = ["SelfEnergyWarning", "composition_counts", "fit_self_energies"]
