"""Chemical elements: symbol <-> atomic number."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from levelup.errors import DataError

# fmt: off
SYMBOLS: tuple[str, ...] = (
    "X",
    "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S", "Cl",
    "Ar", "K", "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As",
    "Se", "Br", "Kr", "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In",
    "Sn", "Sb", "Te", "I", "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb",
    "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl",
    "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U", "Np", "Pu", "Am", "Cm", "Bk",
    "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf", "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh",
    "Fl", "Mc", "Lv", "Ts", "Og",
)
# fmt: on
MAX_Z = len(SYMBOLS) - 1
_NUMBERS = {s.lower(): z for z, s in enumerate(SYMBOLS) if z > 0}


def atomic_number(element: str | int) -> int:
    """Atomic number of an element given as a symbol ("H", "he") or a number (1..118)."""
    if isinstance(element, (int, np.integer)) and not isinstance(element, bool):
        z = int(element)
        if 1 <= z <= MAX_Z:
            return z
        raise DataError(f"unknown atomic number {z}: expected 1..{MAX_Z}")
    if isinstance(element, str):
        text = element.strip()
        if text.isdigit():
            return atomic_number(int(text))
        z = _NUMBERS.get(text.lower())
        if z is None:
            raise DataError(
                f"unknown element symbol {element!r}: expected a symbol such as 'H', 'C', 'O'"
            )
        return z
    raise DataError(f"cannot read an element from {element!r} ({type(element).__name__})")


def atomic_numbers(elements: Iterable[str | int]) -> np.ndarray:
    """Atomic numbers (int64 array) of a sequence of symbols or numbers."""
    return np.array([atomic_number(e) for e in elements], dtype=np.int64)


def symbol(z: int) -> str:
    """Symbol of atomic number ``z``."""
    return SYMBOLS[atomic_number(int(z))]
