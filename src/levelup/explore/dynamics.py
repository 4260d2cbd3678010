"""Molecular-dynamics geometry pools: Langevin dynamics (ASE's integrator) at a temperature on a
levelup model or a level of theory, every n-th frame kept.

    pool = langevin_frames("water.xyz", "water_hf.pt", temperature=500, steps=4000, every=20)
    pool.get("time_fs")          # (frames,) when each frame was taken, fs since the start

The run is reproducible: one seeded ``numpy.random.Generator`` draws the initial velocities
(Maxwell-Boltzmann at the temperature) and every random force of the thermostat. The centre of
mass is held still (``ase.constraints.FixCom``), so the kinetic temperature counts 3N - 3
degrees of freedom. Units: Angstrom, Hartree, fs and K here; ASE's eV and its time unit only
inside.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np

from levelup.data import Database
from levelup.data.molecule import Molecule
from levelup.data.sampling import MAX_GEOMETRIES
from levelup.data.structure import as_molecule, database_of
from levelup.errors import DataError
from levelup.explore.sources import atoms_of, calculator, level_name, pyscf_threads, resolved
from levelup.progress import progress_bar
from levelup.units import DIMENSIONLESS, ENERGY

#: The largest number of MD steps a call takes (more is a typo).
MAX_STEPS = 100_000_000


def check_dynamics(*, temperature: float, steps: int, timestep: float, every: int | None = None,
                   friction: float | None = None, equilibrate: int = 0) -> None:
    """Raise DataError for settings that cannot make a run (before any work): a negative or
    non-finite temperature, no steps, ``every`` larger than ``steps`` (or too many frames), a
    timestep or friction that is not positive."""
    if not (math.isfinite(temperature) and temperature >= 0):
        raise DataError(f"temperature must be a finite number of kelvin >= 0; got {temperature}")
    if not (isinstance(steps, (int, np.integer)) and 1 <= steps <= MAX_STEPS):
        raise DataError(f"steps must be a whole number from 1 to {MAX_STEPS:,}; got {steps}")
    if not (math.isfinite(timestep) and timestep > 0):
        raise DataError(f"timestep must be a positive number of fs (0.5 suits molecules with "
                        f"hydrogen); got {timestep}")
    if every is not None and not (isinstance(every, (int, np.integer)) and 1 <= every <= steps):
        raise DataError(f"every must be a whole number from 1 to steps ({steps}): one frame is "
                        f"kept every `every` steps; got {every}")
    if every is not None and steps // every > MAX_GEOMETRIES:
        raise DataError(f"steps // every = {steps // every:,} frames is more than "
                        f"{MAX_GEOMETRIES:,}; keep fewer (a larger every)")
    if friction is not None and not (math.isfinite(friction) and friction > 0):
        raise DataError(f"friction must be a positive number per fs (0.01 is gentle); got "
                        f"{friction}")
    if not (isinstance(equilibrate, (int, np.integer)) and 0 <= equilibrate <= MAX_STEPS):
        raise DataError(f"equilibrate must be a whole number of steps >= 0; got {equilibrate}")


def thermalized(mol: Molecule, calc: Any, temperature: float, rng: np.random.Generator) -> Any:
    """``mol`` as ase.Atoms with ``calc``, its centre of mass fixed, and Maxwell-Boltzmann
    momenta at ``temperature`` (K) drawn from ``rng``: each Cartesian momentum normal with
    variance m kT, then the net momentum removed."""
    from ase.constraints import FixCom
    from ase.units import kB

    if len(mol) < 2:
        raise DataError("dynamics needs a molecule of at least 2 atoms (one atom with its centre "
                        "of mass fixed cannot move)")
    atoms = atoms_of(mol)
    atoms.calc = calc
    masses = atoms.get_masses()[:, None]  # (atoms, 1) amu
    momenta = rng.standard_normal((len(atoms), 3)) * np.sqrt(masses * kB * temperature)
    atoms.set_momenta(momenta - masses * momenta.sum(0) / masses.sum())
    atoms.set_constraint(FixCom())
    return atoms


def advance(dyn: Any, steps: int, bar: Any) -> None:
    """Run ``dyn`` (an ASE dynamics) ``steps`` steps and move the progress bar as far."""
    if steps > 0:
        dyn.run(steps)
        bar.update(steps)


def langevin_frames(structure: Any, source: Any, *, temperature: float, steps: int, every: int,
                    timestep: float = 0.5, friction: float = 0.01, seed: int = 0,
                    progress: bool = True, equilibrate: int = 0,
                    cache: Any = None, threads: int | None = None) -> Database:
    """Geometries from Langevin dynamics of ``structure`` at ``temperature``: one frame every
    ``every`` steps of the production run, ``steps // every`` frames in all.

    Args:
        structure: the starting molecule (a Molecule, a one-molecule Database, ase.Atoms or a
            file); a minimum of the potential is a good start.
        source: what gives the forces: an ANIModel, an Ensemble, a model file, or a level of
            theory ("HF/STO-3G": every step a :func:`levelup.label` calculation with PySCF).
        temperature: thermostat temperature and that of the initial velocities, K.
        steps: production steps after the equilibration (the frames come from these).
        every: keep one frame every ``every`` steps.
        timestep: fs.
        friction: Langevin friction, 1/fs (0.01: the velocities forget themselves in ~100 fs).
        seed: seed of the initial velocities and the random forces.
        progress: show a progress bar.
        equilibrate: steps run first and not kept.
        cache: label cache of a level source (None: the user cache; False: none).
        threads: PySCF threads of a level source (None: the process's setting; 1 is fastest
            for small molecules on a busy machine).

    Returns a Database of the frames (Angstrom; charge and multiplicity of ``structure``) with
    the properties ``md_energy`` (the source's potential energy, Hartree), ``time_fs`` (time
    since the initial velocities, fs) and ``temperature_K`` (kinetic temperature of the frame,
    K); the run's settings are recorded in the spec of ``md_energy``.

    Raises:
        DataError: bad settings, or a model without a network for an element (before any work).
        LevelOfTheoryError: a level that cannot treat the molecule (before any work).
        LabelError: a PySCF calculation that failed during the run (an SCF that did not
            converge on a distorted frame: lower the temperature or the timestep).
    """
    from ase.md.langevin import Langevin
    from ase.units import fs

    check_dynamics(temperature=temperature, steps=steps, timestep=timestep, every=every,
                   friction=friction, equilibrate=equilibrate)
    mol = as_molecule(structure)
    source = resolved(source, cache=cache)
    calc = calculator(source, mol)
    rng = np.random.default_rng(seed)
    atoms = thermalized(mol, calc, temperature, rng)
    dyn = Langevin(atoms, timestep * fs, temperature_K=temperature, friction=friction / fs,
                   fixcm=False, rng=rng, logfile=None)
    with pyscf_threads(threads):
        frames, energies, times, temperatures = _record(dyn, steps // every, every, equilibrate,
                                                        timestep, progress)
    db = database_of(mol, frames)
    spec = {"dynamics": "Langevin (ase.md.langevin), centre of mass fixed",
            "source": source.name, "temperature_K": float(temperature),
            "timestep_fs": float(timestep), "friction_per_fs": float(friction), "seed": int(seed),
            "equilibrate_steps": int(equilibrate), "every": int(every), "steps": int(steps)}
    db.set("md_energy", energies, unit=ENERGY, level=level_name(calc), spec=spec)
    db.set("time_fs", times, unit=DIMENSIONLESS, spec={"unit": "fs"})
    db.set("temperature_K", temperatures, unit=DIMENSIONLESS, spec={"unit": "K"})
    return db


def _record(dyn: Any, n: int, every: int, equilibrate: int, timestep: float, progress: bool
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run ``equilibrate`` steps, then ``n`` times ``every`` steps, keeping the last frame of
    each: (positions (n, atoms, 3) Angstrom, potential energies (n,) Hartree, times (n,) fs,
    kinetic temperatures (n,) K)."""
    from ase.units import Hartree

    atoms = dyn.atoms
    frames, energies = np.empty((n, len(atoms), 3)), np.empty(n)
    times, temperatures = np.empty(n), np.empty(n)
    bar = progress_bar(total=equilibrate + n * every, desc="md", unit="step", enabled=progress)
    with contextlib.closing(bar):
        advance(dyn, equilibrate, bar)
        for k in range(n):
            advance(dyn, every, bar)
            frames[k] = atoms.positions
            energies[k] = atoms.get_potential_energy() / Hartree
            times[k] = dyn.nsteps * timestep
            temperatures[k] = atoms.get_temperature()
    return frames, energies, times, temperatures
