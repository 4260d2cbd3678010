"""levelup: transfer learning of ANI neural-network potentials from cheap to expensive quantum
chemistry.

Internal units are Angstrom and Hartree (forces in Hartree/Angstrom).
"""

__version__ = "0.1.0"

from .data import Database, Molecule, PropertyInfo  # noqa: E402
from .errors import (  # noqa: E402
    ConfigError,
    DataError,
    LabelError,
    LevelOfTheoryError,
    LevelupError,
    ModelFileError,
)

__all__ = [
    "ConfigError",
    "DataError",
    "Database",
    "LabelError",
    "LevelOfTheoryError",
    "LevelupError",
    "ModelFileError",
    "Molecule",
    "PropertyInfo",
    "__version__",
]
