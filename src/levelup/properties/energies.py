"""Barrier and reaction energies between named structures, on a model or a level of theory:

    diff = energy_differences({"pyramidal": nh3, "planar": nh3}, "HF/STO-3G",
                              constraints={"planar": "planar"})
    diff.relative["planar"]          # the inversion barrier, kcal/mol

Each structure is optimised on the source first (a saddle point by constrained minimisation:
its constraints hold the symmetry), unless ``optimize=False``; the energies are then compared
with the reference structure's (the first one unless named).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from levelup.errors import ConfigError
from levelup.properties.optimize import FMAX, STEPS, Optimized, optimize, starting_structure
from levelup.properties.sources import source_of
from levelup.units import HARTREE_TO_KCALMOL


@dataclass(frozen=True)
class EnergyDifferences:
    """Energies of named structures on one source, and their differences.

    Attributes:
        source: the model or level.
        reference: the name the differences are taken from.
        energies: name -> energy, Hartree.
        relative: name -> energy minus the reference's, kcal/mol (0 for the reference).
        optimized: name -> the optimisation of that structure (None where it was taken as
            given).
    """

    source: str
    reference: str
    energies: dict[str, float]
    relative: dict[str, float]
    optimized: dict[str, Optimized | None]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (units in the keys)."""
        return {
            "source": self.source,
            "reference": self.reference,
            "energies_hartree": dict(self.energies),
            "relative_kcal_per_mol": dict(self.relative),
            "optimized": {k: (v.to_dict() if v is not None else None)
                          for k, v in self.optimized.items()},
        }


def energy_differences(structures: Mapping[str, Any], source: Any, *,
                       reference: str | None = None, optimize_first: bool = True,
                       constraints: Mapping[str, Any] | None = None, fmax: float = FMAX,
                       steps: int = STEPS, cache: Any = None, workers: int | None = 1,
                       progress: bool = False, settings: Any = None) -> EnergyDifferences:
    """Energies of two or more named structures on ``source`` and their differences (kcal/mol).

    Args:
        structures: name -> structure (a Molecule, ase.Atoms, file, ... or an Optimized, which
            is taken as it is), e.g. {"reactant": ..., "saddle": ..., "product": ...}.
        source: a model, a model file, or a level of theory "method/basis".
        reference: the name whose energy is the zero (default: the first).
        optimize_first: optimise each structure on ``source`` first.
        constraints: name -> constraints of that structure's optimisation ("planar", a
            dihedral held, ...; see :mod:`levelup.properties.constraints`).
        fmax, steps: the optimisations' threshold (Hartree/Angstrom) and step limit.
        cache, workers, progress, settings: how a level is labelled (:func:`levelup.label`).

    Raises:
        ConfigError: fewer than two structures, an unknown reference, or constraints for a
            name that is not a structure.
    """
    names = list(structures)
    if len(names) < 2:
        raise ConfigError(f"energy differences need at least two named structures; got {names}")
    reference = names[0] if reference is None else reference
    if reference not in structures:
        raise ConfigError(f"reference {reference!r} is not one of the structures {names}")
    constraints = dict(constraints or {})
    unknown = sorted(set(constraints) - set(names))
    if unknown:
        raise ConfigError(f"constraints given for {unknown}, which are not among the structures "
                          f"{names}")
    src = source_of(source, cache=cache, workers=workers, settings=settings)
    for name in names:  # every check before the first calculation
        src.check(starting_structure(structures[name]))
    energies: dict[str, float] = {}
    runs: dict[str, Optimized | None] = {}
    for name in names:
        given = structures[name]
        if isinstance(given, Optimized):
            runs[name] = given
        elif optimize_first:
            runs[name] = optimize(given, src, fmax=fmax, steps=steps,
                                  constraints=constraints.get(name), progress=progress,
                                  cache=cache, workers=workers, settings=settings)
        else:
            runs[name] = None
        if runs[name] is not None and runs[name].source == src.name:
            energies[name] = runs[name].energy
        else:  # a single point (an Optimized from another source: at its structure)
            mol = starting_structure(given)
            energies[name] = float(src.energies(mol, mol.coordinates[None])[0][0])
    relative = {n: float((e - energies[reference]) * HARTREE_TO_KCALMOL)
                for n, e in energies.items()}
    return EnergyDifferences(source=src.name, reference=reference, energies=energies,
                             relative=relative, optimized=runs)
