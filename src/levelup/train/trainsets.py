"""What :func:`levelup.train.loop.fit` trains on, before the loop: the training and validation
sets (a :class:`~levelup.data.Database` in memory, or a :class:`DatabaseFile`: a native database
file read block by block, never loaded whole), checked, split and laid out for the steps.

The same functions serve both: :func:`labelled` drops molecules without the energy, :func:`split`
draws the validation set (the same rows for a file as for the Database loaded from it),
:func:`fingerprint` hashes what decides the result, :func:`self_energies` fits them, and
:func:`layout` hands the steps their data:

- energies only: cached features (:func:`levelup.train.streaming.energy_data`); from a file, the
  molecules' arrays are read into memory when their features fit ``cache_memory_mb`` (training
  is then exactly that of the Database), else streamed (:func:`~levelup.train.streaming.
  stream_file`);
- with forces: a Database's arrays as they are (:class:`~levelup.train.batching.GeometryBatches`);
  a file's geometries and forces within ``cache_memory_mb``
  (:class:`~levelup.train.streaming_forces.StreamedGeometries`: all in memory, and training
  exactly that of the Database, when they fit).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from levelup.data import Database
from levelup.data.selection import split_rows
from levelup.errors import DataError
from levelup.train.batching import CachedEnergies, GeometryBatches
from levelup.train.config import TrainConfig
from levelup.train.streaming import energy_data, feature_widths, stream_file
from levelup.train.streaming_forces import StreamedGeometries
from levelup.train.streaming_sources import FileSource
from levelup.units import ENERGY, FORCE

#: molecules per read of the passes over a file
_PASS = 8192


class DatabaseFile:
    """Molecules of a native database file (:meth:`Database.save`) that :func:`fit` trains on
    without loading the file: its path and the rows used. ``fit(model, "train.h5", ...)`` makes
    one; the passes over it read :data:`_PASS` molecules at a time.

    Args:
        path: the .h5 file.
        rows: increasing row numbers used (None: all).
        width: atoms of the file's largest molecule when known (a part of a DatabaseFile
            passes its own on), else found by a pass over the species.
    """

    def __init__(self, path: str | os.PathLike, rows: np.ndarray | None = None,
                 width: int | None = None) -> None:
        self.path = Path(path)
        self._source = FileSource(path, None, rows)
        self.rows = np.arange(self._source.n) if rows is None else self._source.rows
        #: atoms of the largest molecule of the whole file (a loaded Database's padded width)
        self.width = self._width() if width is None else width

    def _width(self) -> int:
        reader = self._source.reader
        width = 0
        for start in range(0, reader.length, _PASS):
            z = reader.read_species(start, min(reader.length, start + _PASS))
            width = max(width, int((z > 0).sum(1).max(initial=0)))
        return width

    def __len__(self) -> int:
        """Number of molecules used."""
        return len(self.rows)

    def __getitem__(self, positions: np.ndarray) -> DatabaseFile:
        """The molecules at ``positions`` (increasing) of those used."""
        return DatabaseFile(self.path, self.rows[np.asarray(positions)], self.width)

    def chunks(self, properties: tuple[str, ...] = ()
               ) -> Iterator[tuple[int, np.ndarray, np.ndarray, dict[str, np.ndarray]]]:
        """Yield (first position, atomic numbers, coordinates, {name: values}) of the molecules
        used, :data:`_PASS` at a time, padded to :attr:`width`."""
        for start in range(0, len(self), _PASS):
            z, xyz, props = self._source.read_numpy(start, min(len(self), start + _PASS),
                                                    properties)
            yield start, z[:, :self.width], xyz[:, :self.width], props

    def energies(self, prop: str) -> np.ndarray:
        """(molecules,) float64 Hartree values of the energy property ``prop``; DataError when
        it is missing, per-atom or not in Hartree."""
        info = self._source.reader.info.get(prop)
        if info is not None and info.per_atom:
            raise DataError(f"property {prop!r} holds per-atom values; train on an energy property")
        if info is not None and info.unit != ENERGY:
            from levelup.data.columns import require_unit

            require_unit(prop, info.unit, ENERGY)
        return np.concatenate([p[prop] for _, _, _, p in self.chunks((prop,))]
                              or [np.zeros(0)]).astype(np.float64)

    def species(self) -> np.ndarray:
        """(molecules, :attr:`width`) uint8 atomic numbers, 0 padding (for self energies)."""
        out = np.zeros((len(self), self.width), dtype=np.uint8)
        for start, z, _, _ in self.chunks():
            out[start:start + len(z)] = z
        return out

    @property
    def elements(self) -> list[int]:
        """Atomic numbers present, increasing (as :attr:`Database.elements`)."""
        found: set[int] = set()
        for _, z, _, _ in self.chunks():
            found |= {int(k) for k in np.unique(z) if k > 0}
        return sorted(found)


def as_set(data: Database | DatabaseFile | str | os.PathLike, role: str
           ) -> Database | DatabaseFile:
    """``data`` as fit takes it: a Database or DatabaseFile as is, a path as a DatabaseFile."""
    if isinstance(data, (str, os.PathLike)):
        return DatabaseFile(data)
    if not isinstance(data, (Database, DatabaseFile)):
        raise DataError(f"the {role} set must be a levelup Database or the path of a database "
                        f"file (.h5); got {type(data).__name__}")
    return data


def energies_of(data: Database | DatabaseFile, prop: str) -> np.ndarray:
    """(molecules,) float64 Hartree values of energy ``prop`` (DataError: per-atom, not
    Hartree)."""
    if isinstance(data, DatabaseFile):
        return data.energies(prop)
    if data.get(prop).ndim != 1:
        raise DataError(f"property {prop!r} holds per-atom values; train on an energy property")
    return np.asarray(data.get(prop, unit=ENERGY), dtype=np.float64)


def labelled(data: Database | DatabaseFile, prop: str, role: str) -> Database | DatabaseFile:
    """Molecules of ``data`` that carry ``prop`` (others dropped with a warning)."""
    keep = np.isfinite(energies_of(data, prop))
    if not keep.any():
        raise DataError(f"no molecule of the {role} set has a value for {prop!r}")
    if not keep.all():
        warnings.warn(f"{int((~keep).sum())} of {len(data)} molecules of the {role} set lack "
                      f"{prop!r} and are left out", stacklevel=5)  # fit's caller
        data = data[np.flatnonzero(keep)] if isinstance(data, DatabaseFile) else data[keep]
    return data


def split(train: Database | DatabaseFile, validation: Database | DatabaseFile | None,
          prop: str, config: TrainConfig
          ) -> tuple[Database | DatabaseFile, Database | DatabaseFile | None]:
    """The labelled training and validation sets (validation split off ``train`` when None, the
    rows :meth:`Database.split` would draw)."""
    train = labelled(train, prop, "training")
    if validation is not None:
        return train, labelled(validation, prop, "validation")
    if config.validation_fraction == 0:
        return train, None
    fraction = config.validation_fraction
    if isinstance(train, DatabaseFile):
        rows = split_rows((1 - fraction, fraction), len(train), config.seed)
        train, validation = train[rows[0]], train[rows[1]]
    else:
        train, validation = train.split(1 - fraction, fraction, seed=config.seed)
    if len(validation) == 0 or len(train) == 0:
        raise DataError(f"cannot split {len(train) + len(validation)} molecules into training "
                        "and validation sets: give validation= or more molecules")
    return train, validation


def fingerprint(config: TrainConfig, prop: str, *sets: Database | DatabaseFile) -> str:
    """Hash of what decides the result, to refuse resuming a checkpoint of another run."""
    h = hashlib.sha256(prop.encode())
    for key, value in sorted(config.to_dict().items()):
        if key not in ("checkpoint", "checkpoint_every", "resume", "max_epochs"):
            h.update(f"{key}={value};".encode())
    for data in sets:
        if isinstance(data, DatabaseFile):
            h.update(data.rows.tobytes())
            for _, _, xyz, props in data.chunks((prop,)):
                h.update(np.ascontiguousarray(xyz).tobytes())
                h.update(np.ascontiguousarray(props[prop]).tobytes())
        else:
            h.update(np.ascontiguousarray(data.coordinates).tobytes())
            h.update(np.ascontiguousarray(data.get(prop)).tobytes())
    return h.hexdigest()


def self_energies(model: nn.Module, train: Database | DatabaseFile, prop: str) -> np.ndarray:
    """Least-squares self energies (Hartree, ``model.elements`` order) of the training set."""
    from levelup.model.selfenergies import fit_self_energies

    species = train.species() if isinstance(train, DatabaseFile) else train.species
    return fit_self_energies(species, energies_of(train, prop), model.elements)


def _tensors(model: nn.Module, data: Database | DatabaseFile, prop: str
             ) -> tuple[Tensor, Tensor, Tensor]:
    """(species indices, coordinates in the model's dtype, residual energies float64) of all
    the molecules (a file's read chunk by chunk into the tensors)."""
    if isinstance(data, Database):
        species = model.species_index(data.species)
        xyz = torch.from_numpy(data.coordinates).to(model.dtype)
        energies = torch.from_numpy(data.get(prop).astype(np.float64))
    else:
        species = torch.full((len(data), data.width), -1, dtype=torch.long)
        xyz = torch.zeros((len(data), data.width, 3), dtype=model.dtype)
        energies = torch.from_numpy(data.energies(prop))
        for start, z, x, _ in data.chunks():
            species[start:start + len(z)] = model.species_index(z)
            xyz[start:start + len(z)] = torch.from_numpy(x).to(model.dtype)
    with torch.no_grad():
        residuals = energies - model.self_energy_sum(species)
    return species, xyz, residuals


def layout(model: nn.Module, data: Database | DatabaseFile, prop: str, forces: str | None,
           config: TrainConfig) -> CachedEnergies | GeometryBatches:
    """``data`` laid out for training (see the module docstring): cached features without
    ``forces``, else geometries; a file's within ``config.cache_memory_mb``."""
    if isinstance(data, DatabaseFile) and forces is not None:
        source = FileSource(data.path, model, data.rows, forces=forces)
        return StreamedGeometries(model, source, source.residuals(prop), config.cache_memory_mb)
    if isinstance(data, DatabaseFile) and not _features_fit(model, data, config.cache_memory_mb):
        return stream_file(model, data.path, prop, config.cache_memory_mb, config.cache_dir,
                           data.rows)
    species, xyz, residuals = _tensors(model, data, prop)
    if forces is None:
        return energy_data(model, species, xyz, residuals, config.cache_memory_mb,
                           config.cache_dir)
    f = torch.from_numpy(np.array(data.get(forces, unit=FORCE), dtype=np.float64)).to(model.dtype)
    return GeometryBatches(species, xyz, residuals.to(model.dtype), f)


def _features_fit(model: nn.Module, data: DatabaseFile, memory_mb: float) -> bool:
    """Whether the features of every molecule of ``data`` fit in ``memory_mb`` MB."""
    widths = feature_widths(model)
    itemsize = torch.finfo(model.dtype).bits // 8
    total = 0
    for _, z, _, _ in data.chunks():
        species = model.species_index(z)
        for k, width in enumerate(widths):
            total += int((species == k).sum()) * width * itemsize
    return total <= memory_mb * 2**20
