"""The bookkeeping of a study run (:mod:`levelup.study.runner`): one :class:`StudyRun` holds the
run folder's step cache and does the cached steps: labels (kept as labels.npz) and models
(stored under a content hash of what determines them, so a changed recipe retrains only what
depends on it).
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from levelup._version import __version__
from levelup.atomicwrite import write_bytes_atomic
from levelup.data import Database
from levelup.errors import ModelFileError
from levelup.study.schema import Study
from levelup.study.stepcache import StepCache, content_key
from levelup.transfer.linear import KIND

#: Model names in metrics.json (issue 5's shape): pretrained against the low level, the others
#: against the high level.
STEP_TITLES = {"labels": "labels", "pretrained": "pre-training", "selection": "selection",
               "transfer": "transfer",
               "tutorial-protocol": "transfer (tutorial protocol)", "scratch": "scratch",
               "delta": "delta", "properties": "properties", "outputs": "outputs"}


@dataclass(frozen=True)
class StepRecord:
    """What one step of a run did.

    Attributes:
        name: "labels", "pretrained", "selection", "transfer", "tutorial-protocol", "scratch",
            "delta", "properties" or "outputs".
        key: content hash of the step's inputs.
        status: "reused" (found in the run folder) or "done" (computed in this run).
        seconds: wall time of the step in this run.
        file: the model file (model steps), labels.npz, properties.json or report.md.
    """

    name: str
    key: str
    status: str
    seconds: float
    file: Path | None = None



class StudyRun:
    """One execution of a study: the run folder's step cache, the labels, and each model step,
    reused when its key (a hash of what determines it) is unchanged."""

    def __init__(self, study: Study, folder: Path, cache: Any, progress: bool,
                 log: Callable[[str], None]) -> None:
        from levelup.model.fileformat import FORMAT_VERSION

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
    def done(self, name: str, key: str, status: str, start: float, file: Path | None,
              message: str) -> None:
        """Record step ``name`` (its key, "reused" or "done", time since ``start``, file) in the
        manifest and log ``message``."""
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
        """Label ``db`` at both levels (with forces where ``[levels] forces`` asks), from
        labels.npz when the geometries, levels and forces match."""
        levels = self.study.levels
        start = time.perf_counter()
        key = content_key({"step": "labels", "species": db.species, "coordinates": db.coordinates,
                           "charges": db.charges, "multiplicities": db.multiplicities,
                           "low": levels.low, "high": levels.high,
                           "high_on": "all" if self._high_everywhere() else chosen,
                           **({"forces": levels.forces} if levels.forces != "none" else {})})
        path = self.folder / "labels.npz"
        saved = self._saved_labels(path, key)
        if saved is not None:
            self.names = (saved.pop("low_name"), saved.pop("high_name"))
            self.done("labels", key, "reused", start, path, f"reused ({path.name})")
            return _with_labels(db, self.names, saved)
        from levelup.qm import label_with_report

        options = {"cache": self.cache, "progress": self.progress, "workers": levels.workers}
        out, low = label_with_report(db, levels.low, forces=levels.with_forces("low"), **options)
        targets = np.arange(len(db)) if self._high_everywhere() else np.asarray(chosen)
        arrays = {"low": np.asarray(out.get(low.name)), "high": np.full(len(db), np.nan)}
        if levels.with_forces("low"):
            arrays["low_forces"] = np.asarray(out.get(f"forces/{low.name}"))
        high_name, high = self._high_labels(db, targets, arrays, options)
        self.names = (low.name, high_name)
        out = _with_labels(db, self.names, arrays)
        buffer = io.BytesIO()
        np.savez(buffer, key=key, low_name=low.name, high_name=high_name, **arrays)
        # failed calculations are retried next time, so labels with gaps are not kept; nor
        # are labels without the high level (chosen after pre-training, then labelled again)
        keep = (np.isfinite(arrays["low"]).all() and np.isfinite(arrays["high"][targets]).all()
                and high is not None)
        if keep:
            write_bytes_atomic(path, buffer.getvalue())
        failed = len(low.failures) + (len(high.failures) if high is not None else 0)
        self.done("labels", key, "done", start, path if keep else None,
                   f"{low.name} {len(db)} geometries ({low.cached} from the cache, {low.computed} "
                   f"computed), " + (f"{high_name} {len(targets)} ({high.cached} from the cache, "
                                     f"{high.computed} computed)" if high is not None else
                                     f"{high_name} on none yet")
                   + _forces_words(levels.forces) + (f", {failed} failed" if failed else ""))
        return out

    def _high_labels(self, db: Database, targets: np.ndarray, arrays: dict[str, np.ndarray],
                     options: dict[str, Any]) -> tuple[str, Any]:
        """Label rows ``targets`` of ``db`` at the high level into ``arrays`` ("high", and
        "high_forces" when asked); (the property name, the LabelReport). No rows: nothing is
        computed and the report is None (a selection that chooses after pre-training labels
        them later)."""
        from levelup.qm import label_with_report
        from levelup.qm.levels import parse_level

        levels = self.study.levels
        forces = levels.with_forces("high")
        if forces:
            arrays["high_forces"] = np.full(np.shape(db.coordinates), np.nan)
        if len(targets) == 0:
            return parse_level(levels.high).name, None
        part, high = label_with_report(db[targets], levels.high, forces=forces, **options)
        arrays["high"][targets] = part.get(high.name)
        if forces:
            f = np.asarray(part.get(f"forces/{high.name}"))  # (targets, their widest, 3)
            arrays["high_forces"][targets, :f.shape[1]] = f
        return high.name, high

    def _high_everywhere(self) -> bool:
        return self.study.levels.high_on == "all"

    @staticmethod
    def _saved_labels(path: Path, key: str) -> dict[str, Any] | None:
        try:
            with np.load(path) as f:
                if str(f["key"]) != key:
                    return None
                saved = {k: f[k] for k in f.files if k != "key"}
        except (OSError, KeyError, ValueError):
            return None
        return {**saved, "low_name": str(saved["low_name"]), "high_name": str(saved["high_name"])}

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
            self.done(name, key, "reused", start, path, f"reused ({self._relative(path)})")
            return
        model, history = train()
        seconds = round(time.perf_counter() - start, 2)
        self.seconds[name] = seconds
        self.checksums[name] = self.store.save(name, key, model, history,
                                               {**metadata, "training_seconds": seconds})
        self.models[name] = model
        self.done(name, key, "done", start, path,
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
            self.done(name, key, "reused", start, path, f"reused ({self._relative(path)})")
            return
        model = fit()
        seconds = round(time.perf_counter() - start, 2)
        model.save(path, metadata={**metadata, "study_step": name, "study_key": key,
                                   "training_seconds": seconds})
        self.models[name], self.checksums[name], self.seconds[name] = model, model.checksum(), seconds
        chosen = model.chosen
        self.done(name, key, "done", start, path,
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
        from levelup.train.history import History

        file = self.steps[name].file
        if file is not None and file.suffix == ".npz":
            return None
        path = self.store.history_file(name, self.steps[name].key)
        if json.loads(path.read_text()).get("kind") in (KIND, "auto-transfer", "gp-correction"):
            return None  # one solve (linear, GP correction; no epochs) or a recipe chosen by CV
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


def _with_labels(db: Database, names: tuple[str, str], arrays: dict[str, Any]) -> Database:
    """A copy of ``db`` with the low and high energies (Hartree) of ``arrays`` and, where it
    holds them, their forces (Hartree/Angstrom, ``forces/<level>``)."""
    out = db.copy()
    for which, name in zip(("low", "high"), names, strict=True):
        out.set(name, arrays[which], level=name)
        if f"{which}_forces" in arrays:
            out.set(f"forces/{name}", arrays[f"{which}_forces"], level=name)
    return out


def _forces_words(forces: str) -> str:
    """How the labels log says which came with forces."""
    return {"none": "", "low": " (low level with forces)", "high": " (high level with forces)",
            "both": " (both with forces)"}[forces]


def _how(record: Any) -> str:
    """'N epochs' of a training History, or the summary of a linear transfer's choice."""
    if hasattr(record, "epoch"):
        return f"{len(record.epoch)} epochs"
    return record.summary()
