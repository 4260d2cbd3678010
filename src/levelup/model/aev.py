"""Atomic environment vectors (AEVs): the ANI descriptor of Smith, Isayev and Roitberg,
Chem. Sci. 8, 3192 (2017), computed exactly as TorchANI 2.2 computes it.

For atom i the AEV is the concatenation of

* radial terms, one block of ``len(ShfR)`` numbers per neighbour element (eq. 3):
  ``G_R = sum_j 0.25 exp(-EtaR (R_ij - ShfR)^2) f_c(R_ij; Rcr)``
* angular terms, one block of ``len(ShfA) * len(ShfZ)`` numbers per unordered pair of
  neighbour elements (eq. 4, modified; blocks in ``torch.triu_indices`` order of the pair):
  ``G_A = 2^(1-Zeta) sum_{j<k} (1 + cos(theta_ijk - ShfZ))^Zeta
  exp(-EtaA ((R_ij + R_ik)/2 - ShfA)^2) f_c(R_ij; Rca) f_c(R_ik; Rca)``

with the cosine cutoff ``f_c(R; Rc) = 0.5 cos(pi R / Rc) + 0.5`` for ``R <= Rc`` and 0 beyond.
Within a block the shifts run fastest in the order of the formula (ShfA outer, ShfZ inner).

Units: coordinates and cutoffs in Angstrom; the AEV is dimensionless.
"""

from __future__ import annotations

import math
import struct
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor


class NoNeighbourWarning(UserWarning):
    """An atom has no neighbour within the radial cutoff: its AEV is all zeros, so the model
    sees it as an isolated atom (its energy is its self energy plus a constant)."""


def _f32(values) -> tuple[float, ...]:
    # TorchANI holds the published constants in float32 tensors (a float64 model gets them by
    # .double()); keeping exactly those values makes float64 AEVs agree to 1e-15, not 1e-7
    return tuple(float(struct.unpack("f", struct.pack("f", v))[0]) for v in values)


def _linear(start: float, stop: float, n: int) -> tuple[float, ...]:
    """``n`` points from ``start`` up to but excluding ``stop`` (TorchANI's linspace(...)[:-1]),
    rounded to float32 like TorchANI's."""
    return _f32(start + (stop - start) * k / n for k in range(n))


def _sections(n: int) -> tuple[float, ...]:
    """Centres of ``n`` equal sections of [0, pi]: pi/(2n) + k pi/n, rounded to float32."""
    return _f32(math.pi / (2 * n) + k * math.pi / n for k in range(n))


@dataclass(frozen=True)
class AEVParams:
    """Hyperparameters of the AEV (lengths in Angstrom, Eta in 1/Angstrom^2, angles in radians).

    The default is ANI-1x (file ``rHCNO-5.2R_16-3.5A_a4-8.params`` of TorchANI/NeuroChem). The
    presets hold the published shifts rounded to float32, as TorchANI uses them; the cutoffs are
    exact.
    """

    Rcr: float = 5.2  # radial cutoff, Angstrom
    Rca: float = 3.5  # angular cutoff, Angstrom
    EtaR: tuple[float, ...] = (16.0,)  # width of the radial Gaussians, 1/Angstrom^2
    ShfR: tuple[float, ...] = _linear(0.9, 5.2, 16)  # radial shifts 0.9 + 0.26875 k, Angstrom
    EtaA: tuple[float, ...] = (8.0,)  # width of the angular radial Gaussians, 1/Angstrom^2
    Zeta: tuple[float, ...] = (32.0,)  # angular sharpness
    ShfA: tuple[float, ...] = _linear(0.9, 3.5, 4)  # angular radial shifts 0.9 + 0.65 k, Angstrom
    ShfZ: tuple[float, ...] = _sections(8)  # angle shifts pi/16 + k pi/8, radians

    def __post_init__(self) -> None:
        for name in ("EtaR", "ShfR", "EtaA", "Zeta", "ShfA", "ShfZ"):
            value = getattr(self, name)
            if isinstance(value, (int, float)):
                value = (value,)
            value = tuple(float(v) for v in value)
            if not value:
                raise ValueError(f"AEVParams.{name} needs at least one value")
            object.__setattr__(self, name, value)
        for name in ("Rcr", "Rca"):
            value = float(getattr(self, name))
            if not value > 0:
                raise ValueError(f"AEVParams.{name} is a cutoff in Angstrom and must be > 0; "
                                 f"got {value}")
            object.__setattr__(self, name, value)

    @classmethod
    def ani1x(cls) -> AEVParams:
        """ANI-1x (and ANI-1ccx): H, C, N, O; 384 numbers per atom for 4 elements."""
        return cls()

    @classmethod
    def ani2x(cls) -> AEVParams:
        """ANI-2x (file ``rHCNOSFCl-5.1R_16-3.5A_a8-4.params``): H C N O S F Cl; 1008 numbers
        per atom for 7 elements."""
        return cls(
            Rcr=5.1,
            Rca=3.5,
            EtaR=_f32((19.7,)),
            ShfR=_linear(0.8, 5.1, 16),  # 0.8 + 0.26875 k
            EtaA=(12.5,),
            Zeta=_f32((14.1,)),
            ShfA=_linear(0.8, 3.5, 8),  # 0.8 + 0.3375 k
            ShfZ=_sections(4),  # pi/8 + k pi/4
        )

    @property
    def radial_sublength(self) -> int:
        """Radial numbers per neighbour element."""
        return len(self.EtaR) * len(self.ShfR)

    @property
    def angular_sublength(self) -> int:
        """Angular numbers per pair of neighbour elements."""
        return len(self.EtaA) * len(self.Zeta) * len(self.ShfA) * len(self.ShfZ)

    def length(self, n_species: int) -> int:
        """AEV length for ``n_species`` elements."""
        pairs = n_species * (n_species + 1) // 2
        return n_species * self.radial_sublength + pairs * self.angular_sublength

    def to_dict(self) -> dict[str, float | list[float]]:
        """JSON-ready dict (model files store it)."""
        return {
            "Rcr": self.Rcr, "Rca": self.Rca, "EtaR": list(self.EtaR), "ShfR": list(self.ShfR),
            "EtaA": list(self.EtaA), "Zeta": list(self.Zeta), "ShfA": list(self.ShfA),
            "ShfZ": list(self.ShfZ),
        }

    @classmethod
    def from_dict(cls, data: dict) -> AEVParams:
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError naming the valid ones."""
        valid = set(cls.__dataclass_fields__)
        unknown = set(data) - valid
        if unknown:
            raise ValueError(f"unknown AEV parameters {sorted(unknown)}; valid: {sorted(valid)}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()})


def _cutoff_cosine(distances: Tensor, cutoff: float) -> Tensor:
    # callers pass only distances <= cutoff, where this is the full cutoff function
    return 0.5 * torch.cos(distances * (math.pi / cutoff)) + 0.5


class AEVComputer(torch.nn.Module):
    """Computes AEVs for a batch of molecules.

    Args:
        params: the hyperparameters (:class:`AEVParams`).
        n_species: number of elements; species indices run over 0 .. n_species-1.

    ``forward(species, coordinates)``: species is a LongTensor (molecules, atoms) of element
    indices with -1 for padding, coordinates (molecules, atoms, 3) Angstrom (any float dtype;
    padding coordinates are ignored). Returns (molecules, atoms, aev_length) in the dtype of
    the coordinates, zeros for padding atoms. Twice differentiable (forces, Hessians).

    The module is TorchScript-ready (``torch.jit.script(AEVComputer(...))``): the TorchScript
    export (:mod:`levelup.model.export`) scripts this very code. Scripted, it skips the input
    checks and the NoNeighbourWarning, which only the eager module gives.

    Neighbours are found among all pairs of atoms of each molecule (no periodic boundaries), so
    the cost grows as atoms^2 per molecule: built for small and medium molecules.
    """

    def __init__(self, params: AEVParams | None = None, n_species: int = 4) -> None:
        super().__init__()
        self.params = params if params is not None else AEVParams()
        if n_species < 1:
            raise ValueError(f"n_species must be >= 1; got {n_species}")
        self.n_species = int(n_species)
        p = self.params
        # plain numbers for the scripted code, which cannot read the AEVParams dataclass
        self.Rcr, self.Rca = float(p.Rcr), float(p.Rca)
        self.radial_sublength = p.radial_sublength
        self.angular_sublength = p.angular_sublength
        self.n_pairs = n_species * (n_species + 1) // 2  # unordered species pairs
        f64 = torch.float64
        # shapes chosen so that flattening gives TorchANI's order: EtaR outer, ShfR inner;
        # EtaA, Zeta, ShfA, ShfZ from outer to inner
        self.register_buffer("EtaR", torch.tensor(p.EtaR, dtype=f64).view(-1, 1), persistent=False)
        self.register_buffer("ShfR", torch.tensor(p.ShfR, dtype=f64).view(1, -1), persistent=False)
        self.register_buffer("EtaA", torch.tensor(p.EtaA, dtype=f64).view(-1, 1, 1, 1),
                             persistent=False)
        self.register_buffer("Zeta", torch.tensor(p.Zeta, dtype=f64).view(1, -1, 1, 1),
                             persistent=False)
        self.register_buffer("ShfA", torch.tensor(p.ShfA, dtype=f64).view(1, 1, -1, 1),
                             persistent=False)
        self.register_buffer("ShfZ", torch.tensor(p.ShfZ, dtype=f64).view(1, 1, 1, -1),
                             persistent=False)
        # slot of each unordered species pair: (s1, s2) -> position in triu_indices order
        s1, s2 = torch.triu_indices(n_species, n_species)
        pair_slot = torch.zeros(n_species, n_species, dtype=torch.long)
        pair_slot[s1, s2] = torch.arange(s1.numel())
        pair_slot[s2, s1] = torch.arange(s1.numel())
        self.register_buffer("pair_slot", pair_slot, persistent=False)
        self.radial_length = n_species * p.radial_sublength
        self.angular_length = self.n_pairs * p.angular_sublength
        self.aev_length = self.radial_length + self.angular_length
        #: emit NoNeighbourWarning for atoms without neighbours (switch off for scans on purpose)
        self.warn_isolated = True

    def extra_repr(self) -> str:
        """What ``print(module)`` shows."""
        return f"n_species={self.n_species}, aev_length={self.aev_length}, params={self.params}"

    def forward(self, species: Tensor, coordinates: Tensor) -> Tensor:
        """AEVs (molecules, atoms, aev_length) of ``species`` (molecules, atoms; -1 pads) at
        ``coordinates`` (molecules, atoms, 3) Angstrom: radial blocks, then angular blocks."""
        if not torch.jit.is_scripting():
            self._check_inputs(species, coordinates)
        m, a = species.shape[0], species.shape[1]
        atom_i, atom_j, vec, dist = self._neighbour_list(species, coordinates)
        if not torch.jit.is_scripting():
            if self.warn_isolated:
                self._warn_isolated(species, atom_i, atom_j)
        flat_species = species.reshape(-1)  # (molecules*atoms,)
        radial = self._radial_aev(flat_species, atom_i, atom_j, dist, m * a)
        angular = self._angular_aev(flat_species, atom_i, atom_j, vec, dist, m * a)
        return torch.cat(
            [radial.view(m, a, self.radial_length), angular.view(m, a, self.angular_length)],
            dim=-1,
        )  # (molecules, atoms, aev_length)

    @torch.jit.unused
    def _check_inputs(self, species: Tensor, coordinates: Tensor) -> None:
        if species.dim() != 2 or coordinates.shape != (*species.shape, 3):
            raise ValueError(
                f"AEVComputer expects species (molecules, atoms) and coordinates (molecules, "
                f"atoms, 3); got {tuple(species.shape)} and {tuple(coordinates.shape)}"
            )
        if species.numel() and int(species.max()) >= self.n_species:
            raise ValueError(f"species index {int(species.max())} out of range for an AEV of "
                             f"{self.n_species} species (indices 0..{self.n_species - 1}, -1 pads)")

    def _neighbour_list(self, species: Tensor, coordinates: Tensor
                        ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Pairs i < j of real atoms of one molecule within the radial cutoff: global atom
        indices (into molecules*atoms) of i and of j, each (pairs,); the vectors from i to j
        (pairs, 3), Angstrom; their lengths (pairs,)."""
        a = species.shape[1]
        ij = torch.triu_indices(a, a, offset=1, device=coordinates.device)
        i_loc, j_loc = ij[0], ij[1]  # (all pairs,) positions inside a molecule
        real = species >= 0  # (molecules, atoms)
        pair_real = real[:, i_loc] & real[:, j_loc]  # (molecules, all pairs)
        vec_all = coordinates[:, j_loc] - coordinates[:, i_loc]  # (molecules, all pairs, 3)
        # only real pairs enter the sqrt, so padding (0, 0, 0) never gives a NaN gradient
        d2_all = (vec_all.detach() ** 2).sum(-1)
        keep = torch.nonzero(pair_real & (d2_all <= self.Rcr ** 2))  # (pairs, 2): molecule, pair
        mol, pair = keep[:, 0], keep[:, 1]
        atom_i = mol * a + i_loc[pair]
        atom_j = mol * a + j_loc[pair]
        flat_xyz = coordinates.reshape(-1, 3)  # (molecules*atoms, 3)
        vec = flat_xyz[atom_j] - flat_xyz[atom_i]  # (pairs, 3) from i to j
        return atom_i, atom_j, vec, torch.linalg.vector_norm(vec, dim=-1)

    @torch.jit.unused
    def _warn_isolated(self, species: Tensor, atom_i: Tensor, atom_j: Tensor) -> None:
        real = species.reshape(-1) >= 0
        if not real.any():
            return
        has_neighbour = torch.zeros_like(real)
        has_neighbour[atom_i] = True
        has_neighbour[atom_j] = True
        lonely = real & ~has_neighbour
        if lonely.any():
            a = species.shape[1]
            first = int(lonely.nonzero()[0, 0])
            warnings.warn(
                f"{int(lonely.sum())} atom(s) have no neighbour within the radial cutoff "
                f"{self.Rcr} Angstrom (first: molecule {first // a}, atom {first % a}); the "
                "model treats them as isolated atoms",
                NoNeighbourWarning, stacklevel=3,
            )

    def _radial_aev(self, flat_species: Tensor, atom_i: Tensor, atom_j: Tensor, dist: Tensor,
                    n_atoms: int) -> Tensor:
        """Radial terms (eq. 3) summed per atom and neighbour element: (n_atoms * n_species,
        radial_sublength), rows atom-major."""
        EtaR, ShfR = self.EtaR.to(dist.dtype), self.ShfR.to(dist.dtype)
        # 0.25 is NeuroChem's factor, which TorchANI keeps (not in the paper)
        fc = _cutoff_cosine(dist, self.Rcr)
        radial = 0.25 * torch.exp(-EtaR * (dist.view(-1, 1, 1) - ShfR) ** 2) * fc.view(-1, 1, 1)
        radial = radial.flatten(1)  # (pairs, radial_sublength)
        out = dist.new_zeros([n_atoms * self.n_species, self.radial_sublength])
        out.index_add_(0, atom_i * self.n_species + flat_species[atom_j], radial)
        out.index_add_(0, atom_j * self.n_species + flat_species[atom_i], radial)
        return out

    def _angular_aev(self, flat_species: Tensor, atom_i: Tensor, atom_j: Tensor, vec: Tensor,
                     dist: Tensor, n_atoms: int) -> Tensor:
        """Angular terms (eq. 4) summed per centre atom and unordered pair of neighbour
        elements, over pairs of neighbours within ``Rca``: (n_atoms * n_pairs,
        angular_sublength), rows atom-major."""
        out = dist.new_zeros([n_atoms * self.n_pairs, self.angular_sublength])
        close = dist <= self.Rca
        if not bool(close.any()):
            return out
        ai, aj, v, d = atom_i[close], atom_j[close], vec[close], dist[close]
        # directed neighbour list: (centre, neighbour, vector centre->neighbour, distance)
        centre = torch.cat([ai, aj])
        neighbour = torch.cat([aj, ai])
        vectors = torch.cat([v, -v])
        distances = torch.cat([d, d])
        c_idx, n1, n2 = _neighbour_pairs(centre)  # (triples,) each
        if c_idx.numel() == 0:
            return out
        angular = self._angular_terms(vectors[n1], vectors[n2], distances[n1], distances[n2])
        slot = self.pair_slot[flat_species[neighbour[n1]], flat_species[neighbour[n2]]]
        out.index_add_(0, c_idx * self.n_pairs + slot, angular)
        return out

    def _angular_terms(self, v1: Tensor, v2: Tensor, d1: Tensor, d2: Tensor) -> Tensor:
        """One summand of eq. 4 per triple (centre, j, k): vectors (triples, 3) and distances
        (triples,) from the centre to j and to k -> (triples, angular_sublength)."""
        dtype = d1.dtype
        EtaA, Zeta = self.EtaA.to(dtype), self.Zeta.to(dtype)
        ShfA, ShfZ = self.ShfA.to(dtype), self.ShfZ.to(dtype)
        # 0.95 keeps acos away from +-1, where its derivative is infinite (TorchANI)
        cos = 0.95 * (v1 * v2).sum(-1) / (d1 * d2)
        angle = torch.acos(cos).view(-1, 1, 1, 1, 1)
        factor1 = ((1 + torch.cos(angle - ShfZ)) / 2) ** Zeta
        mean_d = ((d1 + d2) / 2).view(-1, 1, 1, 1, 1)
        factor2 = torch.exp(-EtaA * (mean_d - ShfA) ** 2)
        fcs = (_cutoff_cosine(d1, self.Rca) * _cutoff_cosine(d2, self.Rca)).view(-1, 1, 1, 1, 1)
        # small factors first, so that only one product has the full size
        return (factor1 * (factor2 * (2 * fcs))).flatten(1)  # (triples, angular_sublength)


def _neighbour_pairs(centre: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """All unordered pairs of entries that share a centre.

    Args:
        centre: (entries,) centre atom of each directed neighbour entry.

    Returns:
        (centre of each pair, index of the first entry, index of the second entry), each
        (pairs,), covering every pair of distinct entries with the same centre exactly once.
    """
    order = torch.argsort(centre, stable=True)
    sorted_centre = centre[order]
    uniques, counts = torch.unique_consecutive(sorted_centre, return_counts=True)
    n_pairs = counts * (counts - 1) // 2  # (centres,)
    if uniques.numel() == 0 or int(n_pairs.sum()) == 0:
        empty = centre.new_zeros([0])
        return empty, empty, empty
    max_count = int(counts.max())
    # local pairs (p < q) of a group of max_count entries; a centre with n entries uses the first
    # n (n - 1) / 2 of them because tril/triu ordering by q then p lists pairs of smaller q first
    qp = torch.tril_indices(max_count, max_count, offset=-1, device=centre.device)
    q, p = qp[0], qp[1]
    group = torch.repeat_interleave(torch.arange(uniques.numel(), device=centre.device), n_pairs)
    starts = torch.cumsum(n_pairs, 0) - n_pairs  # first pair of each group
    local = torch.arange(group.numel(), device=centre.device) - starts[group]
    first_entry = torch.cumsum(counts, 0) - counts  # first sorted entry of each group
    e1 = order[first_entry[group] + p[local]]
    e2 = order[first_entry[group] + q[local]]
    return uniques[group], e1, e2
