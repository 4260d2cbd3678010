"""The model-file format: bytes <-> (levelup header, named tensors); no model classes here.

A model file is a `safetensors <https://huggingface.co/docs/safetensors>`_ file (readable by any
safetensors tool): an 8-byte header length, a JSON header, then raw tensor bytes. Nothing in it
is pickled, so loading it cannot run code. The safetensors metadata holds one entry,
``"levelup"``, a JSON document::

    {
      "format": "levelup-ani", "format_version": 1, "levelup_version": "0.1.0",
      "kind": "ANIModel" | "Ensemble" | "GPCorrected",
      "units": {"length": "Angstrom", "energy": "Hartree", "self_energies": "Hartree"},
      "members": [                      # one entry for a model, one per member of an ensemble
        {"elements": ["H", "C"], "atomic_numbers": [1, 6],
         "aev": {"Rcr": 5.2, ...},       # AEVParams.to_dict()
         "networks": {"H": [{"type": "Linear", "in": 384, "out": 160, "bias": true},
                            {"type": "CELU", "alpha": 0.1}, ...], ...},
         "dtype": "float32",
         "self_energies": {"H": -0.5, ...},   # for reading; the float64 tensor is authoritative
         "frozen": ["networks.H.0.weight", ...]}   # parameters with requires_grad False
      ],
      "metadata": {...},                # what the caller passed: training data, level, history
      "tensors_sha256": "..."           # over names, dtypes, shapes and bytes of all tensors
    }

A "GPCorrected" file (a pre-trained model plus a GP correction of one molecule,
:mod:`levelup.model.gpcorrected`) lists the pre-trained model's members under ``pretrained.``
and adds ``"correction"``: the molecule's atomic numbers, the kernel's length and variance, the
offset, and the pre-trained model's kind.

Tensors are the model's ``state_dict()`` (an ensemble's keys start with ``members.<k>.``),
stored in their own dtype, so a saved and reloaded model predicts bit-identically. Files are
written atomically. Reading checks the format name and version, the checksum, the units, and
that the header's layers do not ask for more numbers than the tensors hold; anything wrong
raises :class:`~levelup.errors.ModelFileError`.

The models write themselves with :func:`encode` (:meth:`ANIModel.save
<levelup.model.ani.ANIModel.save>`); :mod:`levelup.model.files` builds them back from what
:func:`decode` returns.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from levelup.errors import ModelFileError
from levelup.units import ENERGY, LENGTH

FORMAT = "levelup-ani"
#: Newest format version this levelup writes and reads.
FORMAT_VERSION = 1
#: The kinds of model a file may hold.
KINDS = ("ANIModel", "Ensemble", "GPCorrected")
#: dtype names of the header's ``members[k].dtype``.
DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
          "bfloat16": torch.bfloat16}
_KEY = "levelup"
_MAX_HEADER = 100_000_000  # bytes; a larger header is not one levelup wrote
_SIZE_SLACK = 10_000_000  # numbers a header may ask for beyond its tensors (see _check_sizes)


def _version() -> str:
    from levelup._version import __version__

    return __version__


def fail(where: Any, why: str) -> ModelFileError:
    """The ModelFileError ``"<where>: <why>"`` (``where`` names the file or source)."""
    return ModelFileError(f"{where}: {why}")


def _checksum(tensors: Mapping[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


# ---------------------------------------------------------------------- writing
def encode(kind: str, members: Sequence[Mapping[str, Any]], state: Mapping[str, torch.Tensor],
           metadata: Mapping[str, Any] | None = None,
           correction: Mapping[str, Any] | None = None) -> bytes:
    """The bytes of a model file.

    Args:
        kind: one of :data:`KINDS`.
        members: one header entry per model (see the module docstring).
        state: the model's ``state_dict()``; copied to the CPU, each tensor in its own dtype.
        metadata: JSON-ready dict stored as the header's ``metadata``; anything else (NaN, an
            object) raises ModelFileError.
        correction: kind "GPCorrected" only: the correction's scalars
            (:meth:`levelup.model.gpcorrected.GPCorrected.correction_entry`).
    """
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "levelup_version": _version(),
        "torch_version": torch.__version__,
        "kind": kind,
        "units": {"length": LENGTH, "energy": ENERGY, "self_energies": ENERGY},
        "members": [dict(m) for m in members],
        "metadata": dict(metadata or {}),
        "tensors_sha256": _checksum(tensors),
    }
    if correction is not None:
        header["correction"] = dict(correction)
    try:
        text = json.dumps(header, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"the model's metadata must be JSON-ready (strings, numbers, lists, "
                             f"dicts; no NaN): {exc}") from None
    return save(tensors, metadata={_KEY: text})


# ---------------------------------------------------------------------- reading the header
def read_model_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of the file at ``path``; a folder or an unreadable file is a ModelFileError."""
    if Path(path).is_dir():
        raise fail(path, "a folder, not a model file: give the path of a file in it")
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise fail(path, f"cannot read it ({exc.strerror or exc}): check the path and its "
                   "permissions") from None


def _raw_header(data: bytes, where: Any) -> dict[str, Any]:
    """The safetensors JSON header of ``data``, with errors that say what the file is."""
    # a safetensors file is an 8-byte header length, then the JSON header ("{"); a pickle
    # starts with the PROTO opcode 0x80 and a protocol number, a torch.save zip with "PK"
    is_safetensors = len(data) > 8 and data[8:9] == b"{"
    if not is_safetensors and data[:2] == b"PK":
        raise fail(where, "this is a zip archive (a pickled torch.save file, or a TorchScript "
                   "export such as levelup export writes), not a levelup model file; levelup "
                   "never loads either, because loading them can run code. Give the model file "
                   "that levelup train or finetune wrote (levelup info describes an export)")
    if not is_safetensors and data[:1] == b"\x80":
        raise fail(where, "this is a pickled (torch.save) file, not a levelup model file; "
                   "levelup never unpickles files because unpickling can run code. Rebuild the "
                   "model and save it with model.save()")
    if len(data) < 8:
        raise fail(where, f"only {len(data)} bytes: truncated, or not a levelup model file")
    (size,) = struct.unpack("<Q", data[:8])
    if size > _MAX_HEADER or 8 + size > len(data):
        raise fail(where, f"not a levelup model file, or truncated: its first 8 bytes announce "
                   f"a {size}-byte header but the file has {len(data)} bytes")
    try:
        header = json.loads(data[8:8 + size].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise fail(where, "corrupted or foreign file: its header is not valid JSON") from None
    if not isinstance(header, dict):
        raise fail(where, "corrupted or foreign file: its header is not a JSON object")
    return header


def levelup_header(data: bytes, where: Any) -> dict[str, Any]:
    """The levelup header of model-file bytes, its format name and version checked."""
    meta = _raw_header(data, where).get("__metadata__") or {}
    text = meta.get(_KEY) if isinstance(meta, dict) else None
    if not isinstance(text, str):
        raise fail(where, "a safetensors file without a levelup header: not a levelup model file "
                   "(it may hold weights of another program)")
    try:
        header = json.loads(text)
    except (ValueError, RecursionError):
        raise fail(where, "corrupted: the levelup header is not valid JSON") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        got = header.get("format") if isinstance(header, dict) else None
        raise fail(where, f"foreign file: format {got!r}, expected {FORMAT!r}")
    version = header.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise fail(where, f"corrupted: format_version {version!r} is not a positive integer")
    if version > FORMAT_VERSION:
        raise fail(where, f"written by levelup {header.get('levelup_version', '?')} in model-file "
                   f"format version {version}; this levelup ({_version()}) reads versions up to "
                   f"{FORMAT_VERSION}: upgrade levelup (pip install -U levelup)")
    return header


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The levelup header of a model file (elements, architecture, metadata, ...), without
    loading the weights. Raises ModelFileError as :func:`levelup.model.files.load_model` does."""
    return levelup_header(read_model_bytes(path), path)


# ---------------------------------------------------------------------- reading the tensors
def _count(table: dict[str, Any], *keys: str) -> int:
    return math.prod(len(v) if isinstance(v, list) else 1 for v in map(table.get, keys))


def _declared_numbers(spec: dict[str, Any]) -> int:
    """How many numbers building a member from ``spec`` allocates: its Linear layers, and the
    AEV that each element's first layer takes whole (a loose count; no validation here)."""
    aev, networks = spec.get("aev"), spec.get("networks")
    n = len(spec["elements"]) if isinstance(spec.get("elements"), list) else 1
    aev_numbers = 0
    if isinstance(aev, dict):
        aev_numbers = n * (n * _count(aev, "EtaR", "ShfR")
                           + n * (n + 1) // 2 * _count(aev, "EtaA", "Zeta", "ShfA", "ShfZ"))
    weights = 0
    for layers in (networks.values() if isinstance(networks, dict) else ()):
        for layer in (layers if isinstance(layers, list) else ()):
            sizes = (layer.get("in"), layer.get("out")) if isinstance(layer, dict) else ()
            if len(sizes) == 2 and all(isinstance(x, int) and x > 0 for x in sizes):
                weights += sizes[0] * sizes[1]
    return max(aev_numbers, weights)


def _check_sizes(members_spec: list[Any], n_numbers: int, where: Any) -> None:
    """Refuse a header whose layers or AEV ask for more numbers than the file's tensors hold,
    before anything is allocated (a hand-made header could ask for terabytes)."""
    declared = 0
    for spec in members_spec:
        if not isinstance(spec, dict):
            raise fail(where, f"corrupted header: a member is a {type(spec).__name__}, not an "
                       "object")
        declared += _declared_numbers(spec)
    if declared > 8 * n_numbers + _SIZE_SLACK:  # loose: exact fit is load_state_dict's check
        raise fail(where, f"corrupted header: its layers and AEV ask for {declared} numbers, far "
                   f"more than the {n_numbers} that the file's tensors hold")


def decode(data: bytes, where: Any = "model file") -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Inverse of :func:`encode`: (levelup header, tensors by ``state_dict`` name).

    Checks everything the format promises (format and version, tensor data, checksum, units,
    kind, a non-empty member list, sizes) and raises ModelFileError naming ``where``; whether
    the tensors fit the architecture is for the model to say when it loads them.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    header = levelup_header(data, where)
    try:
        tensors = load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise fail(where, f"truncated or corrupted tensor data ({exc})") from None
    if _checksum(tensors) != header.get("tensors_sha256"):
        raise fail(where, "corrupted: the tensors do not match the checksum in the header")
    units = header.get("units")
    if not isinstance(units, dict) or units.get("length") != LENGTH or units.get("energy") != ENERGY:
        raise fail(where, f"units {units} are not levelup's ({LENGTH}, {ENERGY}); this file "
                   "was not written by levelup or was edited by hand")
    members_spec = header.get("members")
    kind = header.get("kind")
    if not isinstance(members_spec, list) or not members_spec or kind not in KINDS:
        raise fail(where, f"corrupted header: kind {kind!r} with members {type(members_spec)}")
    _check_sizes(members_spec, sum(t.numel() for t in tensors.values()), where)
    return header, tensors
