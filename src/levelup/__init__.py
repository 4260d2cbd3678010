"""levelup: transfer learning of ANI neural-network potentials from cheap to expensive quantum
chemistry.

Internal units are Angstrom and Hartree (forces in Hartree/Angstrom).

The path of a study::

    db = levelup.Database.from_numpy(coordinates=xyz, species=[1, 1])
    db = levelup.label(db, "HF/STO-3G")                 # PySCF, cached
    model = levelup.ANIModel(["H"])
    levelup.fit(model, db, property="HF/STO-3G")       # pre-train
    levelup.freeze(model, [0, -1])                      # transfer
    levelup.refit_self_energies(model, few, "CISD/cc-pVDZ")
    levelup.fit(model, few, property="CISD/cc-pVDZ", config=levelup.TrainConfig(learning_rate=1e-4))

The names below are loaded on first use (PEP 562), so ``import levelup`` stays cheap and
imports neither torch nor PySCF; each lives in the module named beside it.
"""

from __future__ import annotations

import importlib
from typing import Any

from levelup._version import __version__ as __version__

# public name -> module that defines it
_EXPORTS = {
    "AEVParams": "levelup.model.aev",
    "Database": "levelup.data.database",
    "PropertyInfo": "levelup.data.columns",
    "Molecule": "levelup.data.molecule",
    "ConfigError": "levelup.errors",
    "DataError": "levelup.errors",
    "LabelError": "levelup.errors",
    "LevelOfTheoryError": "levelup.errors",
    "LevelupError": "levelup.errors",
    "ModelFileError": "levelup.errors",
    "TransferRecipe": "levelup.transfer.gradient",
    "finetune": "levelup.transfer.recipe",
    "fit_kernel_delta": "levelup.transfer.kerneldelta",
    "LinearChoice": "levelup.transfer.linear",
    "LinearRecipe": "levelup.transfer.linear",
    "linear_transfer": "levelup.transfer.linear",
    "ANIModel": "levelup.model.ani",
    "Ensemble": "levelup.model.ani",
    "load_model": "levelup.model.files",
    "Prediction": "levelup.model.predict",
    "pretrained": "levelup.model.published.catalog",
    "atom_energies": "levelup.qm.atoms",
    "label": "levelup.qm.label",
    "select": "levelup.selection.select",
    "SelectionResult": "levelup.selection.select",
    "Study": "levelup.study.schema",
    "read_study": "levelup.study.reader",
    "StudyResult": "levelup.study.runner",
    "run_study": "levelup.study.runner",
    "History": "levelup.train.history",
    "TrainConfig": "levelup.train.config",
    "fit": "levelup.train.loop",
    "L2SP": "levelup.transfer.priors",
    "add_layer": "levelup.transfer.surgery",
    "freeze": "levelup.transfer.surgery",
    "parameter_groups": "levelup.transfer.surgery",
    "refit_self_energies": "levelup.transfer.selfenergies",
    "reinitialize": "levelup.transfer.surgery",
    "replace_output": "levelup.transfer.surgery",
    "self_energies_from_atoms": "levelup.transfer.selfenergies",
    "set_self_energies": "levelup.transfer.selfenergies",
    "unfreeze": "levelup.transfer.surgery",
}
# folders and modules reachable as attributes (levelup.qm, levelup.ase, ...)
_SUBPACKAGES = ("ase", "cli", "compat", "data", "explore", "model", "properties", "qm", "report",
                "selection", "study", "train", "transfer")

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562) and cache the name here."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _SUBPACKAGES:
        value = importlib.import_module(f"levelup.{name}")
    else:
        raise AttributeError(f"module 'levelup' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS, *_SUBPACKAGES])
