"""What drives an exploration: a levelup model (an ANIModel, an Ensemble or a model file) or a
level of theory ("HF/STO-3G"), turned into an ASE calculator after every check that can fail
before the work starts (a model lacking an element, a basis lacking one, a missing file).

A model runs through :class:`levelup.ase.LevelupCalculator`; a level through
:class:`levelup.properties.sources.SourceCalculator`, where every energy and gradient is a
:func:`levelup.label` calculation with PySCF, kept in the label cache (so that a seeded run
repeated on the same cache computes nothing).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ase import Atoms

from levelup.data.molecule import Molecule
from levelup.properties.sources import Source, SourceCalculator, source_of


def resolved(source: Any, *, cache: Any = None) -> Source:
    """``source`` (a model, a model file, a level string or a Source) as a checked-type
    :class:`~levelup.properties.sources.Source`; a model file is loaded once here. ``cache``:
    the label cache of a level (None: the user cache; False: none).

    Raises DataError for a missing model file or an object of another type,
    LevelOfTheoryError for a string that is neither a model file nor a level."""
    return source_of(source, cache=cache, workers=1)


def calculator(source: Any, mol: Molecule, *, cache: Any = None) -> Any:
    """An ASE calculator for ``source`` that can treat ``mol`` (checked here, before any work).

    Args:
        source: an :class:`~levelup.model.ani.ANIModel`, an
            :class:`~levelup.model.ani.Ensemble`, a model file, a level of theory
            "method/basis", or a resolved Source.
        mol: the molecule (its elements, charge and multiplicity).
        cache: the label cache of a level's calculations (None: the user cache; False: none).

    Raises:
        DataError: a model without a network for an element of ``mol``, a missing model file,
            or a source of another type.
        LevelOfTheoryError: an unknown level, or one whose basis lacks an element of ``mol``.
    """
    src = resolved(source, cache=cache)
    src.check(mol)
    if src.is_model:
        from levelup.ase import LevelupCalculator

        return LevelupCalculator(src.model)
    return SourceCalculator(src, mol)


def describe(source: Any) -> str:
    """How provenance names ``source``: the model file's path, "model", or the level."""
    return source.name if isinstance(source, Source) else resolved(source).name


def level_name(calc: Any) -> str | None:
    """The level of theory behind ``calc`` ("HF/STO-3G"), or None for a model."""
    src = getattr(calc, "source", None)
    return src.level.name if isinstance(src, Source) and not src.is_model else None


@contextlib.contextmanager
def pyscf_threads(threads: int | None) -> Iterator[None]:
    """Inside, PySCF (OpenMP) and BLAS use at most ``threads`` threads (None: the process's
    setting). One is fastest for the small molecules of a trajectory on a busy machine: two
    OpenMP threads there ran a small SCF tens of times slower."""
    from levelup.errors import DataError
    from levelup.qm.serial import limited_threads

    if threads is not None and int(threads) < 1:
        raise DataError(f"threads must be at least 1 (or None); got {threads}")
    with limited_threads(threads):
        yield


def atoms_of(mol: Molecule) -> Atoms:
    """``mol`` as ase.Atoms (Angstrom, no cell, no periodic boundaries)."""
    return Atoms(numbers=mol.species, positions=mol.coordinates, pbc=False)
