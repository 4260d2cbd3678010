"""Constraints for geometry optimisation, as ASE constraint objects or short text specs: a
symmetric saddle (planar NH3, the inversion's transition state; an eclipsed torsion) is found by
minimising with the symmetry held, which is how barriers are obtained without a saddle-point
optimiser.

Specs (atom indices count from 0; values in Angstrom and degrees; without "=value" the starting
value is kept):

- ``"planar"``: every atom in one plane. The structure is first projected onto its best-fitting
  plane, then each atom may move only within it (``ase.constraints.FixedPlane``).
- ``"fix:0,3"``: these atoms stay where they are (``ase.constraints.FixAtoms``).
- ``"bond:0,1=1.10"``, ``"angle:1,0,2=120"``, ``"dihedral:0,1,2,3=180"``: an internal coordinate
  held at a value (``ase.constraints.FixInternals``). The structure is first moved to the value,
  turning the fragment on the last atom's side of the coordinate
  (:func:`levelup.data.sampling.moving_fragment`).

ASE constraint objects (anything with ``adjust_positions``) are used as given.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from levelup.errors import DataError

#: Spec kind -> number of atoms it names.
KINDS = {"bond": 2, "angle": 3, "dihedral": 4}
_SPEC = re.compile(r"^\s*(fix|bond|angle|dihedral)\s*:\s*([\d,\s]+?)\s*(?:=\s*(\S+))?\s*$")
EXAMPLES = '"planar", "fix:0", "bond:0,1=1.0", "angle:1,0,2=104.5", "dihedral:0,1,2,3=180"'


def constraint_list(constraints: Any) -> list[Any]:
    """``constraints`` (None, one spec or ASE constraint, or a sequence of them) as a list."""
    if constraints is None:
        return []
    if isinstance(constraints, str) or hasattr(constraints, "adjust_positions"):
        return [constraints]
    if isinstance(constraints, Sequence):
        return list(constraints)
    raise DataError(f"constraints are text specs ({EXAMPLES}) or ASE constraint objects, or a "
                    f"list of them; got {type(constraints).__name__}")


def describe(constraints: Any) -> tuple[str, ...]:
    """Each constraint as text: a spec as written, an ASE object as its repr."""
    return tuple(c.strip() if isinstance(c, str) else repr(c)
                 for c in constraint_list(constraints))


def parse_spec(spec: str, n_atoms: int) -> tuple[str, list[int], float | None]:
    """(kind, atom indices, value or None) of one text spec; "planar" gives ("planar", [], None).

    Raises DataError naming the spec and the valid forms when it is not one, an index is out of
    range or repeated, or the value is not a finite number."""
    if spec.strip().lower() == "planar":
        return "planar", [], None
    m = _SPEC.match(spec.lower())
    if m is None:
        raise DataError(f"constraint {spec!r} is not a spec levelup knows; write one of {EXAMPLES}"
                        " (atom indices from 0, values in Angstrom or degrees)")
    kind, text, value_text = m[1], m[2], m[3]
    atoms = [int(t) for t in text.replace(",", " ").split()]
    want = KINDS.get(kind)
    if (want is not None and len(atoms) != want) or not atoms:
        raise DataError(f"constraint {spec!r}: a {kind} names {want or 'at least one'} atoms; got "
                        f"{len(atoms)}")
    if len(set(atoms)) != len(atoms) or not all(0 <= a < n_atoms for a in atoms):
        raise DataError(f"constraint {spec!r}: atom indices must be distinct and in 0..{n_atoms - 1}"
                        f" for this {n_atoms}-atom structure")
    if kind == "fix" and value_text is not None:
        raise DataError(f"constraint {spec!r}: fix takes atom indices only, no value")
    value = None
    if value_text is not None:
        try:
            value = float(value_text)
        except ValueError:
            value = float("nan")
        if not np.isfinite(value) or (kind == "bond" and value <= 0):
            raise DataError(f"constraint {spec!r}: the value must be a finite number (Angstrom "
                            f"for a bond, degrees otherwise); got {value_text!r}")
    return kind, atoms, value


def apply_constraints(atoms: Any, constraints: Any) -> list[Any]:
    """Move ``atoms`` (ase.Atoms, in place) onto the constrained values and return the ASE
    constraint objects that hold them (set them with ``atoms.set_constraint``)."""
    from ase.constraints import FixAtoms, FixInternals

    out: list[Any] = []
    internals: dict[str, list] = {"bonds": [], "angles_deg": [], "dihedrals_deg": []}
    for c in constraint_list(constraints):
        if not isinstance(c, str):
            if not hasattr(c, "adjust_positions"):
                raise DataError(f"constraint {c!r} is neither a text spec ({EXAMPLES}) nor an ASE "
                                "constraint object")
            out.append(c)
            continue
        kind, idx, value = parse_spec(c, len(atoms))
        if kind == "planar":
            out.append(_planar(atoms))
        elif kind == "fix":
            out.append(FixAtoms(indices=idx))
        else:
            current = _set_internal(atoms, kind, idx, value)
            field = {"bond": "bonds", "angle": "angles_deg", "dihedral": "dihedrals_deg"}[kind]
            internals[field].append([current, idx])
    if any(internals.values()):
        out.append(FixInternals(**{k: v for k, v in internals.items() if v}))
    return out


def _planar(atoms: Any) -> Any:
    """Project ``atoms`` onto their best plane (in place); a FixedPlane holding them there."""
    from ase.constraints import FixedPlane

    xyz = atoms.positions
    centre = xyz.mean(axis=0)
    _, _, vt = np.linalg.svd(xyz - centre)
    normal = vt[-1]
    atoms.positions = xyz - np.outer((xyz - centre) @ normal, normal)
    return FixedPlane(list(range(len(atoms))), normal)


def _set_internal(atoms: Any, kind: str, idx: list[int], value: float | None) -> float:
    """Move ``atoms`` so the internal coordinate has ``value`` (None: keep it); return it."""
    from levelup.data.sampling import moving_fragment
    from levelup.data.structure import as_molecule

    if kind == "bond":
        if value is not None:
            moved = moving_fragment(as_molecule(atoms), idx[0], idx[1])
            atoms.set_distance(idx[0], idx[1], value, fix=0, indices=moved)
        return float(atoms.get_distance(*idx))
    if kind == "angle":
        if value is not None:
            if not 0 < value < 180:
                raise DataError(f"an angle constraint must lie strictly between 0 and 180 degrees;"
                                f" got {value}")
            moved = moving_fragment(as_molecule(atoms), idx[1], idx[2])
            atoms.set_angle(*idx, value, indices=[i for i in moved if i != idx[1]])
        return float(atoms.get_angle(*idx))
    if value is not None:
        moved = moving_fragment(as_molecule(atoms), idx[1], idx[2])
        atoms.set_dihedral(*idx, value, indices=moved if moved != [idx[2]] else [idx[3]])
    return float(atoms.get_dihedral(*idx))
