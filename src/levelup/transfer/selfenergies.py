"""Self energies of a model being transferred: refitted to the new level with the networks
kept (:func:`refit_self_energies`), set by hand (:func:`set_self_energies`) or set to
isolated-atom energies at the new level (:func:`self_energies_from_atoms`). Each acts on an
:class:`~levelup.model.ani.ANIModel` or every member of an :class:`~levelup.model.ani.Ensemble`;
all energies in Hartree. The least-squares fit itself is
:func:`levelup.model.selfenergies.fit_self_energies`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from levelup.data import Database
from levelup.elements import atomic_number
from levelup.errors import DataError
from levelup.model.selfenergies import fit_self_energies
from levelup.transfer.surgery import members
from levelup.units import ENERGY


def refit_self_energies(model: Any, db: Database, property: str) -> np.ndarray:
    """Refit the self energies to ``property`` (Hartree) by least squares, keeping the networks:
    the new self energies are the best per-element constants for ``E - sum of atomic network
    outputs``. Elements absent from ``db`` keep their values (a model pre-trained on CHNO and
    refitted on water keeps its C and N). Warns when the compositions cannot determine the
    self energies separately (e.g. only water: H and O are not separable); then the
    minimum-norm correction to the current values is used. Returns the new values (Hartree,
    in ``model.elements`` order; of the last member for an ensemble).
    """
    energies = np.asarray(db.get(property, unit=ENERGY), dtype=np.float64)
    keep = np.isfinite(energies)
    if not keep.any():
        raise DataError(f"property {property!r} has no values to refit self energies from")
    sub = db[keep]
    present = sub.elements
    values = np.zeros(0)
    for member in members(model):
        # the correction to the current self energies, fitted over the elements present;
        # minimum norm keeps it small (not the absolute values) when it is under-determined
        residual = energies[keep] - member.predict(sub).energies
        correction = fit_self_energies(sub.species, residual, present)
        values = member.self_energies.detach().cpu().double().numpy().copy()
        for z, c in zip(present, correction, strict=True):
            values[member.elements.index(z)] += c
        member.set_self_energies(values)
    return values


def set_self_energies(model: Any, values: Sequence[float] | dict[Any, float]) -> None:
    """Set the self energies (Hartree) of a model or of every ensemble member: a sequence in
    ``model.elements`` order, or a mapping from element (symbol or Z) to energy."""
    for member in members(model):
        member.set_self_energies(values)


def self_energies_from_atoms(model: Any, level: str, **label_options: Any) -> np.ndarray:
    """Set the self energies of a model (or every ensemble member) to isolated-atom energies at
    ``level`` ("method/basis") computed with PySCF, each atom in its ground-state multiplicity,
    and return them: (n_elements,) float64 Hartree in ``model.elements`` order.
    ``label_options`` go to :func:`levelup.qm.atoms.atom_energies` (cache, multiplicities, ...).
    """
    from levelup.qm.atoms import atom_energies

    elements = members(model)[0].elements
    table = atom_energies(list(elements), level, **label_options)
    values = np.array([table[atomic_number(e)] for e in elements], dtype=np.float64)
    set_self_energies(model, values)
    return values


__all__ = ["refit_self_energies", "self_energies_from_atoms", "set_self_energies"]
