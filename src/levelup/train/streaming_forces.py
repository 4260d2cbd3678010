"""Force training on data larger than memory: :class:`StreamedGeometries`.

Training on forces needs the derivative of the AEV, so it is recomputed every step (nothing like
the energy features of :mod:`levelup.train.streaming` is cached); what such training holds is
the geometries and the reference forces themselves. :class:`~levelup.train.batching.
GeometryBatches` keeps all of them in memory, padded to the largest molecule. Here they are held
within a memory budget instead:

- the molecules are read from a *source* (:mod:`levelup.train.streaming_sources`: arrays in
  memory, or a native HDF5 file read with h5py slices) block by block;
- the geometries and forces of the first molecules, as many whole blocks as fit in the budget,
  are read once and kept, unpadded (one row per atom: species, coordinates, forces); the others
  are read from the source again every epoch;
- an epoch walks *windows* of at most :data:`FORCE_WINDOW_ATOMS` atoms; only one window's
  molecules are in memory at a time. So memory is the budget plus one window (about 8 MB) plus
  about 30 bytes per molecule of bookkeeping (atom counts, targets, the epoch's order), plus what
  a step itself needs (the autograd graph of one batch's AEV).

Epoch order: when every molecule is in memory (or one window holds them all), the batches are
exactly those of GeometryBatches
(batches of one molecule size, shuffled within each size and then together), drawn from the
same generator: training equals in-memory training. Otherwise a seeded permutation of all the
molecules is grouped by :func:`~levelup.train.streaming.block_order` (a window's worth of blocks
at a time, taken in a random order), each window's molecules are batched as GeometryBatches
batches a whole set (by size, shuffled), and the windows follow each other. Deterministic: same
generator state, same batches, whatever the budget, the source, or the number of processes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from levelup.train.batching import GeometryBatches
from levelup.train.streaming import BLOCK, block_order, check_budget
from levelup.train.streaming_sources import ArraySource, FileSource, rows_of

#: atoms whose geometries and forces one window holds: 2**18 atoms of (3 + 3) float32 and an
#: int8 species, about 6 MB
FORCE_WINDOW_ATOMS = 2**18
#: molecules per read of the pass that counts the atoms
_PASS = 8192


def geometry_bytes(n_atoms: np.ndarray, itemsize: int) -> np.ndarray:
    """(molecules,) int64 bytes one molecule's geometry and forces take in memory: per atom an
    int8 species and 3 + 3 numbers of ``itemsize`` bytes, per molecule an int64 offset."""
    return n_atoms.astype(np.int64) * (6 * itemsize + 1) + 8


def size_batches(ids: np.ndarray, n_atoms: np.ndarray, batch_size: int,
                 generator: torch.Generator | None) -> list[np.ndarray]:
    """Batches of molecules ``ids`` as :meth:`GeometryBatches.batches` makes them of a whole
    set: the molecules of each size (in increasing size) shuffled and cut into batches, then all
    batches shuffled together (no shuffling without a ``generator``)."""
    sizes = n_atoms[ids]
    out = []
    for s in np.unique(sizes):
        idx = ids[sizes == s]
        if generator is not None:
            idx = idx[torch.randperm(len(idx), generator=generator).numpy()]
        out += [idx[k:k + batch_size] for k in range(0, len(idx), batch_size)]
    if generator is None:
        return out
    return [out[i] for i in torch.randperm(len(out), generator=generator).numpy()]


class _Rows:
    """Geometries and forces of some molecules, one row per atom, molecule after molecule:
    ``species`` (atoms,) int8 element indices, ``coordinates`` and ``forces`` (atoms, 3),
    ``starts`` (molecules,) first row of each. Allocated once for ``atoms`` rows and
    ``molecules`` molecules, then filled by :meth:`append` (no padded copy of the whole)."""

    def __init__(self, atoms: int, molecules: int, dtype: torch.dtype) -> None:
        self.species = torch.empty(atoms, dtype=torch.int8)
        self.coordinates = torch.empty((atoms, 3), dtype=dtype)
        self.forces = torch.empty((atoms, 3), dtype=dtype)
        self.starts = np.zeros(molecules, dtype=np.int64)
        self._atoms = self._molecules = 0

    def append(self, species: Tensor, coordinates: Tensor, forces: Tensor) -> None:
        """Add molecules given padded: species (m, width) with -1 padding, coordinates and
        forces (m, width, 3)."""
        real = species >= 0
        counts = real.sum(1).numpy()
        a, m, k = self._atoms, self._molecules, int(counts.sum())
        self.species[a:a + k] = species[real].to(torch.int8)
        self.coordinates[a:a + k] = coordinates[real]
        self.forces[a:a + k] = forces[real]
        self.starts[m:m + len(counts)] = a + np.cumsum(counts) - counts
        self._atoms, self._molecules = a + k, m + len(counts)

    def take(self, pos: np.ndarray, counts: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
        """(species (m, width) long with -1 padding, coordinates (m, width, 3) zero-padded,
        forces NaN-padded) of the molecules at positions ``pos``, ``counts`` atoms each."""
        width = int(counts.max())
        rows = torch.from_numpy(rows_of(self.starts[pos], counts))
        inside = torch.from_numpy(np.arange(width) < counts[:, None])
        m = len(pos)
        species = torch.full((m, width), -1, dtype=torch.long)
        xyz = self.coordinates.new_zeros((m, width, 3))
        forces = self.forces.new_full((m, width, 3), float("nan"))
        species[inside] = self.species[rows].long()
        xyz[inside] = self.coordinates[rows]
        forces[inside] = self.forces[rows]
        return species, xyz, forces


class StreamedGeometries(GeometryBatches):
    """Force-training data whose geometries and forces are kept within a memory budget.

    It is a :class:`GeometryBatches` for :func:`levelup.train.steps.train_epoch` and
    :func:`~levelup.train.steps.evaluate` (``batches``, ``take``; same loss and gradients).

    Args:
        model: the ANIModel being trained (its dtype).
        source: where the molecules come from (:class:`ArraySource` with forces, or a
            :class:`FileSource` made with ``forces=``).
        residuals: (molecules,) Hartree, reference minus self energies.
        memory_mb: MB of geometries and forces kept in memory (0: none).
        window_atoms: atoms one window holds.
        block: molecules per block (the unit of reading and caching).
    """

    def __init__(self, model: nn.Module, source: ArraySource | FileSource, residuals: Tensor,
                 memory_mb: float, *, window_atoms: int = FORCE_WINDOW_ATOMS,
                 block: int = BLOCK) -> None:
        check_budget(memory_mb, None)
        self.n, self.source, self.block, self.window_atoms = source.n, source, block, window_atoms
        self.n_atoms = self._count(source)
        self.residuals = residuals.to(model.dtype)
        itemsize = torch.finfo(model.dtype).bits // 8
        fits = int(np.searchsorted(np.cumsum(geometry_bytes(self.n_atoms, itemsize)),
                                   memory_mb * 2**20, side="right"))
        #: molecules 0..cached-1 have their geometries and forces in memory
        self.cached = fits if fits == self.n else fits - fits % block
        self._cache = _Rows(int(self.n_atoms[:self.cached].sum()), self.cached, model.dtype)
        for start in range(0, self.cached, _PASS):
            self._cache.append(*source.read_forces(start, min(self.cached, start + _PASS)))
        self.dtype = model.dtype
        self._windows: list[np.ndarray] = []
        self._window_of = np.zeros(0, dtype=np.int32)
        self._loaded: tuple[int, np.ndarray, _Rows] | None = None

    @staticmethod
    def _count(source: ArraySource | FileSource) -> np.ndarray:
        """(molecules,) int16 atoms per molecule, read from ``source`` in chunks."""
        out = np.zeros(source.n, dtype=np.int16)
        for start in range(0, source.n, _PASS):
            species, _ = source.read(start, min(source.n, start + _PASS))
            out[start:start + len(species)] = (species >= 0).sum(1).numpy()
        return out

    def batches(self, batch_size: int, generator: torch.Generator | None) -> list[np.ndarray]:
        """Molecule indices of each batch of the coming pass (see the module docstring): those
        of :meth:`GeometryBatches.batches` when every molecule is in memory or one window holds
        them all (it is then read once and kept), else batches made window by window of a
        block-grouped permutation (in order without a ``generator``)."""
        span = max(1, self.window_atoms // int(self.n_atoms.max(initial=1)) // self.block)
        if self.cached == self.n or self.n <= span * self.block:  # one window holds them all
            if len(self._windows) != 1:
                self._windows, self._loaded = [np.arange(self.n)], None
                self._window_of = np.zeros(self.n, dtype=np.int32)
            return size_batches(np.arange(self.n), self.n_atoms, batch_size, generator)
        order = np.arange(self.n) if generator is None else \
            torch.randperm(self.n, generator=generator).numpy()
        order = block_order(order, self.block, span)
        size = span * self.block
        self._windows = [order[s:s + size] for s in range(0, self.n, size)]
        self._window_of = np.repeat(np.arange(len(self._windows), dtype=np.int32),
                                    [len(w) for w in self._windows])[np.argsort(order)]
        self._loaded = None
        out = []
        for ids in self._windows:
            out += size_batches(ids, self.n_atoms, batch_size, generator)
        return out

    def take(self, idx: np.ndarray) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(species, coordinates, residuals, forces) of molecules ``idx`` (of one batch of the
        last :meth:`batches`), cut to their size; reads their window when it is not loaded."""
        counts = self.n_atoms[idx].astype(np.int64)
        t = torch.from_numpy(idx)
        if self.cached == self.n:
            species, xyz, forces = self._cache.take(idx, counts)
            return species, xyz, self.residuals[t], forces
        w = int(self._window_of[idx[0]])
        if self._loaded is None or self._loaded[0] != w:
            self._loaded = None  # the last window is freed before the next is read
            self._loaded = (w, *self._load(self._windows[w]))
        _, ids, rows = self._loaded
        species, xyz, forces = rows.take(np.searchsorted(ids, idx), counts)
        return species, xyz, self.residuals[t], forces

    def _load(self, window: np.ndarray) -> tuple[np.ndarray, _Rows]:
        """(the window's molecules in increasing order, their rows): cached molecules copied
        from memory, the others read from the source block by block."""
        ids = np.sort(window)
        rows = _Rows(int(self.n_atoms[ids].sum()), len(ids), self.dtype)
        inside = ids[ids < self.cached]
        if len(inside):
            rows.append(*self._cache.take(inside, self.n_atoms[inside].astype(np.int64)))
        outside = ids[ids >= self.cached]
        blocks = outside // self.block
        for b in np.unique(blocks):
            start = int(b) * self.block
            species, xyz, forces = self.source.read_forces(start, min(self.n, start + self.block))
            pick = torch.from_numpy(outside[blocks == b] - start)
            rows.append(species[pick], xyz[pick], forces[pick])
        return ids, rows
