"""One molecule, as handed out by indexing or iterating a :class:`~levelup.Database`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from levelup.elements import symbol

if TYPE_CHECKING:
    from ase import Atoms

    from levelup.data.columns import PropertyInfo

#: Key of ``ase.Atoms.info`` under which levelup records its properties' units and levels (JSON).
ASE_INFO_KEY = "levelup"


@dataclass(frozen=True, eq=False)
class Molecule:
    """A single molecule: a copy of one row of a database, without padding.

    Attributes:
        species: atomic numbers, shape (atoms,).
        coordinates: Cartesian coordinates in Angstrom, shape (atoms, 3).
        charge: total charge (elementary charges).
        multiplicity: spin multiplicity 2S+1.
        properties: named values of this molecule: floats for per-molecule properties
            (energies, Hartree), arrays of shape (atoms, ...) for per-atom ones (forces).
    """

    species: np.ndarray
    coordinates: np.ndarray
    charge: int = 0
    multiplicity: int = 1
    properties: dict[str, float | np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        """Number of atoms."""
        return len(self.species)

    @property
    def symbols(self) -> list[str]:
        """Element symbols, in atom order."""
        return [symbol(z) for z in self.species]

    @property
    def formula(self) -> str:
        """Hill-ordered formula, e.g. 'CH4O'."""
        return hill_formula(self.species)

    def same_geometry(self, other: Molecule, atol: float = 1e-10) -> bool:
        """True when ``other`` has the same species and coordinates (Angstrom, within atol)."""
        return (
            self.species.shape == other.species.shape
            and bool(np.array_equal(self.species, other.species))
            and bool(np.allclose(self.coordinates, other.coordinates, rtol=0.0, atol=atol))
        )

    def to_ase(self, info: dict[str, PropertyInfo] | None = None) -> Atoms:
        """This molecule as an ``ase.Atoms``: charge and multiplicity in ``atoms.info``, each
        property in levelup's units in ``atoms.info`` (per molecule) or ``atoms.arrays`` (per
        atom, (atoms, ...)), missing (NaN) ones left out. With ``info`` (a database's
        :attr:`~levelup.data.database.Database.properties`), the units and levels of the
        properties go to ``atoms.info["levelup"]`` as JSON, so that reading the file back
        restores them.
        """
        from ase import Atoms

        atoms = Atoms(numbers=self.species, positions=self.coordinates)
        atoms.info["charge"] = self.charge
        atoms.info["multiplicity"] = self.multiplicity
        meta: dict[str, Any] = {}
        for name, value in self.properties.items():
            if np.ndim(value) == 0:
                if np.isnan(value):
                    continue
                atoms.info[name] = float(value)
            else:
                if np.isnan(value).all():
                    continue
                atoms.arrays[name] = np.asarray(value, dtype=np.float64)
            if info and name in info:
                meta[name] = {"unit": info[name].unit, "level": info[name].level}
        if meta:
            atoms.info[ASE_INFO_KEY] = json.dumps(meta)
        return atoms

    def __repr__(self) -> str:
        """One line: formula, charge, multiplicity and property names."""
        props = ", ".join(sorted(self.properties)) or "none"
        return (
            f"Molecule({self.formula}, charge={self.charge}, "
            f"multiplicity={self.multiplicity}, properties: {props})"
        )


def hill_formula(species: np.ndarray) -> str:
    """Hill formula of atomic numbers ``species`` (atoms,), no padding (carbon first, then
    hydrogen, then the other symbols A-Z; counts above 1 after each symbol)."""
    counts: dict[str, int] = {}
    for z in species:
        s = symbol(int(z))
        counts[s] = counts.get(s, 0) + 1
    order = sorted(counts)
    if "C" in counts:
        order = ["C"] + (["H"] if "H" in counts else []) + [
            s for s in order if s not in ("C", "H")
        ]
    return "".join(s + (str(counts[s]) if counts[s] > 1 else "") for s in order)
