"""Isolated atoms: ground-state spin multiplicities and their energies at a level of theory
(the reference for self energies and atomization energies)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from levelup.data import Database
from levelup.elements import atomic_number, symbol
from levelup.errors import DataError, LabelError
from levelup.qm.levels import Level
from levelup.qm.settings import LabelSettings

# fmt: off
#: Ground-state multiplicity 2S+1 of the free atom (Hund's rules; NIST atomic spectra), H..Xe.
GROUND_STATE_MULTIPLICITY: dict[int, int] = dict(enumerate((
    2, 1,                                                    # H He
    2, 1, 2, 3, 4, 3, 2, 1,                                  # Li..Ne
    2, 1, 2, 3, 4, 3, 2, 1,                                  # Na..Ar
    2, 1, 2, 3, 4, 7, 6, 5, 4, 3, 2, 1, 2, 3, 4, 3, 2, 1,    # K..Kr (Cr 3d5 4s1, Cu 3d10 4s1)
    2, 1, 2, 3, 6, 7, 6, 5, 4, 1, 2, 1, 2, 3, 4, 3, 2, 1,    # Rb..Xe (Nb, Mo, Ru, Rh, Pd 4d^n 5s^1/0)
), start=1))
# fmt: on


def ground_state_multiplicity(element: int | str) -> int:
    """Spin multiplicity of the free atom's ground state (H..Xe)."""
    z = atomic_number(element)
    try:
        return GROUND_STATE_MULTIPLICITY[z]
    except KeyError:
        raise DataError(
            f"no ground-state multiplicity tabulated for {symbol(z)} (only H..Xe); pass "
            f"multiplicities={{'{symbol(z)}': M}} to atom_energies"
        ) from None


def atom_energies(elements: Iterable[int | str], level: str | Level, *,
                  multiplicities: Mapping[int | str, int] | None = None, cache: Any = None,
                  workers: int | None = 1, progress: bool = False,
                  settings: LabelSettings | None = None) -> dict[int, float]:
    """Energies (Hartree) of isolated neutral atoms at ``level``, keyed by atomic number.

    Each atom is computed in its ground-state multiplicity (UHF-based for open shells); the
    results go through the label cache like any label.

    Example: ``atom_energies(["H", "O"], "HF/STO-3G")`` -> ``{1: -0.466..., 8: -73.80...}``.

    Raises:
        LevelOfTheoryError: the level is unknown or its basis lacks an element.
        LabelError: an atom's calculation failed (the message says why).
    """
    from levelup.qm.label import label_with_report

    zs = sorted({atomic_number(e) for e in elements})
    if not zs:
        return {}
    chosen = {atomic_number(k): int(v) for k, v in (multiplicities or {}).items()}
    mults = [chosen.get(z) or ground_state_multiplicity(z) for z in zs]
    atoms = Database.from_numpy(np.zeros((len(zs), 1, 3)), [[z] for z in zs],
                                multiplicities=mults)
    out, report = label_with_report(atoms, level, cache=cache, workers=workers,
                                    progress=progress, settings=settings)
    if report.failures:
        raise LabelError("isolated-atom calculation failed: " + "; ".join(
            f"{symbol(zs[i])}: {why}" for i, why in sorted(report.failures.items())))
    values = out.get(report.name)
    return {z: float(values[k]) for k, z in enumerate(zs)}
