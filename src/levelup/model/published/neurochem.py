"""Reader of NeuroChem model files, the format the published ANI ensembles ship in.

NeuroChem (Smith, Isayev and Roitberg's trainer of the original ANI models) describes one
trained ensemble as a folder::

    rHCNO-5.2R_16-3.5A_a4-8.params    AEV constants, ``name = value`` lines
    sae_linfit.dat                    self energies, ``H,0=-0.600952980000`` lines (Hartree)
    train0/networks/ANN-H.nnf         network description of element H in member 0
    train0/networks/ANN-H.nnf-l1.wparam, -l1.bparam, ... -l4.wparam, -l4.bparam
    train1/ ...                       one ``train<k>`` folder per ensemble member

An ``.nnf`` file is ``<n>=`` and a newline followed by the bz2-compressed text of ``n`` bytes
(NUL-terminated), or that text uncompressed::

    inputsize=384;
    atom_net H $
    layer [ nodes=160; activation=9; blocksize=384; ...
            weights=FILE:ANN-H.nnf-l1.wparam[61440]; biases=FILE:ANN-H.nnf-l1.bparam[160]; ]
    ...
    $

Weight files hold raw little-endian float32 numbers, ``nodes * blocksize`` of them in row-major
(out, in) order, which is ``torch.nn.Linear.weight``'s layout; bias files hold ``nodes`` numbers.
Activation codes: 9 is CELU with alpha 0.1, 6 is the identity (the output layer).

This module reads the files from a folder or straight out of a zip archive (a wheel; see
:class:`~levelup.model.published.archive.Files`) and returns plain numpy arrays in frozen
dataclasses; :mod:`levelup.model.published.catalog` turns them into
levelup models.
Nothing here imports torch or unpickles anything.
"""

from __future__ import annotations

import bz2
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from levelup.elements import atomic_number
from levelup.errors import ModelFileError
from levelup.model.published.archive import Files

# NeuroChem's activation codes (cuannlayer_t.cu in NeuroChem): the ones the ANI models use.
ACTIVATIONS: dict[int, str] = {6: "identity", 9: "celu"}
CELU_ALPHA = 0.1  # NeuroChem's CELU is fixed at alpha = 0.1
_AEV_KEYS = ("Rcr", "Rca", "EtaR", "ShfR", "EtaA", "Zeta", "ShfA", "ShfZ")


@dataclass(frozen=True)
class Constants:
    """AEV constants of a ``.params`` file (Angstrom, 1/Angstrom^2, radians), in TorchANI's names.

    ``species`` are the element symbols in the order the AEV's species pairs use.
    """

    Rcr: float
    Rca: float
    EtaR: tuple[float, ...]
    ShfR: tuple[float, ...]
    EtaA: tuple[float, ...]
    Zeta: tuple[float, ...]
    ShfA: tuple[float, ...]
    ShfZ: tuple[float, ...]
    species: tuple[str, ...]

    @property
    def aev_length(self) -> int:
        """Length of the AEV these constants give for ``len(species)`` elements."""
        n = len(self.species)
        radial = len(self.EtaR) * len(self.ShfR)
        angular = len(self.EtaA) * len(self.Zeta) * len(self.ShfA) * len(self.ShfZ)
        return n * radial + n * (n + 1) // 2 * angular


@dataclass(frozen=True)
class LayerSpec:
    """One layer as an ``.nnf`` file describes it (before its weights are read)."""

    nodes: int  # outputs
    blocksize: int  # inputs
    activation: int  # NeuroChem activation code
    weights_file: str
    weights_count: int
    biases_file: str
    biases_count: int


@dataclass(frozen=True)
class NetworkSpec:
    """An ``.nnf`` file: the element, the input size and the layers."""

    element: str
    input_size: int
    layers: tuple[LayerSpec, ...]


@dataclass(frozen=True, eq=False)
class Layer:
    """A dense layer with its parameters: ``y = activation(x @ weight.T + bias)``.

    ``weight``: (out, in) float32; ``bias``: (out,) float32; ``activation``: "celu" (alpha
    :data:`CELU_ALPHA`) or "identity".
    """

    weight: np.ndarray
    bias: np.ndarray
    activation: str


@dataclass(frozen=True, eq=False)
class AtomicNetwork:
    """The network of one element in one ensemble member."""

    element: str
    layers: tuple[Layer, ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        """Input size followed by every layer's output size, e.g. (384, 160, 128, 96, 1)."""
        return (self.layers[0].weight.shape[1], *(layer.weight.shape[0] for layer in self.layers))

    def __call__(self, aev: np.ndarray) -> np.ndarray:
        """Atomic energies (Hartree, without self energies) of AEVs (atoms, input size), in
        float64: a reference evaluation used by the tests."""
        x = np.asarray(aev, dtype=np.float64)
        for layer in self.layers:
            x = x @ layer.weight.astype(np.float64).T + layer.bias.astype(np.float64)
            if layer.activation == "celu":
                x = np.where(x > 0, x, CELU_ALPHA * np.expm1(np.minimum(x, 0) / CELU_ALPHA))
        return x[..., 0]


@dataclass(frozen=True, eq=False)
class EnsembleFiles:
    """A whole NeuroChem ensemble, read: constants, self energies (Hartree, in
    ``constants.species`` order) and one ``{symbol: AtomicNetwork}`` per member."""

    constants: Constants
    self_energies: dict[str, float]
    members: tuple[dict[str, AtomicNetwork], ...]
    source: str


def _values(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.strip().strip("[]").split(",") if v.strip())


def parse_constants(text: str, name: str = ".params") -> Constants:
    """Parse a NeuroChem ``.params`` file (``Rcr = 5.2``, ``EtaR = [1.6e+01]``, ``Atyp = [H,C]``).

    Unknown keys (NeuroChem's ``TM``) are ignored; a missing or malformed AEV key is an error.
    """
    found: dict[str, object] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep:
            raise ModelFileError(f"{name}, line {number}: expected 'name = value', got {line!r}")
        try:
            if key in ("Rcr", "Rca"):
                found[key] = float(value)
            elif key in _AEV_KEYS:
                found[key] = tuple(float(v) for v in _values(value))
            elif key == "Atyp":
                found["species"] = _values(value)
        except ValueError as exc:
            raise ModelFileError(f"{name}, line {number}: cannot read a number in {line!r}") from exc
    missing = [k for k in (*_AEV_KEYS, "species") if k not in found]
    if missing:
        raise ModelFileError(f"{name}: AEV constants file lacks {', '.join(missing)} "
                             "(Atyp is the species list); is it a NeuroChem .params file?")
    for symbol_ in found["species"]:  # type: ignore[union-attr]
        try:
            atomic_number(symbol_)
        except Exception as exc:
            raise ModelFileError(f"{name}: unknown element {symbol_!r} in Atyp") from exc
    return Constants(**found)  # type: ignore[arg-type]


def parse_self_energies(text: str, name: str = "sae_linfit.dat") -> dict[str, float]:
    """Parse a NeuroChem self-energy file (``H,0=-0.600952980000`` lines) into
    ``{symbol: Hartree}`` ordered by the index after the comma."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = re.fullmatch(r"\s*([A-Za-z]+)\s*,\s*(\d+)\s*=\s*(\S+)\s*", line)
        try:
            if match is None:
                raise ValueError(line)
            entries.append((int(match[2]), match[1], float(match[3])))
        except ValueError as exc:
            raise ModelFileError(f"{name}, line {number}: expected 'H,0=-0.6009', got {line!r}") from exc
    if not entries:
        raise ModelFileError(f"{name}: no self energies in the file")
    return {symbol_: value for _, symbol_, value in sorted(entries)}


def nnf_text(data: bytes, name: str = ".nnf") -> str:
    """The text of an ``.nnf`` file: ``<n>=\\n`` + bz2 data of ``n`` bytes, or plain text."""
    header, newline, rest = data.partition(b"\n")
    if newline and re.fullmatch(rb"\s*\d+\s*=\s*", header):
        expected = int(header.strip().rstrip(b"=").strip())
        if rest.startswith(b"BZh"):
            try:
                rest = bz2.decompress(rest)
            except (OSError, ValueError, EOFError) as exc:
                raise ModelFileError(f"{name}: corrupt compressed network description ({exc})") from exc
        if len(rest) != expected:
            raise ModelFileError(f"{name}: network description is {len(rest)} bytes, its header "
                                 f"says {expected}: the file is truncated or corrupt")
        data = rest
    try:
        return data.rstrip(b"\x00").decode("ascii")
    except UnicodeDecodeError as exc:
        raise ModelFileError(f"{name}: not a NeuroChem network description (not text)") from exc


_LAYER = re.compile(r"layer\s*\[((?:\s*\w+\s*=[^;]*;)*)\s*\]")
_FILE_VALUE = re.compile(r"FILE:([^\[\]\s/\\]+)\[(\d+)\]")


def parse_nnf(data: bytes | str, name: str = ".nnf") -> NetworkSpec:
    """Parse an ``.nnf`` network description (compressed or not) into a :class:`NetworkSpec`."""
    text = nnf_text(data, name) if isinstance(data, bytes) else data.rstrip("\x00")
    head = re.match(r"\s*inputsize\s*=\s*(\d+)\s*;\s*atom_net\s+([A-Za-z]+)\s*\$(.*)\$\s*$", text, re.S)
    if head is None:
        raise ModelFileError(f"{name}: not a NeuroChem network description (expected "
                             "'inputsize=N; atom_net X $ layer [...] ... $')")
    input_size, element, body = int(head[1]), head[2], head[3]
    blocks = _LAYER.findall(body)
    if not blocks or _LAYER.sub("", body).strip():
        raise ModelFileError(f"{name}: cannot read the layers (expected 'layer [ key=value; ... ]')")
    layers = []
    for k, block in enumerate(blocks, 1):
        fields = dict(
            (key.strip(), value.strip())
            for key, _, value in (item.partition("=") for item in block.split(";") if item.strip())
        )
        try:
            weights = _FILE_VALUE.fullmatch(fields["weights"])
            biases = _FILE_VALUE.fullmatch(fields["biases"])
            if weights is None or biases is None:
                raise ValueError("weights/biases must read FILE:name[count]")
            spec = LayerSpec(nodes=int(fields["nodes"]), blocksize=int(fields["blocksize"]),
                             activation=int(fields["activation"]),
                             weights_file=weights[1], weights_count=int(weights[2]),
                             biases_file=biases[1], biases_count=int(biases[2]))
        except (KeyError, ValueError) as exc:
            raise ModelFileError(f"{name}, layer {k}: missing or malformed field ({exc})") from exc
        if spec.activation not in ACTIVATIONS:
            known = ", ".join(f"{c} ({a})" for c, a in ACTIVATIONS.items())
            raise ModelFileError(f"{name}, layer {k}: unknown activation code {spec.activation}; "
                                 f"levelup reads {known}")
        if spec.weights_count != spec.nodes * spec.blocksize or spec.biases_count != spec.nodes:
            raise ModelFileError(f"{name}, layer {k}: {spec.nodes} nodes x {spec.blocksize} inputs "
                                 f"do not match {spec.weights_count} weights and "
                                 f"{spec.biases_count} biases")
        expected_in = input_size if k == 1 else layers[-1].nodes
        if spec.blocksize != expected_in:
            raise ModelFileError(f"{name}, layer {k}: takes {spec.blocksize} inputs but receives "
                                 f"{expected_in}")
        layers.append(spec)
    if layers[-1].nodes != 1:
        raise ModelFileError(f"{name}: the last layer has {layers[-1].nodes} outputs, expected 1 "
                             "(an atomic energy)")
    return NetworkSpec(element=element, input_size=input_size, layers=tuple(layers))


def read_float32(data: bytes, count: int, name: str = ".wparam") -> np.ndarray:
    """``count`` little-endian float32 numbers from a ``.wparam``/``.bparam`` file's bytes."""
    if len(data) != 4 * count:
        raise ModelFileError(f"{name}: {len(data)} bytes, expected {4 * count} ({count} float32 "
                             "numbers): the file is truncated or corrupt")
    values = np.frombuffer(data, dtype="<f4").astype(np.float32)
    if not np.all(np.isfinite(values)):
        raise ModelFileError(f"{name}: holds NaN or infinite numbers: the file is corrupt")
    return values


def load_atomic_network(files: Files, path: str, element: str | None = None,
                        input_size: int | None = None) -> AtomicNetwork:
    """Read the ``.nnf`` file ``path`` (relative to ``files``) and its weight and bias files,
    which lie in the same folder; check the element and the input size when given."""
    spec = parse_nnf(files.read(path), path)
    if (element is not None and spec.element != element) or (
            input_size is not None and spec.input_size != input_size):
        raise ModelFileError(f"{path}: network of {spec.element} taking {spec.input_size} inputs, "
                             f"expected {element or spec.element} taking {input_size or spec.input_size}"
                             " (the AEV length)")
    folder = str(PurePosixPath(path).parent)
    prefix = "" if folder == "." else f"{folder}/"
    layers = []
    for layer in spec.layers:
        weight = read_float32(files.read(prefix + layer.weights_file), layer.weights_count,
                              prefix + layer.weights_file)
        bias = read_float32(files.read(prefix + layer.biases_file), layer.biases_count,
                            prefix + layer.biases_file)
        layers.append(Layer(weight=weight.reshape(layer.nodes, layer.blocksize), bias=bias,
                            activation=ACTIVATIONS[layer.activation]))
    return AtomicNetwork(element=spec.element, layers=tuple(layers))


def load_ensemble(source: str | os.PathLike | Files, folder: str | None = None) -> EnsembleFiles:
    """Read a NeuroChem ensemble from a folder or a zip archive (a wheel).

    ``folder`` names the ensemble's folder inside ``source`` (e.g. 'ani-1x_8x'); None takes
    the shallowest folder holding ``sae_linfit.dat`` and ``train0/``. Members are the
    ``train0``, ``train1``, ... folders, in order, each with ``networks/ANN-<symbol>.nnf`` for
    every species of the ``.params`` file.
    """
    files = source if isinstance(source, Files) else Files(source)
    try:
        root = files.find_model_root(folder=folder)
        names = files.names()
        params = [n for n in names if n.startswith(root) and "/" not in n[len(root):]
                  and n.endswith(".params")]
        if len(params) != 1:
            raise ModelFileError(f"{files.path}: expected one .params file in {root or './'}, "
                                 f"found {len(params)}")
        constants = parse_constants(_text(files.read(params[0]), params[0]), params[0])
        sae_name = f"{root}sae_linfit.dat"
        self_energies = parse_self_energies(_text(files.read(sae_name), sae_name), sae_name)
        if list(self_energies) != list(constants.species):
            raise ModelFileError(f"{sae_name}: self energies for {', '.join(self_energies)} but the "
                                 f"AEV species are {', '.join(constants.species)}")
        members = []
        while any(n.startswith(f"{root}train{len(members)}/") for n in names):
            member: dict[str, AtomicNetwork] = {}
            for element in constants.species:
                path = f"{root}train{len(members)}/networks/ANN-{element}.nnf"
                member[element] = load_atomic_network(files, path, element, constants.aev_length)
            members.append(member)
        return EnsembleFiles(constants=constants, self_energies=self_energies, members=tuple(members),
                             source=f"{files.path}" + (f"!{root}" if root else ""))
    finally:
        if not isinstance(source, Files):
            files.close()


def _text(data: bytes, name: str) -> str:
    try:
        return data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ModelFileError(f"{name}: not a text file") from exc


def network_sizes(members: Mapping[str, AtomicNetwork]) -> dict[str, tuple[int, ...]]:
    """``{symbol: (input, hidden..., 1)}`` of one member's networks."""
    return {element: net.sizes for element, net in members.items()}
