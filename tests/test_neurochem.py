"""NeuroChem reader: a tiny ensemble written here in NeuroChem's format (a folder and a fake wheel)
is read back exactly; broken files give ModelFileError naming the file."""

from __future__ import annotations

import bz2
import zipfile
from pathlib import Path

import numpy as np
import pytest

from levelup.errors import LevelupError, ModelFileError
from levelup.model.published import neurochem

# The AEV constants file of ANI-1x as shipped in the torchani 2.2.4 wheel (first lines).
ANI1X_PARAMS = """TM = 1
Rcr = 5.2000e+00
Rca = 3.5000e+00
EtaR = [1.6000000e+01]
ShfR = [9.0000000e-01,1.1687500e+00,1.4375000e+00,1.7062500e+00,1.9750000e+00,2.2437500e+00,\
2.5125000e+00,2.7812500e+00,3.0500000e+00,3.3187500e+00,3.5875000e+00,3.8562500e+00,4.1250000e+00,\
4.3937500e+00,4.6625000e+00,4.9312500e+00]
Zeta = [3.2000000e+01]
ShfZ = [1.9634954e-01,5.8904862e-01,9.8174770e-01,1.3744468e+00,1.7671459e+00,2.1598449e+00,\
2.5525440e+00,2.9452431e+00]
EtaA = [8.0000000e+00]
ShfA = [9.0000000e-01,1.5500000e+00,2.2000000e+00,2.8500000e+00]
Atyp = [H,C,N,O]
"""

# A tiny model: 2 elements, AEV length 2*2 + 3*4 = 16.
TINY_PARAMS = """TM = 1
Rcr = 3.0000e+00
Rca = 2.5000e+00
EtaR = [1.6000000e+01]
ShfR = [9.0000000e-01,1.5000000e+00]
Zeta = [3.2000000e+01]
ShfZ = [3.9269908e-01,1.1780972e+00]
EtaA = [8.0000000e+00]
ShfA = [9.0000000e-01,1.5000000e+00]
Atyp = [H,O]
"""
TINY_SAE = {"H": -0.5, "O": -75.0}
TINY_SIZES = {"H": (16, 6, 5, 4, 1), "O": (16, 5, 4, 3, 1)}
LAYER_FIELDS = ("type=0;\ndropout=0;\ndropset=0.000000;\nmaskupdate=0.000000;\nmaxnorm=0;\n"
                "norm=0.000000;\nnormupdate=0.000000;\nl2norm=1;\nl2valu=0.000100;\nbtchnorm=0;\n")


def nnf_bytes(element: str, sizes, activations=None, *, compress: bool = True) -> bytes:
    """An .nnf file in NeuroChem's layout: '<n>=' newline, bz2 of n bytes of NUL-ended text."""
    activations = activations or [9] * (len(sizes) - 2) + [6]
    text = f"inputsize={sizes[0]};\natom_net {element} $\n"
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=False), 1):
        stem = f"ANN-{element}.nnf-l{k}"
        text += (f"layer [\nnodes={n_out};\nactivation={activations[k - 1]};\n{LAYER_FIELDS}"
                 f"blocksize={n_in};\nweights=FILE:{stem}.wparam[{n_in * n_out}];\n"
                 f"biases=FILE:{stem}.bparam[{n_out}];\n]\n")
    raw = (text + "\n $").encode("ascii") + b"\x00"
    if not compress:
        return raw
    return f"{len(raw)}=\n".encode() + bz2.compress(raw)


def write_neurochem(folder: Path, members: int = 2, seed: int = 0, compress: bool = True) -> dict:
    """Write a tiny NeuroChem ensemble into ``folder``; returns the weights written:
    {(member, element): [(weight (out, in), bias (out,)), ...]}."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rHO-3.0R_2-2.5A_a2-2.params").write_text(TINY_PARAMS)
    # written out of index order on purpose: the reader sorts by the index after the comma
    (folder / "sae_linfit.dat").write_text(f"O,1={TINY_SAE['O']:.12f}\nH,0={TINY_SAE['H']:.12f}\n")
    weights = {}
    for m in range(members):
        net_dir = folder / f"train{m}" / "networks"
        net_dir.mkdir(parents=True)
        for element, sizes in TINY_SIZES.items():
            (net_dir / f"ANN-{element}.nnf").write_bytes(nnf_bytes(element, sizes, compress=compress))
            layers = []
            for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=False), 1):
                w = rng.normal(0, 0.5, (n_out, n_in)).astype(np.float32)
                b = rng.normal(0, 0.1, n_out).astype(np.float32)
                (net_dir / f"ANN-{element}.nnf-l{k}.wparam").write_bytes(w.astype("<f4").tobytes())
                (net_dir / f"ANN-{element}.nnf-l{k}.bparam").write_bytes(b.astype("<f4").tobytes())
                layers.append((w, b))
            weights[m, element] = layers
    return weights


def make_wheel(folder: Path, wheel: Path, inner: str = "torchani/resources/ani-1x_8x") -> Path:
    """Zip ``folder`` as a fake wheel with the ensemble under ``inner`` (stored, not deflated, so
    tests can corrupt bytes in place)."""
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("torchani/__init__.py", "")
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, f"{inner}/{path.relative_to(folder).as_posix()}")
    return wheel


@pytest.fixture
def tiny(tmp_path):
    folder = tmp_path / "tiny_8x"
    return folder, write_neurochem(folder)


def _forward(layers, x):
    for k, (w, b) in enumerate(layers):
        x = x @ w.astype(np.float64).T + b
        if k < len(layers) - 1:
            x = np.where(x > 0, x, 0.1 * (np.exp(x / 0.1) - 1))
    return x[:, 0]


def test_constants_of_ani1x():
    c = neurochem.parse_constants(ANI1X_PARAMS)
    assert c.species == ("H", "C", "N", "O")
    assert (c.Rcr, c.Rca, c.EtaR, c.Zeta, c.EtaA) == (5.2, 3.5, (16.0,), (32.0,), (8.0,))
    assert len(c.ShfR) == 16 and c.ShfR[1] == 1.16875 and len(c.ShfZ) == 8 and len(c.ShfA) == 4
    assert c.aev_length == 384


def test_constants_errors():
    with pytest.raises(ModelFileError, match="lacks ShfZ"):
        neurochem.parse_constants("\n".join(line for line in ANI1X_PARAMS.splitlines()
                                            if not line.startswith("ShfZ")))
    with pytest.raises(ModelFileError, match="line 2"):
        neurochem.parse_constants(ANI1X_PARAMS.replace("5.2000e+00", "five"))
    with pytest.raises(ModelFileError, match="unknown element 'Xx'"):
        neurochem.parse_constants(ANI1X_PARAMS.replace("[H,C,N,O]", "[H,Xx]"))


def test_self_energies_sorted_by_index():
    sae = neurochem.parse_self_energies("C,1=-38.08316124000\nH,0=-0.600952980000\n")
    assert list(sae) == ["H", "C"] and sae["H"] == -0.60095298
    with pytest.raises(ModelFileError, match="line 1"):
        neurochem.parse_self_energies("H=-0.6\n")


@pytest.mark.parametrize("compress", [True, False])
def test_nnf_parsed(compress):
    spec = neurochem.parse_nnf(nnf_bytes("O", (16, 5, 4, 3, 1), compress=compress))
    assert spec.element == "O" and spec.input_size == 16
    assert [(lay.blocksize, lay.nodes, lay.activation) for lay in spec.layers] == [
        (16, 5, 9), (5, 4, 9), (4, 3, 9), (3, 1, 6)]
    assert spec.layers[1].weights_file == "ANN-O.nnf-l2.wparam" and spec.layers[1].weights_count == 20
    assert spec.layers[3].biases_file == "ANN-O.nnf-l4.bparam" and spec.layers[3].biases_count == 1


def test_nnf_errors():
    good = nnf_bytes("H", (16, 6, 1))
    with pytest.raises(ModelFileError, match="truncated"):  # header length disagrees
        neurochem.parse_nnf(good.replace(good.split(b"=")[0], b"9999", 1))
    with pytest.raises(ModelFileError, match="corrupt compressed"):
        neurochem.parse_nnf(good[:-20])
    with pytest.raises(ModelFileError, match="unknown activation code 5"):
        neurochem.parse_nnf(nnf_bytes("H", (16, 6, 1), activations=[5, 6]))
    with pytest.raises(ModelFileError, match="not a NeuroChem network"):
        neurochem.parse_nnf(b"hello")
    text = nnf_bytes("H", (16, 6, 1), compress=False).decode()
    with pytest.raises(ModelFileError, match="do not match"):
        neurochem.parse_nnf(text.replace("[96]", "[95]"))
    with pytest.raises(ModelFileError, match="receives 16"):
        neurochem.parse_nnf(text.replace("blocksize=16", "blocksize=15").replace("[96]", "[90]"))
    with pytest.raises(ModelFileError, match="expected 1"):
        neurochem.parse_nnf(nnf_bytes("H", (16, 6, 2)))


def test_float32_reader():
    values = np.array([1.5, -2.25, 3e-8], dtype="<f4")
    np.testing.assert_array_equal(neurochem.read_float32(values.tobytes(), 3), values)
    with pytest.raises(ModelFileError, match="truncated"):
        neurochem.read_float32(values.tobytes()[:-1], 3, "x.wparam")
    with pytest.raises(ModelFileError, match="NaN"):
        neurochem.read_float32(np.array([np.nan], "<f4").tobytes(), 1)


@pytest.mark.parametrize("as_wheel", [False, True])
def test_ensemble_read_back_exactly(tiny, tmp_path, as_wheel):
    folder, written = tiny
    source = make_wheel(folder, tmp_path / "fake.whl") if as_wheel else folder
    ens = neurochem.load_ensemble(source)
    assert ens.constants.species == ("H", "O") and ens.constants.aev_length == 16
    assert ens.self_energies == TINY_SAE and len(ens.members) == 2
    assert neurochem.network_sizes(ens.members[1]) == TINY_SIZES
    x = np.random.default_rng(1).normal(size=(7, 16))
    for (m, element), layers in written.items():
        net = ens.members[m][element]
        assert net.element == element
        for layer, (w, b) in zip(net.layers, layers, strict=True):
            assert layer.weight.dtype == np.float32
            np.testing.assert_array_equal(layer.weight, w)  # (out, in), as written
            np.testing.assert_array_equal(layer.bias, b)
        assert [layer.activation for layer in net.layers] == ["celu", "celu", "celu", "identity"]
        np.testing.assert_allclose(net(x), _forward(layers, x), rtol=1e-12, atol=1e-12)


def test_plain_text_nnf_folder(tmp_path):
    folder = tmp_path / "plain"
    written = write_neurochem(folder, members=1, compress=False)
    ens = neurochem.load_ensemble(folder)
    np.testing.assert_array_equal(ens.members[0]["O"].layers[2].weight, written[0, "O"][2][0])


def test_ensemble_found_by_folder_name(tiny, tmp_path):
    folder, _ = tiny
    wheel = make_wheel(folder, tmp_path / "fake.whl", inner="pkg/resources/ani-1x_8x")
    assert neurochem.load_ensemble(wheel, folder="ani-1x_8x").source.endswith("!pkg/resources/ani-1x_8x/")
    with pytest.raises(ModelFileError, match="no NeuroChem ensemble found in a folder named ani-2x"):
        neurochem.load_ensemble(wheel, folder="ani-2x")


def test_missing_file(tiny):
    folder, _ = tiny
    (folder / "train1" / "networks" / "ANN-O.nnf-l3.bparam").unlink()
    with pytest.raises(ModelFileError, match=r"missing file train1/networks/ANN-O.nnf-l3.bparam"):
        neurochem.load_ensemble(folder)


def test_missing_network_of_a_species(tiny):
    folder, _ = tiny
    (folder / "train0" / "networks" / "ANN-H.nnf").unlink()
    with pytest.raises(ModelFileError, match="missing file train0/networks/ANN-H.nnf"):
        neurochem.load_ensemble(folder)


def test_truncated_weight_file(tiny):
    folder, _ = tiny
    path = folder / "train0" / "networks" / "ANN-H.nnf-l2.wparam"
    path.write_bytes(path.read_bytes()[:-6])
    with pytest.raises(ModelFileError, match=r"ANN-H.nnf-l2.wparam: 114 bytes, expected 120 .*truncated"):
        neurochem.load_ensemble(folder)


def test_unknown_activation(tiny):
    folder, _ = tiny
    path = folder / "train1" / "networks" / "ANN-O.nnf"
    path.write_bytes(nnf_bytes("O", TINY_SIZES["O"], activations=[9, 5, 9, 6]))
    with pytest.raises(ModelFileError, match="ANN-O.nnf, layer 2: unknown activation code 5"):
        neurochem.load_ensemble(folder)


def test_network_of_wrong_element_or_size(tiny):
    folder, _ = tiny
    path = folder / "train0" / "networks" / "ANN-O.nnf"
    path.write_bytes(nnf_bytes("H", TINY_SIZES["O"]))
    with pytest.raises(ModelFileError, match="network of H taking 16 inputs, expected O"):
        neurochem.load_ensemble(folder)


def test_self_energies_must_match_species(tiny):
    folder, _ = tiny
    (folder / "sae_linfit.dat").write_text("H,0=-0.5\nC,1=-38.0\n")
    with pytest.raises(ModelFileError, match="self energies for H, C but the AEV species are H, O"):
        neurochem.load_ensemble(folder)


def test_corrupt_and_missing_archives(tiny, tmp_path):
    folder, _ = tiny
    with pytest.raises(ModelFileError, match="no such file or folder"):
        neurochem.load_ensemble(tmp_path / "absent.whl")
    junk = tmp_path / "junk.whl"
    junk.write_bytes(b"this is not a zip archive")
    with pytest.raises(ModelFileError, match="not a readable zip archive"):
        neurochem.load_ensemble(junk)
    # flip bytes inside a stored member: the zip's CRC check catches it
    wheel = make_wheel(folder, tmp_path / "fake.whl")
    data = bytearray(wheel.read_bytes())
    with zipfile.ZipFile(wheel) as zf:
        info = zf.getinfo("torchani/resources/ani-1x_8x/train0/networks/ANN-H.nnf-l1.wparam")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 8
    data[start:start + 4] = bytes(4 - i for i in range(4))
    wheel.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="ANN-H.nnf-l1.wparam .*corrupt"):
        neurochem.load_ensemble(wheel)
    with pytest.raises(ModelFileError, match="no NeuroChem ensemble found"):
        neurochem.load_ensemble(tmp_path / "tiny_8x" / "train0")  # a folder without a model
    assert issubclass(ModelFileError, LevelupError)
