"""Molecular databases: species, coordinates, charges, multiplicities and named properties."""

from levelup.data.database import Database, PropertyInfo
from levelup.data.molecule import Molecule

__all__ = ["Database", "Molecule", "PropertyInfo"]
