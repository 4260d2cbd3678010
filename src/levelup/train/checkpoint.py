"""Training checkpoints: everything :func:`levelup.train.loop.fit` needs to resume a run exactly.

A checkpoint is a plain dict of tensors, numbers, strings and lists written with ``torch.save``
(atomically: a crash mid-write leaves the previous checkpoint intact) and read back with
``torch.load(weights_only=True)``, so loading one never runs code: that unpickler builds only
tensors, dicts, lists, tuples, numbers, strings and a fixed allowlist of torch types, and refuses
any other global (so no ``__reduce__`` payload can call anything). torch before 2.6 had a hole in
it (CVE-2025-32434), so checkpoints are refused under an older torch.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from levelup.atomicwrite import write_bytes_atomic
from levelup.errors import ConfigError

#: Version of the checkpoint layout; bumped when the keys change. 2: the optimizer state is
#: torch's AdamW/SGD state (levelup.train.optim.AveragedAdamW) instead of one flat buffer's.
#: 3: AveragedAdamW's own state (rates, Adam's moments and step counts per parameter) and the
#: schedule's (levelup.train.optim.Plateau) instead of torch.optim's state dicts.
CHECKPOINT_VERSION = 3


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` (model/optimizer/scheduler state dicts, RNG state, epoch, history, best
    weights, fingerprint) to ``path`` atomically."""
    buffer = io.BytesIO()
    torch.save({"levelup_checkpoint": CHECKPOINT_VERSION, **state}, buffer)
    write_bytes_atomic(path, buffer.getvalue())


#: Oldest torch whose ``torch.load(weights_only=True)`` has no known way to run code.
SAFE_TORCH = (2, 6)


def _torch_version() -> tuple[int, int]:
    major, minor = (torch.__version__.split("+")[0].split(".") + ["0"])[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises ConfigError when the file is not a levelup checkpoint, is truncated, or comes from a
    newer layout, or when the installed torch is older than 2.6 (see the module docstring).
    """
    if _torch_version() < SAFE_TORCH:
        raise ConfigError(f"cannot resume from checkpoint {path} with torch {torch.__version__}: "
                          "its loader can run code hidden in a file (CVE-2025-32434); upgrade "
                          "torch to 2.6 or newer, or delete the checkpoint to train afresh")
    if Path(path).is_dir():
        raise ConfigError(f"training checkpoint {path} is a folder; point checkpoint= at a file")
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
        if head != b"PK\x03\x04":  # save_checkpoint writes torch's zip format, nothing else
            raise ConfigError(f"{path} is not a levelup training checkpoint (not the zip archive "
                              "that save_checkpoint writes). Delete it to start training afresh, "
                              "or point checkpoint= elsewhere")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's remarks on odd files; the error says it all
            state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        message = " ".join(str(exc).split())[:300]
        raise ConfigError(f"cannot read training checkpoint {path} ({type(exc).__name__}: "
                          f"{message}). Delete it to start training afresh, or point checkpoint= "
                          "elsewhere") from None
    if not isinstance(state, dict) or "levelup_checkpoint" not in state:
        raise ConfigError(f"{path} is not a levelup training checkpoint")
    version = state["levelup_checkpoint"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ConfigError(f"{path} is a damaged levelup training checkpoint: layout version "
                          f"{version!r} is not a positive integer. Delete it to start afresh")
    if version > CHECKPOINT_VERSION:
        raise ConfigError(f"checkpoint {path} has layout version {version}; "
                          f"this levelup reads up to {CHECKPOINT_VERSION}: upgrade levelup")
    if version < CHECKPOINT_VERSION:
        raise ConfigError(f"checkpoint {path} has layout version {version}, written by an older "
                          f"levelup whose optimizer state this one (layout {CHECKPOINT_VERSION}) "
                          "cannot continue: delete it to train afresh")
    return state
