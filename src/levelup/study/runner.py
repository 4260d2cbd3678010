"""Running a study file (:mod:`levelup.study.schema`) with a step cache: ``levelup run STUDY.toml``.

Steps, in order, each skipped when what it would make is already in the run folder::

    labels      low level on every geometry, high level on the selected ones (or on all of them,
                to measure errors everywhere); through the label cache, then kept as labels.npz
    pretrained  an ANI model trained on the low level of every geometry
    transfer    the pre-trained model fine-tuned on the high-level points (levelup's recipe)
    tutorial-protocol
                MLatom's tutorial protocol: its own pre-training, layers [0, -1] frozen, rate 1e-4
    scratch     the same architecture trained on the high-level points only
    delta       a model of high minus low level, added to the pre-trained model (or to the
                low-level labels): kernel ridge regression (default; stored as .npz, fitted in
                seconds) or an ANI network (``[delta] method = "neural"``)
    properties  with ``[properties]``: optimised geometries, harmonic wavenumbers and energy
                differences on every model, the high level (the reference) and the low level;
                kept as properties.json, row by row (levelup.study.propertystep)
    outputs     predictions, metrics.json, figures and report.md

Models are stored by :class:`~levelup.study.stepcache.StepCache` under a content hash of what
determines them (a transfer's key holds its parent model's checksum), so changing e.g. the
transfer recipe retrains the transfer model only. Example::

    result = run_study("examples/h2_tutorial.toml", log=print)
    result.steps["transfer"].status          # "trained" or "reused"
    result.metrics["models"]["transfer"]["rmse_all_kcalmol"]
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from levelup.errors import ConfigError, DataError
from levelup.study import comparisons
from levelup.study.geometries import build_geometries, select
from levelup.study.reader import read_study
from levelup.study.schema import Study
from levelup.study.steps import StepRecord, StudyRun

#: ``[selection] method``s that choose for the pre-trained model, so run after it
AFTER_PRETRAINING = ("design", "committee")


@dataclass(frozen=True)
class StudyResult:
    """What :func:`run_study` did: ``steps`` in order, the contents of ``metrics.json``."""

    folder: Path
    steps: dict[str, StepRecord]
    metrics: dict[str, Any] = field(repr=False)

    @property
    def report(self) -> Path:
        """The run folder's report.md."""
        return self.folder / "report.md"

    @property
    def reused(self) -> list[str]:
        """Names of the steps found in the run folder."""
        return [s.name for s in self.steps.values() if s.status == "reused"]

    @property
    def done(self) -> list[str]:
        """Names of the steps computed in this run."""
        return [s.name for s in self.steps.values() if s.status == "done"]


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
        return _execute(StudyRun(study, folder, cache, progress, log))
    finally:
        torch.set_num_threads(before)


def _execute(run: StudyRun) -> StudyResult:
    """Every step of ``run`` in order: geometries, labels, the pre-trained model, the
    comparisons of ``compare``, the properties, outputs."""
    from levelup.study.outputs import write_outputs
    from levelup.study.propertystep import properties_step

    study = run.study
    db = build_geometries(study.geometries, cache=run.cache, progress=run.progress)
    if len(db) < 2:
        raise DataError(f"the study has {len(db)} geometries; it needs at least 2")
    method = study.selection.method
    train_idx, val_idx = _chosen(study, db)
    db = run.labels(db, np.concatenate([train_idx, val_idx]))
    elements, arch = comparisons.architecture(study, db)
    new_model = comparisons.model_factory(study, elements)
    comparisons.pretrain_step(run, db, arch, new_model)
    if method in AFTER_PRETRAINING:  # the points depend on the pre-trained model
        train_idx = (comparisons.committee_step(run, db) if method == "committee"
                     else comparisons.design_step(run, db))
        db = run.labels(db, train_idx)
    run.log(f"geometries: {len(db)} ({study.geometries.source}); high-level points: "
            f"{len(train_idx)} to train, {len(val_idx)} to validate")
    data = comparisons.points(run, db, train_idx, val_idx)
    for name in study.compare:
        if name == "transfer":
            comparisons.transfer_step(run, data)
        elif name == "tutorial-protocol":
            comparisons.tutorial_step(run, data)
        elif name == "scratch":
            comparisons.scratch_step(run, data, arch, new_model)
        elif name == "delta":
            comparisons.delta_step(run, data, arch, new_model)
    properties = properties_step(run, len(train_idx) + len(val_idx),
                                 study.levels.with_forces("high"))
    metrics = write_outputs(run, db, train_idx, val_idx, properties)
    return StudyResult(run.folder, dict(run.steps), metrics)


def _chosen(study: Study, db: Any) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, validation rows) known before any model: none yet for the selections
    that choose for the pre-trained model (:data:`AFTER_PRETRAINING`)."""
    if study.selection.method in AFTER_PRETRAINING:
        empty = np.array([], dtype=np.int64)
        return empty, empty
    train_idx, val_idx = select(study.selection, db)
    if len(train_idx) == 0:
        raise ConfigError(f"[selection] picks no training point among {len(db)} geometries "
                          f"(validation: {len(val_idx)}): choose more")
    return train_idx, val_idx


__all__ = ["StepRecord", "StudyResult", "build_geometries", "run_study", "select"]
