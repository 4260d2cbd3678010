"""The last step of a study run (:mod:`levelup.study.runner`): every model's predictions on every
geometry, errors overall and per region, figures and the report, written to the run folder by
:func:`levelup.report.markdown.write_run_folder`. Skipped when nothing it depends on changed."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from typing import Any

import numpy as np

from levelup.atomicwrite import write_text_atomic
from levelup.data import Database
from levelup.study.geometries import scan_coordinate
from levelup.study.stepcache import content_key

NAMES = {"pretrained": "ANI pre-trained (low level)", "transfer": "transfer",
         "tutorial-protocol": "transfer (tutorial protocol)", "scratch": "scratch",
         "delta": "delta"}


def write_outputs(run: Any, db: Database, train_idx: np.ndarray, val_idx: np.ndarray,
                  properties: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``outputs`` step of ``run`` (a :class:`~levelup.study.steps.StudyRun`); returns
    metrics.json's contents. ``properties``: the properties step's properties.json, whose
    tables open the report."""
    from levelup._version import __version__

    study, folder = run.study, run.folder
    start = time.perf_counter()
    output = {k: v for k, v in dataclasses.asdict(study.output).items() if k != "folder"}
    key = content_key({
        "step": "outputs", "levelup": __version__, "labels": run.steps["labels"].key,
        "train": np.asarray(train_idx), "validation": np.asarray(val_idx),
        "models": run.checksums, "output": output,
        "title": study.title, "seed": study.seed, "compare": study.compare,
        "recipe": dataclasses.asdict(study.transfer), "anchors": study.anchors,
        "delta_base": study.delta_base, "delta_method": study.delta_method,
        **({"properties": properties["key"]} if properties is not None else {})})
    metrics_file, report_file, copy = (folder / "metrics.json", folder / "report.md",
                                       folder / "study.toml")
    if study.text and not (copy.is_file() and copy.read_text(encoding="utf-8") == study.text):
        write_text_atomic(copy, study.text)  # the file as last run (comments may have changed)
    if (run.store.entry("outputs").get("key") == key and metrics_file.is_file()
            and report_file.is_file()):
        metrics = json.loads(metrics_file.read_text())
        run.done("outputs", key, "reused", start, report_file, f"reused ({report_file.name})")
        return metrics
    # files are about to change: until they are all written, no key vouches for them
    run.store.record("outputs", {"key": None, "status": "writing"})
    _write(run, db, train_idx, val_idx, properties)
    run.done("outputs", key, "done", start, report_file,
              f"{len(study.output.plots)} figure(s), metrics.json, report.md -> {folder}")
    return json.loads(metrics_file.read_text())


def _predictions(run: Any, db: Database) -> dict[str, np.ndarray]:
    from levelup.transfer.delta import DeltaModel

    low = run.names[0]
    out = {"pretrained": run.model("pretrained").predict(db).energies}
    for name in run.study.compare:
        if name == "delta":
            base = run.model("pretrained") if run.study.delta_base == "model" else None
            model = DeltaModel(base, run.model("delta"), low=low)
        else:
            model = run.model(name)
        out[name] = model.predict(db).energies
    return out


def _write(run: Any, db: Database, train_idx: np.ndarray, val_idx: np.ndarray,
           properties: dict[str, Any] | None) -> None:
    from levelup.report import markdown as report
    from levelup.report.metrics import region_stats
    from levelup.report.propertytables import properties_markdown

    study = run.study
    low, high = run.names
    low_e, high_e = np.asarray(db.get(low)), np.asarray(db.get(high))
    predictions = _predictions(run, db)
    x, xlabel = scan_coordinate(study, db)
    along = x if x is not None else np.zeros(len(db))
    regions = {name: (lo, hi) for name, lo, hi in study.output.regions}
    stats, references = {}, {}
    for name, pred in predictions.items():
        references[name] = low if name == "pretrained" else high
        stats[name] = region_stats(pred, low_e if name == "pretrained" else high_e, along, regions)
    stats[f"{low} itself"] = region_stats(low_e, high_e, along, regions)
    references[f"{low} itself"] = high

    figures = _figures(run, db, predictions, train_idx, val_idx, x, xlabel)

    described = {name: (f"all {len(db)} geometries" if not (math.isfinite(lo) or math.isfinite(hi))
                        else f"{lo:g} <= {xlabel or 'coordinate'} <= {hi:g}")
                 for name, (lo, hi) in regions.items()}
    times = {k: v for k, v in run.seconds.items() if v is not None}
    # the properties open the report: the table a chemist reads first
    tables = "\n\n" + properties_markdown(properties) if properties is not None else ""
    report.write_run_folder(
        run.folder, title=study.title, metrics=stats, figures=figures, notes=_notes(run),
        references=references, regions=described, formats=study.output.formats,
        intro=f"{len(db)} geometries ({study.geometries.source}); an ANI model pre-trained on "
              f"{low} and carried to {high} from {len(train_idx)} training and {len(val_idx)} "
              f"validation points. Errors in kcal/mol. Study file: study.toml." + tables,
        extra={"seed": study.seed, "times_s": times,
               "high_level_points": {"train": train_idx.tolist(),
                                     "validation": val_idx.tolist()},
               "steps": {k: s.key[:16] for k, s in run.steps.items()}})


def _figures(run: Any, db: Database, predictions: dict[str, np.ndarray], train_idx: np.ndarray,
             val_idx: np.ndarray, x: np.ndarray | None, xlabel: str) -> dict[str, Any]:
    """The figures the study's ``[output] plots`` ask for (energy curves, errors, parity,
    learning curves), and the committee's rounds when it chose the points."""
    from levelup.report import plots as plot
    from levelup.report.learning import learning_curves

    shown = {NAMES[k]: v for k, v in predictions.items()}
    tuned = {NAMES[k]: v for k, v in predictions.items() if k != "pretrained"}
    figures: dict[str, Any] = {}
    plots, study = run.study.output.plots, run.study
    low, high = run.names
    low_e, high_e = np.asarray(db.get(low)), np.asarray(db.get(high))
    if x is not None and "energy_curves" in plots:
        order = np.argsort(x, kind="stable")
        curves = {high: high_e[order], **{k: v[order] for k, v in shown.items()}, low: low_e[order]}
        points = {"training points": (x[train_idx], high_e[train_idx])}
        if len(val_idx):
            points["validation points"] = (x[val_idx], high_e[val_idx])
        everywhere = np.isfinite(high_e).all()
        figures["energy_curves"] = plot.energy_curves(
            x[order], curves, points=points, relative_to=high if everywhere else low,
            xlabel=xlabel, ylim=study.output.ylim, title=study.title)
    if x is not None and "errors" in plots and tuned:
        order = np.argsort(x, kind="stable")
        figures["errors"] = plot.error_curves(
            x[order], {k: (v - high_e)[order] for k, v in tuned.items()},
            marks={"training points": x[train_idx]}, xlabel=xlabel)
    known = np.isfinite(high_e)
    if "parity" in plots and tuned and known.any():
        figures["parity"] = plot.parity(high_e[known], {k: v[known] for k, v in tuned.items()},
                                        reference_label=high)
    if "learning_curves" in plots:  # the kernel delta has no history
        figures["learning_curves"] = learning_curves(_histories(run, predictions))
    rounds = _selection_rounds(run)
    if rounds:
        figures["selection"] = _selection_figure(rounds)
    return figures


def _histories(run: Any, names: Any) -> dict[str, Any]:
    """Training histories of the models ``names`` that have one, by their figure label."""
    histories = {("pre-training" if k == "pretrained" else k): run.history(k) for k in names}
    return {k: h for k, h in histories.items() if h is not None}


def _selection_rounds(run: Any) -> list[dict[str, Any]]:
    """The committee's rounds from the run folder's selection.json; [] for other selections."""
    if run.study.selection.method != "committee":
        return []
    return list(json.loads((run.folder / "selection.json").read_text()).get("history", []))


def _selection_figure(rounds: list[dict[str, Any]]) -> Any:
    """The committee run's learning curve: predicted error and CV RMSE per labelled points."""
    from levelup.report.learning import data_efficiency

    def values(key: str) -> list[float]:
        return [float("nan") if r.get(key) is None else float(r[key]) for r in rounds]

    return data_efficiency([r["labelled"] for r in rounds],
                           {"committee's predicted error (RMS spread)": values("predicted_error"),
                            "transfer's cross-validated RMSE": values("cv_rmse")},
                           title="query by committee: rounds")


def _selection_note(run: Any) -> list[str]:
    """Which points the committee chose, in which round, and how sure it then was; or that
    Bayesian design chose them."""
    if run.study.selection.method == "design":
        from levelup.study.comparisons import design_aims_at_energies

        aim = (", half of it and half on the energy differences of [properties] energies, "
               "each optimised on the pre-trained model first (focus = \"energies\")"
               if design_aims_at_energies(run.study) else "")
        return [f"selection: {run.study.selection.count} points by Bayesian design for the "
                "pre-trained model's transfer (levelup.select method 'design': the geometries "
                "whose labels most lower the summed predictive variance over the study's "
                f"geometries{aim})."]
    rounds = _selection_rounds(run)
    if not rounds:
        return []
    parts = [f"round {r['round']}: rows {list(r['chosen'])} ({r['labelled']} labelled, predicted "
             f"error {r['predicted_error']:.2f} kcal/mol)" for r in rounds]
    return [f"selection: query by committee on the pre-trained model (levelup.select), "
            f"{len(rounds)} rounds; " + "; ".join(parts) + ". Figure: selection; the rounds are "
            "in selection.json."]


def _notes(run: Any) -> list[str]:
    study = run.study
    low, high = run.names
    recipe = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(study.transfer).items())
    notes = [f"pre-trained: the ANI model trained on {low} of every geometry "
             f"({run.history('pretrained').best_epoch} epochs to its best validation).",
             *_selection_note(run)]
    if "transfer" in study.compare:
        notes.append(f"transfer: the pre-trained model transferred with levelup.finetune "
                     f"({type(study.transfer).__name__}: {recipe}; anchors on "
                     f"{'every geometry' if study.anchors == 'all' else 'the high-level points'}).")
        choice = run.linear_choice("transfer")
        if choice is not None:
            notes.append(choice.summary() + ".")
    if "tutorial-protocol" in study.compare:
        notes.append("tutorial-protocol: MLatom's transfer-learning tutorial as MLatom trains: "
                     f"pre-trained on {low} with MLatom's recipe (TrainConfig.mlatom() with "
                     "torchani_groups), layers [0, -1] frozen, self energies refitted, learning "
                     "rate 1e-4; its time includes that pre-training.")
    if "scratch" in study.compare:
        notes.append("scratch: the same architecture trained on the high-level points only.")
    if "delta" in study.compare:
        notes.append(_delta_note(run))
    notes.append("Models are kept in models/ under a hash of what determines them; "
                 "manifest.json says which were reused by the last run.")
    return notes


def _delta_note(run: Any) -> str:
    study = run.study
    low, high = run.names
    base = "the pre-trained model" if study.delta_base == "model" else f"{low} itself"
    if study.delta_method == "neural":
        return f"delta: an ANI network of {high} minus {base}, added to {base}."
    model = run.model("delta")
    chosen, info = model.chosen, model.info
    pooled = " (the validation points pooled with the training points)" if info.get(
        "pooled_validation") else ""
    return (f"delta: kernel ridge regression (levelup.transfer.kerneldelta) of {high} minus {base} on "
            f"inverse interatomic distances, added to {base}; fitted on {info.get('points')} "
            f"high-level points{pooled}; "
            f"{chosen['kind']} kernel, alpha {chosen['alpha']:g}, length scale "
            f"{chosen['length_scale']:g} chosen by {info.get('cv')} cross-validation "
            f"(RMSE {model.cv_rmse_kcalmol:.2f} kcal/mol).")


__all__ = ["write_outputs"]
