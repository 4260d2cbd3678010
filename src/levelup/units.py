"""Internal units, stated once: Angstrom for lengths, Hartree for energies, Hartree/Angstrom
for forces. Conversions happen only at the edges (Bohr inside ``levelup.qm``, kcal/mol in
plots and reports, and :func:`parse_unit` when a property is stored with
``Database.set(..., unit=...)``).

The units a property may be stored in (:func:`parse_unit`; spelling is case-insensitive):

- energies (per molecule, or per atom): Hartree (also "Ha", "Eh"), eV, kcal/mol, kJ/mol;
  stored converted to Hartree;
- forces and energy gradients (per atom): any energy unit above per Angstrom (also "A", "Å")
  or per Bohr, e.g. "eV/Angstrom", "Hartree/Bohr", "kcal/mol/Angstrom"; stored converted to
  Hartree/Angstrom;
- lengths: Angstrom, Bohr (stored in Angstrom); angles: degree, radian (stored in degrees);
  dipoles: Debye; dimensionless numbers: "1" (also "dimensionless" and ""), stored as "1";
- "unknown": values of unknown unit (extra columns of ASE files), stored as given. Training
  refuses them (``Database.get(name, unit="Hartree")``) until they are set again with a unit.

Any other unit is refused. Constants are CODATA 2018 (as TorchANI's and MLatom's kcal/mol).
"""

from __future__ import annotations

import math

from levelup.errors import DataError

#: Length unit of coordinates everywhere in levelup.
LENGTH = "Angstrom"
#: Energy unit of every stored energy.
ENERGY = "Hartree"
#: Unit of forces (negative energy gradients).
FORCE = "Hartree/Angstrom"
#: Unit of dimensionless properties (indices, counts, ratios).
DIMENSIONLESS = "1"
#: Recorded unit of values whose unit nobody stated (extra columns of ASE files).
UNKNOWN = "unknown"

#: kcal/mol per Hartree (CODATA 2018, the value TorchANI and MLatom use).
HARTREE_TO_KCALMOL = 627.509474
#: Angstrom per Bohr (CODATA 2018).
BOHR_TO_ANGSTROM = 0.529177210903
ANGSTROM_TO_BOHR = 1.0 / BOHR_TO_ANGSTROM
#: eV per Hartree (CODATA 2018).
HARTREE_TO_EV = 27.211386245988
#: kJ per kcal (thermochemical calorie, exact).
KCAL_TO_KJ = 4.184
#: kJ/mol per Hartree (CODATA 2018; 2625.4996...).
HARTREE_TO_KJMOL = HARTREE_TO_KCALMOL * KCAL_TO_KJ

#: Hartree in one of each energy unit.
ENERGY_UNITS = {"Hartree": 1.0, "eV": 1.0 / HARTREE_TO_EV, "kcal/mol": 1.0 / HARTREE_TO_KCALMOL,
                "kJ/mol": 1.0 / HARTREE_TO_KJMOL}
#: Angstrom in one of each length unit.
LENGTH_UNITS = {"Angstrom": 1.0, "Bohr": BOHR_TO_ANGSTROM}
#: Hartree/Angstrom in one of each force unit (every energy unit per every length unit).
FORCE_UNITS = {f"{e}/{length}": ENERGY_UNITS[e] / LENGTH_UNITS[length]
               for e in ENERGY_UNITS for length in LENGTH_UNITS}
#: degrees in one of each angle unit.
ANGLE_UNITS = {"degree": 1.0, "radian": 180.0 / math.pi}

#: kind -> (internal unit, {unit: how many internal units one of it is})
KINDS = {
    "energy": (ENERGY, ENERGY_UNITS),
    "force": (FORCE, FORCE_UNITS),
    "length": (LENGTH, LENGTH_UNITS),
    "angle": ("degree", ANGLE_UNITS),
    "dipole": ("Debye", {"Debye": 1.0}),
    "dimensionless": (DIMENSIONLESS, {DIMENSIONLESS: 1.0}),
    "unknown": (UNKNOWN, {UNKNOWN: 1.0}),
}

_SPELLINGS = {"ha": "Hartree", "eh": "Hartree", "a": "Angstrom", "å": "Angstrom",
              "ang": "Angstrom", "deg": "degree", "rad": "radian", "dimensionless": DIMENSIONLESS,
              "": DIMENSIONLESS}


def _lookup() -> dict[str, tuple[str, str, float]]:
    """lower-case spelling -> (kind, unit as levelup writes it, internal units per unit)."""
    table = {}
    for kind, (_, units) in KINDS.items():
        for unit, factor in units.items():
            table[unit.lower()] = (kind, unit, factor)
    for spelling, unit in _SPELLINGS.items():
        table[spelling] = table[unit.lower()]
    return table


_LOOKUP = _lookup()


def _find(text: str) -> tuple[str, str, float] | None:
    key = "".join(text.split()).lower()
    if key in _LOOKUP:
        return _LOOKUP[key]
    energy, _, length = key.rpartition("/")  # "Eh/Bohr", "kcal/mol/A"
    e, ell = _LOOKUP.get(_SPELLINGS.get(energy, energy).lower()), _LOOKUP.get(length)
    if e and ell and e[0] == "energy" and ell[0] == "length":
        return _LOOKUP[f"{e[1]}/{ell[1]}".lower()]
    return None


def valid_units() -> str:
    """The units :func:`parse_unit` accepts, as one line for error messages."""
    return "; ".join(f"{kind}: {', '.join(repr(u) for u in units)}"
                     for kind, (_, units) in KINDS.items())


def parse_unit(unit: str) -> tuple[str, str, float]:
    """``(kind, internal unit, factor)`` of ``unit``: values in ``unit`` times ``factor`` are in
    the internal unit of their kind (Hartree for energies, Hartree/Angstrom for forces, ...;
    see the module docstring). Spelling is case-insensitive ("Ha", "eh", "kj/mol", "eV/A").

    Raises DataError, listing the valid units, for any unit levelup does not know.
    """
    found = _find(unit) if isinstance(unit, str) else None
    if found is None:
        raise DataError(f"unknown unit {unit!r}; valid units are {valid_units()} (energies are "
                        "stored converted to Hartree, forces to Hartree/Angstrom); give one of "
                        "these, or 'unknown' for values of unknown unit (never trained on)")
    kind, _, factor = found
    return kind, KINDS[kind][0], factor


def hartree_to_kcalmol(value):
    """Convert an energy (scalar or array) from Hartree to kcal/mol."""
    return value * HARTREE_TO_KCALMOL
