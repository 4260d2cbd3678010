"""The record of a training run: :class:`History` (one entry per epoch, saved as JSON) and
:class:`TrainingInterrupted`, which carries it out of an interrupted
:func:`levelup.train.loop.fit`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from levelup.atomicwrite import write_text_atomic
from levelup.jsonvalues import json_ready


@dataclass
class History:
    """Per-epoch record of a :func:`~levelup.train.loop.fit` run (lists, one entry per epoch).

    Attributes:
        epoch: epoch numbers (1-based).
        train_rmse: energy RMSE over the training batches of that epoch, kcal/mol.
        val_rmse: energy RMSE on the validation set after that epoch, kcal/mol (NaN without one).
        train_force_rmse / val_force_rmse: force RMSE, kcal/mol/Angstrom (NaN unless forces).
        val_loss: the loss the schedule watches (validation, or training without validation).
        lr: learning rate used in that epoch (of the first parameter group).
        time: seconds since the start of training at the end of that epoch.
        best_epoch: epoch whose weights were restored at the end.
        stop_reason: why training stopped ("lr_floor", "max_epochs", "callback" or
            "interrupted": see :class:`TrainingInterrupted`).
    """

    epoch: list[int] = field(default_factory=list)
    train_rmse: list[float] = field(default_factory=list)
    val_rmse: list[float] = field(default_factory=list)
    train_force_rmse: list[float] = field(default_factory=list)
    val_force_rmse: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    time: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stop_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Every field as a plain dict (lists copied), for JSON and checkpoints."""
        return dataclasses.asdict(self)

    def append(self, **values: float) -> None:
        """Record one epoch: a value for each per-epoch list (``epoch=3, train_rmse=0.2, ...``)."""
        for name, value in values.items():
            getattr(self, name).append(value)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        """The History that :meth:`to_dict` gave ``data`` (keys it does not know are ignored)."""
        return cls(**{f.name: copy.deepcopy(data[f.name]) for f in dataclasses.fields(cls)
                      if f.name in data})

    def save(self, path: str | os.PathLike) -> None:
        """Write as JSON (atomically); NaN is written as null."""
        clean = json_ready({"units": "kcal/mol", **self.to_dict()}, where=os.fspath(path))
        write_text_atomic(path, json.dumps(clean, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> History:
        """Read a file written by :meth:`save` (null back to NaN)."""
        data = json.loads(Path(path).read_text())
        return cls.from_dict({k: ([math.nan if x is None else x for x in v]
                                  if isinstance(v, list) else v) for k, v in data.items()})


class TrainingInterrupted(KeyboardInterrupt):  # noqa: N818 (it is a KeyboardInterrupt)
    """Raised by :func:`~levelup.train.loop.fit` when a KeyboardInterrupt (Ctrl-C; SIGTERM too
    under the ``levelup`` command) arrives during the epochs. It is a KeyboardInterrupt, so a
    script stops as usual; a caller that wants the work done so far catches it: the model
    already holds the weights of the best epoch so far (as after a normal end), and
    ``history`` records the finished epochs with ``stop_reason = "interrupted"``
    (``history.best_epoch`` is 0, and the model's weights those of a partly trained first
    epoch, when no epoch finished). No checkpoint is written for the unfinished epoch:
    resuming starts from the last periodic checkpoint.

    Attributes:
        history: the :class:`History` of the epochs that finished.
    """

    def __init__(self, history: History) -> None:
        super().__init__(f"training interrupted after {len(history.epoch)} epochs")
        self.history = history
