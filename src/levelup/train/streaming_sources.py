"""Where streamed training data comes from (:mod:`levelup.train.streaming`): molecules read range
by range, and the features of molecules that the memory cache does not hold.

Sources (``n`` molecules, ``read(start, stop)`` -> species indices and coordinates of a range;
``read_forces(start, stop)`` -> the same and the reference forces, for force training):

- :class:`ArraySource`: tensors already in memory (a Database's arrays, as :func:`fit` holds
  them); only the features are bounded.
- :class:`FileSource`: a native HDF5 database file (:class:`~levelup.data.io.hdf5.RowReader`),
  optionally only some of its rows; nothing but the range asked for is in memory.

Features beyond the memory cache (``features(ids)`` -> one tensor of rows per element):

- :class:`Recompute`: the AEV (and the frozen layers) computed again from the source each time.
- :class:`DiskFeatures`: computed once and written to raw float files in a temporary folder
  (plain ``ndarray.tofile``, no pickle); each time, the rows of a block of molecules are read
  back with one contiguous read per element. The folder is deleted with the object.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from levelup.data.columns import require_unit
from levelup.data.io.hdf5 import RowReader
from levelup.errors import ConfigError, DataError
from levelup.train.batching import element_features
from levelup.units import ENERGY, FORCE


class ArraySource:
    """Molecules held in memory: ``species`` LongTensor (molecules, atoms) of element indices
    (-1 padding) and ``coordinates`` (molecules, atoms, 3) Angstrom, model dtype; ``forces``
    (molecules, atoms, 3) Hartree/Angstrom, model dtype, NaN where unknown, for force training."""

    def __init__(self, species: Tensor, coordinates: Tensor, forces: Tensor | None = None
                 ) -> None:
        self.species, self.coordinates, self.forces = species, coordinates, forces
        self.n = int(species.shape[0])

    def read(self, start: int, stop: int) -> tuple[Tensor, Tensor]:
        """(species indices, coordinates) of molecules start..stop."""
        return self.species[start:stop], self.coordinates[start:stop]

    def read_forces(self, start: int, stop: int) -> tuple[Tensor, Tensor, Tensor]:
        """(species indices, coordinates, forces) of molecules start..stop."""
        if self.forces is None:
            raise DataError("this ArraySource holds no forces: give forces= to train on them")
        return self.species[start:stop], self.coordinates[start:stop], self.forces[start:stop]


class FileSource:
    """Molecules of a native database file read range by range, for ``model`` (its element
    indices and dtype).

    Args:
        path: the .h5 file (:meth:`levelup.Database.save` writes it).
        model: the ANIModel to be trained (elements the model lacks raise DataError on reading).
        rows: increasing row numbers of the file to use (a training or validation part), or None
            for all of them.
        forces: the per-atom force property (Hartree/Angstrom) :meth:`read_forces` reads, or
            None (energy-only training). DataError when the file lacks it or its unit is not
            Hartree/Angstrom.
    """

    def __init__(self, path: str | os.PathLike, model: nn.Module,
                 rows: np.ndarray | None = None, forces: str | None = None) -> None:
        self.reader = RowReader(path)
        self.model = model
        if forces is not None:
            info = self.reader.info.get(forces)
            if info is None or not info.per_atom:
                have = [k for k, v in self.reader.info.items() if v.per_atom]
                raise DataError(f"{path} has no per-atom force property {forces!r} (its per-atom "
                                f"properties: {', '.join(map(repr, have)) or 'none'}): give the "
                                "forces' name (forces= / --forces NAME), or train on energies "
                                "only (force_weight 0)")
            require_unit(forces, info.unit, FORCE)
        self.forces = forces
        if rows is not None:
            rows = np.asarray(rows, dtype=np.int64)
            if rows.ndim != 1 or (len(rows) and (rows[0] < 0 or rows[-1] >= self.reader.length
                                                 or (np.diff(rows) <= 0).any())):
                raise DataError(f"rows of {path} must be increasing row numbers in 0.."
                                f"{self.reader.length - 1}")
        self.rows = rows
        self.n = self.reader.length if rows is None else len(rows)

    def read_numpy(self, start: int, stop: int, properties: tuple[str, ...] = ()
                   ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """(atomic numbers, coordinates, {name: values}) of positions start..stop of the rows
        used, as the file holds them."""
        if self.rows is None:
            return self.reader.read(start, stop, properties)
        rows = self.rows[start:stop]
        if not len(rows):
            return self.reader.read(0, 0, properties)
        z, xyz, props = self.reader.read(int(rows[0]), int(rows[-1]) + 1, properties)
        pick = rows - rows[0]
        return z[pick], xyz[pick], {k: v[pick] for k, v in props.items()}

    def read(self, start: int, stop: int) -> tuple[Tensor, Tensor]:
        """(species indices, coordinates in the model's dtype) of positions start..stop,
        trimmed to the largest molecule among them."""
        z, xyz, _ = self.read_numpy(start, stop)
        width = int((z > 0).sum(1).max(initial=0))
        return (self.model.species_index(z[:, :width]),
                torch.from_numpy(np.ascontiguousarray(xyz[:, :width])).to(self.model.dtype))

    def read_forces(self, start: int, stop: int) -> tuple[Tensor, Tensor, Tensor]:
        """(species indices, coordinates, forces (Hartree/Angstrom, NaN where unknown)) of
        positions start..stop in the model's dtype, trimmed to the largest molecule among
        them."""
        z, xyz, props = self.read_numpy(start, stop, (self.forces,))
        width = int((z > 0).sum(1).max(initial=0))
        dtype = self.model.dtype
        return (self.model.species_index(z[:, :width]),
                torch.from_numpy(np.ascontiguousarray(xyz[:, :width])).to(dtype),
                torch.from_numpy(np.ascontiguousarray(props[self.forces][:, :width])).to(dtype))

    def residuals(self, prop: str, chunk: int = 8192) -> Tensor:
        """(molecules,) float64 Hartree: energy ``prop`` minus the model's self energies, read
        chunk by chunk. DataError when a molecule lacks the energy or it is not in Hartree."""
        require_unit(prop, self.reader.info[prop].unit if prop in self.reader.info else ENERGY,
                     ENERGY)
        out = torch.empty(self.n, dtype=torch.float64)
        with torch.no_grad():
            for start in range(0, self.n, chunk):
                z, _, props = self.read_numpy(start, min(self.n, start + chunk), (prop,))
                energies = props[prop]
                if not np.isfinite(energies).all():
                    raise DataError(f"{int((~np.isfinite(energies)).sum())} molecules of "
                                    f"{self.reader.path} (from position {start}) lack {prop!r}: "
                                    "give rows= without them")
                sums = self.model.self_energy_sum(self.model.species_index(z))
                out[start:start + len(z)] = torch.from_numpy(energies.astype(np.float64)) - sums
        return out


def rows_of(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Row numbers of runs of consecutive rows: ``counts[i]`` rows from ``starts[i]``, run after
    run (int64)."""
    counts = counts.astype(np.int64)
    ends = np.cumsum(counts)
    return np.repeat(starts - ends + counts, counts) + np.arange(ends[-1] if len(ends) else 0)


#: where :meth:`Recompute.fill` and :meth:`DiskFeatures.fill` write: for each element present
#: (its index in the model, the output rows (atoms of the element, width), the first output row
#: of each molecule asked for)
Targets = list[tuple[int, Tensor, np.ndarray]]


class Recompute:
    """Features of molecules computed from ``source`` each time they are asked for."""

    def __init__(self, model: nn.Module, source: ArraySource | FileSource, counts: np.ndarray,
                 block: int, chunk: int = 256) -> None:
        self.model, self.source, self.counts = model, source, counts
        self.block, self.chunk = block, chunk

    def geometries(self, ids: np.ndarray) -> tuple[Tensor, Tensor]:
        """(species indices, coordinates) of molecules ``ids`` (distinct, any order), in that
        order, padded to the largest of them; read block by block."""
        order = np.argsort(ids)
        ids_sorted = ids[order]
        blocks = ids_sorted // self.block
        species, xyz = [], []
        for b in np.unique(blocks):
            start = int(b) * self.block
            sp, x = self.source.read(start, min(self.source.n, start + self.block))
            pick = torch.from_numpy(ids_sorted[blocks == b] - start)
            species.append(sp[pick])
            xyz.append(x[pick])
        width = max(s.shape[1] for s in species)
        species = torch.cat([torch.nn.functional.pad(s, (0, width - s.shape[1]), value=-1)
                             for s in species])
        xyz = torch.cat([torch.nn.functional.pad(x, (0, 0, 0, width - x.shape[1])) for x in xyz])
        back = torch.from_numpy(np.argsort(order))
        species, xyz = species[back], xyz[back]
        width = int((species >= 0).sum(1).max())
        return species[:, :width], xyz[:, :width]

    def fill(self, ids: np.ndarray, targets: Targets) -> None:
        """Write the feature rows of molecules ``ids`` into ``targets``, computing them in
        chunks in the order of ``ids``."""
        species, xyz = self.geometries(ids)
        for start in range(0, len(ids), self.chunk):
            stop = min(len(ids), start + self.chunk)
            rows = element_features(self.model, species[start:stop], xyz[start:stop])
            counts = self.counts[ids[start:stop]]
            for k, out, first in targets:
                if len(rows[k]):
                    dest = rows_of(first[start:stop], counts[:, k])
                    out[torch.from_numpy(dest)] = rows[k]


class DiskFeatures:
    """Features of molecules ``first`` onwards, computed once and kept in raw files in a new
    temporary folder under ``folder`` (deleted with this object or at exit).

    Args:
        model: the model (its frozen/trainable split decides what the features are).
        source: where the molecules come from.
        counts: (molecules, n_elements) atoms of each element of the model per molecule.
        first: the first molecule stored (a multiple of ``block``).
        block: molecules per block (the unit of each read).
        folder: where the temporary folder goes.
    """

    def __init__(self, model: nn.Module, source: ArraySource | FileSource, counts: np.ndarray,
                 first: int, block: int, folder: str | os.PathLike) -> None:
        if not Path(folder).is_dir():
            raise ConfigError(f"cache_dir {str(folder)!r} is not a folder: create it or give "
                              "another one (or none, to recompute the features instead)")
        self.block, self.first, self.counts = block, first, counts
        self.dir = Path(tempfile.mkdtemp(prefix="levelup-features-", dir=folder))
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.dir, True)
        compute = Recompute(model, source, counts, block)
        n_blocks = -(-(source.n - first) // block)
        #: (blocks + 1, n_elements) first row of each block in each element's file
        self.offsets = np.zeros((n_blocks + 1, counts.shape[1]), dtype=np.int64)
        self.widths = [0] * counts.shape[1]
        self.dtype = np.dtype(str(model.dtype).removeprefix("torch."))
        files = [open(self.dir / f"e{k}.bin", "wb") for k in range(counts.shape[1])]  # noqa: SIM115
        try:
            for j in range(n_blocks):
                start = first + j * block
                ids = np.arange(start, min(source.n, start + block))
                species, xyz = compute.geometries(ids)
                for k, rows in enumerate(element_features(model, species, xyz)):
                    if rows.numel():
                        self.widths[k] = rows.shape[1]
                        rows.numpy().tofile(files[k])
                self.offsets[j + 1] = self.offsets[j] + counts[ids].sum(0)
        except OSError as exc:
            raise DataError(f"cannot write the feature cache in {self.dir}: {exc}") from None
        finally:
            for f in files:
                f.close()

    def fill(self, ids: np.ndarray, targets: Targets) -> None:
        """Write the feature rows of molecules ``ids`` (distinct, >= ``first``) into
        ``targets``, read back block by block (one contiguous read per block and element)."""
        blocks = (ids - self.first) // self.block
        for b in np.unique(blocks):
            start = self.first + int(b) * self.block
            mine = np.flatnonzero(blocks == b)
            local = ids[mine] - start
            block_counts = self.counts[start:start + self.block]
            for k, out, first in targets:
                lo, hi = self.offsets[b, k], self.offsets[b + 1, k]
                n = block_counts[local, k]
                if hi == lo or not n.any():
                    continue
                width = self.widths[k]
                flat = np.fromfile(self.dir / f"e{k}.bin", dtype=self.dtype,
                                   count=int(hi - lo) * width,
                                   offset=int(lo) * width * self.dtype.itemsize)
                within = np.cumsum(block_counts[:, k]) - block_counts[:, k]
                src = torch.from_numpy(rows_of(within[local], n))
                out[torch.from_numpy(rows_of(first[mine], n))] = \
                    torch.from_numpy(flat).view(-1, width)[src]
