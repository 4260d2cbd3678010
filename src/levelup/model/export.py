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

The AEV is a TorchScript port of :class:`levelup.model.aev.AEVComputer` (same equations, same order
of terms), scripted rather than traced so that any molecule size works.
"""

from __future__ import annotations

import io
import json
import math
import os
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from levelup.atomicwrite import atomic_path
from levelup.errors import ModelFileError
from levelup.model.aev import AEVParams
from levelup.model.ani import ANIModel, Ensemble
from levelup.units import ENERGY, FORCE, LENGTH

#: Name of the JSON file stored inside the TorchScript archive.
EXTRA_FILE = "levelup.json"


class TorchScriptAEV(torch.nn.Module):
    """AEVs exactly as :class:`levelup.model.aev.AEVComputer` computes them, in TorchScript-friendly
    code (no Python objects, no warnings).

    ``forward(species, coordinates)``: species LongTensor (molecules, atoms) of element indices
    with -1 padding, coordinates (molecules, atoms, 3) Angstrom -> (molecules, atoms,
    aev_length) in the dtype of the coordinates, zeros for padding atoms.
    """

    def __init__(self, params: AEVParams, n_species: int) -> None:
        super().__init__()
        p = params
        f64 = torch.float64
        self.Rcr = float(p.Rcr)
        self.Rca = float(p.Rca)
        self.n_species = int(n_species)
        self.radial_sublength = p.radial_sublength
        self.angular_sublength = p.angular_sublength
        self.n_pairs = n_species * (n_species + 1) // 2
        self.radial_length = n_species * p.radial_sublength
        self.angular_length = self.n_pairs * p.angular_sublength
        self.aev_length = self.radial_length + self.angular_length
        # shapes as in AEVComputer, so that flattening gives TorchANI's order
        self.register_buffer("EtaR", torch.tensor(p.EtaR, dtype=f64).view(-1, 1))
        self.register_buffer("ShfR", torch.tensor(p.ShfR, dtype=f64).view(1, -1))
        self.register_buffer("EtaA", torch.tensor(p.EtaA, dtype=f64).view(-1, 1, 1, 1))
        self.register_buffer("Zeta", torch.tensor(p.Zeta, dtype=f64).view(1, -1, 1, 1))
        self.register_buffer("ShfA", torch.tensor(p.ShfA, dtype=f64).view(1, 1, -1, 1))
        self.register_buffer("ShfZ", torch.tensor(p.ShfZ, dtype=f64).view(1, 1, 1, -1))
        s1, s2 = torch.triu_indices(n_species, n_species)
        pair_slot = torch.zeros(n_species, n_species, dtype=torch.long)
        pair_slot[s1, s2] = torch.arange(s1.numel())
        pair_slot[s2, s1] = torch.arange(s1.numel())
        self.register_buffer("pair_slot", pair_slot)

    def forward(self, species: Tensor, coordinates: Tensor) -> Tensor:
        dtype = coordinates.dtype
        EtaR, ShfR = self.EtaR.to(dtype), self.ShfR.to(dtype)
        EtaA, Zeta = self.EtaA.to(dtype), self.Zeta.to(dtype)
        ShfA, ShfZ = self.ShfA.to(dtype), self.ShfZ.to(dtype)
        m, a = species.shape[0], species.shape[1]
        n_sp = self.n_species
        device = coordinates.device
        out_radial = coordinates.new_zeros([m * a * n_sp, self.radial_sublength])
        out_angular = coordinates.new_zeros([m * a * self.n_pairs, self.angular_sublength])
        flat_species = species.reshape(-1)
        flat_xyz = coordinates.reshape(-1, 3)

        # all pairs i < j of real atoms within the radial cutoff
        ij = torch.triu_indices(a, a, offset=1, device=device)
        i_loc, j_loc = ij[0], ij[1]
        real = species >= 0
        pair_real = real[:, i_loc] & real[:, j_loc]  # (molecules, pairs)
        vec_all = (coordinates[:, j_loc] - coordinates[:, i_loc]).detach()
        keep = pair_real & ((vec_all * vec_all).sum(-1) <= self.Rcr * self.Rcr)
        kept = torch.nonzero(keep)  # (pairs, 2): molecule, pair
        mol, pair = kept[:, 0], kept[:, 1]
        atom_i = mol * a + i_loc[pair]
        atom_j = mol * a + j_loc[pair]
        vec = flat_xyz[atom_j] - flat_xyz[atom_i]  # (pairs, 3)
        dist = torch.linalg.vector_norm(vec, dim=-1)  # (pairs,)

        # radial terms (eq. 3 of Smith et al. 2017, with NeuroChem's 0.25)
        fc = 0.5 * torch.cos(dist * (math.pi / self.Rcr)) + 0.5
        radial = 0.25 * torch.exp(-EtaR * (dist.view(-1, 1, 1) - ShfR) ** 2) * fc.view(-1, 1, 1)
        radial = radial.flatten(1)
        sp_i, sp_j = flat_species[atom_i], flat_species[atom_j]
        out_radial.index_add_(0, atom_i * n_sp + sp_j, radial)
        out_radial.index_add_(0, atom_j * n_sp + sp_i, radial)

        # angular terms (eq. 4): pairs of neighbours of each centre within Rca
        close = dist <= self.Rca
        if bool(close.any()):
            ai, aj, v, d = atom_i[close], atom_j[close], vec[close], dist[close]
            centre = torch.cat([ai, aj])
            neighbour = torch.cat([aj, ai])
            vectors = torch.cat([v, -v])
            distances = torch.cat([d, d])
            c_idx, n1, n2 = _neighbour_pairs(centre, m * a)
            if c_idx.numel() > 0:
                v1, v2 = vectors[n1], vectors[n2]
                d1, d2 = distances[n1], distances[n2]
                cos = 0.95 * (v1 * v2).sum(-1) / (d1 * d2)
                angle = torch.acos(cos).view(-1, 1, 1, 1, 1)
                factor1 = ((1 + torch.cos(angle - ShfZ)) / 2) ** Zeta
                mean_d = ((d1 + d2) / 2).view(-1, 1, 1, 1, 1)
                factor2 = torch.exp(-EtaA * (mean_d - ShfA) ** 2)
                fc1 = 0.5 * torch.cos(d1 * (math.pi / self.Rca)) + 0.5
                fc2 = 0.5 * torch.cos(d2 * (math.pi / self.Rca)) + 0.5
                fcs = (fc1 * fc2).view(-1, 1, 1, 1, 1)
                angular = (factor1 * (factor2 * (2 * fcs))).flatten(1)
                slot = self.pair_slot[flat_species[neighbour[n1]], flat_species[neighbour[n2]]]
                out_angular.index_add_(0, c_idx * self.n_pairs + slot, angular)

        return torch.cat([out_radial.view(m, a, self.radial_length),
                          out_angular.view(m, a, self.angular_length)], dim=-1)


def _neighbour_pairs(centre: Tensor, n_atoms: int) -> tuple[Tensor, Tensor, Tensor]:
    """All unordered pairs of entries sharing a centre (see levelup.model.aev._neighbour_pairs):
    (centre, first entry, second entry), each (pairs,)."""
    order = torch.argsort(centre, stable=True)
    all_counts = torch.bincount(centre, minlength=n_atoms)
    uniques = torch.nonzero(all_counts > 0).view(-1)  # ascending, as argsort orders them
    counts = all_counts[uniques]
    n_pairs = counts * (counts - 1) // 2
    if int(n_pairs.sum()) == 0:
        empty = centre.new_zeros([0])
        return empty, empty, empty
    max_count = int(counts.max())
    qp = torch.tril_indices(max_count, max_count, offset=-1, device=centre.device)
    q, p = qp[0], qp[1]
    group = torch.repeat_interleave(torch.arange(uniques.numel(), device=centre.device), n_pairs)
    starts = torch.cumsum(n_pairs, 0) - n_pairs
    local = torch.arange(group.numel(), device=centre.device) - starts[group]
    first_entry = torch.cumsum(counts, 0) - counts
    e1 = order[first_entry[group] + p[local]]
    e2 = order[first_entry[group] + q[local]]
    return uniques[group], e1, e2


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
        self.aev = TorchScriptAEV(first.aev_params, len(first.elements))
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
