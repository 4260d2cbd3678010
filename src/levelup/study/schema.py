"""A whole transfer-learning study in one TOML file (``levelup run STUDY.toml``): what the file
may hold, read into frozen dataclasses and checked before anything runs.

A study file (every table but ``[geometries]``, ``[levels]`` and ``[selection]`` optional)::

    title = "H2: HF/STO-3G -> CISD/cc-pVDZ"
    seed = 0                                  # every random choice, unless a table sets its own
    compare = ["transfer", "scratch", "delta"]

    [geometries]                              # source = "h2_tutorial" | "scan" | "distort" | "md"
                                              #          | "file"
    source = "h2_tutorial"

    [levels]
    low = "HF/STO-3G"                         # the pre-training labels, on every geometry
    high = "CISD/cc-pVDZ"                     # the few expensive labels
    forces = "none"                           # | "low" | "high" | "both": labels with forces

    [selection]                               # which geometries get the high level
    method = "tutorial"                       # | "every" | "random" | "indices" | "fps" | "design"
    #                                           | "committee"

    [model]                                   # the ANI architecture (default ANI-1x networks)
    [train]                                   # TrainConfig keys shared by pretrain, scratch and
                                              # the neural delta
    [pretrain]                                # TrainConfig keys of the pre-training only
    [transfer]                                # recipe ("linear" default | "anchored" |
                                              # "force-anchor" | "plain" | "mlatom" | "auto" |
                                              # "gp": needs [levels] forces "high"/"both", one
                                              # molecule), that recipe's keys, and anchors
    [scratch]                                 # TrainConfig keys of the scratch baseline
    [delta]                                   # method ("kernel" | "neural"), base, and for
                                              # "neural" the TrainConfig keys of its network

    [properties]                              # what a chemist checks on every model, beside the
                                              # high level computed directly (the reference) and
                                              # the low level ("no transfer"); no table, no step
    structures = ["water.xyz"]                # (or structure = "water.xyz"): optimised bond
                                              # lengths and angles, harmonic wavenumbers
    optimize = true                           # optimise on each source first
    frequencies = true
    fmax = 1e-4                               # the optimisations' threshold, Hartree/Angstrom
    energies = { minimum = "nh3.xyz", saddle = "nh3_planar.xyz" }  # energy differences
    constraints = { saddle = "planar" }       # held while optimising that structure
    reference = "minimum"                     # the zero of the energies (kcal/mol)

    [output]                                  # folder, plots, formats, coordinate, regions, ylim

Relative paths in the file (structures, databases, the label cache, the output folder) are
relative to the folder of the study file. Any key levelup does not know is an error that lists
the valid keys of its table (:class:`~levelup.errors.ConfigError`). This module holds what a
study is (the dataclasses, whose type hints say what each key takes); :mod:`levelup.study.reader`
reads a file into them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from levelup.train.config import TrainConfig
from levelup.transfer.auto import AutoRecipe
from levelup.transfer.gpcorrection import GPRecipe
from levelup.transfer.linear import LinearRecipe
from levelup.transfer.recipe import TransferRecipe

#: The comparisons a study can make besides the pre-trained model.
COMPARISONS = ("transfer", "tutorial-protocol", "scratch", "delta")
#: What a study compares when it does not say: the tutorial protocol (MLatom's, with its own
#: pre-training) is asked for by name.
DEFAULT_COMPARE = ("transfer", "scratch", "delta")
#: How the delta comparison models high minus low level: "kernel" (levelup.transfer.kerneldelta, kernel
#: ridge regression on inverse distances, the default) or "neural" (an ANI network, fit_delta).
DeltaMethod = Literal["kernel", "neural"]
DELTA_METHODS: tuple[str, ...] = get_args(DeltaMethod)
#: Figures a study can draw; the first two need a scan coordinate.
PLOTS = ("energy_curves", "errors", "parity", "learning_curves")
#: Where geometries come from (``[geometries] source``).
Source = Literal["h2_tutorial", "scan", "distort", "md", "file"]
#: Geometry sources and the keys each takes (besides ``source``).
SOURCES = {
    "h2_tutorial": (),
    "scan": ("structure", "index", "bond", "angle", "dihedral", "from", "to", "step", "move"),
    "distort": ("structure", "index", "n", "seed", "amplitude", "normal_modes", "temperature",
                "hessian_level", "hessian_model"),
    "md": ("structure", "index", "model", "level", "temperature", "steps", "every", "timestep",
           "friction", "seed", "equilibrate"),
    "file": ("path",),
}
#: How the high-level geometries are chosen (``[selection] method``).
Method = Literal["tutorial", "every", "random", "indices", "fps", "design", "committee"]
#: Selection methods and the keys each takes (besides ``method``).
METHODS = {
    "tutorial": (),
    "every": ("step", "offset", "validation_every"),
    "random": ("count", "seed", "validation_every"),
    "indices": ("indices", "validation"),
    "fps": ("count", "validation_every"),
    "design": ("count", "focus"),
    "committee": ("count", "seed", "batch", "target", "members"),
}
#: The tables (and top-level keys) of a study file.
TOP_KEYS = ("title", "seed", "compare", "geometries", "levels", "selection", "model", "train",
            "pretrain", "transfer", "scratch", "delta", "properties", "output")
#: Which labels come with analytic forces (``[levels] forces``).
Forces = Literal["none", "low", "high", "both"]


@dataclass(frozen=True)
class Geometries:
    """Where the study's geometries come from (``[geometries]``); distances in Angstrom, angles
    in degrees, atom indices from 0."""

    source: Source  # "h2_tutorial": the tutorial's 451 H2 geometries (0.50-5.00 Angstrom);
    #              "scan": a structure along a bond/angle/dihedral; "distort": random or
    #              normal-mode distortions of a structure; "md": frames of Langevin dynamics
    #              from a structure (levelup.explore); "file": xyz/extxyz/.h5 database
    structure: Path | None = None  # scan, distort, md: one molecule (any file ASE reads, or .h5)
    index: int | None = None  # scan, distort, md: which molecule of a file of several
    coordinate: tuple[int, ...] = ()  # scan: 2 atoms (bond), 3 (angle) or 4 (dihedral)
    start: float = math.nan  # scan: first value ("from")
    stop: float = math.nan  # scan: last value ("to"), included when it falls on the grid
    step: float = math.nan  # scan: step
    move: tuple[int, ...] | None = None  # scan: the atoms that move (default: the fragment)
    n: int = 0  # distort: number of geometries
    seed: int = 0  # distort, md: seed (default: the study's)
    amplitude: float = 0.1  # distort: largest Cartesian displacement, Angstrom
    normal_modes: bool = False  # distort: along normal modes (Boltzmann sampling) instead
    temperature: float = 300.0  # distort: temperature of the normal-mode sampling, K; md (required
    #                             there): the thermostat's
    hessian_level: str | None = None  # distort: level whose Hessian gives the normal modes
    #                                   (default HF/STO-3G)
    hessian_model: Path | None = None  # distort: or a model file whose Hessian gives them
    model: Path | None = None  # md: the model file whose forces drive the dynamics
    level: str | None = None  # md: or a level of theory with analytic gradients ("HF/STO-3G":
    #                           one PySCF calculation per step)
    steps: int = 0  # md: production steps (after equilibrate)
    every: int = 0  # md: keep one frame every `every` steps (steps // every frames)
    timestep: float = 0.5  # md: fs (0.5 resolves X-H vibrations)
    friction: float = 0.01  # md: Langevin friction, 1/fs (velocities forget in ~100 fs)
    equilibrate: int = 0  # md: steps run first and not kept
    path: Path | None = None  # file: the database (xyz, extxyz, anything ASE reads, or .h5)


@dataclass(frozen=True)
class Levels:
    """The two levels of theory (``[levels]``) and how labels are made."""

    low: str  # labels of every geometry, for pre-training ("HF/STO-3G")
    high: str  # labels of the selected geometries only ("CISD/cc-pVDZ")
    workers: int | None = None  # parallel calculations (default: one per core)
    cache: Path | None = None  # label cache file (default: the shared user cache)
    high_on: Literal["all", "selected"] = "all"  # "all": the high level on every geometry
    #          too, to measure errors everywhere; "selected": on the selected points only
    #          (errors against the high level are then measured there only)
    forces: Forces = "none"  # labels with analytic forces: "low" (pre-training fits them with
    #          [pretrain] force_weight), "high" (the linear transfer fits them at the high-level
    #          points; [scratch] with force_weight too), "both", or "none" (energies only)

    def with_forces(self, which: str) -> bool:
        """Whether the ``which`` ("low" or "high") labels come with forces."""
        return self.forces in (which, "both")


@dataclass(frozen=True)
class Selection:
    """Which geometries get the high level, and which of those validate (``[selection]``).

    Without validation points the fits watch their training loss (transfer) or split a share
    off (scratch, delta: ``validation_fraction``)."""

    method: Method  # "tutorial": every 40th geometry, every 10th of those validates (MLatom's
    #              tutorial: 10 + 2 points of 451); "every": every `step`-th from `offset`;
    #              "random": `count` at random; "indices": explicit `indices` and `validation`;
    #              "fps": `count` farthest points in AEV space; "design": `count` by Bayesian
    #              design for the pre-trained model's transfer (levelup.select; no validation
    #              points); "committee": `count` chosen by query by committee on the
    #              pre-trained model (levelup.select), `batch` a round until `target`
    #              (kcal/mol) or the budget; no validation points
    step: int = 0  # every: take every step-th geometry
    offset: int = 0  # every: starting at this index
    count: int = 0  # random, fps, design, committee: how many geometries (the high-level budget)
    seed: int = 0  # random, committee: seed of the draws (default: the study's)
    validation_every: int = 0  # every, random: of the chosen points (in geometry order) the
    #                            1st, (k+1)-th, ... validate; 0: none
    indices: tuple[int, ...] = ()  # indices: training geometries
    validation: tuple[int, ...] = ()  # indices: validation geometries
    batch: int = 0  # committee: geometries labelled per round (0: count // 4)
    target: float = 0.0  # committee: stop once the predicted error is at most this, kcal/mol
    #                      (0: spend the whole budget)
    members: int = 4  # committee: bootstrap transfers of the pre-trained model
    focus: str = "energies"  # design: "energies" also pins the energy differences of
    #                          [properties] energies (a barrier) when it names two or more
    #                          structures (levelup.selection.targets); "pool": the pool alone


@dataclass(frozen=True)
class ModelSettings:
    """The ANI architecture of every model trained from scratch (``[model]``)."""

    elements: tuple[str | int, ...] = ()  # default: the elements of the geometries
    hidden: tuple[int, ...] | tuple[tuple[str, tuple[int, ...]], ...] | None = None  # hidden
    #                widths for every element, or per element symbol; default ANI-1x networks
    alpha: float = 0.1  # CELU alpha (ANI-1x)
    aev: Literal["ani1x", "ani2x"] = "ani1x"  # AEV parameters: "ani1x" or "ani2x"

    def hidden_argument(self) -> Any:
        """``hidden`` as :class:`~levelup.model.ani.ANIModel` takes it."""
        if self.hidden and isinstance(self.hidden[0], tuple):
            return {k: v for k, v in self.hidden}
        return self.hidden


@dataclass(frozen=True)
class Output:
    """What the run folder holds (``[output]``)."""

    folder: Path  # the run folder (default: runs/<study file name> beside the study file)
    plots: tuple[str, ...] = PLOTS  # figures to draw (those that need a coordinate are skipped
    #                                 without one)
    formats: tuple[str, ...] = ("png", "svg")  # figure formats; the first goes in the report
    coordinate: Literal["auto", "none"] | tuple[int, ...] = "auto"  # x axis and regions: "auto" (the scan
    #              coordinate; the H-H distance of h2_tutorial), "none", or 2/3/4 atom indices
    #              (a distance, angle or dihedral)
    regions: tuple[tuple[str, float, float], ...] = (("all", -math.inf, math.inf),)  # name,
    #              lo, hi along the coordinate (inclusive): errors are reported per region
    ylim: tuple[float, float] | None = None  # energy-curve y range, kcal/mol


@dataclass(frozen=True)
class Properties:
    """What chemists check on a potential (``[properties]``), computed on every model the study
    makes that is a potential, on the high level directly (the reference) and on the low level
    (the "no transfer" row). Angstrom, degrees, Hartree/Angstrom, cm^-1, kcal/mol."""

    structures: tuple[Path, ...] = ()  # one molecule per file (relative to the study file):
    #              its optimised bond lengths and angles and harmonic wavenumbers; with no
    #              structures and no energies there is no properties step
    optimize: bool = True  # optimise every structure on every source first (else as given)
    frequencies: bool = True  # harmonic wavenumbers of `structures` (imaginary ones negative)
    fmax: float = 1e-4  # optimisation threshold on the largest atomic force, Hartree/Angstrom
    steps: int = 200  # most optimisation steps per structure
    energies: tuple[tuple[str, Path], ...] = ()  # name = structure file: energies relative to
    #              `reference` (a barrier, a reaction energy), each structure optimised first
    constraints: tuple[tuple[str, tuple[str, ...]], ...] = ()  # name = spec or [specs] held
    #              while that structure of `energies` is optimised ("planar",
    #              "dihedral:0,1,2,3=180"; levelup.properties.constraints)
    reference: str | None = None  # the name in `energies` whose energy is the zero (default:
    #                               the first)

    @property
    def wanted(self) -> bool:
        """Whether the study asks for any property (else the step is left out)."""
        return bool(self.structures or self.energies)


@dataclass(frozen=True)
class Study:
    """A whole study: see the module docstring and :func:`levelup.study.reader.read_study`."""

    title: str
    seed: int
    compare: tuple[str, ...]
    geometries: Geometries
    levels: Levels
    selection: Selection
    model: ModelSettings
    pretrain: TrainConfig
    transfer: LinearRecipe | TransferRecipe | AutoRecipe | GPRecipe
    anchors: Literal["all", "high"]  # ForceAnchor geometries of the transfer: "all" (every
    #                                  geometry) or "high"
    scratch: TrainConfig
    delta: TrainConfig  # the neural delta's training (delta_method = "neural")
    delta_base: Literal["model", "labels"]  # what the delta correction is added to: "model"
    #                  (the pre-trained model) or "labels" (low-level quantum chemistry)
    delta_method: DeltaMethod  # "kernel" (kernel ridge regression, the default) or "neural" (an ANI
    #                    network trained with fit_delta): DELTA_METHODS
    output: Output
    properties: Properties = field(default_factory=Properties)  # [properties]
    source: Path | None = None  # the study file
    text: str = field(default="", repr=False)  # the study file as read


__all__ = ["COMPARISONS", "DEFAULT_COMPARE", "DELTA_METHODS", "METHODS", "PLOTS", "SOURCES",
           "TOP_KEYS", "Forces", "Geometries", "Levels", "ModelSettings", "Output", "Properties",
           "Selection", "Study"]
