"""Properties chemists check on a potential, each computed from one *source*: a model (ANIModel,
Ensemble), a model file, or a level of theory "method/basis" (PySCF through the label cache).
Every result is a frozen dataclass with ``to_dict()`` (plain JSON values, units in the keys).

- :func:`optimize` -> :class:`Optimized`: the minimised structure (ASE's optimisers; constraints
  such as "planar" or a held dihedral give symmetric saddle points).
- :func:`frequencies` -> :class:`Frequencies`: harmonic wavenumbers (cm^-1, imaginary ones
  negative) and normal modes, after an optimisation on the same source by default;
  :func:`compare_frequencies` -> :class:`FrequencyComparison` (mode by mode).
- :func:`geometry_parameters` -> :class:`GeometryParameters` (bonds, angles, dihedrals) and
  :func:`compare_geometries` -> :class:`GeometryComparison` (a model's against a reference's).
- :func:`energy_differences` -> :class:`EnergyDifferences`: barrier and reaction energies
  (kcal/mol) between named structures.
- :func:`hessian`: the Cartesian Hessian, Hartree/Angstrom^2.
"""

from levelup.properties.energies import EnergyDifferences, energy_differences
from levelup.properties.frequencies import (
    Frequencies,
    FrequencyComparison,
    compare_frequencies,
    frequencies,
)
from levelup.properties.geometry import (
    GeometryComparison,
    GeometryParameters,
    compare_geometries,
    geometry_parameters,
)
from levelup.properties.hessians import hessian
from levelup.properties.optimize import Optimized, optimize
from levelup.properties.sources import Source, SourceCalculator, source_of

__all__ = [
    "EnergyDifferences",
    "Frequencies",
    "FrequencyComparison",
    "GeometryComparison",
    "GeometryParameters",
    "Optimized",
    "Source",
    "SourceCalculator",
    "compare_frequencies",
    "compare_geometries",
    "energy_differences",
    "frequencies",
    "geometry_parameters",
    "hessian",
    "optimize",
    "source_of",
]
