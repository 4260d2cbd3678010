"""Bad-input cases of the ``levelup`` command line, shared by tests/test_reliability.py and
bench/reliability_table.py (which writes the table of RELIABILITY.md).

Each case is (id, argv, substring): argv uses placeholders that :func:`make_fixtures` fills
("{db}", "{model}", "{dir}", "{ro_dir}/out.h5", ...); the command must exit 1 with one line
``levelup: error: ...`` that contains the substring, print no traceback, and create or change
no file.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import zipfile
from pathlib import Path

import numpy as np

from levelup.cli.common import writable_folder

#: (id, argv with placeholders, substring of the one-line error)
CASES: list[tuple[str, list[str], str]] = [
    # ---- predict
    ("predict-o-is-input", ["predict", "{model}", "{db}", "-o", "{db}"], "also an input"),
    ("predict-o-is-model", ["predict", "{model}", "{db}", "-o", "{model}"], "also an input"),
    ("predict-existing-name", ["predict", "{model}", "{db}", "-o", "{new}/p.h5", "--name",
                               "HF/STO-3G"], "--overwrite"),
    ("predict-existing-forces-name", ["predict", "{model}", "{db_pred}", "-o", "{new}/p.h5",
                                      "--forces"], "predicted_forces"),
    ("predict-o-folder", ["predict", "{model}", "{db}", "-o", "{dir}"], "is a folder"),
    ("predict-o-read-only", ["predict", "{model}", "{db}", "-o", "{ro_dir}/out.h5"],
     "not writable"),
    ("predict-o-no-folder", ["predict", "{model}", "{db}", "-o", "{new}/nowhere/out.h5"],
     "does not exist"),
    ("predict-o-weird-suffix", ["predict", "{model}", "{db}", "-o", "{new}/out.weird"], ".h5"),
    ("predict-missing-db", ["predict", "{model}", "{new}/missing.h5", "-o", "{new}/p.h5"],
     "does not exist"),
    ("predict-db-folder", ["predict", "{model}", "{dir}", "-o", "{new}/p.h5"], "is a folder"),
    ("predict-empty-db", ["predict", "{model}", "{empty_db}", "-o", "{new}/p.h5"], "empty"),
    ("predict-model-as-db", ["predict", "{model}", "{model}", "-o", "{new}/p.h5"], "model file"),
    ("predict-db-as-model", ["predict", "{db}", "{db}", "-o", "{new}/p.h5"], "model"),
    ("predict-missing-model", ["predict", "{new}/missing.pt", "{db}", "-o", "{new}/p.h5"],
     "does not exist"),
    ("predict-model-folder", ["predict", "{dir}", "{db}", "-o", "{new}/p.h5"], "is a folder"),
    ("predict-batch-zero", ["predict", "{model}", "{db}", "-o", "{new}/p.h5", "--batch-size", "0"],
     "--batch-size"),
    ("predict-compare-unknown", ["predict", "{model}", "{db}", "-o", "{new}/p.h5", "--compare",
                                 "nope"], "nope"),
    ("predict-unknown-element", ["predict", "{model}", "{water}", "-o", "{new}/p.h5"], "O"),
    ("predict-bad-extxyz", ["predict", "{model}", "{bad_xyz}", "-o", "{new}/p.h5"],
     "cannot read"),
    ("predict-device-bogus", ["predict", "{model}", "{db}", "-o", "{new}/p.h5", "--device",
                              "bogus"], "unknown device"),
    # ---- label
    ("label-o-is-input", ["label", "{db}", "HF/STO-3G", "-o", "{db}", "--no-cache"],
     "also an input"),
    ("label-existing-name", ["label", "{db}", "HF/STO-3G", "-o", "{new}/l.h5", "--name",
                             "CISD/cc-pVDZ", "--no-cache"], "--overwrite"),
    ("label-o-folder", ["label", "{db}", "HF/STO-3G", "-o", "{dir}", "--no-cache"], "is a folder"),
    ("label-o-read-only", ["label", "{db}", "HF/STO-3G", "-o", "{ro_dir}/out.h5", "--no-cache"],
     "not writable"),
    ("label-o-weird-suffix", ["label", "{db}", "HF/STO-3G", "-o", "{new}/out.weird",
                              "--no-cache"], ".extxyz"),
    ("label-unknown-basis", ["label", "{db}", "HF/nosuchbasis", "-o", "{new}/l.h5",
                             "--no-cache"], "unknown basis"),
    ("label-unknown-method", ["label", "{db}", "XYZZY/STO-3G", "-o", "{new}/l.h5", "--no-cache"],
     "unknown method"),
    ("label-no-slash", ["label", "{db}", "HF", "-o", "{new}/l.h5", "--no-cache"], "method/basis"),
    ("label-missing-input", ["label", "{new}/missing.xyz", "HF/STO-3G", "-o", "{new}/l.h5",
                             "--no-cache"], "does not exist"),
    ("label-input-folder", ["label", "{dir}", "HF/STO-3G", "-o", "{new}/l.h5", "--no-cache"],
     "is a folder"),
    ("label-model-as-db", ["label", "{model}", "HF/STO-3G", "-o", "{new}/l.h5", "--no-cache"],
     "model file"),
    ("label-empty-xyz", ["label", "{empty_xyz}", "HF/STO-3G", "-o", "{new}/l.h5", "--no-cache"],
     "empty"),
    ("label-conv-tol-nan", ["label", "{db}", "HF/STO-3G", "-o", "{new}/l.h5", "--no-cache",
                            "--conv-tol", "nan"], "--conv-tol"),
    ("label-max-cycle-zero", ["label", "{db}", "HF/STO-3G", "-o", "{new}/l.h5", "--no-cache",
                              "--max-cycle", "0"], "--max-cycle"),
    ("label-threads-negative", ["label", "{db}", "HF/STO-3G", "-o", "{new}/l.h5", "--no-cache",
                                "--threads", "-2"], "--threads"),
    ("label-multiplicity-zero", ["label", "{db}", "HF/STO-3G", "-o", "{new}/l.h5", "--no-cache",
                                 "--multiplicity", "0"], "--multiplicity"),
    ("label-cache-folder", ["label", "{db}", "HF/STO-3G", "-o", "{new}/l.h5", "--cache", "{dir}"],
     "is a folder"),
    # ---- finetune
    ("finetune-o-is-model", ["finetune", "{model}", "{db}", "-o", "{model}", "--property",
                             "HF/STO-3G"], "also an input"),
    ("finetune-o-is-db", ["finetune", "{model}", "{db}", "-o", "{db}", "--property", "HF/STO-3G"],
     "also an input"),
    ("finetune-o-is-anchors", ["finetune", "{model}", "{db}", "-o", "{db_pred}", "--property",
                               "HF/STO-3G", "--anchors", "{db_pred}"], "also an input"),
    ("finetune-o-folder", ["finetune", "{model}", "{db}", "-o", "{dir}", "--property",
                           "HF/STO-3G"], "is a folder"),
    ("finetune-o-read-only", ["finetune", "{model}", "{db}", "-o", "{ro_dir}/tl.pt",
                              "--property", "HF/STO-3G"], "not writable"),
    ("finetune-missing-validation", ["finetune", "{model}", "{db}", "-o", "{new}/tl.pt",
                                     "--property", "HF/STO-3G", "--validation",
                                     "{new}/missing.h5"], "does not exist"),
    ("finetune-unknown-property", ["finetune", "{model}", "{db}", "-o", "{new}/tl.pt",
                                   "--property", "nope"], "nope"),
    ("finetune-db-as-model", ["finetune", "{db}", "{db}", "-o", "{new}/tl.pt", "--property",
                              "HF/STO-3G"], "model"),
    ("finetune-epochs-negative", ["finetune", "{model}", "{db}", "-o", "{new}/tl.pt",
                                  "--property", "HF/STO-3G", "--epochs", "-1"], "--epochs"),
    ("finetune-lr-nan", ["finetune", "{model}", "{db}", "-o", "{new}/tl.pt", "--property",
                         "HF/STO-3G", "--lr", "nan"], "--lr"),
    # ---- export
    ("export-o-is-model", ["export", "{model}", "-o", "{model}"], "also an input"),
    ("export-o-folder", ["export", "{model}", "-o", "{dir}"], "is a folder"),
    ("export-o-read-only", ["export", "{model}", "-o", "{ro_dir}/m.ts"], "not writable"),
    ("export-db-as-model", ["export", "{db}", "-o", "{new}/m.ts"], "model"),
    ("export-missing-model", ["export", "{new}/missing.pt", "-o", "{new}/m.ts"], "does not exist"),
    # ---- plot
    ("plot-curves-empty-db", ["plot", "curves", "{empty_db}", "--properties", "HF/STO-3G", "-o",
                              "{new}/c.png"], "empty"),
    ("plot-curves-zero-molecules", ["plot", "curves", "{zero_db}", "--properties", "HF/STO-3G",
                                    "-o", "{new}/c.png"], "no molecules"),
    ("plot-dpi-negative", ["plot", "curves", "{db}", "--properties", "HF/STO-3G", "-o",
                           "{new}/c.png", "--dpi", "-5"], "--dpi"),
    ("plot-dpi-zero", ["plot", "parity", "{db}", "--reference", "CISD/cc-pVDZ", "--predicted",
                       "HF/STO-3G", "-o", "{new}/c.png", "--dpi", "0"], "--dpi"),
    ("plot-dpi-nan", ["plot", "errors", "{db}", "--reference", "CISD/cc-pVDZ", "--predicted",
                      "HF/STO-3G", "-o", "{new}/c.png", "--dpi", "nan"], "--dpi"),
    ("plot-history-model", ["plot", "history", "{model}", "-o", "{new}/h.png"],
     "not a training history"),
    ("plot-history-missing", ["plot", "history", "{new}/missing.json", "-o", "{new}/h.png"],
     "does not exist"),
    ("plot-history-folder", ["plot", "history", "{dir}", "-o", "{new}/h.png"], "is a folder"),
    ("plot-o-folder", ["plot", "curves", "{db}", "--properties", "HF/STO-3G", "-o", "{dir}"],
     "is a folder"),
    ("plot-o-read-only", ["plot", "curves", "{db}", "--properties", "HF/STO-3G", "-o",
                          "{ro_dir}/c.png"], "not writable"),
    ("plot-o-is-history", ["plot", "history", "{history}", "-o", "{history}"], ".json figure"),
    ("plot-unknown-property", ["plot", "curves", "{db}", "--properties", "nope", "-o",
                               "{new}/c.png"], "nope"),
    ("plot-model-as-db", ["plot", "curves", "{model}", "--properties", "HF/STO-3G", "-o",
                          "{new}/c.png"], "model file"),
    ("plot-bad-suffix", ["plot", "curves", "{db}", "--properties", "HF/STO-3G", "-o",
                         "{new}/c.jpg"], ".png"),
    ("plot-atom-out-of-range", ["plot", "curves", "{db}", "--properties", "HF/STO-3G", "--x",
                                "distance:0,7", "-o", "{new}/c.png"], "7"),
    # ---- build
    ("build-scan-tiny-step", ["build", "scan", "{xyz}", "--bond", "0", "1", "--from", "0.5",
                              "--to", "2.5", "--step", "1e-12", "-o", "{new}/s.h5"], "geometries"),
    ("build-scan-step-zero", ["build", "scan", "{xyz}", "--bond", "0", "1", "--from", "0.5",
                              "--to", "2.5", "--step", "0", "-o", "{new}/s.h5"], "step"),
    ("build-scan-step-nan", ["build", "scan", "{xyz}", "--bond", "0", "1", "--from", "0.5",
                             "--to", "2.5", "--step", "nan", "-o", "{new}/s.h5"], "step"),
    ("build-scan-wrong-sign", ["build", "scan", "{xyz}", "--bond", "0", "1", "--from", "2.5",
                               "--to", "0.5", "--step", "0.1", "-o", "{new}/s.h5"], "sign"),
    ("build-scan-from-inf", ["build", "scan", "{xyz}", "--bond", "0", "1", "--from", "inf",
                             "--to", "2.5", "--step", "0.1", "-o", "{new}/s.h5"], "--from"),
    ("build-scan-negative-bond", ["build", "scan", "{xyz}", "--bond", "0", "1", "--from", "-1",
                                  "--to", "2.5", "--step", "0.1", "-o", "{new}/s.h5"], "positive"),
    ("build-scan-bad-atom", ["build", "scan", "{xyz}", "--bond", "0", "5", "--from", "0.5",
                             "--to", "2.5", "--step", "0.1", "-o", "{new}/s.h5"], "5"),
    ("build-scan-o-is-input", ["build", "scan", "{xyz}", "--bond", "0", "1", "--from", "0.5",
                               "--to", "2.5", "--step", "0.1", "-o", "{xyz}"], "also an input"),
    ("build-scan-o-folder", ["build", "scan", "{xyz}", "--bond", "0", "1", "--from", "0.5",
                             "--to", "2.5", "--step", "0.1", "-o", "{dir}"], "is a folder"),
    ("build-scan-o-read-only", ["build", "scan", "{xyz}", "--bond", "0", "1", "--from", "0.5",
                                "--to", "2.5", "--step", "0.1", "-o", "{ro_dir}/s.h5"],
     "not writable"),
    ("build-scan-structure-folder", ["build", "scan", "{dir}", "--bond", "0", "1", "--from",
                                     "0.5", "--to", "2.5", "--step", "0.1", "-o", "{new}/s.h5"],
     "is a folder"),
    ("build-distort-n-zero", ["build", "distort", "{xyz}", "--n", "0", "-o", "{new}/d.h5"], "--n"),
    ("build-distort-n-huge", ["build", "distort", "{xyz}", "--n", "100000000000", "-o",
                              "{new}/d.h5"], "--n"),
    ("build-distort-amplitude-nan", ["build", "distort", "{xyz}", "--n", "3", "--amplitude",
                                     "nan", "-o", "{new}/d.h5"], "--amplitude"),
    ("build-distort-temperature-negative", ["build", "distort", "{xyz}", "--n", "3",
                                            "--normal-modes", "--model", "{model}",
                                            "--temperature", "-5", "-o", "{new}/d.h5"],
     "--temperature"),
    ("build-read-model", ["build", "read", "{model}", "-o", "{new}/all.h5"], "model file"),
    ("build-read-o-is-input", ["build", "read", "{xyz}", "-o", "{xyz}"], "also an input"),
    ("build-read-empty", ["build", "read", "{empty_xyz}", "-o", "{new}/all.h5"], "empty"),
    ("build-read-weird-suffix", ["build", "read", "{xyz}", "-o", "{new}/all.weird"], ".h5"),
    # ---- run
    ("run-check-unknown-basis", ["run", "{study_bad_basis}", "--check"], "unknown basis"),
    ("run-check-missing-structure", ["run", "{study_no_structure}", "--check"], "does not exist"),
    ("run-missing-study", ["run", "{new}/missing.toml", "--check"], "study file"),
    ("run-study-folder", ["run", "{dir}", "--check"], "is a folder"),
    ("run-out-read-only", ["run", "{study}", "--out", "{ro_dir}/run"], "not writable"),
    ("run-out-is-file", ["run", "{study}", "--out", "{db}"], "not a folder"),
    ("label-charge-impossible", ["label", "{xyz}", "HF/STO-3G", "-o", "{new}/l.h5", "--charge",
                                 "4", "--no-cache"], "impossible"),
    ("label-multiplicity-parity", ["label", "{xyz}", "HF/STO-3G", "-o", "{new}/l.h5",
                                   "--multiplicity", "2", "--no-cache"], "only multiplicity 1 or 3"),
    # ---- train
    ("train-o-is-input", ["train", "{db}", "-o", "{db}", "--property", "HF/STO-3G"],
     "also an input"),
    ("train-o-is-init", ["train", "{db}", "-o", "{model}", "--init", "{model}", "--property",
                         "HF/STO-3G"], "also an input"),
    ("train-history-is-input", ["train", "{db}", "-o", "{new}/m.pt", "--history", "{db}",
                                "--property", "HF/STO-3G"], "also an input"),
    ("train-o-folder", ["train", "{db}", "-o", "{dir}", "--property", "HF/STO-3G"], "is a folder"),
    ("train-o-read-only", ["train", "{db}", "-o", "{ro_dir}/m.pt", "--property", "HF/STO-3G"],
     "not writable"),
    ("train-validation-fraction-zero", ["train", "{db}", "-o", "{new}/m.pt", "--property",
                                        "HF/STO-3G", "--validation-fraction", "0"],
     "--validation-fraction"),
    ("train-lr-inf", ["train", "{db}", "-o", "{new}/m.pt", "--property", "HF/STO-3G", "--lr",
                      "inf"], "learning_rate"),
    ("train-batch-zero", ["train", "{db}", "-o", "{new}/m.pt", "--property", "HF/STO-3G",
                          "--batch-size", "0"], "batch_size"),
    ("train-unknown-property", ["train", "{db}", "-o", "{new}/m.pt", "--property", "nope"],
     "nope"),
    ("train-unknown-unit", ["train", "{db_raw}", "-o", "{new}/m.pt", "--property", "raw"],
     "unknown"),
    # ---- info
    ("info-folder", ["info", "{dir}"], "is a folder"),
    ("info-missing", ["info", "{new}/missing.h5"], "missing.h5"),
    ("info-unknown-element", ["info", "{qq_xyz}"], "unknown element symbol 'Qq'"),
    ("info-missing-columns", ["info", "{short_xyz}"], "columns"),
    ("info-foreign-zip", ["info", "{foreign_zip}"], "levelup does not load it"),
    ("info-unsafe-format", ["info", "{cube}"], "not known to be safe"),
    # ---- pretrained, demo
    ("pretrained-o-folder", ["pretrained", "ani-1x", "-o", "{dir}", "--from", "{new}/none.whl"],
     "is a folder"),
    ("pretrained-o-read-only", ["pretrained", "ani-1x", "-o", "{ro_dir}/a.pt", "--from",
                                "{new}/none.whl"], "not writable"),
    ("pretrained-from-missing", ["pretrained", "ani-1x", "-o", "{new}/a.pt", "--from",
                                 "{new}/none.whl"], "none.whl"),
    ("demo-out-read-only", ["demo", "--out", "{ro_dir}/demo"], "not writable"),
    ("demo-out-is-file", ["demo", "--out", "{db}"], "not a folder"),
]


def _morse(r: np.ndarray, depth: float, a: float, r0: float, e0: float) -> np.ndarray:
    return e0 + depth * (1.0 - np.exp(-a * (r - r0))) ** 2


def _h2_database(r: np.ndarray):
    from levelup import Database

    xyz = np.zeros((len(r), 2, 3))
    xyz[:, 1, 2] = r
    db = Database.from_numpy(xyz, ["H", "H"])
    db.set("HF/STO-3G", _morse(r, 0.2, 1.9, 0.71, -1.117), level="HF/STO-3G")
    db.set("CISD/cc-pVDZ", _morse(r, 0.17, 2.0, 0.76, -1.163), level="CISD/cc-pVDZ")
    return db


def read_only_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in, even as root (chmod, else a read-only
    mount such as /sys, else ``chattr +i``)."""
    ro = tmp_path / "ro"
    ro.mkdir(exist_ok=True)
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    if not writable_folder(ro):
        return ro
    if Path("/sys").is_dir() and not writable_folder(Path("/sys")):
        return Path("/sys")
    subprocess.run(["chattr", "+i", str(ro)], capture_output=True, check=False)
    if not writable_folder(ro):
        return ro
    raise RuntimeError("no read-only folder available for the read-only cases")


STUDY = """title = "tiny"
[geometries]
source = "scan"
structure = "{structure}"
bond = [0, 1]
from = 0.6
to = 2.6
step = 0.1
[levels]
low = "HF/STO-3G"
high = "{high}"
[selection]
method = "every"
step = 4
[output]
folder = "runs/tiny"
"""


def make_fixtures(tmp_path: str | os.PathLike) -> dict[str, str]:
    """Create the files the placeholders of :data:`CASES` name, under ``tmp_path``; return
    placeholder -> path. "{new}" is a folder for outputs the cases must not create."""
    from levelup import ANIModel
    from levelup.train.history import History

    tmp = Path(tmp_path)
    (tmp / "new").mkdir(parents=True, exist_ok=True)
    (tmp / "folder").mkdir(exist_ok=True)
    db = _h2_database(np.linspace(0.5, 3.0, 12))
    db.save(tmp / "h2.h5")
    pred = db.copy()
    pred.set("predicted_forces", np.zeros((len(db), 2, 3)))
    pred.save(tmp / "h2_pred.h5")
    db[:0].save(tmp / "zero.h5")
    (tmp / "empty.h5").write_bytes(b"")
    (tmp / "empty.xyz").write_text("")
    (tmp / "h2.xyz").write_text("2\nH2\nH 0 0 0\nH 0 0 0.74\n")
    (tmp / "water.xyz").write_text("3\nwater\nO 0 0 0\nH 0.96 0 0\nH -0.24 0.93 0\n")
    (tmp / "bad.extxyz").write_text('2\nProperties=species:S:1:pos:R:3 energy=-1.1\n'
                                    "H 0 0 0\nH 0 0 zero\n")
    ANIModel(["H"], hidden=[4], seed=0).save(tmp / "model.pt")
    raw = db.copy()
    raw.set("raw", db.get("HF/STO-3G"), unit="unknown")
    raw.save(tmp / "raw.h5")
    (tmp / "qq.xyz").write_text("2\nQq2\nQq 0 0 0\nH 0 0 0.74\n")
    (tmp / "short.extxyz").write_text("2\nProperties=species:S:1:pos:R:3:forces:R:3\n"
                                      "H 0 0 0 0 0 0\nH 0 0 0.74\n")
    with zipfile.ZipFile(tmp / "foreign.ts", "w") as archive:
        archive.writestr("foreign/data.pkl", b"not a levelup export")
    (tmp / "h2.cube").write_text("not parsed: refused by its format\n")
    history = History()
    history.train_rmse.extend([3.0, 2.0])
    history.save(tmp / "history.json")
    for name, structure, high in (("study", "h2.xyz", "CISD/cc-pVDZ"),
                                  ("study_bad_basis", "h2.xyz", "CISD/cc-pVQQZ"),
                                  ("study_no_structure", "missing.xyz", "CISD/cc-pVDZ")):
        (tmp / f"{name}.toml").write_text(STUDY.format(structure=structure, high=high))
    paths = {"db": "h2.h5", "db_pred": "h2_pred.h5", "zero_db": "zero.h5", "empty_db": "empty.h5",
             "empty_xyz": "empty.xyz", "xyz": "h2.xyz", "water": "water.xyz",
             "bad_xyz": "bad.extxyz", "model": "model.pt", "history": "history.json",
             "dir": "folder", "new": "new", "study": "study.toml",
             "study_bad_basis": "study_bad_basis.toml",
             "study_no_structure": "study_no_structure.toml", "db_raw": "raw.h5",
             "qq_xyz": "qq.xyz", "short_xyz": "short.extxyz", "foreign_zip": "foreign.ts",
             "cube": "h2.cube"}
    out = {key: str(tmp / name) for key, name in paths.items()}
    out["ro_dir"] = str(read_only_folder(tmp))
    return out


def fill(argv: list[str], fixtures: dict[str, str]) -> list[str]:
    """``argv`` with every placeholder replaced by its fixture path."""
    return [arg.format(**fixtures) for arg in argv]


def created_or_changed(before: dict[str, bytes], folder: Path) -> list[str]:
    """Files under ``folder`` that are new or changed since :func:`snapshot` gave ``before``."""
    after = snapshot(folder)
    return sorted(k for k, v in after.items() if before.get(k) != v)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Relative path -> contents of every file under ``folder``."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*"))
            if p.is_file() and os.access(p, os.R_OK)}


def describe(argv: list[str], fixtures: dict[str, str]) -> str:
    """A readable command line: fixture paths shown by their file names."""
    text = " ".join(json.dumps(a) if " " in a else a for a in fill(argv, fixtures))
    root = str(Path(fixtures["new"]).parent)
    return "levelup " + text.replace(root + "/", "")
