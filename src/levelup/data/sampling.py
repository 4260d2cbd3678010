"""Geometries to label: scans along a bond, an angle or a dihedral of a structure, random
Cartesian distortions, and distortions along normal modes. Every function returns a new
:class:`~levelup.data.Database` (charge and multiplicity of the structure kept).

Conventions: atom indices count from 0 (as in ASE and Python); distances in Angstrom, angles and
dihedrals in degrees, Hessians in Hartree/Angstrom^2, masses in amu, wavenumbers in cm^-1.

Which atoms move in a scan: the bond graph of the structure (atoms closer than 1.2 times the
sum of their covalent radii) is cut at the scanned bond (J-K for an angle I-J-K or a dihedral
I-J-K-L) and the side that holds the last atom moves as a rigid fragment; if both ends stay
connected (a ring) only the last atom moves. ``move=`` names the moving atoms explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from levelup.data.database import Database
from levelup.data.molecule import Molecule
from levelup.data.normalmodes import normal_modes, wavenumber_per_root_curvature
from levelup.data.structure import as_molecule, database_of
from levelup.errors import DataError

if TYPE_CHECKING:
    from ase import Atoms

#: Bond criterion: atoms closer than this times the sum of their covalent radii are bonded.
BOND_SCALE = 1.2
MAX_GEOMETRIES = 1_000_000  # a scan or distortion set larger than this is a typo


# ---------------------------------------------------------------------------------- structures
def _to_atoms(mol: Molecule) -> Atoms:
    from ase import Atoms

    return Atoms(numbers=mol.species, positions=mol.coordinates)


def _check_indices(mol: Molecule, indices: Sequence[int], what: str) -> list[int]:
    out = [int(i) for i in indices]
    n = len(mol)
    for i in out:
        if not 0 <= i < n:
            raise DataError(f"atom index {i} of the {what} is out of range: the molecule has {n} "
                            f"atoms, numbered 0..{n - 1}")
    if len(set(out)) != len(out):
        raise DataError(f"the {what} names an atom twice: {out}")
    return out


# ---------------------------------------------------------------------------------- scans
def scan_values(start: float, stop: float, step: float) -> np.ndarray:
    """``start, start + step, ...`` up to and including ``stop`` when it falls on the grid (to
    1e-9 of a step); ``step`` may be negative to scan downwards."""
    if not np.isfinite([start, stop, step]).all():
        raise DataError(f"a scan needs finite numbers; got from {start}, to {stop}, step {step}")
    if step == 0 or (stop - start) * step < 0:
        raise DataError(f"a scan from {start} to {stop} needs a non-zero step with the sign of "
                        f"{stop} - {start}; got step {step}")
    count = int(np.floor((stop - start) / step + 1e-9)) + 1
    if count > MAX_GEOMETRIES:
        raise DataError(f"a scan from {start} to {stop} in steps of {step} would make {count:,} "
                        f"geometries, over the limit of {MAX_GEOMETRIES:,}: take a larger step")
    return start + step * np.arange(count)


def bonds(structure: Any, scale: float = BOND_SCALE) -> np.ndarray:
    """(atoms, atoms) bool: pairs closer than ``scale`` times the sum of covalent radii."""
    from ase.data import covalent_radii

    mol = as_molecule(structure)
    radii = covalent_radii[mol.species]
    d = np.linalg.norm(mol.coordinates[:, None] - mol.coordinates[None], axis=-1)
    bonded = d < scale * (radii[:, None] + radii[None])
    np.fill_diagonal(bonded, False)
    return bonded


def moving_fragment(structure: Any, fixed: int, moved: int) -> list[int]:
    """Atoms that move with ``moved`` when the bond ``fixed``-``moved`` changes: those reached
    from ``moved`` without crossing that bond, or ``[moved]`` alone when ``fixed`` is reached
    too (a ring, or two atoms that are not bonded but connected)."""
    mol = as_molecule(structure)
    fixed, moved = _check_indices(mol, (fixed, moved), "bond")
    graph = bonds(mol)
    graph[fixed, moved] = graph[moved, fixed] = False
    seen, stack = {moved}, [moved]
    while stack:
        for nxt in np.flatnonzero(graph[stack.pop()]):
            if int(nxt) not in seen:
                seen.add(int(nxt))
                stack.append(int(nxt))
    return [moved] if fixed in seen else sorted(seen)


def _moving(mol: Molecule, move: Sequence[int] | None, fixed: int, moved: int,
            keep: Sequence[int]) -> list[int]:
    if move is None:
        atoms = moving_fragment(mol, fixed, moved)
        return atoms if not set(keep) & set(atoms) else [moved]
    atoms = _check_indices(mol, move, "list of moving atoms")
    if set(keep) & set(atoms):
        raise DataError(f"move={atoms} includes atoms {sorted(set(keep) & set(atoms))} that "
                        "define the scanned coordinate and must stay put")
    return atoms


def _scandatabase_of(mol: Molecule, frames: list[np.ndarray], values: np.ndarray, unit: str,
                   kind: str, atoms: list[int], moved: list[int]) -> Database:
    db = database_of(mol, np.stack(frames))
    db.set("scan", values, unit=unit, spec={"coordinate": kind, "atoms": atoms, "moved": moved})
    return db


def scan_distance(structure: Any, i: int, j: int, distances: Sequence[float], *,
                  move: Sequence[int] | None = None) -> Database:
    """Copies of ``structure`` with the distance between atoms ``i`` and ``j`` set to each of
    ``distances`` (Angstrom): atom ``i`` stays, ``j`` moves along the i-j line with its
    fragment (or the atoms ``move``).

    Returns a database with property ``scan`` (the distances, unit "Angstrom").
    """
    mol = as_molecule(structure)
    i, j = _check_indices(mol, (i, j), "bond")
    values = np.asarray(distances, dtype=np.float64).reshape(-1)
    if values.size == 0 or not (values > 0).all():
        raise DataError(f"distances must be positive (Angstrom); got {values.size} values, the "
                        f"smallest {values.min() if values.size else 'none'}")
    moved = _moving(mol, move, i, j, [i])
    atoms = _to_atoms(mol)
    frames = []
    for d in values:
        a = atoms.copy()
        a.set_distance(i, j, float(d), fix=0, indices=moved)
        frames.append(a.positions)
    return _scandatabase_of(mol, frames, values, "Angstrom", "distance", [i, j], moved)


def scan_angle(structure: Any, i: int, j: int, k: int, angles: Sequence[float], *,
               move: Sequence[int] | None = None) -> Database:
    """Copies of ``structure`` with the angle i-j-k (at atom ``j``) set to each of ``angles``
    (degrees, strictly between 0 and 180): ``k`` and its fragment (or ``move``) rotate about
    ``j`` in the i-j-k plane.

    Returns a database with property ``scan`` (the angles, unit "degree").
    """
    mol = as_molecule(structure)
    i, j, k = _check_indices(mol, (i, j, k), "angle")
    values = np.asarray(angles, dtype=np.float64).reshape(-1)
    if values.size == 0 or not ((values > 0) & (values < 180)).all():
        raise DataError(f"angles must lie strictly between 0 and 180 degrees; got {values}")
    atoms = _to_atoms(mol)
    current = atoms.get_angle(i, j, k)
    if not 1e-3 < current < 180 - 1e-3:
        raise DataError(f"atoms {i}, {j}, {k} lie on a line ({current:.4f} degrees), which "
                        "defines no plane to rotate in: bend the structure a little first")
    moved = _moving(mol, move, j, k, [i, j])
    frames = []
    for angle in values:
        a = atoms.copy()
        a.set_angle(i, j, k, float(angle), indices=moved)
        frames.append(a.positions)
    return _scandatabase_of(mol, frames, values, "degree", "angle", [i, j, k], moved)


def scan_dihedral(structure: Any, i: int, j: int, k: int, l: int, angles: Sequence[float], *,
                  move: Sequence[int] | None = None) -> Database:
    """Copies of ``structure`` with the dihedral i-j-k-l set to each of ``angles`` (degrees,
    any value; ASE's convention, 0..360): ``l`` and the fragment on ``k``'s side (or ``move``)
    rotate about the j-k axis.

    Returns a database with property ``scan`` (the dihedrals, unit "degree").
    """
    mol = as_molecule(structure)
    i, j, k, l = _check_indices(mol, (i, j, k, l), "dihedral")  # noqa: E741
    values = np.asarray(angles, dtype=np.float64).reshape(-1)
    if values.size == 0 or not np.isfinite(values).all():
        raise DataError(f"dihedrals must be finite numbers of degrees; got {values}")
    atoms = _to_atoms(mol)
    for a, b, c in ((i, j, k), (j, k, l)):
        angle = atoms.get_angle(a, b, c)
        if not 1e-3 < angle < 180 - 1e-3:
            raise DataError(f"atoms {a}, {b}, {c} lie on a line ({angle:.4f} degrees), so the "
                            f"dihedral {i}-{j}-{k}-{l} is undefined")
    moved = _moving(mol, move, j, k, [i, j])
    if l not in moved:
        moved = sorted({*moved, l})
    frames = []
    for angle in values:
        a = atoms.copy()
        a.set_dihedral(i, j, k, l, float(angle), indices=moved)
        frames.append(a.positions)
    return _scandatabase_of(mol, frames, values, "degree", "dihedral", [i, j, k, l], moved)


# ---------------------------------------------------------------------------------- distortions
def random_distortions(structure: Any, n: int, amplitude: float, *,
                       seed: int | None = None) -> Database:
    """``n`` copies of ``structure`` with every Cartesian coordinate of every atom displaced by
    an independent uniform random number in [-amplitude, amplitude] (Angstrom).

    The same ``seed`` gives the same geometries.
    """
    mol = as_molecule(structure)
    if n < 1:
        raise DataError(f"n must be >= 1; got {n}")
    if not 0 < amplitude < np.inf:
        raise DataError(f"amplitude must be a positive number of Angstrom; got {amplitude}")
    rng = np.random.default_rng(seed)
    shifts = rng.uniform(-amplitude, amplitude, size=(n, len(mol), 3))
    return database_of(mol, mol.coordinates[None] + shifts)


def normal_mode_distortions(structure: Any, hessian: np.ndarray, n: int, *,
                            temperature: float = 300.0, seed: int | None = None,
                            min_wavenumber: float = 100.0) -> Database:
    """``n`` copies of ``structure`` displaced along its normal modes, each normal coordinate
    drawn from the classical Boltzmann distribution of a harmonic oscillator at ``temperature``
    (K): Q_k ~ Normal(0, kT / curvature_k), so the mean harmonic energy is kT/2 per mode.

    ``hessian`` (3A, 3A), Hartree/Angstrom^2: see :func:`levelup.properties.hessians.hessian`.
    ``structure`` should be a minimum of the Hessian's potential; modes with negative curvature
    are sampled with its absolute value, and modes softer than ``min_wavenumber`` (cm^-1) as if they had that
    wavenumber, so that flat modes do not fling atoms apart.
    """
    from ase.units import Hartree, kB

    mol = as_molecule(structure)
    if n < 1:
        raise DataError(f"n must be >= 1; got {n}")
    if not 0 < temperature < np.inf:
        raise DataError(f"temperature must be positive (K); got {temperature}")
    modes = normal_modes(mol, hessian)
    if modes.wavenumbers.size == 0:
        raise DataError("a single atom has no vibrations to distort along")
    floor = (min_wavenumber / wavenumber_per_root_curvature()) ** 2  # Hartree/(Angstrom^2 amu)
    curvature = np.maximum(np.abs(modes.force_constants), floor)
    kt = kB * temperature / Hartree  # Hartree
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, curvature.size)) * np.sqrt(kt / curvature)  # (n, modes)
    shifts = np.einsum("nm,mac->nac", q, modes.displacements)
    return database_of(mol, mol.coordinates[None] + shifts)
