"""Training checkpoints: everything :func:`levelup.train.fit` needs to resume a run exactly.

A checkpoint is a plain dict of tensors, numbers, strings and lists written with ``torch.save``
(atomically: a crash mid-write leaves the previous checkpoint intact) and read back with
``torch.load(weights_only=True)``, so loading one never runs code.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from .atomic import write_bytes_atomic
from .errors import ConfigError

#: Version of the checkpoint layout; bumped when the keys change.
CHECKPOINT_VERSION = 1


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` (model/optimizer/scheduler state dicts, RNG state, epoch, history, best
    weights, fingerprint) to ``path`` atomically."""
    buffer = io.BytesIO()
    torch.save({"levelup_checkpoint": CHECKPOINT_VERSION, **state}, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises ConfigError when the file is not a levelup checkpoint, is truncated, or comes from a
    newer layout.
    """
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise ConfigError(f"cannot read training checkpoint {path}: {exc}. Delete it to start "
                          "training afresh, or point checkpoint= elsewhere") from exc
    if not isinstance(state, dict) or "levelup_checkpoint" not in state:
        raise ConfigError(f"{path} is not a levelup training checkpoint")
    if state["levelup_checkpoint"] > CHECKPOINT_VERSION:
        raise ConfigError(f"checkpoint {path} has layout version {state['levelup_checkpoint']}; "
                          f"this levelup reads up to {CHECKPOINT_VERSION}: upgrade levelup")
    return state
