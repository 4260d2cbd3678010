"""The models a study trains, one function per step of :mod:`levelup.study.runner`: the
pre-trained model, and the comparisons a study file names in ``compare`` (levelup's transfer,
MLatom's tutorial protocol, training from scratch, delta-learning). Each hands
:meth:`~levelup.study.steps.StudyRun.model_step` the parts that determine its model (so an
unchanged step is reused) and a function that trains it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from levelup.data import Database
from levelup.errors import ConfigError
from levelup.study.schema import Study
from levelup.study.steps import StudyRun


@dataclasses.dataclass(frozen=True)
class Points:
    """A study's labelled data: every geometry (``db``, both levels), the high-level training and
    validation points, and the arrays that identify them in step keys (``high_sets``)."""

    db: Database
    train: Database
    validation: Database | None
    high_sets: dict[str, Any]


def points(run: StudyRun, db: Database, train_idx: np.ndarray, val_idx: np.ndarray) -> Points:
    """The :class:`Points` of a labelled ``db`` and the selected indices."""
    high, forces = run.names[1], run.study.levels.with_forces("high")
    train = db[train_idx]
    val = db[val_idx] if len(val_idx) else None
    high_sets = {**prefixed("train", set_arrays(train, high, forces)),
                 **(prefixed("validation", set_arrays(val, high, forces)) if val is not None
                    else {})}
    return Points(db, train, val, high_sets)


def set_arrays(db: Database, prop: str, forces: bool = False) -> dict[str, Any]:
    """The arrays that determine a training set: geometries, charges and the energies ``prop``
    (and its forces ``forces/<prop>`` when ``forces``)."""
    return {"species": db.species, "coordinates": db.coordinates, "charges": db.charges,
            "multiplicities": db.multiplicities, "energies": np.asarray(db.get(prop)),
            **({"forces": np.asarray(db.get(f"forces/{prop}"))} if forces else {})}


def prefixed(prefix: str, parts: dict[str, Any]) -> dict[str, Any]:
    """``parts`` with every key prefixed by ``prefix.``."""
    return {f"{prefix}.{k}": v for k, v in parts.items()}


def architecture(study: Study, db: Database) -> tuple[list[int], dict[str, Any]]:
    """(atomic numbers the model covers, the architecture as it enters step keys)."""
    from levelup.elements import atomic_number

    elements = [atomic_number(e) for e in (study.model.elements or db.elements)]
    missing = sorted(set(db.elements) - set(elements))
    if missing:
        raise ConfigError(f"[model] elements {list(study.model.elements)} lack elements of the "
                          f"geometries (atomic numbers {missing}); add them or leave elements out")
    return elements, {"elements": elements, **dataclasses.asdict(study.model)}


def model_factory(study: Study, elements: list[int]) -> Callable[[int], Any]:
    """A function ``seed -> new ANIModel`` with the study's ``[model]`` architecture."""

    def new_model(seed: int) -> Any:
        from levelup.model.aev import AEVParams
        from levelup.model.ani import ANIModel

        aev = AEVParams.ani2x() if study.model.aev == "ani2x" else AEVParams.ani1x()
        return ANIModel(elements, aev=aev, hidden=study.model.hidden_argument(),
                        alpha=study.model.alpha, seed=seed)

    return new_model


def pretrain_step(run: StudyRun, db: Database, arch: dict[str, Any],
                  new_model: Callable[[int], Any]) -> None:
    """The ANI model trained on the low level of every geometry of ``db`` (``[pretrain]``), and
    on its forces with ``force_weight`` when ``[levels] forces`` labels them."""
    study, low = run.study, run.names[0]
    forces = study.pretrain.force_weight > 0

    def pretrain() -> tuple[Any, Any]:
        from levelup.train.loop import fit

        model = new_model(study.seed)
        return model, fit(model, db, property=low, config=study.pretrain, progress=run.progress)

    run.model_step("pretrained", {**prefixed("data", set_arrays(db, low, forces)), "arch": arch,
                                  "init_seed": study.seed, "config": study.pretrain.to_dict()},
                   pretrain, {"level": low, "trained_on": f"{len(db)} geometries"})


def committee_step(run: StudyRun, db: Database) -> np.ndarray:
    """``[selection] method = "committee"``: the high-level points chosen by query by committee
    on the pre-trained model (:func:`levelup.selection.select.select`), every label through the
    label cache; the rounds are kept in the run folder's selection.json (the run's learning
    curve), which a later run with the same inputs reuses. Returns the chosen rows."""
    import json
    import time

    from levelup._version import __version__
    from levelup.selection.select import select
    from levelup.study.stepcache import content_key

    study, s, start = run.study, run.study.selection, time.perf_counter()
    settings = {"count": s.count, "batch": s.batch, "target": s.target, "members": s.members,
                "seed": s.seed}
    key = content_key({"step": "selection", "levelup": __version__, "high": study.levels.high,
                       "parent": run.checksums["pretrained"], "coordinates": db.coordinates,
                       "species": db.species, "charges": db.charges,
                       "multiplicities": db.multiplicities, **settings})
    path = run.folder / "selection.json"
    saved = _saved_selection(path, key)
    if saved is not None:
        run.done("selection", key, "reused", start, path, f"reused ({path.name})")
        return np.asarray(saved["indices"], dtype=np.int64)
    result = select(db, s.count, "committee", seed=s.seed, model=run.model("pretrained"),
                    high=study.levels.high, batch=s.batch or None, target=s.target or None,
                    cache=run.cache, state=path, progress=run.progress, members=s.members,
                    workers=study.levels.workers)
    from levelup.atomicwrite import write_text_atomic

    record = {**json.loads(path.read_text()), "study_key": key}
    write_text_atomic(path, json.dumps(record, indent=1))
    last = result.history[-1]
    run.done("selection", key, "done", start, path,
             f"{len(result.indices)} points in {len(result.history)} rounds; predicted error "
             f"{last.predicted_error:.2f} kcal/mol -> {path.name}")
    return np.asarray(result.indices, dtype=np.int64)


def design_step(run: StudyRun, db: Database) -> np.ndarray:
    """``[selection] method = "design"``: the high-level points chosen by Bayesian design for
    the pre-trained model's transfer (:mod:`levelup.selection.design`; no label needed, seconds
    for a few hundred geometries, so it is not cached), aimed also at the energy differences of
    ``[properties] energies`` when it names two or more structures and ``focus`` is
    "energies". Returns the chosen rows, sorted."""
    from levelup.selection.select import select

    props = run.study.properties
    aim = {}
    if design_aims_at_energies(run.study):
        from levelup.study.propertytable import structure_of

        aim = {"structures": {n: structure_of(p, f"energies.{n}") for n, p in props.energies},
               "constraints": dict(props.constraints), "reference": props.reference}
    result = select(db, run.study.selection.count, "design", model=run.model("pretrained"),
                    **aim)
    what = f" and the energy differences of {list(aim['structures'])}" if aim else ""
    run.log(f"selection: {len(result.indices)} points by Bayesian design on the pre-trained "
            f"model, for the pool{what} (rows {sorted(result.indices)})")
    return np.sort(np.asarray(result.indices, dtype=np.int64))


def design_aims_at_energies(study: Study) -> bool:
    """Whether the study's design also pins ``[properties] energies`` (module docstring of
    :mod:`levelup.selection.targets`)."""
    return (study.selection.method == "design" and study.selection.focus == "energies"
            and len(study.properties.energies) >= 2)


def _saved_selection(path: Any, key: str) -> dict[str, Any] | None:
    """The run folder's selection.json when it was finished with ``key``, else None."""
    import json

    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(record, dict) and record.get("study_key") == key and record.get("finished")
    return record if ok else None


def transfer_step(run: StudyRun, data: Points) -> None:
    """The pre-trained model carried to the high level by levelup's recipe (``[transfer]``),
    fitting the high-level forces too where ``[levels] forces`` labels them (linear recipe)."""
    study, high = run.study, run.names[1]
    anchors = data.db if study.anchors == "all" else None
    forces = f"forces/{high}" if study.levels.with_forces("high") else None

    def transfer() -> tuple[Any, Any]:
        from levelup.transfer.recipe import finetune

        return finetune(run.model("pretrained"), data.train, data.validation, property=high,
                        anchors=anchors, recipe=study.transfer, forces=forces,
                        progress=run.progress)

    run.model_step("transfer", {
        **data.high_sets, "parent": run.checksums["pretrained"],
        "recipe": dataclasses.asdict(study.transfer),
        "anchors": (np.asarray(anchors.coordinates) if anchors is not None else "high")},
        transfer, {"level": high, "fine_tuned_from": "pretrained"})


def tutorial_step(run: StudyRun, data: Points) -> None:
    """MLatom's tutorial protocol, as MLatom trains
    (:func:`levelup.transfer.tutorialprotocol.tutorial_protocol`): a model built and pre-trained
    on the low level as MLatom does, first and last layers frozen, fine-tuned at learning rate
    1e-4 on the high-level points. Its time includes that pre-training."""
    study, (low, high) = run.study, run.names

    def tutorial() -> tuple[Any, Any]:
        from levelup.transfer.tutorialprotocol import tutorial_protocol

        return tutorial_protocol(data.db, data.train, data.validation, low=low, high=high,
                                 seed=study.seed, progress=run.progress)

    run.model_step("tutorial-protocol", {
        **prefixed("data", set_arrays(data.db, low)), **data.high_sets,
        "elements": sorted(set(data.db.elements)), "init_seed": study.seed,
        "protocol": "mlatom-tutorial: MLatom's networks, freeze [0, -1], rate 1e-4"},
        tutorial, {"level": high, "protocol": "MLatom's transfer-learning tutorial"})


def scratch_step(run: StudyRun, data: Points, arch: dict[str, Any],
                 new_model: Callable[[int], Any]) -> None:
    """The same architecture trained on the high-level points only (``[scratch]``)."""
    study, high = run.study, run.names[1]

    def scratch() -> tuple[Any, Any]:
        from levelup.train.loop import fit

        model = new_model(study.seed + 1)
        return model, fit(model, data.train, data.validation, property=high,
                          config=study.scratch, progress=run.progress)

    run.model_step("scratch", {**data.high_sets, "arch": arch, "init_seed": study.seed + 1,
                               "config": study.scratch.to_dict()},
                   scratch, {"level": high})


def delta_step(run: StudyRun, data: Points, arch: dict[str, Any],
               new_model: Callable[[int], Any]) -> None:
    """The delta comparison: kernel ridge regression (``[delta] method = "kernel"``, stored as
    npz) or an ANI network (``"neural"``) of high minus low, added to the pre-trained model or
    to the low-level labels."""
    study, (low, high) = run.study, run.names
    train, val = data.train, data.validation
    on_model = study.delta_base == "model"
    base_model = (lambda: run.model("pretrained")) if on_model else (lambda: None)
    base = {"base": run.checksums["pretrained"]} if on_model else {
        "base": "labels", **prefixed("base.train", set_arrays(train, low)),
        **(prefixed("base.validation", set_arrays(val, low)) if val is not None else {})}
    metadata = {"level": f"{high} - {low}", "correction_of": study.delta_base}
    if study.delta_method == "kernel":
        def kernel() -> Any:
            from levelup.transfer import kerneldelta

            return kerneldelta.fit_kernel_delta(base_model(), train, val, high=high,
                                                low=None if on_model else low,
                                                seed=study.seed).correction

        run.kernel_step("delta", {**data.high_sets, "seed": study.seed, **base}, kernel, metadata)
        return

    def neural() -> tuple[Any, Any]:
        from levelup.transfer import delta

        combined, history = delta.fit_delta(base_model(), new_model(study.seed + 2), train, val,
                                            high=high, low=None if on_model else low,
                                            config=study.delta, progress=run.progress)
        return combined.correction, history

    run.model_step("delta", {**data.high_sets, "arch": arch, "init_seed": study.seed + 2,
                             "config": study.delta.to_dict(), **base}, neural, metadata)


__all__ = ["Points", "architecture", "committee_step", "delta_step", "design_aims_at_energies",
           "design_step", "model_factory", "points", "pretrain_step", "scratch_step", "transfer_step",
           "tutorial_step"]
