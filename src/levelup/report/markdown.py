"""The run folder of a study: figures (PNG and SVG), ``metrics.json`` and a Markdown report.

Example (the H2 demo)::

    stats = {"transfer": region_stats(pred, cisd, r, H2_REGIONS), ...}   # levelup.report.metrics
    write_run_folder("runs/demo", title="H2: HF/STO-3G -> CISD/cc-pVDZ", metrics=stats,
                     figures={"energy_curves": fig}, references={"transfer": "CISD/cc-pVDZ"},
                     extra={"seed": 0, "times_s": {"labels": 9.1}})

gives ``runs/demo/{energy_curves.png, energy_curves.svg, metrics.json, report.md}`` with
``metrics.json`` shaped as ``{"models": {"transfer": {"rmse_all_kcalmol": ..., ...}}, "seed": 0,
"times_s": {...}, ...}``. Every file is written atomically; ``report.md`` last.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from levelup.atomicwrite import write_text_atomic
from levelup.errors import ConfigError, DataError
from levelup.jsonvalues import json_ready
from levelup.report.figure import save_figure
from levelup.units import HARTREE_TO_KCALMOL

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Statistics that :func:`flat_metrics` flattens (all in kcal/mol).
FLAT_STATISTICS = ("rmse", "mae", "max")
#: Top-level keys of ``metrics.json`` that ``extra`` may not override.
RESERVED_KEYS = ("title", "units", "models", "regions", "references", "details")

_STEM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")

StatsByModel = Mapping[str, Mapping[str, Mapping[str, Any]]]


def flat_metrics(stats: StatsByModel, statistics: Sequence[str] = FLAT_STATISTICS) -> dict[str, dict]:
    """Flatten model -> region -> statistics into model -> ``"<stat>_<region>_kcalmol"`` -> value.

    Args:
        stats: model -> region -> a dict of :func:`levelup.report.metrics.error_stats` (kcal/mol).
        statistics: which statistics to keep (default RMSE, MAE and max, for every region).

    Returns:
        e.g. ``{"transfer": {"rmse_all_kcalmol": 1.2, "mae_all_kcalmol": 0.8, "max_all_kcalmol":
        4.1, "rmse_0.5-2.5_kcalmol": ...}}`` (floats; NaN where a region held no point).
    """
    out: dict[str, dict] = {}
    for model, regions in stats.items():
        row: dict[str, float] = {}
        for region, values in regions.items():
            for stat in statistics:
                if stat not in values:
                    raise DataError(f"statistics of {model!r} over {region!r} lack {stat!r}; they "
                                    f"have {sorted(values)} (use levelup.report.metrics.error_stats)")
                row[f"{stat}_{region}_kcalmol"] = float(values[stat])
        out[model] = row
    return out


def _number(value: Any) -> str:
    """A statistic as table text: 3 significant digits below 1, 2 decimals above; '–' for NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    v = float(value)
    return f"{v:.3g}" if abs(v) < 1 else f"{v:.2f}"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _regions_of(stats: StatsByModel) -> list[str]:
    seen: dict[str, None] = {}
    for regions in stats.values():
        seen.update(dict.fromkeys(regions))
    return list(seen)


def metrics_table_markdown(
    stats: StatsByModel,
    region: str,
    *,
    references: Mapping[str, str] | None = None,
) -> str:
    """A Markdown table of RMSE, MAE, max and mean error (kcal/mol) and n over one region.

    Args:
        stats: model -> region -> :func:`levelup.report.metrics.error_stats` dict.
        region: which region to tabulate; models without it are left out.
        references: model -> what it is compared with ("CISD/cc-pVDZ"), shown as a "vs" column.
    """
    head = ["model"] + (["vs"] if references else []) + ["RMSE", "MAE", "max abs. error", "mean error",
                                                         "n"]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] * (2 if references else 1) + ["---:"] * 5) + "|"]
    for model, regions in stats.items():
        if region not in regions:
            continue
        s = regions[region]
        row = [_cell(model)] + ([_cell(references.get(model, ""))] if references else [])
        row += [_number(s.get(k)) for k in ("rmse", "mae", "max", "mean", "n")]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def rmse_table_markdown(stats: StatsByModel, *, references: Mapping[str, str] | None = None) -> str:
    """A Markdown table of the RMSE (kcal/mol) of every model (rows) over every region (columns)."""
    regions = _regions_of(stats)
    head = ["model"] + (["vs"] if references else []) + [_cell(r) for r in regions]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] * (2 if references else 1) + ["---:"] * len(regions)) + "|"]
    for model, by_region in stats.items():
        row = [_cell(model)] + ([_cell(references.get(model, ""))] if references else [])
        row += [_number(by_region[r]["rmse"]) if r in by_region else "" for r in regions]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _extra_markdown(extra: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    tables: list[str] = []
    for key, value in extra.items():
        if isinstance(value, Mapping) and all(not isinstance(v, (Mapping, list)) for v in value.values()):
            column = "seconds" if key.endswith("_s") else "value"
            tables += ["", f"{_cell(key)}:", "", f"| {_cell(key)} | {column} |", "|---|---:|"]
            tables += [f"| {_cell(k)} | {_number(v) if not isinstance(v, str) else _cell(v)} |"
                       for k, v in value.items()]
        else:
            lines.append(f"- {key}: {_cell(json.dumps(json_ready(value)))}")
    return lines + tables


def write_run_folder(
    folder: str | os.PathLike,
    *,
    title: str,
    metrics: StatsByModel,
    figures: Mapping[str, Figure],
    notes: Sequence[str] = (),
    extra: Mapping[str, Any] | None = None,
    references: Mapping[str, str] | None = None,
    regions: Mapping[str, str] | None = None,
    captions: Mapping[str, str] | None = None,
    intro: str | None = None,
    formats: Sequence[str] = ("png", "svg"),
) -> Path:
    """Write a study's run folder: each figure as PNG and SVG, ``metrics.json``, ``report.md``.

    Args:
        folder: the run folder (created if needed; files of the same names are replaced).
        title: the report's title.
        metrics: model -> region -> :func:`levelup.report.metrics.error_stats` dict (kcal/mol).
        figures: file stem ("energy_curves") -> figure; embedded in the report in this order.
        notes: sentences listed at the end of the report.
        extra: merged at the top level of ``metrics.json`` (``seed``, ``times_s``, ...) and listed
            in the report; may not use the keys of :data:`RESERVED_KEYS`.
        references: model -> what its errors are measured against ("CISD/cc-pVDZ").
        regions: region name -> a description ("0.5 <= r <= 2.5 Angstrom: bound region").
        captions: figure stem -> a caption under the figure.
        intro: a paragraph under the title.
        formats: figure formats; the first is the one embedded in the report.

    Returns:
        The path of ``report.md``. ``metrics.json`` holds ``{"title", "units": "kcal/mol",
        "models": flat_metrics(metrics), "references", "regions", "details": metrics, **extra}``
        (NaN written as null).
    """
    folder, extra = Path(folder), dict(extra or {})
    _check_run_folder_inputs(extra, figures, formats)
    document = {"title": title, "units": "kcal/mol", "models": flat_metrics(metrics),
                "references": dict(references or {}), "regions": dict(regions or {}),
                "details": metrics, **extra}
    # made before anything is written, so that bad input leaves the folder as it was
    metrics_json = json.dumps(json_ready(document, where="metrics.json"), indent=1,
                              allow_nan=False, ensure_ascii=False)
    folder.mkdir(parents=True, exist_ok=True)
    files = {name: save_figure(fig, folder / name, formats) for name, fig in figures.items()}
    write_text_atomic(folder / "metrics.json", metrics_json + "\n")
    md = [f"# {title}", ""] + ([intro.strip(), ""] if intro else [])
    md += _accuracy_markdown(metrics, references, regions)
    md += _figures_markdown(files, captions)
    if extra:
        md += ["## Run", ""] + _extra_markdown(extra) + [""]
    if notes:
        md += ["## Notes", ""] + [f"- {n.strip()}" for n in notes] + [""]
    md += ["All numbers: [metrics.json](metrics.json).", ""]
    report = folder / "report.md"
    write_text_atomic(report, "\n".join(md))
    return report


def _check_run_folder_inputs(extra: Mapping[str, Any], figures: Mapping[str, Any],
                             formats: Sequence[str]) -> None:
    """ConfigError for a reserved key in ``extra``, a figure name unfit for a file name, or no
    format."""
    clash = sorted(set(extra) & set(RESERVED_KEYS))
    if clash:
        raise ConfigError(f"extra may not set {clash}: metrics.json reserves {list(RESERVED_KEYS)}")
    bad = [name for name in figures if not _STEM.match(name)]
    if bad:
        raise ConfigError(f"figure names become file names; use letters, digits, '_', '-' or '.' "
                          f"(got {bad})")
    if not formats:
        raise ConfigError("formats must name at least one figure format, e.g. ('png', 'svg')")


def _accuracy_markdown(metrics: StatsByModel, references: Mapping[str, str] | None,
                       regions: Mapping[str, str] | None) -> list[str]:
    """The report's accuracy section: the RMSE table, then one table per region."""
    md = ["## Accuracy", "",
          "Errors are predicted minus reference energies in kcal/mol (1 Hartree = "
          f"{HARTREE_TO_KCALMOL} kcal/mol): root-mean-square (RMSE), mean absolute (MAE), "
          "largest absolute (max abs. error) and mean signed error over the n points of each region.",
          "", "RMSE (kcal/mol) by region:", "", rmse_table_markdown(metrics, references=references)]
    for region in _regions_of(metrics):
        described = (regions or {}).get(region)
        md += [f"### Region `{region}`" + (f": {described}" if described else ""), "",
               metrics_table_markdown(metrics, region, references=references)]
    return md


def _figures_markdown(files: Mapping[str, list[Path]], captions: Mapping[str, str] | None
                      ) -> list[str]:
    """The report's figures section: each figure embedded (its first format), with links to
    every format and its caption; nothing without figures."""
    md = ["## Figures", ""] if files else []
    for name, paths in files.items():
        links = ", ".join(f"[{p.suffix[1:].upper()}]({p.name})" for p in paths)
        caption = (captions or {}).get(name, "")
        md += [f"![{name}]({paths[0].name})", "",
               (f"*{caption.strip()}* " if caption else "") + f"({links})", ""]
    return md
