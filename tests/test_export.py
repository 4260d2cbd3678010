"""TorchScript export: the scripted AEVComputer equals the eager one; exported models reproduce
levelup's energies and forces (in-process and in a subprocess where levelup cannot be imported);
ensembles, padding, errors and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule

from levelup.cli.main import main
from levelup.data import Database
from levelup.errors import ModelFileError
from levelup.model.aev import AEVComputer, AEVParams
from levelup.model.ani import ANIModel, Ensemble
from levelup.model.export import export_torchscript, read_export_info, script_model

# torch >= 2.10 deprecates torch.jit; the export is TorchScript on purpose (see levelup.model.export)
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


def _blob(n: int, seed: int) -> Atoms:
    """n random H/C/O atoms at least 0.9 Angstrom apart in a box: many neighbours of each kind."""
    rng = np.random.default_rng(seed)
    xyz: list[np.ndarray] = []
    while len(xyz) < n:
        p = rng.uniform(0, 1.1 * n ** (1 / 3) * 1.5, 3)
        if all(np.linalg.norm(p - q) > 0.9 for q in xyz):
            xyz.append(p)
    return Atoms(numbers=rng.choice([1, 6, 8], size=n), positions=np.array(xyz))


MOLECULES = [molecule("H2O"), molecule("CH3OH"), molecule("C6H6"), _blob(24, 0),
             Atoms("HO", [[0, 0, 0], [0, 0, 9.0]]),  # no neighbours within the cutoff
             Atoms("C", [[0, 0, 0]])]


def _padded(atoms_list: list[Atoms], elements: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    db = Database.from_ase(atoms_list)
    index = {z: i for i, z in enumerate(elements)}
    idx = np.vectorize(lambda z: index.get(int(z), -1))(db.species)
    return torch.from_numpy(idx), torch.from_numpy(db.coordinates)


@pytest.mark.parametrize("params, elements", [(AEVParams.ani1x(), [1, 6, 7, 8]),
                                              (AEVParams.ani2x(), [1, 6, 7, 8, 16, 9, 17])])
def test_scripted_aev_equals_eager_aev(params, elements):
    reference = AEVComputer(params, len(elements))
    reference.warn_isolated = False
    scripted = torch.jit.script(AEVComputer(params, len(elements)))
    for atoms in MOLECULES:  # one at a time
        species, xyz = _padded([atoms], elements)
        np.testing.assert_allclose(scripted(species, xyz).numpy(), reference(species, xyz).numpy(),
                                   rtol=0, atol=1e-13)
    species, xyz = _padded(MOLECULES, elements)  # one padded batch of all sizes
    expected = reference(species, xyz)
    got = scripted(species, xyz)
    assert got.shape == expected.shape == (len(MOLECULES), 24, params.length(len(elements)))
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=0, atol=1e-13)
    f32 = scripted(species, xyz.float())
    assert f32.dtype == torch.float32
    np.testing.assert_allclose(f32.numpy(), expected.numpy(), atol=2e-5)


def _model(seed: int = 0) -> ANIModel:
    return ANIModel(["H", "C", "O"], hidden=(32, 16), seed=seed,
                    self_energies=[-0.5, -37.8, -75.0])


@pytest.mark.parametrize("kind", ["float32", "float64", "ensemble"])
def test_export_reproduces_levelup(tmp_path, kind):
    if kind == "ensemble":
        model = Ensemble([_model(s) for s in range(3)])
    else:
        model = _model().to(getattr(torch, kind))
    export_torchscript(model, tmp_path / "m.ts")
    loaded = torch.jit.load(str(tmp_path / "m.ts"))
    mols = MOLECULES[:4]
    db = Database.from_ase(mols)
    pred = model.predict(db, forces=True)
    for k, atoms in enumerate(mols):  # one molecule: scalar energy, (atoms, 3) forces
        e, f = loaded(torch.tensor(atoms.numbers), torch.tensor(atoms.positions))
        assert e.dim() == 0 and e.dtype == torch.float64 and f.shape == (len(atoms), 3)
        assert abs(float(e) - pred.energies[k]) < 1e-6
        np.testing.assert_allclose(f.numpy(), pred.forces[k, :len(atoms)], atol=1e-6)
    # a padded batch (0 = padding), under no_grad
    with torch.no_grad():
        e, f = loaded(torch.from_numpy(db.species), torch.from_numpy(db.coordinates))
    np.testing.assert_allclose(e.numpy(), pred.energies, rtol=0, atol=1e-6)
    np.testing.assert_allclose(f.numpy(), pred.forces, rtol=0, atol=1e-6)
    np.testing.assert_allclose(loaded.energies(torch.from_numpy(db.species),
                                               torch.from_numpy(db.coordinates)).numpy(),
                               pred.energies, atol=1e-6)
    if kind == "ensemble":
        members = loaded.member_energies(torch.from_numpy(db.species),
                                         torch.from_numpy(db.coordinates))
        np.testing.assert_allclose(members.numpy(), pred.member_energies, atol=1e-6)


def test_grad_mode_is_restored_and_inputs_untouched():
    scripted = script_model(_model())
    atoms = molecule("H2O")
    xyz = torch.tensor(atoms.positions)
    with torch.no_grad():
        scripted(torch.tensor(atoms.numbers), xyz)
        assert not torch.is_grad_enabled()
    assert not xyz.requires_grad


def test_export_runs_without_levelup(tmp_path):
    """Plain torch in a subprocess: isolated mode, no site processing (so levelup's editable
    install is not on the path), only torch's own folder added."""
    model = Ensemble([_model(s) for s in range(2)])
    export_torchscript(model, tmp_path / "m.ts", metadata={"trained_on": "nothing"})
    mols = MOLECULES[:4]
    db = Database.from_ase(mols)
    pred = model.predict(db, forces=True)
    torch.save({"species": torch.from_numpy(db.species), "xyz": torch.from_numpy(db.coordinates),
                "water_z": torch.tensor(mols[0].numbers),
                "water_xyz": torch.tensor(mols[0].positions)}, tmp_path / "inputs.pt")
    torch_root = str(Path(torch.__file__).resolve().parents[1])
    code = f"""
import sys
sys.path.append({torch_root!r})
import importlib.util
assert importlib.util.find_spec("levelup") is None, "levelup is importable"
import torch
m = torch.jit.load("m.ts")
x = torch.load("inputs.pt", weights_only=True)
e, f = m(x["species"], x["xyz"])
e1, f1 = m(x["water_z"], x["water_xyz"])
torch.save({{"e": e, "f": f, "e1": e1, "f1": f1}}, "outputs.pt")
print("levelup importable:", importlib.util.find_spec("levelup") is not None)
"""
    run = subprocess.run([sys.executable, "-I", "-S", "-c", code], cwd=tmp_path,
                         capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr
    assert "levelup importable: False" in run.stdout
    out = torch.load(tmp_path / "outputs.pt", weights_only=True)
    deviation = max(np.abs(out["e"].numpy() - pred.energies).max(),
                    np.abs(out["f"].numpy() - pred.forces).max(),
                    abs(float(out["e1"]) - pred.energies[0]),
                    np.abs(out["f1"].numpy() - pred.forces[0, :3]).max())
    print(f"exported ensemble vs levelup, reloaded without levelup: max deviation {deviation:.1e} "
          "(Hartree, Hartree/Angstrom)")
    assert deviation < 1e-6


def test_errors_and_info(tmp_path):
    scripted = script_model(ANIModel(["H"], seed=0))
    with pytest.raises(torch.jit.Error, match="no network for atomic number 8"):
        scripted(torch.tensor([8, 1, 1]), torch.zeros(3, 3))
    with pytest.raises(torch.jit.Error, match="no network for atomic number 92"):
        scripted(torch.tensor([92, 1]), torch.zeros(2, 3))
    with pytest.raises(torch.jit.Error, match="expected species"):
        scripted(torch.tensor([1, 1]), torch.zeros(3, 3))
    with pytest.raises(ModelFileError, match="ANIModel or an Ensemble"):
        export_torchscript(torch.nn.Linear(2, 2), tmp_path / "x.ts")
    mixed = Ensemble([ANIModel(["H"], seed=0), ANIModel(["H"], seed=1).double()])
    with pytest.raises(ModelFileError, match="dtypes"):
        export_torchscript(mixed, tmp_path / "x.ts")
    assert not (tmp_path / "x.ts").exists()
    (tmp_path / "junk.ts").write_bytes(b"not torchscript")
    with pytest.raises(ModelFileError, match="not a TorchScript file"):
        read_export_info(tmp_path / "junk.ts")


def test_cli_export(tmp_path, capsys):
    model = _model()
    model.save(tmp_path / "m.pt", metadata={"level": "HF/STO-3G"})
    assert main(["export", str(tmp_path / "m.pt"), "-o", str(tmp_path / "m.ts")]) == 0
    out = capsys.readouterr().out
    assert "m.ts" in out and "H C O" in out and "Hartree" in out
    info = read_export_info(tmp_path / "m.ts")
    assert info["elements"] == ["H", "C", "O"] and info["units"]["energy"] == "Hartree"
    assert info["metadata"]["model_metadata"] == {"level": "HF/STO-3G"}
    loaded = torch.jit.load(str(tmp_path / "m.ts"))
    atoms = molecule("CH3OH")
    e, _ = loaded(torch.tensor(atoms.numbers), torch.tensor(atoms.positions))
    assert abs(float(e) - model.predict(Database.from_ase([atoms])).energies[0]) < 1e-6
    # a database is not a model: one line, exit 1
    Database.from_ase([atoms]).save(tmp_path / "db.h5")
    assert main(["export", str(tmp_path / "db.h5"), "-o", str(tmp_path / "x.ts")]) == 1
    assert capsys.readouterr().err.startswith("levelup: error:")
    assert json.loads(json.dumps(info))  # JSON-ready
