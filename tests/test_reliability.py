"""Every bad-input case of tests/reliability_cases.py (the table of RELIABILITY.md), run
in-process: exit 1, one line ``levelup: error: ...`` naming the problem, no traceback, and no
file created or changed."""

from __future__ import annotations

import pytest
from reliability_cases import CASES, created_or_changed, fill, make_fixtures, snapshot

from levelup.cli.main import main


@pytest.fixture()
def fixtures(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # default outputs (ani-1x.pt, runs/...) land here, if anywhere
    monkeypatch.setenv("LEVELUP_CACHE_DIR", str(tmp_path / "cache"))
    return make_fixtures(tmp_path)


def test_case_ids_are_unique_and_many():
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 60


@pytest.mark.parametrize(("argv", "expected"), [(argv, text) for _, argv, text in CASES],
                         ids=[case[0] for case in CASES])
def test_bad_input_gives_one_line_and_touches_nothing(argv, expected, fixtures, tmp_path, capsys):
    before = snapshot(tmp_path)
    code = main(["-q", *fill(argv, fixtures)])
    captured = capsys.readouterr()
    err = captured.err
    assert code == 1, captured
    assert err.startswith("levelup: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err + captured.out
    assert expected in err, err
    assert created_or_changed(before, tmp_path) == []
