"""``levelup info`` on databases (native and extxyz), model files, ensembles and TorchScript
exports; errors as one line."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import molecule

from levelup.cli.main import main
from levelup.data import Database
from levelup.model.ani import ANIModel, Ensemble
from levelup.model.export import export_torchscript
from levelup.study.tutorial import h2_scan
from levelup.transfer.surgery import freeze

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


def _info(path, capsys) -> str:
    assert main(["info", str(path)]) == 0
    return capsys.readouterr().out


def test_database(tmp_path, capsys):
    h2 = h2_scan()[::50]
    h2.set("CISD/cc-pVDZ", np.r_[np.nan, np.linspace(-1.1, -1.0, len(h2) - 1)],
           level="CISD/cc-pVDZ")
    h2.set("forces/CISD/cc-pVDZ", np.zeros((len(h2), 2, 3)), level="CISD/cc-pVDZ")
    water = Database.from_ase([molecule("H2O")])
    db = Database.concatenate([h2, water])
    db.save(tmp_path / "mix.h5")
    out = _info(tmp_path / "mix.h5", capsys)
    assert "11 molecules of 2-3 atoms (23 atoms in all)" in out
    assert "elements: H O" in out
    assert "H2 (10), H2O (1)" in out
    assert "charges: 0; multiplicities: 1" in out
    assert ("CISD/cc-pVDZ: Hartree, level CISD/cc-pVDZ, per molecule, 9 values, 2 missing, "
            "range -1.1 .. -1") in out
    assert "forces/CISD/cc-pVDZ: Hartree/Angstrom, level CISD/cc-pVDZ, per atom, 10 values, " \
           "1 missing" in out
    db.write(tmp_path / "mix.extxyz")
    assert "11 molecules" in _info(tmp_path / "mix.extxyz", capsys)


def test_model_file_with_frozen_layers_and_metadata(tmp_path, capsys):
    model = ANIModel(["H", "O"], hidden=(8, 4), seed=0, self_energies=[-0.5, -75.0])
    freeze(model, [0])
    model.save(tmp_path / "m.pt", metadata={"level": "CISD/cc-pVDZ", "n_train": 12})
    out = _info(tmp_path / "m.pt", capsys)
    assert "levelup model file (format 1" in out and "ANIModel" in out
    assert "elements: H O" in out
    assert "units: Angstrom, Hartree" in out
    assert "128 numbers per atom" in out  # 2 elements: 2*16 radial + 3*32 angular
    # 128*8+8 + 8*4+4 + 4*1+1 = 1073 parameters per element, the first 1032 frozen
    assert "H: 128 -> 8 -> 4 -> 1, CELU(alpha=0.1); 1,073 parameters; frozen Linear 0 " \
           "(weight, bias)" in out
    assert "2,146 parameters of which 2,064 frozen" in out
    assert "self energies (Hartree): H -0.50000000, O -75.00000000" in out
    assert "level: CISD/cc-pVDZ" in out and "n_train: 12" in out


def test_ensemble_and_export(tmp_path, capsys):
    ensemble = Ensemble([ANIModel(["H"], hidden=(4,), seed=s) for s in range(3)])
    ensemble.save(tmp_path / "e.pt")
    out = _info(tmp_path / "e.pt", capsys)
    assert "Ensemble of 3 members" in out and "member 2: same layers" in out
    assert "metadata: none" in out
    export_torchscript(ensemble, tmp_path / "e.ts", metadata={"note": "test"})
    out = _info(tmp_path / "e.ts", capsys)
    assert "TorchScript export of a levelup Ensemble (3 member(s), float32)" in out
    assert "elements: H" in out and "energy Hartree" in out and "note: test" in out


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing.pt")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("levelup: error:") and "no such file" in err and err.count("\n") == 1
    (tmp_path / "bad.pt").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    assert main(["info", str(tmp_path / "bad.pt")]) == 1
    assert "not valid JSON" in capsys.readouterr().err
