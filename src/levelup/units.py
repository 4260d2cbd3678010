"""Internal units, stated once: Angstrom for lengths, Hartree for energies, Hartree/Angstrom
for forces. Conversions happen only at the edges (Bohr inside ``levelup.qm``, kcal/mol in
plots and reports).
"""

from __future__ import annotations

#: Length unit of coordinates everywhere in levelup.
LENGTH = "Angstrom"
#: Energy unit of every stored energy.
ENERGY = "Hartree"
#: Unit of forces (negative energy gradients).
FORCE = "Hartree/Angstrom"

#: kcal/mol per Hartree (CODATA 2018, the value TorchANI and MLatom use).
HARTREE_TO_KCALMOL = 627.509474
#: Angstrom per Bohr (CODATA 2018).
BOHR_TO_ANGSTROM = 0.529177210903
ANGSTROM_TO_BOHR = 1.0 / BOHR_TO_ANGSTROM


def hartree_to_kcalmol(value):
    """Convert an energy (scalar or array) from Hartree to kcal/mol."""
    return value * HARTREE_TO_KCALMOL
