"""Quantum-chemistry labelling with PySCF: levels of theory, a persistent label cache, local
and Dask executors. The only package that knows Bohr."""

from .atoms import atom_energies, ground_state_multiplicity
from .cache import LabelCache, default_cache_path
from .executors import DaskExecutor, ProcessExecutor, SerialExecutor
from .label import LabelReport, LabelWarning, label, label_with_report
from .levels import Level, parse_level
from .settings import LabelSettings

__all__ = [
    "DaskExecutor",
    "LabelCache",
    "LabelReport",
    "LabelSettings",
    "LabelWarning",
    "Level",
    "ProcessExecutor",
    "SerialExecutor",
    "atom_energies",
    "default_cache_path",
    "ground_state_multiplicity",
    "label",
    "label_with_report",
    "parse_level",
]
