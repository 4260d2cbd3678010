"""One row of a study's properties table (:mod:`levelup.study.propertystep`): the properties of
``[properties]`` computed on one source, a model the study made or a level of theory
(PySCF through the study's label cache), with what the source's calculations cost.

A row, as properties.json holds it (Angstrom, Hartree, cm^-1, kcal/mol)::

    {"structures": {"water": {"optimized": Optimized.to_dict() or None, "species": [8, 1, 1],
                              "coordinates_angstrom": [...], "energy_hartree": ...,
                              "frequencies": {"wavenumbers_cm-1": [...], "hessian_method": ...}
                                             or None}},
     "energies": EnergyDifferences.to_dict() or None,
     "cost": {"gradients": n, "hessians": n, "energies": n}}   # calculations the row took
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from levelup.data.structure import database_of
from levelup.study.schema import Properties


@dataclass
class Cost:
    """Calculations a source took for one row: gradients (optimisation steps, finite-difference
    displacements), analytic Hessians and single-point energies, whether computed in this run
    or found in the label cache (the cost of the result, not of this run)."""

    gradients: int = 0
    hessians: int = 0
    energies: int = 0

    def optimized(self, opt: Any) -> None:
        """Count the gradients of an :class:`~levelup.properties.optimize.Optimized` run."""
        self.gradients += int(opt.computed) + int(opt.cached)

    def to_dict(self) -> dict[str, int]:
        """Plain JSON values."""
        return {"gradients": self.gradients, "hessians": self.hessians, "energies": self.energies}


class DeltaPotential:
    """A delta model (the pre-trained model plus a correction) as a potential the properties
    functions can optimise on: energies and forces from
    :class:`~levelup.transfer.delta.DeltaModel`, the elements of its base model. Its Hessians
    are differences of its forces (a kernel correction has no autograd Hessian)."""

    def __init__(self, delta: Any) -> None:
        self.delta = delta
        self.elements = delta.base.elements
        self.symbols = delta.base.symbols

    def predict(self, db: Any, *, forces: bool = False, **options: Any) -> Any:
        """Energies (Hartree) and, if asked, forces (Hartree/Angstrom) of ``db``."""
        return self.delta.predict(db, forces=forces)


def compute_row(source: Any, props: Properties, molecules: dict[str, Any],
                named: dict[str, Any], *, hessian: str = "auto", cache: Any = None,
                workers: int | None = None, progress: bool = False) -> dict[str, Any]:
    """The row of ``source`` (a :class:`~levelup.properties.sources.Source`).

    Args:
        props: the study's ``[properties]``.
        molecules: stem -> Molecule of ``props.structures``.
        named: name -> Molecule of ``props.energies``.
        hessian: "auto" or "gradients" (:func:`levelup.properties.frequencies`).
        cache, workers, progress: how a level is labelled (:func:`levelup.label`).
    """
    from levelup.properties.frequencies import frequencies
    from levelup.properties.optimize import optimize

    options = {"cache": cache, "workers": workers, "progress": progress}
    cost, structures, runs = Cost(), {}, {}
    for stem, mol in molecules.items():
        opt = None
        if props.optimize:
            opt = optimize(mol, source, fmax=props.fmax, steps=props.steps, **options)
            cost.optimized(opt)
            runs[stem] = opt
        final = opt.structure if opt is not None else mol
        energy = opt.energy if opt is not None else _single_point(source, final, cost)
        entry = {"optimized": opt.to_dict() if opt is not None else None,
                 "species": [int(z) for z in final.species],
                 "coordinates_angstrom": np.asarray(final.coordinates).tolist(),
                 "energy_hartree": float(energy), "frequencies": None}
        if props.frequencies:
            freq = frequencies(opt if opt is not None else final, source, optimize_first=False,
                               method=hessian, **options)
            _count_hessian(cost, freq.hessian_method, len(final))
            entry["frequencies"] = {"wavenumbers_cm-1": [float(w) for w in freq.wavenumbers],
                                    "hessian_method": freq.hessian_method}
        structures[stem] = entry
    energies = None
    if props.energies:
        energies = _energies(source, props, named, runs, cost, options)
    return {"structures": structures, "energies": energies, "cost": cost.to_dict()}


def _single_point(source: Any, mol: Any, cost: Cost) -> float:
    cost.energies += 1
    return float(source.energies(mol, np.asarray(mol.coordinates)[None])[0][0])


def _count_hessian(cost: Cost, method: str, atoms: int) -> None:
    if method == "analytic":
        cost.hessians += 1
    elif method == "gradients":
        cost.gradients += 6 * atoms  # central differences of every Cartesian coordinate


def _energies(source: Any, props: Properties, named: dict[str, Any], runs: dict[str, Any],
              cost: Cost, options: dict[str, Any]) -> dict[str, Any]:
    """Energy differences of ``props.energies`` on ``source``; a structure that is also one of
    ``props.structures`` (the same file, no constraints) keeps that optimisation."""
    from levelup.properties.energies import energy_differences

    constraints = {name: list(specs) for name, specs in props.constraints}
    stems = {Path(p).resolve(): Path(p).stem for p in props.structures}
    given: dict[str, Any] = {}
    for name, path in props.energies:
        earlier = runs.get(stems.get(Path(path).resolve(), ""))
        given[name] = earlier if earlier is not None and name not in constraints \
            else named[name]
    diff = energy_differences(given, source, reference=props.reference,
                              optimize_first=props.optimize, constraints=constraints,
                              fmax=props.fmax, steps=props.steps, **options)
    for name, opt in diff.optimized.items():
        if opt is not None and opt is not given[name]:
            cost.optimized(opt)
    if not props.optimize:
        cost.energies += len(given)
    return diff.to_dict()


def molecule_arrays(mol: Any) -> dict[str, Any]:
    """The arrays that identify a structure in a row's key."""
    db = database_of(mol, np.asarray(mol.coordinates)[None])
    return {"species": db.species, "coordinates": db.coordinates, "charges": db.charges,
            "multiplicities": db.multiplicities}


__all__ = ["Cost", "DeltaPotential", "compute_row", "molecule_arrays"]
