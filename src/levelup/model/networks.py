"""The per-element atomic networks of an ANI model: building, initialising, describing.

An atomic network is a ``torch.nn.Sequential`` that maps an AEV (aev_length,) to one number,
the atom's energy contribution in Hartree. The ANI-1x layout alternates Linear and CELU, so the
Linear layers sit at positions 0, 2, 4, 6 (the indices MLatom's ``fix_layers`` uses).

A network is described by a JSON-ready list of layers (model files store it), e.g.
``[{"type": "Linear", "in": 384, "out": 160, "bias": true}, {"type": "CELU", "alpha": 0.1}, ...]``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch

#: Hidden layer widths of the ANI-1x networks (Smith et al. 2018; the tutorial's architecture).
ANI1X_HIDDEN: dict[str, tuple[int, ...]] = {
    "H": (160, 128, 96),
    "C": (144, 112, 96),
    "N": (128, 112, 96),
    "O": (128, 112, 96),
}
#: Hidden layer widths of the ANI-2x networks (Devereux et al. 2020), for
#: ``ANIModel(["H", "C", "N", "O", "S", "F", "Cl"], aev=AEVParams.ani2x(), hidden=ANI2X_HIDDEN)``.
ANI2X_HIDDEN: dict[str, tuple[int, ...]] = {
    "H": (256, 192, 160),
    "C": (224, 192, 160),
    "N": (192, 160, 128),
    "O": (192, 160, 128),
    "S": (160, 128, 96),
    "F": (160, 128, 96),
    "Cl": (160, 128, 96),
}
#: Hidden layer widths for elements ANI-1x has no network for (the N and O size of ANI-1x).
OTHER_HIDDEN: tuple[int, ...] = (128, 112, 96)
#: CELU alpha of ANI-1x and ANI-2x.
ALPHA = 0.1

# activations a model file may name, with their JSON arguments
_ACTIVATIONS: dict[str, tuple[type[torch.nn.Module], tuple[str, ...]]] = {
    "CELU": (torch.nn.CELU, ("alpha",)),
    "GELU": (torch.nn.GELU, ()),
    "SiLU": (torch.nn.SiLU, ()),
    "Tanh": (torch.nn.Tanh, ()),
    "Softplus": (torch.nn.Softplus, ("beta", "threshold")),
    "Identity": (torch.nn.Identity, ()),
}


@contextlib.contextmanager
def _no_draws() -> Iterator[None]:
    # torch's Linear layers initialise themselves from the global generator; its state is put
    # back afterwards, so building (or loading) a model never shifts the random stream of the
    # caller. (levelup built them on the meta device before, then gave them memory: torch
    # imports sympy for that, 0.7 s in every process that builds a model.)
    with torch.random.fork_rng(devices=[]):
        yield


def build_network(n_in: int, hidden: Sequence[int], alpha: float = ALPHA) -> torch.nn.Sequential:
    """Linear(n_in, h1), CELU(alpha), ..., Linear(h_last, 1): the ANI atomic network.

    The weights are torch's default initial values (drawn without moving torch's global random
    stream): call :func:`init_network` (or load a state dict).
    """
    widths = [int(n_in), *(int(h) for h in hidden)]
    if any(w < 1 for w in widths):
        raise ValueError(f"layer widths must be positive; got {widths}")
    layers: list[torch.nn.Module] = []
    with _no_draws():
        for w_in, w_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [torch.nn.Linear(w_in, w_out), torch.nn.CELU(alpha)]
        layers.append(torch.nn.Linear(widths[-1], 1))
    return torch.nn.Sequential(*layers)


def init_network(network: torch.nn.Module, generator: torch.Generator | None = None) -> None:
    """TorchANI's (and MLatom's) initialisation: Kaiming-normal weights with a=1 (standard
    deviation 1/sqrt(fan_in)), zero biases. Draws from ``generator`` when given."""
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, torch.nn.Linear):
                torch.nn.init.kaiming_normal_(module.weight, a=1.0, generator=generator)
                if module.bias is not None:
                    module.bias.zero_()


def describe_network(network: torch.nn.Sequential) -> list[dict[str, Any]]:
    """JSON-ready description of each layer of ``network`` (inverse of :func:`network_from_spec`).

    Raises ValueError for a layer type that model files cannot describe.
    """
    spec: list[dict[str, Any]] = []
    for position, module in enumerate(network):
        if isinstance(module, torch.nn.Linear):
            spec.append({"type": "Linear", "in": module.in_features, "out": module.out_features,
                         "bias": module.bias is not None})
            continue
        for name, (cls, args) in _ACTIVATIONS.items():
            if type(module) is cls:
                spec.append({"type": name, **{a: getattr(module, a) for a in args}})
                break
        else:
            raise ValueError(
                f"layer {position} is a {type(module).__name__}; model files hold Linear layers "
                f"and the activations {', '.join(_ACTIVATIONS)}"
            )
    return spec


def network_from_spec(spec: Sequence[dict[str, Any]]) -> torch.nn.Sequential:
    """Build a network (torch's default weights: load a state dict into it) from
    :func:`describe_network`'s description. Raises ValueError naming the layer that is malformed.
    """
    layers: list[torch.nn.Module] = []
    with _no_draws():
        _add_layers(layers, spec)
    if not layers:
        raise ValueError("a network needs at least one layer")
    return torch.nn.Sequential(*layers)


def _add_layers(layers: list[torch.nn.Module], spec: Sequence[dict[str, Any]]) -> None:
    for position, layer in enumerate(spec):
        if not isinstance(layer, dict) or "type" not in layer:
            raise ValueError(f"layer {position}: expected an object with a 'type'; got {layer!r}")
        kind = layer["type"]
        if kind == "Linear":
            n_in, n_out, bias = layer.get("in"), layer.get("out"), layer.get("bias", True)
            if not (isinstance(n_in, int) and isinstance(n_out, int) and n_in > 0 and n_out > 0):
                raise ValueError(f"layer {position}: Linear needs positive integer 'in' and 'out'; "
                                 f"got {layer!r}")
            layers.append(torch.nn.Linear(n_in, n_out, bias=bool(bias)))
        elif kind in _ACTIVATIONS:
            cls, args = _ACTIVATIONS[kind]
            extra = set(layer) - {"type", *args}
            if extra:
                raise ValueError(f"layer {position}: unknown settings {sorted(extra)} for {kind}")
            kwargs = {a: float(layer[a]) for a in args if a in layer}
            layers.append(cls(**kwargs))
        else:
            raise ValueError(f"layer {position}: unknown layer type {kind!r}; known: Linear, "
                             f"{', '.join(_ACTIVATIONS)}")
