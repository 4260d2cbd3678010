"""levelup.select: every strategy is deterministic for a seed, never picks a geometry twice and
respects the budget; bad requests are clear errors before any work; farthest points take both
ends of the H2 scan; the query-by-committee loop labels through the cache, writes its state, and
resumes after SIGKILL without computing a label twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import levelup
from levelup.cli.main import main
from levelup.errors import ConfigError, DataError
from levelup.qm.cache import LabelCache
from levelup.selection.committee import bootstrap_rows, next_batch
from levelup.study.tutorial import h2_scan
from levelup.transfer.linear import LinearRecipe

HIGH = "CISD/cc-pVDZ"
#: a small grid, so that a committee round takes a fraction of a second
RECIPE = "LinearRecipe(anchor=(0.0, 1e-3), smoothness=(0.0, 1e-4), ridge=(1e-2, 1.0))"


@pytest.fixture(scope="module")
def pool():
    """The tutorial's 451 H2 geometries."""
    return h2_scan()


@pytest.fixture(scope="module")
def model():
    """A small H2 model (untrained networks, HF/STO-3G-like self energies): the loop's
    mechanics do not depend on how well it was pre-trained."""
    return levelup.ANIModel(["H"], hidden=(16, 16), seed=0, self_energies=[-0.4666])


@pytest.mark.parametrize("method", ["every", "random", "fps"])
@pytest.mark.parametrize("budget", [1, 5, 12])
def test_strategies_are_deterministic_distinct_and_within_budget(pool, method, budget):
    first = levelup.select(pool, budget, method, seed=3)
    again = levelup.select(pool, budget, method, seed=3)
    assert first == again
    assert len(first.indices) == budget == len(set(first.indices))
    assert all(0 <= i < len(pool) for i in first.indices)
    assert first.rounds == (0,) * budget
    json.dumps(first.to_dict())


def test_random_depends_on_the_seed_and_every_is_the_tutorials(pool):
    assert levelup.select(pool, 12, "random", seed=0) != levelup.select(pool, 12, "random",
                                                                        seed=1)
    assert levelup.select(pool, 12, "every").indices == tuple(range(0, 451, 40))
    whole = levelup.select(pool[:10], 10, "every").indices
    assert sorted(whole) == list(range(10))


def test_farthest_points_take_both_ends_of_the_h2_scan(pool, model):
    for given in (None, model):
        chosen = levelup.select(pool, 12, "fps", model=given).indices
        assert {0, 450} <= set(chosen), chosen


def test_design_is_deterministic_distinct_and_within_budget(pool, model):
    for budget in (1, 5, 12):
        first = levelup.select(pool, budget, "design", model=model)
        assert first == levelup.select(pool, budget, "design", model=model, seed=7)
        assert len(first.indices) == budget == len(set(first.indices))
        assert all(0 <= i < len(pool) for i in first.indices)
    ensemble = levelup.Ensemble([model, levelup.ANIModel(["H"], hidden=(16, 16), seed=1)])
    chosen = levelup.select(pool, 8, "design", model=ensemble).indices
    assert len(set(chosen)) == 8


def _summed_posterior_variance(phi, prior, rows, noise):
    """The summed GP posterior variance over every row of ``phi`` after labelling ``rows``,
    by the textbook formula (no update tricks)."""
    kernel = (phi * prior) @ phi.T
    if not rows:
        return float(np.trace(kernel))
    rows = list(rows)
    inner = kernel[np.ix_(rows, rows)] + noise * np.eye(len(rows))
    cross = kernel[:, rows]
    return float(np.trace(kernel - cross @ np.linalg.solve(inner, cross.T)))


def test_design_picks_the_largest_drop_in_summed_posterior_variance():
    from levelup.selection.design import NOISE, integrated_variance_design

    rng = np.random.default_rng(0)
    # a crowded cluster of 40 rows, a sparse one of 5, and one outlier; 6 features + 1 "bias"
    phi = np.concatenate([rng.normal(0, 0.1, (40, 6)) + 1.0, rng.normal(0, 0.1, (5, 6)) - 1.0,
                          np.full((1, 6), 4.0)])
    phi = np.concatenate([phi, np.full((len(phi), 1), 2.0)], 1)
    prior = np.array([1.0] * 6 + [1e3])
    chosen = integrated_variance_design(phi, prior, 4)
    noise = NOISE * float(np.mean(np.sum(phi[:, :6] ** 2, 1)))
    for step in range(4):
        before = list(chosen[:step])
        totals = [_summed_posterior_variance(phi, prior, before + [j], noise)
                  if j not in before else np.inf for j in range(len(phi))]
        assert chosen[step] == int(np.argmin(totals))
    assert chosen[0] < 40  # the first point stands for the crowd, not the outlier


def test_design_refuses_a_pool_the_model_cannot_describe(model):
    from ase.build import molecule

    water = levelup.Database.from_ase([molecule("H2O")])
    with pytest.raises(DataError, match="elements \\[8\\]"):
        levelup.select(water, 1, "design", model=model)


@pytest.mark.parametrize("kwargs, error, words", [
    ({"budget": 500}, DataError, "451 geometries, fewer than the budget of 500"),
    ({"budget": 0}, ConfigError, "budget must be a whole number >= 1"),
    ({"budget": 5, "method": "best"}, ConfigError, "choose one of every, random, fps"),
    ({"budget": 5, "method": "committee", "high": HIGH}, ConfigError, "pre-trained model"),
    ({"budget": 5, "method": "design"}, ConfigError, "design strategy needs the pre-trained"),
    ({"budget": 5, "method": "committee", "model": "m"}, ConfigError, "high level"),
    ({"budget": 5, "method": "committee", "model": "m", "high": HIGH, "batch": 6},
     ConfigError, "batch must be a whole number from 1 to the budget (5)"),
    ({"budget": 5, "method": "committee", "model": "m", "high": HIGH, "target": -1.0},
     ConfigError, "target must be"),
    ({"budget": 5, "method": "fps", "low": "HF/STO-3G"}, DataError,
     "no low-level property 'HF/STO-3G'"),
])
def test_bad_requests_are_clear_errors(pool, kwargs, error, words):
    budget = kwargs.pop("budget")
    with pytest.raises(error) as raised:
        levelup.select(pool, budget, **kwargs)
    assert words in str(raised.value)


def test_committee_budget_below_the_cross_validation_is_refused(pool, model):
    with pytest.raises(ConfigError, match="budget of at least 4"):
        levelup.select(pool, 3, "committee", model=model, high=HIGH, batch=1, cache=False)


def test_bootstrap_members_differ_and_cross_validate():
    rng = np.random.default_rng(0)
    for n in (4, 5, 8, 20):
        draws = [tuple(bootstrap_rows(n, rng)) for _ in range(8)]
        assert all(3 <= len(d) < n and len(set(d)) == len(d) for d in draws)
        assert len(set(draws)) > 1


def test_a_batch_is_the_most_disputed_point_then_spread_out():
    spread = np.exp(-((np.arange(100) - 30) / 5.0) ** 2)  # one peak at row 30
    descriptors = np.arange(100, dtype=float)[:, None]
    batch = next_batch(spread, descriptors, np.array([0, 99]), 3)
    assert batch[0] == 30 and len(set(batch)) == 3
    assert np.diff(np.sort(batch)).min() > 3  # not three neighbours on the peak


def _loop_script(pool_file, model_file, cache, state) -> str:
    return textwrap.dedent(f"""
        import levelup
        from levelup.transfer.linear import LinearRecipe
        levelup.select(levelup.Database.load({str(pool_file)!r}), 8, "committee",
                       model={str(model_file)!r}, high={HIGH!r}, batch=2, cache={str(cache)!r},
                       state={str(state)!r}, progress=False, workers=1, recipe={RECIPE})
        """)


def test_committee_resumes_after_sigkill_without_relabelling(pool, model, tmp_path):
    pool_file, model_file = tmp_path / "pool.h5", tmp_path / "model.pt"
    cache, state = tmp_path / "labels.sqlite", tmp_path / "state.json"
    pool.save(pool_file)
    model.save(model_file)
    proc = subprocess.Popen([sys.executable, "-c", _loop_script(pool_file, model_file, cache,
                                                                state)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    saved = json.loads(state.read_text())
    assert saved["finished"] is False and saved["history"][0]["computed"] == 4
    with LabelCache(cache) as c:
        before = len(c)
    assert 4 <= before < 8

    def rerun():
        return levelup.select(pool, 8, "committee", model=model, high=HIGH, batch=2,
                              cache=cache, state=state, progress=False, workers=1,
                              recipe=eval(RECIPE, {"LinearRecipe": LinearRecipe}))

    resumed = rerun()
    computed = sum(r.computed for r in resumed.history)
    assert computed == 8 - before  # every label of the killed run came from the cache
    assert sum(r.cached for r in resumed.history) == before
    assert resumed.indices[:4] == tuple(saved["indices"])
    assert len(resumed.indices) == 8 == len(set(resumed.indices))
    assert resumed.rounds == (0, 0, 0, 0, 1, 1, 2, 2)
    assert np.isfinite(resumed.energies).all() and resumed.level == HIGH
    final = json.loads(state.read_text())
    assert final["finished"] is True and final["indices"] == list(resumed.indices)
    assert [r["labelled"] for r in final["history"]] == [4, 6, 8]
    assert all(r["predicted_error"] >= 0 and r["cv_rmse"] > 0 for r in final["history"])
    again = rerun()  # deterministic: the same choice, every label from the cache
    assert again.indices == resumed.indices
    assert sum(r.computed for r in again.history) == 0


def test_cli_writes_the_chosen_geometries(pool, tmp_path, capsys):
    pool.save(tmp_path / "pool.h5")
    out = tmp_path / "chosen.h5"
    assert main(["select", str(tmp_path / "pool.h5"), "--budget", "12", "--method", "fps",
                 "-o", str(out)]) == 0
    chosen = levelup.Database.load(out)
    rows = chosen.get("selection/index").astype(int)
    assert len(chosen) == 12 and {0, 450} <= set(rows)
    assert "chose 12 of 451 geometries by fps" in capsys.readouterr().out
    assert main(["select", str(tmp_path / "pool.h5"), "--budget", "6", "--method",
                 "committee", "-o", str(tmp_path / "c.h5")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("levelup: error: --method committee needs --model and --high")
    assert err.count("\n") == 1
    assert main(["select", str(tmp_path / "pool.h5"), "--budget", "6", "--method", "design",
                 "-o", str(tmp_path / "d.h5")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("levelup: error: --method design needs --model")
    assert err.count("\n") == 1 and not (tmp_path / "d.h5").exists()


def test_committee_reads_high_energies_the_pool_holds(pool, model):
    """A pool labelled at the high level costs no calculation: no cache, no PySCF."""
    labelled = pool[np.arange(len(pool))]
    r = np.linalg.norm(labelled.coordinates[:, 1] - labelled.coordinates[:, 0], axis=1)
    labelled.set(HIGH, -1.17 + 0.1 * (r - 0.74) ** 2, level=HIGH)  # a made-up curve, Hartree
    result = levelup.select(labelled, 6, "committee", model=model, high=HIGH, batch=2,
                            cache=False, progress=False, workers=1,
                            recipe=eval(RECIPE, {"LinearRecipe": LinearRecipe}))
    assert [h.reused for h in result.history] == [4, 2]
    assert sum(h.computed + h.cached for h in result.history) == 0
    rows = np.array(result.indices)
    assert np.allclose(result.energies, labelled.get(HIGH)[rows])
