"""One molecule, as handed out by indexing or iterating a :class:`~levelup.Database`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from levelup.elements import symbol


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

    def to_ase(self):
        """This molecule as an ``ase.Atoms`` (energy and forces attached when present)."""
        from levelup.data.io.asefiles import molecule_to_atoms

        return molecule_to_atoms(self)

    def __repr__(self) -> str:
        props = ", ".join(sorted(self.properties)) or "none"
        return (
            f"Molecule({self.formula}, charge={self.charge}, "
            f"multiplicity={self.multiplicity}, properties: {props})"
        )


def hill_formula(species: np.ndarray) -> str:
    """Hill formula of a set of atomic numbers (carbon first, then hydrogen, then A-Z)."""
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
