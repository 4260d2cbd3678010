"""label(): the tutorial's H2 scan against the reference, the cache, reuse, overrides,
failures, isolated atoms."""

import time
import warnings

import numpy as np
import pytest
from pyscf import gto, scf

from levelup import Database
from levelup.qm import (
    LabelCache,
    LabelSettings,
    LabelWarning,
    atom_energies,
    label,
    label_with_report,
)
from levelup.study.tutorial import h2_scan

WATER = np.array([[0.0, 0.0, 0.0], [0.0, 0.757, 0.587], [0.0, -0.757, 0.587]])
STRETCHED_WATER = np.array([[0.0, 0.0, 0.0], [0.0, 2.0, 1.5], [0.0, -2.0, 1.5]])


@pytest.fixture(autouse=True)
def private_cache_dir(tmp_path, monkeypatch):
    """Never touch the user's real cache."""
    monkeypatch.setenv("LEVELUP_CACHE_DIR", str(tmp_path / "default-cache"))


@pytest.fixture(scope="module")
def h2_run(tmp_path_factory):
    """The 451 tutorial geometries at HF/STO-3G and CISD/cc-pVDZ (about 10 s of PySCF on two
    workers), with their cache."""
    cache = tmp_path_factory.mktemp("h2") / "labels.sqlite"
    db = h2_scan()
    hf, hf_report = label_with_report(db, "HF/STO-3G", cache=cache, progress=False)
    both, cisd_report = label_with_report(hf, "CISD/cc-pVDZ", cache=cache, progress=False)
    return db, both, cache, hf_report, cisd_report


def test_h2_scan_matches_the_reference_labels(h2_run, h2_labels):
    db, both, _, hf_report, cisd_report = h2_run
    assert hf_report.computed == cisd_report.computed == 451 and hf_report.ok
    np.testing.assert_allclose(both.distance(0, 1), h2_labels["r"], atol=1e-12)
    assert np.abs(both.get("HF/STO-3G") - h2_labels["hf"]).max() < 1e-7
    assert np.abs(both.get("CISD/cc-pVDZ") - h2_labels["cisd"]).max() < 1e-7
    assert "HF/STO-3G" not in db.properties  # a new database; the input is untouched


def test_spec_records_the_full_specification(h2_run):
    import pyscf

    info = h2_run[1].properties["CISD/cc-pVDZ"]
    assert info.level == "CISD/cc-pVDZ" and info.unit == "Hartree"
    spec = info.spec
    assert spec["program"] == "PySCF" and spec["version"] == pyscf.__version__
    assert spec["method"] == "CISD" and spec["basis"] == "cc-pVDZ"
    assert spec["scf"]["conv_tol"] == 1e-9 and spec["scf"]["max_cycle"] == 50
    assert spec["cisd_conv_tol"] > 0 and spec["failed"] == 0


def test_labelling_again_is_instant(h2_run):
    db, _, cache, _, _ = h2_run
    start = time.perf_counter()
    out, report = label_with_report(db, "cisd/cc-pvdz", cache=cache, progress=False)
    assert time.perf_counter() - start < 3.0
    assert report.cached == 451 and report.computed == 0
    np.testing.assert_array_equal(out.get("CISD/cc-pVDZ"), h2_run[1].get("CISD/cc-pVDZ"))


def test_an_already_labelled_database_needs_no_cache(h2_run):
    out, report = label_with_report(h2_run[1], "HF/STO-3G", cache=False, progress=False)
    assert report.reused == 451 and report.cached == report.computed == 0
    np.testing.assert_array_equal(out.get("HF/STO-3G"), h2_run[1].get("HF/STO-3G"))


def test_forces_charge_multiplicity_and_name(tmp_path):
    db = h2_scan()[::90]
    out = label(db, "HF/STO-3G", forces=True, charge=1, multiplicity=2, name="cation",
                cache=tmp_path / "c.sqlite", workers=1, progress=False)
    assert set(out.properties) == {"cation", "forces/cation"}
    assert (out.charges == 1).all() and (out.multiplicities == 2).all()
    assert out.properties["forces/cation"].unit == "Hartree/Angstrom"
    f = out.get("forces/cation")
    assert f.shape == (len(db), 2, 3)
    np.testing.assert_allclose(f[:, 0], -f[:, 1], atol=1e-9)
    for r, energy in zip(db.distance(0, 1), out.get("cation"), strict=True):
        mol = gto.M(atom=f"H 0 0 0; H 0 0 {r}", basis="sto-3g", charge=1, spin=1, verbose=0)
        assert energy == pytest.approx(scf.UHF(mol).run().e_tot, abs=1e-8)


def test_energies_from_a_forces_run_are_reused_and_forces_are_not_invented(tmp_path):
    db = h2_scan()[::150]
    cache = tmp_path / "c.sqlite"
    label(db, "HF/STO-3G", cache=cache, workers=1, progress=False)
    _, report = label_with_report(db, "HF/STO-3G", forces=True, cache=cache, workers=1,
                                  progress=False)
    assert report.computed == len(db)  # the cache held energies only
    _, report = label_with_report(db, "HF/STO-3G", cache=cache, workers=1, progress=False)
    assert report.cached == len(db)


def test_failed_molecules_are_nan_reported_and_retried_later(tmp_path):
    db = Database.from_numpy(np.stack([WATER, STRETCHED_WATER]), [8, 1, 1])
    cache = tmp_path / "c.sqlite"
    label(db[:1], "HF/6-31G", cache=cache, workers=1, progress=False)
    with pytest.warns(LabelWarning, match="molecule 1: SCF did not converge"):
        out = label(db, "HF/6-31G", cache=cache, workers=1, progress=False,
                    settings=LabelSettings(max_cycle=2, retries=False))
    energies = out.get("HF/6-31G")
    assert np.isfinite(energies[0]) and np.isnan(energies[1])
    assert out.properties["HF/6-31G"].spec["failed"] == 1
    with LabelCache(cache) as store:
        assert len(store) == 1 and len(store.failures()) == 1  # the failure is not a label
    out, report = label_with_report(db, "HF/6-31G", cache=cache, workers=1, progress=False)
    assert report.cached == 1 and report.computed == 1 and report.ok
    assert np.isfinite(out.get("HF/6-31G")).all()
    assert "1 computed, 0 failed" in report.summary()


def test_retried_scf_is_reported(tmp_path):
    db = Database.from_numpy(STRETCHED_WATER, [8, 1, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, report = label_with_report(db, "HF/6-31G", cache=False, progress=False,
                                      settings=LabelSettings(max_cycle=3))
    assert report.ok and "converged with" in report.retried[0]
    assert "needed an SCF retry" in report.summary()


def test_atom_energies_use_ground_state_multiplicities():
    energies = atom_energies(["O", "H", 1], "HF/STO-3G", cache=False)
    assert set(energies) == {1, 8}
    h = gto.M(atom="H 0 0 0", basis="sto-3g", spin=1, verbose=0)
    o = gto.M(atom="O 0 0 0", basis="sto-3g", spin=2, verbose=0)
    assert energies[1] == pytest.approx(scf.UHF(h).run().e_tot, abs=1e-8)
    assert energies[8] == pytest.approx(scf.UHF(o).run().e_tot, abs=1e-7)
    assert energies[1] == pytest.approx(-0.4666, abs=1e-3)
