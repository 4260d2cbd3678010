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
parameter's ``.grad`` (buffers that :class:`levelup.train.optim.AveragedAdamW` allocates once),
so there is nothing to zero or accumulate. Frozen layers (and parameters without a gradient
buffer, which the optimizer does not train) pass gradients through but receive none.
tests/test_train.py checks the result against autograd.

The plan holds detached aliases of the parameters (same storage, updated in place by the
optimizer), and their transposes as views made once: fed cached features, which need no
gradient, no operation here is recorded by autograd, without switching it off around every
call; and each step makes no transposed view it does not need (bench/RESULTS.md,
"step-overhead").
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def supported(network: nn.Module) -> bool:
    """True when ``network`` is a Sequential of Linear and CELU layers (the ANI layout)."""
    return isinstance(network, nn.Sequential) and len(network) > 0 and all(
        isinstance(m, (nn.Linear, nn.CELU)) for m in network)


#: one layer of a :func:`plan`: ("linear", weight, bias, weight.grad, bias.grad, weight.t()) or
#: ("celu", alpha); parameters detached (same storage), a grad None for a parameter that is not
#: trained, a bias None for a layer without one
Step = tuple


def plan(network: nn.Sequential) -> list[Step]:
    """The layers of ``network`` as plain tuples, read once (module attribute look-ups cost more
    than the tiny matrix products of a small batch). Take it anew when ``.grad`` buffers change."""
    out: list[Step] = []
    for layer in network:
        if isinstance(layer, nn.Linear):
            weight = layer.weight.detach()
            bias = layer.bias.detach() if layer.bias is not None else None
            out.append(("linear", weight, bias, _grad(layer.weight),
                        _grad(layer.bias) if layer.bias is not None else None, weight.t()))
        else:
            out.append(("celu", float(layer.alpha)))
    return out


def forward(steps: list[Step], x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """(output (rows, 1), the input of every layer) of features ``x`` (rows, width) that need
    no gradient; no graph is recorded."""
    saved = []
    for step in steps:
        saved.append(x)
        if step[0] == "linear":
            x = torch.addmm(step[2], x, step[5]) if step[2] is not None else torch.mm(x, step[5])
        else:
            x = torch.celu(x, step[1])
    saved.append(x)
    return x, saved


def backward(steps: list[Step], saved: Sequence[Tensor], grad_out: Tensor) -> None:
    """Write dL/dparameter into ``.grad`` of every trained parameter, given ``grad_out`` =
    dL/d(output) (rows, 1) and the inputs saved by :func:`forward`."""
    d = grad_out
    for k in range(len(steps) - 1, -1, -1):
        step = steps[k]
        if step[0] == "linear":
            _, weight, _, grad_w, grad_b, _ = step
            if grad_w is not None:
                torch.mm(d.t(), saved[k], out=grad_w)
            if grad_b is not None:
                torch.sum(d, 0, out=grad_b)
            if k > 0:
                d = torch.mm(d, weight)
        else:  # CELU: derivative min(y / alpha + 1, 1) from its output y
            d = d * (saved[k + 1] * (1.0 / step[1])).add_(1.0).clamp_(max=1.0)


def zero(steps: list[Step]) -> None:
    """Zero the gradients of the trained parameters (no atom of this element in a batch)."""
    for step in steps:
        if step[0] == "linear":
            for grad in step[3:5]:
                if grad is not None:
                    grad.zero_()


def _grad(p: Tensor) -> Tensor | None:
    # the optimizer gives the parameters it trains a gradient buffer; others get nothing
    return p.grad if p.requires_grad and p.grad is not None else None
