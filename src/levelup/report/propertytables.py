"""The "Properties" section of a study's report: the table a chemist reads first (each source's
optimised bond lengths and angles, harmonic wavenumbers and energy differences, the reference
first and the low level, "no transfer", last) and the table of differences against the
reference.

It renders the plain contents of a run folder's properties.json (written by
:mod:`levelup.study.propertystep`)::

    {"labels": {row: "how the table names it"},            # in the table's order
     "reference": "high", "levels": {"high": ..., "low": ...},
     "rows": {row: {"structures": {stem: {"frequencies": {"wavenumbers_cm-1": [...]}|None}},
                    "energies": {"reference": name, "relative_kcal_per_mol": {...}}|None}},
     "geometry": {row: {stem: {"bonds_angstrom": {...}, "angles_degrees": {...}}}},
     "differences": {row: {"max_abs_wavenumber_cm-1": ..., "max_abs_bond_angstrom": ...,
                           "max_abs_angle_degrees": ..., "abs_energy_kcal_per_mol": {...}}},
     "skipped": {row: "why"}, "high_level_cost": {"reference": {...}, "models": {...}}}

Units: Angstrom, degrees, cm^-1 (imaginary wavenumbers negative), kcal/mol.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Decimals of each kind of value in the tables.
DECIMALS = {"bond": 4, "angle": 2, "wavenumber": 1, "energy": 2}


def _value(value: Any, kind: str) -> str:
    if value is None:
        return "–"
    return f"{float(value):.{DECIMALS[kind]}f}"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1),
            *("| " + " | ".join(r) + " |" for r in rows), ""]


def _columns(props: Mapping[str, Any]) -> list[tuple[str, str, Any]]:
    """(heading, kind, how to get the value from a row name) for every column, from the
    reference row: each structure's bonds, angles and wavenumbers, then each energy
    difference."""
    ref = props["reference"]
    geometry, rows = props["geometry"], props["rows"]
    several = len(geometry[ref]) > 1
    columns: list[tuple[str, str, Any]] = []
    for stem, params in geometry[ref].items():
        prefix = f"{stem} " if several else ""
        for name in params["bonds_angstrom"]:
            columns.append((f"{prefix}{name} (Å)", "bond",
                            lambda r, s=stem, n=name: geometry[r][s]["bonds_angstrom"].get(n)))
        for name in params["angles_degrees"]:
            columns.append((f"{prefix}{name} (°)", "angle",
                            lambda r, s=stem, n=name: geometry[r][s]["angles_degrees"].get(n)))
        freq = rows[ref]["structures"][stem].get("frequencies")
        for k in range(len(freq["wavenumbers_cm-1"]) if freq else 0):
            columns.append((f"{prefix}ω{k + 1} (cm⁻¹)", "wavenumber",
                            lambda r, s=stem, k=k: _wavenumber(rows[r], s, k)))
    energies = rows[ref].get("energies")
    for name in (energies or {}).get("relative_kcal_per_mol", {}):
        if name != energies["reference"]:
            columns.append((f"{name} − {energies['reference']} (kcal/mol)", "energy",
                            lambda r, n=name: (rows[r].get("energies") or {})
                            .get("relative_kcal_per_mol", {}).get(n)))
    return columns


def _wavenumber(row: Mapping[str, Any], stem: str, k: int) -> float | None:
    freq = row["structures"][stem].get("frequencies")
    values = sorted(freq["wavenumbers_cm-1"]) if freq else []
    return values[k] if k < len(values) else None


def properties_table_markdown(props: Mapping[str, Any]) -> str:
    """The properties table: a row per source (the reference first), a column per bond, angle,
    wavenumber (ascending) and energy difference."""
    columns = _columns(props)
    rows = [[props["labels"][r]] + [_value(get(r), kind) for _, kind, get in columns]
            for r in props["labels"]]
    return "\n".join(_table(["source"] + [c[0] for c in columns], rows))


def differences_table_markdown(props: Mapping[str, Any]) -> str:
    """The differences table: a row per source but the reference, its largest absolute
    differences from the reference (wavenumber, bond, angle: the columns some source has) and
    each energy difference's."""
    diffs = props["differences"]
    kinds = [(key, head, kind) for key, head, kind in (
        ("max_abs_wavenumber_cm-1", "max \\|Δω\\| (cm⁻¹)", "wavenumber"),
        ("max_abs_bond_angstrom", "max \\|Δbond\\| (Å)", "bond"),
        ("max_abs_angle_degrees", "max \\|Δangle\\| (°)", "angle"))
        if any(d[key] is not None for d in diffs.values())]
    names = sorted({n for d in diffs.values() for n in d["abs_energy_kcal_per_mol"]})
    head = ["source", *(h for _, h, _ in kinds), *(f"\\|Δ {n}\\| (kcal/mol)" for n in names)]
    rows = [[props["labels"][row], *(_value(diffs[row][key], kind) for key, _, kind in kinds),
             *(_value(diffs[row]["abs_energy_kcal_per_mol"].get(n), "energy") for n in names)]
            for row in props["labels"] if row in diffs]
    return "\n".join(_table(head, rows))


def _cost_sentence(props: Mapping[str, Any]) -> str:
    cost = props["high_level_cost"]
    ref, models, high = cost["reference"], cost["models"], props["levels"]["high"]
    parts = [_count(ref["gradients"], "gradient"), _count(ref["hessians"], "analytic Hessian"),
             _count(ref["energies"], "single-point energy", "single-point energies")]
    took = ", ".join(p for p in parts if not p.startswith("0 ")) or "no calculation"
    forces = f", {models['gradients']} of them with forces" if models["gradients"] else ""
    return (f"High-level cost: the reference took {took} at {high}; the models were fitted on "
            f"{_count(models['energies'], 'point')} of it{forces}.")


def _count(n: int, one: str, several: str | None = None) -> str:
    return f"{n} {one if n == 1 else several or one + 's'}"


def properties_markdown(props: Mapping[str, Any]) -> str:
    """The report's "Properties" section: both tables, the high-level cost, and the models left
    out (with the reason)."""
    high, low = props["levels"]["high"], props["levels"]["low"]
    md = ["## Properties", "",
          f"Each source's own optimised structure: bond lengths (Å) and angles (°) on "
          f"{high}'s bonds, harmonic wavenumbers (cm⁻¹, ascending; imaginary ones negative) and "
          f"energy differences (kcal/mol). {high} is computed directly (the reference); {low} "
          "itself is the row without transfer.", "",
          properties_table_markdown(props),
          f"Largest absolute differences from {high}:", "", differences_table_markdown(props),
          _cost_sentence(props), ""]
    for row, why in props.get("skipped", {}).items():
        md += [f"No row for {row}: {why}.", ""]
    md.append("All values: [properties.json](properties.json).")
    return "\n".join(md) + "\n"


__all__ = ["DECIMALS", "differences_table_markdown", "properties_markdown",
           "properties_table_markdown"]
