"""Training settings: :class:`TrainConfig`, every field checked (type, finiteness, range) when a
config is made, so that a bad setting fails in one line before any work, naming the field, its
command-line flag, the value received and the valid range.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from levelup.configload import convert, field_types, load, read_toml
from levelup.errors import ConfigError

#: field -> (lowest, lowest allowed, highest, highest allowed); numbers must also be finite
_RANGES = {
    "learning_rate": (0, False, math.inf, False),
    "batch_size": (1, True, math.inf, False),
    "weight_decay": (0, True, math.inf, False),
    "hidden_weight_decay": (0, True, math.inf, False),
    "ema_decay": (0, True, 1, False),
    "lr_factor": (0, False, 1, False),
    "lr_patience": (0, True, math.inf, False),
    "lr_threshold": (0, True, 1, False),
    "lr_floor": (0, True, math.inf, False),
    "max_epochs": (1, True, math.inf, False),
    "force_weight": (0, True, math.inf, False),
    "validation_fraction": (0, True, 1, False),
    "seed": (0, True, 2**63, False),
    "checkpoint_every": (1, True, math.inf, False),
    "cache_memory_mb": (0, True, math.inf, False),
}
#: command-line spellings besides --field-name
ALIASES = {"learning_rate": ("--lr",), "max_epochs": ("--epochs",)}
#: what a value must be, where the words of its type say too little
_WORDS = {"checkpoint": "a file name (or none)", "cache_dir": "a folder name (or none)"}


def setting_flags(name: str) -> list[str]:
    """The command-line flags of the TrainConfig field ``name``: ``--field-name`` and aliases."""
    return ["--" + name.replace("_", "-"), *ALIASES.get(name, ())]


def setting_name(name: str) -> str:
    """``name (--flag[, --alias])``: how errors name a setting, for the API and the CLI."""
    return f"{name} ({', '.join(setting_flags(name))})"


def _range_words(low: float, low_ok: bool, high: float, high_ok: bool) -> str:
    if high == math.inf:
        return f"{'>=' if low_ok else '>'} {low}"
    top = "2**63" if high == 2**63 else high
    return f"in {'[' if low_ok else '('}{low}, {top}{']' if high_ok else ')'}"


def _check(config: Any) -> None:
    """Convert every field by its type hint (lists to tuples, integers to floats); raise
    ConfigError for the first field of the wrong type, not finite or out of range."""
    for name, hint in field_types(type(config)).items():
        value = convert(getattr(config, name), hint, setting_name(name), _WORDS.get(name))
        object.__setattr__(config, name, value)
        if name not in _RANGES:
            continue
        low, low_ok, high, high_ok = _RANGES[name]
        for v in value if isinstance(value, tuple) else (value,):
            inside = (low <= v if low_ok else low < v) and (v <= high if high_ok else v < high)
            if not (math.isfinite(v) and inside):
                kind = "an integer" if hint is int else "a finite number"
                raise ConfigError(f"{setting_name(name)} must be {kind} "
                                  f"{_range_words(low, low_ok, high, high_ok)}; got {v!r}")
    if not config.lr_floor < config.learning_rate:
        raise ConfigError(f"{setting_name('lr_floor')} must be below learning_rate "
                          f"({config.learning_rate}); got {config.lr_floor}")
    if config.cache_dir is not None and not os.path.isdir(config.cache_dir):
        raise ConfigError(f"{setting_name('cache_dir')} {config.cache_dir!r} is not a folder: "
                          "create it, or give none to recompute the features that do not fit "
                          "in memory")
    if config.resume and not config.checkpoint:
        raise ConfigError(f"{setting_name('resume')} needs a checkpoint file: give "
                          f"{setting_name('checkpoint')}")


@dataclass(frozen=True)
class TrainConfig:
    """How :func:`fit` trains. Every field has a CLI flag of the same name (``--batch-size``)
    and a TOML key (``batch_size = 16``); see :meth:`from_dict` and :meth:`from_toml`.

    The defaults are MLatom's and TorchANI's recipe (AdamW, plateau schedule, learning-rate
    floor, best weights restored) with changes measured in bench/bench_train.py: batches of 16
    at a rate of 2e-3 (an epoch costs about half one of batch 8 and converges in about as many
    epochs; batch 32 at 2e-3 or 3e-3 was faster still but failed now and then), and the weights
    validated and kept are a moving average of the iterates (``ema_decay``, as NequIP and MACE
    do), which removes most of the minibatch jitter: on the tutorial's H2 data the final error
    is about half MLatom's. :meth:`mlatom` (with :func:`torchani_groups`) gives MLatom's recipe.
    """

    # --- optimizer: AdamW (TorchANI's example, MLatom) -------------------------------------
    learning_rate: float = 2e-3  # initial AdamW rate (MLatom, TorchANI: 1e-3 at batch 8)
    batch_size: int = 16  # molecules per step (MLatom: 8; TorchANI on ANI-1x: 2560)
    weight_decay: float = 1e-2  # AdamW decoupled decay of the first and last Linear weights
    #                             (torch's AdamW default, which TorchANI and MLatom leave on them)
    hidden_weight_decay: tuple[float, ...] = (1e-5, 1e-6)  # decay of the hidden Linear weights:
    #                             2nd layer, 3rd and deeper (TorchANI/MLatom); biases never decay
    ema_decay: float = 0.99  # validate and keep an exponential moving average of the weights,
    #                          this decay per step (NequIP, MACE: 0.99); 0: the weights themselves
    # --- schedule and stopping -------------------------------------------------------------
    lr_factor: float = 0.5  # multiply the rate by this when validation stalls (MLatom, TorchANI)
    lr_patience: int = 64  # epochs without a better validation loss before that (MLatom: 64;
    #                        TorchANI's example: 100)
    lr_threshold: float = 0.0  # relative improvement of the validation loss that counts as one
    #                            (MLatom: 0; torch's ReduceLROnPlateau default: 1e-4)
    lr_floor: float = 1e-5  # stop once the rate falls below this (MLatom, TorchANI)
    max_epochs: int = 10_000  # hard stop; the floor ends ordinary runs first (MLatom: 1e6)
    # --- what is fitted --------------------------------------------------------------------
    force_weight: float = 0.0  # weight of the force term (Angstrom^2); 0 trains on energies only
    #                            (MLatom uses 0.1 when forces are given)
    validation_fraction: float = 0.2  # share split off at random when no validation set is
    #                                   given (MLatom: 0.2); 0 watches the training loss instead
    seed: int = 0  # seeds the validation split and the batch order: same seed, same result
    # --- checkpoints -----------------------------------------------------------------------
    checkpoint: str | None = None  # file for periodic checkpoints; None writes none
    checkpoint_every: int = 50  # epochs between checkpoints (the last epoch is always written)
    resume: bool = False  # continue from ``checkpoint`` when that file exists
    # --- memory (levelup.train.streaming, streaming_forces) ---------------------------------
    cache_memory_mb: float = 4096.0  # MB of features (AEVs, frozen-layer outputs) that
    #                                  energy-only training keeps in memory, per data set; the
    #                                  others are recomputed every epoch (or read back from
    #                                  cache_dir); 0 keeps none. ANI-1x: ~7 KB per 5-atom molecule.
    #                                  Training with forces from a file keeps this many MB of
    #                                  geometries and forces (~25 bytes per atom) and reads the
    #                                  rest from the file every epoch
    cache_dir: str | None = None  # folder for a temporary disk copy of the features beyond
    #                               cache_memory_mb (deleted after training); None recomputes them
    #                               (energy-only training; forces are read from their file)

    def __post_init__(self) -> None:
        """Check every field (see the module docstring); a single number of
        ``hidden_weight_decay`` is a one-layer tuple, a path of ``checkpoint`` its text."""
        hwd = self.hidden_weight_decay
        if isinstance(hwd, (int, float)) and not isinstance(hwd, bool):
            object.__setattr__(self, "hidden_weight_decay", (hwd,))
        for name in ("checkpoint", "cache_dir"):
            if isinstance(getattr(self, name), os.PathLike):
                object.__setattr__(self, name, os.fspath(getattr(self, name)))
        _check(self)

    @classmethod
    def mlatom(cls, **changes: Any) -> TrainConfig:
        """MLatom 3.25's ANI recipe (the tutorial's): batch 8, rate 1e-3, no moving average.
        MLatom (as TorchANI's example) steps the biases by plain SGD: pass
        ``param_groups=torchani_groups(model)`` to :func:`fit` for that too."""
        return cls(**{"batch_size": 8, "learning_rate": 1e-3, "ema_decay": 0.0, **changes})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build from a mapping (e.g. a TOML table). Unknown keys raise ConfigError listing the
        valid ones; a value of the wrong type raises ConfigError naming its flag."""
        return load(cls, data, where="training settings (TrainConfig)", name=setting_name,
                    words=_WORDS)

    @classmethod
    def from_toml(cls, path: str | os.PathLike, table: str | None = None) -> TrainConfig:
        """Read from a TOML file: its top level, or the table ``table`` (e.g. "train")."""
        _, data = read_toml(path, "training settings file")
        if table is not None:
            if table not in data:
                raise ConfigError(f"{path} has no [{table}] table; it has {sorted(data)}")
            data = data[table]
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """JSON/TOML-ready dict of every field."""
        out = dataclasses.asdict(self)
        out["hidden_weight_decay"] = list(self.hidden_weight_decay)
        return out

