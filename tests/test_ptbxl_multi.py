"""`ecg-pipeline prepare ptbxl` from several directories: each ecg_id once, the first directory wins."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.sources.build import BuildError, ptbxl_dirs_plan
from pipeline.cli import main
from pipeline.data.dataset import load_dataset
from tests.conftest import ecg_like, write_record

STATEMENTS = pd.DataFrame(
    {"diagnostic": [1, 1, None, None], "rhythm": [None, None, 1, 1], "diagnostic_class": ["NORM", "MI", None, None]},
    index=pd.Index(["NORM", "IMI", "SR", "AFIB"], name=""),
)
# ecg_id -> (patient_id, strat_fold, scp_codes): NORMAL, MI, ARRHYTHMIA in every split
ROWS = {
    1: (101, 1, "{'NORM': 100.0, 'SR': 0.0}"),
    2: (102, 2, "{'IMI': 100.0, 'SR': 0.0}"),
    3: (103, 3, "{'NORM': 100.0, 'AFIB': 0.0}"),
    4: (104, 9, "{'NORM': 100.0, 'SR': 0.0}"),
    5: (105, 9, "{'IMI': 80.0}"),
    6: (106, 9, "{'AFIB': 100.0}"),
    7: (107, 10, "{'NORM': 100.0}"),
    8: (108, 10, "{'IMI': 100.0}"),
    9: (109, 10, "{'AFIB': 100.0, 'NORM': 50.0}"),
}


def _filename(ecg: int) -> str:
    return f"records100/00000/{ecg:05d}_lr"


def make_ptbxl(root: Path, on_disk: list[int], seed: int, rows: dict | None = None, statements: pd.DataFrame | None = None) -> Path:
    """A PTB-XL directory: metadata for every row of ROWS, 10 s 100 Hz records for `on_disk`."""
    rows = rows or ROWS
    root.mkdir(parents=True)
    table = pd.DataFrame(
        [{"ecg_id": e, "patient_id": float(p), "scp_codes": c, "strat_fold": f, "filename_lr": _filename(e), "filename_hr": _filename(e).replace("100", "500").replace("_lr", "_hr")}
         for e, (p, f, c) in rows.items()]
    )
    table.to_csv(root / "ptbxl_database.csv", index=False)
    (statements if statements is not None else STATEMENTS).to_csv(root / "scp_statements.csv")
    for e in on_disk:
        sig = ecg_like(10, 100, hr=60 + 5 * e, seed=seed * 100 + e, leads=2)
        write_record(root / "records100" / "00000", f"{e:05d}_lr", sig, 100, ["I", "II"])
    return root


def _prepare(dirs: list[Path], out: Path, *extra: str) -> int:
    argv = ["prepare", "ptbxl", *[a for d in dirs for a in ("--ptbxl-dir", str(d))], "--out", str(out), "--jobs", "1", "--no-progress", *extra]
    return main(argv)


def test_first_directory_wins_and_sources_are_recorded(tmp_path):
    a = make_ptbxl(tmp_path / "a", [1, 2, 3, 4, 7], seed=1)
    b = make_ptbxl(tmp_path / "b", [2, 3, 5, 6, 8, 9], seed=2)
    assert _prepare([a, b], tmp_path / "ab") == 0
    ds = load_dataset(tmp_path / "ab")
    src = ds.meta["sources"]["ptbxl"]
    assert sorted(set(ds.record.tolist()), key=lambda r: int(r.split(":")[1])) == [f"ptbxl:{e}" for e in range(1, 10)]
    assert len(ds) == 9  # one 10 s window per record: each id once
    want = {f"ptbxl:{e}": str(a.resolve()) if e in (1, 2, 3, 4, 7) else str(b.resolve()) for e in range(1, 10)}
    assert src["record_dirs"] == want
    assert all(src["record_paths"][r].startswith(d) for r, d in want.items())
    assert src["duplicates"]["count"] == 2 and src["duplicates"]["ids"] == ["ptbxl:2", "ptbxl:3"]
    da, db = src["directories"]
    assert (da["path"], da["records_on_disk"], da["records_used"], da["duplicates_skipped"]["count"]) == (str(a.resolve()), 5, 5, 0)
    assert (db["path"], db["records_on_disk"], db["records_used"], db["duplicates_skipped"]) == (str(b.resolve()), 6, 4, {"count": 2, "ecg_ids": [2, 3]})
    assert ds.meta["build_args"]["ptbxl_dir"] == [str(a), str(b)]
    # patient-level split from strat_fold, unchanged
    split = dict(zip(ds.record.tolist(), ds.split.tolist()))
    assert [split[f"ptbxl:{e}"] for e in (1, 4, 7)] == ["train", "val", "test"]

    # the other order: the duplicates now come from b, and their windows are b's signals
    assert _prepare([b, a], tmp_path / "ba") == 0
    ds2 = load_dataset(tmp_path / "ba")
    assert ds2.meta["sources"]["ptbxl"]["record_dirs"]["ptbxl:2"] == str(b.resolve())
    i1, i2 = int(np.flatnonzero(ds.record == "ptbxl:2")[0]), int(np.flatnonzero(ds2.record == "ptbxl:2")[0])
    assert not np.array_equal(ds.X[i1], ds2.X[i2])
    j1, j2 = int(np.flatnonzero(ds.record == "ptbxl:5")[0]), int(np.flatnonzero(ds2.record == "ptbxl:5")[0])
    np.testing.assert_array_equal(ds.X[j1], ds2.X[j2])  # a record only b holds is the same either way


def test_single_directory_unchanged_default(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    make_ptbxl(raw / "ptbxl", list(ROWS), seed=1)
    monkeypatch.setenv("ECG_EDGE_DATA_DIR", str(raw))
    assert main(["prepare", "ptbxl", "--raw-dir", str(raw), "--out", str(tmp_path / "one"), "--jobs", "1", "--no-progress"]) == 0
    src = load_dataset(tmp_path / "one").meta["sources"]["ptbxl"]
    assert set(src["record_dirs"].values()) == {str((raw / "ptbxl").resolve())} and src["duplicates"]["count"] == 0


def test_ectopic_as_arrhythmia_relabels_premature_beats(tmp_path):
    rows = {**ROWS, 10: (110, 1, "{'NORM': 100.0, 'PVC': 0.0, 'SR': 0.0}")}
    a = make_ptbxl(tmp_path / "a", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], seed=1, rows=rows)
    labels = {}
    for extra in ([], ["--ectopic-as-arrhythmia"]):
        out = tmp_path / f"set{len(extra)}"
        assert _prepare([a], out, *extra) == 0
        ds = load_dataset(out)
        labels[bool(extra)] = {r: ds.label_names[y] for r, y in zip(ds.record.tolist(), ds.y.tolist())}
        assert ds.meta["build_args"]["ectopic_as_arrhythmia"] is bool(extra)
    assert labels[False]["ptbxl:10"] == "NORMAL" and labels[True]["ptbxl:10"] == "ARRHYTHMIA"
    assert {r: v for r, v in labels[True].items() if r != "ptbxl:10"} == {r: v for r, v in labels[False].items() if r != "ptbxl:10"}


def test_directory_without_records_is_named(tmp_path, capsys):
    a = make_ptbxl(tmp_path / "a", [1, 2, 3], seed=1)
    empty = make_ptbxl(tmp_path / "empty", [], seed=2)
    with pytest.raises(BuildError, match=rf"{empty}: no PTB-XL record on disk"):
        ptbxl_dirs_plan([a, empty], "loose")
    assert _prepare([a, empty], tmp_path / "out") != 0
    assert str(empty) in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    with pytest.raises(BuildError, match="no such PTB-XL directory"):
        ptbxl_dirs_plan([a, tmp_path / "nowhere"], "loose")
    with pytest.raises(BuildError, match="given twice"):
        ptbxl_dirs_plan([a, tmp_path / "a" / ".." / "a"], "loose")


@pytest.mark.parametrize(
    "field,change",
    [
        ("patient_id", lambda r: {**r, 2: (999, *r[2][1:])}),
        ("strat_fold", lambda r: {**r, 2: (r[2][0], 7, r[2][2])}),
        ("scp_codes", lambda r: {**r, 2: (*r[2][:2], "{'IMI': 50.0, 'SR': 0.0}")}),
    ],
)
def test_disagreeing_metadata_is_refused(tmp_path, field, change):
    a = make_ptbxl(tmp_path / "a", [1, 2, 3], seed=1)
    b = make_ptbxl(tmp_path / "b", [2, 4], seed=2, rows=change(ROWS))
    with pytest.raises(BuildError, match=rf"ecg_id 2: {field} differs between directories"):
        ptbxl_dirs_plan([a, b], "loose")


def test_disagreeing_statements_are_refused(tmp_path):
    a = make_ptbxl(tmp_path / "a", [1, 2, 3], seed=1)
    other = STATEMENTS.copy()
    other.loc["IMI", "diagnostic_class"] = "STTC"  # same codes, another class: ecg_id 2 is no longer MI
    b = make_ptbxl(tmp_path / "b", [2], seed=2, statements=other)
    with pytest.raises(BuildError, match=r"ecg_id 2: label \(mode loose.*'MI' in .*None in"):
        ptbxl_dirs_plan([a, b], "loose")
    # metadata that only one directory lists are not compared (a trimmed metadata file is fine)
    c = make_ptbxl(tmp_path / "c", [4], seed=3, rows={4: ROWS[4]}, statements=other)
    plan = ptbxl_dirs_plan([a, c], "loose")
    assert [t.record_id for t in plan.tasks] == ["ptbxl:1", "ptbxl:2", "ptbxl:3", "ptbxl:4"] and plan.missing == ["5", "6", "7", "8", "9"]


@pytest.mark.realdata
def test_real_ptbxl_and_derived(shared_data, tmp_path):
    ptbxl, derived = shared_data / "ptbxl", shared_data / "ptbxl_derived"
    if not derived.is_dir():
        pytest.skip(f"{derived} not present")
    # every record on disk, metadata only: 158 ecg_ids are in both directories
    plan = ptbxl_dirs_plan([ptbxl, derived], "loose")
    assert len(plan.duplicates) == 158
    assert plan.directories[1]["duplicates_skipped"]["count"] == 158 and plan.directories[0]["duplicates_skipped"]["count"] == 0
    assert all(int(d.split(":")[1]) < 2000 for d in plan.duplicates)
    assert any(d == str(derived.resolve()) for d in plan.record_dir.values())
    # a small build, derived first so that its copies win: 9, 24, 43 come from it
    out = tmp_path / "mixed"
    assert _prepare([derived, ptbxl], out, "--max-records", "60") == 0
    ds = load_dataset(out)
    src = ds.meta["sources"]["ptbxl"]
    from_derived = sorted(int(r.split(":")[1]) for r, d in src["record_dirs"].items() if d == str(derived.resolve()))
    listed = {int(Path(line).name.split("_")[0]) for line in (derived / "RECORDS").read_text().split()}
    assert len(from_derived) >= 3 and set(from_derived) <= {e for e in listed if e <= 60}
    assert all("ptbxl_derived" in src["record_paths"][f"ptbxl:{e}"] for e in from_derived)
    assert src["directories"][1]["duplicates_skipped"]["count"] == src["directories"][0]["records_on_disk"]
    assert len(set(ds.record.tolist())) == len(ds.record)  # one window per record: no id twice
