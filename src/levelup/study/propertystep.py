"""The ``properties`` step of a study run (:mod:`levelup.study.runner`), after the comparisons:
what a chemist checks on a potential (``[properties]``: optimised bond lengths and angles,
harmonic wavenumbers, energy differences), computed on

- the high level directly, with PySCF through the study's label cache (the reference; its
  Hessians analytic where PySCF has them, else differences of analytic gradients, as
  :func:`levelup.properties.frequencies` does),
- every model the study made that is a potential (pre-trained, transfer, tutorial protocol,
  scratch, delta on the pre-trained model; a delta on low-level labels is not one and is
  skipped, with the reason recorded),
- the low level directly: the "no transfer" row.

Each row is kept in the run folder's properties.json under a content key of what determines it
(the settings, the structures, the level or the model's checksum), so a second run reuses every
row and a retrained model recomputes its own row only. The file also holds each row's geometry
measured on the reference's bonds, the differences against the reference, and the high-level
cost: the calculations the reference took and the high-level points the models were fitted on.
"""

from __future__ import annotations

import json
import time
from typing import Any

from levelup.atomicwrite import write_text_atomic
from levelup.errors import ConfigError, DataError
from levelup.jsonvalues import json_ready
from levelup.study.propertyrows import DeltaPotential, compute_row, molecule_arrays
from levelup.study.propertytable import structure_of
from levelup.study.stepcache import content_key
from levelup.study.steps import StudyRun

FORMAT = "levelup-study-properties"
FILE = "properties.json"
#: The models that may have a row, in the table's order (those the study made).
MODELS = ("pretrained", "transfer", "tutorial-protocol", "scratch", "delta")
#: How the table names the models.
LABELS = {"pretrained": "ANI pre-trained (low level)", "transfer": "transfer",
          "tutorial-protocol": "transfer (tutorial protocol)", "scratch": "scratch",
          "delta": "delta"}


def properties_step(run: StudyRun, points: int, forces: bool) -> dict[str, Any] | None:
    """Compute (or reuse) every row and write properties.json; returns its contents, or None
    when the study asks for no property. ``points``: the high-level points the models were
    fitted on; ``forces``: whether those came with forces."""
    from levelup._version import __version__

    props = run.study.properties
    if not props.wanted:
        return None
    start = time.perf_counter()
    molecules = {p.stem: structure_of(p, "structures") for p in props.structures}
    named = {n: structure_of(p, f"energies.{n}") for n, p in props.energies}
    common = {"step": "properties", "levelup": __version__, "settings": _settings(props),
              **{f"structure.{k}.{a}": v for k, m in molecules.items()
                 for a, v in molecule_arrays(m).items()},
              **{f"energies.{k}.{a}": v for k, m in named.items()
                 for a, v in molecule_arrays(m).items()}}
    sources, skipped = _sources(run)
    _check_sources(sources, [*molecules.values(), *named.values()])
    keys = {row: content_key({**common, "row": row, "source": ident})
            for row, (_, ident) in sources.items()}
    key = content_key({"rows": keys, "skipped": skipped})
    path = run.folder / FILE
    saved = _saved_rows(path)
    rows, reused = {}, []
    for row, (source, _) in sources.items():
        if saved.get(row, {}).get("key") == keys[row]:
            rows[row] = saved[row]
            reused.append(row)
            continue
        run.log(f"properties: computing on {source.name} ...")
        hessian = "gradients" if isinstance(source.model, DeltaPotential) else "auto"
        rows[row] = {"key": keys[row], **compute_row(
            source, props, molecules, named, hessian=hessian, cache=run.cache,
            workers=run.study.levels.workers, progress=run.progress)}
        _write(path, {"format": FORMAT, "key": None, "rows": rows})  # kept if interrupted
    result = _write(path, _assemble(run, key, rows, skipped, points, forces))
    status = "reused" if len(reused) == len(rows) else "done"
    run.done("properties", key, status, start, path,
             f"reused ({path.name})" if status == "reused" else
             f"{len(rows) - len(reused)} of {len(rows)} rows computed -> {path.name}")
    return result


def _settings(props: Any) -> dict[str, Any]:
    return {"optimize": props.optimize, "frequencies": props.frequencies, "fmax": props.fmax,
            "steps": props.steps, "constraints": props.constraints,
            "reference": props.reference, "energy_names": [n for n, _ in props.energies]}


def _sources(run: StudyRun) -> tuple[dict[str, tuple[Any, Any]], dict[str, str]]:
    """(row -> (Source, what identifies it in the row's key), row -> why it has none): the high
    level, each model the study made that is a potential, the low level."""
    from levelup.properties.sources import Source, source_of

    study, (low, high) = run.study, run.names
    level = {"cache": run.cache, "workers": study.levels.workers}
    sources: dict[str, tuple[Any, Any]] = {"high": (source_of(high, **level), high)}
    skipped: dict[str, str] = {}
    for name in MODELS:
        if name not in run.steps:
            continue
        if name == "delta":
            if study.delta_base != "model":
                skipped[name] = ("a correction added to the low-level labels of the study's "
                                 "geometries, not a potential: nothing to optimise on")
                continue
            from levelup.transfer.delta import DeltaModel

            model = DeltaPotential(DeltaModel(run.model("pretrained"), run.model("delta")))
            ident = [run.checksums["pretrained"], run.checksums["delta"]]
        else:
            model, ident = run.model(name), run.checksums[name]
        sources[name] = (Source(name=name, model=model), ident)
    sources["low"] = (source_of(low, **level), low)
    return sources, skipped


def _check_sources(sources: dict[str, tuple[Any, Any]], molecules: list[Any]) -> None:
    """Every source can treat every structure, before any calculation (ConfigError naming the
    structure and the source)."""
    from levelup.errors import LevelOfTheoryError

    for source, _ in sources.values():
        for mol in molecules:
            try:
                source.check(mol)
            except (DataError, LevelOfTheoryError) as exc:
                raise ConfigError(f"[properties] a structure ({mol.formula}) cannot be treated "
                                  f"by {source.name}: {exc}") from None


def _saved_rows(path: Any) -> dict[str, Any]:
    """The rows of an earlier properties.json ({} when there is none or it is unreadable)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    ok = isinstance(data, dict) and data.get("format") == FORMAT
    rows = data.get("rows") if ok else None
    return rows if isinstance(rows, dict) else {}


def _write(path: Any, data: dict[str, Any]) -> dict[str, Any]:
    """Write ``data`` to ``path`` atomically; returns it as read back (plain JSON values, NaN
    as null), so that a first run and a reuse return the same."""
    plain = json_ready(data, where=FILE)
    write_text_atomic(path, json.dumps(plain, indent=1) + "\n")
    return plain


def _assemble(run: StudyRun, key: str, rows: dict[str, Any], skipped: dict[str, str],
              points: int, forces: bool) -> dict[str, Any]:
    """properties.json: the rows, each one's geometry on the reference's bonds, the
    differences against the reference, and the high-level cost."""
    from levelup.study.propertycompare import differences, geometries

    low, high = run.names
    labels = {"high": f"{high} (reference)", **LABELS, "low": f"{low} (no transfer)"}
    return {
        "format": FORMAT, "key": key, "reference": "high",
        "units": {"bonds": "Angstrom", "angles": "degrees", "wavenumbers": "cm^-1",
                  "energies": "kcal/mol"},
        "labels": {row: labels[row] for row in rows},
        "levels": {"high": high, "low": low},
        "rows": rows,
        "geometry": geometries(rows),
        "differences": differences(rows),
        "skipped": skipped,
        "high_level_cost": {
            "reference": rows["high"]["cost"],
            "models": {"energies": int(points), "gradients": int(points) if forces else 0}},
    }


__all__ = ["FILE", "FORMAT", "LABELS", "MODELS", "properties_step"]
