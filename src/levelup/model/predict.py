"""Batched prediction of energies, forces and Hessians for a whole database.

Molecules are grouped by size so that no batch carries padding. Forces are minus the autograd
gradient of the energy; Hessians are second derivatives by double autograd (one backward pass
per Cartesian coordinate of the largest molecule in the batch, fine for small molecules).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from levelup.errors import ConfigError, DataError

if TYPE_CHECKING:
    from levelup.data import Database


@dataclass(frozen=True)
class Prediction:
    """What a model predicts for N molecules of up to A atoms (numpy arrays, float64).

    Attributes:
        energies: (N,) total energies, Hartree (for an ensemble: the mean over members).
        forces: (N, A, 3) Hartree/Angstrom (minus the gradient of ``energies``), 0 for padding
            atoms; None unless asked for.
        hessians: (N, 3A, 3A) second derivatives of ``energies``, Hartree/Angstrom^2, rows and
            columns ordered atom-major (x0, y0, z0, x1, ...), 0 for padding; None unless asked.
        energies_std: (N,) sample standard deviation (ddof=1) of the members' energies, Hartree;
            ensembles only (0 for an ensemble of one).
        member_energies: (members, N) energies of each member, Hartree; ensembles only.
    """

    energies: np.ndarray
    forces: np.ndarray | None = None
    hessians: np.ndarray | None = None
    energies_std: np.ndarray | None = None
    member_energies: np.ndarray | None = None


def resolve_device(device: str | torch.device) -> torch.device:
    """``torch.device(device)``, with a ConfigError that says what to do when CUDA is asked for
    but absent."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {device!r}: use 'cpu' or 'cuda' (or 'cuda:N')") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was asked for but this torch sees no CUDA GPU "
                          f"(torch {torch.__version__}); use device='cpu'")
    return dev


def model_on(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` itself if it already lives on ``device``, else a copy moved there (predicting
    never moves the caller's model)."""
    current = next(iter(model.parameters())).device
    if current == device or (device.type == "cuda" and device.index is None
                             and current.type == "cuda"):
        return model
    return copy.deepcopy(model).to(device)


def _size_batches(n_atoms: np.ndarray, batch_size: int) -> list[tuple[int, np.ndarray]]:
    """(atoms, row indices) of batches of at most ``batch_size`` molecules of one size each."""
    batches = []
    for size in np.unique(n_atoms):
        rows = np.flatnonzero(n_atoms == size)
        for start in range(0, rows.size, batch_size):
            batches.append((int(size), rows[start:start + batch_size]))
    return batches


def _hessian_block(grad: torch.Tensor, xyz: torch.Tensor) -> np.ndarray:
    """(molecules, 3A, 3A) second derivatives, Hartree/Angstrom^2, from ``grad`` (molecules,
    A, 3), the gradient of the energies at ``xyz`` taken with ``create_graph=True``."""
    n, width = grad.shape[0], grad.shape[1] * 3
    flat = grad.reshape(n, width)
    block = np.zeros((n, width, width))
    for k in range(width):
        # molecules are independent, so one backward pass gives row k of all of them
        (row,) = torch.autograd.grad(flat[:, k].sum(), xyz, retain_graph=True)
        block[:, k] = row.reshape(n, width).cpu().numpy()
    return block


def _predict_batch(net: Any, species: torch.Tensor, xyz: torch.Tensor, forces: bool,
                   hessians: bool) -> tuple[np.ndarray, ...]:
    """One batch of molecules of A atoms: mean energies (molecules,) and member energies
    (members, molecules), Hartree; forces (molecules, A, 3) Hartree/Angstrom and Hessians
    (molecules, 3A, 3A) Hartree/Angstrom^2, each None unless asked for."""
    need_grad = forces or hessians
    force_block = hess_block = None
    with torch.set_grad_enabled(need_grad):
        if need_grad:
            xyz.requires_grad_(True)
        members = net.member_energies(species, xyz)  # (members, molecules)
        mean = members.mean(0)  # (molecules,)
        if need_grad:
            (grad,) = torch.autograd.grad(mean.sum(), xyz, create_graph=hessians)
            force_block = -grad.detach().cpu().numpy()  # F = -dE/dx
        if hessians:
            hess_block = _hessian_block(grad, xyz)
    return (mean.detach().cpu().numpy(), members.detach().cpu().numpy(), force_block,
            hess_block)


def predict_database(
    model: Any,
    db: Database,
    *,
    forces: bool = False,
    hessians: bool = False,
    batch_size: int = 1024,
    device: str | torch.device = "cpu",
    progress: bool = False,
    ensemble: bool = False,
) -> Prediction:
    """Predict for every molecule of ``db`` with ``model`` (an ANIModel or Ensemble).

    ``model`` must provide ``species_index(species_z)`` and ``member_energies(species_idx,
    coordinates) -> (members, M)`` float64 Hartree. Batches hold at most ``batch_size``
    molecules, all of the same number of atoms. ``ensemble`` adds ``energies_std`` and
    ``member_energies`` to the :class:`Prediction`.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1; got {batch_size}")
    if len(db) == 0:
        raise DataError("cannot predict for an empty database")
    dev = resolve_device(device)
    species_idx_all = model.species_index(db.species)  # raises DataError for unknown elements
    net = model_on(model, dev)
    n, width = len(db), db.max_atoms
    energies = np.zeros(n)
    member_e: np.ndarray | None = None  # (members, N), allocated once the count is known
    force_out = np.zeros((n, width, 3)) if (forces or hessians) else None
    hess_out = np.zeros((n, 3 * width, 3 * width)) if hessians else None
    bar = None
    if progress:
        from levelup.progress import progress_bar

        bar = progress_bar(total=n, desc="predict", unit="mol")
    for size, rows in _size_batches(np.asarray(db.n_atoms), batch_size):
        species = species_idx_all[rows, :size].to(dev)
        xyz = torch.as_tensor(db.coordinates[rows, :size], dtype=torch.float64, device=dev)
        mean, members, force_block, hess_block = _predict_batch(net, species, xyz, forces,
                                                                hessians)
        energies[rows] = mean
        if member_e is None:
            member_e = np.zeros((members.shape[0], n))
        member_e[:, rows] = members
        if force_block is not None:
            force_out[rows, :size] = force_block
        if hess_block is not None:
            hess_out[rows, :3 * size, :3 * size] = hess_block
        if bar is not None:
            bar.update(len(rows))
    if bar is not None:
        bar.close()
    return _prediction(energies, member_e, force_out if forces else None, hess_out, ensemble)


def _prediction(energies: np.ndarray, member_e: np.ndarray, forces: np.ndarray | None,
                hessians: np.ndarray | None, ensemble: bool) -> Prediction:
    """The :class:`Prediction` from mean energies (N,) and member energies (members, N)."""
    if not ensemble:
        return Prediction(energies=energies, forces=forces, hessians=hessians)
    std = member_e.std(axis=0, ddof=1) if member_e.shape[0] > 1 else np.zeros(member_e.shape[1])
    return Prediction(energies=energies, forces=forces, hessians=hessians, energies_std=std,
                      member_energies=member_e)


class DatabasePredictor:
    """Gives a potential ``predict(db, ...)``: the one definition of that method, shared by
    :class:`~levelup.model.ani.ANIModel` and :class:`~levelup.model.ani.Ensemble`.

    The class provides ``species_index(species_z)`` and ``member_energies(species,
    coordinates) -> (members, molecules)`` float64 Hartree (see :func:`predict_database`), and
    sets ``ensemble_statistics`` when its predictions should carry ``energies_std`` and
    ``member_energies``.
    """

    #: whether ``predict`` reports the spread over members (ensembles)
    ensemble_statistics: bool = False

    def predict(
        self,
        db: Database,
        *,
        forces: bool = False,
        hessians: bool = False,
        batch_size: int = 1024,
        device: str | torch.device = "cpu",
        progress: bool = False,
    ) -> Prediction:
        """Energies (Hartree), and forces (Hartree/Angstrom) and Hessians (Hartree/Angstrom^2) if
        asked, for every molecule of ``db``; see :class:`Prediction`. An ensemble gives the
        mean over members, with ``energies_std`` and ``member_energies``.

        Batches of up to ``batch_size`` molecules of equal size; ``device="cuda"`` runs on the
        GPU (ConfigError if there is none) without moving this model.
        """
        return predict_database(self, db, forces=forces, hessians=hessians,
                                batch_size=batch_size, device=device, progress=progress,
                                ensemble=self.ensemble_statistics)
