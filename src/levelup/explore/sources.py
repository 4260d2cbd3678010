"""What drives an exploration: a levelup model (an ANIModel, an Ensemble or a model file) or a
level of theory ("HF/STO-3G"), turned into an ASE calculator after every check that can fail
before the work starts (a model lacking an element, a basis lacking one, a missing file).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ase import Atoms

from levelup.data.molecule import Molecule
from levelup.elements import symbol
from levelup.errors import DataError, LevelOfTheoryError

#: File suffixes that mark a source as a model file rather than a level of theory.
MODEL_SUFFIXES = (".pt", ".pth", ".safetensors")


def describe(source: Any) -> str:
    """A short name of ``source`` for provenance: the level, the model file, or the class."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return type(source).__name__


def calculator(source: Any, mol: Molecule, *, threads: int | None = None) -> Any:
    """An ASE calculator for ``source`` that can treat ``mol`` (checked here, before any work).

    Args:
        source: an :class:`~levelup.model.ani.ANIModel`, an
            :class:`~levelup.model.ani.Ensemble`, a model file, or "method/basis" with analytic
            gradients.
        mol: the molecule (its elements, charge and multiplicity).
        threads: PySCF threads of a level's calculations (see
            :class:`~levelup.explore.levelcalc.LevelCalculator`); models ignore it.

    Raises:
        DataError: a model without a network for an element of ``mol``, a missing model file,
            or a source of another type.
        LevelOfTheoryError: an unknown level, or one that cannot give forces for ``mol``.
    """
    source = resolved(source)
    if hasattr(source, "species_index"):
        from levelup.ase import LevelupCalculator

        missing = sorted({symbol(int(z)) for z in mol.species} -
                         {symbol(int(z)) for z in source.elements})
        if missing:
            raise DataError(f"the model has no network for {', '.join(missing)} (it treats "
                            f"{', '.join(symbol(int(z)) for z in source.elements)}); give a "
                            "model trained on every element of the structure")
        return LevelupCalculator(source)
    if isinstance(source, (str, os.PathLike)):
        return _level_calculator(str(source), mol, threads)
    raise DataError(f"dynamics and paths run on a model (ANIModel, Ensemble, a model file) or a "
                    f"level of theory string like 'HF/STO-3G'; got {type(source).__name__}")


def resolved(source: Any) -> Any:
    """``source`` with a model file loaded (so that several calculators share one model);
    anything else as given."""
    if isinstance(source, (str, os.PathLike)) and Path(source).is_file():
        from levelup.model.files import load_model

        return load_model(source)
    return source


def _level_calculator(text: str, mol: Molecule, threads: int | None) -> Any:
    from levelup.explore.levelcalc import LevelCalculator

    if Path(text).suffix.lower() in MODEL_SUFFIXES or "/" not in text:
        raise DataError(f"no model file {text!r} (not found) and not a level of theory "
                        "'method/basis': give an existing model file or a level like 'HF/STO-3G'")
    try:
        calc = LevelCalculator(text, charge=mol.charge, multiplicity=mol.multiplicity,
                               threads=threads)
    except LevelOfTheoryError as exc:
        raise LevelOfTheoryError(f"{text!r} is no model file here, and as a level of theory: "
                                 f"{exc}") from None
    calc.check(mol.species)
    return calc


def atoms_of(mol: Molecule) -> Atoms:
    """``mol`` as ase.Atoms (Angstrom, no cell, no periodic boundaries)."""
    return Atoms(numbers=mol.species, positions=mol.coordinates, pbc=False)
