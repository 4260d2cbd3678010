"""Bad inputs to label(): more workers than cores, an empty database, a charge or multiplicity
impossible for the molecule's electrons; each refused or corrected before any work, with a
message that says what is possible."""

import logging
import subprocess
import sys

import numpy as np
import pytest

from levelup import Database
from levelup.cli.main import main
from levelup.data.validate import check_electrons, electron_problem
from levelup.errors import DataError
from levelup.qm import label, label_with_report
from levelup.qm.executors import make_executor
from levelup.qm.serial import SerialExecutor, available_cores
from levelup.study.tutorial import h2_scan


@pytest.fixture(autouse=True)
def private_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LEVELUP_CACHE_DIR", str(tmp_path / "default-cache"))


def test_workers_are_capped_at_the_available_cores(caplog):
    cores = available_cores()
    with caplog.at_level(logging.WARNING, logger="levelup"):
        ex, _ = make_executor(None, 100000, 1000)
    assert ex.workers == cores and (cores > 1 or isinstance(ex, SerialExecutor))
    assert f"workers=100000 is more than the {cores} cores" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="levelup"):
        _, report = label_with_report(h2_scan()[::150], "HF/STO-3G", workers=100000, cache=False,
                                      progress=False)
        assert report.computed == 4
        make_executor(None, cores, 1000)  # at the cap: nothing said
    assert caplog.text.count("is more than the") == 1  # said once per label() call


def test_cli_says_it_caps_the_workers_in_one_line(tmp_path):
    h2_scan()[:3].save(tmp_path / "h2.h5")
    done = subprocess.run([sys.executable, "-m", "levelup.cli.main", "--quiet", "label",
                           str(tmp_path / "h2.h5"), "HF/STO-3G", "-o", str(tmp_path / "o.h5"),
                           "--no-cache", "--workers", "100000"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"workers=100000 is more than the {available_cores()} cores available"), done.stderr


def test_an_empty_database_is_refused_before_any_work(tmp_path, capsys):
    empty = h2_scan()[:0]
    with pytest.raises(DataError, match="has no molecules: nothing to label"):
        label(empty, "HF/STO-3G", cache=False)
    empty.save(tmp_path / "empty.h5")
    out = tmp_path / "out.h5"
    assert main(["label", str(tmp_path / "empty.h5"), "HF/STO-3G", "-o", str(out)]) == 1
    err = capsys.readouterr().err  # the CLI may refuse it itself, naming the file
    assert err.startswith("levelup: error: ") and "no molecules" in err
    assert err.count("\n") == 1 and not out.exists()
    assert not (tmp_path / "default-cache").exists()  # no cache was even opened


def test_a_charge_that_leaves_negative_electrons_is_called_impossible(tmp_path, capsys):
    h2 = h2_scan()[:2]
    with pytest.raises(DataError) as info:
        label(h2, "HF/STO-3G", charge=4, cache=False)
    message = str(info.value)
    assert "molecule 0 (H2, 2 protons): charge 4 is impossible: it would leave -2 electrons" in message
    assert "at most +2" in message and "multiplicity" not in message  # no parity hint
    h2.save(tmp_path / "h2.h5")
    assert main(["label", str(tmp_path / "h2.h5"), "HF/STO-3G", "--charge", "4", "-o",
                 str(tmp_path / "o.h5")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("levelup: error: molecule 0 (H2, 2 protons): charge 4 is impossible")
    assert err.count("\n") == 1


def test_a_parity_mismatch_names_the_possible_multiplicities():
    h2 = h2_scan()[:2]
    with pytest.raises(DataError, match=r"leaves 1 electron \(an odd number\), which allows only "
                                        r"multiplicity 2; use that or another charge"):
        label(h2, "HF/STO-3G", charge=1, cache=False)
    with pytest.raises(DataError, match=r"multiplicity 2 is impossible with charge 0: that leaves "
                                        r"2 electrons \(an even number\), which allow only "
                                        r"multiplicity 1 or 3"):
        label(h2, "HF/STO-3G", multiplicity=2, cache=False)
    with pytest.raises(DataError, match="multiplicity 5 is impossible"):
        label(h2, "HF/STO-3G", multiplicity=5, cache=False)
    # many electrons: the list is shortened
    assert "only multiplicity 1, 3, 5, ... up to 17" in electron_problem(16, 0, 2)
    assert electron_problem(16, 0, 3) == "" and electron_problem(2, 2, 1) == ""
    # the molecule named is the first bad one
    species = np.array([[1, 1], [8, 0]])
    check_electrons(species, np.array([0, 0]), np.array([1, 3]))
    with pytest.raises(DataError, match=r"molecule 1 \(O, 8 protons\): multiplicity 2"):
        check_electrons(species, np.array([0, 0]), np.array([1, 2]))


def test_valid_overrides_still_label(tmp_path):
    db = Database.from_numpy(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.74]]), [1, 1])
    out = label(db, "HF/STO-3G", charge=1, multiplicity=2, cache=False, progress=False)
    assert np.isfinite(out.get("HF/STO-3G")).all() and out.charges[0] == 1
