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
"""

__version__ = "0.1.0"

from .aev import AEVParams  # noqa: E402
from .data import Database, Molecule, PropertyInfo  # noqa: E402
from .errors import (  # noqa: E402
    ConfigError,
    DataError,
    LabelError,
    LevelOfTheoryError,
    LevelupError,
    ModelFileError,
)
from .finetune import TransferRecipe, finetune  # noqa: E402
from .kerneldelta import fit_kernel_delta  # noqa: E402
from .lineartransfer import LinearChoice, LinearRecipe, linear_transfer  # noqa: E402
from .model import ANIModel, Ensemble  # noqa: E402
from .modelfile import load_model  # noqa: E402
from .predict import Prediction  # noqa: E402
from .pretrained import pretrained  # noqa: E402
from .qm import atom_energies, label  # noqa: E402
from .studyfile import Study, read_study  # noqa: E402
from .studyrun import StudyResult, run_study  # noqa: E402
from .train import History, TrainConfig, fit  # noqa: E402
from .transfer import (  # noqa: E402
    L2SP,
    add_layer,
    freeze,
    parameter_groups,
    refit_self_energies,
    reinitialize,
    replace_output,
    self_energies_from_atoms,
    set_self_energies,
    unfreeze,
)

__all__ = [
    "AEVParams",
    "ANIModel",
    "ConfigError",
    "DataError",
    "Database",
    "Ensemble",
    "History",
    "L2SP",
    "LinearChoice",
    "LinearRecipe",
    "LabelError",
    "LevelOfTheoryError",
    "LevelupError",
    "ModelFileError",
    "Molecule",
    "Prediction",
    "PropertyInfo",
    "Study",
    "StudyResult",
    "TrainConfig",
    "TransferRecipe",
    "__version__",
    "add_layer",
    "atom_energies",
    "finetune",
    "fit",
    "fit_kernel_delta",
    "freeze",
    "label",
    "linear_transfer",
    "load_model",
    "parameter_groups",
    "pretrained",
    "read_study",
    "refit_self_energies",
    "reinitialize",
    "replace_output",
    "run_study",
    "self_energies_from_atoms",
    "set_self_energies",
    "unfreeze",
]
