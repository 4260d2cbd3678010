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

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .data import Database, Molecule
from .errors import DataError

if TYPE_CHECKING:
    from ase import Atoms

#: Bond criterion: atoms closer than this times the sum of their covalent radii are bonded.
BOND_SCALE = 1.2
MAX_GEOMETRIES = 1_000_000  # a scan or distortion set larger than this is a typo


# ---------------------------------------------------------------------------------- structures
def read_structure(path: str | os.PathLike, index: int | None = None) -> Molecule:
    """One molecule from a file: a native .h5 database or anything ASE reads.

    A file of several molecules needs ``index`` (Python indexing, -1 for the last).
    """
    db = Database.read(path)
    if index is None:
        if len(db) != 1:
            raise DataError(f"{path} holds {len(db)} molecules; choose one with index= "
                            f"(--index in the CLI), e.g. -1 for the last")
        return db[0]
    if not -len(db) <= index < len(db):
        raise DataError(f"index {index} is out of range for {path}, which holds {len(db)} "
                        "molecules")
    return db[int(index)]


def _as_molecule(structure: Any) -> Molecule:
    if isinstance(structure, Molecule):
        return structure
    if isinstance(structure, Database):
        if len(structure) != 1:
            raise DataError(f"expected one molecule; the database holds {len(structure)} (take "
                            "one with db[i])")
        return structure[0]
    if isinstance(structure, (str, os.PathLike)):
        return read_structure(structure)
    from ase import Atoms

    if isinstance(structure, Atoms):
        return Database.from_ase([structure])[0]
    raise DataError(f"a structure is a levelup Molecule, a one-molecule Database, an ase.Atoms or "
                    f"a file name; got {type(structure).__name__}")


def _to_atoms(mol: Molecule) -> Atoms:
    from ase import Atoms

    return Atoms(numbers=mol.species, positions=mol.coordinates)


def _database(mol: Molecule, coordinates: np.ndarray) -> Database:
    """(n, atoms, 3) Angstrom -> a database of n copies of ``mol``'s atoms, charge, multiplicity."""
    n = coordinates.shape[0]
    return Database(np.broadcast_to(mol.species, (n, len(mol))).copy(), coordinates,
                    np.full(n, mol.charge), np.full(n, mol.multiplicity))


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

    mol = _as_molecule(structure)
    radii = covalent_radii[mol.species]
    d = np.linalg.norm(mol.coordinates[:, None] - mol.coordinates[None], axis=-1)
    bonded = d < scale * (radii[:, None] + radii[None])
    np.fill_diagonal(bonded, False)
    return bonded


def moving_fragment(structure: Any, fixed: int, moved: int) -> list[int]:
    """Atoms that move with ``moved`` when the bond ``fixed``-``moved`` changes: those reached
    from ``moved`` without crossing that bond, or ``[moved]`` alone when ``fixed`` is reached
    too (a ring, or two atoms that are not bonded but connected)."""
    mol = _as_molecule(structure)
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


def _scan_database(mol: Molecule, frames: list[np.ndarray], values: np.ndarray, unit: str,
                   kind: str, atoms: list[int], moved: list[int]) -> Database:
    db = _database(mol, np.stack(frames))
    db.set("scan", values, unit=unit, spec={"coordinate": kind, "atoms": atoms, "moved": moved})
    return db


def scan_distance(structure: Any, i: int, j: int, distances: Sequence[float], *,
                  move: Sequence[int] | None = None) -> Database:
    """Copies of ``structure`` with the distance between atoms ``i`` and ``j`` set to each of
    ``distances`` (Angstrom): atom ``i`` stays, ``j`` moves along the i-j line with its
    fragment (or the atoms ``move``).

    Returns a database with property ``scan`` (the distances, unit "Angstrom").
    """
    mol = _as_molecule(structure)
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
    return _scan_database(mol, frames, values, "Angstrom", "distance", [i, j], moved)


def scan_angle(structure: Any, i: int, j: int, k: int, angles: Sequence[float], *,
               move: Sequence[int] | None = None) -> Database:
    """Copies of ``structure`` with the angle i-j-k (at atom ``j``) set to each of ``angles``
    (degrees, strictly between 0 and 180): ``k`` and its fragment (or ``move``) rotate about
    ``j`` in the i-j-k plane.

    Returns a database with property ``scan`` (the angles, unit "degree").
    """
    mol = _as_molecule(structure)
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
    return _scan_database(mol, frames, values, "degree", "angle", [i, j, k], moved)


def scan_dihedral(structure: Any, i: int, j: int, k: int, l: int, angles: Sequence[float], *,
                  move: Sequence[int] | None = None) -> Database:
    """Copies of ``structure`` with the dihedral i-j-k-l set to each of ``angles`` (degrees,
    any value; ASE's convention, 0..360): ``l`` and the fragment on ``k``'s side (or ``move``)
    rotate about the j-k axis.

    Returns a database with property ``scan`` (the dihedrals, unit "degree").
    """
    mol = _as_molecule(structure)
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
    return _scan_database(mol, frames, values, "degree", "dihedral", [i, j, k, l], moved)


# ---------------------------------------------------------------------------------- distortions
def random_distortions(structure: Any, n: int, amplitude: float, *,
                       seed: int | None = None) -> Database:
    """``n`` copies of ``structure`` with every Cartesian coordinate of every atom displaced by
    an independent uniform random number in [-amplitude, amplitude] (Angstrom).

    The same ``seed`` gives the same geometries.
    """
    mol = _as_molecule(structure)
    if n < 1:
        raise DataError(f"n must be >= 1; got {n}")
    if not 0 < amplitude < np.inf:
        raise DataError(f"amplitude must be a positive number of Angstrom; got {amplitude}")
    rng = np.random.default_rng(seed)
    shifts = rng.uniform(-amplitude, amplitude, size=(n, len(mol), 3))
    return _database(mol, mol.coordinates[None] + shifts)


@dataclass(frozen=True)
class NormalModes:
    """Harmonic vibrations of a molecule (translations and rotations projected out).

    Attributes:
        wavenumbers: (modes,) cm^-1, ascending; negative for imaginary frequencies (a structure
            that is not a minimum).
        force_constants: (modes,) curvature along each mass-weighted mode, Hartree/(Angstrom^2
            amu); negative for imaginary modes.
        displacements: (modes, atoms, 3) Cartesian displacement (Angstrom) per unit of
            mass-weighted normal coordinate (Angstrom amu^1/2): M^-1/2 times the orthonormal
            mass-weighted eigenvector.
        masses: (atoms,) amu.
    """

    wavenumbers: np.ndarray
    force_constants: np.ndarray
    displacements: np.ndarray
    masses: np.ndarray


def _rigid_motions(xyz: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Orthonormal basis (3A, 5 or 6) of mass-weighted translations and rotations."""
    sqrt_m = np.sqrt(masses)
    centred = xyz - (masses[:, None] * xyz).sum(0) / masses.sum()
    vectors = []
    for axis in np.eye(3):
        vectors.append((sqrt_m[:, None] * axis).reshape(-1))
        vectors.append((sqrt_m[:, None] * np.cross(axis, centred)).reshape(-1))
    u, s, _ = np.linalg.svd(np.stack(vectors, axis=1), full_matrices=False)
    return u[:, s > 1e-6 * s.max()]  # a linear molecule has one rotation fewer


def _wavenumber_per_root_curvature() -> float:
    """cm^-1 per sqrt(Hartree/(Angstrom^2 amu)): ASE's conversion (ase.vibrations),
    hbar omega = s sqrt(curvature in eV/(Angstrom^2 amu))."""
    from ase.units import Hartree, _amu, _e, _hbar, invcm

    s = _hbar * 1e10 / np.sqrt(_e * _amu)  # eV per sqrt(eV/(Angstrom^2 amu))
    return float(s * np.sqrt(Hartree) / invcm)


def normal_modes(structure: Any, hessian: np.ndarray) -> NormalModes:
    """Normal modes of ``structure`` from its Cartesian Hessian (3A, 3A), Hartree/Angstrom^2,
    ordered atom-major (x0, y0, z0, x1, ...), e.g. ``model.predict(db, hessians=True)`` or
    :func:`hessian`. Masses are ASE's standard atomic masses.
    """
    from ase.data import atomic_masses

    mol = _as_molecule(structure)
    n3 = 3 * len(mol)
    h = np.asarray(hessian, dtype=np.float64)
    if h.shape != (n3, n3) or not np.isfinite(h).all():
        raise DataError(f"the Hessian of a {len(mol)}-atom molecule must be a finite ({n3}, {n3}) "
                        f"array; got shape {h.shape}")
    masses = atomic_masses[mol.species]
    inv_sqrt_m = np.repeat(masses ** -0.5, 3)
    weighted = inv_sqrt_m[:, None] * (h + h.T) / 2 * inv_sqrt_m[None]
    rigid = _rigid_motions(mol.coordinates, masses)
    # an orthonormal basis of the vibrations: the complement of the rigid motions
    q, _ = np.linalg.qr(np.concatenate([rigid, np.eye(n3)], axis=1))
    basis = q[:, rigid.shape[1]:n3]
    curvature, vectors = np.linalg.eigh(basis.T @ weighted @ basis)
    modes = (basis @ vectors).T  # (modes, 3A), orthonormal in mass-weighted coordinates
    wavenumbers = np.sign(curvature) * np.sqrt(np.abs(curvature)) * _wavenumber_per_root_curvature()
    return NormalModes(wavenumbers=wavenumbers, force_constants=curvature,
                       displacements=(modes * inv_sqrt_m[None]).reshape(-1, len(mol), 3),
                       masses=masses)


def hessian(structure: Any, source: Any, *, step: float = 0.005, cache: Any = None,
            workers: int | None = None, progress: bool = False) -> np.ndarray:
    """Cartesian Hessian (3A, 3A), Hartree/Angstrom^2, atom-major, of ``structure``.

    Args:
        source: a model (ANIModel or Ensemble: exact second derivatives by autograd), a model
            file, or a level of theory "method/basis" with analytic forces ("HF/STO-3G"):
            central differences of forces labelled with :func:`levelup.label` (6A + ...
            gradient calculations, cached like every label).
        step: finite-difference displacement, Angstrom (levels only).
        cache, workers, progress: passed to :func:`levelup.label` (levels only).
    """
    mol = _as_molecule(structure)
    db = _database(mol, mol.coordinates[None])
    if isinstance(source, (str, os.PathLike)) and os.path.isfile(source):
        from .modelfile import load_model

        source = load_model(source)
    if hasattr(source, "predict"):
        return source.predict(db, hessians=True).hessians[0]
    if not isinstance(source, str):
        raise DataError(f"a Hessian comes from a model, a model file or a level of theory string; "
                        f"got {type(source).__name__}")
    if not step > 0:
        raise DataError(f"step must be a positive number of Angstrom; got {step}")
    from .qm import label

    n3 = 3 * len(mol)
    shifts = np.zeros((2 * n3, len(mol), 3))
    for k in range(n3):
        shifts[2 * k].reshape(-1)[k] = step
        shifts[2 * k + 1].reshape(-1)[k] = -step
    displaced = _database(mol, mol.coordinates[None] + shifts)
    labelled = label(displaced, source, forces=True, cache=cache, workers=workers,
                     progress=progress, name="hessian")
    forces = labelled.get("forces/hessian").reshape(2 * n3, n3)
    if not np.isfinite(forces).all():
        raise DataError(f"some displaced geometries could not be labelled at {source}; the "
                        "Hessian needs all of them")
    h = -(forces[0::2] - forces[1::2]) / (2 * step)  # row k: d(gradient)/d(x_k)
    return (h + h.T) / 2


def normal_mode_distortions(structure: Any, hessian: np.ndarray, n: int, *,
                            temperature: float = 300.0, seed: int | None = None,
                            min_wavenumber: float = 100.0) -> Database:
    """``n`` copies of ``structure`` displaced along its normal modes, each normal coordinate
    drawn from the classical Boltzmann distribution of a harmonic oscillator at ``temperature``
    (K): Q_k ~ Normal(0, kT / curvature_k), so the mean harmonic energy is kT/2 per mode.

    ``hessian`` (3A, 3A), Hartree/Angstrom^2: see :func:`hessian`. ``structure`` should be a
    minimum of the Hessian's potential; modes with negative curvature are sampled with its
    absolute value, and modes softer than ``min_wavenumber`` (cm^-1) as if they had that
    wavenumber, so that flat modes do not fling atoms apart.
    """
    from ase.units import Hartree, kB

    mol = _as_molecule(structure)
    if n < 1:
        raise DataError(f"n must be >= 1; got {n}")
    if not 0 < temperature < np.inf:
        raise DataError(f"temperature must be positive (K); got {temperature}")
    modes = normal_modes(mol, hessian)
    if modes.wavenumbers.size == 0:
        raise DataError("a single atom has no vibrations to distort along")
    floor = (min_wavenumber / _wavenumber_per_root_curvature()) ** 2  # Hartree/(Angstrom^2 amu)
    curvature = np.maximum(np.abs(modes.force_constants), floor)
    kt = kB * temperature / Hartree  # Hartree
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, curvature.size)) * np.sqrt(kt / curvature)  # (n, modes)
    shifts = np.einsum("nm,mac->nac", q, modes.displacements)
    return _database(mol, mol.coordinates[None] + shifts)
