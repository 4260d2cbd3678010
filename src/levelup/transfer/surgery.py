"""Transfer-learning tools: freeze, unfreeze, reinitialise, add layers, refit self energies,
per-layer learning rates and an L2-SP penalty.

Each is a small function on an :class:`~levelup.model.ani.ANIModel` (or every member of an
:class:`~levelup.model.ani.Ensemble`); compose them, then call :func:`levelup.train.loop.fit`.
Layers are addressed by their position among the *Linear* layers of each element's network:
0 is the first, -1 the output layer. (MLatom counts positions in the whole ``nn.Sequential``,
where Linear layers sit at 0, 2, 4, 6; ``levelup.compat.mlatom`` translates.)

Example, the tutorial's transfer step::

    freeze(model, [0, -1])                         # first and last Linear layers of every element
    refit_self_energies(model, train, "CISD/cc-pVDZ")
    fit(model, train, val, property="CISD/cc-pVDZ", config=TrainConfig(learning_rate=1e-4))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from levelup.data import Database
from levelup.elements import atomic_number, symbol
from levelup.errors import ConfigError, DataError
from levelup.model.networks import init_network
from levelup.units import ENERGY

Layers = int | Sequence[int] | str
Elements = str | int | Sequence[str | int] | None


def members(model: Any) -> list[Any]:
    """The ANIModels inside ``model``: itself, or the members of an Ensemble."""
    return list(getattr(model, "members", [model]))


def _networks(model: Any, elements: Elements) -> list[nn.Sequential]:
    nets = []
    for member in members(model):
        if elements is None:
            chosen = list(member.networks.keys())
        else:
            items = [elements] if isinstance(elements, (str, int)) else list(elements)
            chosen = [symbol(atomic_number(e)) for e in items]
            missing = [s for s in chosen if s not in member.networks]
            if missing:
                raise ConfigError(f"the model has no network for {missing}; it has "
                                  f"{list(member.networks.keys())}")
        nets.extend(member.networks[s] for s in chosen)
    return nets


def linear_positions(network: nn.Sequential) -> list[int]:
    """Positions of the Linear layers inside an element's ``nn.Sequential``."""
    return [i for i, m in enumerate(network) if isinstance(m, nn.Linear)]


def _linears(network: nn.Sequential, layers: Layers) -> list[nn.Linear]:
    positions = linear_positions(network)
    if isinstance(layers, str):
        if layers != "all":
            raise ConfigError(f"layers must be 'all', an int or a list of ints; got {layers!r}")
        return [network[p] for p in positions]
    chosen = [layers] if isinstance(layers, (int, np.integer)) else list(layers)
    out = []
    for k in chosen:
        if not -len(positions) <= int(k) < len(positions):
            raise ConfigError(f"Linear layer {k} does not exist: this network has "
                              f"{len(positions)} Linear layers (0..{len(positions) - 1}, or -1 "
                              "for the output layer)")
        out.append(network[positions[int(k)]])
    return out


def freeze(model: Any, layers: Layers = "all", elements: Elements = None) -> None:
    """Stop training of the given Linear layers (weights and biases) of the given elements."""
    for net in _networks(model, elements):
        for layer in _linears(net, layers):
            layer.requires_grad_(False)


def unfreeze(model: Any, layers: Layers = "all", elements: Elements = None) -> None:
    """Let the given Linear layers of the given elements train again."""
    for net in _networks(model, elements):
        for layer in _linears(net, layers):
            layer.requires_grad_(True)


def frozen_parameters(model: Any) -> list[str]:
    """Names of the network parameters that will not train."""
    return [name for name, p in model.named_parameters() if not p.requires_grad]


def _init_linear(layer: nn.Linear, generator: torch.Generator) -> None:
    init_network(nn.Sequential(layer), generator)  # TorchANI's recipe, as for a new model


def reinitialize(model: Any, layers: Layers, elements: Elements = None,
                 seed: int | None = None) -> None:
    """Draw fresh weights (Kaiming normal, zero bias) for the given Linear layers."""
    generator = torch.Generator().manual_seed(0 if seed is None else seed)
    for net in _networks(model, elements):
        for layer in _linears(net, layers):
            _init_linear(layer, generator)


def add_layer(model: Any, width: int, before: int = -1, elements: Elements = None,
              seed: int | None = None) -> None:
    """Insert a hidden layer (Linear + the network's activation) of ``width`` neurons before
    Linear layer ``before`` (default: before the output layer).

    The new layer starts random and trainable. The layer after it keeps its pre-trained weights
    when ``width`` equals its input size; otherwise it is rebuilt (randomly) to take ``width``
    inputs.
    """
    if width < 1:
        raise ConfigError(f"width must be a positive number of neurons; got {width}")
    generator = torch.Generator().manual_seed(0 if seed is None else seed)
    for member in members(model):
        for sym in list(member.networks.keys()):
            if elements is not None:
                wanted = [elements] if isinstance(elements, (str, int)) else list(elements)
                if sym not in {symbol(atomic_number(e)) for e in wanted}:
                    continue
            net = member.networks[sym]
            positions = linear_positions(net)
            if not -len(positions) <= before < len(positions) or before % len(positions) == 0:
                raise ConfigError(f"cannot insert before Linear layer {before}: choose 1.."
                                  f"{len(positions) - 1} or -1 (the output layer)")
            pos = positions[before]
            nxt: nn.Linear = net[pos]
            ref = next(p for p in net.parameters())
            activation = next((m for m in net if not isinstance(m, nn.Linear)), nn.CELU(0.1))
            new = nn.Linear(nxt.in_features, width).to(ref)
            _init_linear(new, generator)
            modules = list(net)
            if width != nxt.in_features:
                rebuilt = nn.Linear(width, nxt.out_features).to(ref)
                _init_linear(rebuilt, generator)
                modules[pos] = rebuilt
            modules[pos:pos] = [new, type(activation)(**_activation_kwargs(activation))]
            member.networks[sym] = nn.Sequential(*modules)


def _activation_kwargs(activation: nn.Module) -> dict[str, Any]:
    return {"alpha": activation.alpha} if isinstance(activation, nn.CELU) else {}


def replace_output(model: Any, elements: Elements = None, seed: int | None = None) -> None:
    """Reinitialise the output layer (a fresh linear read-out of the last hidden features)."""
    reinitialize(model, -1, elements, seed)


def parameter_groups(model: Any, learning_rate: float,
                     factors: dict[int, float] | None = None) -> list[dict[str, Any]]:
    """Optimizer parameter groups with per-layer learning rates.

    ``factors`` maps a Linear-layer position (0, 1, ..., -1) to a multiplier of ``learning_rate``;
    layers not named get the plain rate. Frozen parameters are left out.
    """
    factors = factors or {}
    groups: dict[float, list[nn.Parameter]] = {}
    for member in members(model):
        for net in member.networks.values():
            positions = linear_positions(net)
            for k, pos in enumerate(positions):
                factor = factors.get(k, factors.get(k - len(positions), 1.0))
                for p in net[pos].parameters():
                    if p.requires_grad:
                        groups.setdefault(learning_rate * factor, []).append(p)
    return [{"params": ps, "lr": lr} for lr, ps in groups.items()]


class L2SP:
    """L2-SP penalty (Li et al. 2018): ``strength * sum (w - w_pretrained)^2`` over the trainable
    network weights, pulling fine-tuned weights toward their pre-trained values: a guard
    against over-fitting a dozen points. Build it right before fine-tuning; pass it to ``fit``
    as ``penalty=``. ``strength`` is in (kcal/mol)^2 per squared weight, matching the loss."""

    def __init__(self, model: Any, strength: float) -> None:
        if strength < 0:
            raise ConfigError(f"L2-SP strength must be >= 0; got {strength}")
        self.strength = float(strength)
        self.reference = {name: p.detach().clone() for name, p in model.named_parameters()
                          if p.requires_grad and "networks" in name}

    def __call__(self, model: Any) -> torch.Tensor:
        total = None
        params = dict(model.named_parameters())
        for name, ref in self.reference.items():
            term = (params[name] - ref).pow(2).sum()
            total = term if total is None else total + term
        if total is None:
            return torch.zeros(())
        return self.strength * total


class ForceAnchor:
    """Function-space L2-SP: ``strength * mean |F_model - F_pretrained|^2`` over anchor geometries
    (forces in kcal/mol/Angstrom, ``strength`` in Angstrom^2, so the penalty is in (kcal/mol)^2
    like the energy loss).

    Fine-tuning on a dozen high-level energies leaves the surface free wherever there is no
    point; this penalty keeps the *shape* (forces) of the pre-trained surface there, while the
    energies at the new points pull the model to the new level. The correction between two
    levels of theory is smoother than either surface (the premise of delta-learning), so keeping
    the pre-trained forces where nothing else is known extrapolates far better than keeping the
    pre-trained weights (:class:`L2SP`). The anchors are geometries the pre-trained model knows,
    typically its own training set; no labels are needed.

    Build it right before fine-tuning (it records the current model's forces) and pass it to
    ``fit`` as ``penalty=``. Each call draws ``batch_size`` anchors at random (seeded).
    """

    def __init__(self, model: Any, anchors: Database, strength: float, batch_size: int = 128,
                 seed: int = 0) -> None:
        if strength < 0:
            raise ConfigError(f"ForceAnchor strength must be >= 0; got {strength}")
        if len(anchors) == 0:
            raise DataError("ForceAnchor needs at least one anchor geometry")
        from levelup.units import HARTREE_TO_KCALMOL

        self.strength = float(strength)
        self.batch_size = int(batch_size)
        self.generator = torch.Generator().manual_seed(seed)
        self.kcal = HARTREE_TO_KCALMOL
        self.species = model.species_index(anchors.species)
        self.coordinates = torch.from_numpy(np.array(anchors.coordinates)).to(model.dtype)
        self.real = (self.species >= 0).unsqueeze(-1)
        self.reference = torch.cat([
            self._forces(model, idx, create_graph=False).detach()
            for idx in torch.arange(len(anchors)).split(1024)])

    def _forces(self, model: Any, idx: Tensor, create_graph: bool) -> Tensor:
        xyz = self.coordinates[idx].clone().requires_grad_(True)
        energy = model(self.species[idx], xyz).sum()
        return -torch.autograd.grad(energy, xyz, create_graph=create_graph)[0]

    def __call__(self, model: Any) -> Tensor:
        n = self.species.shape[0]
        if n > self.batch_size:
            idx = torch.randperm(n, generator=self.generator)[: self.batch_size]
        else:
            idx = torch.arange(n)
        diff = (self._forces(model, idx, create_graph=True) - self.reference[idx]) * self.kcal
        diff = torch.where(self.real[idx], diff, torch.zeros_like(diff))
        per_atom = diff.pow(2).sum(-1).sum() / self.real[idx].sum()
        return self.strength * per_atom.to(torch.float64)

    is_fixed = False

    def fixed(self, most: int = 1024) -> ForceAnchor:
        """The same anchor on one fixed draw of at most ``most`` of its geometries, used at
        every call (L-BFGS needs a deterministic loss)."""
        import copy

        n = self.species.shape[0]
        idx = torch.randperm(n, generator=self.generator)[:most] if n > most else torch.arange(n)
        out = copy.copy(self)
        out.species, out.coordinates = self.species[idx], self.coordinates[idx]
        out.real, out.reference = self.real[idx], self.reference[idx]
        out.batch_size, out.is_fixed = len(idx), True
        return out


def internal_directions(coordinates: Tensor, real: Tensor, generator: torch.Generator) -> Tensor:
    """Random unit displacements (M, A, 3) of each geometry that neither translate nor rotate it:
    Gaussian draws with the rigid-body motions about the geometry projected out (padding atoms,
    ``real`` False, stay put). A geometry with no internal motion (one atom) gets zeros."""
    noise = torch.randn(coordinates.shape, generator=generator, dtype=coordinates.dtype)
    return _project_internal(noise, coordinates, real, normalise=True)


def _rigid_basis(coordinates: Tensor, real: Tensor) -> Tensor:
    """Orthonormal rigid-body motions (M, 3A, 6) per geometry (zero columns where a motion does
    not exist: the rotation about a linear molecule's axis, or rotations of one atom)."""
    m, a, _ = coordinates.shape
    mask = real.to(coordinates.dtype)  # (M, A, 1)
    com = (coordinates * mask).sum(1, keepdim=True) / mask.sum(1, keepdim=True).clamp(min=1)
    rel = (coordinates - com) * mask
    eye = torch.eye(3, dtype=coordinates.dtype)
    trans = [mask * eye[k] for k in range(3)]
    rots = [torch.cross(eye[k].expand_as(rel), rel, dim=-1) for k in range(3)]
    vectors = torch.stack([v.reshape(m, 3 * a) for v in trans + rots], dim=-1)
    u, s, _ = torch.linalg.svd(vectors, full_matrices=False)
    keep = s > 1e-8 * s[:, :1].clamp(min=1e-300)
    return u * keep.unsqueeze(1)


def _project_internal(vectors: Tensor, coordinates: Tensor, real: Tensor, normalise: bool = False,
                      basis: Tensor | None = None) -> Tensor:
    m, a, _ = coordinates.shape
    basis = _rigid_basis(coordinates, real) if basis is None else basis
    flat = torch.where(real, vectors, torch.zeros_like(vectors)).reshape(m, 3 * a, 1)
    flat = flat - basis @ (basis.transpose(1, 2) @ flat)
    if normalise:
        norm = flat.norm(dim=1, keepdim=True)
        flat = torch.where(norm > 1e-12, flat / norm.clamp(min=1e-300), torch.zeros_like(flat))
    return flat.reshape(m, a, 3)


class SmoothCorrection:
    """A smoothness prior on the *correction* the fine-tuning makes: ``strength * mean
    |P [dF(x + h u) - dF(x)]|^2 / h^2`` over anchor geometries x, where ``dF = F_model -
    F_pretrained`` is the change of the forces (kcal/mol/Angstrom), u a random unit direction of
    internal motion (no translation or rotation), h = ``step`` (Angstrom) and P projects the
    rigid-body motions out. It is a finite-difference estimate of the curvature (Hessian) of the
    correction ``E_model - E_pretrained``: ``strength`` is in Angstrom^4, so the penalty is in
    (kcal/mol)^2 like the energy loss.

    :class:`ForceAnchor` asks the correction to be *flat* (zero force change) wherever there
    are anchors, so beyond the last high-level point the model returns to the pre-trained shape.
    This penalty asks the correction to be *smooth* instead: it may keep a slope, and beyond the
    data it continues linearly from the nearest points (what a natural spline does), while
    between the points it interpolates without wiggles. The difference between two levels of
    theory is smoother than either surface (the premise of delta-learning), so it is the
    curvature of the difference, not its slope, that has no reason to be large.

    Build it right before fine-tuning (it keeps a frozen copy of the current model as the
    reference) and pass it to ``fit`` as ``penalty=``. Each call draws ``batch_size`` anchors
    and one direction per anchor at random (seeded); :meth:`fixed` gives a deterministic one.
    """

    def __init__(self, model: Any, anchors: Database, strength: float, step: float = 0.02,
                 batch_size: int = 128, seed: int = 0) -> None:
        import copy

        from levelup.units import HARTREE_TO_KCALMOL

        if strength < 0:
            raise ConfigError(f"SmoothCorrection strength must be >= 0; got {strength}")
        if not step > 0:
            raise ConfigError(f"SmoothCorrection step must be > 0 Angstrom; got {step}")
        if len(anchors) == 0:
            raise DataError("SmoothCorrection needs at least one anchor geometry")
        self.strength, self.step = float(strength), float(step)
        self.batch_size = int(batch_size)
        self.generator = torch.Generator().manual_seed(seed)
        self.kcal = HARTREE_TO_KCALMOL
        self.reference_model = copy.deepcopy(model).requires_grad_(False)
        self.species = model.species_index(anchors.species)
        self.coordinates = torch.from_numpy(np.array(anchors.coordinates)).to(model.dtype)
        self.real = (self.species >= 0).unsqueeze(-1)
        self.directions: Tensor | None = None  # fixed directions (see fixed())
        self.is_fixed = False

    def _forces(self, model: Any, species: Tensor, xyz: Tensor, create_graph: bool) -> Tensor:
        xyz = xyz.clone().requires_grad_(True)
        energy = model(species, xyz).sum()
        return -torch.autograd.grad(energy, xyz, create_graph=create_graph)[0]

    def _pick(self) -> tuple[Tensor, Tensor]:
        n = self.species.shape[0]
        if self.directions is not None:
            return torch.arange(n), self.directions
        idx = (torch.randperm(n, generator=self.generator)[: self.batch_size]
               if n > self.batch_size else torch.arange(n))
        return idx, internal_directions(self.coordinates[idx], self.real[idx], self.generator)

    def __call__(self, model: Any) -> Tensor:
        idx, u = self._pick()
        species, xyz, real = self.species[idx], self.coordinates[idx], self.real[idx]
        both_species = torch.cat([species, species])
        both_xyz = torch.cat([xyz, xyz + self.step * u])
        with torch.enable_grad():
            ref = self._forces(self.reference_model, both_species, both_xyz, create_graph=False)
        change = self._forces(model, both_species, both_xyz, create_graph=True) - ref.detach()
        m = species.shape[0]
        diff = (change[m:] - change[:m]) * (self.kcal / self.step)
        diff = _project_internal(diff, xyz, real)
        has_motion = (u.pow(2).sum((1, 2)) > 0).to(diff.dtype)
        per_molecule = diff.pow(2).sum((1, 2)) * has_motion
        return self.strength * (per_molecule.sum() / has_motion.sum().clamp(min=1)).to(
            torch.float64)

    def fixed(self, most: int = 1024) -> SmoothCorrection:
        """The same penalty on one fixed draw of at most ``most`` anchors and one direction
        each, used at every call (L-BFGS needs a deterministic loss)."""
        import copy

        idx = torch.randperm(self.species.shape[0], generator=self.generator)[:most]
        out = copy.copy(self)
        out.species, out.coordinates, out.real = (self.species[idx], self.coordinates[idx],
                                                  self.real[idx])
        out.directions = internal_directions(out.coordinates, out.real, self.generator)
        out.batch_size, out.is_fixed = len(idx), True
        return out


def refit_self_energies(model: Any, db: Database, property: str) -> np.ndarray:
    """Refit the self energies to ``property`` (Hartree) by least squares, keeping the networks:
    the new self energies are the best per-element constants for ``E - sum of atomic network
    outputs``. Elements absent from ``db`` keep their values (a model pre-trained on CHNO and
    refitted on water keeps its C and N). Warns when the compositions cannot determine the
    self energies separately (e.g. only water: H and O are not separable); then the
    minimum-norm correction to the current values is used. Returns the new values (Hartree,
    in ``model.elements`` order; of the last member for an ensemble).
    """
    from levelup.model.selfenergies import fit_self_energies

    energies = np.asarray(db.get(property, unit=ENERGY), dtype=np.float64)
    keep = np.isfinite(energies)
    if not keep.any():
        raise DataError(f"property {property!r} has no values to refit self energies from")
    sub = db[keep]
    present = sub.elements
    values = np.zeros(0)
    for member in members(model):
        # the correction to the current self energies, fitted over the elements present;
        # minimum norm keeps it small (not the absolute values) when it is under-determined
        residual = energies[keep] - member.predict(sub).energies
        correction = fit_self_energies(sub.species, residual, present)
        values = member.self_energies.detach().cpu().double().numpy().copy()
        for z, c in zip(present, correction, strict=True):
            values[member.elements.index(z)] += c
        member.set_self_energies(values)
    return values


def set_self_energies(model: Any, values: Sequence[float] | dict[Any, float]) -> None:
    """Set the self energies (Hartree) of a model or of every ensemble member: a sequence in
    ``model.elements`` order, or a mapping from element (symbol or Z) to energy."""
    for member in members(model):
        member.set_self_energies(values)


def self_energies_from_atoms(model: Any, level: str, **label_options: Any) -> np.ndarray:
    """Set the self energies of a model (or every ensemble member) to isolated-atom energies at
    ``level`` computed with PySCF (Hartree), and return them in ``model.elements`` order.
    ``label_options`` go to :func:`levelup.qm.atom_energies` (cache, multiplicities, ...)."""
    from levelup.model.selfenergies import self_energies_from_atoms as atom_values

    values = atom_values(members(model)[0].elements, level, **label_options)
    set_self_energies(model, values)
    return values
