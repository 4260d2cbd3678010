"""Quantum-chemistry labelling with PySCF: levels of theory, a persistent label cache, local
and Dask executors. The only package that knows Bohr."""

from levelup.qm.atoms import atom_energies, ground_state_multiplicity
from levelup.qm.cache import LabelCache, default_cache_path
from levelup.qm.daskexecutor import DaskExecutor
from levelup.qm.label import LabelReport, LabelWarning, label, label_with_report
from levelup.qm.levels import Level, parse_level
from levelup.qm.pool import ProcessExecutor
from levelup.qm.serial import SerialExecutor
from levelup.qm.settings import LabelSettings

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
