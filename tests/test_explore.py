"""Geometry pools from exploring a potential (levelup.explore): Langevin frames reproducible with a
seed and thermostatted to the temperature asked, MD on a level equal to levelup.label's numbers,
energy conservation of NVE with a small trained H2 model (and its failure at a timestep beyond
Verlet's stability limit), a nudged elastic band of the ammonia inversion on HF/STO-3G and on a
model trained on distortions around that path, ``levelup build md`` / ``build neb``, and
``[geometries] source = "md"`` in a study file."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from ase import Atoms

import levelup
from levelup.cli.main import main
from levelup.data import Database
from levelup.errors import ConfigError, DataError, LevelOfTheoryError
from levelup.explore.dynamics import langevin_frames
from levelup.explore.nve import nve_check
from levelup.explore.paths import neb_path, path_pool
from levelup.model.aev import NoNeighbourWarning
from levelup.model.ani import ANIModel
from levelup.model.selfenergies import SelfEnergyWarning
from levelup.study.geometries import build_geometries
from levelup.study.reader import parse_study, read_study
from levelup.units import HARTREE_TO_KCALMOL

KCAL = HARTREE_TO_KCALMOL
# Ammonia at its HF/STO-3G minimum (BFGS on levelup's HF/STO-3G forces to 0.01 eV/Angstrom),
# nitrogen first, and its mirror image through the plane of the hydrogens' centre: the two ends
# of the umbrella inversion, whose HF/STO-3G barrier is about 11 kcal/mol.
NH3 = np.array([[0.0, 0.0, 0.3193], [0.9405, 0.0, -0.1065], [-0.4702, 0.8147, -0.1064],
                [-0.4702, -0.8147, -0.1064]])


def _nh3(mirror: bool = False) -> Atoms:
    xyz = NH3 * ([1, 1, -1] if mirror else 1)
    return Atoms("NH3", xyz)


def _distances(xyz: np.ndarray) -> np.ndarray:
    return np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)


def _quiet_fit(model, db, prop, **config):
    with warnings.catch_warnings():
        # one composition fixes only a sum of the self energies: fine for one molecule
        warnings.simplefilter("ignore", SelfEnergyWarning)
        levelup.fit(model, db, property=prop, progress=False, config=levelup.TrainConfig(**config))
    return model


@pytest.fixture(scope="module")
def h2_model(h2_labels):
    """A small H2 model of the tutorial's HF/STO-3G curve (r <= 2.5 Angstrom, energies only):
    a smooth well with its minimum near 0.71 Angstrom."""
    keep = h2_labels["r"] <= 2.5
    xyz = np.zeros((int(keep.sum()), 2, 3))
    xyz[:, 1, 2] = h2_labels["r"][keep]
    db = Database(np.ones((len(xyz), 2), dtype=int), xyz)
    db.set("HF/STO-3G", h2_labels["hf"][keep])
    model = ANIModel(["H"], hidden=(16, 16), seed=0).double()
    return _quiet_fit(model, db, "HF/STO-3G", max_epochs=150, batch_size=32, learning_rate=5e-3)


@pytest.fixture(scope="module")
def files(tmp_path_factory, h2_model, nh3_model):
    """A folder with h2.xyz, nh3.xyz, nh3_mirror.xyz, hnh2.xyz (atoms in another order), and
    the models h2.pt and nh3.pt."""
    folder = tmp_path_factory.mktemp("explore")
    Atoms("H2", [[0, 0, 0], [0, 0, 0.712]]).write(folder / "h2.xyz")
    _nh3().write(folder / "nh3.xyz")
    _nh3(mirror=True).write(folder / "nh3_mirror.xyz")
    Atoms("HNH2", NH3[[1, 0, 2, 3]]).write(folder / "hnh2.xyz")
    h2_model.save(folder / "h2.pt")
    nh3_model.save(folder / "nh3.pt")
    return folder


# ---------------------------------------------------------------------------------- Langevin
def test_md_frames_are_reproducible_with_a_seed(h2_model, h2_atoms):
    def run(seed, steps=200):
        return langevin_frames(h2_atoms(0.712), h2_model, temperature=500, steps=steps, every=10,
                               seed=seed, progress=False)

    a, b, c = run(0), run(0), run(1)
    assert len(a) == 20 and len(run(0, steps=209)) == 20  # steps // every frames
    np.testing.assert_array_equal(a.coordinates, b.coordinates)
    assert np.abs(a.coordinates - c.coordinates).max() > 1e-3
    np.testing.assert_allclose(a.get("time_fs"), 5.0 * np.arange(1, 21))  # 10 steps of 0.5 fs
    # each frame's recorded energy is the model's at that frame (not a neighbour's)
    np.testing.assert_allclose(a.get("md_energy"), h2_model.predict(a).energies, atol=1e-10)
    assert a.properties["md_energy"].spec["seed"] == 0
    assert len(np.unique(a.distance(0, 1).round(6))) == 20  # the bond vibrates


def test_langevin_thermostat_brings_a_hot_start_to_the_temperature(h2_model, h2_atoms):
    # H2 stretched to 1.05 Angstrom holds ~20 kcal/mol above the minimum: without a working
    # thermostat its 3 degrees of freedom (centre of mass fixed) would stay thousands of K hot.
    # Friction 0.05/fs forgets in 20 fs; 300 fs of equilibration are 15 such times.
    db = langevin_frames(h2_atoms(1.05), h2_model, temperature=300, steps=2400, every=4,
                         friction=0.05, equilibrate=600, seed=3, progress=False)
    temperature = db.get("temperature_K")
    assert 0.75 * 300 < temperature.mean() < 1.25 * 300, temperature.mean()
    assert db.distance(0, 1).max() < 0.95  # the hot stretch is gone


def test_md_on_a_level_equals_labels(h2_atoms, session_label_cache):
    # no cache for the dynamics, so that label() below computes its own numbers
    db = langevin_frames(h2_atoms(0.74), "HF/STO-3G", temperature=300, steps=6, every=2, seed=0,
                         progress=False, cache=False, threads=1)
    assert len(db) == 3 and db.properties["md_energy"].level == "HF/STO-3G"
    labelled = levelup.label(db, "HF/STO-3G", cache=session_label_cache, workers=1,
                             progress=False)
    np.testing.assert_allclose(db.get("md_energy"), labelled.get("HF/STO-3G"), atol=1e-8)


def test_bad_dynamics_settings_fail_before_any_work(h2_model, h2_atoms):
    mol = h2_atoms(0.74)
    for bad, word in (({"temperature": -1.0}, "temperature"), ({"every": 50}, "every"),
                      ({"timestep": 0.0}, "timestep"), ({"steps": 0}, "steps")):
        settings = {"temperature": 300.0, "steps": 10, "every": 2, **bad}
        with pytest.raises(DataError, match=word):
            langevin_frames(mol, h2_model, progress=False, **settings)
    with pytest.raises(DataError, match="no network for N"):
        langevin_frames(_nh3(), h2_model, temperature=300, steps=10, every=2, progress=False)
    with pytest.raises(LevelOfTheoryError, match="no functions for"):
        langevin_frames(Atoms("Au2", [[0, 0, 0], [0, 0, 2.5]]), "HF/6-31G", temperature=300,
                        steps=10, every=2, progress=False)
    with pytest.raises(DataError, match="does not exist"):
        langevin_frames(mol, "missing.pt", temperature=300, steps=10, every=2, progress=False)


# ---------------------------------------------------------------------------------- NVE
def test_nve_conserves_energy_and_a_huge_timestep_breaks_it(h2_model, h2_atoms):
    # Velocity Verlet on a harmonic stretch of angular frequency w: the true energy oscillates
    # within a band of relative width (w dt)^2 / 4 around the conserved shadow energy, and does
    # not drift. H2 at HF/STO-3G: w = 5480 cm^-1 (a period of 6 fs), so dt = 0.25 fs gives
    # (w dt)^2 / 4 = 0.017 of the vibrational energy; the bound below allows 3 times that for
    # anharmonicity. Starting 0.09 Angstrom stretched puts ~2.8 kcal/mol in the vibration
    # whatever the seeded velocities. The fitted drift over 50 periods of a bounded oscillation
    # is a small part of its amplitude; halving dt quarters the fluctuation; beyond w dt = 2
    # (dt > ~2 fs here) Verlet is unstable.
    def run(dt):
        return nve_check(h2_atoms(0.80), h2_model, temperature=300, time=300, timestep=dt,
                         progress=False)

    fine, coarse = run(0.25), run(0.5)
    assert fine.completed and fine.time.size == 1201
    w_dt = 2 * np.pi * 2.99792458e10 * 5480 * 0.25e-15
    e_vib = fine.total[0] - fine.potential.min()  # Hartree above the lowest point visited
    assert 2.0 < e_vib * KCAL < 6.0
    assert fine.max_deviation < 3 * w_dt**2 / 4 * e_vib, fine.text()
    assert abs(fine.drift) < 0.1 * fine.max_deviation, fine.text()
    assert 3.0 < coarse.fluctuation / fine.fluctuation < 5.0  # (0.5 / 0.25)^2 = 4
    s = fine.summary()
    assert s["drift"] * KCAL == pytest.approx(s["drift_kcalmol"])
    assert 0 < s["temperature_min_K"] < s["temperature_mean_K"] < s["temperature_max_K"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoNeighbourWarning)  # the atoms fly apart
        bad = run(3.0)
    assert bad.max_deviation * KCAL > 1.0, bad.text()


# ---------------------------------------------------------------------------------- paths
@pytest.fixture(scope="module")
def nh3_level_path():
    """The ammonia inversion by climbing-image NEB on HF/STO-3G itself (5 images)."""
    return neb_path(_nh3(), _nh3(mirror=True), "HF/STO-3G", images=5, fmax=0.005,
                    progress=False, cache=False, threads=1)


@pytest.fixture(scope="module")
def nh3_model(nh3_level_path, session_label_cache):
    """A small ammonia model trained on HF/STO-3G energies of 15 distortions (0.04 Angstrom)
    around each image of the level's path, and the images: 80 geometries."""
    pool = path_pool(nh3_level_path, 15, 0.04, seed=0)
    db = levelup.label(pool, "HF/STO-3G", cache=session_label_cache, workers=1, threads=1,
                       progress=False)
    model = ANIModel(["H", "N"], hidden=(16, 16), seed=0).double()
    return _quiet_fit(model, db, "HF/STO-3G", max_epochs=200, batch_size=16, learning_rate=5e-3)


def test_neb_on_a_level_climbs_the_inversion_barrier(nh3_level_path):
    path = nh3_level_path
    xyz, e = path.images.coordinates, path.energies * KCAL
    assert len(path.images) == 5 and path.converged
    np.testing.assert_allclose(xyz[0], NH3, atol=1e-12)  # the first end stays where it was
    np.testing.assert_allclose(_distances(xyz[-1]), _distances(NH3), atol=1e-9)  # moved rigidly
    assert path.highest == 2 and e[2] > max(e[0], e[-1]) + 5  # the planar top, above both ends
    assert 8 < path.barrier * KCAL < 14  # HF/STO-3G: ~11 kcal/mol
    heights = NH3[0, 2] - NH3[1:, 2].mean()
    umbrella = xyz[:, 0, 2] - xyz[:, 1:, 2].mean(axis=1)  # N above the H3 plane, Angstrom
    np.testing.assert_allclose(umbrella[[0, 2, 4]], [heights, 0.0, -heights], atol=0.02)


def test_neb_on_a_model_trained_on_the_path_pool(nh3_model, nh3_level_path):
    path = neb_path(_nh3(), _nh3(mirror=True), nh3_model, images=5, fmax=0.005, progress=False)
    e = path.energies
    assert e[path.highest] > max(e[0], e[-1]) and 0 < path.highest < 4
    np.testing.assert_allclose(e, nh3_model.predict(path.images).energies, atol=1e-10)
    assert abs(path.barrier - nh3_level_path.barrier) * KCAL < 2.0  # 80 energies, no forces


def test_path_pool_is_seeded_and_stays_near_its_images(nh3_level_path):
    pool = path_pool(nh3_level_path, 3, 0.05, seed=7)
    assert len(pool) == 5 * 4
    origin = pool.get("path_image").astype(int)
    np.testing.assert_array_equal(origin, np.repeat(np.arange(5), 4))
    shift = pool.coordinates - nh3_level_path.images.coordinates[origin]
    assert np.abs(shift).max() <= 0.05 and np.abs(shift[origin == 2]).max() > 0
    np.testing.assert_array_equal(pool.coordinates,
                                  path_pool(nh3_level_path, 3, 0.05, seed=7).coordinates)
    assert not np.array_equal(pool.coordinates,
                              path_pool(nh3_level_path, 3, 0.05, seed=8).coordinates)


def test_neb_ends_must_list_the_same_atoms_in_order(nh3_model):
    hnh2 = Atoms("HNH2", NH3[[1, 0, 2, 3]])
    with pytest.raises(DataError, match="same order"):
        neb_path(_nh3(), hnh2, nh3_model, progress=False)
    with pytest.raises(DataError, match="images"):
        neb_path(_nh3(), _nh3(mirror=True), nh3_model, images=2, progress=False)


# ---------------------------------------------------------------------------------- CLI
def test_cli_build_md_and_neb_write_their_pools(files, tmp_path, capsys):
    out = tmp_path / "md.h5"
    argv = ["-q", "build", "md", str(files / "h2.xyz"), "--model", str(files / "h2.pt"),
            "--temperature", "300", "--steps", "40", "--every", "10", "-o", str(out)]
    assert main(argv) == 0
    db = Database.read(out)
    assert len(db) == 4 and np.allclose(db.get("time_fs"), [5, 10, 15, 20])
    assert "4 frames of Langevin dynamics at 300 K" in capsys.readouterr().out
    again = tmp_path / "again.h5"
    assert main([*argv[:-1], str(again)]) == 0
    np.testing.assert_array_equal(Database.read(again).coordinates, db.coordinates)

    pool = tmp_path / "pool.h5"
    assert main(["-q", "build", "neb", str(files / "nh3.xyz"), str(files / "nh3_mirror.xyz"),
                 "--model", str(files / "nh3.pt"), "--images", "5", "--fmax", "0.005",
                 "--distortions", "2", "-o", str(pool)]) == 0
    db = Database.read(pool)
    assert len(db) == 15 and set(db.get("path_image")) == {0, 1, 2, 3, 4}
    line = capsys.readouterr().out
    assert "5-image path, converged" in line and "highest image 2" in line, line


@pytest.mark.parametrize("argv, message", [
    (["md", "{f}/h2.xyz", "--temperature", "300", "--steps", "10", "--every", "2"],
     "--model M.pt"),
    (["md", "{f}/h2.xyz", "--model", "{f}/h2.pt", "--temperature", "-5", "--steps", "10",
      "--every", "2"], "--temperature must be"),
    (["md", "{f}/h2.xyz", "--model", "{f}/h2.pt", "--temperature", "300", "--steps", "10",
      "--every", "20"], "--every must be"),
    (["md", "{f}/nh3.xyz", "--model", "{f}/h2.pt", "--temperature", "300", "--steps", "10",
      "--every", "2"], "no network for N"),
    (["md", "{f}/h2.xyz", "--level", "HF/nonsense-basis", "--temperature", "300", "--steps",
      "10", "--every", "2"], "basis"),
    (["neb", "{f}/nh3.xyz", "{f}/hnh2.xyz", "--model", "{f}/nh3.pt"], "same order"),
    (["neb", "{f}/nh3.xyz", "{f}/nh3_mirror.xyz", "--model", "{f}/nh3.pt", "--images", "2"],
     "--images must be"),
])
def test_cli_bad_input_is_one_line_before_any_work(files, tmp_path, capsys, argv, message):
    out = tmp_path / "out.h5"
    args = ["build", *(a.replace("{f}", str(files)) for a in argv), "-o", str(out)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("levelup: error: ") and err.count("\n") == 1, err
    assert message in err and not out.exists()


# ---------------------------------------------------------------------------------- study
def test_study_with_md_geometries(files, h2_model):
    study_file = files / "md_study.toml"
    study_file.write_text(
        'seed = 4\n[geometries]\nsource = "md"\nstructure = "h2.xyz"\nmodel = "h2.pt"\n'
        'temperature = 400\nsteps = 60\nevery = 6\nequilibrate = 10\n'
        '[levels]\nlow = "HF/STO-3G"\nhigh = "CISD/cc-pVDZ"\n'
        '[selection]\nmethod = "every"\nstep = 3\n')
    g = read_study(study_file).geometries
    assert (g.source, g.model, g.steps, g.every, g.seed) == ("md", files / "h2.pt", 60, 6, 4)
    db = build_geometries(g)
    direct = langevin_frames(files / "h2.xyz", h2_model, temperature=400, steps=60, every=6,
                             equilibrate=10, seed=4, progress=False)
    assert len(db) == 10
    np.testing.assert_allclose(db.coordinates, direct.coordinates, atol=1e-12)


@pytest.mark.parametrize("keys, message", [
    ({"model": "h2.pt", "level": "HF/STO-3G"}, "one of them"),
    ({}, "one of them"),
    ({"model": "missing.pt"}, "no such file"),
    ({"model": "h2.pt", "every": 100}, "every must be"),
    ({"model": "h2.pt", "temperature": -1}, "temperature must be"),
    ({"model": "h2.pt", "n": 3}, "n"),
])
def test_study_md_table_errors(files, keys, message):
    table = {"source": "md", "structure": "h2.xyz", "temperature": 300, "steps": 20, "every": 5,
             **keys}
    with pytest.raises(ConfigError, match=message):
        parse_study({"geometries": table, "levels": {"low": "HF/STO-3G", "high": "CISD/cc-pVDZ"},
                     "selection": {"method": "every", "step": 2}}, base=files)
