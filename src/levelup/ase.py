"""An ASE calculator around a levelup model: geometry optimisation, molecular dynamics and
everything else ASE does, with an ANI potential.

    from ase.optimize import BFGS
    from levelup.ase import LevelupCalculator

    atoms.calc = LevelupCalculator("h2.pt")      # a model file, an ANIModel or an Ensemble
    BFGS(atoms).run(fmax=1e-3)

Units: levelup works in Hartree and Hartree/Angstrom; ASE in eV and eV/Angstrom. The conversion
happens here, at the edge, with ASE's own constant (``ase.units.Hartree``), so ``results`` are
in ASE's units. Molecules only: the AEV has no periodic images, so a periodic cell is refused.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.units import Hartree

from levelup.errors import DataError
from levelup.model.ani import ANIModel, Ensemble
from levelup.model.predict import model_on, resolve_device

#: Results only an Ensemble gives (its members' spread and energies).
ENSEMBLE_PROPERTIES = ("energy_std", "member_energies")


class LevelupCalculator(Calculator):
    """ASE calculator for an :class:`~levelup.model.ani.ANIModel` or :class:`~levelup.model.ani.Ensemble`.

    Args:
        model: the model, or the path of a model file (:func:`levelup.load_model`).
        device: where to run ("cpu", "cuda"); the caller's model is not moved (a copy is).
        **kwargs: passed on to :class:`ase.calculators.calculator.Calculator` (``label``, ...).

    Results (ASE units):
        ``energy`` and ``free_energy``: total energy, eV (for an ensemble the mean of members).
        ``forces``: (atoms, 3) eV/Angstrom, minus the gradient of ``energy``.
        ``energy_std`` (ensembles only): sample standard deviation of the members' energies, eV,
        a measure of how far the geometry lies from the training data (0 for one member).
        ``member_energies`` (ensembles only): (members,) eV.

    ``calc.get_property("energy_std", atoms)`` works like ``get_potential_energy``; for a single
    ANIModel it raises ``PropertyNotImplementedError`` saying that only an Ensemble has a spread.

    Raises (from ``get_potential_energy`` and friends):
        DataError: for atoms whose elements the model has no network for, or a periodic cell.
    """

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, model: Any, *, device: str = "cpu",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(model, (str, os.PathLike)):
            from levelup.model.files import load_model

            model = load_model(model)
        from levelup.model.gpcorrected import GPCorrected

        if not isinstance(model, (ANIModel, Ensemble, GPCorrected)):
            raise DataError(f"LevelupCalculator needs an ANIModel, an Ensemble, a GPCorrected "
                            f"model or a model file; got {type(model).__name__}")
        self.model = model
        if isinstance(model, Ensemble):  # get_property("energy_std") works for ensembles only
            self.implemented_properties = [*self.implemented_properties, *ENSEMBLE_PROPERTIES]
        self.device = resolve_device(device)
        self._net = model_on(model, self.device)

    def get_property(self, name: str, atoms: Any = None, allow_calculation: bool = True) -> Any:
        """ASE's ``get_property``, with a message that says why a single model has no spread."""
        if name in ENSEMBLE_PROPERTIES and name not in self.implemented_properties:
            raise PropertyNotImplementedError(
                f"{name!r} needs an Ensemble (the spread over its members); this calculator "
                f"holds one {type(self.model).__name__}: use levelup.Ensemble([...]) of "
                "independently trained models")
        return super().get_property(name, atoms, allow_calculation)

    def calculate(self, atoms: Any = None, properties: Any = ("energy",),
                  system_changes: Any = all_changes) -> None:
        """Fill ``self.results`` for ``atoms`` (ASE's calculator protocol): energy, forces
        and, for ensembles, member energies and their spread, in eV and eV/Angstrom."""
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        if atoms.pbc.any():
            raise DataError(f"levelup models treat isolated molecules; these atoms have periodic "
                            f"boundaries {atoms.pbc.tolist()}: set atoms.pbc = False")
        species = self.model.species_index(atoms.numbers[None])  # DataError for unknown elements
        xyz = torch.tensor(atoms.positions[None], dtype=torch.float64, device=self.device,
                           requires_grad=True)  # (1, atoms, 3) Angstrom
        with torch.enable_grad():
            members = self._net.member_energies(species.to(self.device), xyz)  # (members, 1) Ha
            energy = members.mean(0)
            (grad,) = torch.autograd.grad(energy.sum(), xyz)
        e = float(energy.detach()[0]) * Hartree
        self.results["energy"] = e
        self.results["free_energy"] = e
        self.results["forces"] = -grad[0].detach().cpu().numpy() * Hartree  # eV/Angstrom
        if isinstance(self.model, Ensemble):
            member_ev = members.detach().cpu().numpy()[:, 0] * Hartree
            self.results["member_energies"] = member_ev
            self.results["energy_std"] = float(np.std(member_ev, ddof=1)) if member_ev.size > 1 \
                else 0.0
