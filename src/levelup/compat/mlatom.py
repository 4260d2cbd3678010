"""MLatom's API, as a thin layer over levelup: ``import levelup.compat.mlatom as ml``.

Runs MLatom's transfer-learning tutorial unchanged but for the import. Every call maps onto the
native API (``levelup.Database``, ``levelup.label``, ``levelup.ANIModel``, ``levelup.fit``, the
functions of ``levelup.transfer.surgery`` and ``levelup.transfer.selfenergies``); nothing here
decides anything of its own.

Mapping:

==============================================  ============================================
MLatom                                          levelup
==============================================  ============================================
``molecular_database.from_numpy``               ``Database.from_numpy``
``molecular_database([mol, ...])``              ``Database.from_molecules``
``db.add_scalar_properties(v, name)``           ``db.set(name, v)``
``db.get_properties(name)``                     ``db.get(name)``
``db.xyz_coordinates``                          ``db.coordinates`` (Angstrom)
``models.methods(method=L, program='PySCF')``   ``levelup.label(db, L)``
``models.ani(model_file=F)``                    ``load_model(F)`` if F exists, else a new
                                                ``ANIModel`` as MLatom builds one
                                                (``tutorialprotocol.mlatom_model``),
                                                saved to F after training
``ani.train(...)``                              ``fit`` with MLatom's recipe,
                                                ``TrainConfig.mlatom()`` and
                                                ``torchani_groups`` (+
                                                ``refit_self_energies`` when the self
                                                energies were reset)
``ani.fix_layers([[0, 6]])``                    ``transfer.freeze`` (Sequential positions
                                                0, 2, 4, 6 are Linear layers 0, 1, 2, 3)
``ani.energy_shifter.self_energies = None``     refit on the next ``train``
==============================================  ============================================
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from levelup.data import Database, Molecule
from levelup.errors import ConfigError, DataError
from levelup.transfer import selfenergies, surgery
from levelup.transfer.tutorialprotocol import mlatom_model as new_model

__all__ = ["molecular_database", "molecule", "models", "data"]


class molecule:  # noqa: N801 - MLatom's name
    """One molecule (wraps :class:`levelup.Molecule`)."""

    def __init__(self, native: Molecule) -> None:
        self.native = native

    @property
    def xyz_coordinates(self) -> np.ndarray:
        """(atoms, 3) Angstrom."""
        return self.native.coordinates

    @property
    def atomic_numbers(self) -> np.ndarray:
        """(atoms,) atomic numbers, as MLatom's ``molecule.atomic_numbers``."""
        return self.native.species

    def __getattr__(self, name: str) -> Any:
        props = self.__dict__["native"].properties
        if name in props:
            return props[name]
        raise AttributeError(name)


class molecular_database:  # noqa: N801 - MLatom's name
    """A database of molecules (wraps :class:`levelup.Database`, in ``.native``)."""

    def __init__(self, molecules: Iterable[molecule] | Database | None = None) -> None:
        if isinstance(molecules, Database):
            self.native = molecules
        elif molecules is None:
            self.native = None
        else:
            self.native = Database.from_molecules([m.native for m in molecules])

    @classmethod
    def from_numpy(cls, coordinates: np.ndarray, species: np.ndarray, **kwargs: Any
                   ) -> molecular_database:
        """A database from (molecules, atoms, 3) coordinates in Angstrom and (molecules, atoms) species."""
        return cls(Database.from_numpy(coordinates=coordinates, species=species, **kwargs))

    def _db(self) -> Database:
        if self.native is None:
            raise DataError("this molecular_database is empty")
        return self.native

    def __len__(self) -> int:
        return 0 if self.native is None else len(self.native)

    def __getitem__(self, index: Any) -> Any:
        item = self._db()[index]
        return molecule(item) if isinstance(item, Molecule) else molecular_database(item)

    def __iter__(self) -> Iterator[molecule]:
        return (molecule(m) for m in self._db())

    def __contains__(self, mol: object) -> bool:
        return isinstance(mol, molecule) and mol.native in self._db()

    @property
    def xyz_coordinates(self) -> np.ndarray:
        """(molecules, atoms, 3) Angstrom."""
        return self._db().coordinates

    def add_scalar_properties(self, scalars: Any, property_name: str = "y") -> None:
        """Store one number per molecule (energies in Hartree) under ``property_name``."""
        self._db().set(property_name, np.asarray(scalars, dtype=float))

    def get_properties(self, property_name: str = "y") -> np.ndarray:
        """(molecules,) the numbers stored under ``property_name`` (Hartree for energies)."""
        return np.array(self._db().get(property_name))

    def add_xyz_derivative_properties(self, derivatives: Any,
                                      property_name: str = "xyz_derivatives") -> None:
        """Store (molecules, atoms, 3) derivatives (Hartree/Angstrom) under ``property_name``."""
        self._db().set(property_name, np.asarray(derivatives, dtype=float))

    def get_xyz_derivative_properties(self, property_name: str = "xyz_derivatives") -> np.ndarray:
        """(molecules, atoms, 3) derivatives stored under ``property_name`` (Hartree/Angstrom)."""
        return np.array(self._db().get(property_name))

    def copy(self) -> molecular_database:
        """An independent copy of the database."""
        return molecular_database(self._db().copy())


class data:  # noqa: N801 - MLatom exposes its classes under ml.data too
    """MLatom's ``ml.data`` namespace: the molecule and database classes."""
    molecule = molecule
    molecular_database = molecular_database


# MLatom hyperparameter names -> levelup TrainConfig fields
_HYPERPARAMETERS = {
    "learning_rate": "learning_rate",
    "batch_size": "batch_size",
    "max_epochs": "max_epochs",
    "early_stopping_learning_rate": "lr_floor",
    "lr_reduce_factor": "lr_factor",
    "lr_reduce_patience": "lr_patience",
    "force_coefficient": "force_weight",
}


class _EnergyShifter:
    """``ani.energy_shifter``: setting ``self_energies = None`` refits them on the next train."""

    def __init__(self, owner: ani) -> None:
        self._owner = owner

    @property
    def self_energies(self) -> np.ndarray | None:
        model = self._owner.model
        if model is None or self._owner._refit_self_energies:
            return None
        return model.self_energies.detach().cpu().numpy().copy()

    @self_energies.setter
    def self_energies(self, values: Any) -> None:
        if values is None:
            self._owner._refit_self_energies = True
        else:
            selfenergies.set_self_energies(self._owner._require_model(), values)
            self._owner._refit_self_energies = False


class _Methods:
    """``ml.models.methods(method='CISD/cc-pVDZ', program='PySCF')``: labels with PySCF."""

    def __init__(self, method: str, program: str = "PySCF", **options: Any) -> None:
        if program.lower() != "pyscf":
            raise ConfigError(f"program {program!r} is not available in levelup; use "
                              "program='PySCF'")
        self.method = method
        self.options = options

    def predict(self, molecular_database: molecular_database | None = None,
                molecule: molecule | None = None, calculate_energy: bool = True,
                calculate_energy_gradients: bool = False, **_: Any) -> None:
        from levelup.qm import label

        target = molecular_database if molecular_database is not None else \
            globals()["molecular_database"]([molecule])
        db = target._db()
        out = label(db, self.method, forces=calculate_energy_gradients,
                    progress=self.options.get("verbose", False), name="energy")
        db.set("energy", out.get("energy"), level=self.method)
        if calculate_energy_gradients:
            db.set("energy_gradients", -np.asarray(out.get("forces/energy")),
                   unit="Hartree/Angstrom", level=self.method)
        if molecule is not None:
            molecule.native = db[0]


class ani:  # noqa: N801 - MLatom's name
    """``ml.models.ani(model_file=F)``: loads F when it exists, otherwise builds a new model as
    MLatom does (:func:`levelup.transfer.tutorialprotocol.mlatom_model`) on the first ``train``
    and saves it to F after every training."""

    def __init__(self, model_file: str | os.PathLike | None = None, verbose: bool = True,
                 hyperparameters: dict[str, Any] | None = None, **_: Any) -> None:
        from levelup.model.files import load_model

        self.model_file = Path(model_file) if model_file is not None else None
        self.verbose = verbose
        self.hyperparameters = dict(hyperparameters or {})
        self.model: Any = None
        self._refit_self_energies = False
        self.energy_shifter = _EnergyShifter(self)
        if self.model_file is not None and self.model_file.exists():
            self.model = load_model(self.model_file)

    def _require_model(self) -> Any:
        if self.model is None:
            raise ConfigError("this ani model has not been trained or loaded yet")
        return self.model

    def fix_layers(self, layers_to_fix: list[list[int]]) -> None:
        """Freeze layers by their position in each element's Sequential (Linear layers at 0, 2,
        4, 6): one list for every element, or one list per element in model order."""
        model = self._require_model()
        symbols = list(surgery.members(model)[0].networks.keys())
        if len(layers_to_fix) == 1:
            layers_to_fix = list(layers_to_fix) * len(symbols)
        if len(layers_to_fix) != len(symbols):
            raise ConfigError(f"fix_layers got {len(layers_to_fix)} lists for {len(symbols)} "
                              f"elements {symbols}: give one list, or one per element")
        for sym, positions in zip(symbols, layers_to_fix, strict=True):
            net = surgery.members(model)[0].networks[sym]
            linear = surgery.linear_positions(net)
            bad = [p for p in positions if p not in linear]
            if bad:
                raise ConfigError(f"positions {bad} of the {sym} network are not Linear layers; "
                                  f"Linear layers sit at {linear}")
            surgery.freeze(model, [linear.index(p) for p in positions], elements=sym)

    def train(self, molecular_database: molecular_database, property_to_learn: str = "energy",
              validation_molecular_database: molecular_database | None = None,
              hyperparameters: dict[str, Any] | None = None, reset_optimizer: bool = True,
              xyz_derivative_property_to_learn: str | None = None, **_: Any) -> None:
        """Train on ``property_to_learn`` (Hartree) with MLatom's recipe (``TrainConfig.mlatom``:
        batch 8, AdamW at 1e-3 on the weights, plain SGD on the biases, rate halved after 64
        epochs without a better validation loss, stop below 1e-5, best weights kept), the
        hyperparameters given on top. The optimizer always starts fresh. MLatom seeds nothing:
        the random choices (initial weights, validation split, batch order) come from torch's
        global generator, so ``torch.manual_seed`` fixes them."""
        import torch

        from levelup.train.config import TrainConfig
        from levelup.train.loop import fit, torchani_groups

        db = molecular_database._db()
        settings = {**self.hyperparameters, **(hyperparameters or {})}
        unknown = sorted(set(settings) - set(_HYPERPARAMETERS))
        if unknown:
            raise ConfigError(f"unknown hyperparameters {unknown}; levelup maps "
                              f"{sorted(_HYPERPARAMETERS)}")
        seed = int(torch.randint(2 ** 31 - 1, (), dtype=torch.int64))
        config = TrainConfig.mlatom(seed=seed, **{_HYPERPARAMETERS[k]: v
                                                  for k, v in settings.items()})
        if self.model is None:
            self.model = new_model(db.elements)
        elif self._refit_self_energies:
            selfenergies.refit_self_energies(self.model, db, property_to_learn)
        self._refit_self_energies = False
        validation = validation_molecular_database._db() if validation_molecular_database \
            else None
        forces = None
        if xyz_derivative_property_to_learn:
            forces = f"{xyz_derivative_property_to_learn}__forces"
            db.set(forces, -np.asarray(db.get(xyz_derivative_property_to_learn)))
            if validation is not None:
                validation.set(forces, -np.asarray(validation.get(xyz_derivative_property_to_learn)))
        fit(self.model, db, validation, property=property_to_learn, config=config,
            progress=self.verbose, forces=forces, param_groups=torchani_groups(self.model))
        if self.model_file is not None:
            self.model.save(self.model_file, metadata={"trained_on": property_to_learn})

    def predict(self, molecular_database: molecular_database | None = None,
                molecule: molecule | None = None, property_to_predict: str = "estimated_y",
                calculate_energy: bool = True, calculate_energy_gradients: bool = False,
                xyz_derivative_property_to_predict: str | None = None, **_: Any) -> None:
        """Store predicted energies (Hartree) as ``property_to_predict`` (and gradients)."""
        target = molecular_database if molecular_database is not None else \
            globals()["molecular_database"]([molecule])
        db = target._db()
        want_grad = calculate_energy_gradients or xyz_derivative_property_to_predict
        result = self._require_model().predict(db, forces=bool(want_grad))
        db.set(property_to_predict, result.energies)
        if want_grad:
            db.set(xyz_derivative_property_to_predict or "energy_gradients", -result.forces,
                   unit="Hartree/Angstrom")
        if molecule is not None:
            molecule.native = db[0]


class models:  # noqa: N801 - MLatom's namespace
    """MLatom's ``ml.models`` namespace: the ``ani`` model."""
    methods = _Methods
    ani = ani
