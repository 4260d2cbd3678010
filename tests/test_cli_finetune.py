import numpy as np

from levelup import load_model
from levelup.cli.main import main
from levelup.model.ani import ANIModel
from levelup.study.tutorial import h2_scan


def test_finetune_cli_transfers_and_keeps_frozen_layers(tmp_path, capsys):
    db = h2_scan()[::10]
    r = db.distance(0, 1)
    db.set("low", -1.0 + 0.1 * (r - 0.8) ** 2)
    db.set("high", db.get("low") - 0.03 * r)
    model = ANIModel(["H"], hidden=(8, 4), seed=0, self_energies=[-0.5])
    model.save(tmp_path / "pre.pt")
    db.save(tmp_path / "all.h5")
    db[::4].save(tmp_path / "few.h5")
    code = main(["-q", "finetune", str(tmp_path / "pre.pt"), str(tmp_path / "few.h5"), "-o",
                 str(tmp_path / "tl.pt"), "--property", "high", "--anchors",
                 str(tmp_path / "all.h5"), "--recipe", "anchored", "--freeze", "0", "--epochs",
                 "30", "--polish-iterations", "10"])
    assert code == 0 and "fine-tuned" in capsys.readouterr().out
    tuned = load_model(tmp_path / "tl.pt")
    pre = load_model(tmp_path / "pre.pt")
    assert np.array_equal(tuned.networks["H"][0].weight.detach(), pre.networks["H"][0].weight.detach())
    assert not np.array_equal(tuned.networks["H"][2].weight.detach(),
                              pre.networks["H"][2].weight.detach())
    few = db[::4]
    before = np.abs(pre.predict(few).energies - few.get("high")).mean()
    after = np.abs(tuned.predict(few).energies - few.get("high")).mean()
    assert after < before
    assert main(["finetune", str(tmp_path / "pre.pt"), str(tmp_path / "few.h5"), "-o",
                 str(tmp_path / "x.pt"), "--property", "nope"]) == 1


def test_finetune_cli_fine_tunes_every_member_of_an_ensemble(tmp_path, capsys):
    from levelup.model.ani import Ensemble

    db = h2_scan()[::10]
    r = db.distance(0, 1)
    db.set("high", -1.0 + 0.1 * (r - 0.8) ** 2 - 0.03 * r)
    members = [ANIModel(["H"], hidden=(8, 4), seed=k, self_energies=[-0.5]) for k in range(2)]
    Ensemble(members).save(tmp_path / "pre.pt")
    db[::4].save(tmp_path / "few.h5")
    code = main(["finetune", str(tmp_path / "pre.pt"), str(tmp_path / "few.h5"), "-o",
                 str(tmp_path / "tl.pt"), "--property", "high", "--recipe", "plain", "--epochs",
                 "20", "--polish-iterations", "0"])
    out = capsys.readouterr().out
    assert code == 0 and "best epoch" in out and out.count(",") >= 1  # one best epoch per member
    tuned = load_model(tmp_path / "tl.pt")
    assert isinstance(tuned, Ensemble) and len(tuned.members) == 2


def _h2_files(tmp_path):
    db = h2_scan()[::10]
    r = db.distance(0, 1)
    db.set("low", -1.0 + 0.1 * (r - 0.8) ** 2)
    db.set("high", db.get("low") - 0.03 * r + 0.01 * (r - 1.5) ** 2)
    model = ANIModel(["H"], hidden=(8, 4), seed=0, self_energies=[-0.5])
    model.save(tmp_path / "pre.pt")
    db.save(tmp_path / "all.h5")
    db[::4].save(tmp_path / "few.h5")
    return db


def test_finetune_cli_default_is_the_linear_recipe_and_says_what_it_chose(tmp_path, capsys):
    db = _h2_files(tmp_path)
    code = main(["finetune", str(tmp_path / "pre.pt"), str(tmp_path / "few.h5"), "-o",
                 str(tmp_path / "tl.pt"), "--property", "high", "--anchors",
                 str(tmp_path / "all.h5"), "--folds", "3"])
    out = capsys.readouterr().out
    assert code == 0 and "recipe linear" in out and "3-fold CV RMSE" in out and "chose" in out
    tuned, pre = load_model(tmp_path / "tl.pt"), load_model(tmp_path / "pre.pt")
    # only the output layers change
    for k in (0, 2):
        assert np.array_equal(tuned.networks["H"][k].weight.detach(),
                              pre.networks["H"][k].weight.detach())
    assert not np.array_equal(tuned.networks["H"][-1].weight.detach(),
                              pre.networks["H"][-1].weight.detach())
    few = db[::4]
    before = np.abs(pre.predict(few).energies - few.get("high")).mean()
    after = np.abs(tuned.predict(few).energies - few.get("high")).mean()
    assert after < before
    from levelup.model.files import read_header

    assert read_header(tmp_path / "tl.pt")["metadata"]["recipe"]["name"] == "linear"


def test_finetune_cli_refuses_gradient_flags_with_the_linear_recipe(tmp_path, capsys):
    _h2_files(tmp_path)
    base = ["finetune", str(tmp_path / "pre.pt"), str(tmp_path / "few.h5"), "-o",
            str(tmp_path / "tl.pt"), "--property", "high"]
    assert main(base + ["--lr", "1e-4"]) == 1
    err = capsys.readouterr().err
    assert "--lr" in err and "--recipe anchored" in err and len(err.strip().splitlines()) == 1
    assert main(base + ["--recipe", "plain", "--forces", "f"]) == 1
    assert "--forces needs --recipe linear" in capsys.readouterr().err
    assert main(base + ["--folds", "1"]) == 1
    assert "--folds" in capsys.readouterr().err
    assert not (tmp_path / "tl.pt").exists()


def test_finetune_cli_fits_high_level_forces(tmp_path, capsys):
    import torch

    from levelup.transfer.outputlayer import add_to_parameters, parameters

    db = h2_scan()[::10]
    pre = ANIModel(["H"], hidden=(16, 8), seed=0, self_energies=[-0.5])
    target = ANIModel(["H"], hidden=(16, 8), seed=0, self_energies=[-0.5])
    add_to_parameters(target, torch.from_numpy(np.random.default_rng(0).normal(
        0, 0.02, len(parameters(target)))))  # a correction the output layer can represent
    labels = target.predict(db, forces=True)
    db.set("high", labels.energies)
    db.set("forces/high", labels.forces)
    pre.save(tmp_path / "pre.pt")
    db[::4].save(tmp_path / "few.h5")
    code = main(["finetune", str(tmp_path / "pre.pt"), str(tmp_path / "few.h5"), "-o",
                 str(tmp_path / "tl.pt"), "--property", "high", "--forces", "forces/high"])
    out = capsys.readouterr().out
    assert code == 0 and "points with forces" in out
    tuned, pre = load_model(tmp_path / "tl.pt"), load_model(tmp_path / "pre.pt")
    err = [np.abs(m.predict(db, forces=True).forces - db.get("forces/high")).mean()
           for m in (pre, tuned)]
    assert err[1] < 0.2 * err[0]
    assert main(["finetune", str(tmp_path / "pre.pt"), str(tmp_path / "few.h5"), "-o",
                 str(tmp_path / "x.pt"), "--property", "high", "--forces", "nope"]) == 1
    assert "--forces 'nope' is not a property" in capsys.readouterr().err
