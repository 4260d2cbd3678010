"""``levelup build scan|distort|read`` in-process (and one real subprocess)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.io import write

from levelup.cli.main import main
from levelup.data import Database
from levelup.data.sampling import random_distortions
from levelup.model.ani import ANIModel


@pytest.fixture
def files(tmp_path, water):
    write(tmp_path / "h2.xyz", Atoms("H2", [[0, 0, 0], [0, 0, 0.74]]))
    write(tmp_path / "water.xyz", water)
    write(tmp_path / "ethane.xyz", molecule("C2H6"))
    return tmp_path


def test_bond_scan_to_native_database(files, capsys):
    out = files / "scan.h5"
    assert main(["build", "scan", str(files / "h2.xyz"), "--bond", "0", "1", "--from", "0.5",
                 "--to", "2.5", "--step", "0.05", "-o", str(out)]) == 0
    assert "41 geometries along the 0-1 distance, 0.5 to 2.5" in capsys.readouterr().out
    db = Database.load(out)
    r = np.linalg.norm(db.coordinates[:, 1] - db.coordinates[:, 0], axis=1)
    np.testing.assert_allclose(r, np.linspace(0.5, 2.5, 41), atol=1e-12)
    np.testing.assert_allclose(db.get("scan"), r, atol=1e-12)
    assert db.properties["scan"].unit == "Angstrom"


def test_angle_and_dihedral_scans(files):
    assert main(["build", "scan", str(files / "water.xyz"), "--angle", "1", "0", "2", "--from",
                 "130", "--to", "90", "--step", "-10", "-o", str(files / "bend.extxyz")]) == 0
    bend = Database.read(files / "bend.extxyz")
    assert [round(m.to_ase().get_angle(1, 0, 2), 6) for m in bend] == [130, 120, 110, 100, 90]
    assert main(["build", "scan", str(files / "ethane.xyz"), "--dihedral", "2", "0", "1", "5",
                 "--from", "-60", "--to", "60", "--step", "60", "-o", str(files / "t.h5")]) == 0
    torsion = Database.load(files / "t.h5")
    got = [m.to_ase().get_dihedral(2, 0, 1, 5) for m in torsion]
    np.testing.assert_allclose(got, [300, 0, 60], atol=1e-7)
    np.testing.assert_allclose(torsion.get("scan"), [-60, 0, 60])


def test_random_distortions_match_the_library(files, capsys):
    assert main(["build", "distort", str(files / "water.xyz"), "--n", "20", "--amplitude",
                 "0.05", "--seed", "7", "-o", str(files / "d.h5")]) == 0
    assert "20 random distortions (up to 0.05 Angstrom" in capsys.readouterr().out
    db = Database.load(files / "d.h5")
    expected = random_distortions(Database.read(files / "water.xyz"), 20, 0.05, seed=7)
    np.testing.assert_array_equal(db.coordinates, expected.coordinates)


def test_normal_mode_distortions_from_a_model(files, water):
    model = ANIModel(["H", "O"], hidden=(8,), seed=0).double()
    model.save(files / "m.pt")
    assert main(["build", "distort", str(files / "water.xyz"), "--n", "30", "--normal-modes",
                 "--model", str(files / "m.pt"), "--temperature", "200", "-o",
                 str(files / "nm.h5")]) == 0
    db = Database.load(files / "nm.h5")
    assert len(db) == 30
    start = Database.read(files / "water.xyz").coordinates  # as written to the file
    shift = np.einsum("a,nac->nc", water.get_masses(), db.coordinates - start)
    np.testing.assert_allclose(shift, 0, atol=1e-10)  # no net translation
    assert np.abs(db.coordinates - start).max() > 1e-3


def test_normal_mode_distortions_from_pyscf(files, capsys):
    """The default Hessian: HF/STO-3G by central differences of PySCF forces (H2: 6 gradients)."""
    write(files / "h2min.xyz", Atoms("H2", [[0, 0, 0], [0, 0, 0.712]]))
    assert main(["-q", "build", "distort", str(files / "h2min.xyz"), "--n", "200", "--seed", "1",
                 "--normal-modes", "--cache", str(files / "labels.sqlite"), "-o",
                 str(files / "h2.h5")]) == 0
    assert "Hessian from HF/STO-3G" in capsys.readouterr().out
    db = Database.load(files / "h2.h5")
    r = np.linalg.norm(db.coordinates[:, 1] - db.coordinates[:, 0], axis=1)
    # one stretching mode: the bond length spreads around the minimum, the centre stays put
    assert abs(r.mean() - 0.712) < 0.005 and 0.005 < r.std() < 0.05
    np.testing.assert_allclose(db.coordinates.mean(axis=1), 0.356 * np.array([0, 0, 1.0])[None]
                               .repeat(200, 0), atol=1e-10)


def test_read_several_files(files, water, capsys):
    random_distortions(water, 3, 0.05, seed=0).write(files / "w.extxyz")
    assert main(["build", "read", str(files / "h2.xyz"), str(files / "w.extxyz"), "-o",
                 str(files / "all.h5")]) == 0
    assert "4 molecules from 2 file(s) (H2, H2O)" in capsys.readouterr().out
    db = Database.load(files / "all.h5")
    assert db.formulas == ["H2", "H2O", "H2O", "H2O"]


def test_errors_are_one_line(files, water, capsys):
    random_distortions(water, 3, 0.05, seed=0).write(files / "three.xyz")
    cases = [
        (["build", "distort", str(files / "three.xyz"), "--n", "2", "-o", str(files / "x.h5")],
         "holds 3 molecules"),
        (["build", "distort", str(files / "water.xyz"), "--n", "2", "--normal-modes",
          "--amplitude", "0.1", "-o", str(files / "x.h5")], "--temperature"),
        (["build", "distort", str(files / "water.xyz"), "--n", "2", "--model", "m.pt", "-o",
          str(files / "x.h5")], "--normal-modes"),
        (["build", "scan", str(files / "water.xyz"), "--bond", "0", "5", "--from", "1", "--to",
          "2", "--step", "0.5", "-o", str(files / "x.h5")], "out of range"),
        (["build", "read", str(files / "nothing.xyz"), "-o", str(files / "x.h5")], "does not exist"),
    ]
    for argv, message in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith("levelup: error:") and err.count("\n") == 1 and message in err, err
    assert not (files / "x.h5").exists()
    # --index picks one molecule of several
    assert main(["build", "distort", str(files / "three.xyz"), "--index", "-1", "--n", "2",
                 "-o", str(files / "x.h5")]) == 0


def test_subprocess(files):
    run = subprocess.run([sys.executable, "-m", "levelup.cli.main", "build", "scan",
                          str(files / "h2.xyz"), "--bond", "0", "1", "--from", "0.6", "--to",
                          "1.0", "--step", "0.1", "-o", str(files / "s.xyz")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert len(Database.read(files / "s.xyz")) == 5
