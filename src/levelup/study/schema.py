"""A whole transfer-learning study in one TOML file (``levelup run STUDY.toml``): what the file
may hold, read into frozen dataclasses and checked before anything runs.

A study file (every table but ``[geometries]``, ``[levels]`` and ``[selection]`` optional)::

    title = "H2: HF/STO-3G -> CISD/cc-pVDZ"
    seed = 0                                  # every random choice, unless a table sets its own
    compare = ["transfer", "scratch", "delta"]

    [geometries]                              # source = "h2_tutorial" | "scan" | "distort" | "file"
    source = "h2_tutorial"

    [levels]
    low = "HF/STO-3G"                         # the pre-training labels, on every geometry
    high = "CISD/cc-pVDZ"                     # the few expensive labels

    [selection]                               # which geometries get the high level
    method = "tutorial"                       # | "every" | "random" | "indices"

    [model]                                   # the ANI architecture (default ANI-1x networks)
    [train]                                   # TrainConfig keys shared by pretrain, scratch and
                                              # the neural delta
    [pretrain]                                # TrainConfig keys of the pre-training only
    [transfer]                                # recipe ("linear" default | "anchored" |
                                              # "force-anchor" | "plain" | "mlatom"), that
                                              # recipe's keys, and anchors
    [scratch]                                 # TrainConfig keys of the scratch baseline
    [delta]                                   # method ("kernel" | "neural"), base, and for
                                              # "neural" the TrainConfig keys of its network
    [output]                                  # folder, plots, formats, coordinate, regions, ylim

Relative paths in the file (structures, databases, the label cache, the output folder) are
relative to the folder of the study file. Any key levelup does not know is an error that lists
the valid keys of its table (:class:`~levelup.errors.ConfigError`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from levelup.errors import ConfigError
from levelup.train.loop import TrainConfig
from levelup.transfer.auto import AutoRecipe
from levelup.transfer.gradient import TransferRecipe
from levelup.transfer.linear import LinearRecipe
from levelup.transfer.recipe import RECIPES, recipe

#: The comparisons a study can make besides the pre-trained model.
COMPARISONS = ("transfer", "scratch", "delta")
#: How the delta comparison models high minus low level: "kernel" (levelup.transfer.kerneldelta, kernel
#: ridge regression on inverse distances, the default) or "neural" (an ANI network, fit_delta).
DELTA_METHODS = ("kernel", "neural")
#: Figures a study can draw; the first two need a scan coordinate.
PLOTS = ("energy_curves", "errors", "parity", "learning_curves")
#: Geometry sources and the keys each takes (besides ``source``).
SOURCES = {
    "h2_tutorial": (),
    "scan": ("structure", "index", "bond", "angle", "dihedral", "from", "to", "step", "move"),
    "distort": ("structure", "index", "n", "seed", "amplitude", "normal_modes", "temperature",
                "hessian_level", "hessian_model"),
    "file": ("path",),
}
#: Selection methods and the keys each takes (besides ``method``).
METHODS = {
    "tutorial": (),
    "every": ("step", "offset", "validation_every"),
    "random": ("count", "seed", "validation_every"),
    "indices": ("indices", "validation"),
}
#: TrainConfig fields a study file may set: the step cache replaces checkpoints and resuming.
TRAIN_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig)
                   if f.name not in ("checkpoint", "checkpoint_every", "resume"))
#: The fields each kind of transfer recipe takes in ``[transfer]`` (besides recipe, anchors).
RECIPE_KEYS = {kind: tuple(f.name for f in dataclasses.fields(kind))
               for kind in (LinearRecipe, TransferRecipe, AutoRecipe)}
TOP_KEYS = ("title", "seed", "compare", "geometries", "levels", "selection", "model", "train",
            "pretrain", "transfer", "scratch", "delta", "output")


# ---------------------------------------------------------------------------------- the schema


@dataclass(frozen=True)
class Geometries:
    """Where the study's geometries come from (``[geometries]``); distances in Angstrom, angles
    in degrees, atom indices from 0."""

    source: str  # "h2_tutorial": the tutorial's 451 H2 geometries (0.50-5.00 Angstrom);
    #              "scan": a structure along a bond/angle/dihedral; "distort": random or
    #              normal-mode distortions of a structure; "file": xyz/extxyz/.h5 database
    structure: Path | None = None  # scan, distort: one molecule (any file ASE reads, or .h5)
    index: int | None = None  # scan, distort: which molecule of a file of several
    coordinate: tuple[int, ...] = ()  # scan: 2 atoms (bond), 3 (angle) or 4 (dihedral)
    start: float = math.nan  # scan: first value ("from")
    stop: float = math.nan  # scan: last value ("to"), included when it falls on the grid
    step: float = math.nan  # scan: step
    move: tuple[int, ...] | None = None  # scan: the atoms that move (default: the fragment)
    n: int = 0  # distort: number of geometries
    seed: int = 0  # distort: seed (default: the study's)
    amplitude: float = 0.1  # distort: largest Cartesian displacement, Angstrom
    normal_modes: bool = False  # distort: along normal modes (Boltzmann sampling) instead
    temperature: float = 300.0  # distort: temperature of the normal-mode sampling, K
    hessian_level: str | None = None  # distort: level whose Hessian gives the normal modes
    #                                   (default HF/STO-3G)
    hessian_model: Path | None = None  # distort: or a model file whose Hessian gives them
    path: Path | None = None  # file: the database (xyz, extxyz, anything ASE reads, or .h5)


@dataclass(frozen=True)
class Levels:
    """The two levels of theory (``[levels]``) and how labels are made."""

    low: str  # labels of every geometry, for pre-training ("HF/STO-3G")
    high: str  # labels of the selected geometries only ("CISD/cc-pVDZ")
    workers: int | None = None  # parallel calculations (default: one per core)
    cache: Path | None = None  # label cache file (default: the shared user cache)
    high_on: str = "all"  # "all": the high level on every geometry too, to measure errors
    #                       everywhere; "selected": on the selected points only (errors against
    #                       the high level are then measured there only)


@dataclass(frozen=True)
class Selection:
    """Which geometries get the high level, and which of those validate (``[selection]``).

    Without validation points the fits watch their training loss (transfer) or split a share
    off (scratch, delta: ``validation_fraction``)."""

    method: str  # "tutorial": every 40th geometry, every 10th of those validates (MLatom's
    #              tutorial: 10 + 2 points of 451); "every": every `step`-th from `offset`;
    #              "random": `count` at random; "indices": explicit `indices` and `validation`
    step: int = 0  # every: take every step-th geometry
    offset: int = 0  # every: starting at this index
    count: int = 0  # random: how many geometries
    seed: int = 0  # random: seed of the draw (default: the study's)
    validation_every: int = 0  # every, random: of the chosen points (in geometry order) the
    #                            1st, (k+1)-th, ... validate; 0: none
    indices: tuple[int, ...] = ()  # indices: training geometries
    validation: tuple[int, ...] = ()  # indices: validation geometries


@dataclass(frozen=True)
class ModelSettings:
    """The ANI architecture of every model trained from scratch (``[model]``)."""

    elements: tuple[str | int, ...] = ()  # default: the elements of the geometries
    hidden: tuple[int, ...] | tuple[tuple[str, tuple[int, ...]], ...] | None = None  # hidden
    #                widths for every element, or per element symbol; default ANI-1x networks
    alpha: float = 0.1  # CELU alpha (ANI-1x)
    aev: str = "ani1x"  # AEV parameters: "ani1x" or "ani2x"

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
    coordinate: str | tuple[int, ...] = "auto"  # x axis and regions: "auto" (the scan
    #              coordinate; the H-H distance of h2_tutorial), "none", or 2/3/4 atom indices
    #              (a distance, angle or dihedral)
    regions: tuple[tuple[str, float, float], ...] = (("all", -math.inf, math.inf),)  # name,
    #              lo, hi along the coordinate (inclusive): errors are reported per region
    ylim: tuple[float, float] | None = None  # energy-curve y range, kcal/mol


@dataclass(frozen=True)
class Study:
    """A whole study: see the module docstring and :func:`read_study`."""

    title: str
    seed: int
    compare: tuple[str, ...]
    geometries: Geometries
    levels: Levels
    selection: Selection
    model: ModelSettings
    pretrain: TrainConfig
    transfer: LinearRecipe | TransferRecipe | AutoRecipe
    anchors: str  # ForceAnchor geometries of the transfer: "all" (every geometry) or "high"
    scratch: TrainConfig
    delta: TrainConfig  # the neural delta's training (delta_method = "neural")
    delta_base: str  # what the delta correction is added to: "model" (the pre-trained model)
    #                  or "labels" (low-level quantum chemistry)
    delta_method: str  # "kernel" (kernel ridge regression, the default) or "neural" (an ANI
    #                    network trained with fit_delta): DELTA_METHODS
    output: Output
    source: Path | None = None  # the study file
    text: str = field(default="", repr=False)  # the study file as read


# ---------------------------------------------------------------------------------- reading


def read_study(path: str | os.PathLike) -> Study:
    """Read and check a study file. Raises ConfigError for a missing or unreadable file, bad TOML,
    an unknown key (listing the valid ones) or a bad value."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read study file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"study file {path} is not UTF-8 text (is it a TOML file?)") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"study file {path} is not valid TOML: {exc}") from None
    study = parse_study(data, base=path.parent, name=path.stem)
    return dataclasses.replace(study, source=path, text=text)


def parse_study(data: Mapping[str, Any], *, base: str | os.PathLike = ".",
                name: str = "study") -> Study:
    """A :class:`Study` from the tables of a study file; relative paths resolve against
    ``base``; ``name`` names the default output folder (runs/<name>)."""
    base = Path(base)
    _check_keys(data, TOP_KEYS, "the study file's top level")
    seed = _int(data.get("seed", 0), "seed")
    title = _str(data.get("title", name), "title")
    compare = tuple(_str_list(data.get("compare", list(COMPARISONS)), "compare"))
    bad = [c for c in compare if c not in COMPARISONS]
    if bad or len(set(compare)) != len(compare):
        raise ConfigError(f"compare must list some of {list(COMPARISONS)} once each; got "
                          f"{list(compare)}")
    for required in ("geometries", "levels", "selection"):
        if required not in data:
            raise ConfigError(f"the study file has no [{required}] table; it needs [geometries], "
                              "[levels] and [selection]")
    geometries = _geometries(_table(data, "geometries"), base, seed)
    train = _table(data, "train")
    _check_keys(train, TRAIN_KEYS, "[train]")
    transfer, anchors = _transfer(_table(data, "transfer"), seed)
    delta_table, delta_base, delta_method = _delta(_table(data, "delta"))
    return Study(
        title=title, seed=seed, compare=compare, geometries=geometries,
        levels=_levels(_table(data, "levels"), base),
        selection=_selection(_table(data, "selection"), seed),
        model=_model(_table(data, "model")),
        pretrain=_train_config(train, _table(data, "pretrain"), "[pretrain]", seed),
        transfer=transfer, anchors=anchors,
        scratch=_train_config(train, _table(data, "scratch"), "[scratch]", seed),
        delta=_train_config(train, delta_table, "[delta]", seed),
        delta_base=delta_base, delta_method=delta_method,
        output=_output(_table(data, "output"), base, name, geometries),
    )


# ---------------------------------------------------------------------------------- tables


def _geometries(table: Mapping[str, Any], base: Path, seed: int) -> Geometries:
    source = table.get("source")
    if source not in SOURCES:
        raise ConfigError(f"[geometries] source must be one of {list(SOURCES)}; got {source!r}")
    _check_keys(table, ("source", *SOURCES[source]), f"[geometries] with source = {source!r}")
    where = "[geometries]"
    if source == "h2_tutorial":
        return Geometries(source)
    if source == "file":
        return Geometries(source, path=_path(_required(table, "path", where), base, "path"))
    structure = _path(_required(table, "structure", where), base, "structure")
    index = _int(table["index"], "index") if "index" in table else None
    if source == "scan":
        given = [k for k in ("bond", "angle", "dihedral") if k in table]
        if len(given) != 1:
            raise ConfigError("[geometries] with source = 'scan' needs exactly one of bond = [i, j], "
                              f"angle = [i, j, k] or dihedral = [i, j, k, l]; got {given or 'none'}")
        atoms = tuple(_int_list(table[given[0]], given[0]))
        if len(atoms) != {"bond": 2, "angle": 3, "dihedral": 4}[given[0]]:
            raise ConfigError(f"[geometries] {given[0]} needs "
                              f"{ {'bond': 2, 'angle': 3, 'dihedral': 4}[given[0]]} atom indices; "
                              f"got {list(atoms)}")
        move = tuple(_int_list(table["move"], "move")) if "move" in table else None
        return Geometries(source, structure=structure, index=index, coordinate=atoms,
                          start=_float(_required(table, "from", where), "from"),
                          stop=_float(_required(table, "to", where), "to"),
                          step=_float(_required(table, "step", where), "step"), move=move)
    n = _int(_required(table, "n", where), "n")
    if n < 1:
        raise ConfigError(f"[geometries] n must be >= 1; got {n}")
    normal = _bool(table.get("normal_modes", False), "normal_modes")
    if normal and "amplitude" in table:
        raise ConfigError("[geometries] amplitude sets Cartesian distortions; with normal_modes = "
                          "true the size follows from temperature")
    if not normal and ("hessian_level" in table or "hessian_model" in table):
        raise ConfigError("[geometries] hessian_level and hessian_model choose the Hessian of "
                          "normal_modes = true; add that, or leave them out")
    if "hessian_level" in table and "hessian_model" in table:
        raise ConfigError("[geometries] give hessian_level or hessian_model, not both")
    return Geometries(
        source, structure=structure, index=index, n=n,
        seed=_int(table.get("seed", seed), "seed"),
        amplitude=_float(table.get("amplitude", 0.1), "amplitude"), normal_modes=normal,
        temperature=_float(table.get("temperature", 300.0), "temperature"),
        hessian_level=_str(table["hessian_level"], "hessian_level") if "hessian_level" in table
        else None,
        hessian_model=_path(table["hessian_model"], base, "hessian_model")
        if "hessian_model" in table else None)


def _levels(table: Mapping[str, Any], base: Path) -> Levels:
    _check_keys(table, ("low", "high", "workers", "cache", "high_on"), "[levels]")
    workers = table.get("workers")
    high_on = table.get("high_on", "all")
    if high_on not in ("all", "selected"):
        raise ConfigError(f"[levels] high_on must be 'all' (label every geometry at the high "
                          f"level, to measure errors everywhere) or 'selected'; got {high_on!r}")
    return Levels(low=_str(_required(table, "low", "[levels]"), "low"),
                  high=_str(_required(table, "high", "[levels]"), "high"),
                  workers=None if workers is None else _int(workers, "workers"),
                  cache=_path(table["cache"], base, "cache") if "cache" in table else None,
                  high_on=high_on)


def _selection(table: Mapping[str, Any], seed: int) -> Selection:
    method = table.get("method")
    if method not in METHODS:
        raise ConfigError(f"[selection] method must be one of {list(METHODS)}; got {method!r}")
    _check_keys(table, ("method", *METHODS[method]), f"[selection] with method = {method!r}")
    where = "[selection]"
    every = _int(table.get("validation_every", 0), "validation_every")
    if every < 0:
        raise ConfigError(f"[selection] validation_every must be >= 0; got {every}")
    if method == "every":
        step = _int(_required(table, "step", where), "step")
        offset = _int(table.get("offset", 0), "offset")
        if step < 1 or offset < 0:
            raise ConfigError(f"[selection] needs step >= 1 and offset >= 0; got step {step}, "
                              f"offset {offset}")
        return Selection(method, step=step, offset=offset, validation_every=every)
    if method == "random":
        count = _int(_required(table, "count", where), "count")
        if count < 1:
            raise ConfigError(f"[selection] count must be >= 1; got {count}")
        return Selection(method, count=count, seed=_int(table.get("seed", seed), "seed"),
                         validation_every=every)
    if method == "indices":
        train = tuple(_int_list(_required(table, "indices", where), "indices"))
        val = tuple(_int_list(table.get("validation", []), "validation"))
        if not train or set(train) & set(val) or len(set(train)) != len(train):
            raise ConfigError(f"[selection] indices must be distinct, at least one, and not in "
                              f"validation; got indices {list(train)}, validation {list(val)}")
        return Selection(method, indices=train, validation=val)
    return Selection(method)


def _model(table: Mapping[str, Any]) -> ModelSettings:
    _check_keys(table, ("elements", "hidden", "alpha", "aev"), "[model]")
    elements = table.get("elements", [])
    if not isinstance(elements, list) or not all(isinstance(e, (str, int)) and not isinstance(e, bool)
                                                 for e in elements):
        raise ConfigError(f"[model] elements must be a list of symbols or atomic numbers; got "
                          f"{elements!r}")
    hidden: Any = table.get("hidden")
    if isinstance(hidden, dict):
        hidden = tuple((str(k), tuple(_int_list(v, f"hidden.{k}"))) for k, v in hidden.items())
    elif hidden is not None:
        hidden = tuple(_int_list(hidden, "hidden"))
    aev = table.get("aev", "ani1x")
    if aev not in ("ani1x", "ani2x"):
        raise ConfigError(f"[model] aev must be 'ani1x' or 'ani2x'; got {aev!r}")
    return ModelSettings(elements=tuple(elements), hidden=hidden,
                         alpha=_float(table.get("alpha", 0.1), "alpha"), aev=aev)


def _train_config(shared: Mapping[str, Any], table: Mapping[str, Any], where: str, seed: int,
                  extra: Sequence[str] = ()) -> TrainConfig:
    _check_keys(table, (*TRAIN_KEYS, *extra), where)
    try:
        return TrainConfig.from_dict({"seed": seed, **shared, **table})
    except ConfigError as exc:
        raise ConfigError(f"{where} (with [train]): {exc}") from None


def _delta(table: Mapping[str, Any]) -> tuple[dict[str, Any], str, str]:
    """([delta]'s TrainConfig keys, base, method)."""
    _check_keys(table, ("method", "base", *TRAIN_KEYS), "[delta]")
    rest = dict(table)
    base, method = rest.pop("base", "model"), rest.pop("method", "kernel")
    if base not in ("model", "labels"):
        raise ConfigError(f"[delta] base must be 'model' (the pre-trained model) or 'labels' "
                          f"(low-level quantum chemistry); got {base!r}")
    if method not in DELTA_METHODS:
        raise ConfigError(f"[delta] method must be one of {list(DELTA_METHODS)} ('kernel': kernel "
                          f"ridge regression, 'neural': an ANI network); got {method!r}")
    if method == "kernel" and rest:
        raise ConfigError(f"[delta] {', '.join(sorted(rest))}: training settings of the neural "
                          f"delta model, but method = 'kernel' (the default) chooses its settings "
                          f"by cross-validation; set method = 'neural' or remove them")
    return rest, base, method


def _transfer(table: Mapping[str, Any], seed: int) -> tuple[Any, str]:
    name = _str(table.get("recipe", "linear"), "recipe")
    if name not in RECIPES:
        raise ConfigError(f"[transfer] recipe must be one of {', '.join(RECIPES)}; got {name!r}")
    kind = {"linear": LinearRecipe, "auto": AutoRecipe}.get(name, TransferRecipe)
    _check_keys(table, (*RECIPE_KEYS[kind], "recipe", "anchors"), f"[transfer] (recipe {name!r})")
    values = {k: v for k, v in table.items() if k not in ("anchors", "recipe")}
    anchors = table.get("anchors", "all")
    if anchors not in ("all", "high"):
        raise ConfigError(f"[transfer] anchors must be 'all' (every geometry of the study) or "
                          f"'high' (the high-level points only); got {anchors!r}")
    for f in dataclasses.fields(kind):
        if f.name not in values:
            continue
        value = values[f.name]
        if f.type == "tuple[int, ...]":
            values[f.name] = tuple(_int_list(value, f.name))
        elif f.type == "tuple[float, ...]":
            if not isinstance(value, list):
                raise ConfigError(f"[transfer] {f.name} must be a list of numbers (the values "
                                  f"the cross-validation tries); got {value!r}")
            values[f.name] = tuple(_float(v, f.name) for v in value)
        elif f.type == "tuple[Any, ...]":
            values[f.name] = tuple(_str_list(value, f.name))
        elif f.type == "float":
            values[f.name] = _float(value, f.name)
        elif f.type == "int":
            values[f.name] = _int(value, f.name)
        elif f.type in ("str", "str | None"):
            values[f.name] = _str(value, f.name)
    try:
        return recipe(name, **{"seed": seed, **values}), anchors
    except ConfigError as exc:
        raise ConfigError(f"[transfer]: {exc}") from None


def _output(table: Mapping[str, Any], base: Path, name: str, geometries: Geometries) -> Output:
    _check_keys(table, ("folder", "plots", "formats", "coordinate", "regions", "ylim"), "[output]")
    folder = _path(table.get("folder", f"runs/{name}"), base, "folder")
    plots = tuple(_str_list(table.get("plots", list(PLOTS)), "plots"))
    bad = [p for p in plots if p not in PLOTS]
    if bad:
        raise ConfigError(f"[output] plots: unknown {bad}; choose among {list(PLOTS)}")
    formats = tuple(_str_list(table.get("formats", ["png", "svg"]), "formats"))
    if not formats:
        raise ConfigError("[output] formats must name at least one figure format, e.g. ['png']")
    coordinate: Any = table.get("coordinate", "auto")
    if isinstance(coordinate, list):
        coordinate = tuple(_int_list(coordinate, "coordinate"))
        if not 2 <= len(coordinate) <= 4:
            raise ConfigError(f"[output] coordinate needs 2 (distance), 3 (angle) or 4 (dihedral) "
                              f"atom indices; got {list(coordinate)}")
    elif coordinate not in ("auto", "none"):
        raise ConfigError(f"[output] coordinate must be 'auto', 'none' or a list of 2-4 atom "
                          f"indices; got {coordinate!r}")
    regions_table = table.get("regions", {"all": [-math.inf, math.inf]})
    if not isinstance(regions_table, dict) or not regions_table:
        raise ConfigError("[output] regions must be a table of name = [lo, hi], e.g. "
                          "regions = { all = [-inf, inf], bound = [0.5, 2.5] }")
    regions = []
    for region, bounds in regions_table.items():
        lo, hi = _pair(bounds, f"regions.{region}")
        if not lo <= hi:
            raise ConfigError(f"[output] region {region!r} needs lo <= hi; got [{lo}, {hi}]")
        regions.append((str(region), lo, hi))
    no_coordinate = coordinate == "none" or (coordinate == "auto" and geometries.source not in
                                             ("h2_tutorial", "scan"))
    if no_coordinate and any(math.isfinite(lo) or math.isfinite(hi) for _, lo, hi in regions):
        raise ConfigError("[output] regions along a coordinate need one: set coordinate = [i, j] "
                          "(a distance; 3 atoms an angle, 4 a dihedral) or keep only "
                          "all = [-inf, inf]")
    ylim = _pair(table["ylim"], "ylim") if "ylim" in table else None
    return Output(folder=folder, plots=plots, formats=formats, coordinate=coordinate,
                  regions=tuple(regions), ylim=ylim)


# ---------------------------------------------------------------------------------- values


def _check_keys(table: Mapping[str, Any], valid: Sequence[str], where: str) -> None:
    unknown = [k for k in table if k not in valid]
    if unknown:
        raise ConfigError(f"{where}: unknown key{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(repr(k) for k in unknown)}; valid keys: "
                          f"{', '.join(valid) if valid else 'none'}")


def _table(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a table ([{name}] with keys under it); got {value!r}")
    return value


def _required(table: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in table:
        raise ConfigError(f"{where} needs {key} = ...")
    return table[key]


def _int(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{name} must be an integer; got {value!r}")
    return value


def _float(value: Any, name: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ConfigError(f"{name} must be a number; got {value!r}")
    return float(value)


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false; got {value!r}")
    return value


def _str(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be a non-empty string; got {value!r}")
    return value


def _int_list(value: Any, name: str) -> list[int]:
    if not isinstance(value, list):
        raise ConfigError(f"{name} must be a list of integers; got {value!r}")
    return [_int(v, name) for v in value]


def _str_list(value: Any, name: str) -> list[str]:
    if not isinstance(value, list):
        raise ConfigError(f"{name} must be a list of strings; got {value!r}")
    return [_str(v, name) for v in value]


def _pair(value: Any, name: str) -> tuple[float, float]:
    if not isinstance(value, list) or len(value) != 2:
        raise ConfigError(f"{name} must be [lo, hi]; got {value!r}")
    return _float(value[0], name), _float(value[1], name)


def _path(value: Any, base: Path, name: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be a file or folder name; got {value!r}")
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


__all__ = ["COMPARISONS", "DELTA_METHODS", "PLOTS", "Geometries", "Levels", "ModelSettings", "Output",
           "Selection", "Study", "parse_study", "read_study"]
