"""The ANI potential: AEV + one network per element + self energies; and ensembles of them.

Energy of a molecule (Hartree)::

    E = sum over atoms i of [ network_{element(i)}(AEV_i) + self_energy_{element(i)} ]

Precision: the networks (and the AEV they are fed) run in the dtype of the parameters, float32
by default (``model.double()`` gives float64 throughout, used for reference checks and
Hessians). The self energies are a float64 buffer that stays float64 whatever the model is cast
to, and the per-molecule sums are added in float64: a self energy of -75 Ha would lose 1e-5 Ha
in float32. ``forward`` therefore always returns float64 energies.

Species: models take atomic numbers from databases and turn them into indices into
``model.elements`` (-1 for padding) with :meth:`ANIModel.species_index`; the order of
``elements`` is the order of the AEV's element blocks (ANI-2x: H C N O S F Cl).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from levelup.atomicwrite import write_bytes_atomic
from levelup.elements import atomic_number, symbol
from levelup.errors import DataError, ModelFileError
from levelup.model.aev import AEVComputer, AEVParams
from levelup.model.fileformat import encode
from levelup.model.networks import (
    ALPHA,
    ANI1X_HIDDEN,
    OTHER_HIDDEN,
    build_network,
    describe_network,
    init_network,
)
from levelup.model.predict import DatabasePredictor


def _species_index(elements: Sequence[int], species_z: Any) -> Tensor:
    z = np.asarray(species_z.cpu() if isinstance(species_z, Tensor) else species_z)
    if z.ndim != 2 or not np.issubdtype(z.dtype, np.integer):
        raise DataError(f"species must be integer atomic numbers of shape (molecules, atoms) with 0 "
                        f"for padding; got dtype {z.dtype} shape {z.shape}")
    table = np.full(max(int(z.max(initial=0)), max(elements)) + 1, -2, dtype=np.int64)
    table[0] = -1
    table[list(elements)] = np.arange(len(elements))
    if z.min(initial=0) < 0:
        raise DataError(f"atomic numbers must be >= 0 (0 pads); got {int(z.min())}")
    idx = table[z]
    missing = np.unique(z[idx == -2])
    if missing.size:
        names = ", ".join(symbol(int(m)) for m in missing)
        have = ", ".join(symbol(e) for e in elements)
        raise DataError(f"the model has no network for {names} (it knows {have}); train a model "
                        f"with these elements or drop the molecules that contain them")
    return torch.from_numpy(idx)


class ANIModel(DatabasePredictor, torch.nn.Module):
    """An ANI neural-network potential.

    Args:
        elements: the elements it treats, as symbols or atomic numbers, in AEV order
            (e.g. ``["H", "C", "N", "O"]``).
        aev: AEV hyperparameters (default ANI-1x).
        hidden: hidden layer widths, one tuple for every element or a mapping
            ``{"H": (64, 32), ...}`` overriding the defaults per element. Defaults: the
            tutorial's ANI-1x networks (H 160-128-96, C 144-112-96, N and O 128-112-96), and
            128-112-96 for other elements.
        alpha: CELU alpha (0.1 in ANI-1x).
        self_energies: Hartree per element, a sequence in ``elements`` order or a mapping
            symbol/Z -> energy; default zeros (fit them with
            :func:`levelup.model.selfenergies.fit_self_energies`).
        seed: seed of the weight initialisation (Kaiming normal, zero biases); None draws from
            torch's global generator.

    Attributes:
        elements: atomic numbers, list[int].
        aev_computer: the :class:`~levelup.model.aev.AEVComputer`.
        networks: ``torch.nn.ModuleDict`` keyed by element symbol; each a Sequential Linear,
            CELU, ..., Linear(->1) with the Linear layers at positions 0, 2, 4, 6.
        self_energies: float64 buffer (n_elements,), Hartree, in ``elements`` order.

    ``model(species, coordinates)`` gives energies of index tensors; ``model.predict(db)`` of a
    whole database (:class:`~levelup.model.predict.DatabasePredictor`); ``model.save(path)``
    writes a model file that :func:`levelup.model.files.load_model` reads.
    """

    def __init__(
        self,
        elements: Sequence[str | int],
        *,
        aev: AEVParams | None = None,
        hidden: Sequence[int] | Mapping[str | int, Sequence[int]] | None = None,
        alpha: float = ALPHA,
        self_energies: Sequence[float] | Mapping[str | int, float] | np.ndarray | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        zs = [atomic_number(e) for e in elements]
        if not zs:
            raise DataError("an ANI model needs at least one element")
        if len(set(zs)) != len(zs):
            raise DataError(f"elements {list(elements)} name an element twice")
        self.elements: list[int] = zs
        self.aev_params = aev if aev is not None else AEVParams.ani1x()
        self.aev_computer = AEVComputer(self.aev_params, len(zs))
        widths = self._hidden_widths(hidden)
        generator = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        self.networks = torch.nn.ModuleDict()
        for z in zs:
            net = build_network(self.aev_computer.aev_length, widths[z], alpha)
            init_network(net, generator)
            self.networks[symbol(z)] = net
        self.register_buffer("self_energies", torch.zeros(len(zs), dtype=torch.float64))
        if self_energies is not None:
            self.set_self_energies(self_energies)

    @classmethod
    def from_networks(
        cls,
        elements: Sequence[str | int],
        networks: Mapping[str | int, torch.nn.Module],
        *,
        aev: AEVParams | None = None,
        self_energies: Sequence[float] | Mapping[str | int, float] | np.ndarray | None = None,
    ) -> ANIModel:
        """A model around given atomic networks (model files, NeuroChem files, surgery on
        layers), one per element, keyed by symbol or atomic number. Each must map
        (n, aev_length) to (n, 1). The networks are used as given, not copied."""
        model = cls(elements, aev=aev, hidden=(1,), seed=0, self_energies=self_energies)
        by_z = {atomic_number(k): v for k, v in networks.items()}
        extra = sorted(set(by_z) - set(model.elements))
        missing = [symbol(z) for z in model.elements if z not in by_z]
        if extra or missing:
            raise DataError(f"networks given for {[symbol(z) for z in by_z]}; the model's elements "
                            f"are {model.symbols} (missing: {missing}, extra: "
                            f"{[symbol(z) for z in extra]})")
        new = torch.nn.ModuleDict()
        for z in model.elements:
            net = by_z[z]
            first = next((m for m in net.modules() if isinstance(m, torch.nn.Linear)), None)
            if first is not None and first.in_features != model.aev_computer.aev_length:
                raise DataError(f"the {symbol(z)} network takes {first.in_features} inputs but the "
                                f"AEV has {model.aev_computer.aev_length} numbers per atom")
            new[symbol(z)] = net
        model.networks = new
        return model

    # ------------------------------------------------------------------ construction helpers
    def _hidden_widths(self, hidden: Any) -> dict[int, tuple[int, ...]]:
        widths = {z: ANI1X_HIDDEN.get(symbol(z), OTHER_HIDDEN) for z in self.elements}
        if hidden is None:
            return widths
        if isinstance(hidden, Mapping):
            for key, value in hidden.items():
                z = atomic_number(key)
                if z not in widths:
                    raise DataError(f"hidden layers given for {symbol(z)}, which is not among the "
                                    f"model's elements {[symbol(e) for e in self.elements]}")
                widths[z] = tuple(int(v) for v in value)
            return widths
        same = tuple(int(v) for v in hidden)
        return {z: same for z in self.elements}

    def set_self_energies(self, values: Sequence[float] | Mapping[str | int, float] | np.ndarray
                          ) -> None:
        """Set the self energies (Hartree): a sequence in ``elements`` order, or a mapping
        symbol/Z -> energy covering every element."""
        if isinstance(values, Mapping):
            by_z = {atomic_number(k): float(v) for k, v in values.items()}
            missing = [symbol(z) for z in self.elements if z not in by_z]
            if missing:
                raise DataError(f"self energies missing for {', '.join(missing)}")
            arr = np.array([by_z[z] for z in self.elements], dtype=np.float64)
        else:
            arr = np.asarray(values.detach().cpu() if isinstance(values, Tensor) else values,
                             dtype=np.float64).reshape(-1)
            if arr.shape != (len(self.elements),):
                raise DataError(f"expected {len(self.elements)} self energies (one per element "
                                f"{[symbol(z) for z in self.elements]}); got {arr.shape[0]}")
        if not np.isfinite(arr).all():
            raise DataError(f"self energies must be finite; got {arr}")
        with torch.no_grad():
            self.self_energies.copy_(torch.from_numpy(arr))

    def _apply(self, fn: Any, recurse: bool = True) -> ANIModel:
        # keep the self energies float64 through .float(), .half(), .to(dtype): only move them
        before = self._buffers["self_energies"]
        super()._apply(fn, recurse)
        after = self._buffers["self_energies"]
        if after.dtype != torch.float64:
            self._buffers["self_energies"] = before.to(device=after.device, dtype=torch.float64)
        return self

    # ------------------------------------------------------------------ properties
    @property
    def symbols(self) -> list[str]:
        """Element symbols in ``elements`` order."""
        return [symbol(z) for z in self.elements]

    @property
    def dtype(self) -> torch.dtype:
        """dtype of the networks (float32 unless cast)."""
        return next(iter(self.networks.parameters())).dtype

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return next(iter(self.networks.parameters())).device

    # ------------------------------------------------------------------ computation
    def species_index(self, species_z: Any) -> Tensor:
        """Atomic numbers (molecules, atoms) with 0 padding -> LongTensor of indices into
        ``elements`` with -1 padding. Raises DataError naming elements the model lacks."""
        return _species_index(self.elements, species_z)

    def compute_aev(self, species: Tensor, coordinates: Tensor) -> Tensor:
        """AEVs (molecules, atoms, aev_length) in the model's dtype; coordinates in Angstrom."""
        return self.aev_computer(species, coordinates.to(self.dtype))

    def atomic_energies(self, species: Tensor, aev: Tensor) -> Tensor:
        """Network outputs (molecules, atoms), Hartree, without self energies; 0 for padding.

        ``aev`` (molecules, atoms, aev_length) may be a cached AEV (training reuses it).
        """
        flat_species = species.reshape(-1)
        flat_aev = aev.reshape(-1, aev.shape[-1]).to(self.dtype)
        out = flat_aev.new_zeros(flat_species.shape)
        for index, name in enumerate(self.symbols):
            rows = (flat_species == index).nonzero().view(-1)
            if rows.numel():
                out = out.index_add(0, rows, self.networks[name](flat_aev[rows]).view(-1))
        return out.view(species.shape)

    def self_energy_sum(self, species: Tensor) -> Tensor:
        """Sum of the self energies of each molecule's atoms, (molecules,) float64 Hartree."""
        se = self.self_energies[species.clamp(min=0)]
        return torch.where(species >= 0, se, torch.zeros_like(se)).sum(-1)

    def energies_from_aev(self, species: Tensor, aev: Tensor) -> Tensor:
        """Total energies (molecules,) float64 Hartree from a (cached) AEV: networks + self
        energies, summed in float64."""
        return self.atomic_energies(species, aev).sum(-1).double() + self.self_energy_sum(species)

    def forward(self, species: Tensor, coordinates: Tensor) -> Tensor:
        """Total energies (molecules,), float64 Hartree.

        Args:
            species: LongTensor (molecules, atoms), indices into ``elements``, -1 padding.
            coordinates: (molecules, atoms, 3) Angstrom.
        """
        return self.energies_from_aev(species, self.compute_aev(species, coordinates))

    def member_energies(self, species: Tensor, coordinates: Tensor) -> Tensor:
        """(1, molecules) float64 Hartree: the ensemble interface for one model."""
        return self(species, coordinates).unsqueeze(0)

    # ------------------------------------------------------------------ files
    def file_entry(self, prefix: str = "") -> dict[str, Any]:
        """This model's entry in a model-file header (see :mod:`levelup.model.fileformat`):
        elements, AEV parameters, layers, dtype, self energies (Hartree) and the names of frozen
        parameters, each prefixed with ``prefix`` (``"members.<k>."`` inside an ensemble)."""
        networks = {}
        for name, net in self.networks.items():
            try:
                networks[name] = describe_network(net)
            except ValueError as exc:
                raise ModelFileError(f"cannot save the {name} network: {exc}") from None
        return {
            "elements": self.symbols,
            "atomic_numbers": list(self.elements),
            "aev": self.aev_params.to_dict(),
            "networks": networks,
            "dtype": str(self.dtype).removeprefix("torch."),
            "self_energies": dict(zip(self.symbols, self.self_energies.tolist(), strict=True)),
            "frozen": [prefix + n for n, p in self.named_parameters() if not p.requires_grad],
        }

    def to_bytes(self, metadata: Mapping[str, Any] | None = None) -> bytes:
        """The bytes of a model file holding this model; ``metadata`` as in :meth:`save`."""
        return encode("ANIModel", [self.file_entry()], self.state_dict(), metadata)

    def save(self, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None) -> None:
        """Write a model file (see :mod:`levelup.model.fileformat`) atomically; ``metadata``
        (JSON-ready: what it was trained on, the level of theory, ...) is stored in its header.
        :func:`levelup.model.files.load_model` reads it back."""
        write_bytes_atomic(path, self.to_bytes(metadata))

    def extra_repr(self) -> str:
        """What ``print(model)`` shows besides the submodules."""
        return f"elements={self.symbols}"


class Ensemble(DatabasePredictor, torch.nn.Module):
    """The mean of several ANI models with the same elements and AEV parameters.

    ``predict`` gives the mean energies and forces, plus ``energies_std`` (sample standard
    deviation over members, Hartree) and ``member_energies``. The AEV is computed once per batch
    and shared by the members.
    """

    ensemble_statistics = True  # predict reports energies_std and member_energies

    def __init__(self, members: Sequence[ANIModel]) -> None:
        super().__init__()
        members = list(members)
        if not members:
            raise DataError("an ensemble needs at least one model")
        first = members[0]
        for k, m in enumerate(members):
            if not isinstance(m, ANIModel):
                raise DataError(f"ensemble member {k} is a {type(m).__name__}, not an ANIModel")
            if m.elements != first.elements or m.aev_params != first.aev_params:
                raise DataError(
                    f"ensemble member {k} has elements {m.symbols} and AEV {m.aev_params}; member "
                    f"0 has {first.symbols} and {first.aev_params}: members must agree"
                )
        self.members = torch.nn.ModuleList(members)

    @property
    def elements(self) -> list[int]:
        """Atomic numbers, as in every member."""
        return self.members[0].elements

    @property
    def symbols(self) -> list[str]:
        """Element symbols, as in every member."""
        return self.members[0].symbols

    @property
    def aev_params(self) -> AEVParams:
        """AEV hyperparameters, as in every member."""
        return self.members[0].aev_params

    @property
    def dtype(self) -> torch.dtype:
        """dtype of the first member's networks (members may differ)."""
        return self.members[0].dtype

    @property
    def device(self) -> torch.device:
        """Device of the first member's parameters."""
        return self.members[0].device

    def __len__(self) -> int:
        return len(self.members)

    def species_index(self, species_z: Any) -> Tensor:
        """See :meth:`ANIModel.species_index`."""
        return self.members[0].species_index(species_z)

    def member_energies(self, species: Tensor, coordinates: Tensor) -> Tensor:
        """(members, molecules) float64 Hartree; the AEV is computed once per dtype."""
        aevs: dict[torch.dtype, Tensor] = {}
        out = []
        for member in self.members:
            if member.dtype not in aevs:
                aevs[member.dtype] = member.compute_aev(species, coordinates)
            out.append(member.energies_from_aev(species, aevs[member.dtype]))
        return torch.stack(out)

    def forward(self, species: Tensor, coordinates: Tensor) -> Tensor:
        """Mean total energies (molecules,), float64 Hartree."""
        return self.member_energies(species, coordinates).mean(0)

    def to_bytes(self, metadata: Mapping[str, Any] | None = None) -> bytes:
        """The bytes of a model file holding all members; ``metadata`` as in :meth:`save`."""
        members = [m.file_entry(f"members.{k}.") for k, m in enumerate(self.members)]
        return encode("Ensemble", members, self.state_dict(), metadata)

    def save(self, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None) -> None:
        """Write all members to one model file (see :meth:`ANIModel.save`)."""
        write_bytes_atomic(path, self.to_bytes(metadata))
