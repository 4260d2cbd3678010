"""``levelup plot`` in-process: files written, what they show, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from levelup.cli.main import build_parser, main
from levelup.cli.plot import _coordinate
from levelup.data import Database
from levelup.study.tutorial import h2_scan
from levelup.units import HARTREE_TO_KCALMOL


@pytest.fixture()
def h2(tmp_path, h2_labels):
    db = h2_scan()[::10]
    db.set("HF/STO-3G", h2_labels["hf"][::10], level="HF/STO-3G")
    db.set("CISD/cc-pVDZ", h2_labels["cisd"][::10], level="CISD/cc-pVDZ")
    db.set("transfer", h2_labels["cisd"][::10] + 1.0 / HARTREE_TO_KCALMOL)
    db.set("forces", np.zeros((len(db), 2, 3)))
    db.save(tmp_path / "h2.h5")
    db[::4].save(tmp_path / "train.h5")
    return tmp_path / "h2.h5"


def error_of(capsys):
    err = capsys.readouterr().err
    assert err.startswith("levelup: error: ") and err.count("\n") == 1, err
    return err


def test_curves_png_with_points(h2, tmp_path, capsys):
    out = tmp_path / "curves.png"
    assert main(["plot", "curves", str(h2), "--properties", "HF/STO-3G", "CISD/cc-pVDZ",
                 "--points", f"training={tmp_path / 'train.h5'}", "-o", str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG")
    assert not (tmp_path / "curves.svg").exists()  # a suffix picks one format
    assert str(out) in capsys.readouterr().out


def test_curves_without_suffix_writes_png_and_svg(h2, tmp_path):
    assert main(["plot", "curves", str(h2), "--properties", "CISD/cc-pVDZ", "transfer", "--unit",
                 "Hartree", "--points", f"val={tmp_path / 'train.h5'}:HF/STO-3G", "--title", "H2",
                 "-o", str(tmp_path / "fig")]) == 0
    svg = (tmp_path / "fig.svg").read_text()
    assert (tmp_path / "fig.png").is_file()
    assert "H-H distance (Å)" in svg or "H-H distance" in svg
    assert "Hartree" in svg


def test_curves_draw_an_ensembles_spread_as_a_band(h2, tmp_path):
    db = Database.load(h2)
    db.set("transfer_std", np.full(len(db), 0.5 / HARTREE_TO_KCALMOL))
    db.save(tmp_path / "with_std.h5")
    for source, expected in ((h2, False), (tmp_path / "with_std.h5", True)):
        out = tmp_path / f"band_{expected}.svg"
        assert main(["plot", "curves", str(source), "--properties", "CISD/cc-pVDZ", "transfer",
                     "-o", str(out)]) == 0
        assert ("transfer ± 2σ" in out.read_text()) is expected


def test_coordinate_labels_and_values():
    db = h2_scan()[::100]
    x, label = _coordinate(db, "distance:0,1")
    assert label == "H-H distance (Å)" and x == pytest.approx([0.5, 1.5, 2.5, 3.5, 4.5])
    x, label = _coordinate(db, "index")
    assert list(x) == [0, 1, 2, 3, 4] and label == "molecule index"
    water = Database.from_numpy(np.array([[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]] * 2), [8, 1, 1])
    x, label = _coordinate(water, "angle:1,0,2")
    assert label == "H-O-H angle (degrees)" and x[0] == pytest.approx(104.47, abs=0.05)


def test_errors_and_parity_print_statistics(h2, tmp_path, capsys):
    assert main(["plot", "errors", str(h2), "--reference", "CISD/cc-pVDZ", "--predicted",
                 "transfer", "HF/STO-3G", "--region", "extrapolation=0.5:0.9",
                 "-o", str(tmp_path / "errors.svg")]) == 0
    out = capsys.readouterr().out
    assert "transfer vs CISD/cc-pVDZ (46 molecules): RMSE 1.0000, MAE 1.0000, max 1.0000" in out
    assert "extrapolation" in (tmp_path / "errors.svg").read_text()
    assert main(["plot", "parity", str(h2), "--reference", "CISD/cc-pVDZ", "--predicted",
                 "transfer", "-o", str(tmp_path / "parity.pdf")]) == 0
    assert (tmp_path / "parity.pdf").read_bytes().startswith(b"%PDF")
    assert "RMSE 1.0000" in capsys.readouterr().out


def test_history(tmp_path, capsys):
    from levelup.train.history import History

    for name, n in (("pre", 30), ("tl", 10)):
        History(epoch=list(range(1, n + 1)), train_rmse=[5.0 / e for e in range(1, n + 1)],
                val_rmse=[float("nan")] * n, lr=[1e-3] * n, best_epoch=n).save(tmp_path / f"{name}.json")
    out = tmp_path / "history.png"
    assert main(["plot", "history", str(tmp_path / "pre.json"), str(tmp_path / "tl.json"), "--lr",
                 "--labels", "pre-training", "transfer", "-o", str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG")
    assert main(["plot", "history", str(tmp_path / "pre.json"), "--labels", "a", "b", "-o",
                 str(out)]) == 1
    assert "one per history" in error_of(capsys)
    (tmp_path / "bad.json").write_text(json.dumps({"epoch": [1]}))
    assert main(["plot", "history", str(tmp_path / "bad.json"), "-o", str(out)]) == 1
    assert "lacks 'train_rmse'" in error_of(capsys)
    (tmp_path / "broken.json").write_text("{")
    assert main(["plot", "history", str(tmp_path / "broken.json"), "-o", str(out)]) == 1
    assert "not a training history" in error_of(capsys)


@pytest.mark.parametrize("argv, message", [
    (["--properties", "MP2/cc-pVDZ"], "no property 'MP2/cc-pVDZ'"),
    (["--properties", "forces"], "per-atom"),
    (["--properties", "CISD/cc-pVDZ", "--x", "bond:0,1"], "unknown coordinate"),
    (["--properties", "CISD/cc-pVDZ", "--x", "angle:0,1"], "angle takes 3 atom indices"),
    (["--properties", "CISD/cc-pVDZ", "--x", "distance:0,5"], "out of range"),
    (["--properties", "CISD/cc-pVDZ", "--relative-to", "HF/STO-3G"], "--relative-to"),
    (["--properties", "CISD/cc-pVDZ", "--points", "training"], "LABEL=FILE"),
    (["--properties", "transfer", "--points", "t=TRAIN"], "holds none of"),
])
def test_curves_errors_are_one_line(h2, tmp_path, capsys, argv, message):
    argv = [a.replace("TRAIN", str(tmp_path / "train.h5")) for a in argv]
    # train.h5 holds 'transfer' too: drop it for the "holds none of" case
    if "t=" + str(tmp_path / "train.h5") in argv:
        db = Database.load(tmp_path / "train.h5")
        db.remove("transfer")
        db.save(tmp_path / "train.h5")
    assert main(["plot", "curves", str(h2), *argv, "-o", str(tmp_path / "x.png")]) == 1
    assert message in error_of(capsys)
    assert not (tmp_path / "x.png").exists()


def test_bad_output_suffix_region_and_missing_file(h2, tmp_path, capsys):
    assert main(["plot", "parity", str(h2), "--reference", "CISD/cc-pVDZ", "--predicted",
                 "transfer", "-o", str(tmp_path / "x.docx")]) == 1
    assert ".docx" in error_of(capsys)
    assert main(["plot", "errors", str(h2), "--reference", "CISD/cc-pVDZ", "--predicted",
                 "transfer", "--region", "x=0.5", "-o", str(tmp_path / "x.png")]) == 1
    assert "LABEL=LO:HI" in error_of(capsys)
    assert main(["plot", "parity", str(tmp_path / "missing.h5"), "--reference", "a", "--predicted",
                 "b", "-o", str(tmp_path / "x.png")]) == 1
    error_of(capsys)


def test_every_plot_subcommand_has_an_example(capsys):
    parser = build_parser()
    for kind in ("curves", "errors", "parity", "history"):
        with pytest.raises(SystemExit):
            parser.parse_args(["plot", kind, "--help"])
        assert "example" in capsys.readouterr().out
