"""Units mean what they say: ``Database.set`` converts known units to Hartree and
Hartree/Angstrom (or refuses the unit, listing the valid ones), and training refuses a property
that is not recorded in Hartree."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.io import write as ase_write
from ase.units import create_units

from levelup import Database, DataError
from levelup.model.ani import ANIModel
from levelup.train.loop import TrainConfig, fit
from levelup.transfer.selfenergies import refit_self_energies
from levelup.units import BOHR_TO_ANGSTROM, HARTREE_TO_EV, HARTREE_TO_KCALMOL, HARTREE_TO_KJMOL, parse_unit

CODATA2018 = create_units("2018")


def h2(n: int = 12) -> Database:
    r = np.linspace(0.6, 2.5, n)
    xyz = np.zeros((n, 2, 3))
    xyz[:, 1, 2] = r
    return Database.from_numpy(xyz, ["H", "H"])


def morse(db: Database) -> np.ndarray:
    """A Morse-like H2 curve, Hartree."""
    return 0.17 * (1 - np.exp(-1.9 * (db.distance(0, 1) - 0.74))) ** 2 - 1.17


def test_constants_are_codata_2018_and_consistent_with_each_other():
    assert HARTREE_TO_EV == pytest.approx(CODATA2018["Hartree"], rel=1e-10)
    assert BOHR_TO_ANGSTROM == pytest.approx(CODATA2018["Bohr"], rel=1e-10)
    assert HARTREE_TO_KCALMOL == pytest.approx(
        CODATA2018["Hartree"] / (CODATA2018["kcal"] / CODATA2018["mol"]), rel=1e-9)
    assert HARTREE_TO_KJMOL == pytest.approx(
        CODATA2018["Hartree"] / (CODATA2018["kJ"] / CODATA2018["mol"]), rel=1e-9)


@pytest.mark.parametrize("unit, per_hartree", [
    ("Hartree", 1.0), ("hartree", 1.0), ("Ha", 1.0), ("Eh", 1.0), ("eV", HARTREE_TO_EV),
    ("kcal/mol", HARTREE_TO_KCALMOL), ("kJ/mol", HARTREE_TO_KJMOL), ("kj/mol", HARTREE_TO_KJMOL),
])
def test_energies_set_in_any_known_unit_read_back_in_hartree(unit, per_hartree):
    db = h2()
    hartree = morse(db)
    db.set("e", hartree * per_hartree, unit=unit)
    np.testing.assert_allclose(db.get("e"), hartree, rtol=1e-12)
    assert db.properties["e"].unit == "Hartree"


def test_known_values_convert_exactly():
    """One Hartree in each unit (CODATA 2018) reads back as one Hartree."""
    db = h2(3)
    for value, unit in ((627.509474, "kcal/mol"), (27.211386245988, "eV"),
                        (2625.4996394799, "kJ/mol"), (1.0, "Ha")):
        db.set("e", [value, 0.0, -value], unit=unit)
        np.testing.assert_allclose(db.get("e"), [1.0, 0.0, -1.0], rtol=1e-9)


@pytest.mark.parametrize("unit, factor", [
    ("Hartree/Angstrom", 1.0), ("eV/Angstrom", 1 / HARTREE_TO_EV), ("eV/A", 1 / HARTREE_TO_EV),
    ("Hartree/Bohr", 1 / BOHR_TO_ANGSTROM), ("Eh/Bohr", 1 / BOHR_TO_ANGSTROM),
    ("kcal/mol/Angstrom", 1 / HARTREE_TO_KCALMOL), ("kJ/mol/Angstrom", 1 / HARTREE_TO_KJMOL),
])
def test_forces_convert_to_hartree_per_angstrom(unit, factor):
    db = h2(4)
    forces = np.random.default_rng(0).normal(size=(4, 2, 3))
    db.set("f", forces, unit=unit)
    np.testing.assert_allclose(db.get("f"), forces * factor, rtol=1e-12)
    assert db.properties["f"].unit == "Hartree/Angstrom" and db.properties["f"].per_atom
    # 1 Hartree/Bohr is 1.8897... Hartree/Angstrom (a Bohr is shorter than an Angstrom)
    if unit == "Hartree/Bohr":
        assert db.get("f")[0, 0, 0] == pytest.approx(forces[0, 0, 0] * 1.8897261246, rel=1e-9)


def test_unknown_unit_refused_with_the_list_of_valid_ones():
    db = h2(3)
    with pytest.raises(DataError) as err:
        db.set("e", [1.0, 2.0, 3.0], unit="furlongs")
    message = str(err.value)
    assert "'furlongs'" in message and "'e'" in message
    for unit in ("Hartree", "eV", "kcal/mol", "kJ/mol", "Hartree/Angstrom", "Hartree/Bohr",
                 "eV/Angstrom", "unknown"):
        assert f"'{unit}'" in message
    assert "e" not in db.properties  # nothing stored
    with pytest.raises(DataError, match="force unit"):
        db.set("e", [1.0, 2.0, 3.0], unit="eV/Angstrom")  # forces are per atom


def test_other_quantities_are_recorded_not_trained_on():
    db = h2(3)
    db.set("i", [0.0, 1.0, 2.0], unit="1")
    db.set("d", [0.0, 1.0, 2.0], unit="dimensionless")
    db.set("r", [1.0, 2.0, 3.0], unit="Bohr")
    db.set("x", [1.0, 2.0, 3.0], unit="unknown")
    assert [db.properties[k].unit for k in "idrx"] == ["1", "1", "Angstrom", "unknown"]
    np.testing.assert_allclose(db.get("r"), np.array([1.0, 2.0, 3.0]) * BOHR_TO_ANGSTROM)
    assert parse_unit("degree") == ("angle", "degree", 1.0)
    for name in "idrx":
        with pytest.raises(DataError, match=rf"recorded in .*db.set\('{name}'"):
            db.get(name, unit="Hartree")
    np.testing.assert_array_equal(db.get("x"), [1.0, 2.0, 3.0])  # still readable as such


def test_hdf5_round_trip_keeps_converted_values_and_units(tmp_path):
    db = h2()
    db.set("e", morse(db) * HARTREE_TO_KCALMOL, unit="kcal/mol")
    db.set("f", np.ones((len(db), 2, 3)), unit="eV/Angstrom")
    db.save(tmp_path / "db.h5")
    back = Database.load(tmp_path / "db.h5")
    np.testing.assert_allclose(back.get("e"), morse(db))
    np.testing.assert_allclose(back.get("f"), db.get("f"))
    assert back.properties["e"].unit == "Hartree"
    assert back.properties["f"].unit == "Hartree/Angstrom"


def test_extxyz_round_trip_keeps_units(tmp_path):
    db = h2()
    db.set("e", morse(db) * HARTREE_TO_EV, unit="eV")
    db.set("f", np.full((len(db), 2, 3), 0.5), unit="Hartree/Bohr")
    db.set("i", np.arange(len(db), dtype=float), unit="1")
    db.write(tmp_path / "db.extxyz")
    back = Database.read(tmp_path / "db.extxyz")
    assert {k: v.unit for k, v in back.properties.items()} == {
        "e": "Hartree", "f": "Hartree/Angstrom", "i": "1"}
    np.testing.assert_allclose(back.get("e"), morse(db))
    np.testing.assert_allclose(back.get("f"), 0.5 / BOHR_TO_ANGSTROM)


def _tiny_model() -> ANIModel:
    torch.manual_seed(0)
    return ANIModel([1], hidden=(8,), seed=0)


def test_fit_refuses_an_unknown_unit_and_trains_after_conversion(tmp_path):
    """An extra column of an ASE file has no unit: fit must not take it for Hartree."""
    db = h2(20)
    ev = morse(db) * HARTREE_TO_EV
    frames = []
    for k, mol in enumerate(db):
        atoms = Atoms(numbers=mol.species, positions=mol.coordinates)
        atoms.info["dft_energy"] = float(ev[k])
        frames.append(atoms)
    ase_write(tmp_path / "ase.extxyz", frames, format="extxyz")
    read = Database.read(tmp_path / "ase.extxyz")
    assert read.properties["dft_energy"].unit == "unknown"
    config = TrainConfig(max_epochs=2, batch_size=8)
    with pytest.raises(DataError) as err:
        fit(_tiny_model(), read, property="dft_energy", config=config, progress=False)
    assert "'unknown'" in str(err.value) and "unit='eV'" in str(err.value)
    with pytest.raises(DataError, match="'unknown'"):
        refit_self_energies(_tiny_model(), read, "dft_energy")
    read.set("dft_energy", read.get("dft_energy"), unit="eV")  # the fix the error suggests
    np.testing.assert_allclose(read.get("dft_energy"), morse(db), rtol=1e-9)
    history = fit(_tiny_model(), read, property="dft_energy", config=config, progress=False)
    assert len(history.epoch) == 2


def test_fit_refuses_forces_not_in_hartree_per_angstrom():
    db = h2(20)
    db.set("e", morse(db))
    db.set("forces/e", np.zeros((20, 2, 3)), unit="unknown")
    config = TrainConfig(max_epochs=1, batch_size=8, force_weight=0.1)
    with pytest.raises(DataError, match=r"'forces/e' is recorded in 'unknown'.*eV/Angstrom"):
        fit(_tiny_model(), db, property="e", config=config, progress=False)
