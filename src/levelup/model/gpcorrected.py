"""A pre-trained model plus a Gaussian-process correction of one molecule: the model that
:func:`levelup.transfer.gpcorrection.gp_transfer` makes (the fitting, and why, are there). It
predicts like an ANIModel and saves to a model file of kind "GPCorrected"."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from levelup.atomicwrite import write_bytes_atomic
from levelup.errors import DataError
from levelup.model.predict import DatabasePredictor


class GPCorrected(nn.Module, DatabasePredictor):
    """A pre-trained model plus a GP correction of one molecule (:func:`gp_transfer`): predicts
    like an ANIModel (``predict``, forces and Hessians by autograd), for geometries of that
    molecule only (same atoms, same order).

    The correction's posterior mean in closed form: with the descriptors ``d_ip`` of the
    training geometries under each permutation ``p``, and ``v_ip`` their Jacobians applied to
    the gradient weights,
    ``f(x) = s2/|P| sum_ip e_ip(x) (a_i + (d(x) - d_ip) . v_ip / l^2)``,
    ``e_ip(x) = exp(-|d(x) - d_ip|^2 / (2 l^2))``."""

    def __init__(self, pretrained: Any, species: np.ndarray, descriptors: Tensor,
                 directions: Tensor, weights: Tensor, length: float, variance: float,
                 offset: float) -> None:
        super().__init__()
        self.pretrained = pretrained
        self.species = np.asarray(species, dtype=np.int64)
        self.register_buffer("descriptors", descriptors)  # (points, permutations, pairs)
        self.register_buffer("directions", directions)  # (points, permutations, pairs)
        self.register_buffer("weights", weights)  # (points,): the energy observations' alpha
        self.length, self.variance, self.offset = float(length), float(variance), float(offset)
        atoms = len(self.species)
        self.register_buffer("pairs", torch.triu_indices(atoms, atoms, 1))

    @property
    def elements(self) -> list[int]:
        """The pre-trained model's elements (atomic numbers)."""
        return self.pretrained.elements

    @property
    def symbols(self) -> list[str]:
        """The pre-trained model's element symbols."""
        return self.pretrained.symbols

    def species_index(self, species_z: Any) -> Tensor:
        """As the pre-trained model's; DataError for a molecule other than the correction's."""
        z = np.asarray(species_z)
        z = z.reshape(-1, z.shape[-1])
        atoms = len(self.species)
        if z.shape[1] < atoms or np.any(z[:, :atoms] != self.species) or np.any(z[:, atoms:]):
            raise DataError(f"this GP-corrected model describes one molecule, atoms "
                            f"{self.species.tolist()} in that order; got atoms "
                            f"{z[0].tolist()}: predict that molecule, or use a model "
                            "transferred by the linear recipe")
        return self.pretrained.species_index(species_z)

    def correction(self, coordinates: Tensor) -> Tensor:
        """(molecules,) float64 Hartree: ``m + f(x)`` for (molecules, atoms, 3) Angstrom."""
        x = coordinates[:, :len(self.species)].double()
        d = 1.0 / torch.linalg.norm(x[:, self.pairs[0]] - x[:, self.pairs[1]], dim=-1)
        diff = d[:, None, None, :] - self.descriptors[None]  # (molecules, points, perms, pairs)
        e = torch.exp(-0.5 * (diff * diff).sum(-1) / self.length**2)
        term = self.weights[None, :, None] + (diff * self.directions[None]).sum(-1) / \
            self.length**2
        scale = self.variance / self.descriptors.shape[1]
        return self.offset + scale * (e * term).sum((1, 2))

    def member_energies(self, species: Tensor, coordinates: Tensor) -> Tensor:
        """(members, molecules) float64 Hartree: the pre-trained model's plus the correction."""
        return self.pretrained.member_energies(species, coordinates) + \
            self.correction(coordinates)[None]

    def correction_entry(self) -> dict[str, Any]:
        """The correction's scalars for a model file's header (``"correction"``)."""
        return {"species": self.species.tolist(), "length": self.length,
                "variance": self.variance, "offset": self.offset,
                "pretrained_kind": type(self.pretrained).__name__,
                "units": {"length": "1/Angstrom", "variance": "Hartree^2",
                          "offset": "Hartree"}}

    def to_bytes(self, metadata: Mapping[str, Any] | None = None) -> bytes:
        """The bytes of a model file (kind "GPCorrected": the pre-trained model's members
        prefixed ``pretrained.``, the correction's tensors and scalars)."""
        from levelup.model.fileformat import encode

        base = self.pretrained
        members = ([m.file_entry(f"pretrained.members.{k}.") for k, m in enumerate(base.members)]
                   if hasattr(base, "members") else [base.file_entry("pretrained.")])
        return encode("GPCorrected", members, self.state_dict(), metadata,
                      correction=self.correction_entry())

    def save(self, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None) -> None:
        """Write a model file atomically (:func:`levelup.model.files.load_model` reads it)."""
        write_bytes_atomic(path, self.to_bytes(metadata))


__all__ = ["GPCorrected"]
