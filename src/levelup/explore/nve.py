"""The dynamics check of a potential: microcanonical (NVE) dynamics with velocity Verlet, where
the total energy must stay constant. A potential with unphysical holes or kinks (a model
extrapolating where it never saw data) shows it here as a drift or jumps of the total energy.

    result = nve_check("water.xyz", "water_ccsdt.pt", temperature=300, time=10_000)
    print(result.text())     # drift, fluctuation, largest deviation; temperature trace

Velocity Verlet is time-reversible and symplectic: on a smooth surface the total energy
fluctuates by O(timestep^2) around a constant and does not drift. Units: fs, K, Hartree (and
kcal/mol in the summaries).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from levelup.data.structure import as_molecule
from levelup.errors import DataError
from levelup.explore.dynamics import advance, check_dynamics, thermalized
from levelup.explore.sources import calculator, pyscf_threads
from levelup.progress import progress_bar
from levelup.units import HARTREE_TO_KCALMOL


@dataclass(frozen=True)
class NVEResult:
    """The trace of an NVE run, sampled every ``every`` steps from the start.

    Attributes:
        time: (samples,) fs; the first sample is the start (0 fs).
        total: (samples,) total energy, Hartree (NaN once the run blew up).
        potential: (samples,) potential energy, Hartree.
        temperature: (samples,) kinetic temperature, K (3N - 3 degrees of freedom).
        timestep: fs.
        atoms: number of atoms.
        completed: False when the run stopped early on a non-finite energy.
    """

    time: np.ndarray
    total: np.ndarray
    potential: np.ndarray
    temperature: np.ndarray
    timestep: float
    atoms: int
    completed: bool = True

    @property
    def drift(self) -> float:
        """Total-energy drift over the whole run, Hartree: the slope of a straight-line fit of
        ``total`` against time, times the duration (inf if the run blew up)."""
        if not self.completed or self.time.size < 2:
            return math.inf if not self.completed else 0.0
        slope = np.polyfit(self.time, self.total, 1)[0]
        return float(slope * (self.time[-1] - self.time[0]))

    @property
    def fluctuation(self) -> float:
        """Standard deviation of the total energy, Hartree (inf if the run blew up)."""
        return float(np.std(self.total)) if self.completed else math.inf

    @property
    def max_deviation(self) -> float:
        """Largest |E_total(t) - E_total(0)|, Hartree (inf if the run blew up)."""
        return float(np.max(np.abs(self.total - self.total[0]))) if self.completed else math.inf

    def summary(self) -> dict[str, float | bool]:
        """The numbers of the check: drift, fluctuation, max_deviation in Hartree and
        kcal/mol (``*_kcalmol``), the run's length (fs) and its temperature (K: mean, std,
        min, max)."""
        out: dict[str, float | bool] = {"time_fs": float(self.time[-1]),
                                        "timestep_fs": self.timestep,
                                        "completed": self.completed}
        for name in ("drift", "fluctuation", "max_deviation"):
            value = getattr(self, name)
            out[name] = value
            out[f"{name}_kcalmol"] = value * HARTREE_TO_KCALMOL
        t = self.temperature[np.isfinite(self.temperature)]
        for name, f in (("mean", np.mean), ("std", np.std), ("min", np.min), ("max", np.max)):
            out[f"temperature_{name}_K"] = float(f(t)) if t.size else math.nan
        return out

    def text(self) -> str:
        """One line for people: the check's numbers in kcal/mol and K."""
        s = self.summary()
        head = "" if self.completed else "BLEW UP (non-finite energy); "
        return (f"NVE {s['time_fs']:g} fs at {self.timestep:g} fs/step: {head}total-energy drift "
                f"{s['drift_kcalmol']:.3g} kcal/mol, fluctuation (std) "
                f"{s['fluctuation_kcalmol']:.3g}, largest |dE| {s['max_deviation_kcalmol']:.3g}; "
                f"temperature {s['temperature_mean_K']:.0f} +- {s['temperature_std_K']:.0f} K "
                f"(min {s['temperature_min_K']:.0f}, max {s['temperature_max_K']:.0f})")


def nve_check(structure: Any, source: Any, *, temperature: float, time: float,
              timestep: float = 0.5, every: int = 1, seed: int = 0,
              progress: bool = True, cache: Any = None, threads: int | None = None
              ) -> NVEResult:
    """Run NVE dynamics (velocity Verlet) of ``structure`` for ``time`` fs and return the
    energy trace (:class:`NVEResult`: drift, fluctuation, largest deviation, temperatures).

    Args:
        structure: the starting molecule (a minimum of the potential is a good start).
        source: an ANIModel, an Ensemble, a model file, or a level of theory ("HF/STO-3G").
        temperature: of the initial Maxwell-Boltzmann velocities, K (from a minimum the
            temperature settles near half of it: equipartition with the potential energy).
        time: length of the run, fs (10 ps = 10000).
        timestep: fs.
        every: record the energies every ``every`` steps.
        seed: seed of the initial velocities.
        progress: show a progress bar.
        cache: label cache of a level source (None: the user cache; False: none).
        threads: PySCF threads of a level source (None: the process's setting).

    A run whose energy turns non-finite stops there; its drift and fluctuation are inf.
    """
    from ase.md.verlet import VelocityVerlet
    from ase.units import Hartree, fs

    if not (math.isfinite(time) and time > 0):
        raise DataError(f"time must be a positive number of fs; got {time}")
    steps = max(1, round(time / timestep)) if math.isfinite(timestep) and timestep > 0 else 1
    check_dynamics(temperature=temperature, steps=steps, timestep=timestep, every=every)
    mol = as_molecule(structure)
    calc = calculator(source, mol, cache=cache)
    atoms = thermalized(mol, calc, temperature, np.random.default_rng(seed))
    dyn = VelocityVerlet(atoms, timestep * fs, logfile=None)
    samples = []
    bar = progress_bar(total=steps - steps % every, desc="nve", unit="step", enabled=progress)
    with contextlib.closing(bar), pyscf_threads(threads):
        for k in range(steps // every + 1):
            if k:
                advance(dyn, every, bar)
            e_pot = atoms.get_potential_energy()
            samples.append((dyn.nsteps * timestep, (e_pot + atoms.get_kinetic_energy()) / Hartree,
                            e_pot / Hartree, atoms.get_temperature()))
            if not np.isfinite(samples[-1]).all():
                break
    t, total, potential, temps = (np.array(c) for c in zip(*samples, strict=True))
    return NVEResult(time=t, total=total, potential=potential, temperature=temps,
                     timestep=float(timestep), atoms=len(mol),
                     completed=bool(np.isfinite(total).all()))
