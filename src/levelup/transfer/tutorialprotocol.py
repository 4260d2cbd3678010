"""MLatom's transfer-learning tutorial protocol, as MLatom 3.25 runs it: the comparison a study
names ``tutorial-protocol``, and the model that ``levelup.compat.mlatom`` builds.

The protocol: a new ANI model built as MLatom builds one (:func:`mlatom_model`), pre-trained on
the low level with MLatom's recipe (``TrainConfig.mlatom()``: batch 8, AdamW on the weights,
plain SGD on the biases); its first and last layers frozen, self energies refitted; fine-tuned
at learning rate 1e-4 on the high-level points with a fresh optimizer. Energies in Hartree.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable

import torch

from levelup.data import Database
from levelup.model.ani import ANIModel
from levelup.train.config import TrainConfig
from levelup.train.history import History
from levelup.train.loop import fit, torchani_groups
from levelup.transfer.selfenergies import refit_self_energies
from levelup.transfer.surgery import freeze

#: MLatom 3.25's default ``neurons``: the same hidden widths for every element
MLATOM_HIDDEN = (160, 128, 96)


def mlatom_model(elements: Iterable[str | int], generator: torch.Generator | None = None
                 ) -> ANIModel:
    """A new, untrained :class:`~levelup.model.ani.ANIModel` as MLatom 3.25 builds one for
    ``ml.models.ani(...).train()``: hidden layers 160-128-96 for every element (MLatom's default
    ``neurons``; levelup's own default are ANI-1x's widths per element, e.g. 128-112-96 for O)
    and torch's default ``nn.Linear`` initialisation (MLatom's ``NN_setup`` does not call its
    ``NN_initialize``): weights Kaiming-uniform with a = sqrt(5), biases uniform in
    +-1/sqrt(fan_in).

    The initialisation matters here because MLatom's recipe trains the biases by plain SGD, so
    they hardly move from where they start. On the transfer suite's polyatomic systems, models
    pre-trained from levelup's initialisation (TorchANI's: Kaiming-normal, zero biases)
    transferred worse than MLatom's; on the H2 tutorial they extrapolated better
    (bench/RESULTS.md, "compat-parity").

    Draws from ``generator`` when given, else from torch's global generator, as MLatom does.
    """
    model = ANIModel(list(elements), hidden=MLATOM_HIDDEN, seed=0)
    with torch.no_grad():
        for net in model.networks.values():
            for layer in net:
                if isinstance(layer, torch.nn.Linear):  # nn.Linear.reset_parameters
                    torch.nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5),
                                                   generator=generator)
                    bound = 1 / math.sqrt(layer.in_features)
                    torch.nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return model


def mlatom_pretrain(db: Database, low: str, *, seed: int = 0, progress: bool = False
                    ) -> tuple[ANIModel, History]:
    """A :func:`mlatom_model` trained on the energies ``low`` of every geometry of ``db`` with
    MLatom's recipe (``TrainConfig.mlatom()``, AdamW on the weights, SGD on the biases).
    ``seed`` drives the initial weights (a generator of its own, so torch's global one is left
    alone) and the training's random choices."""
    model = mlatom_model(sorted(set(db.elements)), torch.Generator().manual_seed(seed))
    history = fit(model, db, property=low, progress=progress,
                  config=TrainConfig.mlatom(seed=seed), param_groups=torchani_groups(model))
    return model, history


def mlatom_transfer(pretrained: ANIModel, train: Database, validation: Database | None, *,
                    high: str, seed: int = 0, progress: bool = False) -> tuple[ANIModel, History]:
    """MLatom's transfer step on a copy of ``pretrained``: layers [0, -1] frozen (MLatom's
    ``fix_layers([[0, 6]])``), self energies refitted to ``high`` on ``train``, fine-tuned at
    learning rate 1e-4 with a fresh optimizer (``validation`` for early stopping)."""
    model = copy.deepcopy(pretrained)
    freeze(model, [0, -1])
    refit_self_energies(model, train, high)
    history = fit(model, train, validation, property=high, progress=progress,
                  config=TrainConfig.mlatom(learning_rate=1e-4, seed=seed),
                  param_groups=torchani_groups(model))
    return model, history


def tutorial_protocol(db: Database, train: Database, validation: Database | None, *, low: str,
                      high: str, seed: int = 0, progress: bool = False
                      ) -> tuple[ANIModel, History]:
    """MLatom's protocol end to end: :func:`mlatom_pretrain` on ``low`` over ``db``, then
    :func:`mlatom_transfer` to ``high`` on ``train``. Returns (model, the fine-tuning's
    History)."""
    pretrained, _ = mlatom_pretrain(db, low, seed=seed, progress=progress)
    return mlatom_transfer(pretrained, train, validation, high=high, seed=seed,
                           progress=progress)


__all__ = ["MLATOM_HIDDEN", "mlatom_model", "mlatom_pretrain", "mlatom_transfer",
           "tutorial_protocol"]
