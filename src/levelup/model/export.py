"""TorchScript export: a trained model as one file that plain PyTorch runs, without levelup.

    levelup.model.export.export_torchscript(model, "h2.ts")      # or: levelup export h2.pt -o h2.ts

    # anywhere with only torch installed:
    m = torch.jit.load("h2.ts")
    energy, forces = m(torch.tensor([1, 1]), torch.tensor([[0.0, 0, 0], [0, 0, 0.74]]))

The exported module takes atomic numbers (atoms,) or (molecules, atoms) with 0 padding and
coordinates (..., atoms, 3) in Angstrom, and returns float64 energies in Hartree (a scalar for
one molecule, (molecules,) for a batch) and forces in Hartree/Angstrom (minus the autograd
gradient, taken inside the module, so it works under ``torch.no_grad()`` too). An ensemble is
exported as the mean of its members; ``m.member_energies(species, coordinates)`` gives each one.
The file records its elements, units and levelup version in the extra file ``levelup.json``
(``torch.jit.load(path, _extra_files={"levelup.json": ""})``).

The AEV is :class:`levelup.model.aev.AEVComputer` itself, scripted (not traced) so that any
molecule size works: one implementation serves training, prediction and the export.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from levelup.atomicwrite import atomic_path
from levelup.errors import ModelFileError
from levelup.model.aev import AEVComputer
from levelup.model.ani import ANIModel, Ensemble
from levelup.units import ENERGY, FORCE, LENGTH

#: Name of the JSON file stored inside the TorchScript archive.
EXTRA_FILE = "levelup.json"


class _Member(torch.nn.Module):
    """One ANI model's networks (in element order) and self energies."""

    def __init__(self, model: ANIModel) -> None:
        super().__init__()
        self.networks = torch.nn.ModuleList([model.networks[s] for s in model.symbols])
        self.register_buffer("self_energies", model.self_energies.detach().clone())

    def forward(self, species: Tensor, aev: Tensor) -> Tensor:
        """(molecules,) float64 Hartree; as ANIModel.energies_from_aev."""
        flat_species = species.reshape(-1)
        flat_aev = aev.reshape(-1, aev.shape[-1])
        out = flat_aev.new_zeros(flat_species.shape)
        for index, net in enumerate(self.networks):
            rows = torch.nonzero(flat_species == index).view(-1)
            if rows.numel() > 0:
                out = out.index_add(0, rows, net(flat_aev[rows]).view(-1))
        se = self.self_energies[species.clamp(min=0)]
        se = torch.where(species >= 0, se, torch.zeros_like(se)).sum(-1)
        return out.view(species.shape).sum(-1).double() + se


class ExportedModel(torch.nn.Module):
    """The module written by :func:`export_torchscript` (scripted; see the module docstring)."""

    def __init__(self, model: ANIModel | Ensemble) -> None:
        super().__init__()
        members = list(model.members) if isinstance(model, Ensemble) else [model]
        dtypes = {m.dtype for m in members}
        if len(dtypes) != 1:
            raise ModelFileError(f"the ensemble's members have dtypes {sorted(map(str, dtypes))}; "
                                 "cast it to one (ensemble.float() or .double()) before exporting")
        first = members[0]
        self.elements = list(first.elements)  # atomic numbers, in the AEV's element order
        self.double_precision = first.dtype == torch.float64
        self.aev = AEVComputer(first.aev_params, len(first.elements))
        self.members = torch.nn.ModuleList([_Member(m) for m in members])
        table = torch.full((max(first.elements) + 1,), -2, dtype=torch.long)
        table[0] = -1
        table[torch.tensor(first.elements)] = torch.arange(len(first.elements))
        self.register_buffer("z_to_index", table)

    def _index(self, species: Tensor) -> Tensor:
        """Atomic numbers (molecules, atoms), 0 padding -> element indices, -1 padding."""
        if bool((species < 0).any()):
            raise ValueError("atomic numbers must be >= 0 (0 pads)")
        unknown = species >= self.z_to_index.numel()
        idx = self.z_to_index[species.clamp(max=self.z_to_index.numel() - 1)]
        unknown = unknown | (idx == -2)
        if bool(unknown.any()):
            z = int(species[unknown][0])
            raise ValueError("the model has no network for atomic number " + str(z)
                             + "; it knows " + str(self.elements))
        return idx

    def _batch(self, species: Tensor, coordinates: Tensor) -> tuple[Tensor, Tensor, bool]:
        single = species.dim() == 1
        if single:
            species = species.unsqueeze(0)
            coordinates = coordinates.unsqueeze(0)
        if species.dim() != 2 or coordinates.dim() != 3 or coordinates.shape[0] != species.shape[0] \
                or coordinates.shape[1] != species.shape[1] or coordinates.shape[2] != 3:
            raise ValueError("expected species (atoms,) with coordinates (atoms, 3), or species "
                             "(molecules, atoms) with coordinates (molecules, atoms, 3)")
        return species.long(), coordinates.to(torch.float64), single

    def _member_energies(self, idx: Tensor, xyz: Tensor) -> Tensor:
        aev = self.aev(idx, xyz.to(torch.float64 if self.double_precision else torch.float32))
        out = []
        for member in self.members:
            out.append(member(idx, aev))
        return torch.stack(out)  # (members, molecules)

    def forward(self, species: Tensor, coordinates: Tensor) -> tuple[Tensor, Tensor]:
        """(energies, forces): Hartree (scalar or (molecules,)) and Hartree/Angstrom (shaped
        like ``coordinates``), float64."""
        species, coordinates, single = self._batch(species, coordinates)
        idx = self._index(species)
        # forces need autograd even when the caller runs under torch.no_grad(); TorchScript has
        # no enable_grad() context, so switch the mode and restore it
        was_enabled = torch.is_grad_enabled()
        torch.set_grad_enabled(True)
        xyz = coordinates.detach().requires_grad_(True)
        energies = self._member_energies(idx, xyz).mean(0)
        grads = torch.autograd.grad([energies.sum()], [xyz])
        torch.set_grad_enabled(was_enabled)
        grad = grads[0]
        assert grad is not None
        forces = -grad
        energies = energies.detach()
        if single:
            return energies[0], forces[0]
        return energies, forces

    @torch.jit.export
    def energies(self, species: Tensor, coordinates: Tensor) -> Tensor:
        """Energies only (Hartree), without the backward pass."""
        species, coordinates, single = self._batch(species, coordinates)
        with torch.no_grad():
            energies = self._member_energies(self._index(species), coordinates).mean(0)
        return energies[0] if single else energies

    @torch.jit.export
    def member_energies(self, species: Tensor, coordinates: Tensor) -> Tensor:
        """(members,) or (members, molecules) energies of each member, Hartree."""
        species, coordinates, single = self._batch(species, coordinates)
        with torch.no_grad():
            out = self._member_energies(self._index(species), coordinates)
        return out[:, 0] if single else out


def script_model(model: ANIModel | Ensemble) -> torch.jit.ScriptModule:
    """``model`` as a scripted :class:`ExportedModel` (in memory, on the CPU, detached copy)."""
    import copy

    if not isinstance(model, (ANIModel, Ensemble)):
        raise ModelFileError(f"can export an ANIModel or an Ensemble, not a {type(model).__name__}")
    cpu = copy.deepcopy(model).cpu()
    for p in cpu.parameters():
        p.requires_grad_(False)
    with warnings.catch_warnings():
        # torch 2.10+ marks TorchScript deprecated in favour of torch.export, which cannot yet
        # express the data-dependent neighbour lists of any-size molecules; TorchScript works
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(ExportedModel(cpu))


def export_torchscript(model: ANIModel | Ensemble, path: str | os.PathLike,
                       metadata: Mapping[str, Any] | None = None) -> None:
    """Write ``model`` as a TorchScript file that ``torch.jit.load`` runs without levelup.

    ``metadata`` (JSON-ready) goes into the file's ``levelup.json`` next to the elements, units,
    kind and levelup version. The file is written atomically.
    """
    from levelup._version import __version__

    scripted = script_model(model)
    members = list(model.members) if isinstance(model, Ensemble) else [model]
    info = {
        "format": "levelup-torchscript", "levelup_version": __version__,
        "torch_version": torch.__version__,
        "kind": type(model).__name__, "members": len(members),
        "elements": members[0].symbols, "atomic_numbers": list(members[0].elements),
        "dtype": str(members[0].dtype).removeprefix("torch."),
        "units": {"length": LENGTH, "energy": ENERGY, "forces": FORCE},
        "inputs": "species: int64 atomic numbers (atoms,) or (molecules, atoms), 0 pads; "
                  "coordinates: (..., 3) Angstrom",
        "outputs": "(energies float64 Hartree, forces float64 Hartree/Angstrom)",
        "metadata": dict(metadata or {}),
    }
    try:
        text = json.dumps(info, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"metadata must be JSON-ready: {exc}") from None
    buffer = io.BytesIO()  # written with plain I/O below: a full disk is an OutputError
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # see script_model
        torch.jit.save(scripted, buffer, _extra_files={EXTRA_FILE: text})
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


#: Largest levelup.json record read from an export (bytes); levelup writes a few kB.
MAX_INFO_BYTES = 1_000_000


def read_export_info(path: str | os.PathLike) -> dict[str, Any]:
    """The ``levelup.json`` record of a file written by :func:`export_torchscript`.

    The record is read with :mod:`zipfile` from the archive's ``<name>/extra/levelup.json``
    entry: the TorchScript module itself is never loaded, because loading one runs its
    scripted code (``__setstate__``). Raises ModelFileError for a file that is not a zip
    archive, a zip without levelup's record, or a record that is too large or not JSON.
    """
    import zipfile
    import zlib

    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist()
                     if n.count("/") == 2 and n.endswith(f"/extra/{EXTRA_FILE}")]
            if not names:
                raise ModelFileError(
                    f"{path}: a zip archive without levelup's {EXTRA_FILE} record, so not a "
                    "TorchScript file written by levelup export (it may be a torch.save file or "
                    "another program's export); levelup does not load it, since loading one can "
                    "run code")
            entry = archive.getinfo(names[0])
            if entry.file_size > MAX_INFO_BYTES:
                raise ModelFileError(f"{path}: its {EXTRA_FILE} record announces "
                                     f"{entry.file_size} bytes, more than the {MAX_INFO_BYTES} a "
                                     "levelup export holds: not a file levelup wrote")
            with archive.open(entry) as handle:
                raw = handle.read(MAX_INFO_BYTES + 1)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, zlib.error,
            RuntimeError, ValueError, OSError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"{path}: not a TorchScript file (not a readable zip archive: "
                             f"{' '.join(str(exc).split())[:200]})") from None
    return _parse_export_info(raw, path)


def _parse_export_info(raw: bytes, path: Any) -> dict[str, Any]:
    """The JSON object in ``raw`` (levelup.json of an export), or ModelFileError."""
    if len(raw) > MAX_INFO_BYTES:
        raise ModelFileError(f"{path}: its {EXTRA_FILE} record is larger than "
                             f"{MAX_INFO_BYTES} bytes: not a file levelup wrote")
    try:
        info = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ModelFileError(f"{path}: corrupted TorchScript export: its {EXTRA_FILE} record "
                             "is not JSON; export the model again with levelup export") from None
    if not isinstance(info, dict):
        raise ModelFileError(f"{path}: corrupted TorchScript export: its {EXTRA_FILE} record is "
                             f"a JSON {type(info).__name__}, not an object")
    return info
