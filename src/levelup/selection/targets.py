"""What the ``design`` strategy can aim at besides the whole pool: the energy differences between
named structures (a barrier, a reaction energy).

The default transfer changes the energy of a geometry ``x`` by ``phi(x) . dw``
(:mod:`levelup.selection.design`), so the transferred energy difference between two structures
``a`` and ``b`` changes by ``(phi(b) - phi(a)) . dw``: a linear functional of the same weights,
whose posterior variance the design can lower as it lowers the pool's. The structures are the
pre-trained model's own optimised ones (a saddle by constrained minimisation, as
:func:`levelup.properties.energy_differences` finds them), since the transferred model's
structures lie close to them and the high-level ones are not known before the high level is
computed.

Why: a design for the pool's summed variance spreads its points over the pool; a barrier is the
difference of two energies in small regions, and 20 such points left the ammonia inversion
barrier 0.27-0.36 kcal/mol from CCSD(T) where every pool point gives 0.01-0.04
(bench/RESULTS.md, section "properties").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from levelup.data import Database
from levelup.errors import ConfigError


def energy_difference_targets(model: Any, structures: Mapping[str, Any], *,
                              reference: str | None = None,
                              constraints: Mapping[str, Any] | None = None) -> np.ndarray:
    """(differences, parameters) float64: the output-layer features
    (:func:`levelup.selection.design.transfer_features`) of each named structure minus the
    reference's, every structure first optimised on ``model`` under its ``constraints``.

    Args:
        model: the pre-trained model (ANIModel or Ensemble) the design chooses for.
        structures: name -> structure (anything :func:`levelup.properties.optimize` takes), at
            least two.
        reference: the name whose energy is the zero (default: the first).
        constraints: name -> constraints held while that structure is optimised ("planar",
            "dihedral:0,1,2,3=0", ...; :mod:`levelup.properties.constraints`).
    """
    from levelup.properties.optimize import optimize
    from levelup.selection.design import transfer_features

    names = list(structures)
    constraints = dict(constraints or {})
    if len(names) < 2:
        raise ConfigError(f"energy differences need at least two named structures; got {names}")
    reference = names[0] if reference is None else reference
    unknown = sorted((set(constraints) | {reference}) - set(names))
    if unknown:
        raise ConfigError(f"{unknown} name no structure (the structures are {names}): give "
                          "constraints and the reference by a structure's name")
    optimised = {name: optimize(structures[name], model, constraints=constraints.get(name))
                 .structure for name in names}
    rows = {name: transfer_features(Database.from_molecules([mol]), model)[0][0]
            for name, mol in optimised.items()}
    return np.stack([rows[name] - rows[reference] for name in names if name != reference])


__all__ = ["energy_difference_targets"]
