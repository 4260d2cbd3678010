"""Reading a study file (:mod:`levelup.study.schema`) into a checked :class:`Study`.

Each table is read by the type hints of its dataclass (:func:`levelup.configload.load`): an
unknown key is an error that lists the valid keys of its table, a value of the wrong type an
error that says what the key takes. The checks that span keys (a scan needs exactly one of
bond, angle or dihedral; regions need a coordinate) follow. Relative paths resolve against the
folder of the study file.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from levelup.configload import check_keys, convert, field_types, load, read_toml
from levelup.errors import ConfigError
from levelup.study.propertytable import read_properties
from levelup.study.schema import (
    COMPARISONS,
    DEFAULT_COMPARE,
    METHODS,
    PLOTS,
    SOURCES,
    TOP_KEYS,
    Geometries,
    Levels,
    Method,
    ModelSettings,
    Output,
    Selection,
    Source,
    Study,
)
from levelup.train.config import TrainConfig
from levelup.transfer.recipe import (
    RECIPES,
    AutoRecipe,
    GPRecipe,
    LinearRecipe,
    TransferRecipe,
    recipe,
)

#: TrainConfig fields a study file may set: the step cache replaces checkpoints and resuming.
TRAIN_KEYS = tuple(name for name in field_types(TrainConfig)
                   if name not in ("checkpoint", "checkpoint_every", "resume"))
#: The fields each kind of transfer recipe takes in ``[transfer]`` (besides recipe, anchors).
RECIPE_KEYS = {kind: tuple(field_types(kind))
               for kind in (LinearRecipe, TransferRecipe, AutoRecipe, GPRecipe)}
#: What some keys take, where the words of their types say too little.
WORDS = {
    "high_on": "'all' (label every geometry at the high level, to measure errors everywhere) "
               "or 'selected'",
    "elements": "a list of symbols or atomic numbers",
    "hidden": "a list of hidden widths or a table of element = [widths]",
    "coordinate": "'auto', 'none' or a list of 2-4 atom indices",
    "ylim": "[lo, hi]",
    "anchors": "'all' (every geometry of the study) or 'high' (the high-level points only)",
}
_DELTA_BASE = "'model' (the pre-trained model) or 'labels' (low-level quantum chemistry)"
_DELTA_METHOD = ("one of ['kernel', 'neural'] ('kernel': kernel ridge regression, 'neural': an "
                 "ANI network)")
_ATOMS = {"bond": 2, "angle": 3, "dihedral": 4}


def read_study(path: str | os.PathLike) -> Study:
    """Read and check a study file. Raises ConfigError for a missing or unreadable file, bad TOML,
    an unknown key (listing the valid ones) or a bad value."""
    path = Path(path)
    text, data = read_toml(path, "study file")
    study = parse_study(data, base=path.parent, name=path.stem)
    return dataclasses.replace(study, source=path, text=text)


def parse_study(data: Mapping[str, Any], *, base: str | os.PathLike = ".",
                name: str = "study") -> Study:
    """A :class:`Study` from the tables of a study file; relative paths resolve against
    ``base``; ``name`` names the default output folder (runs/<name>)."""
    base = Path(base)
    check_keys(data, TOP_KEYS, "the study file's top level")
    seed = convert(data.get("seed", 0), int, "seed")
    title = convert(data.get("title", name), str, "title")
    compare = convert(data.get("compare", list(DEFAULT_COMPARE)), tuple[str, ...], "compare")
    if any(c not in COMPARISONS for c in compare) or len(set(compare)) != len(compare):
        raise ConfigError(f"compare must list some of {list(COMPARISONS)} once each; got "
                          f"{list(compare)}")
    for required in ("geometries", "levels", "selection"):
        if required not in data:
            raise ConfigError(f"the study file has no [{required}] table; it needs [geometries], "
                              "[levels] and [selection]")
    geometries = _geometries(_table(data, "geometries"), base, seed)
    train = _table(data, "train")
    check_keys(train, TRAIN_KEYS, "[train]")
    transfer, anchors = _transfer(_table(data, "transfer"), seed)
    delta_table, delta_base, delta_method = _delta(_table(data, "delta"))
    study = Study(
        title=title, seed=seed, compare=compare, geometries=geometries,
        levels=_resolved(_load(Levels, _table(data, "levels"), "[levels]"), base),
        selection=_selection(_table(data, "selection"), seed),
        model=_model(_table(data, "model")),
        pretrain=_train_config(train, _table(data, "pretrain"), "[pretrain]", seed),
        transfer=transfer, anchors=anchors,
        scratch=_train_config(train, _table(data, "scratch"), "[scratch]", seed),
        delta=_train_config(train, delta_table, "[delta]", seed),
        delta_base=delta_base, delta_method=delta_method,
        output=_output(_table(data, "output"), base, name, geometries),
        properties=read_properties(_table(data, "properties"), base),
    )
    _check_forces(study)
    return study


# ---------------------------------------------------------------------------------- tables


def _load(cls: type, table: Mapping[str, Any], where: str, **options: Any) -> Any:
    """:func:`levelup.configload.load` naming keys as ``[table] key``."""
    return load(cls, table, where=where, name=lambda key: f"{where} {key}", words=WORDS, **options)


def _resolved(settings: Any, base: Path) -> Any:
    """``settings`` with every relative Path field made relative to ``base``."""
    paths = {f.name: Path(value).expanduser() for f in dataclasses.fields(settings)
             if isinstance(value := getattr(settings, f.name), Path)}
    return dataclasses.replace(settings, **{k: p if p.is_absolute() else base / p
                                            for k, p in paths.items()})


def _geometries(table: Mapping[str, Any], base: Path, seed: int) -> Geometries:
    source = convert(table.get("source"), Source, "[geometries] source")
    where = f"[geometries] with source = {source!r}"
    given = [k for k in _ATOMS if k in table]
    if source == "scan" and len(given) != 1:
        check_keys(table, ("source", *SOURCES[source]), where)
        raise ConfigError("[geometries] with source = 'scan' needs exactly one of bond = [i, j], "
                          f"angle = [i, j, k] or dihedral = [i, j, k, l]; got {given or 'none'}")
    required = {"scan": ("structure", "from", "to", "step"), "distort": ("structure", "n"),
                "md": ("structure", "temperature", "steps", "every"),
                "file": ("path",)}.get(source, ())
    found = _resolved(_load(Geometries, table, where, valid=("source", *SOURCES[source]),
                            rename={"from": "start", "to": "stop", **dict.fromkeys(_ATOMS,
                                                                                "coordinate")},
                            required=required,
                            **({"seed": seed} if source in ("distort", "md") else {})), base)
    if given and len(found.coordinate) != _ATOMS[given[0]]:
        raise ConfigError(f"[geometries] {given[0]} needs {_ATOMS[given[0]]} atom indices; "
                          f"got {list(found.coordinate)}")
    if source == "distort":
        _check_distortions(found, table)
    if source == "md":
        _check_md(found)
    return found


def _check_forces(study: Study) -> None:
    """The fits that use forces need them labelled (``[levels] forces``), and the high-level
    forces are fitted by the linear transfer only."""
    levels = study.levels
    for where, config, which in (("[pretrain]", study.pretrain, "low"),
                                 ("[scratch]", study.scratch, "high")):
        if config.force_weight > 0 and not levels.with_forces(which):
            raise ConfigError(f"{where} force_weight = {config.force_weight:g} fits {which}-level "
                              f"forces, but [levels] forces = {levels.forces!r} labels none: set "
                              f"forces = '{which}' or 'both', or force_weight = 0")
    if (levels.with_forces("high") and "transfer" in study.compare
            and not isinstance(study.transfer, (LinearRecipe, GPRecipe))):
        raise ConfigError(f"[levels] forces = {levels.forces!r} gives the transfer high-level "
                          f"forces, which only the linear and gp recipes fit; set [transfer] "
                          f"recipe = 'linear' or forces = 'low' / 'none'")
    if (isinstance(study.transfer, GPRecipe) and "transfer" in study.compare
            and not levels.with_forces("high")):
        raise ConfigError("[transfer] recipe = 'gp' fits the high-level forces too: set [levels] "
                          "forces = 'high' or 'both'")
    if "delta" in study.compare and study.delta_method == "neural" and study.delta.force_weight:
        raise ConfigError("[delta] the neural delta fits energies only: set its force_weight = 0 "
                          "(a [train] force_weight applies to it too)")


def _check_md(found: Geometries) -> None:
    from levelup.errors import DataError
    from levelup.explore.dynamics import check_dynamics

    if (found.model is None) == (found.level is None):
        raise ConfigError("[geometries] with source = 'md' needs what gives the forces: model = "
                          "'file.pt' (relative to the study file) or level = 'HF/STO-3G', one "
                          "of them")
    if found.model is not None and not found.model.is_file():
        raise ConfigError(f"[geometries] model: no such file {found.model} (paths are relative "
                          "to the study file)")
    try:
        check_dynamics(temperature=found.temperature, steps=found.steps, every=found.every,
                       timestep=found.timestep, friction=found.friction,
                       equilibrate=found.equilibrate)
    except DataError as exc:
        raise ConfigError(f"[geometries] {exc}") from None


def _check_distortions(found: Geometries, table: Mapping[str, Any]) -> None:
    if found.n < 1:
        raise ConfigError(f"[geometries] n must be >= 1; got {found.n}")
    if found.normal_modes and "amplitude" in table:
        raise ConfigError("[geometries] amplitude sets Cartesian distortions; with normal_modes = "
                          "true the size follows from temperature")
    if not found.normal_modes and ("hessian_level" in table or "hessian_model" in table):
        raise ConfigError("[geometries] hessian_level and hessian_model choose the Hessian of "
                          "normal_modes = true; add that, or leave them out")
    if "hessian_level" in table and "hessian_model" in table:
        raise ConfigError("[geometries] give hessian_level or hessian_model, not both")


def _selection(table: Mapping[str, Any], seed: int) -> Selection:
    method: Method = convert(table.get("method"), Method, "[selection] method")
    required = {"every": ("step",), "random": ("count",), "indices": ("indices",),
                "fps": ("count",), "design": ("count",), "committee": ("count",)}.get(method, ())
    found = _load(Selection, table, f"[selection] with method = {method!r}",
                  valid=("method", *METHODS[method]), required=required,
                  **({"seed": seed} if method in ("random", "committee") else {}))
    if found.validation_every < 0:
        raise ConfigError(f"[selection] validation_every must be >= 0; got {found.validation_every}")
    if method == "every" and (found.step < 1 or found.offset < 0):
        raise ConfigError(f"[selection] needs step >= 1 and offset >= 0; got step {found.step}, "
                          f"offset {found.offset}")
    if method in ("random", "fps", "design", "committee") and found.count < 1:
        raise ConfigError(f"[selection] count must be >= 1; got {found.count}")
    if found.focus not in ("energies", "pool"):
        raise ConfigError(f"[selection] focus must be \"energies\" or \"pool\"; got "
                          f"{found.focus!r}")
    if method == "committee" and (found.batch < 0 or found.target < 0 or found.members < 2):
        raise ConfigError(f"[selection] needs batch >= 0, target >= 0 and members >= 2; got batch "
                          f"{found.batch}, target {found.target}, members {found.members}")
    train, val = found.indices, found.validation
    if method == "indices" and (not train or set(train) & set(val)
                                or len(set(train)) != len(train)):
        raise ConfigError(f"[selection] indices must be distinct, at least one, and not in "
                          f"validation; got indices {list(train)}, validation {list(val)}")
    return found


def _model(table: Mapping[str, Any]) -> ModelSettings:
    hidden = table.get("hidden")
    if isinstance(hidden, dict):  # element = [widths]: a tuple of (symbol, widths) pairs
        table = {**table, "hidden": [[str(k), v] for k, v in hidden.items()]}
    return _load(ModelSettings, table, "[model]")


def _train_config(shared: Mapping[str, Any], table: Mapping[str, Any], where: str, seed: int,
                  extra: Sequence[str] = ()) -> TrainConfig:
    check_keys(table, (*TRAIN_KEYS, *extra), where)
    try:
        return TrainConfig.from_dict({"seed": seed, **shared, **table})
    except ConfigError as exc:
        raise ConfigError(f"{where} (with [train]): {exc}") from None


def _delta(table: Mapping[str, Any]) -> tuple[dict[str, Any], str, str]:
    """([delta]'s TrainConfig keys, base, method)."""
    check_keys(table, ("method", "base", *TRAIN_KEYS), "[delta]")
    rest = dict(table)
    hints = field_types(Study)
    base = convert(rest.pop("base", "model"), hints["delta_base"], "[delta] base", _DELTA_BASE)
    method = convert(rest.pop("method", "kernel"), hints["delta_method"], "[delta] method",
                     _DELTA_METHOD)
    if method == "kernel" and rest:
        raise ConfigError(f"[delta] {', '.join(sorted(rest))}: training settings of the neural "
                          f"delta model, but method = 'kernel' (the default) chooses its settings "
                          f"by cross-validation; set method = 'neural' or remove them")
    return rest, base, method


def _transfer(table: Mapping[str, Any], seed: int) -> tuple[Any, str]:
    name = convert(table.get("recipe", "linear"), str, "[transfer] recipe")
    if name not in RECIPES:
        raise ConfigError(f"[transfer] recipe must be one of {', '.join(RECIPES)}; got {name!r}")
    kind = {"linear": LinearRecipe, "auto": AutoRecipe, "gp": GPRecipe}.get(name, TransferRecipe)
    check_keys(table, (*RECIPE_KEYS[kind], "recipe", "anchors"), f"[transfer] (recipe {name!r})")
    anchors = convert(table.get("anchors", "all"), field_types(Study)["anchors"],
                      "[transfer] anchors", WORDS["anchors"])
    hints = field_types(kind)
    tried = "a list of numbers (the values the cross-validation tries)"
    values = {k: convert(v, hints[k], f"[transfer] {k}",
                         tried if hints[k] == tuple[float, ...] else None)
              for k, v in table.items() if k not in ("anchors", "recipe")}
    try:
        return recipe(name, **{"seed": seed, **values}), anchors
    except ConfigError as exc:
        raise ConfigError(f"[transfer]: {exc}") from None


def _output(table: Mapping[str, Any], base: Path, name: str, geometries: Geometries) -> Output:
    table = dict(table)
    regions = _regions(table.pop("regions", {"all": [-math.inf, math.inf]}))
    found = _resolved(_load(Output, table, "[output]", folder=Path(f"runs/{name}"), regions=regions), base)
    bad = [p for p in found.plots if p not in PLOTS]
    if bad:
        raise ConfigError(f"[output] plots: unknown {bad}; choose among {list(PLOTS)}")
    if not found.formats:
        raise ConfigError("[output] formats must name at least one figure format, e.g. ['png']")
    coordinate = found.coordinate
    if isinstance(coordinate, tuple) and not 2 <= len(coordinate) <= 4:
        raise ConfigError(f"[output] coordinate needs 2 (distance), 3 (angle) or 4 (dihedral) "
                          f"atom indices; got {list(coordinate)}")
    no_coordinate = coordinate == "none" or (coordinate == "auto" and geometries.source not in
                                             ("h2_tutorial", "scan"))
    if no_coordinate and any(math.isfinite(lo) or math.isfinite(hi) for _, lo, hi in regions):
        raise ConfigError("[output] regions along a coordinate need one: set coordinate = [i, j] "
                          "(a distance; 3 atoms an angle, 4 a dihedral) or keep only "
                          "all = [-inf, inf]")
    return found


def _regions(table: Any) -> tuple[tuple[str, float, float], ...]:
    """``[output] regions`` (name = [lo, hi]) as (name, lo, hi) triples."""
    if not isinstance(table, dict) or not table:
        raise ConfigError("[output] regions must be a table of name = [lo, hi], e.g. "
                          "regions = { all = [-inf, inf], bound = [0.5, 2.5] }")
    regions = []
    for region, bounds in table.items():
        lo, hi = convert(bounds, tuple[float, float], f"regions.{region}", "[lo, hi]")
        if not lo <= hi:
            raise ConfigError(f"[output] region {region!r} needs lo <= hi; got [{lo}, {hi}]")
        regions.append((str(region), lo, hi))
    return tuple(regions)


def _table(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a table ([{name}] with keys under it); got {value!r}")
    return value


__all__ = ["RECIPE_KEYS", "TRAIN_KEYS", "parse_study", "read_study"]
