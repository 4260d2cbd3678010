import numpy as np
import pytest

from levelup.model.ani import ANIModel
from levelup.study.tutorial import h2_scan
from levelup.train.loop import TrainConfig
from levelup.transfer.delta import DeltaModel, fit_delta


def scan():
    db = h2_scan()[::10]
    r = db.distance(0, 1)
    db.set("low", -1.0 + 0.1 * (r - 0.8) ** 2)
    db.set("high", db.get("low") - 0.02 - 0.01 * r)
    return db


def test_delta_on_low_level_labels_learns_the_difference():
    db = scan()
    train, val = db.split(0.8, 0.2, seed=0)
    correction = ANIModel(["H"], hidden=(16, 8), seed=0)
    model, history = fit_delta(None, correction, train, val, high="high", low="low",
                               config=TrainConfig(max_epochs=300, batch_size=64,
                                                  learning_rate=1e-2), progress=False)
    err = model.predict(db).energies - db.get("high")
    base = db.get("low") - db.get("high")
    assert np.sqrt(np.mean(err**2)) < 0.2 * np.sqrt(np.mean(base**2))
    assert len(history.epoch) > 0


def test_delta_on_a_base_model_adds_both_parts():
    db = scan()
    base = ANIModel(["H"], hidden=(4,), seed=1, self_energies=[-0.5])
    correction = ANIModel(["H"], hidden=(4,), seed=2, self_energies=[0.01])
    model = DeltaModel(base, correction)
    p = model.predict(db, forces=True)
    np.testing.assert_allclose(p.energies, base.predict(db).energies
                               + correction.predict(db).energies)
    np.testing.assert_allclose(p.forces, base.predict(db, forces=True).forces
                               + correction.predict(db, forces=True).forces)
    with pytest.raises(ValueError):
        DeltaModel(None, correction)
