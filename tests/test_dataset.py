"""Data set files: round trip, memory map, split check, balancing, atomic replacement."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.data.dataset import DatasetError, DatasetWriter, count_table, load_dataset
from pipeline.signal.spec import PreprocessSpec
from pipeline.data.splits import SplitError, balance_indices, check_split, ptbxl_fold_split, stratified_patient_split


def write(path, patients, splits, labels, keep=None):
    spec = PreprocessSpec()
    with DatasetWriter(path, spec) as w:
        for i, (p, s, y) in enumerate(zip(patients, splits, labels)):
            X = np.full((2, 1, spec.window), i, np.float32)
            w.add(X, np.array([y, y]), p, f"rec{i}", np.array([0, 2500]), s)
        cols = w.columns()
        return w.finish(cols, np.arange(w.n) if keep is None else keep, {"label_names": ["NORMAL", "MI", "ARRHYTHMIA"], "leads": ["II"]})


def test_round_trip_memmap(tmp_path):
    out = write(tmp_path / "ds", ["p1", "p2", "p3"], ["train", "val", "test"], [0, 1, 2])
    ds = load_dataset(out)
    assert isinstance(ds.X, np.memmap) and ds.X.shape == (6, 1, 2500)
    assert ds.y.tolist() == [0, 0, 1, 1, 2, 2] and ds.record.tolist()[2] == "rec1" and ds.start.tolist()[:2] == [0, 2500]
    assert ds.indices("val").tolist() == [2, 3] and float(ds.X[5, 0, 0]) == 2.0
    assert ds.spec == PreprocessSpec() and len(ds.meta["dataset_sha256"]) == 64
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_leak_is_refused_and_nothing_written(tmp_path):
    with pytest.raises(SplitError, match="p1 in \\['test', 'train'\\]"):
        write(tmp_path / "ds", ["p1", "p1"], ["train", "test"], [0, 0])
    assert list(tmp_path.iterdir()) == []


def test_keep_subset_and_replace(tmp_path):
    write(tmp_path / "ds", ["p1", "p2"], ["train", "train"], [0, 1])
    write(tmp_path / "ds", ["p1", "p2", "p3"], ["train", "train", "test"], [0, 1, 2], keep=np.array([0, 5]))
    ds = load_dataset(tmp_path / "ds")
    assert len(ds) == 2 and ds.record.tolist() == ["rec0", "rec2"] and float(ds.X[1, 0, 0]) == 2.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_load_errors(tmp_path):
    with pytest.raises(DatasetError, match="not a data set"):
        load_dataset(tmp_path)
    out = write(tmp_path / "ds", ["p1"], ["train"], [0])
    meta = json.loads((out / "dataset.json").read_text())
    (out / "dataset.json").write_text(json.dumps({**meta, "n_windows": 5}))
    with pytest.raises(DatasetError, match="X.npy has shape"):
        load_dataset(out)


def test_splits_helpers():
    assert [ptbxl_fold_split(f) for f in (1, 8, 9, 10)] == ["train", "train", "val", "test"]
    patients = np.repeat([f"p{i}" for i in range(40)], 3)
    labels = np.repeat(np.arange(40) % 2, 3)
    split = stratified_patient_split(patients, labels, seed=1)
    check_split(patients, split)
    assert stratified_patient_split(patients, labels, seed=1).tolist() == split.tolist()
    for c in (0, 1):
        parts = {s: len(set(patients[(labels == c) & (split == s)])) for s in ("train", "val", "test")}
        assert parts == {"train": 14, "val": 3, "test": 3}
    keep = balance_indices(labels, split, seed=0)
    for s in ("train", "val", "test"):
        assert np.bincount(labels[keep][split[keep] == s]).tolist()[0] == np.bincount(labels[keep][split[keep] == s]).tolist()[1]
    t = count_table(labels, patients, split, ("NORMAL", "MI"))
    assert t["all"]["MI"] == {"windows": 60, "patients": 20}
