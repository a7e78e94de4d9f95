"""Recall per finding (`evaluate --subgroups`): PTB-XL MI territory and rhythm codes, MIT-BIH rhythms and beats, read back from each record."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import wfdb

from pipeline.cli import main
from pipeline.data.dataset import DatasetError, load_dataset
from pipeline.data.label_rules import PtbxlStatements, mitdb_window_finding, ptbxl_finding
from pipeline.evaluation.subgroups import subgroup_recall, window_findings
from tests.conftest import ecg_like, write_record, write_records_file
from tests.test_ptbxl_multi import make_ptbxl
from test_train import write_synthetic_set

STATEMENTS = pd.DataFrame(
    {
        "diagnostic": [1, 1, 1, None, None, None],
        "rhythm": [None, None, None, 1, 1, 1],
        "diagnostic_class": ["NORM", "MI", "MI", None, None, None],
        "diagnostic_subclass": ["NORM", "IMI", "AMI", None, None, None],
    },
    index=pd.Index(["NORM", "IMI", "ASMI", "SR", "AFIB", "SARRH"], name=""),
)
# ecg_id -> (patient_id, strat_fold, scp_codes): train folds 1-3, val 9, test 10
ROWS = {
    1: (101, 1, "{'NORM': 100.0, 'SR': 0.0}"),
    2: (102, 2, "{'IMI': 100.0, 'SR': 0.0}"),
    3: (103, 3, "{'NORM': 100.0, 'AFIB': 0.0}"),
    4: (104, 9, "{'NORM': 100.0, 'SR': 0.0}"),
    5: (105, 9, "{'ASMI': 80.0}"),
    6: (106, 9, "{'SARRH': 100.0}"),
    7: (107, 10, "{'NORM': 100.0}"),
    8: (108, 10, "{'ASMI': 100.0, 'IMI': 50.0}"),
    9: (109, 10, "{'AFIB': 100.0, 'SARRH': 0.0, 'NORM': 50.0}"),
}
WANT = {1: None, 2: "IMI", 3: "AFIB", 4: None, 5: "AMI", 6: "SARRH", 7: None, 8: "AMI+IMI", 9: "AFIB+SARRH"}


@pytest.fixture(scope="module")
def ptbxl_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("sub")
    a = make_ptbxl(root / "a", [1, 2, 3, 4, 5], seed=1, rows=ROWS, statements=STATEMENTS)
    b = make_ptbxl(root / "b", [6, 7, 8, 9], seed=2, rows=ROWS, statements=STATEMENTS)
    out = root / "set"
    assert main(["prepare", "ptbxl", "--ptbxl-dir", str(a), "--ptbxl-dir", str(b), "--lead", "II", "--out", str(out), "--jobs", "1", "--no-progress"]) == 0
    return out


def test_finding_by_territory_and_rhythm():
    st = PtbxlStatements({"IMI": "MI", "ASMI": "MI", "NORM": "NORM", "NDT": "STTC"}, {"SR", "AFIB"}, {"IMI": "IMI", "ASMI": "AMI"})
    assert ptbxl_finding("MI", {"ASMI": 100.0, "IMI": 0.0, "NDT": 50.0}, st) == "AMI+IMI"
    assert ptbxl_finding("MI", {"NDT": 100.0}, st) == "unspecified"
    assert ptbxl_finding("ARRHYTHMIA", {"AFIB": 100.0, "SR": 0.0, "NORM": 100.0, "PVC": 0.0}, st) == "AFIB"
    assert ptbxl_finding("ARRHYTHMIA", {"SR": 0.0, "NORM": 100.0, "PVC": 0.0, "PAC": 0.0}, st) == "PAC+PVC"  # --ectopic-as-arrhythmia
    assert ptbxl_finding("NORMAL", {"NORM": 100.0}, st) is None
    # a statements file without diagnostic_subclass: the code itself
    assert ptbxl_finding("MI", {"IMI": 100.0}, PtbxlStatements({"IMI": "MI"}, set())) == "IMI"


def test_subgroups_of_every_window_from_each_records_directory(ptbxl_set, tmp_path):
    ds = load_dataset(ptbxl_set)
    got = dict(zip(ds.record.tolist(), window_findings(ds, np.arange(len(ds)))))
    assert got == {f"ptbxl:{e}": w for e, w in WANT.items()}
    # a merged set keeps finding them (record ids get '@lead')
    other = tmp_path / "I"
    src = [ds.meta["build_args"]["ptbxl_dir"][i] for i in (0, 1)]
    assert main(["prepare", "ptbxl", "--ptbxl-dir", src[0], "--ptbxl-dir", src[1], "--lead", "I", "--out", str(other), "--jobs", "1", "--no-progress"]) == 0
    assert main(["merge", "--data", str(ptbxl_set), str(other), "--lead-as", "II", "--out", str(tmp_path / "m")]) == 0
    m = load_dataset(tmp_path / "m")
    test = m.indices("test")
    got = dict(zip(m.record[test].tolist(), window_findings(m, test)))
    assert got == {f"ptbxl:{e}@{lead}": WANT[e] for e in (7, 8, 9) for lead in ("II", "I")}


def test_a_missing_row_and_a_set_without_ptbxl_are_named(ptbxl_set, tmp_path):
    ds = load_dataset(ptbxl_set)
    table = pd.read_csv(ds.meta["build_args"]["ptbxl_dir"][1] + "/ptbxl_database.csv")
    table[table.ecg_id != 8].to_csv(ds.meta["build_args"]["ptbxl_dir"][1] + "/ptbxl_database.csv", index=False)
    try:
        with pytest.raises(DatasetError, match=r"ptbxl_database.csv: no row for ecg_id 8 \(record ptbxl:8\)"):
            window_findings(ds, np.arange(len(ds)))
    finally:
        table.to_csv(ds.meta["build_args"]["ptbxl_dir"][1] + "/ptbxl_database.csv", index=False)
    syn = load_dataset(write_synthetic_set(tmp_path / "syn", per_class=4))
    with pytest.raises(DatasetError, match="holds no PTB-XL or MIT-BIH records"):
        window_findings(syn, np.arange(len(syn)))


def test_subgroup_recall_counts():
    y = np.array([1, 1, 1, 1, 2, 2, 0])
    pred = np.array([1, 0, 1, 2, 2, 0, 0])
    groups = ["IMI", "IMI", "AMI", "AMI", "AFIB", "SARRH", None]
    r = subgroup_recall(y, pred, groups, ["NORMAL", "MI", "ARRHYTHMIA"])["by_label"]
    assert r["MI"]["AMI"] == {"windows": 2, "recall": 0.5, "predicted": {"NORMAL": 0, "MI": 1, "ARRHYTHMIA": 1}}
    assert r["MI"]["IMI"] == {"windows": 2, "recall": 0.5, "predicted": {"NORMAL": 1, "MI": 1, "ARRHYTHMIA": 0}}
    assert r["ARRHYTHMIA"]["SARRH"]["recall"] == 0.0 and r["ARRHYTHMIA"]["AFIB"]["recall"] == 1.0
    assert "NORMAL" not in r
    with pytest.raises(ValueError, match="7 labels, 7 predictions, 6 subgroups"):
        subgroup_recall(y, pred, groups[:-1], ["NORMAL", "MI", "ARRHYTHMIA"])


def test_evaluate_subgroups_writes_json_and_plot(ptbxl_set, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(ptbxl_set), "--out-dir", str(run), "--epochs", "1", "--no-progress"]) == 0
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(run / "checkpoint.pt"), "--data", str(ptbxl_set), "--out-dir", str(out),
                 "--bootstrap", "20", "--no-quality", "--subgroups"]) == 0  # fmt: skip
    report = json.loads((out / "metrics.json").read_text())
    by = report["subgroups"]["by_label"]
    assert set(by) == {"MI", "ARRHYTHMIA"} and set(by["MI"]) == {"AMI+IMI"} and set(by["ARRHYTHMIA"]) == {"AFIB+SARRH"}
    assert by["MI"]["AMI+IMI"]["windows"] == 1 and sum(by["MI"]["AMI+IMI"]["predicted"].values()) == 1
    assert (out / "subgroups.png").read_bytes()[:4] == b"\x89PNG"
    assert "MI AMI+IMI: 1 window," in capsys.readouterr().out


# ------------------------------------------------------------------ MIT-BIH: rhythm, else beats

FS = 360
# second -> symbol replacing the N beat there; the rhythm turns to AFIB at 45 s
ODD_BEATS = {3.2: "V", 12.0: "A", 14.4: "A", 16.0: "V", 30.4: "V", 32.0: "V", 33.6: "V", 35.2: "V", 36.8: "V", 46.4: "V", 52.0: "A"}
RHYTHMS = {0.1: "(N", 45.0: "(AFIB"}
WANT_MITDB = {0: "beats V x1", 1: "beats A+V x2-4", 3: "beats V x5+", 4: "rhythm AFIB", 5: "rhythm AFIB"}  # by 10 s window


def mitdb_annotations() -> tuple[np.ndarray, list[str], list[str]]:
    beats = {round(t, 1): "N" for t in np.arange(0.4, 60, 0.8)} | ODD_BEATS
    marks = [(t, "+", aux) for t, aux in RHYTHMS.items()]
    rows = sorted([(t, sym, "") for t, sym in beats.items()] + marks)
    return np.array([round(t * FS) for t, _, _ in rows]), [r[1] for r in rows], [r[2] for r in rows]


def test_mitdb_finding_rhythm_first_then_beats():
    samples, symbols, aux = mitdb_annotations()
    got = {w: mitdb_window_finding(samples, symbols, aux, FS, 250, w * 2500, 2500) for w in range(6)}
    assert got == {**WANT_MITDB, 2: "none"}


def test_mitdb_windows_get_their_findings(tmp_path):
    raw = tmp_path / "raw"
    samples, symbols, aux = mitdb_annotations()
    write_record(raw / "mitdb", "201", ecg_like(60, FS, seed=1, leads=2), FS, ["MLII", "V1"])
    wfdb.wrann("201", "atr", samples, symbols, aux_note=aux, write_dir=str(raw / "mitdb"), fs=FS)
    write_records_file(raw / "mitdb", ["201"])
    assert main(["prepare", "mixed", "--raw-dir", str(raw), "--datasets", "mitdb", "--out", str(tmp_path / "m"), "--no-progress"]) == 0
    ds = load_dataset(tmp_path / "m")
    got = dict(zip((ds.start // 2500).tolist(), window_findings(ds, np.arange(len(ds)))))
    assert len(got) >= 4 and got == {w: WANT_MITDB[w] for w in got}
    (raw / "mitdb" / "201.atr").unlink()
    with pytest.raises(DatasetError, match=r"201.atr is missing \(record mitdb:201\)"):
        window_findings(ds, np.arange(len(ds)))
