"""The design strategy aimed at energy differences between named structures
(levelup.selection.targets): each greedy pick is the largest drop of the mixed objective by the
textbook posterior; a share of 0 is the pool-only design; aimed points leave the difference less
uncertain than the pool-only ones; the structures are optimised on the model under their
constraints; bad requests are clear errors."""

from __future__ import annotations

import numpy as np
import pytest

import levelup
from levelup.data import Database
from levelup.errors import ConfigError, DataError
from levelup.selection.design import (
    NOISE,
    integrated_variance_design,
    transfer_features,
)
from levelup.selection.targets import energy_difference_targets
from levelup.study.tutorial import h2_scan


def _posterior(prior, rows, noise):
    """The weights' posterior covariance after labelling ``rows`` (textbook formula)."""
    p = np.diag(prior)
    if not len(rows):
        return p
    rows = np.asarray(rows)
    inner = rows @ p @ rows.T + noise * np.eye(len(rows))
    return p - p @ rows.T @ np.linalg.solve(inner, rows @ p)


def _mixed(phi, prior, targets, share, chosen, noise):
    """(1 - share) * the pool's summed variance / its prior sum + share * the targets' mean
    variance, each target scaled by its prior variance."""
    post = _posterior(prior, phi[list(chosen)], noise)
    pool = np.trace(phi @ post @ phi.T) / np.trace(phi @ np.diag(prior) @ phi.T)
    each = [t @ post @ t / (t @ np.diag(prior) @ t) for t in targets]
    return (1 - share) * pool + share * float(np.mean(each))


@pytest.fixture(scope="module")
def clusters():
    rng = np.random.default_rng(1)
    phi = np.concatenate([rng.normal(0, 0.1, (30, 5)) + 1.0, rng.normal(0, 0.1, (6, 5)) - 1.0,
                          rng.normal(0, 0.3, (6, 5))])
    phi = np.concatenate([phi, np.full((len(phi), 1), 2.0)], 1)
    prior = np.array([1.0] * 5 + [1e3])
    targets = np.stack([phi[31] - phi[0], phi[40] - phi[33]])
    return phi, prior, targets


@pytest.mark.parametrize("share", [0.5, 0.9])
def test_each_pick_is_the_largest_drop_of_the_mixed_objective(clusters, share):
    phi, prior, targets = clusters
    chosen = integrated_variance_design(phi, prior, 4, targets=targets, share=share)
    noise = NOISE * float(np.mean(np.sum(phi[:, :5] ** 2, 1)))
    for step in range(4):
        before = list(chosen[:step])
        totals = [_mixed(phi, prior, targets, share, before + [j], noise) if j not in before
                  else np.inf for j in range(len(phi))]
        assert chosen[step] == int(np.argmin(totals))


def test_share_zero_is_the_pool_design_and_aiming_changes_the_choice(clusters):
    phi, prior, targets = clusters
    pool_only = integrated_variance_design(phi, prior, 5)
    np.testing.assert_array_equal(
        integrated_variance_design(phi, prior, 5, targets=targets, share=0.0), pool_only)
    aimed = integrated_variance_design(phi, prior, 5, targets=targets)
    assert set(aimed) != set(pool_only)
    noise = NOISE * float(np.mean(np.sum(phi[:, :5] ** 2, 1)))
    assert _mixed(phi, prior, targets, 1.0, aimed, noise) < _mixed(phi, prior, targets, 1.0,
                                                                   pool_only, noise)


@pytest.fixture(scope="module")
def h2():
    """The tutorial's H2 scan and a small H2 model with a minimum near 0.74 A (fitted to a
    Morse curve in a second), so that optimisation on it means something."""
    pool = h2_scan()
    r = np.linalg.norm(np.diff(np.asarray(pool.coordinates), axis=1)[:, 0], axis=1)
    energy = 0.17 * (1 - np.exp(-1.9 * (r - 0.74))) ** 2 - 1.17
    pool.set("morse", energy, level="Morse")
    model = levelup.ANIModel(["H"], hidden=(16, 16), seed=0)
    levelup.fit(model, pool, property="morse", progress=False,
                config=levelup.TrainConfig(max_epochs=60, seed=0))
    return pool, model, r


def _h2(r: float) -> Database:
    return Database.from_numpy(np.array([[[0.0, 0.0, 0.0], [0.0, 0.0, r]]]), [1, 1])


def test_targets_are_feature_differences_of_the_optimised_structures(h2):
    pool, model, _ = h2
    structures = {"minimum": _h2(0.80), "stretched": _h2(1.6)}
    rows = energy_difference_targets(model, structures, constraints={"stretched": "fix:0,1"})
    minimum = levelup.properties.optimize(_h2(0.80), model).structure
    r_min = float(np.linalg.norm(np.diff(np.asarray(minimum.coordinates), axis=0)))
    assert abs(r_min - 0.80) > 1e-3  # it moved: optimised, not taken as given
    expected = (transfer_features(_h2(1.6), model)[0][0]
                - transfer_features(_h2(r_min), model)[0][0])
    assert rows.shape == (1, len(expected))
    np.testing.assert_allclose(rows[0], expected, rtol=1e-4, atol=1e-6)


def test_select_aims_its_points_at_the_named_structures(h2):
    pool, model, r = h2
    structures = {"minimum": _h2(0.8), "stretched": _h2(3.5)}
    constraints = {"stretched": "fix:0,1"}
    plain = levelup.select(pool, 4, "design", model=model).indices
    aimed = levelup.select(pool, 4, "design", model=model, structures=structures,
                           constraints=constraints).indices
    assert aimed == levelup.select(pool, 4, "design", model=model, structures=structures,
                                   constraints=constraints).indices
    near = lambda rows: min(abs(r[list(rows)] - 3.5))  # noqa: E731
    assert near(aimed) < near(plain)
    assert near(aimed) < 0.3


@pytest.mark.parametrize("kwargs, error, words", [
    ({"method": "fps", "structures": {"a": 1, "b": 2}}, ConfigError,
     "structures= aims the 'design' strategy"),
    ({"structures": {"a": None}}, ConfigError, "at least two named structures"),
    ({"structures": {"a": None, "b": None}, "constraints": {"c": "planar"}}, ConfigError,
     r"\['c'\] name no structure"),
    ({"structures": {"a": None, "b": None}, "reference": "z"}, ConfigError,
     r"\['z'\] name no structure"),
])
def test_bad_requests_are_clear_errors(h2, kwargs, error, words):
    pool, model, _ = h2
    with pytest.raises(error, match=words):
        levelup.select(pool, 3, kwargs.pop("method", "design"), model=model, **kwargs)


def test_a_target_the_layers_cannot_see_and_a_bad_share_are_refused(clusters):
    phi, prior, targets = clusters
    with pytest.raises(DataError, match="name structures that differ"):
        integrated_variance_design(phi, prior, 2, targets=np.zeros((1, phi.shape[1])))
    with pytest.raises(ConfigError, match="share must be from 0 to 1"):
        integrated_variance_design(phi, prior, 2, targets=targets, share=1.5)
    with pytest.raises(DataError, match="feature rows"):
        integrated_variance_design(phi, prior, 2, targets=targets[:, :3])


def test_cli_aims_the_design_at_named_structures(h2, tmp_path, capsys):
    from levelup.cli.main import main

    pool, model, _ = h2
    pool.save(tmp_path / "pool.h5")
    model.save(tmp_path / "pre.pt")
    (tmp_path / "a.xyz").write_text("2\n\nH 0 0 0\nH 0 0 0.8\n")
    (tmp_path / "b.xyz").write_text("2\n\nH 0 0 0\nH 0 0 3.5\n")
    out = tmp_path / "chosen.h5"
    assert main(["select", str(tmp_path / "pool.h5"), "--budget", "4", "--method", "design",
                 "--model", str(tmp_path / "pre.pt"), "--structure", f"min={tmp_path / 'a.xyz'}",
                 "--structure", f"far={tmp_path / 'b.xyz'}", "--constraint", "far=fix:0,1",
                 "-o", str(out)]) == 0
    rows = levelup.Database.load(out).get("selection/index").astype(int)
    aimed = levelup.select(pool, 4, "design", model=model, structures={
        "min": _h2(0.8), "far": _h2(3.5)}, constraints={"far": ["fix:0,1"]}).indices
    assert sorted(rows) == sorted(aimed)
    capsys.readouterr()
    base = ["select", str(tmp_path / "pool.h5"), "--budget", "4", "--model",
            str(tmp_path / "pre.pt"), "-o", str(tmp_path / "x.h5")]
    for extra, words in [
        (["--method", "fps", "--structure", "a=a.xyz"], "add --method design"),
        (["--method", "design", "--structure", f"a={tmp_path / 'a.xyz'}"], "two or more"),
        (["--method", "design", "--structure", f"a={tmp_path / 'a.xyz'}", "--structure",
          f"b={tmp_path / 'b.xyz'}", "--constraint", "c=planar"], "no --structure is named 'c'"),
        (["--method", "design", "--structure", f"a={tmp_path / 'a.xyz'}", "--structure",
          "b"], "--structure takes NAME=VALUE"),
    ]:
        assert main(base + extra) == 1
        err = capsys.readouterr().err
        assert err.startswith("levelup: error: ") and words in err and err.count("\n") == 1
        assert not (tmp_path / "x.h5").exists()
