"""Every loader on small WFDB databases the tests write, built through the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb
from conftest import ecg_like, write_record, write_records_file

from pipeline.cli import main
from pipeline.data.dataset import load_dataset

STATEMENTS = (
    ",description,diagnostic,form,rhythm,diagnostic_class,diagnostic_subclass\n"
    "NORM,normal ECG,1.0,,,NORM,NORM\n"
    "IMI,inferior MI,1.0,,,MI,IMI\n"
    "LVH,left ventricular hypertrophy,1.0,,,HYP,LVH\n"
    "SR,sinus rhythm,,,1.0,,\n"
    "AFIB,atrial fibrillation,,,1.0,,\n"
)
PTBXL_LEADS = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
# ecg_id, patient, scp_codes, fold  (loose label in the comment)
PTBXL_ROWS = [
    (1, 101, "{'NORM': 100.0, 'SR': 0.0}", 1),  # NORMAL
    (2, 102, "{'IMI': 80.0, 'SR': 0.0}", 9),  # MI
    (3, 103, "{'NORM': 100.0, 'AFIB': 0.0}", 10),  # ARRHYTHMIA
    (4, 101, "{'NORM': 100.0}", 1),  # NORMAL, same patient as ecg 1
    (5, 105, "{'LVH': 100.0, 'SR': 0.0}", 2),  # excluded
    (6, 106, "{'IMI': 50.0, 'LVH': 50.0, 'SR': 0.0}", 3),  # MI loose only
    (7, 107, "{'NORM': 100.0, 'SR': 0.0}", 4),  # listed, file absent
]


def make_ptbxl(root: Path, rows=PTBXL_ROWS, absent=(7,)) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "scp_statements.csv").write_text(STATEMENTS)
    lines = ["ecg_id,patient_id,scp_codes,strat_fold,filename_lr,filename_hr"]
    for ecg, patient, codes, fold in rows:
        lr, hr = f"records100/00000/{ecg:05d}_lr", f"records500/00000/{ecg:05d}_hr"
        lines.append(f'{ecg},{patient}.0,"{codes}",{fold},{lr},{hr}')
        if ecg not in absent:
            write_record(root / "records100/00000", f"{ecg:05d}_lr", ecg_like(10, 100, seed=ecg, leads=12), 100, PTBXL_LEADS)
    (root / "ptbxl_database.csv").write_text("\n".join(lines) + "\n")
    return root


def make_mitdb(root: Path) -> Path:
    names = ["100", "201", "202", "203"]
    for i, name in enumerate(names):
        fs, n = 360, 360 * 60  # one minute: six 10 s windows
        write_record(root, name, ecg_like(60, fs, seed=i, leads=2), fs, ["MLII", "V1"] if name != "203" else ["V5", "V2"])
        beats = np.arange(200, n - 100, 300)
        symbols = ["N"] * len(beats)
        if name != "100":  # 100 stays all-normal and must give no windows
            for k in range(0, len(beats), 7):
                symbols[k] = "V"
        wfdb.wrann(name, "atr", beats, symbols, write_dir=str(root), fs=fs)
    write_records_file(root, names)
    return root


def make_nsrdb(root: Path) -> Path:
    names = ["16265", "16272", "16273"]
    for i, name in enumerate(names):
        write_record(root, name, ecg_like(120, 128, seed=10 + i, leads=2), 128, ["ECG1", "ECG2"])
    write_records_file(root, names)
    return root


PTB_REASONS = ["Myocardial infarction", "Healthy control", "Myocardial infarction", "Cardiomyopathy", "Healthy control", "Myocardial infarction"]


def make_ptbdb(root: Path) -> Path:
    names = []
    for i, reason in enumerate(PTB_REASONS):
        name = f"patient{i + 1:03d}/s{i:04d}_re"
        leads = ["i", "ii", "iii", "v1"]
        write_record(root / f"patient{i + 1:03d}", f"s{i:04d}_re", ecg_like(20, 1000, seed=20 + i, leads=4), 1000, leads,
                     [f"age: {50 + i}", f"Reason for admission: {reason}"])
        names.append(name)
    write_records_file(root, names)
    return root


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    root = tmp_path / "raw"
    make_mitdb(root / "mitdb")
    make_nsrdb(root / "nsrdb")
    make_ptbdb(root / "ptbdb")
    make_ptbxl(root / "ptbxl")
    return root


def run(*argv: str) -> None:
    assert main([*argv, "--no-progress", "--jobs", "1"]) == 0


@pytest.mark.parametrize(
    "mode,expected",
    [
        ("loose", {"ptbxl:1": "NORMAL", "ptbxl:2": "MI", "ptbxl:3": "ARRHYTHMIA", "ptbxl:4": "NORMAL", "ptbxl:6": "MI"}),
        ("strict", {"ptbxl:1": "NORMAL", "ptbxl:2": "MI", "ptbxl:3": "ARRHYTHMIA", "ptbxl:4": "NORMAL"}),
    ],
)
def test_ptbxl_modes_folds_and_patients(raw, tmp_path, mode, expected):
    out = tmp_path / f"ptbxl_{mode}"
    with pytest.warns(UserWarning, match="1 record.*absent on disk.*7"):
        run("prepare", "ptbxl", "--ptbxl-dir", str(raw / "ptbxl"), "--lead", "II", "--label-mode", mode, "--out", str(out))
    ds = load_dataset(out)
    got = {r: ds.label_names[y] for r, y in zip(ds.record, ds.y)}
    assert got == expected
    split = dict(zip(ds.record, ds.split))
    assert split["ptbxl:1"] == "train" and split["ptbxl:2"] == "val" and split["ptbxl:3"] == "test"
    assert dict(zip(ds.record, ds.patient))["ptbxl:4"] == "ptbxl:101"
    assert ds.X.shape == (len(expected), 1, 2500) and ds.leads == ["II"]
    assert ds.meta["skipped"]["missing"]["ptbxl"]["first"] == ["7"]
    files = ds.meta["sources"]["ptbxl"]["records"]["ptbxl:1"]
    assert sorted(files) == ["00001_lr.dat", "00001_lr.hea"] and all(len(h) == 64 for h in files.values())
    assert set(ds.meta["sources"]["ptbxl"]["metadata_files"]) == {"ptbxl_database.csv", "scp_statements.csv"}


def test_ptbxl_twelve_lead_stage2_and_stage1(raw, tmp_path):
    run("prepare", "ptbxl", "--ptbxl-dir", str(raw / "ptbxl"), "--lead", "all", "--label-mode", "stage2", "--out", str(tmp_path / "s2"))
    ds = load_dataset(tmp_path / "s2")
    assert ds.label_names == ("NORMAL", "MI") and ds.X.shape[1:] == (12, 2500) and ds.leads == PTBXL_LEADS
    assert sorted(ds.record.tolist()) == ["ptbxl:1", "ptbxl:2", "ptbxl:4"]
    run("prepare", "ptbxl", "--ptbxl-dir", str(raw / "ptbxl"), "--label-mode", "stage1", "--out", str(tmp_path / "s1"))
    ds = load_dataset(tmp_path / "s1")
    labels = {r: ds.label_names[y] for r, y in zip(ds.record, ds.y)}
    assert ds.label_names == ("SINUS", "ARRHYTHMIA") and labels["ptbxl:3"] == "ARRHYTHMIA" and labels["ptbxl:5"] == "SINUS"


def test_ptbxl_strict_files_is_an_error(raw, tmp_path, capsys):
    code = main(["prepare", "ptbxl", "--ptbxl-dir", str(raw / "ptbxl"), "--strict-files", "--out", str(tmp_path / "x"), "--no-progress"])
    assert code == 2 and "absent on disk" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_mixed_three_databases(raw, tmp_path):
    out = tmp_path / "mixed"
    run("prepare", "mixed", "--raw-dir", str(raw), "--datasets", "mitdb", "nsrdb", "ptbdb",
        "--arrhythmia-min-count", "2", "--arrhythmia-min-ratio", "0.1", "--max-windows-per-record", "5", "--out", str(out))
    ds = load_dataset(out)
    by_db = {}
    for rec, y, pat in zip(ds.record, ds.y, ds.patient):
        by_db.setdefault(rec.split(":")[0], set()).add((ds.label_names[y], pat.split(":")[1].split("/")[0]))
    assert {lab for lab, _ in by_db["mitdb"]} == {"ARRHYTHMIA"}
    assert "mitdb:100" not in set(ds.record)  # all-normal record gives nothing, never NORMAL
    assert {p for _, p in by_db["mitdb"]} == {"201", "203"}  # 202 is filed under 201's patient
    assert {lab for lab, _ in by_db["nsrdb"]} == {"NORMAL"}
    assert {lab for lab, _ in by_db["ptbdb"]} == {("MI"), ("NORMAL")}
    assert "ptbdb:patient004/s0003_re" not in set(ds.record)  # cardiomyopathy: excluded
    counts = {r: int((ds.record == r).sum()) for r in set(ds.record)}
    assert counts["nsrdb:16265"] == 5  # capped at --max-windows-per-record, 12 available
    assert ds.meta["skipped"]["excluded_by_label_rule"] == {"ptbdb: reason for admission is neither MI nor healthy control": 1}
    assert dict(ds.meta["lead_usage"]).keys() >= {"MLII", "V2", "ECG1", "ii"}
    # patient-level split: no patient in two parts
    for p in set(ds.patient):
        assert len(set(ds.split[ds.patient == p])) == 1


def test_window_cap_is_seeded(raw, tmp_path):
    outs = []
    for i, seed in enumerate([13, 13, 14]):
        out = tmp_path / f"n{i}"
        run("prepare", "mixed", "--raw-dir", str(raw), "--datasets", "nsrdb", "--max-windows-per-record", "3", "--seed", str(seed), "--out", str(out))
        outs.append(load_dataset(out).start.tolist())
    assert outs[0] == outs[1] and outs[0] != outs[2]


def test_stage_sets_from_several_databases(raw, tmp_path):
    run("prepare", "stage1", "--raw-dir", str(raw), "--datasets", "mitdb", "nsrdb", "--out", str(tmp_path / "s1"))
    ds = load_dataset(tmp_path / "s1")
    assert ds.label_names == ("SINUS", "ARRHYTHMIA")
    assert set(ds.y[np.char.startswith(ds.record, "nsrdb")].tolist()) == {0}
    run("prepare", "stage2", "--raw-dir", str(raw), "--datasets", "ptbxl", "ptbdb", "--out", str(tmp_path / "s2"))
    ds = load_dataset(tmp_path / "s2")
    assert ds.label_names == ("NORMAL", "MI")
    assert set(ds.split[np.char.startswith(ds.record, "ptbxl")].tolist()) <= {"train", "val"}  # folds 1, 9


def test_mitdb_not_allowed_in_stage2(raw, tmp_path, capsys):
    assert main(["prepare", "stage2", "--raw-dir", str(raw), "--datasets", "mitdb", "--out", str(tmp_path / "x")]) == 2
    assert "mitdb cannot contribute to a stage2 set" in capsys.readouterr().err


def test_balance_and_parallel_identical(raw, tmp_path):
    args = ["prepare", "mixed", "--raw-dir", str(raw), "--datasets", "mitdb", "nsrdb", "ptbdb", "--no-progress"]
    assert main([*args, "--jobs", "1", "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--jobs", "2", "--out", str(tmp_path / "b")]) == 0
    a, b = load_dataset(tmp_path / "a"), load_dataset(tmp_path / "b")
    assert a.meta["dataset_sha256"] == b.meta["dataset_sha256"] and np.array_equal(a.X, b.X)
    assert main([*args, "--balance", "--out", str(tmp_path / "c")]) == 0
    c = load_dataset(tmp_path / "c")
    for s in ("train", "val", "test"):
        counts = np.bincount(c.y[c.split == s], minlength=3)
        present = counts[counts > 0]
        assert len(set(present.tolist())) <= 1
