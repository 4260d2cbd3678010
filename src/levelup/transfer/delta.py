"""Delta-learning: a model of (high level - low level), added to a low-level model's prediction
(or to low-level quantum chemistry where that is cheap).

The baseline every transfer-learning study compares against (Ramakrishnan et al. 2015). Two
corrections: kernel ridge regression on inverse distances (:mod:`levelup.transfer.kerneldelta`, the
study's default: it fits a dozen points to within a fraction of a kcal/mol) and a neural network
of the model's architecture (here)::

    correction = ANIModel(["H"], seed=0)
    delta, history = fit_delta(ani_hf, correction, few, validation, high="CISD/cc-pVDZ")
    delta.predict(db).energies          # ani_hf(x) + correction(x), Hartree

    from levelup.transfer.kerneldelta import fit_kernel_delta
    delta = fit_kernel_delta(ani_hf, few, validation, high="CISD/cc-pVDZ")
"""

from __future__ import annotations

from typing import Any

import numpy as np

from levelup.data import Database
from levelup.model.predict import Prediction
from levelup.train.history import History
from levelup.train.loop import TrainConfig, fit
from levelup.units import ENERGY, FORCE


class DeltaModel:
    """``base`` (a model, or None for low-level labels) plus a ``correction`` model.

    Args:
        base: the low-level model (ANIModel/Ensemble), or None when the low level is a property
            of the database being predicted (``low``, Hartree; forces from ``forces/<low>``).
        correction: the model of high minus low level: anything with ``predict(db, forces=...)
            -> Prediction`` (an ANIModel, or a :class:`~levelup.transfer.kerneldelta.KernelCorrection`).
        low: name of the low-level energy property used when ``base`` is None.
    """

    def __init__(self, base: Any, correction: Any, low: str | None = None) -> None:
        if base is None and low is None:
            raise ValueError("give a low-level model (base) or the low-level property (low)")
        self.base = base
        self.correction = correction
        self.low = low

    def predict(self, db: Database, *, forces: bool = False, **options: Any) -> Prediction:
        """Energies (Hartree), and forces (Hartree/Angstrom) if asked: low level + correction."""
        corr = self.correction.predict(db, forces=forces, **options)
        if self.base is not None:
            low = self.base.predict(db, forces=forces, **options)
            low_e, low_f = low.energies, low.forces
        else:
            low_e = np.asarray(db.get(self.low, unit=ENERGY))
            low_f = np.asarray(db.get(f"forces/{self.low}", unit=FORCE)) if forces else None
        total_f = None
        if forces:
            total_f = np.nan_to_num(low_f) + corr.forces
        return Prediction(energies=low_e + corr.energies, forces=total_f)


def delta_target(db: Database, base: Any, high: str, low: str | None) -> np.ndarray:
    """(N,) high minus low level energies of ``db``, Hartree: the low level is ``base``'s
    prediction, or property ``low`` when ``base`` is None."""
    lower = (base.predict(db).energies if base is not None
             else np.asarray(db.get(low, unit=ENERGY)))
    return np.asarray(db.get(high, unit=ENERGY)) - lower


def fit_delta(base: Any, correction: Any, train: Database, validation: Database | None = None,
              *, high: str, low: str | None = None, config: TrainConfig | None = None,
              progress: bool = True) -> tuple[DeltaModel, History]:
    """Train ``correction`` on high - low and return the combined :class:`DeltaModel`.

    The low level is ``base``'s prediction, or property ``low`` of the databases when ``base``
    is None (low-level quantum chemistry). Energies in Hartree.
    """
    model = DeltaModel(base, correction, low)

    def with_target(db: Database) -> Database:
        out = db.copy()
        out.set("delta-target", delta_target(db, base, high, low))
        return out

    history = fit(correction, with_target(train),
                  with_target(validation) if validation is not None else None,
                  property="delta-target", config=config, progress=progress)
    return model, history
