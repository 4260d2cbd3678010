"""Model surgery for transfer learning: freeze, unfreeze, reinitialise, add layers, replace the
output layer, per-layer learning rates.

Each is a small function on an :class:`~levelup.model.ani.ANIModel` (or every member of an
:class:`~levelup.model.ani.Ensemble`); compose them, then call :func:`levelup.train.loop.fit`.
Layers are addressed by their position among the *Linear* layers of each element's network:
0 is the first, -1 the output layer. (MLatom counts positions in the whole ``nn.Sequential``,
where Linear layers sit at 0, 2, 4, 6; ``levelup.compat.mlatom`` translates.) The priors are
:mod:`levelup.transfer.priors`, the self energies :mod:`levelup.transfer.selfenergies`.

Example, the tutorial's transfer step::

    freeze(model, [0, -1])                         # first and last Linear layers of every element
    refit_self_energies(model, train, "CISD/cc-pVDZ")
    fit(model, train, val, property="CISD/cc-pVDZ", config=TrainConfig(learning_rate=1e-4))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from levelup.elements import atomic_number, symbol
from levelup.errors import ConfigError
from levelup.model.networks import init_network

Layers = int | Sequence[int] | str
Elements = str | int | Sequence[str | int] | None


def members(model: Any) -> list[Any]:
    """The ANIModels inside ``model``: itself, or the members of an Ensemble."""
    return list(getattr(model, "members", [model]))


def for_each_member(transfer: Callable[..., tuple[Any, Any]], pretrained: Any, recipe: Any,
                    **options: Any) -> tuple[Any, Any]:
    """``transfer(pretrained, recipe=recipe, **options)`` for one ANIModel. For an Ensemble,
    member k is transferred with ``replace(recipe, seed=recipe.seed + k)`` (its own folds,
    draws and batch order); returns (a new Ensemble of the members, the list of each member's
    record) then."""
    if not hasattr(pretrained, "members"):
        return transfer(pretrained, recipe=recipe, **options)
    from levelup.model.ani import Ensemble

    tuned, records = [], []
    for k, member in enumerate(pretrained.members):
        one, record = transfer(member, recipe=replace(recipe, seed=recipe.seed + k), **options)
        tuned.append(one)
        records.append(record)
    return Ensemble(tuned), records


def _networks(model: Any, elements: Elements) -> list[nn.Sequential]:
    nets = []
    for member in members(model):
        if elements is None:
            chosen = list(member.networks.keys())
        else:
            items = [elements] if isinstance(elements, (str, int)) else list(elements)
            chosen = [symbol(atomic_number(e)) for e in items]
            missing = [s for s in chosen if s not in member.networks]
            if missing:
                raise ConfigError(f"the model has no network for {missing}; it has "
                                  f"{list(member.networks.keys())}")
        nets.extend(member.networks[s] for s in chosen)
    return nets


def linear_positions(network: nn.Sequential) -> list[int]:
    """Positions of the Linear layers inside an element's ``nn.Sequential``."""
    return [i for i, m in enumerate(network) if isinstance(m, nn.Linear)]


def _linears(network: nn.Sequential, layers: Layers) -> list[nn.Linear]:
    positions = linear_positions(network)
    if isinstance(layers, str):
        if layers != "all":
            raise ConfigError(f"layers must be 'all', an int or a list of ints; got {layers!r}")
        return [network[p] for p in positions]
    chosen = [layers] if isinstance(layers, (int, np.integer)) else list(layers)
    out = []
    for k in chosen:
        if not -len(positions) <= int(k) < len(positions):
            raise ConfigError(f"Linear layer {k} does not exist: this network has "
                              f"{len(positions)} Linear layers (0..{len(positions) - 1}, or -1 "
                              "for the output layer)")
        out.append(network[positions[int(k)]])
    return out


def freeze(model: Any, layers: Layers = "all", elements: Elements = None) -> None:
    """Stop training of the given Linear layers (weights and biases) of the given elements."""
    for net in _networks(model, elements):
        for layer in _linears(net, layers):
            layer.requires_grad_(False)


def unfreeze(model: Any, layers: Layers = "all", elements: Elements = None) -> None:
    """Let the given Linear layers of the given elements train again."""
    for net in _networks(model, elements):
        for layer in _linears(net, layers):
            layer.requires_grad_(True)


def frozen_parameters(model: Any) -> list[str]:
    """Names of the network parameters that will not train."""
    return [name for name, p in model.named_parameters() if not p.requires_grad]


def _init_linear(layer: nn.Linear, generator: torch.Generator) -> None:
    init_network(nn.Sequential(layer), generator)  # TorchANI's recipe, as for a new model


def reinitialize(model: Any, layers: Layers, elements: Elements = None,
                 seed: int | None = None) -> None:
    """Draw fresh weights (Kaiming normal, zero bias) for the given Linear layers."""
    generator = torch.Generator().manual_seed(0 if seed is None else seed)
    for net in _networks(model, elements):
        for layer in _linears(net, layers):
            _init_linear(layer, generator)


def add_layer(model: Any, width: int, before: int = -1, elements: Elements = None,
              seed: int | None = None) -> None:
    """Insert a hidden layer (Linear + the network's activation) of ``width`` neurons before
    Linear layer ``before`` (default: before the output layer).

    The new layer starts random and trainable. The layer after it keeps its pre-trained weights
    when ``width`` equals its input size; otherwise it is rebuilt (randomly) to take ``width``
    inputs.
    """
    if width < 1:
        raise ConfigError(f"width must be a positive number of neurons; got {width}")
    generator = torch.Generator().manual_seed(0 if seed is None else seed)
    for member in members(model):
        for sym in list(member.networks.keys()):
            if elements is not None:
                wanted = [elements] if isinstance(elements, (str, int)) else list(elements)
                if sym not in {symbol(atomic_number(e)) for e in wanted}:
                    continue
            net = member.networks[sym]
            positions = linear_positions(net)
            if not -len(positions) <= before < len(positions) or before % len(positions) == 0:
                raise ConfigError(f"cannot insert before Linear layer {before}: choose 1.."
                                  f"{len(positions) - 1} or -1 (the output layer)")
            pos = positions[before]
            nxt: nn.Linear = net[pos]
            ref = next(p for p in net.parameters())
            activation = next((m for m in net if not isinstance(m, nn.Linear)), nn.CELU(0.1))
            new = nn.Linear(nxt.in_features, width).to(ref)
            _init_linear(new, generator)
            modules = list(net)
            if width != nxt.in_features:
                rebuilt = nn.Linear(width, nxt.out_features).to(ref)
                _init_linear(rebuilt, generator)
                modules[pos] = rebuilt
            modules[pos:pos] = [new, type(activation)(**_activation_kwargs(activation))]
            member.networks[sym] = nn.Sequential(*modules)


def _activation_kwargs(activation: nn.Module) -> dict[str, Any]:
    return {"alpha": activation.alpha} if isinstance(activation, nn.CELU) else {}


def replace_output(model: Any, elements: Elements = None, seed: int | None = None) -> None:
    """Reinitialise the output layer (a fresh linear read-out of the last hidden features)."""
    reinitialize(model, -1, elements, seed)


def parameter_groups(model: Any, learning_rate: float,
                     factors: dict[int, float] | None = None) -> list[dict[str, Any]]:
    """Optimizer parameter groups with per-layer learning rates.

    ``factors`` maps a Linear-layer position (0, 1, ..., -1) to a multiplier of ``learning_rate``;
    layers not named get the plain rate. Frozen parameters are left out.
    """
    factors = factors or {}
    groups: dict[float, list[nn.Parameter]] = {}
    for member in members(model):
        for net in member.networks.values():
            positions = linear_positions(net)
            for k, pos in enumerate(positions):
                factor = factors.get(k, factors.get(k - len(positions), 1.0))
                for p in net[pos].parameters():
                    if p.requires_grad:
                        groups.setdefault(learning_rate * factor, []).append(p)
    return [{"params": ps, "lr": lr} for lr, ps in groups.items()]


__all__ = ["add_layer", "for_each_member", "freeze", "frozen_parameters", "linear_positions",
           "members", "parameter_groups", "reinitialize", "replace_output", "unfreeze"]
