"""The geometry parameters chemists compare: bond lengths (Angstrom), angles between bonded
triples and proper dihedrals (degrees), named by element and index ("O0-H1", "H1-O0-H2",
"H2-C0-C1-H5"), and their differences between two structures (a model's optimised geometry
against the high level's).

Bonds are pairs closer than 1.3 times the sum of covalent radii
(:func:`levelup.data.sampling.bonds`), found on the reference structure so that both structures
are measured on the same parameters. Angles near 180 degrees make the dihedrals through them
undefined; such dihedrals are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from levelup.data.measure import angle, dihedral, distance
from levelup.data.molecule import Molecule
from levelup.errors import DataError

#: A dihedral is left out when one of its two angles is closer to 180 degrees than this.
LINEAR_DEGREES = 175.0
KINDS = ("bonds", "angles", "dihedrals")


@dataclass(frozen=True)
class GeometryParameters:
    """Internal coordinates of one structure.

    Attributes:
        bonds: name ("O0-H1") -> length, Angstrom.
        angles: name ("H1-O0-H2", the middle atom the vertex) -> degrees in [0, 180].
        dihedrals: name ("H2-C0-C1-H5") -> degrees in (-180, 180].
    """

    bonds: dict[str, float]
    angles: dict[str, float]
    dihedrals: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (units in the keys)."""
        return {"bonds_angstrom": dict(self.bonds), "angles_degrees": dict(self.angles),
                "dihedrals_degrees": dict(self.dihedrals)}


@dataclass(frozen=True)
class GeometryComparison:
    """A structure's parameters against a reference's, on the reference's bonds.

    Attributes:
        values: the structure's parameters.
        reference: the reference's parameters.
        differences: per kind ("bonds", "angles", "dihedrals"), name -> value minus reference
            (Angstrom or degrees; dihedrals wrapped to (-180, 180]).
    """

    values: GeometryParameters
    reference: GeometryParameters
    differences: dict[str, dict[str, float]]

    def max_abs(self, kind: str) -> float:
        """The largest absolute difference of one kind ("bonds", "angles", "dihedrals"); 0
        when the structure has none of that kind."""
        diffs = self.differences[kind]
        return max((abs(v) for v in diffs.values()), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values: both sets of parameters, the differences and their largest
        absolute value per kind."""
        return {"values": self.values.to_dict(), "reference": self.reference.to_dict(),
                "differences": {k: dict(v) for k, v in self.differences.items()},
                "max_abs": {k: self.max_abs(k) for k in KINDS}}


def _name(mol: Molecule, atoms: tuple[int, ...]) -> str:
    return "-".join(f"{mol.symbols[i]}{i}" for i in atoms)


def internal_coordinates(structure: Any) -> dict[str, list[tuple[int, ...]]]:
    """The bonds (i, j), angles (i, j, k) with vertex j, and proper dihedrals (i, j, k, l) of
    ``structure``'s bond graph, each once, in a fixed order."""
    from levelup.data.sampling import bonds as bond_matrix
    from levelup.data.structure import as_molecule

    mol = as_molecule(structure)
    graph = bond_matrix(mol)
    pairs = [(i, j) for i in range(len(mol)) for j in range(i + 1, len(mol)) if graph[i, j]]
    neighbours = [list(np.flatnonzero(graph[i])) for i in range(len(mol))]
    angles = [(int(i), j, int(k)) for j in range(len(mol)) for i in neighbours[j]
              for k in neighbours[j] if i < k]
    xyz = mol.coordinates
    dihedrals = []
    for j, k in pairs:
        for i in neighbours[j]:
            for ll in neighbours[k]:
                if len({int(i), j, k, int(ll)}) < 4:
                    continue
                if max(angle(xyz[i], xyz[j], xyz[k]), angle(xyz[j], xyz[k], xyz[ll])) \
                        > LINEAR_DEGREES:
                    continue
                dihedrals.append((int(i), j, k, int(ll)))
    return {"bonds": pairs, "angles": angles, "dihedrals": dihedrals}


def geometry_parameters(structure: Any, *, like: Any = None) -> GeometryParameters:
    """Bond lengths, bond angles and proper dihedrals of ``structure``.

    Args:
        structure: a Molecule, one-molecule Database, ase.Atoms, file, or anything with a
            ``structure`` attribute (an Optimized).
        like: measure the parameters of this structure's bond graph instead of the structure's
            own (the same atoms in the same order), so that two structures are compared on the
            same parameters.
    """
    mol = _molecule(structure)
    ref = mol if like is None else _molecule(like)
    if not np.array_equal(ref.species, mol.species):
        raise DataError(f"the structures differ in their atoms ({ref.formula} {ref.symbols} vs "
                        f"{mol.formula} {mol.symbols}); compare structures of the same atoms in "
                        "the same order")
    coords = internal_coordinates(ref)
    xyz = mol.coordinates
    return GeometryParameters(
        bonds={_name(mol, b): float(distance(xyz[b[0]], xyz[b[1]])) for b in coords["bonds"]},
        angles={_name(mol, a): float(angle(*(xyz[i] for i in a))) for a in coords["angles"]},
        dihedrals={_name(mol, d): float(dihedral(*(xyz[i] for i in d)))
                   for d in coords["dihedrals"]})


def compare_geometries(structure: Any, reference: Any) -> GeometryComparison:
    """``structure``'s parameters minus ``reference``'s, both measured on the reference's bond
    graph (Angstrom, degrees; dihedral differences wrapped to (-180, 180])."""
    ref = geometry_parameters(reference)
    values = geometry_parameters(structure, like=reference)
    diffs: dict[str, dict[str, float]] = {}
    for kind in KINDS:
        mine, theirs = getattr(values, kind), getattr(ref, kind)
        d = {name: mine[name] - theirs[name] for name in theirs}
        if kind == "dihedrals":
            d = {name: float(180.0 - (180.0 - v) % 360.0) for name, v in d.items()}
        diffs[kind] = d
    return GeometryComparison(values=values, reference=ref, differences=diffs)


def _molecule(structure: Any) -> Molecule:
    from levelup.data.structure import as_molecule

    return as_molecule(getattr(structure, "structure", structure))
