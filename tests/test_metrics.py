"""pipeline.evaluation.metrics: hand-computed metrics, rank AUC, patient-level bootstrap, report files."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.evaluation.metrics import (
    per_group_breakdown,
    balanced_accuracy,
    bootstrap_ci,
    check_labels_present,
    classification_report,
    confusion_matrix,
    macro_auc,
    per_class,
    plot_confusion,
    write_report,
)

LABELS = ["NORMAL", "MI", "ARRHYTHMIA"]

# 12 windows: NORMAL x5, MI x4, ARRHYTHMIA x3.
Y_TRUE = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2])
Y_PRED = np.array([0, 0, 0, 0, 1, 1, 1, 2, 0, 2, 2, 2])


def soft(pred: np.ndarray, n_classes: int = 3, top: float = 0.8) -> np.ndarray:
    """Probabilities with `top` on the predicted class and the rest spread evenly."""
    p = np.full((len(pred), n_classes), (1 - top) / (n_classes - 1))
    p[np.arange(len(pred)), pred] = top
    return p


def noisy_probs(y: np.ndarray, rng: np.random.Generator, signal: float = 1.0) -> np.ndarray:
    logits = rng.normal(size=(len(y), 3))
    logits[np.arange(len(y)), y] += signal
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


# --- point metrics ------------------------------------------------------------------------


def test_hand_example():
    cm = confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert cm.dtype == np.int64
    assert cm.tolist() == [[4, 1, 0], [1, 2, 1], [0, 0, 3]]
    pc = per_class(cm)
    assert np.allclose(pc["recall"], [4 / 5, 2 / 4, 3 / 3])
    assert np.allclose(pc["precision"], [4 / 5, 2 / 3, 3 / 4])
    # F1 = 2PR/(P+R): 0.8; 2*(2/3)*(1/2)/(7/6) = 4/7; 2*(3/4)*1/(7/4) = 6/7
    assert np.allclose(pc["f1"], [0.8, 4 / 7, 6 / 7])
    assert balanced_accuracy(cm) == pytest.approx((0.8 + 0.5 + 1.0) / 3)

    rep = classification_report(Y_TRUE, soft(Y_PRED), LABELS, n_boot=0)
    assert rep["confusion_matrix"] == [[4, 1, 0], [1, 2, 1], [0, 0, 3]]
    assert rep["per_class_recall"] == pytest.approx({"NORMAL": 0.8, "MI": 0.5, "ARRHYTHMIA": 1.0})
    assert rep["per_class_precision"] == pytest.approx({"NORMAL": 0.8, "MI": 2 / 3, "ARRHYTHMIA": 0.75})
    assert rep["per_class_f1"] == pytest.approx({"NORMAL": 0.8, "MI": 4 / 7, "ARRHYTHMIA": 6 / 7})
    assert rep["balanced_accuracy"] == pytest.approx(23 / 30)
    assert rep["accuracy"] == pytest.approx(9 / 12)
    assert rep["n_windows"] == 12 and rep["n_groups"] == 12 and rep["label_names"] == LABELS


def test_undefined_per_class_values_are_zero():
    cm = np.array([[2, 0, 0], [1, 1, 0], [0, 0, 0]])  # class 2: never true, never predicted
    pc = per_class(cm)
    assert pc["recall"].tolist() == [1.0, 0.5, 0.0]
    assert pc["precision"].tolist() == [2 / 3, 1.0, 0.0]
    assert pc["f1"][2] == 0.0
    assert balanced_accuracy(cm) == pytest.approx(0.75)  # class 2 left out


# --- AUC ----------------------------------------------------------------------------------


def test_macro_auc_hand_examples():
    y = np.array([0, 0, 1, 1, 2, 2])
    assert macro_auc(y, soft(y)) == 1.0
    reversed_ = np.array([[0.2, 0.8, 0.0], [0.1, 0.9, 0.0], [0.8, 0.2, 0.0], [0.9, 0.1, 0.0]])
    assert macro_auc(np.array([0, 0, 1, 1]), reversed_) == 0.0
    assert macro_auc(y, np.full((6, 3), 1 / 3)) == 0.5
    probs = np.array(
        [
            [0.6, 0.3, 0.1],
            [0.3, 0.4, 0.3],
            [0.2, 0.5, 0.3],
            [0.5, 0.3, 0.2],
            [0.1, 0.2, 0.7],
            [0.3, 0.3, 0.4],
        ]
    )
    # NORMAL: positives 0.6, 0.3 vs 0.2 0.5 0.1 0.3 -> (4 + 2.5)/8; MI: 0.5, 0.3 vs 0.3 0.4 0.2 0.3 -> (4 + 2)/8;
    # ARRHYTHMIA: 0.7, 0.4 vs 0.1 0.3 0.3 0.2 -> 8/8.
    assert macro_auc(y, probs) == pytest.approx((6.5 / 8 + 6 / 8 + 1.0) / 3)


def test_macro_auc_classes_present_and_undefined():
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1, 0.0], [0.6, 0.4, 0.0], [0.65, 0.35, 0.0], [0.2, 0.8, 0.0]])
    # only NORMAL and MI present: 3 of 4 pairs ordered right for each -> 0.75
    assert macro_auc(y, probs) == pytest.approx(0.75)
    assert np.isnan(macro_auc(np.array([1, 1, 1]), soft(np.array([0, 1, 2]))))


def test_macro_auc_matches_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 500)
    probs = noisy_probs(y, rng, 0.7)
    assert macro_auc(y, probs) == pytest.approx(sk.roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    tied = np.array([[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.2, 0.2, 0.6], [0.4, 0.4, 0.2]])[rng.integers(0, 4, 500)]
    assert macro_auc(y, tied) == pytest.approx(sk.roc_auc_score(y, tied, multi_class="ovr", average="macro"))


# --- bootstrap ----------------------------------------------------------------------------


def accuracy_fn(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(p.argmax(axis=1) == y))


def test_bootstrap_deterministic_and_contains_estimate():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(200), 3)
    y = rng.integers(0, 3, len(groups))
    probs = noisy_probs(y, rng)
    fns = {"acc": accuracy_fn, "auc": macro_auc}
    a = bootstrap_ci(y, probs, groups, fns, n_boot=300, seed=7)
    assert a == bootstrap_ci(y, probs, groups, fns, n_boot=300, seed=7)
    assert a != bootstrap_ci(y, probs, groups, fns, n_boot=300, seed=8)
    for name, fn in fns.items():
        lo, hi = a[name]
        assert lo < fn(y, probs) < hi
    wide = bootstrap_ci(y, probs, groups, {"acc": accuracy_fn}, n_boot=300, seed=7, alpha=0.5)["acc"]
    assert a["acc"][0] < wide[0] < wide[1] < a["acc"][1]


def test_bootstrap_takes_whole_groups():
    n = 60
    groups = np.repeat(np.arange(12), 5)[np.random.default_rng(1).permutation(n)]  # shuffled windows
    ids = np.arange(n)
    probs = np.column_stack([ids / 1000, 1 - ids / 1000, np.zeros(n)])  # window id hidden in column 0
    seen: list[np.ndarray] = []

    def record(y: np.ndarray, p: np.ndarray) -> float:
        seen.append(np.rint(p[:, 0] * 1000).astype(int))
        return 0.0

    bootstrap_ci(np.zeros(n, int), probs, groups, {"x": record}, n_boot=50, seed=0)
    assert len(seen) == 50
    for drawn in seen:
        times = np.bincount(drawn, minlength=n)
        assert len(drawn) == n  # 12 groups of 5 drawn
        for g in range(12):
            assert len(set(times[groups == g])) == 1  # every window of a group drawn equally often


def test_patient_level_interval_wider_than_window_level():
    rng = np.random.default_rng(2)
    n_pat, per = 40, 50
    groups = np.repeat(np.arange(n_pat), per)
    y = np.repeat(rng.integers(0, 3, n_pat), per)
    right = np.repeat(rng.random(n_pat) < 0.7, per)  # a patient is classified all right or all wrong
    pred = np.where(right, y, (y + 1) % 3)
    probs = soft(pred)
    fns = {"acc": accuracy_fn}
    by_patient = bootstrap_ci(y, probs, groups, fns, n_boot=400)["acc"]
    by_window = bootstrap_ci(y, probs, None, fns, n_boot=400)["acc"]
    assert by_patient[1] - by_patient[0] > 3 * (by_window[1] - by_window[0])


def test_report_bootstrap_skips_resamples_missing_a_class():
    rng = np.random.default_rng(4)
    groups = np.repeat(np.arange(5), 20)
    y = np.array([0] * 40 + [1] * 40 + [2] * 20)  # ARRHYTHMIA only in patient 4
    probs = noisy_probs(y, rng, 1.5)
    rep = classification_report(y, probs, LABELS, groups=groups, n_boot=1000, seed=0)
    skipped = rep["bootstrap"]["skipped"]
    # P(no ARRHYTHMIA patient) = 0.8**5 = 0.33; P(neither NORMAL patient) = P(neither MI one) = 0.6**5 = 0.08
    assert 330 < skipped < 550
    assert rep["bootstrap"] == {"n": 1000, "seed": 0, "unit": "patient", "skipped": skipped}
    assert rep["n_groups"] == 5
    for key in ("balanced_accuracy", "macro_auc", *(f"recall_{n}" for n in LABELS)):
        lo, hi = rep["ci95"][key]
        assert 0 <= lo <= hi <= 1


def test_report_speed_and_json():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 2000)
    groups = rng.permutation(np.repeat(np.arange(1000), 2))
    probs = noisy_probs(y, rng).astype(np.float32)
    t = time.perf_counter()
    rep = classification_report(y, probs, LABELS, groups=groups, n_boot=1000, seed=0)
    elapsed = time.perf_counter() - t
    assert elapsed < 5.0, f"report with 1000 resamples took {elapsed:.2f} s"
    assert json.loads(json.dumps(rep, allow_nan=False)) == rep
    required = {
        "per_class_recall", "per_class_precision", "per_class_f1", "balanced_accuracy", "accuracy", "macro_auc",
        "confusion_matrix", "label_names", "n_windows", "n_groups", "ci95", "bootstrap",
    }  # fmt: skip
    assert required <= set(rep)
    assert set(rep["ci95"]) == {"balanced_accuracy", "macro_auc", "recall_NORMAL", "recall_MI", "recall_ARRHYTHMIA"}
    assert rep["n_windows"] == 2000 and rep["n_groups"] == 1000
    assert rep["bootstrap"]["skipped"] == 0
    lo, hi = rep["ci95"]["balanced_accuracy"]
    assert lo < rep["balanced_accuracy"] < hi


# --- missing class and bad input ----------------------------------------------------------


def test_missing_class():
    y = np.array([0, 0, 0, 2, 2, 2])  # no MI
    pred = np.array([0, 1, 0, 2, 2, 0])
    rep = classification_report(y, soft(pred), LABELS, groups=np.array([1, 1, 2, 2, 3, 3]), n_boot=100)
    assert rep["per_class_recall"] == pytest.approx({"NORMAL": 2 / 3, "MI": None, "ARRHYTHMIA": 2 / 3})
    assert rep["per_class_f1"]["MI"] is None and rep["per_class_precision"]["MI"] == 0.0
    assert rep["balanced_accuracy"] == pytest.approx(2 / 3)
    assert rep["ci95"]["recall_MI"] is None and rep["ci95"]["recall_NORMAL"] is not None
    json.dumps(rep, allow_nan=False)
    with pytest.raises(ValueError, match=r"test split has no windows labelled MI"):
        check_labels_present(y, LABELS, "test")
    with pytest.raises(ValueError, match=r"val split .* MI, ARRHYTHMIA"):
        check_labels_present(np.array([0, 0]), LABELS, "val")
    check_labels_present(Y_TRUE, LABELS, "test")  # all present: no error


def test_single_class_report_has_no_auc():
    rep = classification_report(np.array([1, 1, 1]), soft(np.array([1, 0, 1])), LABELS, n_boot=20)
    assert rep["macro_auc"] is None and rep["ci95"]["macro_auc"] is None
    assert rep["balanced_accuracy"] == pytest.approx(2 / 3)
    assert rep["bootstrap"]["unit"] == "window"


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: confusion_matrix(np.array([0, 1]), np.array([0]), 3), "y_pred has 1"),
        (lambda: confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3), "outside 0..2"),
        (lambda: macro_auc(np.array([0, 1, 2]), soft(np.array([0, 1]))), "3 entries but probs has 2"),
        (lambda: macro_auc(np.array([0, 1]), np.array([[0.5, 0.6, 0.1], [0.2, 0.3, 0.5]])), "sum to 1"),
        (lambda: macro_auc(np.array([0, 1]), np.array([[np.nan, 0.5, 0.5], [0.2, 0.3, 0.5]])), "NaN"),
        (lambda: macro_auc(np.array([0.0, 1.0]), soft(np.array([0, 1]))), "integer"),
        (lambda: macro_auc(np.array([], int), np.zeros((0, 3))), "empty"),
        (lambda: classification_report(Y_TRUE, soft(Y_PRED), LABELS[:2]), "2 label names"),
        (lambda: classification_report(Y_TRUE, soft(Y_PRED), LABELS, groups=np.arange(5)), "groups must be"),
        (lambda: bootstrap_ci(Y_TRUE, soft(Y_PRED), None, {"a": accuracy_fn}, alpha=1.5), "alpha"),
        (lambda: bootstrap_ci(Y_TRUE, soft(Y_PRED), None, {"a": accuracy_fn}, n_boot=0), "n_boot"),
    ],
)
def test_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- files --------------------------------------------------------------------------------


def test_plot_and_write_report(tmp_path: Path):
    cm = confusion_matrix(Y_TRUE, Y_PRED, 3)
    out = plot_confusion(cm, LABELS, tmp_path / "sub" / "cm.png", title="hand example")
    with Image.open(out) as im:
        im.load()
        w, h = im.size
        pixels = np.asarray(im.convert("L"))
    assert 500 < w < 1500 and 400 < h < 1200 and w > h
    assert pixels.std() > 10  # not blank
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["cm.png"]  # no temp file left

    rep = classification_report(Y_TRUE, soft(Y_PRED), LABELS, groups=np.repeat(np.arange(6), 2), n_boot=50)
    js, png = write_report(rep, tmp_path / "ev", "test split")
    assert json.loads(js.read_text()) == rep
    assert png.name == "confusion_matrix.png" and Image.open(png).size[0] > 0
    assert sorted(p.name for p in (tmp_path / "ev").iterdir()) == ["confusion_matrix.png", "metrics.json"]
    # a row without true windows must not break the figure
    plot_confusion(np.array([[3, 1, 0], [0, 0, 0], [1, 0, 2]]), LABELS, tmp_path / "gap.png")


def test_per_group_breakdown_by_hand():
    y = np.array([0, 0, 0, 2, 2, 0, 0])
    pred = np.array([0, 1, 1, 2, 0, 0, 0])
    groups = np.array(["b", "b", "b", "b", "b", "a", "a"])
    r = per_group_breakdown(y, pred, groups, ["NORMAL", "MI", "ARRHYTHMIA"])
    assert list(r["groups"]) == ["a", "b"]
    assert r["groups"]["a"] == {"windows": 2, "confusion_matrix": [[2, 0, 0], [0, 0, 0], [0, 0, 0]]}
    assert r["groups"]["b"]["confusion_matrix"] == [[1, 2, 0], [0, 0, 0], [1, 0, 1]]
    # pooled NORMAL recall is 3/5; averaged over the two patients it is (1 + 1/3) / 2
    assert r["group_mean_recall"] == {"NORMAL": pytest.approx(2 / 3), "MI": None, "ARRHYTHMIA": 0.5}
    assert r["groups_per_label"] == {"NORMAL": 2, "MI": 0, "ARRHYTHMIA": 1}
    with pytest.raises(ValueError, match="y_pred"):
        per_group_breakdown(y, pred[:-1], groups, ["NORMAL", "MI", "ARRHYTHMIA"])
