"""Geometry optimisation on a model or a level of theory, with ASE's optimisers.

    opt = optimize("water.xyz", "HF/STO-3G")          # every gradient through the label cache
    opt = optimize(nh3, model, constraints="planar")   # the inversion's saddle, by symmetry
    opt.structure, opt.energy, opt.converged

A level's gradients are labelled through :func:`levelup.label`, one geometry at a time, so each
is committed to the label cache as it is computed: an interrupted optimisation picks up where it
stopped, and a repeated one recomputes nothing (ASE's optimisers are deterministic, so the same
start visits the same geometries).

The default threshold, ``fmax=1e-4`` Hartree/Angstrom on the largest atomic force, is set by
the accuracy chemists compare geometries at (0.0005 Angstrom, 0.1 degree): the geometry error
left is about force / curvature, so a stretch (curvature 0.5 to 2 Hartree/Angstrom^2 for bonds
to H and between first-row atoms) stays within 0.0002 Angstrom, and a bend (about 0.1
Hartree/rad^2, acting through a 1 Angstrom arm) within 0.001 rad = 0.06 degree. A tighter
threshold costs steps and meets the numerical noise of SCF gradients (about 1e-5
Hartree/Angstrom at PySCF's default convergence) and of float32 models.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from levelup.data.molecule import Molecule
from levelup.data.structure import as_molecule
from levelup.errors import ConfigError
from levelup.properties.constraints import apply_constraints, describe
from levelup.properties.sources import Source, SourceCalculator, source_of

#: Default convergence threshold on the largest atomic force, Hartree/Angstrom (module docstring).
FMAX = 1e-4
#: Default largest number of optimiser steps (one gradient each): small molecules from a
#: reasonable start converge in 10-40.
STEPS = 200
OPTIMIZERS = ("BFGS", "LBFGS", "BFGSLineSearch", "FIRE")


@dataclass(frozen=True)
class Optimized:
    """The result of :func:`optimize`.

    Attributes:
        structure: the final geometry (a Molecule: species, coordinates in Angstrom, charge,
            multiplicity).
        energy: its energy, Hartree.
        converged: whether the largest (constrained) atomic force fell below ``fmax``.
        steps: optimiser steps taken.
        fmax: largest atomic force at the end, Hartree/Angstrom (the components the
            constraints hold removed).
        source: the model or level it was optimised on.
        constraints: the constraints, as text.
        computed: new quantum-chemistry calculations (levels; 0 for a model).
        cached: gradients found in the label cache instead (levels).
    """

    structure: Molecule
    energy: float
    converged: bool
    steps: int
    fmax: float
    source: str
    constraints: tuple[str, ...] = ()
    computed: int = 0
    cached: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (units in the keys)."""
        return {
            "source": self.source,
            "symbols": self.structure.symbols,
            "coordinates_angstrom": np.asarray(self.structure.coordinates).tolist(),
            "charge": int(self.structure.charge),
            "multiplicity": int(self.structure.multiplicity),
            "energy_hartree": float(self.energy),
            "converged": bool(self.converged),
            "steps": int(self.steps),
            "fmax_hartree_per_angstrom": float(self.fmax),
            "constraints": list(self.constraints),
            "computed": int(self.computed),
            "cached": int(self.cached),
        }


def starting_structure(structure: Any) -> Molecule:
    """A Molecule from anything :func:`levelup.data.structure.as_molecule` takes, or from an
    :class:`Optimized` (its final structure)."""
    if isinstance(structure, Optimized):
        return structure.structure
    return as_molecule(structure)


def optimize(structure: Any, source: Any, *, fmax: float = FMAX, steps: int = STEPS,
             constraints: Any = None, optimizer: str | type = "BFGS", progress: bool = False,
             cache: Any = None, workers: int | None = 1, settings: Any = None) -> Optimized:
    """Minimise the energy of ``structure`` on ``source`` (under ``constraints``).

    Args:
        structure: a Molecule, a one-molecule Database, an ase.Atoms, a file, or an Optimized.
        source: a model (ANIModel, Ensemble), a model file, or a level of theory "method/basis"
            (forces: analytic gradients where PySCF has them, else finite differences).
        fmax: convergence threshold on the largest atomic force, Hartree/Angstrom.
        steps: the most optimiser steps; an optimisation that has not converged then is
            returned with ``converged=False``.
        constraints: text specs or ASE constraints (:mod:`levelup.properties.constraints`):
            "planar", "fix:0", "bond:0,1=1.0", "angle:1,0,2=104.5", "dihedral:0,1,2,3=180".
        optimizer: "BFGS" (default), "LBFGS", "BFGSLineSearch", "FIRE", or an ASE optimizer class.
        progress: a progress bar over the steps (the largest force beside it).
        cache, workers, settings: how a level is labelled (:func:`levelup.label`).

    Raises:
        ConfigError: fmax or steps out of range, or an unknown optimizer.
        DataError / LevelOfTheoryError: before any step, a structure the source cannot treat
            (a model without a network for one of its elements, a basis lacking one) or a bad
            constraint.
        LabelError: a level's calculation failed at some step.
    """
    if not (np.isfinite(fmax) and fmax > 0):
        raise ConfigError(f"fmax must be a positive number of Hartree/Angstrom; got {fmax}")
    if int(steps) < 0:
        raise ConfigError(f"steps must be 0 or more; got {steps}")
    mol = starting_structure(structure)
    src = source_of(source, cache=cache, workers=workers, settings=settings)
    src.check(mol)
    opt_class = _optimizer_class(optimizer)
    atoms = mol.to_ase()
    atoms.set_constraint(apply_constraints(atoms, constraints))
    with contextlib.ExitStack() as stack:
        if not src.is_model:  # one open cache for every step
            from levelup.qm.cache import open_cache

            store, own = open_cache(cache)
            if own:
                stack.callback(store.close)
            src = Source(src.name, level=src.level, cache=store, workers=src.workers,
                         settings=src.settings)
        converged, n_steps = _run(atoms, src, mol, opt_class, fmax, int(steps), progress)
        return _result(atoms, mol, src, converged, n_steps, constraints)


def _run(atoms: Any, src: Source, mol: Molecule, opt_class: type, fmax: float, steps: int,
         progress: bool) -> tuple[bool, int]:
    """Run the ASE optimiser; (converged, steps taken)."""
    from ase.units import Hartree

    from levelup.progress import progress_bar

    atoms.calc = SourceCalculator(src, mol)
    opt = opt_class(atoms, logfile=None)
    bar = progress_bar(total=steps, desc=f"optimising on {src.name}", unit="step",
                       enabled=progress)

    def tick() -> None:
        bar.update(1)
        largest = np.linalg.norm(atoms.get_forces(), axis=1).max() / Hartree
        bar.set_postfix_str(f"fmax {largest:.1e} Ha/A")

    opt.attach(tick, interval=1)
    try:
        converged = bool(opt.run(fmax=fmax * Hartree, steps=steps))
    finally:
        bar.close()
    return converged, int(opt.nsteps)


def _result(atoms: Any, mol: Molecule, src: Source, converged: bool, n_steps: int,
            constraints: Any) -> Optimized:
    """The Optimized of a finished run (Hartree, Hartree/Angstrom)."""
    from ase.units import Hartree

    energy = float(atoms.get_potential_energy()) / Hartree
    forces = atoms.get_forces() / Hartree  # constrained components removed
    final = Molecule(np.asarray(mol.species).copy(), np.array(atoms.positions, dtype=np.float64),
                     mol.charge, mol.multiplicity)
    return Optimized(structure=final, energy=energy, converged=converged, steps=n_steps,
                     fmax=float(np.linalg.norm(forces, axis=1).max()), source=src.name,
                     constraints=describe(constraints), computed=src.computed,
                     cached=src.cached)


def _optimizer_class(optimizer: str | type) -> type:
    """The ASE optimizer class named by ``optimizer`` (or the class itself)."""
    if isinstance(optimizer, type):
        return optimizer
    import ase.optimize

    names = {n.lower(): n for n in OPTIMIZERS}
    if not isinstance(optimizer, str) or optimizer.lower() not in names:
        raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)} or an ASE optimizer "
                          f"class; got {optimizer!r}")
    return getattr(ase.optimize, names[optimizer.lower()])
