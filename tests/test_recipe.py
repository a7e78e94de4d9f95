"""`ecg-pipeline recipe` end to end on small synthetic databases in each real layout: its report, its resume
and its refusal of a missing database."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb
from conftest import write_record, write_records_file

from pipeline.cli import main
from pipeline.training.recipe import DATABASES, REPORT, TARGETS
from pipeline.data.synthetic import simulate_ecg

STATEMENTS = pd.DataFrame(
    {"description": ["normal ECG", "inferior MI", "sinus rhythm", "atrial fibrillation"], "diagnostic": [1.0, 1.0, None, None],
     "rhythm": [None, None, 1.0, 1.0], "diagnostic_class": ["NORM", "MI", None, None], "diagnostic_subclass": ["NORM", "IMI", None, None]},
    index=["NORM", "IMI", "SR", "AFIB"],
)  # fmt: skip
CODES = {"NORMAL": "{'NORM': 100.0, 'SR': 0.0}", "MI": "{'IMI': 100.0, 'SR': 0.0}", "ARRHYTHMIA": "{'NORM': 100.0, 'AFIB': 0.0}"}
FOLDS = (1, 2, 3, 4, 9, 10)  # four train records, one val, one test per label


def _ptbxl(root: Path, first_id: int, rng: np.random.Generator) -> None:
    rows = []
    for k, (label, codes) in enumerate(CODES.items()):
        for j, fold in enumerate(FOLDS):
            ecg = first_id + 10 * k + j
            name = f"records100/00000/{ecg:05d}_lr"
            rows.append({"ecg_id": ecg, "patient_id": float(ecg), "scp_codes": codes, "strat_fold": fold, "filename_lr": name, "filename_hr": name})
            ii = simulate_ecg(label, 10, 100, rng)
            write_record(root / "records100" / "00000", f"{ecg:05d}_lr", np.stack([0.7 * ii, ii], 1), 100, ["I", "II"])
    pd.DataFrame(rows).to_csv(root / "ptbxl_database.csv", index=False)
    STATEMENTS.to_csv(root / "scp_statements.csv")


def _cinc2017(root: Path, rng: np.random.Generator) -> None:
    names, lines = [], []
    for code, label, n in (("N", "NORMAL", 8), ("A", "ARRHYTHMIA", 7), ("O", "ARRHYTHMIA", 7), ("~", "NORMAL", 7)):
        for j in range(n):
            name = f"A{len(names) + 1:05d}"
            x = simulate_ecg(label, 30, 300, rng)
            if code == "~":
                x = x + rng.standard_normal(len(x))
            write_record(root, name, x[:, None], 300, ["ECG"])
            names.append(name)
            lines.append(f"{name},{code}\n")
    (root / "REFERENCE-v3.csv").write_text("".join(lines))
    write_records_file(root, names)


def _mitdb(root: Path, rng: np.random.Generator) -> None:
    names = ["100", "201"]
    for name in names:
        fs = 360
        write_record(root, name, np.stack([simulate_ecg("NORMAL", 60, fs, rng)] * 2, 1), fs, ["MLII", "V1"])
        beats = np.arange(200, 60 * fs - 100, 300)
        symbols = ["N"] * len(beats)
        if name == "201":
            symbols[5] = "V"
        wfdb.wrann(name, "atr", np.r_[0, beats], ["+", *symbols], aux_note=["(N", *[""] * len(beats)], write_dir=str(root), fs=fs)
    write_records_file(root, names)


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("recipe") / "raw"
    rng = np.random.default_rng(5)
    _ptbxl(root / "ptbxl", 1, rng)
    _ptbxl(root / "ptbxl_derived", 2001, rng)
    _cinc2017(root / "cinc2017", rng)
    _mitdb(root / "mitdb", rng)
    return root


def test_missing_database_stops_before_any_work(raw: Path, tmp_path: Path, capsys) -> None:
    partial = tmp_path / "raw"
    shutil.copytree(raw, partial)
    shutil.rmtree(partial / "cinc2017")
    (partial / "mitdb" / "RECORDS").unlink()
    out = tmp_path / "out"
    assert main(["recipe", "--raw-dir", str(partial), "--out-dir", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"cinc2017 ({DATABASES['cinc2017'][1]}): no REFERENCE-v3.csv under {partial / 'cinc2017'}" in err
    assert "mitdb (" in err and "ptbxl (" not in err
    assert not out.exists()


def test_second_ptbxl_copy_is_read_when_present(raw: Path, tmp_path: Path) -> None:
    from pipeline.training.recipe import steps

    with_copy = steps(raw, tmp_path / "a")[0].argv
    assert with_copy.count("--ptbxl-dir") == 2 and str(raw / "ptbxl_derived") in with_copy
    only = tmp_path / "raw"
    only.mkdir()
    for name in ("ptbxl", "cinc2017", "mitdb"):
        (only / name).symlink_to(raw / name)
    assert steps(only, tmp_path / "b")[0].argv.count("--ptbxl-dir") == 1


def test_recipe_runs_reports_and_resumes(raw: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    args = ["recipe", "--raw-dir", str(raw), "--out-dir", str(out), "--epochs", "1", "--jobs", "1", "--no-progress"]
    assert main(args) == 0
    for f in ("checkpoint.pt", "bundle/manifest.json", "bundle/firmware", REPORT, "report.png", "eval_cinc2017/coverage.png"):
        assert (out / f).exists(), f
    report = json.loads((out / REPORT).read_text())
    assert set(report["targets"]) == set(TARGETS)
    for name, t in report["targets"].items():
        assert t["value"] is not None and t["met"] in (True, False), name
        assert t["target"] == f"{TARGETS[name][0]} {TARGETS[name][1]}"
    cinc = json.loads((out / "eval_cinc2017" / "metrics.json").read_text())
    assert report["targets"]["cinc2017_N_as_NORMAL"]["value"] == cinc["by_source_class"]["records"]["N"]["top_label_share"]["NORMAL"]
    assert report["targets"]["cinc2017_noisy_uncertain"]["n"] == cinc["by_source_class"]["records"]["~"]["n"] > 0
    assert report["targets"]["tflm_identical_fraction"]["value"] == 1.0
    steps = report["wall_seconds"]["steps"]
    assert all(isinstance(v, float) for v in steps.values())
    capsys.readouterr()
    # a rerun does nothing again; a step whose output went missing is run again, alone
    ckpt_time = (out / "checkpoint.pt").stat().st_mtime_ns
    (out / "eval_mitdb" / "metrics.json").unlink()
    assert main(args) == 0
    steps = json.loads((out / REPORT).read_text())["wall_seconds"]["steps"]
    assert [k for k, v in steps.items() if v != "skipped"] == ["evaluate mitdb"]
    assert (out / "checkpoint.pt").stat().st_mtime_ns == ckpt_time
    assert "prepare cinc2017: done before, skipped" in capsys.readouterr().out
    # a different command line for a step (more epochs) runs that step and what follows it in order
    assert main([*args[:-5], "--epochs", "2", "--jobs", "1", "--no-progress"]) == 0
    steps = json.loads((out / REPORT).read_text())["wall_seconds"]["steps"]
    assert steps["train"] != "skipped" and steps["prepare ptbxl lead II"] == "skipped"
