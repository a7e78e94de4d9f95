"""Merging data sets (several leads and databases into one single-lead set) and MIT-BIH's normal-rhythm windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_train import write_synthetic_set

from pipeline.cli import main
from pipeline.data.dataset import DatasetError, DatasetWriter, load_dataset
from pipeline.data.label_rules import sinus_normal_window_mask
from pipeline.data.merge import merge_datasets
from pipeline.signal.spec import PreprocessSpec


def _single_lead(src: Path, lead: str, out: Path) -> Path:
    """One lead of a multi-lead set as its own data set (same windows, ids and splits)."""
    ds = load_dataset(src)
    j = ds.leads.index(lead)
    with DatasetWriter(out, ds.spec) as w:
        for rec in dict.fromkeys(ds.record):
            rows = np.flatnonzero(ds.record == rec)
            w.add(np.asarray(ds.X[rows])[:, [j]], ds.y[rows], str(ds.patient[rows[0]]), str(rec), ds.start[rows], str(ds.split[rows[0]]))
        cols = w.columns()
        return w.finish(cols, np.arange(w.n), {"label_set": "test", "label_names": list(ds.label_names), "leads": [lead]})


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("merge")
    full = write_synthetic_set(root / "full", per_class=5)
    return full, _single_lead(full, "I", root / "lead_I"), _single_lead(full, "II", root / "lead_II")


def test_merge_single_lead_sets_as_one_lead(sets, tmp_path: Path) -> None:
    full, lead_i, lead_ii = sets
    out = merge_datasets([lead_ii, lead_i], tmp_path / "m", lead_as="II")
    m, a, b = load_dataset(out), load_dataset(lead_ii), load_dataset(lead_i)
    assert m.leads == ["II"] and len(m) == len(a) + len(b)
    assert np.array_equal(np.asarray(m.X[: len(a)]), np.asarray(a.X)) and np.array_equal(np.asarray(m.X[len(a) :]), np.asarray(b.X))
    assert set(m.record) == {f"{r}@II" for r in a.record} | {f"{r}@I" for r in b.record}
    assert np.array_equal(m.y, np.concatenate([a.y, b.y])) and np.array_equal(m.split, np.concatenate([a.split, b.split]))
    assert [s["path"] for s in m.meta["merged_from"]] == [str(lead_ii), str(lead_i)]
    assert m.meta["counts"]["all"]["NORMAL"]["windows"] == int((m.y == 0).sum())


def test_merge_refusals(sets, tmp_path: Path, capsys) -> None:
    full, lead_i, lead_ii = sets
    with pytest.raises(DatasetError, match="single-lead"):
        merge_datasets([full, lead_i], tmp_path / "a", lead_as="II")
    with pytest.raises(DatasetError, match="leads"):
        merge_datasets([lead_i, lead_ii], tmp_path / "b")
    with pytest.raises(DatasetError, match="at least two"):
        merge_datasets([lead_i], tmp_path / "c")
    other = write_synthetic_set(tmp_path / "two", labels=("SINUS", "ARRHYTHMIA"), per_class=4)
    assert main(["merge", "--data", str(lead_i), str(_single_lead(other, "I", tmp_path / "two_I")), "--lead-as", "II", "--out", str(tmp_path / "d")]) == 2
    assert "labels" in capsys.readouterr().err and not (tmp_path / "d").exists()
    # the same patient in two different splits across inputs
    ds = load_dataset(lead_i)
    moved = tmp_path / "moved"
    with DatasetWriter(moved, PreprocessSpec()) as w:
        rows = np.flatnonzero(ds.split == "train")[:1]
        w.add(np.asarray(ds.X[rows]), ds.y[rows], str(ds.patient[rows[0]]), "other", ds.start[rows], "test")
        w.finish(w.columns(), np.arange(w.n), {"label_set": "test", "label_names": list(ds.label_names), "leads": ["I"]})
    with pytest.raises(Exception, match=str(ds.patient[rows[0]])):
        merge_datasets([lead_i, moved], tmp_path / "e", lead_as="II")


def test_sinus_normal_windows() -> None:
    fs = 250.0
    # rhythm (N from 0, (AFIB at 30 s, (N again at 50 s; beats every second; a V beat at 15.5 s; an L beat at 62.5 s
    beats = [(int(t * fs), "N") for t in np.arange(0.5, 80, 1.0)] + [(int(15.5 * fs) + 10, "V"), (int(62.5 * fs) + 10, "L")]
    rhythm = [(0, "+", "(N"), (int(30 * fs), "+", "(AFIB"), (int(50 * fs), "+", "(N")]
    ann = sorted([(s, sym, "") for s, sym in beats] + rhythm)
    samples = np.array([a[0] for a in ann])
    symbols, aux = [a[1] for a in ann], [a[2] for a in ann]
    starts = np.arange(0, 70 * 250, 2500)  # 0, 10, ..., 60 s
    got = sinus_normal_window_mask(samples, symbols, aux, fs, fs, starts, 2500)
    #          0-10  10-20(V) 20-30  30-40(AF) 40-50(AF) 50-60  60-70(L)
    assert got.tolist() == [True, False, True, False, False, True, False]
    assert not sinus_normal_window_mask(samples, symbols, [""] * len(aux), fs, fs, starts[:1], 2500).any()  # no rhythm marks


def test_agreement_of_one_model_on_two_versions(sets, tmp_path: Path, capsys) -> None:
    import json

    from test_train import TINY

    full, lead_i, lead_ii = sets
    run = tmp_path / "run"
    assert main(["train", "--data", str(lead_ii), "--out-dir", str(run), *TINY]) == 0
    ckpt = str(run / "checkpoint.pt")
    assert main(["agreement", "--checkpoint", ckpt, "--data", str(lead_ii), str(lead_ii), "--out", str(tmp_path / "same.json")]) == 0
    same = json.loads((tmp_path / "same.json").read_text())
    assert same["windows"] == len(load_dataset(lead_ii)) and same["top1_agreement"] == 1.0 and same["max_abs_probability_diff"] == 0.0
    # the lead I version under lead II's name: same records and starts, other signals
    renamed = merge_datasets([lead_i, lead_i], tmp_path / "i_as_ii", lead_as="II")
    assert main(["agreement", "--checkpoint", ckpt, "--data", str(lead_ii), str(renamed)]) == 2
    assert "share no window" in capsys.readouterr().err  # record ids got '@I'
    other = _single_lead(full, "I", tmp_path / "i_named_ii")
    ds = load_dataset(other)
    ds.meta["leads"] = ["II"]
    (other / "dataset.json").write_text(json.dumps(ds.meta))
    assert main(["agreement", "--checkpoint", ckpt, "--data", str(lead_ii), str(other), "--out", str(tmp_path / "diff.json")]) == 0
    diff = json.loads((tmp_path / "diff.json").read_text())
    assert diff["windows"] == same["windows"] and diff["mean_abs_probability_diff"] > 0


def test_external_check_scores_every_window_of_a_set_without_mi(sets, tmp_path: Path, capsys) -> None:
    import json

    from test_train import TINY

    full, _, lead_ii = sets
    run = tmp_path / "run"
    assert main(["train", "--data", str(lead_ii), "--out-dir", str(run), *TINY]) == 0
    ds = load_dataset(lead_ii)
    keep = np.flatnonzero(ds.y != ds.label_names.index("MI"))  # like MIT-BIH: NORMAL and ARRHYTHMIA only
    ext = tmp_path / "external"
    with DatasetWriter(ext, ds.spec) as w:
        for rec in dict.fromkeys(ds.record[keep]):
            rows = keep[ds.record[keep] == rec]
            w.add(np.asarray(ds.X[rows]), ds.y[rows], str(ds.patient[rows[0]]), str(rec), ds.start[rows], str(ds.split[rows[0]]))
        w.finish(w.columns(), np.arange(w.n), {"label_set": "test", "label_names": list(ds.label_names), "leads": ["MLII"]})
    args = ["evaluate", "--checkpoint", str(run / "checkpoint.pt"), "--data", str(ext), "--lead", "MLII", "--bootstrap", "20", "--no-quality"]
    assert main([*args, "--out-dir", str(tmp_path / "strict")]) == 2
    assert "MI" in capsys.readouterr().err  # a label missing from the split is an error unless asked for
    assert main([*args, "--partial-labels", "--split", "all", "--out-dir", str(tmp_path / "all")]) == 0
    report = json.loads((tmp_path / "all" / "metrics.json").read_text())
    assert report["n_windows"] == len(keep) and report["data"]["split"] == "all"
    assert report["per_class_recall"]["MI"] is None and report["support"]["MI"] == 0
    assert report["support"]["NORMAL"] == int((ds.y == 0).sum())
    per = report["per_patient"]
    assert len(per["groups"]) == report["n_groups"] and per["group_mean_recall"]["MI"] is None
    assert sum(g["windows"] for g in per["groups"].values()) == len(keep)
    assert "recall averaged over patients" in capsys.readouterr().out
    assert main([*args, "--partial-labels", "--out-dir", str(tmp_path / "test")]) == 0
    assert json.loads((tmp_path / "test" / "metrics.json").read_text())["n_windows"] == int((ds.split[keep] == "test").sum())
