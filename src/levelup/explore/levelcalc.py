"""An ASE calculator for a level of theory: each energy and force is one PySCF calculation
through levelup's qm layer (:func:`levelup.qm.calculators.compute`), so dynamics, optimisers and
NEB can run on "HF/STO-3G" the way they run on a model.

    atoms.calc = LevelCalculator("HF/STO-3G")
    atoms.get_forces()                   # eV/Angstrom, ASE's units

The geometries of a trajectory are each met once, so nothing goes to the label cache (which
holds geometries worth keeping); the numbers are those :func:`levelup.label` computes for the
same geometry with the same settings. Units: Hartree and Hartree/Angstrom inside levelup, eV and
eV/Angstrom here at the edge (``ase.units.Hartree``, as :mod:`levelup.ase`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.units import Hartree

from levelup.errors import DataError, LabelError
from levelup.qm.calculators import Job, compute
from levelup.qm.levels import Level, check_level, parse_level
from levelup.qm.serial import limited_threads
from levelup.qm.settings import LabelSettings


class LevelCalculator(Calculator):
    """ASE calculator: energy and analytic forces at a level of theory with PySCF.

    Args:
        level: "method/basis" with analytic gradients ("HF/STO-3G", "B3LYP/def2-SVP", ...).
        charge: total charge of the molecule.
        multiplicity: 2S+1.
        settings: SCF convergence settings (default: PySCF's, as :func:`levelup.label`).
        threads: PySCF (OpenMP) and BLAS threads during each calculation (None: the process's
            setting). One is fastest for small molecules on a busy machine (two OpenMP threads
            there can be tens of times slower).
        **kwargs: passed on to :class:`ase.calculators.calculator.Calculator`.

    Results (ASE units): ``energy`` and ``free_energy`` (eV), ``forces`` (atoms, 3) eV/Angstrom.

    Raises (from ``get_potential_energy`` and friends):
        LevelOfTheoryError: a basis lacking an element of the atoms.
        LabelError: a calculation that failed (an SCF that did not converge after retries).
        DataError: a periodic cell.
    """

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, level: str | Level, *, charge: int = 0, multiplicity: int = 1,
                 settings: LabelSettings | None = None, threads: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.level = parse_level(level)
        self.charge = int(charge)
        self.multiplicity = int(multiplicity)
        self.settings = settings or LabelSettings()
        if threads is not None and int(threads) < 1:
            raise DataError(f"threads must be at least 1 (or None); got {threads}")
        self.threads = threads
        self.calls = 0  # PySCF calculations made

    def check(self, species: Any) -> None:
        """Raise LevelOfTheoryError now, before any dynamics, when the level cannot give
        analytic forces for these atomic numbers."""
        check_level(self.level, [int(z) for z in np.asarray(species)], forces="analytic")

    def calculate(self, atoms: Any = None, properties: Any = ("energy",),
                  system_changes: Any = all_changes) -> None:
        """Fill ``self.results`` for ``atoms`` (ASE's protocol): one PySCF energy + gradient."""
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        if atoms.pbc.any():
            raise DataError(f"a level of theory here treats isolated molecules; these atoms have "
                            f"periodic boundaries {atoms.pbc.tolist()}: set atoms.pbc = False")
        species = tuple(int(z) for z in atoms.numbers)
        job = Job(self.level, species, self.charge, self.multiplicity, "analytic", self.settings)
        with limited_threads(self.threads):
            outcome = compute(job, atoms.positions)
        self.calls += 1
        if not outcome.ok:
            raise LabelError(f"{self.level.name} failed on a geometry of {atoms.get_chemical_formula()}"
                             f": {outcome.error}; the structure may be too distorted (lower the "
                             "temperature or the timestep) or the SCF needs other settings")
        self.results["energy"] = self.results["free_energy"] = outcome.energy * Hartree
        self.results["forces"] = outcome.forces * Hartree  # eV/Angstrom
