"""Energy-only training data larger than memory: :class:`StreamedEnergies`.

:class:`~levelup.train.batching.CachedEnergies` keeps the features (AEV, or the output of frozen
leading layers) of every atom in memory: 384 float32 numbers per atom with the ANI-1x AEV, about
7 GB for a million five-atom molecules. Here they are held within a memory budget instead:

- the molecules are read from a *source* block by block (:mod:`levelup.train.streaming_sources`:
  arrays in memory, or a native HDF5 file read with h5py slices);
- the features of the first molecules, as many whole blocks as fit in the budget, are computed
  once and kept (the *cache*); those of the others are recomputed every epoch, or computed once
  into a temporary folder on disk and read back (``cache_dir``);
- an epoch walks *windows* of at most :data:`WINDOW_ATOMS` atoms (a multiple of the batch size
  in molecules): only one window's features exist at a time, written in place as they are
  gathered or computed. So memory is the budget plus one window (about 50 MB of features with
  the ANI-1x AEV) and the AEV of a chunk of molecules, plus about a hundred bytes per molecule
  of bookkeeping (targets, atoms of each element, the epoch's order; bench/bench_scale.py).

Training with forces has its own layout within the same budget
(:mod:`levelup.train.streaming_forces`), and :func:`~levelup.train.loop.fit` given the path of a
.h5 file picks between them (:mod:`levelup.train.trainsets`).

Epoch order: the seeded permutation :func:`~levelup.train.steps.train_epoch` draws is kept where
it costs nothing (every feature cached, or the whole set within one window: then training is
that of CachedEnergies, the same batches in the same order). Otherwise it is grouped
(:func:`block_order`): the blocks are put in a random order drawn from the permutation itself,
taken a window's worth at a time, and the molecules of each group keep their order in the
permutation. Each window then reads a few dozen blocks, not the whole file, and the order is as
seeded and deterministic as the permutation.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from torch import Tensor, nn

from levelup.errors import ConfigError
from levelup.train import backprop
from levelup.train.batching import CachedEnergies, _ElementRows, element_features, trainable_split
from levelup.train.streaming_sources import (
    ArraySource,
    DiskFeatures,
    FileSource,
    Recompute,
    rows_of,
)

#: atoms whose features one window holds: 2**15 rows of 384 float32 (ANI-1x AEV) = 50 MB
WINDOW_ATOMS = 2**15
#: molecules per block: what is read at once, cached or not as a whole, and mixed by the order
BLOCK = 256
#: molecules per AEV evaluation (the AEV of 256 six-atom molecules needs ~20 MB on the way)
_CHUNK = 256
#: molecules per read of the passes over a file (atom counts, energies)
_PASS = 8192


def feature_widths(model: nn.Module) -> list[int]:
    """Numbers per atom that training caches, per element of ``model`` (``symbols`` order):
    the output width of the frozen leading layers of its network, or the AEV length."""
    out = []
    for name in model.symbols:
        net = model.networks[name]
        linears = [m for m in net[: trainable_split(net)] if isinstance(m, nn.Linear)]
        out.append(linears[-1].out_features if linears else model.aev_computer.aev_length)
    return out


def element_counts(species: Tensor, n_elements: int, chunk: int = 8192) -> np.ndarray:
    """(molecules, n_elements) int16: atoms of each element in each molecule, from species
    indices (molecules, atoms) with -1 padding."""
    out = np.zeros((species.shape[0], n_elements), dtype=np.int16)
    for start in range(0, species.shape[0], chunk):
        sp = species[start:start + chunk]
        for k in range(n_elements):
            out[start:start + chunk, k] = (sp == k).sum(1).numpy()
    return out


def _bytes(counts: np.ndarray, widths: list[int], itemsize: int) -> np.ndarray:
    """(molecules,) int64 bytes of the features of each molecule."""
    out = np.zeros(len(counts), dtype=np.int64)
    for k, width in enumerate(widths):
        out += counts[:, k] * np.int64(width * itemsize)
    return out


def check_budget(memory_mb: float, cache_dir: str | os.PathLike | None) -> None:
    """ConfigError unless ``memory_mb`` is a finite number >= 0 and ``cache_dir`` is None or a
    folder that exists."""
    if isinstance(memory_mb, bool) or not isinstance(memory_mb, (int, float)) \
            or not math.isfinite(memory_mb) or memory_mb < 0:
        raise ConfigError(f"cache_memory_mb (--cache-memory-mb) must be a finite number >= 0 "
                          f"(MB of features kept in memory; 0 keeps none); got {memory_mb!r}")
    if cache_dir is not None and not os.path.isdir(cache_dir):
        raise ConfigError(f"cache_dir (--cache-dir) {os.fspath(cache_dir)!r} is not a folder: "
                          "create it, or give none to recompute the features that do not fit "
                          "in memory")


def block_order(order: np.ndarray, block: int, span: int) -> np.ndarray:
    """``order`` (a permutation of the molecules) grouped for reading: blocks of ``block``
    consecutive molecules are ranked by where their first molecule stands in ``order`` (a
    random order of the blocks when ``order`` is random), cut into groups of ``span`` blocks,
    and the molecules of each group keep their order in ``order``; the groups follow each other.

    Deterministic, idempotent, and ``order`` itself when all molecules form one group."""
    n = len(order)
    if n <= block * span:
        return order
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    group = np.empty(-(-n // block), dtype=np.int64)
    group[np.argsort(position[::block], kind="stable")] = np.arange(len(group)) // span
    return order[np.argsort(group[order // block], kind="stable")]


class StreamedEnergies(CachedEnergies):
    """Energy-only training data whose features are kept within a memory budget.

    It is a :class:`CachedEnergies` for :func:`levelup.train.steps.train_epoch` and
    :func:`~levelup.train.steps.evaluate` (same methods, same loss and gradients).

    Args:
        model: the ANIModel being trained (its current frozen/trainable split is used).
        source: where the molecules come from (:class:`ArraySource` or :class:`FileSource`).
        residuals: (molecules,) Hartree, reference minus self energies.
        memory_mb: MB of features kept in memory (0: none).
        cache_dir: folder for a temporary disk copy of the other molecules' features; None
            recomputes them every epoch.
        window_atoms: atoms whose features one window holds.
        block: molecules per block.
    """

    def __init__(self, model: nn.Module, source: ArraySource | FileSource, residuals: Tensor,
                 memory_mb: float, *, cache_dir: str | os.PathLike | None = None,
                 window_atoms: int = WINDOW_ATOMS, block: int = BLOCK) -> None:
        check_budget(memory_mb, cache_dir)
        self.n, self.source, self.block = source.n, source, block
        dtype = model.dtype
        counts = self._count(model, source)
        self._counts = counts
        n_atoms = counts.sum(1)
        self._max_atoms = int(n_atoms.max(initial=1))
        self.window_atoms = window_atoms
        self.targets = residuals.to(dtype)
        self.inv_sqrt_atoms = torch.from_numpy(n_atoms).to(dtype).rsqrt()
        itemsize = torch.finfo(dtype).bits // 8
        widths = feature_widths(model)
        cached = int(np.searchsorted(np.cumsum(_bytes(counts, widths, itemsize)),
                                     memory_mb * 2**20, side="right"))
        #: molecules 0..cached-1 have their features in memory
        self.cached = cached if cached == self.n else cached - cached % block
        self._present = [k for k in range(len(widths)) if counts[:, k].any()]
        self.elements = []
        for k in self._present:
            net = model.networks[model.symbols[k]]
            head = trainable_split(net)
            rows = torch.empty((int(counts[:self.cached, k].sum()), widths[k]), dtype=dtype)
            self.elements.append(_ElementRows(model.symbols[k], net if head == 0 else net[head:],
                                              rows, counts[:, k]))
        self._fill_cache(model)
        #: per element present: first cache row of each cached molecule
        self._cache_starts = [np.cumsum(counts[:self.cached, k], dtype=np.int64)
                              - counts[:self.cached, k] for k in self._present]
        if cache_dir is not None and self.cached < self.n:
            self._far = DiskFeatures(model, source, counts, self.cached, block, cache_dir)
        else:
            self._far = Recompute(model, source, counts, block)
        self._order = None

    @staticmethod
    def _count(model: nn.Module, source: ArraySource | FileSource) -> np.ndarray:
        """(molecules, elements) atoms of each element, read from ``source`` in chunks."""
        if isinstance(source, ArraySource):
            return element_counts(source.species, len(model.elements))
        out = np.zeros((source.n, len(model.elements)), dtype=np.int16)
        for start in range(0, source.n, _PASS):
            species, _ = source.read(start, min(source.n, start + _PASS))
            out[start:start + len(species)] = element_counts(species, len(model.elements))
        return out

    def _fill_cache(self, model: nn.Module) -> None:
        """Compute the features of the cached molecules into the preallocated rows."""
        filled = [0] * len(self.elements)
        for start in range(0, self.cached, _CHUNK):
            species, xyz = self.source.read(start, min(self.cached, start + _CHUNK))
            rows = element_features(model, species, xyz)
            for j, k in enumerate(self._present):
                self.elements[j].features[filled[j]:filled[j] + len(rows[k])] = rows[k]
                filled[j] += len(rows[k])

    def epoch_order(self, order: np.ndarray) -> np.ndarray:
        """The order an epoch visits the molecules in, from a random permutation ``order``:
        ``order`` itself when every feature is in memory or the set fits one window, else
        :func:`block_order` of it (groups of blocks a window's worth at a time)."""
        if self.cached == self.n:
            return order
        span = max(1, self.window_atoms // self._max_atoms // self.block)
        return block_order(order, self.block, span)

    def shuffle(self, order: np.ndarray, batch_size: int) -> None:
        """Take molecule ``order`` for the coming epoch (grouped by :meth:`epoch_order` when it
        is a permutation of every molecule), to be cut into batches of ``batch_size``."""
        if len(order) == self.n:
            order = self.epoch_order(order)
        self._order, self._batch_size = order, batch_size
        index = torch.from_numpy(order)
        self._targets, self._inv_sqrt = self.targets[index], self.inv_sqrt_atoms[index]
        self._window = max(1, self.window_atoms // self._max_atoms // batch_size) * batch_size
        self._loaded: int | None = None
        self._epoch_rows = []
        if self.handwritten:
            self._plans = [backprop.plan(el.tail) for el in self.elements]

    def _spans(self, start: int, stop: int) -> list[tuple[Tensor, Tensor, int]]:
        """As :meth:`CachedEnergies._spans`, after assembling the window that holds them."""
        w = start // self._window
        if w != self._loaded:
            self._load(w)
        offset = w * self._window
        return super()._spans(start - offset, stop - offset)

    def _load(self, w: int) -> None:
        """Assemble the features of window ``w`` (positions w*window..) in the current order:
        cached rows copied, the others recomputed or read back from disk straight into place."""
        self._epoch_rows = []  # the last window's features are freed first
        ids = self._order[w * self._window:(w + 1) * self._window]
        m = len(ids)
        counts = self._counts[ids]
        cached = ids < self.cached
        targets = []
        for j, k in enumerate(self._present):
            n = counts[:, k].astype(np.int64)
            bounds = np.concatenate([[0], np.cumsum(n)])
            store = self.elements[j].features
            feats = torch.empty((int(bounds[-1]), store.shape[1]), dtype=store.dtype)
            if cached.any():
                src = rows_of(self._cache_starts[j][ids[cached]], n[cached])
                feats[torch.from_numpy(rows_of(bounds[:-1][cached], n[cached]))] = \
                    store[torch.from_numpy(src)]
            targets.append((k, feats, bounds[:-1][~cached]))
            uniform = int(n[0]) if m and (n == n[0]).all() else 0
            local = torch.from_numpy(np.repeat(np.arange(m) % self._batch_size, n))
            self._epoch_rows.append((feats, local, bounds, uniform))
        if not cached.all():
            self._far.fill(ids[~cached], targets)
        self._loaded = w


def energy_data(model: nn.Module, species: Tensor, coordinates: Tensor, residuals: Tensor,
                memory_mb: float, cache_dir: str | os.PathLike | None = None
                ) -> CachedEnergies:
    """Energy-only training data for :func:`~levelup.train.loop.fit`: a :class:`CachedEnergies`
    when every feature fits in ``memory_mb`` MB (the in-memory layout, unchanged), else a
    :class:`StreamedEnergies` over the same arrays with that budget (and ``cache_dir``).

    Args as :class:`CachedEnergies`; ``memory_mb`` and ``cache_dir`` as
    :class:`StreamedEnergies`."""
    check_budget(memory_mb, cache_dir)
    itemsize = torch.finfo(model.dtype).bits // 8
    counts = element_counts(species, len(model.elements))
    if int(_bytes(counts, feature_widths(model), itemsize).sum()) <= memory_mb * 2**20:
        return CachedEnergies(model, species, coordinates, residuals)
    return StreamedEnergies(model, ArraySource(species, coordinates), residuals, memory_mb,
                            cache_dir=cache_dir)


def stream_file(model: nn.Module, path: str | os.PathLike, prop: str, memory_mb: float,
                cache_dir: str | os.PathLike | None = None, rows: np.ndarray | None = None
                ) -> StreamedEnergies:
    """Energy-only training data read from a native database file (``Database.save``) block by
    block, never loaded whole: energies ``prop`` (Hartree) of ``rows`` (increasing row numbers;
    None: all), with ``memory_mb`` MB of features kept in memory (and the rest on disk under
    ``cache_dir``, or recomputed). The model's self energies must be set already.

    Raises DataError for a file that is not a levelup database, a missing property, one not in
    Hartree, or a molecule without a value; ConfigError for a bad budget or folder."""
    check_budget(memory_mb, cache_dir)
    source = FileSource(path, model, rows)
    return StreamedEnergies(model, source, source.residuals(prop), memory_mb,
                            cache_dir=cache_dir)
