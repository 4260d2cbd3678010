"""Where energies and forces come from when a property is computed: a model (an ANIModel, an
Ensemble or a model file) or a level of theory ("HF/STO-3G", labelled with PySCF through
:func:`levelup.label` and its cache). One :class:`Source` for both, and an ASE calculator over
it, so that ASE's optimisers run the same way on either.

Units: Hartree and Hartree/Angstrom here; eV and eV/Angstrom only inside
:class:`SourceCalculator` (ASE's units, converted with ``ase.units.Hartree``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.units import Hartree

from levelup.data.molecule import Molecule
from levelup.data.structure import database_of
from levelup.elements import symbol
from levelup.errors import DataError, LevelOfTheoryError


@dataclass
class Source:
    """A model or a level of theory, resolved and checked.

    Attributes:
        name: how reports name it: the model file's path, "model", or the level ("HF/STO-3G").
        model: the ANIModel or Ensemble (None for a level).
        level: the parsed :class:`~levelup.qm.levels.Level` (None for a model).
        cache, workers, settings: how levels are labelled (see :func:`levelup.label`): the label
            cache (None: the default user cache; False: none), parallel calculations, and SCF
            settings (None: PySCF's defaults).
        computed: calculations this source has run so far (0 for a model: nothing to cache).
        cached: calculations it found in the label cache instead.
    """

    name: str
    model: Any = None
    level: Any = None
    cache: Any = None
    workers: int | None = 1
    settings: Any = None
    computed: int = field(default=0)
    cached: int = field(default=0)

    @property
    def is_model(self) -> bool:
        """True for a model, False for a level of theory."""
        return self.model is not None

    @property
    def forces_mode(self) -> str:
        """How a level's forces are computed: "analytic" where PySCF has gradients (HF, DFT,
        MP2, CISD, CCSD, CCSD(T)), else "numerical" (central differences of energies)."""
        from levelup.qm.levels import ANALYTIC_GRADIENTS

        return "analytic" if self.level is None or self.level.family in ANALYTIC_GRADIENTS \
            else "numerical"

    def check(self, mol: Molecule) -> None:
        """Raise before any work when this source cannot treat ``mol``: a model without a
        network for one of its elements, or a level whose basis lacks one (DataError /
        LevelOfTheoryError)."""
        if self.is_model:
            missing = sorted({int(z) for z in mol.species} - {int(z) for z in self.model.elements})
            if missing:
                raise DataError(
                    f"model {self.name} has no network for {', '.join(symbol(z) for z in missing)}"
                    f" (it covers {', '.join(self.model.symbols)}): use a model trained on "
                    "every element of the structure")
            return
        from levelup.qm.levels import check_level

        check_level(self.level, [int(z) for z in mol.species], forces=self.forces_mode)

    def energies(self, mol: Molecule, coordinates: np.ndarray, *, forces: bool = False,
                 progress: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Energies (n,) Hartree and, if asked, forces (n, atoms, 3) Hartree/Angstrom of ``mol``'s
        atoms at each of ``coordinates`` (n, atoms, 3) Angstrom.

        Raises LabelError when a level's calculation failed for some geometry (its reason in
        the message)."""
        db = database_of(mol, np.asarray(coordinates, dtype=np.float64).reshape(-1, len(mol), 3))
        if self.is_model:
            pred = self.model.predict(db, forces=forces)
            return pred.energies, pred.forces
        from levelup.errors import LabelError
        from levelup.qm.label import label_with_report

        out, report = label_with_report(
            db, self.level, forces=self.forces_mode if forces else False, cache=self.cache,
            workers=self.workers, progress=progress, settings=self.settings, name="properties")
        self.computed += report.computed
        self.cached += report.cached
        if report.failures:
            raise LabelError(f"{self.level.name} failed for {len(report.failures)} of {len(db)} "
                             f"geometries: {next(iter(report.failures.values()))}")
        return out.get("properties"), out.get("forces/properties") if forces else None


def source_of(source: Any, *, cache: Any = None, workers: int | None = 1,
              settings: Any = None) -> Source:
    """A :class:`Source` from a model (ANIModel or Ensemble), the path of a model file, a level
    of theory ("method/basis"), or a Source (returned as it is).

    Raises:
        DataError: a path to a model file that does not exist, or an object of another type.
        LevelOfTheoryError: a string that is neither a model file nor a level PySCF knows.
    """
    if isinstance(source, Source):
        return source
    if hasattr(source, "predict") and hasattr(source, "species_index"):
        return Source(name="model", model=source)
    if isinstance(source, os.PathLike) or (isinstance(source, str) and os.path.isfile(source)):
        if not os.path.isfile(source):
            raise DataError(f"model file {os.fspath(source)} does not exist: check the path")
        from levelup.model.files import load_model

        return Source(name=os.fspath(source), model=load_model(source))
    if not isinstance(source, str):
        raise DataError(f"a source is a model, a model file or a level of theory string "
                        f"('HF/STO-3G'); got {type(source).__name__}")
    from levelup.qm.levels import parse_level

    try:
        level = parse_level(source)
    except LevelOfTheoryError as exc:
        if source.lower().endswith((".pt", ".pth", ".safetensors")):
            raise DataError(f"model file {source} does not exist: check the path") from None
        raise LevelOfTheoryError(f"{source!r} is neither an existing model file nor a level of "
                                 f"theory: {exc}") from None
    return Source(name=level.name, level=level, cache=cache, workers=workers, settings=settings)


class SourceCalculator(Calculator):
    """An ASE calculator (eV, eV/Angstrom) for one molecule's atoms, charge and multiplicity over
    a :class:`Source`: ASE's optimisers, MD and NEB run on a model or a level alike. Every level
    gradient goes through :func:`levelup.label` and its cache.

    Args:
        source: the model or level (see :func:`source_of`).
        mol: the molecule (its atoms must match the ``atoms`` ASE hands over; its charge and
            multiplicity are used for levels).
    """

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, source: Source, mol: Molecule, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.molecule = mol

    def calculate(self, atoms: Any = None, properties: Any = ("energy",),
                  system_changes: Any = all_changes) -> None:
        """Fill ``self.results`` in eV and eV/Angstrom (ASE's calculator protocol)."""
        super().calculate(atoms, properties, system_changes)
        if not np.array_equal(self.atoms.numbers, self.molecule.species):
            raise DataError(f"this calculator was made for atoms "
                            f"{self.molecule.species.tolist()}; got {self.atoms.numbers.tolist()}")
        e, f = self.source.energies(self.molecule, self.atoms.positions[None], forces=True)
        self.results["energy"] = self.results["free_energy"] = float(e[0]) * Hartree
        self.results["forces"] = np.asarray(f[0]) * Hartree
