"""Reaction and large-amplitude paths as geometry pools: a climbing-image nudged elastic band
(ASE's NEB) between two structures on a model or a level of theory, and seeded random
distortions around its images so that a pool covers the path's neighbourhood.

    path = neb_path("nh3.xyz", "nh3_inverted.xyz", "nh3_hf.pt", images=9)
    path.highest, path.barrier           # the top image; its energy above the initial, Hartree
    pool = path_pool(path.images, 20, 0.05, seed=0)

Scans along one internal coordinate are in :mod:`levelup.data.sampling`. Units: Angstrom,
Hartree, Hartree/Angstrom (ASE's eV only inside).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from levelup.data import Database
from levelup.data.molecule import Molecule
from levelup.data.sampling import random_distortions
from levelup.data.structure import as_molecule, database_of
from levelup.errors import DataError
from levelup.explore.sources import atoms_of, calculator, pyscf_threads, resolved
from levelup.progress import progress_bar
from levelup.units import DIMENSIONLESS, ENERGY

#: The optimisers a path can be relaxed with (ase.optimize).
OPTIMIZERS = ("FIRE", "BFGS")


@dataclass(frozen=True)
class NEBPath:
    """A relaxed nudged elastic band.

    Attributes:
        images: the images in order, the two ends included (Angstrom), with the properties
            ``neb_energy`` (Hartree, the source's potential energy) and ``neb_image`` (0, 1, ...).
        highest: index of the image of highest energy (the climbing image when it converged).
        converged: whether the largest NEB force fell below ``fmax`` within the steps given.
        steps: optimiser steps taken.
    """

    images: Database
    highest: int
    converged: bool
    steps: int

    @property
    def energies(self) -> np.ndarray:
        """(images,) potential energies, Hartree."""
        return self.images.get("neb_energy")

    @property
    def barrier(self) -> float:
        """Energy of the highest image above the initial structure, Hartree."""
        return float(self.energies[self.highest] - self.energies[0])


def check_ends(initial: Molecule, final: Molecule) -> None:
    """Raise DataError unless the two ends hold the same atoms in the same order, with the
    same charge and multiplicity."""
    if len(initial) != len(final) or not np.array_equal(initial.species, final.species):
        raise DataError(f"the two ends of a path must list the same atoms in the same order; got "
                        f"{initial.symbols} and {final.symbols}: reorder the atoms of one file")
    if (initial.charge, initial.multiplicity) != (final.charge, final.multiplicity):
        raise DataError(f"the two ends of a path differ in charge or multiplicity: "
                        f"({initial.charge}, {initial.multiplicity}) and ({final.charge}, "
                        f"{final.multiplicity})")


def neb_path(initial: Any, final: Any, source: Any, *, images: int = 9, climb: bool = True,
             fmax: float = 0.002, steps: int = 500, spring: float = 0.1,
             interpolation: Literal["idpp", "linear"] = "idpp",
             optimizer: Literal["FIRE", "BFGS"] = "FIRE", progress: bool = True,
             cache: Any = None, threads: int | None = None) -> NEBPath:
    """The minimum-energy path from ``initial`` to ``final`` by a (climbing-image) nudged
    elastic band on ``source``.

    Args:
        initial, final: the ends (Molecule, one-molecule Database, ase.Atoms or files), same
            atoms in the same order; minima of the potential, for a path between minima.
        source: an ANIModel, an Ensemble, a model file, or a level of theory ("HF/STO-3G":
            each energy and gradient a :func:`levelup.label` calculation).
        images: images in all, the two ends included (>= 3).
        climb: climbing image (its energy converges to the saddle point's).
        fmax: converged when the largest NEB force on any image is below this, Hartree/Angstrom
            (0.002 ~ ASE's customary 0.05 eV/Angstrom).
        steps: most optimiser steps.
        spring: spring constant between images, eV/Angstrom^2 (ASE's default 0.1).
        interpolation: first guess of the images: "idpp" (image-dependent pair potential,
            keeps bond lengths sensible) or "linear" (straight lines in Cartesians).
        optimizer: "FIRE" or "BFGS" (ase.optimize).
        progress: show a progress bar.
        cache: label cache of a level source (None: the user cache; False: none).
        threads: PySCF threads of a level source (None: the process's setting).

    Rotations and translations are removed along the band (the final end is rotated and
    translated onto the path: its internal geometry is unchanged). A path that has not
    converged is returned too (``converged`` False), not raised.
    """
    from ase.mep import NEB
    from ase.units import Hartree

    start, end = as_molecule(initial), as_molecule(final)
    _check_settings(start, end, images, fmax, steps, spring, interpolation, optimizer)
    source = resolved(source, cache=cache)
    band = [atoms_of(start), *(atoms_of(start) for _ in range(images - 2)), atoms_of(end)]
    for image in band:
        image.calc = calculator(source, start)
    neb = NEB(band, k=spring, climb=climb, remove_rotation_and_translation=True,
              method="improvedtangent")
    with pyscf_threads(threads):
        neb.interpolate(method=interpolation, apply_constraint=False)
    with pyscf_threads(threads):
        converged, taken = _relax(neb, optimizer, fmax * Hartree, steps, progress)
        energies = np.array([image.get_potential_energy() for image in band]) / Hartree
    db = database_of(start, np.array([image.positions for image in band]))
    spec = {"method": "NEB (ase.mep, improved tangent)" + (", climbing image" if climb else ""),
            "source": source.name, "fmax_hartree_per_angstrom": float(fmax),
            "converged": bool(converged), "steps": int(taken), "spring_ev_per_a2": float(spring),
            "interpolation": interpolation, "optimizer": optimizer}
    db.set("neb_energy", energies, unit=ENERGY, spec=spec)
    db.set("neb_image", np.arange(images, dtype=np.float64), unit=DIMENSIONLESS)
    return NEBPath(images=db, highest=int(np.argmax(energies)), converged=bool(converged),
                   steps=int(taken))


def _check_settings(start: Molecule, end: Molecule, images: int, fmax: float, steps: int,
                    spring: float, interpolation: str, optimizer: str) -> None:
    check_ends(start, end)
    if not (isinstance(images, (int, np.integer)) and 3 <= images <= 1000):
        raise DataError(f"images must be a whole number from 3 to 1000 (the two ends included); "
                        f"got {images}")
    if not (math.isfinite(fmax) and fmax > 0):
        raise DataError(f"fmax must be a positive number of Hartree/Angstrom; got {fmax}")
    if not (isinstance(steps, (int, np.integer)) and steps >= 1):
        raise DataError(f"steps must be a whole number >= 1; got {steps}")
    if not (math.isfinite(spring) and spring > 0):
        raise DataError(f"spring must be a positive number of eV/Angstrom^2; got {spring}")
    if interpolation not in ("idpp", "linear"):
        raise DataError(f"interpolation must be 'idpp' or 'linear'; got {interpolation!r}")
    if optimizer not in OPTIMIZERS:
        raise DataError(f"optimizer must be one of {list(OPTIMIZERS)}; got {optimizer!r}")


def _relax(neb: Any, optimizer: str, fmax_ev: float, steps: int, progress: bool
           ) -> tuple[bool, int]:
    """(converged, steps taken) of relaxing ``neb`` with the named ASE optimiser."""
    from ase import optimize

    opt = getattr(optimize, optimizer)(neb, logfile=None)
    bar = progress_bar(total=steps, desc="neb", unit="step", enabled=progress)
    opt.attach(lambda: bar.update(min(opt.nsteps, steps) - bar.n), interval=1)
    with contextlib.closing(bar):
        converged = opt.run(fmax=fmax_ev, steps=steps)
    return bool(converged), int(opt.nsteps)


def path_pool(path: Database | NEBPath, n: int, amplitude: float, *, seed: int = 0,
              include_images: bool = True) -> Database:
    """Geometries around a path: ``n`` random Cartesian distortions (uniform in
    [-amplitude, amplitude] Angstrom per coordinate, :func:`levelup.data.sampling.random_distortions`)
    of every image, after the images themselves (``include_images``).

    Args:
        path: the images (an :class:`NEBPath`, or any database of geometries of one molecule,
            such as a scan).
        n: distortions per image.
        amplitude: largest displacement per Cartesian coordinate, Angstrom.
        seed: the same seed gives the same pool (each image gets its own stream from it).

    Returns a Database; the property ``path_image`` says which image each geometry came from.
    """
    db = path.images if isinstance(path, NEBPath) else path
    if len(db) == 0:
        raise DataError("the path holds no images")
    if n < 1 and not include_images:
        raise DataError(f"n must be >= 1 (or include the images); got {n}")
    seeds = np.random.SeedSequence(seed).generate_state(len(db))
    parts, origin = [], []
    for k, mol in enumerate(db):
        bare = Molecule(mol.species, mol.coordinates, mol.charge, mol.multiplicity)
        if include_images:
            parts.append(database_of(bare, bare.coordinates[None]))
            origin.append(k)
        if n >= 1:
            parts.append(random_distortions(bare, n, amplitude, seed=int(seeds[k])))
            origin += [k] * n
    pool = Database.concatenate(parts)
    pool.set("path_image", np.array(origin, dtype=np.float64), unit=DIMENSIONLESS)
    return pool
