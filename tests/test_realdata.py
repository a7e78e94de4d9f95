"""The real PhysioNet copies in ../shared/data: seed label rules reproduced exactly, splits sound."""

from __future__ import annotations

import ast
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb
from scipy.signal import butter, filtfilt, resample_poly

from pipeline.cli import main
from pipeline.data.dataset import load_dataset

pytestmark = pytest.mark.realdata


def seed_ptbxl_labels(root: Path, mode: str) -> dict[str, str]:
    """The seed project's PTB-XL rule written out longhand, over the records on disk."""
    scp = pd.read_csv(root / "scp_statements.csv", index_col=0)
    diag = {c: str(r.diagnostic_class).strip() for c, r in scp.iterrows() if r.diagnostic == 1}
    rhythm = {c for c, r in scp.iterrows() if r.rhythm == 1}
    on_disk = set((root / "RECORDS").read_text().split())
    out = {}
    for row in pd.read_csv(root / "ptbxl_database.csv").itertuples():
        if row.filename_lr not in on_disk:
            continue
        codes = ast.literal_eval(row.scp_codes)
        classes = {diag[c] for c in codes if c in diag}
        rhy = {c for c in codes if c in rhythm}
        non_sr = any(c != "SR" for c in rhy)
        label = None
        if mode == "stage1":
            label = "ARRHYTHMIA" if non_sr else "SINUS"
        elif mode == "stage2":
            label = None if non_sr else "MI" if classes == {"MI"} else "NORMAL" if classes == {"NORM"} else None
        elif mode == "loose":
            label = "MI" if "MI" in classes else "ARRHYTHMIA" if non_sr else "NORMAL" if classes == {"NORM"} else None
        elif classes == {"MI"} and not non_sr:
            label = "MI"
        elif classes == {"NORM"} and not non_sr:
            label = "NORMAL"
        elif non_sr and (classes == {"NORM"} or (mode == "semi" and not classes)):
            label = "ARRHYTHMIA"
        if label:
            out[f"ptbxl:{row.ecg_id}"] = label
    return out


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("real")


@pytest.mark.parametrize("mode", ["loose", "semi", "strict", "stage1", "stage2"])
def test_ptbxl_lead_ii_follows_seed_rules(shared_data, out_dir, mode):
    root = shared_data / "ptbxl"
    out = out_dir / f"ptbxl_{mode}"
    with pytest.warns(UserWarning, match="absent on disk"):
        assert main(["prepare", "ptbxl", "--ptbxl-dir", str(root), "--lead", "II", "--label-mode", mode, "--out", str(out), "--no-progress"]) == 0
    ds = load_dataset(out)
    got = {r: ds.label_names[y] for r, y in zip(ds.record, ds.y)}
    assert got == seed_ptbxl_labels(root, mode)
    assert len(ds) == len(set(ds.record))  # one 10 s window per record
    meta = pd.read_csv(root / "ptbxl_database.csv", index_col="ecg_id")
    for rec, split, patient in zip(ds.record[:300], ds.split[:300], ds.patient[:300]):
        row = meta.loc[int(rec.split(":")[1])]
        assert split == {9: "val", 10: "test"}.get(int(row.strat_fold), "train")
        assert patient == f"ptbxl:{int(row.patient_id)}"
    for s in ("train", "val", "test"):
        assert all(ds.meta["counts"][s][lab]["windows"] > 0 for lab in ds.label_names)


def test_ptbxl_twelve_lead_stage2(shared_data, out_dir):
    out = out_dir / "stage2_12"
    assert main(["prepare", "ptbxl", "--ptbxl-dir", str(shared_data / "ptbxl"), "--lead", "all", "--label-mode", "stage2",
                 "--max-records", "400", "--out", str(out), "--no-progress"]) == 0
    ds = load_dataset(out)
    assert ds.X.shape[1:] == (12, 2500) and ds.leads[:3] == ["I", "II", "III"]
    assert np.isfinite(ds.X[:50]).all() and np.allclose(ds.X[:50].std(axis=-1), 1, atol=1e-3)


def test_ptbxl_records500(shared_data, out_dir):
    out = out_dir / "hr"
    assert main(["prepare", "ptbxl", "--ptbxl-dir", str(shared_data / "ptbxl"), "--rate", "500", "--max-records", "120",
                 "--out", str(out), "--no-progress"]) == 0
    ds = load_dataset(out)
    assert ds.X.shape[1:] == (1, 2500) and len(ds) > 50
    assert all(f.endswith(("_hr.dat", "_hr.hea")) for f in ds.meta["sources"]["ptbxl"]["records"][ds.record[0]])


def seed_mitdb_windows(root: Path, record: str, min_count: int, min_ratio: float) -> tuple[list[int], np.ndarray]:
    """The seed's MIT-BIH loop: zero-phase filter, beat counting, per-window standardise."""
    rec = wfdb.rdrecord(str(root / record))
    ann = wfdb.rdann(str(root / record), "atr")
    names = [n.upper() for n in rec.sig_name]
    lead = next((names.index(n) for n in ("MLII", "II", "V1", "V2", "I") if n in names), 0)
    ratio = Fraction(250, int(rec.fs))
    x = resample_poly(rec.p_signal[:, lead].astype(np.float32), ratio.numerator, ratio.denominator)
    b, a = butter(4, [0.5 / 125, 40 / 125], btype="band")
    x = filtfilt(b, a, x)
    non_beat = set('|~+[]!x()ptu`^="?')
    sym = np.array(ann.symbol)
    beat = np.array([s not in non_beat for s in sym])
    abn = np.array([s not in non_beat and s not in "NLRej" for s in sym])
    beat_pos = np.sort(np.round(ann.sample[beat] * 250 / rec.fs).astype(int))
    abn_pos = np.sort(np.round(ann.sample[abn] * 250 / rec.fs).astype(int))
    starts, windows = [], []
    for s in range(0, len(x) - 2500 + 1, 2500):
        n_abn = np.searchsorted(abn_pos, s + 2500) - np.searchsorted(abn_pos, s)
        n_beat = np.searchsorted(beat_pos, s + 2500) - np.searchsorted(beat_pos, s)
        if n_abn and n_beat and n_abn >= min_count and n_abn / n_beat >= min_ratio:
            w = x[s : s + 2500]
            starts.append(s)
            windows.append((w - w.mean()) / (w.std() + 1e-6))
    return starts, np.array(windows)


def test_mitdb_follows_seed_rules(shared_data, out_dir):
    root = shared_data / "mitdb"
    out = out_dir / "mitdb"
    assert main(["prepare", "mixed", "--raw-dir", str(shared_data), "--datasets", "mitdb", "--arrhythmia-min-count", "2",
                 "--arrhythmia-min-ratio", "0.1", "--filter", "zero-phase", "--out", str(out), "--no-progress"]) == 0
    ds = load_dataset(out)
    assert set(ds.label_names[y] for y in ds.y) == {"ARRHYTHMIA"}
    total = 0
    for record in (root / "RECORDS").read_text().split():
        starts, windows = seed_mitdb_windows(root, record, 2, 0.1)
        mine = ds.record == f"mitdb:{record}"
        assert ds.start[mine].tolist() == starts, record
        total += len(starts)
        if record in ("100", "119", "208") and starts:
            assert np.abs(ds.X[mine][:, 0] - windows).max() < 1e-4
    assert len(ds) == total
    patients = dict(zip(ds.record, ds.patient))
    assert patients.get("mitdb:202", "mitdb:201") == "mitdb:201" and patients["mitdb:201"] == "mitdb:201"
    assert set(ds.meta["lead_usage"]) == {"MLII", "V2"}  # 102 and 104 have no MLII: V2 by the fallback order
    for p in set(ds.patient):
        assert len(set(ds.split[ds.patient == p])) == 1
