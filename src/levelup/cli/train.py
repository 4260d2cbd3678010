"""``levelup train DATABASE -o MODEL --property NAME``: train an ANI model on an energy property of
a database and write the model file (plus its training history as JSON beside it).

Every training setting of :class:`levelup.TrainConfig` has a flag of the same name
(``batch_size`` -> ``--batch-size``); ``--config FILE.toml`` reads them from a TOML file (its
top level or its ``[train]`` table) and flags given on the command line override the file. A new
model has the elements of the training data and the ANI-1x architecture; ``--init MODEL`` starts
from an existing model file instead (fine-tuning: see also ``levelup finetune``).

Every path is checked before any work: the inputs exist, and -o, --history and --checkpoint are
writable files that replace no input. The property must be recorded in Hartree (forces in
Hartree/Angstrom); without --validation the validation fraction must lie in (0, 1). Ctrl-C or
SIGTERM during training writes the best model so far (and its history), says so in one line
and exits 130.

A levelup database (.h5) is read in blocks rather than loaded whole: training keeps at most
--cache-memory-mb of AEV features (energies only) or of geometries and forces (--force-weight >
0) in memory and reads or recomputes the rest every epoch; other formats are read whole.

Under torchrun (``torchrun --nproc_per_node 4 $(which levelup) train ...``) the processes train
together (levelup.train.distributed: each batch shared, gradients averaged); only rank 0 shows
progress, writes the model, the history and the checkpoints and prints; the others are quiet.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, get_args, get_origin

from levelup.cli.common import HDF5_MAGIC, input_file, molecules_file, output_file, read_database
from levelup.configload import field_types, read_toml
from levelup.errors import ConfigError, DataError
from levelup.train.config import setting_flags
from levelup.train.distributed import main_process
from levelup.train.history import History, TrainingInterrupted
from levelup.train.loop import TrainConfig, fit

EXAMPLE = """examples:
  levelup train h2.h5 -o h2-hf.pt --property HF/STO-3G
  levelup train train.h5 -o model.pt --property energy --validation val.h5 --batch-size 32
  levelup train train.h5 -o model.pt --property energy --config study.toml --checkpoint run.ckpt --resume"""

#: help text of each TrainConfig field (the dataclass comments say why each default is what it is)
HELP = {
    "learning_rate": "initial AdamW learning rate (2e-3)",
    "batch_size": "molecules per optimizer step (16)",
    "weight_decay": "AdamW weight decay of the first and last Linear layers (1e-2)",
    "hidden_weight_decay": "weight decay of the hidden Linear layers, 2nd, 3rd and deeper "
                           "(1e-5 1e-6)",
    "ema_decay": "validate and keep a moving average of the weights with this decay per step "
                 "(0.99; 0: off)",
    "lr_factor": "multiply the learning rate by this when validation stalls (0.5)",
    "lr_patience": "epochs without improvement before that (64)",
    "lr_threshold": "relative validation improvement that resets the patience (0)",
    "lr_floor": "stop when the learning rate falls below this (1e-5)",
    "max_epochs": "hard limit on epochs (10000)",
    "force_weight": "weight of the force term, Angstrom^2; 0 = energies only (0)",
    "validation_fraction": "share of DATABASE held out for validation when --validation is not "
                           "given, between 0 and 1 exclusive (0.2)",
    "seed": "seed of the split, the batch order and a new model's weights (0)",
    "checkpoint": "write training checkpoints to this file",
    "checkpoint_every": "epochs between checkpoints (50)",
    "resume": "continue from --checkpoint if that file exists",
    "cache_memory_mb": "MB of AEV features kept in memory per data set; the rest are recomputed "
                       "every epoch, or read back from --cache-dir (4096; 0: none); with "
                       "--force-weight, MB of geometries and forces of a .h5 file kept in "
                       "memory, the rest read from the file every epoch",
    "cache_dir": "folder for a temporary disk copy of the features beyond --cache-memory-mb",
}


def _argument(hint: Any) -> dict[str, Any]:
    """argparse keywords of a flag whose field has the type ``hint``."""
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}
    if get_origin(hint) is tuple:  # tuple[float, ...]: any number of values
        return {"type": get_args(hint)[0], "nargs": "*", "metavar": "X"}
    if hint in (int, float):
        return {"type": hint, "metavar": "X"}
    return {"type": str, "metavar": "PATH"}  # str | None: a file name


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``levelup train`` and its flags (one per TrainConfig field) to ``sub``."""
    p = sub.add_parser("train", help="train an ANI model on an energy property",
                       description=__doc__, epilog=EXAMPLE,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("database", help="training molecules: a levelup database (.h5) or any file "
                   "ASE reads")
    p.add_argument("-o", "--output", required=True, metavar="MODEL", help="model file to write")
    p.add_argument("--property", required=True, metavar="NAME",
                   help="energy property to learn, recorded in Hartree, e.g. HF/STO-3G")
    p.add_argument("--validation", metavar="FILE", help="validation molecules (default: a random "
                   "share of DATABASE, see --validation-fraction)")
    p.add_argument("--forces", metavar="NAME", help="force property used when --force-weight > 0 "
                   "(default: forces/PROPERTY)")
    p.add_argument("--init", metavar="MODEL", help="start from this model file instead of a new "
                   "model")
    p.add_argument("--config", metavar="TOML", help="training settings from a TOML file")
    p.add_argument("--history", metavar="JSON", help="where to write the training history "
                   "(default: MODEL.history.json)")
    group = p.add_argument_group("training settings (TrainConfig fields)")
    for name, hint in field_types(TrainConfig).items():
        group.add_argument(*setting_flags(name), dest=name, default=None, help=HELP[name],
                           **_argument(hint))
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig from --config (its [train] table, else its top level) overridden by the
    flags given."""
    settings: dict[str, Any] = {}
    if args.config:
        _, data = read_toml(args.config, "training settings file")
        settings = data["train"] if isinstance(data.get("train"), dict) else data
    given = {name: getattr(args, name) for name in field_types(TrainConfig)
             if getattr(args, name, None) is not None}
    return TrainConfig.from_dict({**settings, **given})


def _paths(args: argparse.Namespace, config: TrainConfig) -> str:
    """Check every input and output path before any work; returns the history path.

    Inputs exist and are readable; -o, --history and --checkpoint are not folders, not an
    input (``levelup train DB -o DB`` or ``--init M -o M`` would replace it), not each other,
    and lie in writable folders."""
    if args.validation is None and config.validation_fraction == 0:
        raise ConfigError("--validation-fraction 0 without --validation leaves no validation "
                          "set to pick the best epoch by: give --validation FILE, or a fraction "
                          "between 0 and 1 (exclusive) such as 0.2")
    inputs = [input_file(args.database, "database")]
    for flag in ("validation", "init", "config"):
        if getattr(args, flag):
            inputs.append(input_file(getattr(args, flag), f"--{flag}"))
    outputs = {"-o": args.output, "--history": args.history or f"{args.output}.history.json",
               "--checkpoint": config.checkpoint}
    seen: dict[Path, str] = {}
    for flag, path in outputs.items():
        if path is None:
            continue
        output_file(path, inputs, flag=flag)
        where = Path(path).resolve()
        if where in seen:
            raise ConfigError(f"{flag} {path} is also {seen[where]}: give each output its own file")
        seen[where] = f"the {flag} file"
    return outputs["--history"]


def _molecules(path: str, what: str) -> Any:
    """A native database file as a :class:`levelup.train.trainsets.DatabaseFile` (fit reads it
    block by block, within --cache-memory-mb), any other file read whole into a Database."""
    from levelup.train.trainsets import DatabaseFile

    p = molecules_file(path, what)
    with open(p, "rb") as f:
        if not f.read(len(HDF5_MAGIC)).startswith(HDF5_MAGIC):
            return read_database(p, what)
    data = DatabaseFile(p)
    if len(data) == 0:
        raise DataError(f"{what} {p} holds no molecules: give a database with at least one")
    return data


def _rmse(history: History) -> str:
    """The best epoch's error as words: validation RMSE, or training RMSE without validation."""
    best = history.best_epoch - 1
    val = history.val_rmse[best]
    if math.isnan(val):
        return f"training RMSE {history.train_rmse[best]:.4f} kcal/mol (no validation set)"
    return f"validation RMSE {val:.4f} kcal/mol"


def _write(args: argparse.Namespace, model: Any, history: History, config: TrainConfig,
           n_train: int, history_path: str) -> None:
    metadata = {"trained_on": {"database": str(args.database), "property": args.property,
                               "molecules": n_train, "validation": args.validation},
                "train_config": config.to_dict(), "best_epoch": history.best_epoch,
                "stop_reason": history.stop_reason}
    model.save(args.output, metadata=metadata)
    history.save(history_path)


def run(args: argparse.Namespace) -> int:
    """Train as the flags say (see the module docstring); returns the exit status."""
    from levelup.model.ani import ANIModel
    from levelup.model.files import load_model

    config = config_from_args(args)
    history_path = _paths(args, config)
    train = _molecules(args.database, "database")
    validation = _molecules(args.validation, "--validation") if args.validation else None
    if args.init:
        model = load_model(args.init)
    else:
        elements = sorted(set(train.elements) | set(validation.elements if validation else []))
        model = ANIModel(elements, seed=config.seed)
    try:
        history = fit(model, train, validation, property=args.property, config=config,
                      forces=args.forces,
                      progress=not getattr(args, "quiet", False) and main_process())
    except TrainingInterrupted as exc:
        if not main_process():  # under torchrun: rank 0 writes and tells
            return 130
        return _interrupted(args, model, exc.history, config, len(train), history_path)
    if not main_process():
        return 0
    _write(args, model, history, config, len(train), history_path)
    print(f"{args.output}: trained {len(history.epoch)} epochs ({history.stop_reason}); best epoch "
          f"{history.best_epoch}: {_rmse(history)}; history in {history_path}")
    return 0


def _interrupted(args: argparse.Namespace, model: Any, history: History, config: TrainConfig,
                 n_train: int, history_path: str) -> int:
    """After Ctrl-C or SIGTERM: write the best model so far and its history, say so in one
    line, and return 130 (see levelup.cli.main)."""
    done = len(history.epoch)
    if history.best_epoch == 0:
        print(f"levelup: interrupted in epoch {done + 1}, before any epoch finished: no model "
              "written", file=sys.stderr)
        return 130
    _write(args, model, history, config, n_train, history_path)
    print(f"levelup: interrupted after {done} epochs: wrote the best model so far (epoch "
          f"{history.best_epoch}, {_rmse(history)}) to {args.output}; history in "
          f"{history_path}", file=sys.stderr)
    return 130
