"""Which molecules a selection means: numpy-style indices and splits into parts, as row numbers."""

from __future__ import annotations

from typing import Any

import numpy as np

from levelup.errors import DataError


def selected_rows(index: Any, n: int) -> np.ndarray:
    """Row numbers (k,) int64 in 0..n-1 that ``index`` (a slice, a boolean mask (n,) or a 1-D
    array of ints, negative counting from the end) selects from ``n`` molecules."""
    if isinstance(index, slice):
        return np.arange(n)[index]
    arr = np.asarray(index)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise IndexError(f"boolean mask has shape {arr.shape}; expected ({n},)")
        return np.flatnonzero(arr)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        if arr.ndim == 1 and arr.size == 0:
            return arr.astype(np.int64)
        raise IndexError(
            f"index a database with an int, a slice, a boolean mask or an array of ints; "
            f"got {index!r}"
        )
    if arr.size and (arr.max() >= n or arr.min() < -n):
        raise IndexError(f"index out of range for a database of {n} molecules")
    return np.where(arr < 0, arr + n, arr).astype(np.int64)


def part_sizes(sizes: tuple[float, ...], n: int) -> list[int]:
    """Number of molecules in each part: ``sizes`` are all counts (ints) or all fractions of
    ``n`` (floats summing to at most 1, rounded; when they sum to 1 the last part takes the
    remainder)."""
    if not sizes:
        raise DataError("split needs the size of each part, e.g. split(0.8, 0.2)")
    if all(isinstance(s, (int, np.integer)) for s in sizes):
        counts = [int(s) for s in sizes]
    elif all(0 <= float(s) <= 1 for s in sizes):
        total = float(sum(sizes))
        if total > 1 + 1e-9:
            raise DataError(f"fractions {sizes} sum to {total:.3g} > 1")
        counts = [int(round(float(s) * n)) for s in sizes]
        if abs(total - 1) < 1e-9:
            counts[-1] = n - sum(counts[:-1])
    else:
        raise DataError(f"split sizes must be all counts (ints) or all fractions (0..1); "
                        f"got {sizes}")
    if any(c < 0 for c in counts) or sum(counts) > n:
        raise DataError(f"cannot split {n} molecules into parts of {counts}")
    return counts


def split_rows(sizes: tuple[float, ...], n: int, seed: int | None = 0,
               shuffle: bool = True) -> list[np.ndarray]:
    """Sorted row numbers of each part of a split of ``n`` molecules (see :func:`part_sizes`),
    drawn at random with ``seed`` or, with ``shuffle=False``, in order."""
    counts = part_sizes(sizes, n)
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    parts, start = [], 0
    for c in counts:
        parts.append(np.sort(order[start : start + c]))
        start += c
    return parts


def find_geometry(species: np.ndarray, coordinates: np.ndarray, n_atoms: np.ndarray,
                  target_species: np.ndarray, target_coordinates: np.ndarray,
                  atol: float = 1e-8) -> int:
    """Row of the first molecule of padded ``species`` (molecules, max_atoms), ``coordinates``
    (molecules, max_atoms, 3) Angstrom and ``n_atoms`` (molecules,) with exactly
    ``target_species`` (atoms,) and ``target_coordinates`` (atoms, 3) within ``atol`` Angstrom,
    or -1."""
    a = len(target_species)
    if a > species.shape[1]:
        return -1
    same = n_atoms == a
    same &= (species[:, :a] == target_species).all(axis=1)
    cand = np.flatnonzero(same)
    if cand.size == 0:
        return -1
    diff = np.abs(coordinates[cand, :a] - target_coordinates).max(axis=(1, 2))
    hit = cand[diff <= atol]
    return int(hit[0]) if hit.size else -1
