"""``levelup info FILE``: what a file holds.

A database (.h5, or any file ASE reads): molecules, atoms, elements, formulas, charges and
multiplicities, and each property with its unit, level of theory and how many values are missing.
A model file: kind, elements, AEV, layers, parameters (and which are frozen), self energies and
the metadata it was saved with. A TorchScript export: what ``levelup export`` recorded.
Model files are described from their header, without loading the weights.
"""

from __future__ import annotations

import argparse
import json
import struct
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from levelup.data import Database
from levelup.elements import symbol
from levelup.errors import DataError, ModelFileError
from levelup.model.files import read_header

EXAMPLE = """examples:
  levelup info h2.h5
  levelup info water.extxyz
  levelup info h2.pt
  levelup info h2.ts"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``levelup info`` on the CLI's subcommand parser."""
    p = sub.add_parser("info", help="describe a database or model file", description=__doc__,
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", help="a levelup database (.h5), any file ASE reads, a levelup model "
                   "file, or a TorchScript export")
    p.set_defaults(func=run)


def _kind(path: Path) -> str:
    """'model', 'torchscript' or 'database', from the first bytes of the file."""
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a file: give the path of a database, model "
                        "file or TorchScript export in it")
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head[:2] == b"PK":
        return "torchscript"
    if len(head) >= 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] < 100_000_000:
        return "model"  # safetensors: 8-byte header length, then a JSON header
    return "database"


def run(args: argparse.Namespace) -> int:
    """Describe a database, model file or TorchScript export without loading any code from it."""
    path = Path(args.path)
    kind = _kind(path)
    if kind == "model":
        lines = _described(describe_model, read_header(path), path, "levelup header")
    elif kind == "torchscript":
        from levelup.model.export import EXTRA_FILE, read_export_info

        lines = _described(describe_export, read_export_info(path), path, EXTRA_FILE)
    else:
        lines = describe_database(Database.read(path))
    size = path.stat().st_size
    print(f"{path} ({_bytes(size)}): {lines[0]}")
    for line in lines[1:]:
        print(f"  {line}")
    return 0


def _described(describe: Any, header: dict[str, Any], path: Path, what: str) -> list[str]:
    """``describe(header)``, with a header that does not have the layout levelup writes (a
    hand-edited or foreign file) reported as a ModelFileError rather than a traceback."""
    try:
        return describe(header)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise ModelFileError(f"{path}: corrupted or hand-edited file: its {what} does not have "
                             f"the layout levelup writes ({type(exc).__name__}: {exc})") from None


def _bytes(n: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return ""  # pragma: no cover


# ---------------------------------------------------------------------------------- databases
def describe_database(db: Database) -> list[str]:
    """Lines describing a database: sizes, elements, formulas, charges, properties."""
    n_atoms = np.asarray(db.n_atoms)
    if len(db) == 0:
        return ["levelup database, empty"]
    sizes = (f"{n_atoms.min()}" if n_atoms.min() == n_atoms.max()
             else f"{n_atoms.min()}-{n_atoms.max()}")
    lines = [f"levelup database, {len(db)} molecules of {sizes} atoms ({int(n_atoms.sum())} atoms "
             "in all)"]
    lines.append(f"elements: {' '.join(symbol(z) for z in db.elements) or 'none'}")
    counts = Counter(db.formulas)
    shown = ", ".join(f"{f} ({c})" for f, c in counts.most_common(8))
    more = f", and {len(counts) - 8} more" if len(counts) > 8 else ""
    lines.append(f"formulas: {shown}{more}")
    lines.append(f"charges: {_values(db.charges)}; multiplicities: {_values(db.multiplicities)}")
    if not db.properties:
        lines.append("properties: none (label them with levelup label)")
        return lines
    lines.append("properties:")
    for name, meta in db.properties.items():
        values = db.get(name)
        per_mol = values.reshape(len(db), -1)
        missing = int(np.isnan(per_mol).all(axis=1).sum())
        level = f", level {meta.level}" if meta.level else ""
        where = "per atom" if meta.per_atom else "per molecule"
        text = f"  {name}: {meta.unit}{level}, {where}, {len(db) - missing} values, {missing} missing"
        if not meta.per_atom and missing < len(db):
            finite = values[np.isfinite(values)]
            text += f", range {finite.min():.8g} .. {finite.max():.8g}"
        lines.append(text)
    return lines


def _values(arr: np.ndarray) -> str:
    counts = Counter(int(v) for v in arr)
    return ", ".join(f"{v} ({c})" if len(counts) > 1 else str(v) for v, c in sorted(counts.items()))


# ---------------------------------------------------------------------------------- models
def _layers(spec: list[dict[str, Any]]) -> tuple[str, int]:
    """'384 -> 160 -> 128 -> 96 -> 1, CELU(alpha=0.1)' and the number of parameters."""
    widths, acts, n_params = [], set(), 0
    for layer in spec:
        if layer.get("type") == "Linear":
            if not widths:
                widths.append(layer["in"])
            widths.append(layer["out"])
            n_params += layer["in"] * layer["out"] + (layer["out"] if layer.get("bias") else 0)
        else:
            args = ", ".join(f"{k}={v:g}" for k, v in layer.items() if k != "type")
            acts.add(f"{layer.get('type')}({args})" if args else str(layer.get("type")))
    return f"{' -> '.join(map(str, widths))}, {', '.join(sorted(acts)) or 'no activation'}", \
        n_params


def _frozen(names: list[str], prefix: str) -> dict[str, list[str]]:
    """{'H': ['0 (weight, bias)', '6 (weight)'], ...} from 'networks.H.0.weight' names."""
    by_layer: dict[str, dict[str, list[str]]] = {}
    for name in names:
        parts = name.removeprefix(prefix).split(".")
        if len(parts) == 4 and parts[0] == "networks":
            by_layer.setdefault(parts[1], {}).setdefault(parts[2], []).append(parts[3])
    return {el: [f"{pos} ({', '.join(kinds)})" for pos, kinds in sorted(layers.items(),
                                                                          key=lambda x: int(x[0]))]
            for el, layers in by_layer.items()}


def _n_frozen(member: dict[str, Any], prefix: str) -> int:
    """Number of frozen numbers (weights and biases) of a member, from its layer specs."""
    n = 0
    for name in member.get("frozen", []):
        parts = name.removeprefix(prefix).split(".")
        if len(parts) != 4 or parts[0] != "networks":
            continue
        layer = member.get("networks", {}).get(parts[1], [])[int(parts[2])]
        n += layer["out"] * (layer["in"] if parts[3] == "weight" else 1)
    return n


def _member_lines(member: dict[str, Any], prefix: str) -> list[str]:
    lines = []
    frozen = _frozen(member.get("frozen", []), prefix)
    total = 0
    for element, spec in member.get("networks", {}).items():
        text, n = _layers(spec)
        total += n
        lines.append(f"  {element}: {text}; {n:,} parameters"
                     + (f"; frozen Linear {', '.join(frozen[element])}" if element in frozen else
                        ""))
    lines.insert(0, f"networks ({member.get('dtype', '?')}, {total:,} parameters of which "
                 f"{_n_frozen(member, prefix):,} frozen; Linear layers at positions 0, 2, 4, ...):")
    se = member.get("self_energies", {})
    lines.append("self energies (Hartree): " + ", ".join(f"{k} {v:.8f}" for k, v in se.items()))
    return lines


def _aev_line(aev: dict[str, Any], n_elements: int) -> str:
    radial = len(aev["EtaR"]) * len(aev["ShfR"])
    angular = len(aev["EtaA"]) * len(aev["Zeta"]) * len(aev["ShfA"]) * len(aev["ShfZ"])
    length = n_elements * radial + n_elements * (n_elements + 1) // 2 * angular
    return (f"AEV: radial cutoff {aev['Rcr']:g} Angstrom, angular cutoff {aev['Rca']:g} Angstrom, "
            f"{length} numbers per atom ({radial} radial per element, {angular} angular per "
            f"element pair)")


def describe_model(header: dict[str, Any]) -> list[str]:
    """Lines describing a model file from its header (see :mod:`levelup.model.files`)."""
    members = header.get("members") or []
    kind = header.get("kind", "?")
    title = (f"levelup model file (format {header.get('format_version')}, written by levelup "
             f"{header.get('levelup_version', '?')}, torch {header.get('torch_version', '?')}): "
             f"{kind}" + (f" of {len(members)} members" if kind == "Ensemble" else ""))
    lines = [title]
    if not members:
        return lines
    first = members[0]
    lines.append(f"elements: {' '.join(first.get('elements', []))}")
    units = header.get("units", {})
    lines.append(f"units: {units.get('length', '?')}, {units.get('energy', '?')}")
    lines.append(_aev_line(first["aev"], len(first.get("elements", []))))
    if kind == "Ensemble":
        same = all(m.get("networks") == first.get("networks") for m in members)
        for k, member in enumerate(members):
            if same and k > 0:
                frozen = _n_frozen(member, f"members.{k}.")
                lines.append(f"member {k}: same layers; {frozen:,} frozen parameters; self energies "
                             + ", ".join(f"{e} {v:.8f}" for e, v in
                                         member.get("self_energies", {}).items()))
                continue
            lines.append(f"member {k}:")
            lines += [f"  {line}" for line in _member_lines(member, f"members.{k}.")]
    else:
        lines += _member_lines(first, "")
    metadata = header.get("metadata") or {}
    if metadata:
        lines.append("metadata:")
        for key, value in metadata.items():
            text = value if isinstance(value, str) else json.dumps(value)
            lines.append(f"  {key}: {text if len(text) <= 200 else text[:197] + '...'}")
    else:
        lines.append("metadata: none")
    return lines


def describe_export(info: dict[str, Any]) -> list[str]:
    """Lines describing a TorchScript export (its levelup.json record)."""
    lines = [f"TorchScript export of a levelup {info.get('kind', '?')} ({info.get('members', '?')} "
             f"member(s), {info.get('dtype', '?')}), levelup {info.get('levelup_version', '?')}, "
             f"torch {info.get('torch_version', '?')}"]
    lines.append(f"elements: {' '.join(info.get('elements', []))}")
    units = info.get("units", {})
    lines.append(f"units: {', '.join(f'{k} {v}' for k, v in units.items())}")
    lines.append(f"inputs: {info.get('inputs', '?')}")
    lines.append(f"outputs: {info.get('outputs', '?')}")
    for key, value in (info.get("metadata") or {}).items():
        text = value if isinstance(value, str) else json.dumps(value)
        lines.append(f"{key}: {text if len(text) <= 200 else text[:197] + '...'}")
    return lines
