"""CinC 2017 (single-lead consumer recordings): the reader on real records and hand-made bad files,
windows of no class, label sets per window, and training on label sets (partial labels)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ecg_like, write_record, write_records_file

from pipeline.cli import main
from pipeline.data.dataset import DatasetWriter, load_dataset
from pipeline.data.label_rules import cinc2017_label
from pipeline.data.labels import NO_CLASS, NO_CLASS_Y, parse_label
from pipeline.data.merge import merge_datasets
from pipeline.sources import cinc2017
from pipeline.signal.spec import PreprocessSpec
from pipeline.training.train import label_set_loss

PER_CLASS = {"N": 4, "A": 3, "O": 3, "~": 3}


@pytest.fixture(scope="module")
def real_sample(shared_data: Path, tmp_path_factory) -> Path:
    """A few real CinC 2017 records of every class, copied with a reference file that lists just them."""
    src = shared_data / "cinc2017"
    if not (src / "REFERENCE-v3.csv").exists():
        pytest.fail(f"{src}: the CinC 2017 copy is missing (see ../shared/data/README.md)")
    _, labels = cinc2017.read_reference(src)
    out = tmp_path_factory.mktemp("cinc") / "cinc2017"
    out.mkdir()
    chosen = [r for code, n in PER_CLASS.items() for r in sorted(r for r, c in labels.items() if c == code)[:n]]
    for r in chosen:
        for ext in (".hea", ".mat"):
            shutil.copy(src / f"{r}{ext}", out / f"{r}{ext}")
    (out / "REFERENCE-v3.csv").write_text("".join(f"{r},{labels[r]}\n" for r in chosen))
    write_records_file(out, chosen)
    return out


def test_label_rule() -> None:
    assert cinc2017_label("N") == "NORMAL" and cinc2017_label("N", "NORMAL|MI") == "NORMAL|MI"
    assert cinc2017_label("A") == cinc2017_label("O") == "ARRHYTHMIA"
    assert cinc2017_label("O", other=False) is None
    assert cinc2017_label("~") == NO_CLASS
    with pytest.raises(ValueError, match="unknown CinC 2017 class 'X'"):
        cinc2017_label("X")
    assert parse_label("NORMAL|MI") == (0, 0b011) and parse_label("ARRHYTHMIA") == (2, 0b100) and parse_label(NO_CLASS) == (NO_CLASS_Y, 0)


def test_split_is_deterministic_and_stratified() -> None:
    labels = {f"A{i:05d}": "NAO~"[i % 4] for i in range(400)}
    a, b = cinc2017.split_by_class(labels, 13), cinc2017.split_by_class(labels, 13)
    assert a == b and a != cinc2017.split_by_class(labels, 14)
    for code in "NAO~":
        parts = [a[r] for r, c in labels.items() if c == code]
        assert (parts.count("train"), parts.count("val"), parts.count("test")) == (70, 15, 15)


def test_prepare_real_records(real_sample: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "set"
    assert main(["prepare", "cinc2017", "--source-dir", str(real_sample), "--out", str(out), "--jobs", "1", "--no-progress"]) == 0
    ds = load_dataset(out)
    meta = ds.meta
    src = meta["sources"]["cinc2017"]
    assert ds.leads == ["ECG"] and ds.spec.fs == 250
    assert set(src["record_labels"].values()) == set(PER_CLASS)
    for rid, code in src["record_labels"].items():
        rows = ds.record == rid
        want = {"N": 0, "A": 2, "O": 2, "~": NO_CLASS_Y}[code]
        assert rows.any() and np.all(ds.y[rows] == want), rid
        n_samples = int(Path(src["record_paths"][rid] + ".hea").read_text().split()[3])
        assert rows.sum() == (n_samples * 250 // 300 - 2500) // 2500 + 1  # every whole window at the 10 s hop
    assert meta["label_sets"]["all"] == {NO_CLASS: int((ds.y == NO_CLASS_Y).sum())}
    assert set(src["record_polarity"].values()) <= {"upright", "inverted"}
    assert not ds.has_label_sets
    printed = capsys.readouterr().out
    assert "NOISY windows of no class" in printed
    # N as the label set {NORMAL, MI}: targets.npy, reported as NORMAL
    nm = tmp_path / "nm"
    assert main(["prepare", "cinc2017", "--source-dir", str(real_sample), "--out", str(nm), "--n-label-set", "NORMAL|MI", "--leave-out-other", "--jobs", "1", "--no-progress"]) == 0
    ds2 = load_dataset(nm)
    assert ds2.has_label_sets and (nm / "targets.npy").exists() and not (out / "targets.npy").exists()
    assert set(ds2.targets[ds2.y == 0].tolist()) == {0b011}
    assert not any(v == "O" for r, v in ds2.meta["sources"]["cinc2017"]["record_labels"].items() if (ds2.record == r).any())
    assert ds2.meta["excluded_at_plan"]["cinc2017"] == PER_CLASS["O"]


def test_short_record_counted_and_bad_files_named(tmp_path: Path, capsys) -> None:
    root = tmp_path / "cinc"
    write_record(root, "A00001", ecg_like(30, 300), 300, ["ECG"])
    write_record(root, "A00002", ecg_like(9, 300), 300, ["ECG"])  # 9 s: shorter than one 10 s window
    write_records_file(root, ["A00001", "A00002"])
    ref = root / "REFERENCE-v3.csv"
    ref.write_text("A00001,N\nA00002,A\nA09999,O\n")  # A09999 is named but not there
    out = tmp_path / "set"
    assert main(["prepare", "cinc2017", "--source-dir", str(root), "--out", str(out), "--jobs", "1", "--no-progress", "--seed", "1"]) == 0
    meta = load_dataset(out).meta
    assert meta["skipped"]["excluded_by_label_rule"] == {f"cinc2017: {cinc2017.SHORT}": 1}
    assert meta["skipped"]["missing"]["cinc2017"] == {"count": 1, "first": ["A09999"]}
    assert "1 record(s) left out: cinc2017: shorter than one window" in capsys.readouterr().out
    args = ["prepare", "cinc2017", "--source-dir", str(root), "--out", str(tmp_path / "x"), "--jobs", "1", "--no-progress"]
    assert main([*args, "--strict-files"]) == 2
    assert "A09999" in capsys.readouterr().err
    for text, needle in (
        ("A00001,N\nA00002,B\n", "record A00002: unknown class 'B'"),
        ("A00001,N\nA00001,A\n", "record A00001 is labelled twice"),
        ("A00001 N\n", "line 1: expected 'record,class'"),
        ("A00001,N\n", "record A00002 has no class in REFERENCE-v3.csv"),
    ):
        ref.write_text(text)
        assert main(args) == 2, text
        assert needle in capsys.readouterr().err
    ref.write_text("A00001,N\nA00002,A\n")
    (root / "A00001.dat").unlink()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "A00001" in err and "signal file" in err
    assert not (tmp_path / "x").exists()


def test_label_set_loss() -> None:
    torch.manual_seed(0)
    logits = torch.randn(6, 3, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0, 0, 2])
    one_hot = torch.tensor([1, 2, 4, 1, 1, 4])
    assert torch.allclose(label_set_loss(logits, y, one_hot), torch.nn.functional.cross_entropy(logits, y))
    w = torch.tensor([0.5, 2.0, 1.0])
    assert torch.allclose(label_set_loss(logits, y, one_hot, w), torch.nn.functional.cross_entropy(logits, y, weight=w))
    # {NORMAL, MI}: the loss sees only p(NORMAL) + p(MI): any split of that mass between the two costs the same
    both = torch.tensor([0b011])
    z = torch.tensor([[2.0, -1.0, 0.5]])
    swapped = torch.tensor([[-1.0, 2.0, 0.5]])
    assert torch.allclose(label_set_loss(z, y[:1], both), label_set_loss(swapped, y[:1], both))
    p = torch.softmax(z, 1)[0]
    assert torch.allclose(label_set_loss(z, y[:1], both), -torch.log(p[0] + p[1]))
    z = z.clone().requires_grad_(True)
    label_set_loss(z, y[:1], both).backward()
    assert z.grad[0, 2] > 0 > z.grad[0, 0] and z.grad[0, 1] < 0  # away from ARRHYTHMIA only


def _pattern_set(out: Path, b_label: str, noise: bool = False) -> Path:
    """Four window shapes: A NORMAL, B `b_label`, C MI, D ARRHYTHMIA (train and val alike); `noise`: E, white noise of no class."""
    spec = PreprocessSpec()
    rng = np.random.default_rng(0)
    t = np.arange(spec.window) / spec.fs
    shapes = {"A": np.sin(2 * np.pi * 1.0 * t), "B": np.sign(np.sin(2 * np.pi * 1.7 * t)), "C": np.sin(2 * np.pi * 3.1 * t), "D": (t * 2.3) % 1.0}
    labels = {"A": "NORMAL", "B": b_label, "C": "MI", "D": "ARRHYTHMIA"}
    if noise:
        shapes["E"], labels["E"] = np.zeros_like(t), NO_CLASS
    with DatasetWriter(out, spec) as w:
        for name, shape in shapes.items():
            y, mask = parse_label(labels[name])
            for p in range(12):
                x = (shape + (3.0 if name == "E" else 0.3) * rng.standard_normal(spec.window)).astype(np.float32)
                x = (x - x.mean()) / x.std()
                split = "train" if p < 8 else "val" if p < 10 else "test"
                w.add(x[None, None, :], np.array([y]), f"t:{name}{p}", f"t:{name}{p}", np.array([0]), split, np.array([mask]))
        cols = w.columns()
        return w.finish(cols, np.arange(w.n), {"label_set": "three_class", "label_names": ["NORMAL", "MI", "ARRHYTHMIA"], "leads": ["II"]})


def test_training_on_label_sets_pushes_toward_neither(tmp_path: Path) -> None:
    """B windows labelled {NORMAL, MI} learn 'not ARRHYTHMIA' and not NORMAL, unlike B labelled NORMAL."""
    probs = {}
    for b_label in ("NORMAL|MI", "NORMAL"):
        data = _pattern_set(tmp_path / b_label.replace("|", "_"), b_label)
        run = tmp_path / f"run_{b_label.replace('|', '_')}"
        args = ["train", "--data", str(data), "--out-dir", str(run), "--model", "mcu", "--epochs", "12", "--batch-size", "8",
                "--lr", "3e-3", "--patience", "0", "--ema", "0", "--no-augment", "--no-progress"]  # fmt: skip
        assert main(args) == 0
        from pipeline.models.checkpoint import load_checkpoint
        from pipeline.inference.classifiers import checkpoint_proba

        ds = load_dataset(data)
        b = np.flatnonzero(np.char.startswith(ds.record.astype(str), "t:B"))
        probs[b_label] = checkpoint_proba(load_checkpoint(run / "checkpoint.pt"), np.asarray(ds.X[b]), ds.leads).mean(0)
        history = json.loads((run / "history.json").read_text())
        assert history and all(np.isfinite(h["val_loss"]) for h in history)
    as_set, as_normal = probs["NORMAL|MI"], probs["NORMAL"]
    assert as_set[2] < 0.2  # pushed away from ARRHYTHMIA
    assert as_normal[0] > 0.8  # the plain label makes B NORMAL ...
    assert as_set[1] > 0.05 > 10 * as_normal[1]  # ... and MI all but impossible; the set leaves MI a share


def test_merge_keeps_label_sets_and_no_class(real_sample: Path, tmp_path: Path) -> None:
    nm = tmp_path / "nm"
    assert main(["prepare", "cinc2017", "--source-dir", str(real_sample), "--out", str(nm), "--n-label-set", "NORMAL|MI", "--jobs", "1", "--no-progress"]) == 0
    other = _pattern_set(tmp_path / "pattern", "NORMAL")
    merged = load_dataset(merge_datasets([other, nm], tmp_path / "merged", lead_as="II"))
    src = load_dataset(nm)
    rows = np.char.startswith(merged.record.astype(str), "cinc2017:")
    assert np.array_equal(merged.targets[rows], src.targets) and np.array_equal(merged.y[rows], src.y)
    assert merged.meta["label_sets"]["all"][NO_CLASS] == int((src.y == NO_CLASS_Y).sum())
    assert set(merged.meta["sources"]["cinc2017@ECG"]["record_labels"]) == {f"{r}@ECG" for r in src.meta["sources"]["cinc2017"]["record_labels"]}


def test_noise_weight_trains_windows_of_no_class_toward_uncertain(tmp_path: Path) -> None:
    """White-noise windows of no class: without --noise-weight they never train; with it, their top probability falls."""
    from pipeline.models.checkpoint import load_checkpoint
    from pipeline.inference.classifiers import checkpoint_proba

    data = _pattern_set(tmp_path / "set", "NORMAL", noise=True)
    ds = load_dataset(data)
    e = np.flatnonzero(ds.y == NO_CLASS_Y)
    assert len(e) == 12 and not ds.has_label_sets
    top = {}
    for w in ("0", "1"):
        run = tmp_path / f"run{w}"
        assert main(["train", "--data", str(data), "--out-dir", str(run), "--model", "mcu", "--epochs", "10", "--batch-size", "8", "--lr", "3e-3",
                     "--patience", "0", "--ema", "0", "--no-augment", "--noise-weight", w, "--no-progress"]) == 0  # fmt: skip
        top[w] = checkpoint_proba(load_checkpoint(run / "checkpoint.pt"), np.asarray(ds.X[e]), ds.leads).max(1).mean()
    assert top["1"] < 0.5 < top["0"]
    assert main(["train", "--data", str(data), "--out-dir", str(tmp_path / "bad"), "--noise-weight", "1", "--mixup", "0.2", "--no-progress"]) == 2


def test_record_level_answers_by_hand() -> None:
    from pipeline.evaluation.record_level import answers_by_class, by_record

    records = np.array(["r1", "r1", "r2", "r2", "r2", "r3"])
    y = np.array([0, 0, 2, 2, 2, NO_CLASS_Y])
    probs = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4], [0.5, 0.0, 0.5], [0.4, 0.4, 0.2]])
    uncertain = np.array([False, True, False, True, True, True])
    r = by_record(records, y, probs, uncertain)
    assert r["record"].tolist() == ["r1", "r2", "r3"] and r["y"].tolist() == [0, 2, NO_CLASS_Y] and r["windows"].tolist() == [2, 3, 1]
    np.testing.assert_allclose(r["probs"][0], [0.4, 0.5, 0.1])  # the mean over all windows: MI wins r1
    assert r["uncertain"].tolist() == [True, True, True]  # half, two thirds, all of the windows
    table = answers_by_class(["N", "A", "~"], r["probs"].argmax(1), r["uncertain"], ["NORMAL", "MI", "ARRHYTHMIA"])
    assert table["N"]["top_label_share"] == {"NORMAL": 0.0, "MI": 1.0, "ARRHYTHMIA": 0.0} and table["N"]["uncertain_share"] == 1.0
    assert table["A"]["answer_share"]["UNCERTAIN"] == 1.0 and table["A"]["answer_share"]["ARRHYTHMIA"] == 0.0
    lo, hi = table["~"]["uncertain_ci95"]
    assert 0.2 < lo < 0.21 and hi == 1.0  # Wilson interval of 1 of 1
    with pytest.raises(ValueError, match="record r1: its windows carry different labels"):
        by_record(records, np.array([0, 1, 2, 2, 2, 0]), probs, uncertain)


def test_evaluate_record_level_on_real_records(real_sample: Path, tmp_path: Path, capsys) -> None:
    data = tmp_path / "cinc"
    assert main(["prepare", "cinc2017", "--source-dir", str(real_sample), "--out", str(data), "--jobs", "1", "--no-progress"]) == 0
    run = tmp_path / "run"
    patterns = _pattern_set(tmp_path / "pattern", "NORMAL")
    assert main(["train", "--data", str(patterns), "--out-dir", str(run), "--model", "mcu", "--epochs", "1", "--no-progress"]) == 0
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(run / "checkpoint.pt"), "--data", str(data), "--lead", "ECG", "--split", "all",
                 "--partial-labels", "--record-level", "--bootstrap", "0", "--out-dir", str(out)]) == 0  # fmt: skip
    report = json.loads((out / "metrics.json").read_text())
    ds = load_dataset(data)
    noisy = int((ds.y == NO_CLASS_Y).sum())
    assert report["n_windows"] == len(ds) - noisy and report["no_class"]["windows"] == noisy
    assert report["record_level"]["records"] == sum(PER_CLASS.values())
    by = report["by_source_class"]
    assert {c: by["records"][c]["n"] for c in PER_CLASS} == PER_CLASS
    assert sum(v["n"] for v in by["windows"].values()) == len(ds)
    assert sum(v["n"] for v in by["records_by_polarity"].values()) == sum(PER_CLASS.values())
    printed = capsys.readouterr().out
    assert f"windows of no class (noisy): {noisy}" in printed and "records of source class ~: 3" in printed
