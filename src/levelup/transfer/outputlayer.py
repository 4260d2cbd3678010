"""The output layers of an :class:`~levelup.model.ani.ANIModel` as a linear model.

With every layer but the last fixed, a molecule's energy is linear in the output layers'
weights and biases: ``E = sum_i (w_s(i) . h_i + b_s(i)) + self energies``, ``h_i`` the last
hidden activations of atom ``i`` and ``s(i)`` its element. Summing ``h_i`` and counting atoms per
element gives one feature row per molecule (:func:`features`); its Cartesian derivatives give the
forces' rows (:func:`feature_derivatives`), so energies and forces are both linear in the change
of those parameters. :mod:`levelup.transfer.linear` solves for that change.

Parameter order (the columns): for each element in ``model.symbols`` order, the output layer's
weights, then its bias.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.autograd.forward_ad as fwad
from torch import Tensor


def _summed(model: Any, species: Tensor, coordinates: Tensor) -> Tensor:
    m, a = species.shape
    aev = model.compute_aev(species, coordinates)
    flat_species, flat = species.reshape(-1), aev.reshape(-1, aev.shape[-1])
    blocks = []
    for index, name in enumerate(model.symbols):
        mask = (flat_species == index).to(flat.dtype).unsqueeze(-1)
        hidden = model.networks[name][:-1](flat) * mask  # (molecules * atoms, hidden)
        blocks += [hidden.reshape(m, a, -1).sum(1), mask.reshape(m, a).sum(1, keepdim=True)]
    return torch.cat(blocks, -1)


def features(model: Any, species: Tensor, coordinates: Tensor) -> Tensor:
    """(molecules, parameters) float64: d energy / d output-layer parameter, per molecule.

    ``species`` are model indices (-1 padding), ``coordinates`` (molecules, atoms, 3) Angstrom.
    """
    with torch.no_grad():
        return _summed(model, species, coordinates.to(model.dtype)).double()


def feature_derivatives(model: Any, species: Tensor, coordinates: Tensor) -> Tensor:
    """(molecules, 3 * atoms, parameters) float64, per Angstrom: the derivative of each feature
    with respect to each Cartesian coordinate (x, y, z of atom 0 first). The forces of the linear
    model are ``-(this @ parameters)``. Forward-mode differentiation, one pass per coordinate."""
    x0 = coordinates.to(model.dtype)
    columns = []
    with torch.no_grad(), fwad.dual_level():
        for k in range(3 * species.shape[1]):
            tangent = torch.zeros_like(x0)
            tangent[:, k // 3, k % 3] = 1.0
            columns.append(fwad.unpack_dual(_summed(model, species,
                                                    fwad.make_dual(x0, tangent))).tangent)
    return torch.stack(columns, 1).double()


def directional_derivatives(model: Any, species: Tensor, coordinates: Tensor,
                            directions: Tensor) -> Tensor:
    """(molecules, probes, parameters) float64: the derivative of each feature along each of
    ``directions`` (molecules, probes, atoms, 3), per Angstrom; one forward-mode pass per
    probe. With Gaussian directions, ``mean over probes of t t^T`` is an unbiased estimate of
    ``D^T D`` (D from :func:`feature_derivatives`) at a fraction of its cost for large
    molecules."""
    x0 = coordinates.to(model.dtype)
    columns = []
    with torch.no_grad(), fwad.dual_level():
        for k in range(directions.shape[1]):
            tangent = directions[:, k].to(model.dtype)
            columns.append(fwad.unpack_dual(_summed(model, species,
                                                    fwad.make_dual(x0, tangent))).tangent)
    return torch.stack(columns, 1).double()


def bias_columns(model: Any) -> list[int]:
    """Column index of each element's output bias, in ``model.symbols`` order."""
    out, offset = [], 0
    for name in model.symbols:
        layer = model.networks[name][-1]
        offset += layer.weight.numel()
        out.append(offset)
        offset += layer.bias.numel()
    return out


def parameters(model: Any) -> Tensor:
    """The output layers' parameters as one float64 vector, in column order."""
    return torch.cat([torch.cat([model.networks[n][-1].weight.detach().reshape(-1),
                                 model.networks[n][-1].bias.detach().reshape(-1)])
                      for n in model.symbols]).double()


def add_to_parameters(model: Any, change: Tensor) -> None:
    """Add ``change`` (float64, column order) to the output layers' weights, and move each
    element's bias change into its self energy (exactly equivalent: every atom of the element
    gets it once; the self energies are float64, the networks usually float32)."""
    offset = 0
    self_energies = model.self_energies.detach().clone()
    with torch.no_grad():
        for index, name in enumerate(model.symbols):
            layer = model.networks[name][-1]
            n = layer.weight.numel()
            layer.weight.add_(change[offset:offset + n].reshape(layer.weight.shape)
                              .to(layer.weight.dtype))
            self_energies[index] += change[offset + n]
            offset += n + layer.bias.numel()
    model.set_self_energies(self_energies.cpu().numpy())
