"""Model files: load an :class:`~levelup.model.ani.ANIModel` or
:class:`~levelup.model.ani.Ensemble` from the file that its ``save`` wrote.

The format (a safetensors file with a versioned levelup header; nothing pickled) is described
and checked in :mod:`levelup.model.fileformat`; this module builds models from what it reads::

    model = load_model("h2.pt")          # ANIModel or Ensemble, ModelFileError if anything is off
    load_metadata("h2.pt")               # what it was trained on, the level of theory, ...
    read_header("h2.pt")["members"][0]   # its architecture, without loading the weights
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from levelup.errors import ModelFileError
from levelup.model.aev import AEVParams
from levelup.model.ani import ANIModel, Ensemble
from levelup.model.fileformat import DTYPES, decode, fail, read_header, read_model_bytes
from levelup.model.networks import network_from_spec

__all__ = ["load_metadata", "load_model", "model_from_bytes", "model_to_bytes", "read_header",
           "save_model"]


def model_to_bytes(model: ANIModel | Ensemble, metadata: Mapping[str, Any] | None = None) -> bytes:
    """The bytes of a model file for ``model`` (see :mod:`levelup.model.fileformat`)."""
    if not hasattr(model, "to_bytes"):
        raise ModelFileError(f"can save an ANIModel, an Ensemble or a GPCorrected model, not a "
                             f"{type(model).__name__}")
    return model.to_bytes(metadata)


def save_model(model: ANIModel | Ensemble, path: str | os.PathLike,
               metadata: Mapping[str, Any] | None = None) -> None:
    """Write ``model`` to ``path`` atomically (a crash never leaves half a file); the same as
    ``model.save(path, metadata)``."""
    if not hasattr(model, "to_bytes"):
        raise ModelFileError(f"can save an ANIModel, an Ensemble or a GPCorrected model, not a "
                             f"{type(model).__name__}")
    model.save(path, metadata)


def _build_member(spec: Any, where: Any) -> ANIModel:
    """An ANIModel with the architecture of one header entry (weights still to be loaded)."""
    try:
        aev = AEVParams.from_dict(spec["aev"])
        networks = {name: network_from_spec(layers) for name, layers in spec["networks"].items()}
        model = ANIModel.from_networks(spec["elements"], networks, aev=aev)
        dtype = DTYPES[spec.get("dtype", "float32")]
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise fail(where, f"corrupted architecture in the header ({type(exc).__name__}: {exc})"
                   ) from None
    return model.to(dtype)


def _freeze(model: ANIModel | Ensemble, members_spec: list[Any], where: Any) -> None:
    """Switch off ``requires_grad`` of the parameters each header entry lists as frozen."""
    params = dict(model.named_parameters())
    for spec in members_spec:
        frozen = spec.get("frozen", [])
        if not isinstance(frozen, list):
            raise fail(where, f"corrupted header: frozen is a {type(frozen).__name__}, not a list")
        for name in frozen:  # names carry the "members.<k>." prefix
            if not isinstance(name, str) or name not in params:
                raise fail(where, f"corrupted header: frozen parameter {name!r} does not exist")
            params[name].requires_grad_(False)


def model_from_bytes(data: bytes, where: Any = "model file") -> Any:
    """Inverse of :func:`model_to_bytes`; ``where`` names the source in error messages."""
    header, tensors = decode(data, where)
    members_spec = header["members"]
    members = [_build_member(spec, where) for spec in members_spec]
    model: Any = Ensemble(members) if header["kind"] == "Ensemble" else members[0]
    if header["kind"] == "GPCorrected":
        model = _gp_corrected(header, tensors, members, where)
    try:
        model.load_state_dict(tensors, strict=True)
    except (RuntimeError, KeyError) as exc:
        raise fail(where, f"the tensors do not fit the architecture in the header "
                   f"({' '.join(str(exc).split())[:300]})") from None
    _freeze(model, members_spec, where)
    return model


def _gp_corrected(header: dict[str, Any], tensors: dict[str, Any], members: list[ANIModel],
                  where: Any) -> Any:
    """The GPCorrected model of a "GPCorrected" file, its tensors not yet loaded."""
    from levelup.model.gpcorrected import GPCorrected

    spec = header.get("correction")
    try:
        base = Ensemble(members) if spec["pretrained_kind"] == "Ensemble" else members[0]
        return GPCorrected(base, spec["species"], tensors["descriptors"].clone(),
                           tensors["directions"].clone(), tensors["weights"].clone(),
                           float(spec["length"]), float(spec["variance"]), float(spec["offset"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise fail(where, f"corrupted GP correction in the header ({type(exc).__name__}: {exc})"
                   ) from None


def load_model(path: str | os.PathLike) -> Any:
    """Read a model file written by :meth:`ANIModel.save`, :meth:`Ensemble.save` or
    :meth:`GPCorrected.save <levelup.model.gpcorrected.GPCorrected.save>`.

    Raises ModelFileError (with what is wrong and what to do) for a truncated, corrupted or
    foreign file, or one from a newer format version. Never unpickles anything.
    """
    return model_from_bytes(read_model_bytes(path), path)


def load_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``metadata`` a model was saved with (training data, level of theory, ...)."""
    return dict(read_header(path).get("metadata") or {})
