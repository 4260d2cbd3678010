"""The rows of a study's properties (:mod:`levelup.study.propertyrows`) measured against the
reference row, the high level computed directly: each row's geometry on the reference's bonds
(:func:`levelup.properties.geometry_parameters`), and its largest differences in wavenumber,
bond length and angle, and in each energy difference. Angstrom, degrees, cm^-1, kcal/mol.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from levelup.data.molecule import Molecule

REFERENCE = "high"


def _molecule(entry: dict[str, Any]) -> Molecule:
    return Molecule(np.asarray(entry["species"], dtype=np.int64),
                    np.asarray(entry["coordinates_angstrom"], dtype=np.float64))


def geometries(rows: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """row -> structure -> :meth:`GeometryParameters.to_dict` of its final structure, measured
    on the reference row's bonds (so every row has the same parameters)."""
    from levelup.properties.geometry import geometry_parameters

    reference = rows[REFERENCE]["structures"]
    return {row: {stem: geometry_parameters(_molecule(entry),
                                            like=_molecule(reference[stem])).to_dict()
                  for stem, entry in data["structures"].items()}
            for row, data in rows.items()}


def differences(rows: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """row (every one but the reference) -> its largest absolute differences from the
    reference: ``max_abs_wavenumber_cm-1``, ``max_abs_bond_angstrom``,
    ``max_abs_angle_degrees`` (over every structure; None where a structure has none) and
    ``abs_energy_kcal_per_mol`` (name -> |difference| of each energy difference)."""
    from levelup.properties.geometry import compare_geometries

    ref = rows[REFERENCE]
    out: dict[str, dict[str, Any]] = {}
    for row, data in rows.items():
        if row == REFERENCE:
            continue
        wavenumbers, bonds, angles = [], [], []
        for stem, entry in data["structures"].items():
            theirs = ref["structures"][stem]
            comparison = compare_geometries(_molecule(entry), _molecule(theirs))
            bonds += [abs(v) for v in comparison.differences["bonds"].values()]
            angles += [abs(v) for v in comparison.differences["angles"].values()]
            wavenumbers += _wavenumber_differences(entry, theirs)
        out[row] = {"max_abs_wavenumber_cm-1": max(wavenumbers, default=None),
                    "max_abs_bond_angstrom": max(bonds, default=None),
                    "max_abs_angle_degrees": max(angles, default=None),
                    "abs_energy_kcal_per_mol": _energy_differences(data, ref)}
    return out


def _wavenumber_differences(entry: dict[str, Any], reference: dict[str, Any]) -> list[float]:
    """|wavenumber - reference's|, the k-th lowest against the k-th lowest (as
    :func:`levelup.properties.compare_frequencies` pairs them); [] without frequencies or for
    structures of different mode counts (a linear against a bent one)."""
    if entry.get("frequencies") is None or reference.get("frequencies") is None:
        return []
    mine = np.sort(entry["frequencies"]["wavenumbers_cm-1"])
    theirs = np.sort(reference["frequencies"]["wavenumbers_cm-1"])
    if mine.shape != theirs.shape:
        return []
    return [float(v) for v in np.abs(mine - theirs)]


def _energy_differences(data: dict[str, Any], reference: dict[str, Any]) -> dict[str, float]:
    """name -> |relative energy - the reference's|, kcal/mol (the zero's name left out)."""
    if data.get("energies") is None or reference.get("energies") is None:
        return {}
    mine = data["energies"]["relative_kcal_per_mol"]
    theirs = reference["energies"]["relative_kcal_per_mol"]
    zero = reference["energies"]["reference"]
    return {name: abs(float(mine[name]) - float(theirs[name])) for name in theirs
            if name != zero}


__all__ = ["REFERENCE", "differences", "geometries"]
