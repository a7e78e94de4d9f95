"""Bad input: a clear error naming the record, and nothing half-written (an old data set survives)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import ecg_like, write_record, write_records_file
from test_sources import make_ptbxl

from pipeline.cli import main
from pipeline.data.dataset import load_dataset
from pipeline.data.records import RecordError, read_record


def build_nsr(raw: Path, out: Path, *extra: str) -> int:
    return main(["prepare", "mixed", "--raw-dir", str(raw), "--datasets", "nsrdb", "--out", str(out), "--no-progress", "--jobs", "1", *extra])


@pytest.fixture
def nsr(tmp_path: Path) -> Path:
    root = tmp_path / "raw" / "nsrdb"
    for i, name in enumerate(["a1", "a2", "a3"]):
        write_record(root, name, ecg_like(30, 128, seed=i, leads=2), 128, ["ECG1", "ECG2"])
    write_records_file(root, ["a1", "a2", "a3"])
    return tmp_path / "raw"


def no_temp_left(parent: Path) -> bool:
    return not [p for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def break_truncate(root: Path) -> None:
    dat = root / "a2.dat"
    os.truncate(dat, dat.stat().st_size // 2)


def break_missing_header(root: Path) -> None:
    (root / "a2.hea").unlink()


def break_nan(root: Path) -> None:
    x = ecg_like(30, 128, leads=2)
    x[100:110, 0] = np.nan
    write_record(root, "a2", x, 128, ["ECG1", "ECG2"])


def break_flat(root: Path) -> None:
    write_record(root, "a2", np.ones((30 * 128, 2)), 128, ["ECG1", "ECG2"])


def break_rate(root: Path) -> None:
    write_record(root, "a2", ecg_like(30, 200, leads=2), 200, ["ECG1", "ECG2"])


def break_lead(root: Path) -> None:
    write_record(root, "a2", ecg_like(30, 128, leads=2), 128, ["X", "Y"])


@pytest.mark.parametrize(
    "breaker,message",
    [
        (break_truncate, "a2: signal file is truncated"),
        (break_nan, "a2: NaN samples in lead(s) ['ECG1']"),
        (break_flat, "a2: flat signal"),
        (break_rate, "a2: unexpected sampling rate 200"),
        (break_lead, "a2: none of the leads ['ECG1', 'ECG2'] is present"),
    ],
)
def test_bad_record_stops_and_keeps_old_data_set(nsr, tmp_path, capsys, breaker, message):
    out = tmp_path / "out" / "nsr"
    assert build_nsr(nsr, out) == 0
    before = load_dataset(out).meta["dataset_sha256"]
    breaker(nsr / "nsrdb")
    assert build_nsr(nsr, out) == 2
    err = capsys.readouterr().err
    assert message in err and "--skip-bad-records" in err
    assert load_dataset(out).meta["dataset_sha256"] == before
    assert no_temp_left(out.parent)


def test_skip_bad_records_counts_them(nsr, tmp_path):
    break_nan(nsr / "nsrdb")
    out = tmp_path / "nsr"
    with pytest.warns(UserWarning, match="skipped 1 bad record"):
        assert build_nsr(nsr, out, "--skip-bad-records") == 0
    ds = load_dataset(out)
    assert "nsrdb:a2" not in set(ds.record) and len(ds.meta["skipped"]["bad_records"]) == 1


def test_missing_header_is_a_counted_skip(nsr, tmp_path):
    break_missing_header(nsr / "nsrdb")
    with pytest.warns(UserWarning, match="nsrdb: 1 record.*absent on disk.*a2"):
        assert build_nsr(nsr, tmp_path / "nsr") == 0
    with pytest.raises(RecordError, match="a2: header file a2.hea is missing"):
        read_record(nsr / "nsrdb" / "a2", ["ECG1"])


def test_unknown_ptbxl_lead(tmp_path, capsys):
    root = make_ptbxl(tmp_path / "ptbxl")
    assert main(["prepare", "ptbxl", "--ptbxl-dir", str(root), "--lead", "V7", "--out", str(tmp_path / "o"), "--no-progress", "--jobs", "1"]) == 2
    assert "00001_lr: unknown lead(s) ['V7']" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and no_temp_left(tmp_path)


@pytest.mark.parametrize(
    "row,message",
    [
        ('8,108.0,"{\'NORM\': 100.0",1,records100/00000/00008_lr,x', "ecg_id=8: scp_codes is not a dict literal"),
        ("9,abc,\"{'NORM': 100.0}\",1,records100/00000/00009_lr,x", "ecg_id=9: malformed patient_id/strat_fold"),
        ("10,110.0,\"{'NORM': 100.0}\",11,records100/00000/00010_lr,x", "ecg_id=10: malformed patient_id/strat_fold"),
    ],
)
def test_malformed_metadata_row(tmp_path, capsys, row, message):
    root = make_ptbxl(tmp_path / "ptbxl")
    with open(root / "ptbxl_database.csv", "a") as f:
        f.write(row + "\n")
    assert main(["prepare", "ptbxl", "--ptbxl-dir", str(root), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_missing_metadata_file(tmp_path, capsys):
    assert main(["prepare", "ptbxl", "--ptbxl-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert f"{tmp_path / 'nope'}: no such PTB-XL directory" in capsys.readouterr().err
    root = make_ptbxl(tmp_path / "ptbxl")
    (root / "scp_statements.csv").unlink()
    assert main(["prepare", "ptbxl", "--ptbxl-dir", str(root), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "scp_statements.csv is missing" in capsys.readouterr().err and not (tmp_path / "o").exists()
