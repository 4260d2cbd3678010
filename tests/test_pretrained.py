"""Published models: a tiny NeuroChem ensemble (written by test_neurochem's helpers) becomes a
levelup Ensemble that predicts what the files say; the real ANI-1x wheel (fetched once at set-up
into levelup's cache) reproduces TorchANI 2.2.4's numbers."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch
from test_neurochem import TINY_SAE, TINY_SIZES, make_wheel, write_neurochem

from levelup.cli.main import main
from levelup.data import Database
from levelup.errors import DataError, LevelupError, ModelFileError
from levelup.model.aev import AEVParams
from levelup.model.ani import ANIModel, Ensemble
from levelup.model.published import neurochem
from levelup.model.published.catalog import aev_params, cache_dir, fetch, pretrained, wheel_path

# a water molecule and a stretched one (Angstrom)
WATER = np.array([[[0.0, 0.0, 0.117], [0.0, 0.757, -0.467], [0.0, -0.757, -0.467]],
                  [[0.0, 0.0, 0.100], [0.0, 0.900, -0.500], [0.1, -0.700, -0.400]]])


@pytest.fixture
def tiny_wheel(tmp_path):
    folder = tmp_path / "tiny"
    written = write_neurochem(folder, members=3)
    return make_wheel(folder, tmp_path / "torchani-fake.whl"), written


def reference_energies(files: neurochem.EnsembleFiles, model: ANIModel, xyz: np.ndarray) -> np.ndarray:
    """(members, molecules) energies from the NeuroChem weights evaluated in numpy (float64) on
    levelup's AEV: sum of atomic network outputs plus self energies, as TorchANI does."""
    species = torch.tensor([[1, 0, 0]] * len(xyz))  # O H H as indices into (H, O)
    aev = model.double().compute_aev(species, torch.tensor(xyz)).detach().numpy()
    out = np.zeros((len(files.members), len(xyz)))
    for m, nets in enumerate(files.members):
        for i in range(len(xyz)):
            out[m, i] = (nets["O"](aev[i, :1]).sum() + nets["H"](aev[i, 1:]).sum()
                         + TINY_SAE["O"] + 2 * TINY_SAE["H"])
    return out


def test_tiny_ensemble_converted(tiny_wheel):
    wheel, written = tiny_wheel
    rng_state = torch.random.get_rng_state()
    ens = pretrained("ani-1x", source=wheel, progress=False)
    assert torch.equal(torch.random.get_rng_state(), rng_state)  # no random initialisation
    assert isinstance(ens, Ensemble) and len(ens) == 3 and ens.elements == [1, 8]
    assert ens.dtype == torch.float32
    for m, member in enumerate(ens.members):
        np.testing.assert_array_equal(member.self_energies.numpy(), [TINY_SAE["H"], TINY_SAE["O"]])
        for element in ("H", "O"):
            linears = [x for x in member.networks[element] if isinstance(x, torch.nn.Linear)]
            assert [lin.out_features for lin in linears] == list(TINY_SIZES[element][1:])
            for lin, (w, b) in zip(linears, written[m, element], strict=True):
                np.testing.assert_array_equal(lin.weight.detach().numpy(), w)
                np.testing.assert_array_equal(lin.bias.detach().numpy(), b)
    files = neurochem.load_ensemble(wheel)
    expected = reference_energies(files, ANIModel(["H", "O"], aev=ens.aev_params), WATER)
    pred = ens.double().predict(Database.from_numpy(WATER, ["O", "H", "H"]), forces=True)
    np.testing.assert_allclose(pred.member_energies, expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(pred.energies, expected.mean(0), rtol=0, atol=1e-10)
    assert pred.forces.shape == (2, 3, 3) and np.abs(pred.forces).max() > 1e-3


def test_aev_parameters_from_the_params_file(tiny_wheel):
    files = neurochem.load_ensemble(tiny_wheel[0])
    params = aev_params(files)
    assert (params.Rcr, params.Rca, params.EtaR) == (3.0, 2.5, (16.0,))
    assert params.ShfR == (np.float32(0.9), 1.5)  # rounded to float32, as TorchANI holds them
    assert params.ShfZ[0] == np.float32(3.9269908e-01) and params.length(2) == 16


def test_sources_folder_and_unpacked_wheel(tiny_wheel, tmp_path):
    wheel, _ = tiny_wheel
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(tmp_path / "unpacked")
    x = torch.tensor(WATER)
    species = torch.tensor([[1, 0, 0], [1, 0, 0]])
    e_wheel = pretrained(source=wheel)(species, x)
    for source in (tmp_path / "unpacked", tmp_path / "unpacked/torchani/resources/ani-1x_8x"):
        torch.testing.assert_close(pretrained(source=source)(species, x), e_wheel)


def test_missing_element_is_a_data_error(tiny_wheel):
    ens = pretrained(source=tiny_wheel[0])
    h2s = Database.from_numpy(np.array([[0.0, 0, 0], [0, 0, 1.34], [1.34, 0, 0]]), ["S", "H", "H"])
    with pytest.raises(DataError, match="no network for S"):
        ens.predict(h2s)


def test_bad_sources(tiny_wheel, tmp_path):
    with pytest.raises(LevelupError, match="unknown pretrained model 'ani-3x'; available: ani-1x"):
        pretrained("ani-3x", source=tiny_wheel[0])
    with pytest.raises(ModelFileError, match="no such file or folder"):
        pretrained(source=tmp_path / "nowhere.whl")
    other = make_wheel(tmp_path / "tiny", tmp_path / "other.whl", inner="torchani/resources/ani-2x_8x")
    with pytest.raises(ModelFileError, match="no NeuroChem ensemble found in a folder named ani-1x_8x"):
        pretrained(source=other)
    (tmp_path / "tiny" / "train2" / "networks" / "ANN-H.nnf-l4.wparam").write_bytes(b"\0\0")
    with pytest.raises(ModelFileError, match="ANN-H.nnf-l4.wparam: 2 bytes, expected 16"):
        pretrained(source=tmp_path / "tiny")


def test_network_levelup_cannot_hold(tmp_path):
    folder = tmp_path / "ani-1x_8x"
    write_neurochem(folder, members=1)
    from test_neurochem import nnf_bytes

    (folder / "train0" / "networks" / "ANN-O.nnf").write_bytes(
        nnf_bytes("O", TINY_SIZES["O"], activations=[9, 6, 9, 6]))
    with pytest.raises(ModelFileError, match="CELU hidden layers and a linear output"):
        pretrained(source=folder)


def test_cache_folder_and_corrupt_cached_wheel(tiny_wheel, tmp_path, monkeypatch):
    monkeypatch.setenv("LEVELUP_CACHE_DIR", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"
    target = wheel_path("ani-1x")
    assert target == tmp_path / "cache" / "wheels" / "torchani-2.2.4-py3-none-any.whl"
    target.parent.mkdir(parents=True)
    target.write_bytes(tiny_wheel[0].read_bytes())  # present but not the published file
    with pytest.raises(ModelFileError, match="not the published torchani-2.2.4-py3-none-any.whl .*delete"):
        pretrained()


def test_download_failure_says_what_to_do(tmp_path, monkeypatch):
    # a real pip run told to use no package index: fails at once, without the network
    monkeypatch.setenv("LEVELUP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    with pytest.raises(LevelupError, match=r"pip could not download torchani==2.2.4 .*--from"):
        fetch("ani-1x", progress=False)
    assert not wheel_path().exists()
    assert not list((tmp_path / "cache" / "wheels").iterdir())  # no partial download left


def test_cli_writes_a_model_file(tiny_wheel, tmp_path, capsys):
    from levelup.model.files import load_model

    out = tmp_path / "tiny.model"
    assert main(["pretrained", "ani-1x", "--from", str(tiny_wheel[0]), "-o", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    loaded = load_model(out)
    original = pretrained(source=tiny_wheel[0])
    x, species = torch.tensor(WATER), torch.tensor([[1, 0, 0], [1, 0, 0]])
    assert isinstance(loaded, Ensemble) and len(loaded) == 3
    torch.testing.assert_close(loaded(species, x), original(species, x), rtol=0, atol=0)
    assert main(["pretrained", "ani-1x", "--from", str(tmp_path / "absent.whl")]) == 1
    assert "levelup: error:" in capsys.readouterr().err


# ---------------------------------------------------------------- the real ANI-1x files


@pytest.fixture(scope="module")
def ani1x_wheel():
    """The torchani 2.2.4 wheel in levelup's cache, put there once at set-up by
    ``levelup pretrained ani-1x --download-only`` (``make test`` does it). Missing -> a failure
    that says so, not a skip."""
    path = wheel_path("ani-1x")
    if not path.is_file():
        pytest.fail(f"the ANI-1x wheel is not in levelup's cache ({path}); fetch it once with "
                    "`.venv/bin/levelup pretrained ani-1x --download-only` (needs PyPI access), "
                    "or set LEVELUP_CACHE_DIR to a folder whose wheels/ holds it")
    return path


@pytest.fixture(scope="module")
def ani1x_reference(reference_dir):
    with np.load(reference_dir / "ani1x_torchani.npz") as f:
        return {k: f[k] for k in f.files}


def test_ani1x_reproduces_torchani(ani1x_wheel, ani1x_reference):
    ref = ani1x_reference
    ens = pretrained("ani-1x", progress=False)  # from the cache; checks the SHA-256
    assert len(ens) == 8 and ens.symbols == ["H", "C", "N", "O"]
    assert ens.aev_params == AEVParams.ani1x()
    np.testing.assert_array_equal(ens.members[5].self_energies.numpy(), ref["self_energies"])
    species = np.where(ref["species"] >= 0, ref["order"][np.clip(ref["species"], 0, None)], 0)
    db = Database(species, ref["coordinates"])
    ens64 = ens.double()
    pred = ens64.predict(db, forces=True)
    np.testing.assert_allclose(pred.member_energies.T, ref["member_energies"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(pred.energies, ref["energies"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(pred.forces, ref["forces"], rtol=0, atol=1e-5)
    n = len(ref["h2_r"])
    h2 = np.zeros((n, 2, 3))
    h2[:, 1, 0] = ref["h2_r"]
    pred_h2 = ens64.predict(Database(np.ones((n, 2), dtype=np.int64), h2))
    np.testing.assert_allclose(pred_h2.energies, ref["h2_energies"], rtol=0, atol=1e-6)


def test_ani1x_float32_and_missing_sulfur(ani1x_wheel, ani1x_reference):
    ref = ani1x_reference
    ens = pretrained("ani-1x", source=ani1x_wheel)
    species = np.where(ref["species"] >= 0, ref["order"][np.clip(ref["species"], 0, None)], 0)
    pred = ens.predict(Database(species, ref["coordinates"]), forces=True)
    # float32 networks, float64 self-energy sums: well inside chemical accuracy
    np.testing.assert_allclose(pred.energies, ref["energies"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(pred.forces, ref["forces"], rtol=0, atol=1e-5)
    assert (pred.energies_std > 0).all()
    h2s = Database.from_numpy(np.array([[0.0, 0, 0], [0, 0, 1.34], [1.34, 0, 0]]), ["S", "H", "H"])
    with pytest.raises(DataError, match=r"no network for S \(it knows H, C, N, O\)"):
        ens.predict(h2s)


def test_cli_download_only_and_errors(ani1x_wheel, tmp_path, capsys):
    assert main(["pretrained", "ani-1x", "--download-only"]) == 0  # cached: no download
    assert capsys.readouterr().out.strip() == str(ani1x_wheel)
    assert main(["pretrained", "ani-1x", "--from", str(tmp_path / "absent.whl")]) == 1
    assert "levelup: error:" in capsys.readouterr().err and not (tmp_path / "ani-1x.pt").exists()
    assert main(["pretrained", "ani-1x", "--download-only", "-o", str(tmp_path / "x.pt")]) == 1
