import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from levelup import LevelupError
from levelup.qm import LabelCache, default_cache_path
from levelup.qm.cache import label_key, open_cache

XYZ = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.74]])


def test_keys_ignore_float_noise_but_not_geometry_or_level():
    key = label_key("hf/sto3g|charge=0|mult=1", [1, 1], XYZ)
    assert label_key("hf/sto3g|charge=0|mult=1", [1, 1], XYZ + 1e-12) == key
    assert label_key("hf/sto3g|charge=0|mult=1", [1, 1], -0.0 * XYZ + XYZ) == key
    assert label_key("hf/sto3g|charge=0|mult=1", [1, 1], XYZ + [0, 0, 1e-6]) != key
    assert label_key("hf/sto3g|charge=1|mult=2", [1, 1], XYZ) != key
    assert label_key("cisd/ccpvdz|charge=0|mult=1", [1, 1], XYZ) != key
    assert label_key("hf/sto3g|charge=0|mult=1", [1, 2], XYZ) != key


def test_put_and_get_round_trip(tmp_path):
    forces = np.array([[0.0, 0.0, 0.1], [0.0, 0.0, -0.1]])
    with LabelCache(tmp_path / "c.sqlite") as cache:
        cache.put("a", "HF/STO-3G", -1.1, None, n_atoms=2)
        cache.put("b", "HF/STO-3G", -1.2, forces, forces_method="analytic", n_atoms=2,
                  program="PySCF 2.14.0")
        got = cache.get_many(["a", "b", "missing"])
        assert set(got) == {"a", "b"} and got["a"].energy == -1.1 and got["a"].forces is None
        np.testing.assert_array_equal(got["b"].forces, forces)
        assert got["b"].program == "PySCF 2.14.0"
        assert set(cache.get_many(["a", "b"], forces="analytic")) == {"b"}
        assert cache.get_many(["b"], forces="numerical") == {}
        # an energy-only label never erases forces stored before
        cache.put("b", "HF/STO-3G", -1.2, None, n_atoms=2)
        np.testing.assert_array_equal(cache.get_many(["b"], forces="analytic")["b"].forces,
                                      forces)
        cache.put_failure("c", "HF/STO-3G", "SCF did not converge")
        assert cache.failures(["c"]) == {"c": "SCF did not converge"}
        cache.put("c", "HF/STO-3G", -1.3, None, n_atoms=2)
        assert cache.failures() == {}
        assert len(cache) == 3
    # committed: a new connection sees everything
    assert len(LabelCache(tmp_path / "c.sqlite")) == 3


def test_wal_mode_and_corrupt_file_message(tmp_path):
    path = tmp_path / "c.sqlite"
    LabelCache(path).close()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LevelupError, match="cannot use .* as a label cache"):
        LabelCache(bad)


def test_default_location_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LEVELUP_CACHE_DIR", str(tmp_path / "here"))
    assert default_cache_path() == tmp_path / "here" / "labels.sqlite"
    cache, owned = open_cache(None)
    assert owned and cache.path == str(tmp_path / "here" / "labels.sqlite")
    cache.close()
    monkeypatch.delenv("LEVELUP_CACHE_DIR")
    assert default_cache_path().name == "labels.sqlite"
    memory, owned = open_cache(False)
    assert memory.path == ":memory:" and owned
    assert open_cache(memory) == (memory, False)


WRITER = textwrap.dedent("""
    import sys
    from levelup.qm import LabelCache
    cache = LabelCache(sys.argv[1])
    tag = sys.argv[2]
    for i in range(300):
        cache.put(f"{tag}{i}", "HF/STO-3G", -float(i), None, n_atoms=2)
        cache.put(f"shared{i}", "HF/STO-3G", -float(i), None, n_atoms=2)
        assert cache.get_many([f"{tag}{i}"])[f"{tag}{i}"].energy == -float(i)
    cache.close()
""")


def test_two_processes_write_one_cache(tmp_path):
    path = tmp_path / "shared.sqlite"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), tag],
                              stderr=subprocess.PIPE, text=True) for tag in ("a", "b")]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT COUNT(*) FROM labels").fetchone()[0] == 900
