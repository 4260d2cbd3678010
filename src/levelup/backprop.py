"""Hand-written forward and backward passes of an atomic network (Linear and CELU layers) on
cached features, for energy-only training.

Why: on a batch of 8 small molecules each matrix product is tiny, and most of a training step
is the bookkeeping of autograd (recording the graph, running its engine, accumulating gradients
tensor by tensor). For the ANI networks the backward pass is short enough to write out: with
``a_k`` the input of Linear layer k and ``d`` the gradient of the loss with respect to its
output,

    dL/dW_k = d^T a_k,    dL/db_k = sum over rows of d,    gradient for the layer below = d W_k,

and CELU's derivative is read off its output ``y``: 1 where y > 0, else exp(z/alpha) =
y/alpha + 1, i.e. ``min(y/alpha + 1, 1)`` everywhere. Gradients are written straight into each
parameter's ``.grad`` (views into :class:`levelup.optim.FlatAdamW`'s buffer), so there is nothing
to zero or accumulate. Frozen layers (and parameters without a gradient buffer, which the optimizer does not
train) pass gradients through but receive none.
tests/test_train.py checks the result against autograd.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def supported(network: nn.Module) -> bool:
    """True when ``network`` is a Sequential of Linear and CELU layers (the ANI layout)."""
    return isinstance(network, nn.Sequential) and len(network) > 0 and all(
        isinstance(m, (nn.Linear, nn.CELU)) for m in network)


@torch.no_grad()
def forward(network: nn.Sequential, x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """(output (rows, 1), the input of every layer) without recording a graph."""
    saved = []
    for layer in network:
        saved.append(x)
        if isinstance(layer, nn.Linear):
            x = torch.addmm(layer.bias, x, layer.weight.t()) if layer.bias is not None else \
                x @ layer.weight.t()
        else:
            x = torch.celu(x, layer.alpha)
    saved.append(x)
    return x, saved


@torch.no_grad()
def backward(network: nn.Sequential, saved: Sequence[Tensor], grad_out: Tensor) -> None:
    """Write dL/dparameter into ``.grad`` of every trainable parameter of ``network``, given
    ``grad_out`` = dL/d(output) (rows, 1) and the inputs saved by :func:`forward`."""
    d = grad_out
    for k in range(len(network) - 1, -1, -1):
        layer = network[k]
        if isinstance(layer, nn.Linear):
            if _trained(layer.weight):
                torch.mm(d.t(), saved[k], out=layer.weight.grad)
            if layer.bias is not None and _trained(layer.bias):
                torch.sum(d, 0, out=layer.bias.grad)
            if k > 0:
                d = d @ layer.weight
        else:  # CELU: derivative min(y / alpha + 1, 1) from its output y
            d = d * (saved[k + 1] * (1.0 / layer.alpha)).add_(1.0).clamp_(max=1.0)


@torch.no_grad()
def zero(network: nn.Sequential) -> None:
    """Zero the gradients of ``network``'s trainable parameters (no atom of its element in a
    batch)."""
    for p in network.parameters():
        if _trained(p):
            p.grad.zero_()


def _trained(p: Tensor) -> bool:
    # the optimizer gives the parameters it trains a gradient buffer; others get nothing
    return p.requires_grad and p.grad is not None
