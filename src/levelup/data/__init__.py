"""Molecular databases: species, coordinates, charges, multiplicities and named properties."""

from levelup.data.columns import PropertyInfo
from levelup.data.database import Database
from levelup.data.molecule import Molecule

__all__ = ["Database", "Molecule", "PropertyInfo"]
