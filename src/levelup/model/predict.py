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
    molecules, all of the same number of atoms.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1; got {batch_size}")
    if len(db) == 0:
        raise DataError("cannot predict for an empty database")
    dev = resolve_device(device)
    species_idx_all = model.species_index(db.species)  # raises DataError for unknown elements
    net = model_on(model, dev)
    n, width = len(db), db.max_atoms
    n_members = None
    member_e: np.ndarray | None = None
    energies = np.zeros(n)
    force_out = np.zeros((n, width, 3)) if (forces or hessians) else None
    hess_out = np.zeros((n, 3 * width, 3 * width)) if hessians else None
    n_atoms = np.asarray(db.n_atoms)
    batches = []
    for size in np.unique(n_atoms):
        rows = np.flatnonzero(n_atoms == size)
        for start in range(0, rows.size, batch_size):
            batches.append((int(size), rows[start:start + batch_size]))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc="predict", unit="mol")
    for size, rows in batches:
        species = species_idx_all[rows, :size].to(dev)
        xyz = torch.as_tensor(db.coordinates[rows, :size], dtype=torch.float64, device=dev)
        need_grad = forces or hessians
        with torch.set_grad_enabled(need_grad):
            if need_grad:
                xyz.requires_grad_(True)
            members = net.member_energies(species, xyz)  # (members, molecules)
            mean = members.mean(0)
            if need_grad:
                (grad,) = torch.autograd.grad(mean.sum(), xyz, create_graph=hessians)
                force_out[rows, :size] = -grad.detach().cpu().numpy()
            if hessians:
                flat = grad.reshape(len(rows), 3 * size)
                block = np.zeros((len(rows), 3 * size, 3 * size))
                for k in range(3 * size):
                    # molecules are independent, so one backward pass gives row k of all of them
                    (row,) = torch.autograd.grad(flat[:, k].sum(), xyz, retain_graph=True)
                    block[:, k] = row.reshape(len(rows), 3 * size).cpu().numpy()
                hess_out[rows, :3 * size, :3 * size] = block
        energies[rows] = mean.detach().cpu().numpy()
        if ensemble:
            if member_e is None:
                n_members = members.shape[0]
                member_e = np.zeros((n_members, n))
            member_e[:, rows] = members.detach().cpu().numpy()
        if bar is not None:
            bar.update(len(rows))
    if bar is not None:
        bar.close()
    std = None
    if ensemble:
        std = member_e.std(axis=0, ddof=1) if member_e.shape[0] > 1 else np.zeros(n)
    return Prediction(
        energies=energies,
        forces=force_out if forces else None,
        hessians=hess_out,
        energies_std=std,
        member_energies=member_e,
    )
