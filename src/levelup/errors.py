"""The exceptions levelup raises.

Every error says what was received, what was expected and how to fix it. The command line
prints the message as one line (``levelup: error: ...``) and exits non-zero.
"""

from __future__ import annotations


class LevelupError(Exception):
    """Base class of every error levelup raises on purpose."""


class DataError(LevelupError, ValueError):
    """A database, a file of molecules or a property array is malformed."""


class LevelOfTheoryError(LevelupError, ValueError):
    """A level of theory ("method/basis") is unknown or cannot treat the molecules given."""


class LabelError(LevelupError, RuntimeError):
    """A quantum-chemistry calculation failed (for example an SCF that never converged)."""


class ModelFileError(LevelupError, ValueError):
    """A model file is truncated, corrupted, foreign, or from a newer format."""


class ConfigError(LevelupError, ValueError):
    """A configuration (TrainConfig, a study file, CLI flags) holds an unknown key or a bad value."""


class OutputError(LevelupError, OSError):
    """A file could not be written (disk full, permissions, a folder in the way). The message
    names the file the user asked for, never a temporary one, and says it was left unchanged."""
