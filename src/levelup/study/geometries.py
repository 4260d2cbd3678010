"""A study's geometries and its high-level points: built from the ``[geometries]`` table (the
tutorial's H2 scan, a scan, distortions, molecular dynamics or a file), the coordinate errors
are reported along, and the ``[selection]`` of training and validation points. Coordinates in
Angstrom.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from levelup.data import Database
from levelup.errors import ConfigError
from levelup.study.schema import Geometries, Selection, Study


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
    if g.source == "md":
        from levelup.explore.dynamics import langevin_frames

        return langevin_frames(mol, str(g.model) if g.model else g.level,
                               temperature=g.temperature, steps=g.steps, every=g.every,
                               timestep=g.timestep, friction=g.friction, seed=g.seed,
                               equilibrate=g.equilibrate, progress=progress, cache=cache)
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
    elif selection.method == "fps":
        from levelup.selection.select import select as choose

        if selection.count > n:
            raise ConfigError(f"[selection] count = {selection.count}, but the study has only {n} "
                              "geometries")
        chosen = np.sort(np.asarray(choose(db, selection.count, "fps").indices, dtype=np.int64))
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
