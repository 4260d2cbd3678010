"""Running a study file (:mod:`levelup.study.schema`) with a step cache: ``levelup run STUDY.toml``.

Steps, in order, each skipped when what it would make is already in the run folder::

    labels      low level on every geometry, high level on the selected ones (or on all of them,
                to measure errors everywhere); through the label cache, then kept as labels.npz
    pretrained  an ANI model trained on the low level of every geometry
    transfer    the pre-trained model fine-tuned on the high-level points (TransferRecipe)
    scratch     the same architecture trained on the high-level points only
    delta       a model of high minus low level, added to the pre-trained model (or to the
                low-level labels): kernel ridge regression (default; stored as .npz, fitted in
                seconds) or an ANI network (``[delta] method = "neural"``)
    outputs     predictions, metrics.json, figures and report.md

Models are stored by :class:`~levelup.study.stepcache.StepCache` under a content hash of what
determines them (a transfer's key holds its parent model's checksum), so changing e.g. the
transfer recipe retrains the transfer model only. Example::

    result = run_study("examples/h2_tutorial.toml", log=print)
    result.steps["transfer"].status          # "trained" or "reused"
    result.metrics["models"]["transfer"]["rmse_all_kcalmol"]
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from levelup._version import __version__
from levelup.atomicwrite import write_bytes_atomic
from levelup.data import Database
from levelup.errors import ConfigError, DataError, ModelFileError
from levelup.study.schema import Geometries, Selection, Study, read_study
from levelup.study.stepcache import StepCache, content_key
from levelup.transfer.linear import KIND

#: Model names in metrics.json (issue 5's shape): pretrained against the low level, the others
#: against the high level.
STEP_TITLES = {"labels": "labels", "pretrained": "pre-training", "transfer": "transfer",
               "scratch": "scratch", "delta": "delta", "outputs": "outputs"}


@dataclass(frozen=True)
class StepRecord:
    """What one step of a run did.

    Attributes:
        name: "labels", "pretrained", "transfer", "scratch", "delta" or "outputs".
        key: content hash of the step's inputs.
        status: "reused" (found in the run folder) or "done" (computed in this run).
        seconds: wall time of the step in this run.
        file: the model file (model steps), labels.npz or report.md.
    """

    name: str
    key: str
    status: str
    seconds: float
    file: Path | None = None


@dataclass(frozen=True)
class StudyResult:
    """What :func:`run_study` did: ``steps`` in order, the contents of ``metrics.json``."""

    folder: Path
    steps: dict[str, StepRecord]
    metrics: dict[str, Any] = field(repr=False)

    @property
    def report(self) -> Path:
        return self.folder / "report.md"

    @property
    def reused(self) -> list[str]:
        """Names of the steps found in the run folder."""
        return [s.name for s in self.steps.values() if s.status == "reused"]

    @property
    def done(self) -> list[str]:
        """Names of the steps computed in this run."""
        return [s.name for s in self.steps.values() if s.status == "done"]


# ---------------------------------------------------------------------------------- geometries


def build_geometries(g: Geometries, *, cache: Any = None, progress: bool = False) -> Database:
    """The study's geometries (see :class:`~levelup.study.schema.Geometries`)."""
    from levelup.data import sampling as geometry
    from levelup.data.structure import read_structure

    if g.source == "h2_tutorial":
        from levelup.study.tutorial import h2_scan

        return h2_scan()
    if g.source == "file":
        return Database.read(g.path)
    mol = read_structure(g.structure, g.index)
    if g.source == "scan":
        values = geometry.scan_values(g.start, g.stop, g.step)
        scan = {2: geometry.scan_distance, 3: geometry.scan_angle,
                4: geometry.scan_dihedral}[len(g.coordinate)]
        return scan(mol, *g.coordinate, values, move=g.move)
    if not g.normal_modes:
        return geometry.random_distortions(mol, g.n, g.amplitude, seed=g.seed)
    source = str(g.hessian_model) if g.hessian_model else (g.hessian_level or "HF/STO-3G")
    from levelup.properties.hessians import hessian

    h = hessian(mol, source, cache=cache, progress=progress)
    return geometry.normal_mode_distortions(mol, h, g.n, temperature=g.temperature, seed=g.seed)


def scan_coordinate(study: Study, db: Database) -> tuple[np.ndarray | None, str]:
    """(the coordinate errors are reported and plotted along, its axis label); None without
    one."""
    c = study.output.coordinate
    if c == "none":
        return None, ""
    if c == "auto":
        if study.geometries.source == "h2_tutorial":
            return db.distance(0, 1), "H-H distance (Angstrom)"
        if study.geometries.source == "scan":
            c = study.geometries.coordinate
        else:
            return None, ""
    atoms = "-".join(str(i) for i in c)
    if len(c) == 2:
        return db.distance(*c), f"distance {atoms} (Angstrom)"
    if len(c) == 3:
        return db.angle(*c), f"angle {atoms} (degrees)"
    return db.dihedral(*c), f"dihedral {atoms} (degrees)"


def select(selection: Selection, db: Database) -> tuple[np.ndarray, np.ndarray]:
    """(training indices, validation indices) of the high-level points in ``db``."""
    n = len(db)
    if selection.method == "tutorial":
        from levelup.study.tutorial import tutorial_split

        tagged = db.copy()
        tagged.set("study-index", np.arange(n, dtype=np.float64), unit="1")
        train, val = tutorial_split(tagged)
        return (train.get("study-index").astype(np.int64),
                val.get("study-index").astype(np.int64))
    if selection.method == "indices":
        train, val = np.array(selection.indices), np.array(selection.validation, dtype=np.int64)
        outside = [int(i) for i in np.concatenate([train, val]) if not 0 <= i < n]
        if outside:
            raise ConfigError(f"[selection] indices {outside} are out of range: the study has {n} "
                              f"geometries (0 to {n - 1})")
        return train, val
    if selection.method == "every":
        chosen = np.arange(selection.offset, n, selection.step)
    else:
        if selection.count > n:
            raise ConfigError(f"[selection] count = {selection.count}, but the study has only {n} "
                              "geometries")
        rng = np.random.default_rng(selection.seed)
        chosen = np.sort(rng.choice(n, selection.count, replace=False))
    if selection.validation_every:
        validates = np.arange(len(chosen)) % selection.validation_every == 0
        return chosen[~validates], chosen[validates]
    return chosen, np.array([], dtype=np.int64)


# ---------------------------------------------------------------------------------- the run


class _Run:
    """One execution of a study; its methods are the steps."""

    def __init__(self, study: Study, folder: Path, cache: Any, progress: bool,
                 log: Callable[[str], None]) -> None:
        from levelup.model.files import FORMAT_VERSION

        self.study, self.folder, self.progress, self.log = study, folder, progress, log
        self.cache = cache if cache is not None else study.levels.cache
        self.steps: dict[str, StepRecord] = {}
        self.store = StepCache(folder)
        self.models: dict[str, Any] = {}  # step -> model, loaded or trained in this run
        self.checksums: dict[str, str] = {}  # step -> tensors_sha256 of its model file
        self.seconds: dict[str, float] = {}  # step -> training time (when it was trained)
        self.format_version = FORMAT_VERSION
        self.names = (study.levels.low, study.levels.high)  # property names, canonical once labelled

    # ------------------------------------------------------------------ bookkeeping
    def _done(self, name: str, key: str, status: str, start: float, file: Path | None,
              message: str) -> None:
        seconds = round(time.perf_counter() - start, 3)
        self.steps[name] = StepRecord(name, key, status, seconds, file)
        self.store.record(name, {"key": key, "status": status, "seconds": seconds,
                                 "file": os.path.relpath(file, self.folder) if file else None,
                                 "training_seconds": self.seconds.get(name)})
        self.log(f"{STEP_TITLES[name]}: {message}")

    def _relative(self, path: Path) -> str:
        return os.path.relpath(path, self.folder)

    # ------------------------------------------------------------------ labels
    def labels(self, db: Database, chosen: np.ndarray) -> Database:
        """Label ``db`` at both levels, from labels.npz when the geometries and levels match."""
        levels = self.study.levels
        start = time.perf_counter()
        key = content_key({"step": "labels", "species": db.species, "coordinates": db.coordinates,
                           "charges": db.charges, "multiplicities": db.multiplicities,
                           "low": levels.low, "high": levels.high,
                           "high_on": "all" if self._high_everywhere() else chosen})
        path = self.folder / "labels.npz"
        saved = self._saved_labels(path, key)
        if saved is not None:
            out = db.copy()
            for which in ("low", "high"):
                out.set(saved[f"{which}_name"], saved[which], level=saved[f"{which}_name"])
            self.names = (saved["low_name"], saved["high_name"])
            self._done("labels", key, "reused", start, path, f"reused ({path.name})")
            return out
        from levelup.qm import label_with_report

        options = {"cache": self.cache, "progress": self.progress, "workers": levels.workers}
        out, low = label_with_report(db, levels.low, **options)
        targets = np.arange(len(db)) if self._high_everywhere() else np.asarray(chosen)
        part, high = label_with_report(db[targets], levels.high, **options)
        energies = np.full(len(db), np.nan)
        energies[targets] = part.get(high.name)
        out.set(high.name, energies, level=high.name)
        self.names = (low.name, high.name)
        buffer = io.BytesIO()
        np.savez(buffer, key=key, low=np.asarray(out.get(low.name)), high=energies,
                 low_name=low.name, high_name=high.name)
        finite = np.isfinite(out.get(low.name)).all() and np.isfinite(energies[targets]).all()
        if finite:  # failed calculations are retried next time, so labels with gaps are not kept
            write_bytes_atomic(path, buffer.getvalue())
        failed = len(low.failures) + len(high.failures)
        self._done("labels", key, "done", start, path if finite else None,
                   f"{low.name} {len(db)} geometries ({low.cached} from the cache, {low.computed} "
                   f"computed), {high.name} {len(targets)} ({high.cached} from the cache, "
                   f"{high.computed} computed)" + (f", {failed} failed" if failed else ""))
        return out

    def _high_everywhere(self) -> bool:
        return self.study.levels.high_on == "all"

    @staticmethod
    def _saved_labels(path: Path, key: str) -> dict[str, Any] | None:
        try:
            with np.load(path) as f:
                if str(f["key"]) != key:
                    return None
                return {"low": f["low"], "high": f["high"], "low_name": str(f["low_name"]),
                        "high_name": str(f["high_name"])}
        except (OSError, KeyError, ValueError):
            return None

    # ------------------------------------------------------------------ models
    def model_step(self, name: str, parts: dict[str, Any], train: Callable[[], tuple[Any, Any]],
                   metadata: dict[str, Any]) -> None:
        """Reuse the model of ``name`` whose key matches ``parts``, or ``train()`` and store it."""
        start = time.perf_counter()
        # levelup's version too: an upgrade may train differently, so it retrains
        key = content_key({"step": name, "model_format": self.format_version,
                           "levelup": __version__, **parts})
        found = self.store.find(name, key)
        path = self.store.model_file(name, key)
        if found is not None:
            self.checksums[name] = found["tensors_sha256"]
            self.seconds[name] = found.get("training_seconds")
            self._done(name, key, "reused", start, path, f"reused ({self._relative(path)})")
            return
        model, history = train()
        seconds = round(time.perf_counter() - start, 2)
        self.seconds[name] = seconds
        self.checksums[name] = self.store.save(name, key, model, history,
                                               {**metadata, "training_seconds": seconds})
        self.models[name] = model
        self._done(name, key, "done", start, path,
                   f"trained in {seconds:.1f} s ({_how(history)}) -> "
                   f"{self._relative(path)}")

    def kernel_step(self, name: str, parts: dict[str, Any], fit: Callable[[], Any],
                    metadata: dict[str, Any]) -> None:
        """Reuse the kernel model (``models/<name>-<key>.npz``) whose key matches ``parts``, or
        ``fit()`` a :class:`~levelup.transfer.kerneldelta.KernelCorrection` and store it. No history:
        nothing is trained by epochs."""
        from levelup.transfer.kerneldelta import load_kernel_delta

        start = time.perf_counter()
        key = content_key({"step": name, "method": "kernel", "levelup": __version__, **parts})
        path = self.store.models / f"{name}-{key[:16]}.npz"
        try:
            found = load_kernel_delta(path) if path.is_file() else None
        except ModelFileError:
            found = None  # unreadable: fitted again
        if found is not None and found.info["metadata"].get("study_key") == key:
            self.models[name], self.checksums[name] = found, found.checksum()
            self.seconds[name] = found.info["metadata"].get("training_seconds")
            self._done(name, key, "reused", start, path, f"reused ({self._relative(path)})")
            return
        model = fit()
        seconds = round(time.perf_counter() - start, 2)
        model.save(path, metadata={**metadata, "study_step": name, "study_key": key,
                                   "training_seconds": seconds})
        self.models[name], self.checksums[name], self.seconds[name] = model, model.checksum(), seconds
        chosen = model.chosen
        self._done(name, key, "done", start, path,
                   f"kernel ridge regression fitted in {seconds:.1f} s ({chosen['kind']}, alpha "
                   f"{chosen['alpha']:g}, length scale {chosen['length_scale']:g}; "
                   f"cross-validated RMSE {model.cv_rmse_kcalmol:.2f} kcal/mol) -> "
                   f"{self._relative(path)}")

    def model(self, name: str) -> Any:
        """The model of step ``name`` (loaded from its file when it was reused)."""
        if name not in self.models:
            from levelup.model.files import load_model

            self.models[name] = load_model(self.steps[name].file)
        return self.models[name]

    def history(self, name: str) -> Any:
        """The training History of step ``name``; None for a model not trained by epochs (the
        kernel delta)."""
        from levelup.train.loop import History

        file = self.steps[name].file
        if file is not None and file.suffix == ".npz":
            return None
        path = self.store.history_file(name, self.steps[name].key)
        if json.loads(path.read_text()).get("kind") in (KIND, "auto-transfer"):
            return None  # a linear transfer (one solve, no epochs) or a recipe chosen by CV
        return History.load(path)

    def linear_choice(self, name: str) -> Any:
        """The :class:`~levelup.transfer.linear.LinearChoice` of step ``name``; None for a step
        trained by epochs or a kernel model."""
        from levelup.transfer.linear import LinearChoice

        file = self.steps[name].file
        if file is None or file.suffix == ".npz":
            return None
        data = json.loads(self.store.history_file(name, self.steps[name].key).read_text())
        return LinearChoice.from_dict(data) if data.get("kind") == KIND else None


def _how(record: Any) -> str:
    """'N epochs' of a training History, or the summary of a linear transfer's choice."""
    if hasattr(record, "epoch"):
        return f"{len(record.epoch)} epochs"
    return record.summary()


def _set_arrays(db: Database, prop: str) -> dict[str, Any]:
    return {"species": db.species, "coordinates": db.coordinates, "charges": db.charges,
            "multiplicities": db.multiplicities, "energies": np.asarray(db.get(prop))}


def _prefixed(prefix: str, parts: dict[str, Any]) -> dict[str, Any]:
    return {f"{prefix}.{k}": v for k, v in parts.items()}


def run_study(study: Study | str | os.PathLike, out: str | os.PathLike | None = None, *,
              cache: Any = None, progress: bool = True,
              log: Callable[[str], None] = lambda message: None,
              threads: int | None = 1) -> StudyResult:
    """Run ``study`` (a :class:`~levelup.study.schema.Study` or a study file), reusing every label
    and model of the run folder that is still valid.

    Args:
        study: the study, or the path of its TOML file.
        out: the run folder (default: the study's ``[output] folder``).
        cache: label cache file (default: the study's, else the shared user cache).
        progress: progress bars for labelling and training.
        log: called with one line per step ("pre-training: trained in 12.3 s ...",
            "transfer: reused (models/transfer-....pt)").
        threads: torch threads while the study runs (restored after); 1 is fastest for the small
            networks of a study; None leaves the setting alone.

    Returns:
        A :class:`StudyResult`: each step's record and the contents of ``metrics.json``.
    """
    import torch

    if not isinstance(study, Study):
        study = read_study(study)
    folder = Path(out) if out is not None else study.output.folder
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _execute(_Run(study, folder, cache, progress, log))
    finally:
        torch.set_num_threads(before)


def _execute(run: _Run) -> StudyResult:
    study = run.study
    db = build_geometries(study.geometries, cache=run.cache, progress=run.progress)
    if len(db) < 2:
        raise DataError(f"the study has {len(db)} geometries; it needs at least 2")
    train_idx, val_idx = select(study.selection, db)
    if len(train_idx) == 0:
        raise ConfigError(f"[selection] picks no training point among {len(db)} geometries "
                          f"(validation: {len(val_idx)}): choose more")
    run.log(f"geometries: {len(db)} ({study.geometries.source}); high-level points: "
            f"{len(train_idx)} to train, {len(val_idx)} to validate")
    db = run.labels(db, np.concatenate([train_idx, val_idx]))
    low, high = run.names
    train = db[train_idx]
    val = db[val_idx] if len(val_idx) else None
    high_sets = {**_prefixed("train", _set_arrays(train, high)),
                 **(_prefixed("validation", _set_arrays(val, high)) if val is not None else {})}
    elements, arch = _architecture(study, db)

    def new_model(seed: int) -> Any:
        from levelup.model.aev import AEVParams
        from levelup.model.ani import ANIModel

        aev = AEVParams.ani2x() if study.model.aev == "ani2x" else AEVParams.ani1x()
        return ANIModel(elements, aev=aev, hidden=study.model.hidden_argument(),
                        alpha=study.model.alpha, seed=seed)

    def pretrain() -> tuple[Any, Any]:
        from levelup.train.loop import fit

        model = new_model(study.seed)
        return model, fit(model, db, property=low, config=study.pretrain, progress=run.progress)

    run.model_step("pretrained", {**_prefixed("data", _set_arrays(db, low)), "arch": arch,
                                  "init_seed": study.seed, "config": study.pretrain.to_dict()},
                   pretrain, {"level": low, "trained_on": f"{len(db)} geometries"})

    if "transfer" in study.compare:
        anchors = db if study.anchors == "all" else None

        def transfer() -> tuple[Any, Any]:
            from levelup.transfer.recipe import finetune

            return finetune(run.model("pretrained"), train, val, property=high, anchors=anchors,
                            recipe=study.transfer, progress=run.progress)

        run.model_step("transfer", {
            **high_sets, "parent": run.checksums["pretrained"],
            "recipe": dataclasses.asdict(study.transfer),
            "anchors": (np.asarray(anchors.coordinates) if anchors is not None else "high")},
            transfer, {"level": high, "fine_tuned_from": "pretrained"})

    if "scratch" in study.compare:
        def scratch() -> tuple[Any, Any]:
            from levelup.train.loop import fit

            model = new_model(study.seed + 1)
            return model, fit(model, train, val, property=high, config=study.scratch,
                              progress=run.progress)

        run.model_step("scratch", {**high_sets, "arch": arch, "init_seed": study.seed + 1,
                                   "config": study.scratch.to_dict()},
                       scratch, {"level": high})

    if "delta" in study.compare:
        _delta_step(run, train, val, high_sets, arch, new_model)

    from levelup.study.outputs import write_outputs

    metrics = write_outputs(run, db, train_idx, val_idx)
    return StudyResult(run.folder, dict(run.steps), metrics)


def _delta_step(run: _Run, train: Database, val: Database | None, high_sets: dict[str, Any],
                arch: dict[str, Any], new_model: Callable[[int], Any]) -> None:
    """The delta comparison: kernel ridge regression (``[delta] method = "kernel"``, stored as
    npz) or an ANI network (``"neural"``) of high minus low, added to the pre-trained model or
    to the low-level labels."""
    study = run.study
    low, high = run.names
    on_model = study.delta_base == "model"
    base_model = (lambda: run.model("pretrained")) if on_model else (lambda: None)
    base = {"base": run.checksums["pretrained"]} if on_model else {
        "base": "labels", **_prefixed("base.train", _set_arrays(train, low)),
        **(_prefixed("base.validation", _set_arrays(val, low)) if val is not None else {})}
    metadata = {"level": f"{high} - {low}", "correction_of": study.delta_base}
    if study.delta_method == "kernel":
        def kernel() -> Any:
            from levelup.transfer import kerneldelta

            return kerneldelta.fit_kernel_delta(base_model(), train, val, high=high,
                                                low=None if on_model else low,
                                                seed=study.seed).correction

        run.kernel_step("delta", {**high_sets, "seed": study.seed, **base}, kernel, metadata)
        return

    def neural() -> tuple[Any, Any]:
        from levelup.transfer import delta

        combined, history = delta.fit_delta(base_model(), new_model(study.seed + 2), train, val,
                                            high=high, low=None if on_model else low,
                                            config=study.delta, progress=run.progress)
        return combined.correction, history

    run.model_step("delta", {**high_sets, "arch": arch, "init_seed": study.seed + 2,
                             "config": study.delta.to_dict(), **base}, neural, metadata)


def _architecture(study: Study, db: Database) -> tuple[list[int], dict[str, Any]]:
    from levelup.elements import atomic_number

    elements = [atomic_number(e) for e in (study.model.elements or db.elements)]
    missing = sorted(set(db.elements) - set(elements))
    if missing:
        raise ConfigError(f"[model] elements {list(study.model.elements)} lack elements of the "
                          f"geometries (atomic numbers {missing}); add them or leave elements out")
    return elements, {"elements": elements, **dataclasses.asdict(study.model)}


__all__ = ["StepRecord", "StudyResult", "build_geometries", "run_study", "scan_coordinate",
           "select"]
