"""``levelup predict`` in-process."""

from __future__ import annotations

import numpy as np

from levelup.cli.main import main
from levelup.data import Database
from levelup.model.ani import ANIModel, Ensemble
from levelup.study.tutorial import h2_scan


def test_predict_writes_energies_and_forces(tmp_path, capsys):
    db = h2_scan()[::50]
    db.set("hf", np.full(len(db), -1.0))
    db.save(tmp_path / "h2.h5")
    model = ANIModel(["H"], seed=0, self_energies=[-0.5])
    model.save(tmp_path / "h2.pt")
    code = main(["-q", "predict", str(tmp_path / "h2.pt"), str(tmp_path / "h2.h5"), "-o",
                 str(tmp_path / "out.h5"), "--forces", "--name", "ani", "--compare", "hf"])
    assert code == 0
    out = capsys.readouterr().out
    assert "RMSE" in out and "kcal/mol" in out
    result = Database.load(tmp_path / "out.h5")
    expected = model.predict(db, forces=True)
    assert np.array_equal(result.get("ani"), expected.energies)
    assert np.array_equal(result.get("ani_forces"), expected.forces)
    assert result.properties["ani"].unit == "Hartree"
    assert "ani_std" not in result.properties and "no spread" in out  # one model, no spread


def test_predict_ensemble_to_extxyz(tmp_path, capsys):
    db = h2_scan()[::100]
    db.save(tmp_path / "h2.h5")
    ensemble = Ensemble([ANIModel(["H"], seed=s) for s in range(2)])
    ensemble.save(tmp_path / "ens.pt")
    assert main(["-q", "predict", str(tmp_path / "ens.pt"), str(tmp_path / "h2.h5"), "-o",
                 str(tmp_path / "out.extxyz")]) == 0
    assert "'predicted_std' (Hartree, the spread over 2 members)" in capsys.readouterr().out
    back = Database.read(tmp_path / "out.extxyz")
    assert np.all(back.get("predicted_std") > 0)
    np.testing.assert_allclose(back.get("predicted_std"), ensemble.predict(db).energies_std,
                               rtol=1e-6)
    assert back.properties["predicted_std"].unit == "Hartree"


def test_predict_rejects_a_database_as_model(tmp_path, capsys):
    h2_scan()[:3].save(tmp_path / "h2.h5")
    assert main(["predict", str(tmp_path / "h2.h5"), str(tmp_path / "h2.h5"), "-o",
                 str(tmp_path / "x.h5")]) == 1
    assert "database of molecules, not a model file" in capsys.readouterr().err
