"""The molecular database: construction, validation, indexing, splitting, geometry, I/O."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.units import Hartree

from levelup import Database, DataError, LevelupError, Molecule
from levelup.study.tutorial import h2_scan


def water(n=5, seed=0):
    rng = np.random.default_rng(seed)
    base = np.array([[0.0, 0.0, 0.117], [0.0, 0.757, -0.467], [0.0, -0.757, -0.467]])
    xyz = base + rng.normal(scale=0.02, size=(n, 3, 3))
    return Database.from_numpy(coordinates=xyz, species=["O", "H", "H"])


def mixed():
    h2 = h2_scan()[:3]
    h2.set("E", [-1.0, -1.1, -1.2])
    w = water(2)
    w.set("E", [-75.0, -75.1])
    w.set("F", np.ones((2, 3, 3)))
    return Database.concatenate([h2, w])


# ----------------------------------------------------------------------------- construction
def test_tutorial_h2_scan():
    db = h2_scan()
    assert len(db) == 451
    assert db.species.shape == (451, 2) and (db.species == 1).all()
    np.testing.assert_allclose(db.distance(0, 1), np.arange(0.5, 5.01, 0.01))
    assert (db.charges == 0).all() and (db.multiplicities == 1).all()


def test_from_numpy_species_forms():
    xyz = np.zeros((2, 2, 3))
    xyz[:, 1, 2] = 0.74
    a = Database.from_numpy(coordinates=xyz, species=[1, 1])
    b = Database.from_numpy(coordinates=xyz, species=[["H", "H"], ["H", "H"]])
    c = Database.from_numpy(coordinates=xyz[0], species=["H", "H"])
    assert np.array_equal(a.species, b.species) and len(c) == 1
    with pytest.raises(DataError, match="species lists 3 atoms"):
        Database.from_numpy(coordinates=xyz, species=[1, 1, 1])


def test_mixed_sizes_padding_hidden():
    db = mixed()
    assert len(db) == 5 and db.max_atoms == 3
    assert list(db.n_atoms) == [2, 2, 2, 3, 3]
    m = db[0]
    assert m.species.shape == (2,) and m.coordinates.shape == (2, 3)
    assert db[4].formula == "H2O" and db[4].properties["F"].shape == (3, 3)
    assert np.isnan(db.get("F")[:3]).all()  # missing for H2
    assert db.elements == [1, 8]
    # a subset of only H2 trims the padding
    assert db[:3].max_atoms == 2


def test_charge_multiplicity_checks():
    xyz = np.array([[[0, 0, 0], [0, 0, 0.74]]])
    with pytest.raises(DataError, match="molecule 0.*impossible"):
        Database.from_numpy(coordinates=xyz, species=[1, 1], multiplicities=2)
    Database.from_numpy(coordinates=xyz, species=[1, 1], multiplicities=3)  # triplet is fine
    heh = Database.from_numpy(coordinates=xyz, species=[2, 1], charges=1)
    assert heh.charges[0] == 1
    oh = Database.from_numpy(coordinates=np.array([[[0, 0, 0], [0, 0, 0.97]]]), species=["O", "H"],
                             multiplicities=2)
    assert oh.multiplicities[0] == 2
    with pytest.raises(DataError, match="multiplicity 0"):
        Database.from_numpy(coordinates=xyz, species=[1, 1], multiplicities=0)
    with pytest.raises(DataError, match="integers"):
        Database.from_numpy(coordinates=xyz, species=[1, 1], charges=0.5)


@pytest.mark.parametrize(
    "coords, species, message",
    [
        ([[[0, 0, 0], [0, 0, np.nan]]], [1, 1], "molecule 0, atom 1: coordinates are NaN"),
        ([[[0, 0, 0], [0, 0, np.inf]]], [1, 1], "NaN or infinite"),
        ([[[0, 0, 0], [0, 0, 0.05]]], [1, 1], "atoms 0 and 1 are 0.05 Angstrom"),
        ([[[0, 0, 0], [0, 0, 1.0]]], [1, 200], "unknown atomic number 200"),
        ([[[0, 0, 0], [0, 0, 1.0]]], ["H", "Xx"], "unknown element symbol 'Xx'"),
        ([[0, 0, 0], [0, 0, 1.0]], [[1, 1, 1]], "disagree|species lists"),
    ],
)
def test_validation_errors(coords, species, message):
    with pytest.raises(DataError, match=message):
        Database.from_numpy(coordinates=np.array(coords, dtype=float), species=species)


def test_bad_shapes_and_properties():
    with pytest.raises(DataError, match=r"\(molecules, atoms, 3\)"):
        Database.from_numpy(coordinates=np.zeros((2, 2, 2)), species=[1, 1])
    db = h2_scan()[:4]
    with pytest.raises(DataError, match="expected one value per molecule"):
        db.set("E", np.zeros(5))
    with pytest.raises(DataError, match="per-atom property"):
        db.set("F", np.zeros((4, 3, 3)))
    with pytest.raises(DataError, match="no property 'nope'.*has: none"):
        db.get("nope")
    assert issubclass(DataError, LevelupError)


def test_units_and_levels_recorded():
    db = h2_scan()[:2]
    db.set("CISD/cc-pVDZ", [-1.1, -1.2], level="CISD/cc-pVDZ", spec={"program": "pyscf"})
    db.set("forces/CISD/cc-pVDZ", np.zeros((2, 2, 3)), level="CISD/cc-pVDZ")
    info = db.properties
    assert info["CISD/cc-pVDZ"].unit == "Hartree" and info["CISD/cc-pVDZ"].level == "CISD/cc-pVDZ"
    assert info["forces/CISD/cc-pVDZ"].unit == "Hartree/Angstrom" and info["forces/CISD/cc-pVDZ"].per_atom
    db.set("dipole", [1.0, 2.0], unit="Debye")
    assert db.properties["dipole"].unit == "Debye"
    with pytest.raises(ValueError):
        db.get("dipole")[0] = 5.0  # read-only view protects the database


# ----------------------------------------------------------------------------- indexing
def test_numpy_like_indexing():
    db = h2_scan()
    db.set("r", db.distance(0, 1))
    assert isinstance(db[0], Molecule) and isinstance(db[-1], Molecule)
    assert db[-1].properties["r"] == pytest.approx(5.0)
    sub = db[::40]
    assert len(sub) == 12 and sub.get("r")[1] == pytest.approx(0.9)
    assert len(db[::40][::10]) == 2
    mask = db.get("r") < 1.0
    assert len(db[mask]) == 50
    picked = db[np.array([3, 1, -1])]
    np.testing.assert_allclose(picked.get("r"), [0.53, 0.51, 5.0])
    assert len(db[[]]) == 0
    with pytest.raises(IndexError):
        db[451]
    with pytest.raises(IndexError):
        db[np.ones(3, dtype=bool)]


def test_iteration_and_membership():
    db = h2_scan()
    step = 40
    val = db[::step][::10]
    sub = [m for m in db[::step] if m not in val]
    assert len(sub) == 10
    assert db[0] in val and db[1] not in val
    assert db.index_of(db[200]) == 200
    assert "not a molecule" not in db
    assert sum(1 for _ in db[:7]) == 7


def test_concatenate_and_add():
    a, b = h2_scan()[:3], h2_scan()[10:12]
    a.set("E", np.zeros(3))
    b.set("E", np.ones(2))
    c = a + b
    assert len(c) == 5 and list(c.get("E")) == [0, 0, 0, 1, 1]
    b.set("X", np.ones(2), unit="Angstrom")
    a.set("X", np.ones(3), unit="Hartree")
    with pytest.raises(DataError, match="unit"):
        Database.concatenate([a, b])
    b.set("X", np.ones(2), unit="eV")  # converted to Hartree when set: now they concatenate
    assert Database.concatenate([a, b]).properties["X"].unit == "Hartree"


def test_split_count_fraction_every():
    db = h2_scan()
    tr, va = db.split(0.8, 0.2, seed=1)
    assert len(tr) + len(va) == 451 and len(va) == 90
    assert not any(m in va for m in tr[:50])
    tr2, _ = db.split(0.8, 0.2, seed=1)
    assert np.array_equal(tr.coordinates, tr2.coordinates)
    tr3, _ = db.split(0.8, 0.2, seed=2)
    assert not np.array_equal(tr.coordinates, tr3.coordinates)
    a, b, c = db.split(10, 2, 5, seed=0)
    assert (len(a), len(b), len(c)) == (10, 2, 5)
    first, rest = db.split(10, 5, shuffle=False)
    np.testing.assert_allclose(first.distance(0, 1)[0], 0.5)
    every, others = db.split_every(40)
    assert len(every) == 12 and len(others) == 439
    with pytest.raises(DataError):
        db.split(400, 100)
    with pytest.raises(DataError):
        db.split(0.9, 0.3)


def test_geometry_helpers():
    xyz = np.array([[[1.0, 0, 0], [0, 0, 0], [0, 1.0, 0], [0, 1.0, 1.0]]])
    db = Database.from_numpy(coordinates=xyz, species=["H", "C", "C", "H"])
    assert db.distance(0, 1)[0] == pytest.approx(1.0)
    assert db.angle(0, 1, 2)[0] == pytest.approx(90.0)
    assert abs(db.dihedral(0, 1, 2, 3)[0]) == pytest.approx(90.0)
    with pytest.raises(DataError, match="atom index 7"):
        db.distance(0, 7)


# ----------------------------------------------------------------------------- files
def test_hdf5_round_trip(tmp_path):
    db = mixed()
    db.set("E2", [1.0, np.nan, 2, 3, 4], level="HF/STO-3G", spec={"basis": "sto-3g"})
    path = tmp_path / "db.h5"
    db.save(path)
    back = Database.load(path)
    assert np.array_equal(back.species, db.species)
    assert np.array_equal(back.coordinates, db.coordinates)
    np.testing.assert_array_equal(back.get("E2"), db.get("E2"))
    np.testing.assert_array_equal(back.get("F"), db.get("F"))
    assert back.properties == db.properties
    part = Database.load(path, 1, 4)
    assert len(part) == 3 and np.array_equal(part.coordinates[0, :2], db.coordinates[1, :2])
    chunks = list(Database.iter_chunks(path, 2))
    assert [len(c) for c in chunks] == [2, 2, 1]
    assert Database.read(path).properties == db.properties


def test_hdf5_large_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    n = 100_000
    base = np.array([[0.0, 0.0, 0.117], [0.0, 0.757, -0.467], [0.0, -0.757, -0.467]])
    xyz = base + rng.normal(scale=0.05, size=(n, 3, 3))
    db = Database.from_numpy(coordinates=xyz, species=[8, 1, 1])
    db.set("E", rng.normal(size=n))
    db.set("F", rng.normal(size=(n, 3, 3)))
    path = tmp_path / "big.h5"
    db.save(path)
    back = Database.load(path)
    assert np.array_equal(back.coordinates, db.coordinates)
    assert np.array_equal(back.get("F"), db.get("F"))
    window = Database.load(path, 50_000, 50_010)
    np.testing.assert_array_equal(window.get("E"), db.get("E")[50_000:50_010])


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "db.h5"
    good = h2_scan()[:5]
    good.save(path)
    import levelup.data.io.hdf5 as hdf5

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(hdf5, "json", type("J", (), {"dumps": staticmethod(boom)}))
    bad = h2_scan()[:7]
    bad.set("E", np.zeros(7))
    with pytest.raises(RuntimeError, match="disk on fire"):
        bad.save(path)
    assert len(Database.load(path)) == 5  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["db.h5"]  # no temporary left behind


def test_not_a_database_or_newer(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_text("hello")
    with pytest.raises(DataError, match="not an HDF5 file"):
        Database.load(junk)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = 1
    with pytest.raises(DataError, match="not a levelup database"):
        Database.load(foreign)
    newer = tmp_path / "newer.h5"
    h2_scan()[:2].save(newer)
    with h5py.File(newer, "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(DataError, match="newer"):
        Database.load(newer)
    with pytest.raises(DataError, match="no such"):
        Database.load(tmp_path / "absent.h5")


def test_extxyz_round_trip(tmp_path):
    db = mixed()
    db.set("E", db.get("E"), level="HF/STO-3G")
    path = tmp_path / "db.extxyz"
    db.write(path)
    back = Database.read(path)
    assert np.allclose(back.coordinates, db.coordinates)
    assert np.array_equal(back.species, db.species)
    np.testing.assert_allclose(back.get("E"), db.get("E"))
    np.testing.assert_allclose(back.get("F"), db.get("F"))
    assert back.properties["E"].level == "HF/STO-3G"


def test_from_ase_reads_calculator_results_in_hartree(tmp_path):
    atoms = Atoms("OH", positions=[[0, 0, 0], [0, 0, 0.97]])
    atoms.info["multiplicity"] = 2
    atoms.calc = SinglePointCalculator(atoms, energy=-2.0 * Hartree, forces=np.full((2, 3), Hartree))
    h2 = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
    db = Database.from_ase([atoms, h2])
    assert db.multiplicities.tolist() == [2, 1]
    assert db.get("energy")[0] == pytest.approx(-2.0) and np.isnan(db.get("energy")[1])
    np.testing.assert_allclose(db.get("forces")[0], 1.0)
    # plain xyz through ase.io
    (tmp_path / "w.xyz").write_text("3\nwater\nO 0 0 0.117\nH 0 0.757 -0.467\nH 0 -0.757 -0.467\n")
    w = Database.read(tmp_path / "w.xyz")
    assert w.formulas == ["H2O"]
    odd = Atoms("H", positions=[[0, 0, 0]])  # one electron: multiplicity 2 inferred
    assert Database.from_ase([odd]).multiplicities[0] == 2


def test_file_formats_know_only_arrays(tmp_path):
    """The readers and writers of data/io hand plain arrays (Columns) back and forth and never
    import the Database, which builds itself from them."""
    import ast
    from pathlib import Path

    import levelup.data.io.asefiles as asefiles
    import levelup.data.io.hdf5 as hdf5

    for module in (asefiles, hdf5):
        tree = ast.parse(Path(module.__file__).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "levelup.data.database" not in imported and "levelup.data" not in imported
    db = mixed()
    db.save(tmp_path / "db.h5")
    columns = hdf5.load_columns(tmp_path / "db.h5", 3, 5)
    assert columns.species.shape == (2, 3) and columns.info["F"].per_atom
    np.testing.assert_array_equal(columns.properties["E"], db.get("E")[3:])
    from_atoms = asefiles.columns_from_atoms(db.to_ase())
    np.testing.assert_array_equal(from_atoms.species, db.species)
    assert from_atoms.info["E"].unit == "unknown"  # to_ase() without units; Database.write has them


def test_to_ase():
    atoms = mixed().to_ase()
    assert len(atoms) == 5 and atoms[3].get_chemical_formula() == "H2O"


def test_from_molecules_keeps_properties():
    db = mixed()
    picked = Database.from_molecules([m for m in db if m.formula == "H2O"] + [db[0]],
                                     info=db.properties)
    assert picked.formulas == ["H2O", "H2O", "H2"]
    np.testing.assert_allclose(picked.get("E"), [-75.0, -75.1, -1.0])
    assert np.isnan(picked.get("F")[2]).all() and picked.properties["F"].per_atom
    with pytest.raises(DataError, match="no molecules"):
        Database.from_molecules([])


def test_saved_files_have_ordinary_permissions(tmp_path):
    import os

    path = tmp_path / "db.h5"
    h2_scan()[:2].save(path)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
