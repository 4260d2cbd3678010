import pytest

from levelup import Database, LevelOfTheoryError
from levelup.qm import LabelCache, LabelSettings, label, parse_level
from levelup.qm.levels import (
    basis_has_element,
    canonical_basis,
    check_level,
    fci_determinants,
    forces_mode,
)


@pytest.mark.parametrize("text, name, family", [
    ("HF/STO-3G", "HF/STO-3G", "hf"),
    ("hf/sto-3g", "HF/STO-3G", "hf"),
    ("cisd/cc-pvdz", "CISD/cc-pVDZ", "cisd"),
    ("CCSD(T)/aug-cc-pvtz", "CCSD(T)/aug-cc-pVTZ", "ccsd(t)"),
    ("b3lyp/6-31g*", "B3LYP/6-31G*", "dft"),
    ("wb97x/def2-svp", "wB97X/def2-SVP", "dft"),
    ("PBE0/6-311+g(d,p)", "PBE0/6-311+G(d,p)", "dft"),
    ("mp2/cc-pwcvtz", "MP2/cc-pwCVTZ", "mp2"),
    ("fci/sto-3g", "FCI/STO-3G", "fci"),
    (" UHF / 3-21g ", "UHF/3-21G", "hf"),
])
def test_levels_parse_case_insensitively_to_one_spelling(text, name, family):
    level = parse_level(text)
    assert level.name == name
    assert level.family == family
    assert parse_level(name).key == level.key


def test_rhf_and_uhf_force_a_reference():
    assert parse_level("UHF/STO-3G").reference == "uhf"
    assert parse_level("RHF/STO-3G").reference == "rhf"
    assert parse_level("HF/STO-3G").reference == "auto"


def test_unknown_method_lists_the_valid_choices():
    with pytest.raises(LevelOfTheoryError) as err:
        parse_level("CISDT/cc-pVDZ")
    text = str(err.value)
    assert "'CISDT'" in text and "CCSD(T)" in text and "B3LYP" in text and "FCI" in text


def test_misspelled_functional_suggests_close_matches():
    with pytest.raises(LevelOfTheoryError, match="close matches.*b3lyp"):
        parse_level("B3LPY/6-31G*")


def test_unknown_basis_lists_choices_and_close_matches():
    with pytest.raises(LevelOfTheoryError) as err:
        parse_level("HF/cc-pvdzz")
    text = str(err.value)
    assert "'cc-pvdzz'" in text and "cc-pVDZ" in text and "ccpvdz" in text


@pytest.mark.parametrize("bad", ["HF", "", "HF/", "/STO-3G", None, "HF/STO-3G\nH 0 0 0"])
def test_malformed_levels_are_refused(bad):
    with pytest.raises(LevelOfTheoryError):
        parse_level(bad)


def test_canonical_basis_spellings():
    assert canonical_basis("STO3G") == "STO-3G"
    assert canonical_basis("6-31g**") == "6-31G**"
    assert canonical_basis("def2tzvp") == "def2-TZVP"
    assert canonical_basis("d-aug-cc-pvdz") == "d-aug-cc-pVDZ"
    assert canonical_basis("pcseg-1") == "pcseg-1"


def test_basis_lacking_an_element_is_named():
    assert basis_has_element("cc-pVDZ", "O")
    assert not basis_has_element("cc-pVDZ", "Cs")
    with pytest.raises(LevelOfTheoryError, match="no functions for Cs.*covers? H"):
        check_level(parse_level("HF/cc-pVDZ"), [1, 55])


def test_label_refuses_a_bad_level_before_any_calculation(tmp_path):
    db = Database.from_numpy([[[0, 0, 0], [0, 0, 3.0]]], ["Cs", "H"])
    cache = LabelCache(tmp_path / "c.sqlite")
    with pytest.raises(LevelOfTheoryError, match="Cs"):
        label(db, "HF/cc-pVDZ", cache=cache, progress=False)
    with pytest.raises(LevelOfTheoryError):
        label(db, "XYZ/cc-pVDZ", cache=cache, progress=False)
    assert len(cache) == 0 and cache.failures() == {}


def test_fci_forces_need_finite_differences():
    with pytest.raises(LevelOfTheoryError, match="numerical"):
        check_level(parse_level("FCI/STO-3G"), [1], forces="analytic")
    check_level(parse_level("FCI/STO-3G"), [1], forces="numerical")
    check_level(parse_level("CCSD(T)/STO-3G"), [1], forces="analytic")


def test_fci_is_refused_for_large_systems():
    assert fci_determinants("STO-3G", (1, 1), 0, 1) == 4
    benzene = ((6,) * 6 + (1,) * 6, 0, 1)
    with pytest.raises(LevelOfTheoryError, match="determinants"):
        check_level(parse_level("FCI/cc-pVDZ"), [1, 6], max_determinants=10**7,
                    systems=[benzene])


def test_forces_mode():
    assert forces_mode(False) == "none" and forces_mode(None) == "none"
    assert forces_mode(True) == "analytic" and forces_mode("Numerical") == "numerical"
    with pytest.raises(LevelOfTheoryError):
        forces_mode("yes")


def test_settings_validate_and_key_only_result_changing_fields():
    with pytest.raises(Exception, match="max_cycle"):
        LabelSettings(max_cycle=0)
    assert LabelSettings(max_cycle=5).result_key() == LabelSettings().result_key()
    assert LabelSettings(conv_tol=1e-11).result_key() != LabelSettings().result_key()
