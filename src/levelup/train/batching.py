"""Training data laid out for fast steps: what :func:`levelup.train.loop.fit` iterates over.

Two layouts:

- :class:`CachedEnergies` (energy-only training). The AEV depends only on the geometry, so it is
  computed once; so are the outputs of frozen leading layers (a network whose first Linear layer
  is frozen is fed that layer's activations straight away). The features are stored per element
  as flat rows, one per atom, molecule after molecule: a batch gathers its atoms' rows and sums
  their outputs per molecule, so there is no padding at all, whatever the mix of sizes. Each
  epoch permutes the molecules once; a batch is then a contiguous slice (a view, no copy).
- :class:`GeometryBatches` (training on forces, which needs the AEV's gradient): padded
  coordinates, batches drawn within groups of molecules of equal size, so no batch carries
  padding either.

Beyond a memory budget, :mod:`levelup.train.streaming` and :mod:`levelup.train.streaming_forces`
lay the same data out block by block (subclasses of these two, the same steps).

Energies here are *residuals*: the reference energy minus the sum of the self energies, in the
model's dtype (Hartree).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from levelup.train import backprop


def trainable_split(network: nn.Sequential) -> int:
    """Number of leading modules of ``network`` that hold no trainable parameter: those can be
    evaluated once and cached (a frozen Linear layer and the activation after it, ...)."""
    for position, module in enumerate(network):
        if any(p.requires_grad for p in module.parameters()):
            return position
    return len(network)


def element_features(model: nn.Module, species: Tensor, coordinates: Tensor) -> list[Tensor]:
    """What training caches of molecules ``species`` (m, atoms) at ``coordinates`` (m, atoms, 3)
    Angstrom: for each element of ``model`` (in ``model.symbols`` order), the output of the
    frozen leading modules of its network (the AEV itself when none is frozen), one row per atom
    of that element, molecule after molecule: (atoms of the element, width), model dtype."""
    with torch.no_grad():
        aev = model.compute_aev(species, coordinates)  # (m, atoms, aev)
        # rows in molecule-major order: atom (m, a) comes before (m, a+1) and (m+1, 0)
        flat_sp, flat_aev = species.reshape(-1), aev.reshape(-1, aev.shape[-1])
        out = []
        for index, name in enumerate(model.symbols):
            rows = (flat_sp == index).nonzero().view(-1)
            net = model.networks[name]
            out.append(net[: trainable_split(net)](flat_aev[rows]))
    return out


@dataclass
class _ElementRows:
    """Rows of one element: ``features`` (atoms_e, width) molecule after molecule, ``counts``
    (molecules,) atoms of this element in each molecule, ``tail`` the rest of its network."""

    name: str
    tail: nn.Module  # the modules of the network not yet applied to the features
    features: Tensor
    counts: np.ndarray


class CachedEnergies:
    """Energy-only training data with each AEV (and frozen-prefix output) computed once.

    Args:
        model: the ANIModel being trained (its current frozen/trainable split is used).
        species: LongTensor (molecules, atoms) of element indices, -1 padding.
        coordinates: (molecules, atoms, 3) Angstrom.
        residuals: (molecules,) Hartree, reference minus self energies.
        chunk: molecules per AEV evaluation while building the cache (bounds memory).
    """

    def __init__(self, model: nn.Module, species: Tensor, coordinates: Tensor, residuals: Tensor,
                 chunk: int = 2048) -> None:
        n = species.shape[0]
        self.n = n
        dtype = model.dtype
        n_atoms = (species >= 0).sum(1)
        #: (molecules,) targets and 1/sqrt(atoms), model dtype
        self.targets = residuals.to(dtype)
        self.inv_sqrt_atoms = n_atoms.to(dtype).rsqrt()
        self.elements: list[_ElementRows] = []
        features: dict[int, list[Tensor]] = {}
        for start in range(0, n, chunk):
            rows = element_features(model, species[start:start + chunk],
                                    coordinates[start:start + chunk])
            for index, out in enumerate(rows):
                features.setdefault(index, []).append(out)
        for index, name in enumerate(model.symbols):
            counts = (species == index).sum(1).numpy()
            if counts.sum() == 0:
                continue
            net = model.networks[name]
            head = trainable_split(net)
            tail = net if head == 0 else net[head:]
            self.elements.append(_ElementRows(name, tail, torch.cat(features[index]).contiguous(),
                                              counts))
        self._order: np.ndarray | None = None

    def epoch_order(self, order: np.ndarray) -> np.ndarray:
        """The order an epoch visits the molecules in, given a random permutation ``order`` of
        them: ``order`` itself here (every feature is in memory); data streamed from a file
        groups it so that a stretch of it reads few blocks
        (:meth:`levelup.train.streaming.StreamedEnergies.epoch_order`)."""
        return order

    def shuffle(self, order: np.ndarray, batch_size: int) -> None:
        """Lay the rows out in molecule ``order`` (an index array) for the coming epoch, to be cut
        into batches of ``batch_size`` molecules (see :meth:`batches`)."""
        self._order, self._batch_size = order, batch_size
        identity = len(order) == self.n and bool((order == np.arange(self.n)).all())
        index = torch.from_numpy(order)
        self._targets = self.targets if identity else self.targets[index]
        self._inv_sqrt = self.inv_sqrt_atoms if identity else self.inv_sqrt_atoms[index]
        self._epoch_rows = []
        for el in self.elements:
            counts = el.counts[order]
            bounds = np.concatenate([[0], np.cumsum(counts)])
            if identity:
                feats = el.features
            else:
                starts = np.concatenate([[0], np.cumsum(el.counts)[:-1]])[order]
                # rows of molecule order[0], then those of order[1], ...
                rows = np.repeat(starts - bounds[:-1], counts) + np.arange(bounds[-1])
                feats = el.features[torch.from_numpy(rows)]
            # same number of atoms of this element in every molecule: a reshape sums per molecule
            uniform = int(counts[0]) if len(counts) and (counts == counts[0]).all() else 0
            local = torch.from_numpy(np.repeat(np.arange(len(order)) % batch_size, counts))
            self._epoch_rows.append((feats, local, bounds, uniform))
        if self.handwritten:
            self._plans = [backprop.plan(el.tail) for el in self.elements]

    def batches(self) -> list[tuple[int, int]]:
        """(start, stop) positions, in the current order, of each batch."""
        n, size = len(self._order), self._batch_size
        return [(s, min(s + size, n)) for s in range(0, n, size)]

    def energies(self, start: int, stop: int) -> Tensor:
        """Predicted residual energies (stop - start,) of the molecules at positions
        start..stop of the current order (Hartree, model dtype), with autograd.

        ``start`` must be a multiple of the batch size given to :meth:`shuffle`.
        """
        out = None
        m = stop - start
        for el, (feats, local, uniform) in zip(self.elements, self._spans(start, stop),
                                               strict=True):
            atomic = el.tail(feats)  # (atoms of el, 1)
            if uniform:
                part = atomic.view(m, uniform).sum(1)
            else:
                part = atomic.new_zeros(m).index_add_(0, local, atomic.view(-1))
            out = part if out is None else out + part
        return out

    def _spans(self, start: int, stop: int) -> list[tuple[Tensor, Tensor, int]]:
        """For each element: (feature rows, their molecule's place in the batch, atoms of the
        element per molecule when that is the same for all, else 0) of positions start..stop of
        the current order."""
        out = []
        for feats, local, bounds, uniform in self._epoch_rows:
            lo, hi = int(bounds[start]), int(bounds[stop])
            out.append((feats[lo:hi], local[lo:hi], uniform))
        return out

    @property
    def handwritten(self) -> bool:
        """True when every network tail is Linear/CELU, so :meth:`loss_and_gradients` applies."""
        return all(backprop.supported(el.tail) for el in self.elements)

    def loss_and_gradients(self, start: int, stop: int, scale: float) -> tuple[Tensor, Tensor]:
        """The energy loss of positions start..stop of the current order, and its gradient
        written into the trainable parameters' ``.grad`` by :mod:`levelup.train.backprop` (the
        ``.grad`` buffers as they were at the last :meth:`shuffle`).

        Loss: mean over molecules of (scale * (E_pred - E_ref))^2 / sqrt(atoms), the loss of
        :func:`levelup.train.loop.fit` (scale: kcal/mol per Hartree). Returns (loss, sum of squared
        errors in scale units), both detached scalars.
        """
        m = stop - start
        energies, passes = None, []
        spans = self._spans(start, stop)
        for plan, (feats, local, uniform) in zip(self._plans, spans, strict=True):
            if len(feats) == 0:
                passes.append(None)
                continue
            atomic, saved = backprop.forward(plan, feats)  # (atoms of el, 1)
            if uniform:
                part = atomic.view(m, uniform).sum(1)
            else:
                part = atomic.new_zeros(m).index_add_(0, local, atomic.view(-1))
            energies = part if energies is None else energies + part
            passes.append(saved)
        target, inv_sqrt = self.batch_targets(start, stop)
        diff = energies - target  # (m,) Hartree
        sq = diff * diff
        loss = (sq * inv_sqrt).mean() * scale ** 2
        grad_e = diff * inv_sqrt * (2 * scale ** 2 / m)  # dL/dE_pred, (m,)
        for plan, (_, local, uniform), saved in zip(self._plans, spans, passes, strict=True):
            if saved is None:
                backprop.zero(plan)
                continue
            if uniform:
                grad_rows = grad_e.view(m, 1).expand(m, uniform).reshape(-1, 1)
            else:
                grad_rows = grad_e[local].view(-1, 1)
            backprop.backward(plan, saved, grad_rows)
        return loss, sq.sum() * scale ** 2

    def batch_targets(self, start: int, stop: int) -> tuple[Tensor, Tensor]:
        """(residual targets, 1/sqrt(atoms)) of positions start..stop of the current order."""
        return self._targets[start:stop], self._inv_sqrt[start:stop]


class GeometryBatches:
    """Padded geometries for training with forces (the AEV is recomputed with autograd).

    Args:
        species: LongTensor (molecules, atoms), -1 padding.
        coordinates: (molecules, atoms, 3) Angstrom, model dtype.
        residuals: (molecules,) Hartree.
        forces: (molecules, atoms, 3) Hartree/Angstrom, NaN where missing.
    """

    def __init__(self, species: Tensor, coordinates: Tensor, residuals: Tensor,
                 forces: Tensor) -> None:
        self.n = species.shape[0]
        self.species, self.coordinates = species, coordinates
        self.residuals, self.forces = residuals, forces
        self.n_atoms = (species >= 0).sum(1).numpy()
        #: molecule indices of each size group: size -> indices
        self.groups = {int(s): np.flatnonzero(self.n_atoms == s) for s in np.unique(self.n_atoms)}

    def batches(self, batch_size: int, generator: torch.Generator | None) -> list[np.ndarray]:
        """Molecule indices of each batch: within each size group shuffled and cut into
        batches, then the batches of all groups shuffled together (in order without a
        ``generator``)."""
        out = []
        for idx in self.groups.values():
            perm = idx if generator is None else idx[torch.randperm(len(idx),
                                                                     generator=generator).numpy()]
            out += [perm[s:s + batch_size] for s in range(0, len(perm), batch_size)]
        if generator is None:
            return out
        order = torch.randperm(len(out), generator=generator).numpy()
        return [out[i] for i in order]

    def take(self, idx: np.ndarray) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(species, coordinates, residuals, forces) of molecules ``idx``, cut to their size."""
        t = torch.from_numpy(idx)
        width = int(self.n_atoms[idx].max())
        return (self.species[t, :width], self.coordinates[t, :width], self.residuals[t],
                self.forces[t, :width])
