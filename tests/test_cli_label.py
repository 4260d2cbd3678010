import numpy as np
import pytest

from levelup import Database
from levelup.cli.main import main
from levelup.study.tutorial import h2_scan


@pytest.fixture(autouse=True)
def private_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LEVELUP_CACHE_DIR", str(tmp_path / "default-cache"))


@pytest.fixture
def h2_file(tmp_path):
    path = tmp_path / "h2.h5"
    h2_scan()[::50].save(path)
    return path


def test_label_writes_energies_and_a_summary(h2_file, tmp_path, capsys, h2_labels):
    out = tmp_path / "out.h5"
    assert main(["--quiet", "label", str(h2_file), "hf/sto-3g", "-o", str(out),
                 "--workers", "1"]) == 0
    text = capsys.readouterr()
    assert "HF/STO-3G: 10 molecules" in text.out and "10 computed, 0 failed" in text.out
    assert text.err == ""  # --quiet: no progress bar
    db = Database.load(out)
    np.testing.assert_allclose(db.get("HF/STO-3G"), h2_labels["hf"][::50], atol=1e-7)
    assert (tmp_path / "default-cache" / "labels.sqlite").exists()
    # again: all from the shared default cache
    assert main(["--quiet", "label", str(h2_file), "HF/STO-3G", "-o", str(out)]) == 0
    assert "10 from the cache, 0 computed" in capsys.readouterr().out


def test_forces_charge_multiplicity_name_and_own_cache(h2_file, tmp_path, capsys):
    out = tmp_path / "out.h5"
    cache = tmp_path / "mine.sqlite"
    assert main(["label", str(h2_file), "HF/STO-3G", "-o", str(out), "--forces", "--charge", "1",
                 "--multiplicity", "2", "--name", "h2+", "--cache", str(cache),
                 "--workers", "1"]) == 0
    captured = capsys.readouterr()
    assert "forces/h2+" in captured.out
    assert "mol/s" in captured.err or "it/s" in captured.err  # the progress bar
    db = Database.load(out)
    assert db.get("forces/h2+").shape == (10, 2, 3) and (db.charges == 1).all()
    assert cache.exists() and not (tmp_path / "default-cache").exists()
    # any format ASE writes, from the cache this time
    assert main(["--quiet", "label", str(h2_file), "HF/STO-3G", "-o", str(tmp_path / "o.xyz"),
                 "--forces", "--charge", "1", "--multiplicity", "2", "--name", "h2+",
                 "--cache", str(cache)]) == 0
    assert "10 from the cache" in capsys.readouterr().out
    back = Database.read(tmp_path / "o.xyz")
    assert len(back) == 10


def test_bad_level_is_one_line_error(h2_file, tmp_path, capsys):
    assert main(["label", str(h2_file), "CISDT/cc-pVDZ", "-o", str(tmp_path / "o.h5")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("levelup: error: unknown method 'CISDT'") and err.count("\n") == 1
    assert not (tmp_path / "o.h5").exists()


def test_failures_are_summarized_with_exit_status_3(tmp_path, capsys):
    water = np.array([[[0.0, 0, 0], [0, 2.0, 1.5], [0, -2.0, 1.5]]])
    Database.from_numpy(water, [8, 1, 1]).save(tmp_path / "w.h5")
    code = main(["--quiet", "label", str(tmp_path / "w.h5"), "HF/6-31G", "-o",
                 str(tmp_path / "o.h5"), "--max-cycle", "2", "--no-retries", "--no-cache"])
    assert code == 3
    out = capsys.readouterr().out
    assert "1 failed" in out and "molecule 0: SCF did not converge" in out
    assert np.isnan(Database.load(tmp_path / "o.h5").get("HF/6-31G")).all()


def test_scheduler_runs_on_dask(h2_file, tmp_path, capsys, h2_labels):
    import distributed

    out = tmp_path / "out.h5"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        assert main(["--quiet", "label", str(h2_file), "HF/STO-3G", "-o", str(out),
                     "--scheduler", cluster.scheduler_address, "--no-cache"]) == 0
    assert "10 computed" in capsys.readouterr().out
    np.testing.assert_allclose(Database.load(out).get("HF/STO-3G"), h2_labels["hf"][::50],
                               atol=1e-7)
