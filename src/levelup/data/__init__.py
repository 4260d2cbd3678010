"""Molecular databases: species, coordinates, charges, multiplicities and named properties."""

from .database import Database, PropertyInfo
from .molecule import Molecule

__all__ = ["Database", "Molecule", "PropertyInfo"]
