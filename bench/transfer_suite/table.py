"""The table of the suite's systems, from ``systems.py`` and ``data/costs.json``.

    .venv/bin/python bench/transfer_suite/table.py           # print the markdown table
    .venv/bin/python bench/transfer_suite/table.py --write   # and put it into README.md

``--write`` replaces what lies between ``<!-- begin systems -->`` and ``<!-- end systems -->`` in
``bench/transfer_suite/README.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from systems import SYSTEMS, System  # noqa: E402

COSTS = HERE / "data" / "costs.json"
README = HERE / "README.md"
BEGIN, END = "<!-- begin systems -->", "<!-- end systems -->"


def cost(entry: dict, what: str) -> str:
    """'0.123' CPU s/point for one step, '0.123*' when timed on a probe, '-' when unknown."""
    c = entry.get(what) or {}
    if not c.get("cpu_s_per_point"):
        return "-"
    value = c["cpu_s_per_point"]
    text = f"{value:.3f}" if value < 10 else f"{value:.0f}"
    return text + ("*" if c.get("probe") else "")


def state(entry: dict) -> str:
    """Whether the system's data file holds every label."""
    if entry.get("complete"):
        return "complete"
    if entry.get("energies_done"):
        return "energies only (forces running/partial)"
    return "not done" if not entry else "partial"


def row(system: System, entry: dict) -> str:
    """One markdown table row."""
    elements = "".join(dict.fromkeys(system.symbols))
    model = "ANI-1x" if system.pretrained == "ani-1x" else f"trained on {system.low}"
    forces = f"{system.n_forces}" if system.n_forces else "0"
    cells = [f"`{system.name}`", str(len(system.symbols)), elements, system.sampling,
             f"{system.low} -> {system.high}", model, str(system.n_geometries), forces,
             system.probes, cost(entry, "low"), cost(entry, "high_energy"),
             cost(entry, "high_energy_forces"), state(entry)]
    return "| " + " | ".join(cells) + " |"


def table() -> str:
    """The markdown table of every system."""
    costs = json.loads(COSTS.read_text())["systems"] if COSTS.exists() else {}
    head = ("| system | atoms | elements | sampling (seeded) | low -> high | pre-trained model | "
            "geometries | with high-level forces | probes | low CPU s/pt | high E CPU s/pt | "
            "high E+F CPU s/pt | data file |")
    rule = "|" + "---|" * 13
    return "\n".join([head, rule] + [row(s, costs.get(s.name, {})) for s in SYSTEMS])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="put the table into README.md")
    args = parser.parse_args()
    text = table()
    print(text)
    if args.write:
        readme = README.read_text()
        head, rest = readme.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        README.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")


if __name__ == "__main__":
    main()
