import subprocess
import sys

from levelup.cli.main import main


def test_demo_builds_database(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "h2.h5").exists()
    assert "451" in capsys.readouterr().out


def test_error_is_one_line(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing.h5")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("levelup: error:") and err.count("\n") == 1


def test_console_script_runs_as_subprocess(tmp_path):
    out = subprocess.run([sys.executable, "-m", "levelup.cli.main", "info", str(tmp_path / "x")],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "levelup: error:" in out.stderr
