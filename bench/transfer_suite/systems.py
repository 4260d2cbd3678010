"""The systems of the transfer-learning benchmark suite (issue 12, item 1).

Each :class:`System` names a molecule, what it probes, its equilibrium structure (Angstrom), how
its geometries are sampled (seeded: the same seed gives the same geometries, bit for bit), the low
and high levels of theory, where the pre-trained model comes from, and how many geometries get
labels. ``bench/transfer_suite/make_labels.py`` labels them into ``data/<name>.h5``.

Samplers draw one geometry at a time from ``numpy.random.default_rng(seed)`` and redraw any
geometry with two atoms closer than :data:`MIN_DISTANCE` Angstrom, so the set depends only on the
seed and the count. Equilibrium structures are literature/G2-set geometries (ASE's
``ase.build.molecule``; formamide from its experimental internal coordinates), not optimised at
either level: they are the centres of the sampling, not minima.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Geometries with two atoms closer than this (Angstrom) are redrawn.
MIN_DISTANCE = 0.6
#: The tutorial's H2 labels, copied (not recomputed) into ``data/h2-tutorial.h5``.
H2_LABELS = "tests/data/h2_labels.npz"

Structure = tuple[tuple[str, tuple[float, float, float]], ...]


@dataclass(frozen=True)
class System:
    """One benchmark system.

    Attributes:
        name: file stem of ``data/<name>.h5``.
        probes: what the system is meant to probe (one sentence).
        equilibrium: (element symbol, (x, y, z) Angstrom) per atom; the sampling's centre.
        sampling: how the geometries are drawn, for people.
        sampler: ``sampler(system, n, rng) -> (n, atoms, 3)`` Angstrom; deterministic given rng.
        seed: seed of the sampler's ``numpy.random.default_rng``.
        low: low level of theory ("method/basis"), energies only.
        high: high level of theory, energies of every geometry.
        pretrained: "low" (pre-train on the low level's labels) or "ani-1x"
            (``levelup.pretrained("ani-1x")``; the low level is then only for delta baselines).
        n_geometries: geometries labelled at both levels.
        n_forces: the first ``n_forces`` geometries also get analytic high-level forces
            (Hartree/Angstrom); the others hold NaN forces.
        closest: smallest interatomic distance allowed, Angstrom (MIN_DISTANCE; the H2 scan,
            fixed by the tutorial, starts at 0.50).
    """

    name: str
    probes: str
    equilibrium: Structure
    sampling: str
    sampler: Callable[[System, int, np.random.Generator], np.ndarray]
    seed: int
    low: str
    high: str
    pretrained: str
    n_geometries: int
    n_forces: int = 0
    closest: float = MIN_DISTANCE

    @property
    def symbols(self) -> list[str]:
        """Element symbols, in atom order."""
        return [s for s, _ in self.equilibrium]

    @property
    def xyz0(self) -> np.ndarray:
        """Equilibrium coordinates, (atoms, 3) Angstrom."""
        return np.array([p for _, p in self.equilibrium], dtype=float)

    def geometries(self) -> np.ndarray:
        """The system's ``n_geometries`` geometries, (n, atoms, 3) Angstrom, from ``seed``."""
        xyz = self.sampler(self, self.n_geometries, np.random.default_rng(self.seed))
        if min_distance(xyz) < self.closest:
            raise AssertionError(f"{self.name}: a sampler returned atoms closer than {self.closest}")
        return xyz


# ------------------------------------------------------------------------------- geometry helpers
def min_distance(xyz: np.ndarray) -> float:
    """Smallest interatomic distance over a stack of geometries (..., atoms, 3), Angstrom."""
    xyz = np.asarray(xyz, dtype=float)
    d = np.linalg.norm(xyz[..., :, None, :] - xyz[..., None, :, :], axis=-1)
    i, j = np.triu_indices(xyz.shape[-2], k=1)
    return float(d[..., i, j].min())


def draw(n: int, rng: np.random.Generator, one: Callable[[np.random.Generator], np.ndarray]
         ) -> np.ndarray:
    """``n`` geometries from ``one(rng)``, redrawing any with atoms closer than MIN_DISTANCE."""
    out = []
    while len(out) < n:
        xyz = one(rng)
        if min_distance(xyz) >= MIN_DISTANCE:
            out.append(xyz)
    return np.stack(out)


def rotate_about(points: np.ndarray, origin: np.ndarray, axis: np.ndarray, angle: float
                 ) -> np.ndarray:
    """``points`` (k, 3) rotated by ``angle`` radians about the line through ``origin`` along
    ``axis`` (Rodrigues' formula); Angstrom in, Angstrom out."""
    k = axis / np.linalg.norm(axis)
    v = points - origin
    rotated = (v * np.cos(angle) + np.cross(k, v) * np.sin(angle)
               + np.outer(v @ k, k) * (1.0 - np.cos(angle)))
    return rotated + origin


def triatomic(r1: float, r2: float, angle_deg: float) -> np.ndarray:
    """Centre atom at the origin, atom 1 at ``r1`` on x, atom 2 at ``r2`` with the angle
    1-0-2 = ``angle_deg`` degrees in the xy plane; (3, 3) Angstrom, atom order (0, 1, 2)."""
    theta = np.radians(angle_deg)
    return np.array([[0.0, 0.0, 0.0], [r1, 0.0, 0.0], [r2 * np.cos(theta), r2 * np.sin(theta), 0.0]])


# ------------------------------------------------------------------------------------- samplers
def h2_scan(system: System, n: int, rng: np.random.Generator) -> np.ndarray:
    """The tutorial's scan: atom 0 at the origin, atom 1 on z at 0.50, 0.51, ... Angstrom."""
    xyz = np.zeros((n, 2, 3))
    xyz[:, 1, 2] = 0.5 + 0.01 * np.arange(n)
    return xyz


def water_stretch_bend(system: System, n: int, rng: np.random.Generator) -> np.ndarray:
    """O-H 0.80-1.40 Angstrom each, H-O-H 80-140 degrees, all uniform; atoms O, H, H."""
    return draw(n, rng, lambda g: triatomic(g.uniform(0.80, 1.40), g.uniform(0.80, 1.40),
                                            g.uniform(80.0, 140.0)))


def hcn_stretch_bend(system: System, n: int, rng: np.random.Generator) -> np.ndarray:
    """C-H 0.90-1.40 Angstrom, C-N 1.00-1.40 Angstrom, H-C-N 130-180 degrees, uniform; atoms
    C, N, H (the equilibrium's order)."""
    return draw(n, rng, lambda g: triatomic(g.uniform(1.00, 1.40), g.uniform(0.90, 1.40),
                                            g.uniform(130.0, 180.0)))


def nh3_umbrella(h: float, r: float = 1.012) -> np.ndarray:
    """NH3 with C3v symmetry: N at the origin, the three H at height ``-h`` Angstrom below it
    (h = 0: planar, D3h) and N-H = ``r`` Angstrom; atoms N, H, H, H."""
    rho = np.sqrt(r * r - h * h)
    phi = np.radians([90.0, 210.0, 330.0])
    hs = np.stack([rho * np.cos(phi), rho * np.sin(phi), np.full(3, -h)], axis=1)
    return np.vstack([np.zeros((1, 3)), hs])


#: Ammonia: clean umbrella-path points first (planar first), then distorted path points.
NH3_PATH_POINTS = 40
#: Umbrella heights sampled, Angstrom (equilibrium 0.39 at N-H 1.012 Angstrom; 0 is planar).
NH3_HEIGHTS = (0.0, 0.55)


def ammonia_inversion(system: System, n: int, rng: np.random.Generator) -> np.ndarray:
    """The first NH3_PATH_POINTS geometries: the umbrella path h = 0 (planar) ... 0.55 Angstrom
    evenly, N-H 1.012 Angstrom; the rest: a uniform h in that range, every N-H drawn from
    0.90-1.15 Angstrom, then every coordinate displaced uniformly by up to 0.08 Angstrom."""
    path = [nh3_umbrella(h) for h in np.linspace(*NH3_HEIGHTS, min(n, NH3_PATH_POINTS))]

    def one(g: np.random.Generator) -> np.ndarray:
        xyz = nh3_umbrella(g.uniform(*NH3_HEIGHTS))
        bonds = xyz[1:] / np.linalg.norm(xyz[1:], axis=1, keepdims=True)
        xyz[1:] = bonds * g.uniform(0.90, 1.15, size=(3, 1))
        return xyz + g.uniform(-0.08, 0.08, size=xyz.shape)
    rest = draw(n - len(path), rng, one) if n > len(path) else np.zeros((0, 4, 3))
    return np.concatenate([np.stack(path), rest])


def cartesian(amplitude: float) -> Callable[[System, int, np.random.Generator], np.ndarray]:
    """A sampler: every coordinate of the equilibrium displaced uniformly by up to
    ``amplitude`` Angstrom."""
    def sample(system: System, n: int, rng: np.random.Generator) -> np.ndarray:
        x0 = system.xyz0
        return draw(n, rng, lambda g: x0 + g.uniform(-amplitude, amplitude, size=x0.shape))
    sample.__doc__ = f"Cartesian displacements, uniform within +-{amplitude} Angstrom."
    return sample


def methanol_torsion(system: System, n: int, rng: np.random.Generator) -> np.ndarray:
    """The methyl group (atoms 2, 4, 5) rotated about C-O by a uniform 0-120 degrees (a full
    period of the three-fold torsion, eclipsed at 60), then every coordinate displaced uniformly
    by up to 0.10 Angstrom; atoms C, O, H(methyl), H(hydroxyl), H(methyl), H(methyl)."""
    x0 = system.xyz0
    methyl = [2, 4, 5]

    def one(g: np.random.Generator) -> np.ndarray:
        xyz = x0.copy()
        xyz[methyl] = rotate_about(x0[methyl], x0[0], x0[1] - x0[0], np.radians(g.uniform(0, 120)))
        return xyz + g.uniform(-0.10, 0.10, size=xyz.shape)
    return draw(n, rng, one)


# -------------------------------------------------------------------------------------- systems
HF = "HF/STO-3G"
CCSDT = "CCSD(T)/cc-pVDZ"

SYSTEMS: tuple[System, ...] = (
    System(
        name="h2-tutorial",
        probes="The MLatom tutorial itself: a 1-D dissociation curve where the low level (HF) fails "
               "qualitatively at long range, so transfer must correct a wrong shape.",
        equilibrium=(("H", (0.0, 0.0, 0.0)), ("H", (0.0, 0.0, 0.74))),
        sampling="scan r(H-H) = 0.50, 0.51, ..., 5.00 Angstrom (451 points; labels copied from "
                 f"{H2_LABELS}, computed by MLatom 3.25.5 / PySCF 2.14.0)",
        sampler=h2_scan, seed=0, low=HF, high="CISD/cc-pVDZ", pretrained="low",
        n_geometries=451, n_forces=0, closest=0.5),
    System(
        name="water",
        probes="The smallest polyatomic case: two stretches and a bend over a wide range, "
               "one heavy element.",
        equilibrium=(("O", (0.0, 0.0, 0.119262)), ("H", (0.0, 0.763239, -0.477047)),
                     ("H", (0.0, -0.763239, -0.477047))),
        sampling="O-H 0.80-1.40 Angstrom each, H-O-H 80-140 degrees, uniform",
        sampler=water_stretch_bend, seed=1201, low=HF, high=CCSDT, pretrained="low",
        n_geometries=300, n_forces=300),
    System(
        name="ammonia-inversion",
        probes="A large-amplitude motion: the umbrella inversion through the planar transition "
               "state, far from any harmonic well.",
        equilibrium=(("N", (0.0, 0.0, 0.116489)), ("H", (0.0, 0.939731, -0.271808)),
                     ("H", (0.813831, -0.469865, -0.271808)),
                     ("H", (-0.813831, -0.469865, -0.271808))),
        sampling=f"{NH3_PATH_POINTS} points on the umbrella path (H-plane height 0 (planar) to "
                 "0.55 Angstrom, N-H 1.012 Angstrom), then random heights in that range with "
                 "N-H 0.90-1.15 Angstrom and every coordinate displaced by up to 0.08 Angstrom",
        sampler=ammonia_inversion, seed=1203, low=HF, high=CCSDT, pretrained="low",
        n_geometries=300, n_forces=300),
    System(
        name="hcn",
        probes="A linear molecule with three elements and a triple bond: stretches and a bend away "
               "from linearity, with little data per element.",
        equilibrium=(("C", (0.0, 0.0, -0.511747)), ("N", (0.0, 0.0, 0.664461)),
                     ("H", (0.0, 0.0, -1.580746))),
        sampling="C-N 1.00-1.40 Angstrom, C-H 0.90-1.40 Angstrom, H-C-N 130-180 degrees, uniform",
        sampler=hcn_stretch_bend, seed=1202, low=HF, high=CCSDT, pretrained="low",
        n_geometries=300, n_forces=50),
    System(
        name="formamide-ani1x",
        probes="Transfer from a foundation model: ANI-1x (trained on wB97X/6-31G(d) for CHNO "
               "molecules) fine-tuned to CCSD(T) for a four-element amide.",
        equilibrium=(("C", (0.0, 0.0, 0.0)), ("N", (1.3620, 0.0, 0.0)), ("O", (-0.6900, 0.9964, 0.0)),
                     ("H", (-0.4253, -1.0166, 0.0)), ("H", (1.8478, 0.8764, 0.0)),
                     ("H", (1.8781, -0.8589, 0.0))),
        sampling="Cartesian displacements of every coordinate, uniform within +-0.10 Angstrom",
        sampler=cartesian(0.10), seed=1207, low=HF, high=CCSDT, pretrained="ani-1x",
        n_geometries=150, n_forces=0),
    System(
        name="formaldehyde-dft",
        probes="A good low level (DFT, B3LYP/6-31G*) instead of a poor one: how much transfer "
               "gains when the low level is already close in shape.",
        equilibrium=(("O", (0.0, 0.0, 0.683501)), ("C", (0.0, 0.0, -0.536614)),
                     ("H", (0.0, 0.934390, -1.124164)), ("H", (0.0, -0.934390, -1.124164))),
        sampling="Cartesian displacements of every coordinate, uniform within +-0.12 Angstrom",
        sampler=cartesian(0.12), seed=1206, low="B3LYP/6-31G*", high=CCSDT, pretrained="low",
        n_geometries=300, n_forces=20),
    System(
        name="methanol",
        probes="The largest low-level-pretrained system: six atoms, three elements and a "
               "torsion, where the low level's many points matter most.",
        equilibrium=(("C", (-0.047131, 0.664389, 0.0)), ("O", (-0.047131, -0.758551, 0.0)),
                     ("H", (-1.092995, 0.969785, 0.0)), ("H", (0.878534, -1.048458, 0.0)),
                     ("H", (0.437145, 1.080376, 0.891772)), ("H", (0.437145, 1.080376, -0.891772))),
        sampling="methyl rotated about C-O by 0-120 degrees (uniform), then every coordinate "
                 "displaced uniformly by up to 0.10 Angstrom",
        sampler=methanol_torsion, seed=1205, low=HF, high=CCSDT, pretrained="low",
        n_geometries=200, n_forces=10),
)

BY_NAME = {s.name: s for s in SYSTEMS}
