"""Classification metrics with patient-level bootstrap intervals, and their report files.

Labels are integer class indices 0..C-1; `probs` is (N, C) class probabilities whose
argmax is the prediction. Everything returned by `classification_report` is JSON-able:
undefined values (a class with no true windows, AUC with one class) are None there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from pipeline.data.dataset import write_json_atomic
from pipeline.util.figures import save_figure

MetricFn = Callable[[np.ndarray, np.ndarray], float]
PROB_SUM_ATOL = 1e-3
METRICS_FILE = "metrics.json"
CONFUSION_FILE = "confusion_matrix.png"


# --- input checks -------------------------------------------------------------------------


def _check_labels(y: Any, n_classes: int, name: str = "y_true") -> np.ndarray:
    """`y` as a 1-D int64 array of class indices in [0, n_classes)."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = (arr < 0) | (arr >= n_classes)
    if bad.any():
        raise ValueError(f"{name} has class index {arr[bad][0]} outside 0..{n_classes - 1}")
    return arr


def _check_y_probs(y_true: Any, probs: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated (y, probs): matching non-zero lengths, finite non-negative rows summing to ~1."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probs must be (N, C) with C >= 2, got shape {p.shape}")
    y = _check_labels(y_true, p.shape[1])
    if len(y) != len(p):
        raise ValueError(f"y_true has {len(y)} entries but probs has {len(p)} rows")
    if len(y) == 0:
        raise ValueError("no windows to evaluate (empty y_true)")
    if not np.isfinite(p).all():
        row = int(np.flatnonzero(~np.isfinite(p).all(axis=1))[0])
        raise ValueError(f"probs contain NaN or infinite values (first at row {row})")
    if (p < 0).any():
        raise ValueError("probs contain negative values")
    off = np.abs(p.sum(axis=1) - 1.0) > PROB_SUM_ATOL
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise ValueError(f"probs rows must sum to 1 (row {row} sums to {p[row].sum():.6g}); pass probabilities, not logits")
    return y, p


def _check_groups(groups: Any, n: int) -> np.ndarray:
    """Group ids (1-D, length n); None means every window is its own group."""
    if groups is None:
        return np.arange(n)
    g = np.asarray(groups)
    if g.ndim != 1 or len(g) != n:
        raise ValueError(f"groups must be 1-D with {n} entries (one per window), got shape {g.shape}")
    return g


def _check_names(label_names: Sequence[str], n_classes: int) -> list[str]:
    names = [str(n) for n in label_names]
    if len(names) != n_classes:
        raise ValueError(f"{len(names)} label names {names} for {n_classes} probability columns")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate label names {names}")
    return names


def check_labels_present(y_true: Any, label_names: Sequence[str], split_name: str) -> None:
    """Raise ValueError naming every label of `label_names` with no window in `y_true`."""
    y = _check_labels(y_true, len(label_names))
    counts = np.bincount(y, minlength=len(label_names))
    missing = [str(label_names[i]) for i in np.flatnonzero(counts == 0)]
    if missing:
        raise ValueError(
            f"the {split_name} split has no windows labelled {', '.join(missing)}; "
            f"every label ({', '.join(map(str, label_names))}) must be present to evaluate it"
        )


# --- point metrics ------------------------------------------------------------------------


def _confusion(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(y * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) int64 counts: rows are true classes, columns predicted classes."""
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    y = _check_labels(y_true, n_classes, "y_true")
    pred = _check_labels(y_pred, n_classes, "y_pred")
    if len(y) != len(pred):
        raise ValueError(f"y_true has {len(y)} entries but y_pred has {len(pred)}")
    return _confusion(y, pred, n_classes).astype(np.int64)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den == 0."""
    out = np.zeros(np.shape(num), dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def per_class(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class recall, precision and F1 from a confusion matrix (rows true).

    Undefined values are 0, as in scikit-learn's zero_division=0: recall of a class
    with no true windows, precision of a class never predicted, F1 when both are 0.
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    recall = _ratio(tp, cm.sum(axis=1))
    precision = _ratio(tp, cm.sum(axis=0))
    f1 = _ratio(2 * precision * recall, precision + recall)
    return {"recall": recall, "precision": precision, "f1": f1}


def balanced_accuracy(cm: np.ndarray) -> float:
    """Mean recall over the classes with at least one true window (NaN if there are none)."""
    cm = np.asarray(cm, dtype=np.float64)
    support = cm.sum(axis=1)
    present = support > 0
    if not present.any():
        return float("nan")
    return float(np.mean(np.diag(cm)[present] / support[present]))


def _auc_ovr(positive: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney AUC of `score` for `positive` vs the rest; tied pairs count 0.5."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    ranks = rankdata(score)  # average ranks: each tie contributes half
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _macro_auc(y: np.ndarray, p: np.ndarray) -> float:
    classes = np.unique(y)
    if len(classes) < 2:
        return float("nan")
    return float(np.mean([_auc_ovr(y == c, p[:, c]) for c in classes]))


def macro_auc(y_true: np.ndarray, probs: np.ndarray) -> float:
    """One-vs-rest ROC AUC averaged over the classes present in `y_true`.

    Rank-based (Mann-Whitney U), ties count 0.5; NaN when fewer than 2 classes are present.
    """
    y, p = _check_y_probs(y_true, probs)
    return _macro_auc(y, p)


# --- bootstrap ----------------------------------------------------------------------------


def _group_slices(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, starts, counts): window indices sorted by group, and each group's slice of it."""
    _, codes = np.unique(groups, return_inverse=True)
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    return order, starts, counts


def _resample(draw: np.ndarray, order: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Window indices of all windows of each drawn group (with repeats)."""
    lengths = counts[draw]
    ends = np.cumsum(lengths)
    shift = np.repeat(starts[draw] - (ends - lengths), lengths)
    return order[np.arange(ends[-1]) + shift]


def bootstrap_distribution(
    y_true: np.ndarray,
    probs: np.ndarray,
    groups: np.ndarray | None,
    metric_fns: dict[str, MetricFn],
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], int]:
    """Metric values over group-resamples, and how many resamples were skipped.

    Each resample draws as many groups as there are, with replacement, and takes all
    windows of every drawn group. `metric_fns` map name -> fn(y, probs) -> float; a
    resample where any metric is NaN/inf (undefined) is skipped for all metrics.
    """
    y, p = _check_y_probs(y_true, probs)
    g = _check_groups(groups, len(y))
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    order, starts, counts = _group_slices(g)
    rng = np.random.default_rng(seed)
    fns = list(metric_fns.values())
    values = np.full((n_boot, len(fns)), np.nan)
    for b in range(n_boot):
        idx = _resample(rng.integers(0, len(counts), size=len(counts)), order, starts, counts)
        yb, pb = y[idx], p[idx]
        for j, fn in enumerate(fns):
            values[b, j] = fn(yb, pb)
            if not np.isfinite(values[b, j]):
                break
    keep = np.isfinite(values).all(axis=1)
    return {name: values[keep, j] for j, name in enumerate(metric_fns)}, int(n_boot - keep.sum())


def percentile_interval(values: np.ndarray, alpha: float = 0.05) -> list[float]:
    """[lo, hi] percentile interval at level 1 - alpha ([nan, nan] without values)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if len(values) == 0:
        return [float("nan"), float("nan")]
    lo, hi = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return [float(lo), float(hi)]


def bootstrap_ci(
    y_true: np.ndarray,
    probs: np.ndarray,
    groups: np.ndarray | None,
    metric_fns: dict[str, MetricFn],
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, list[float]]:
    """Percentile intervals of each metric over resamples of GROUPS (see `bootstrap_distribution`)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    dist, _ = bootstrap_distribution(y_true, probs, groups, metric_fns, n_boot, seed)
    return {name: percentile_interval(v, alpha) for name, v in dist.items()}


# --- report -------------------------------------------------------------------------------


def _report_metric_fns(names: list[str], present: np.ndarray, auc_defined: bool) -> dict[str, MetricFn]:
    """Bootstrap metrics of the report; undefined (NaN) when a resample lacks a present class."""
    n = len(names)
    wanted = np.flatnonzero(present)

    def cm_of(y: np.ndarray, p: np.ndarray) -> np.ndarray | None:
        cm = _confusion(y, p.argmax(axis=1), n)
        return cm if (cm.sum(axis=1)[wanted] > 0).all() else None

    def bal(y: np.ndarray, p: np.ndarray) -> float:
        cm = cm_of(y, p)
        return float("nan") if cm is None else balanced_accuracy(cm)

    def recall_of(c: int) -> MetricFn:
        def fn(y: np.ndarray, p: np.ndarray) -> float:
            pos = y == c
            return float(np.mean(p[pos].argmax(axis=1) == c)) if pos.any() else float("nan")

        return fn

    fns: dict[str, MetricFn] = {"balanced_accuracy": bal}
    if auc_defined:
        fns["macro_auc"] = _macro_auc
    fns.update({f"recall_{names[c]}": recall_of(int(c)) for c in wanted})
    return fns


def _none_if_nan(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


def classification_report(
    y_true: np.ndarray,
    probs: np.ndarray,
    label_names: Sequence[str],
    groups: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """JSON-able metrics of argmax predictions, with 95% bootstrap CIs over groups (patients).

    A label with no true windows gets recall and F1 None, is left out of balanced
    accuracy and macro AUC, and its CI is None; precision is 0 for a label never
    predicted. `groups=None` resamples windows; `n_boot=0` skips the bootstrap (CIs None).
    """
    y, p = _check_y_probs(y_true, probs)
    names = _check_names(label_names, p.shape[1])
    g = _check_groups(groups, len(y))
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    cm = _confusion(y, p.argmax(axis=1), len(names))
    pc = per_class(cm)
    support = cm.sum(axis=1)
    present = support > 0
    auc = _macro_auc(y, p)

    def by_label(values: np.ndarray, only_present: bool) -> dict[str, float | None]:
        return {n: (float(v) if ok or not only_present else None) for n, v, ok in zip(names, values, present)}

    fns = _report_metric_fns(names, present, bool(np.isfinite(auc)))
    ci: dict[str, list[float] | None] = {"balanced_accuracy": None, "macro_auc": None}
    ci.update({f"recall_{n}": None for n in names})
    skipped = 0
    if n_boot > 0:
        dist, skipped = bootstrap_distribution(y, p, g, fns, n_boot, seed)
        for key, v in dist.items():
            lo, hi = percentile_interval(v, 0.05)
            ci[key] = None if not np.isfinite([lo, hi]).all() else [lo, hi]
    return {
        "label_names": names,
        "per_class_recall": by_label(pc["recall"], True),
        "per_class_precision": by_label(pc["precision"], False),
        "per_class_f1": by_label(pc["f1"], True),
        "support": {n: int(s) for n, s in zip(names, support)},
        "balanced_accuracy": _none_if_nan(balanced_accuracy(cm)),
        "accuracy": float(np.trace(cm) / cm.sum()),
        "macro_auc": _none_if_nan(auc),
        "confusion_matrix": cm.astype(int).tolist(),
        "n_windows": int(len(y)),
        "n_groups": int(len(np.unique(g))),
        "ci95": ci,
        "bootstrap": {
            "n": int(n_boot),
            "seed": int(seed),
            "unit": "window" if groups is None else "patient",
            "skipped": int(skipped),
        },
    }


def per_group_breakdown(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray, label_names: Sequence[str]) -> dict[str, Any]:
    """Confusion matrix of each group (patient, record) and each label's recall averaged over the groups
    that hold it: on an external set a few patients can decide a pooled recall, this shows which."""
    y, pred = _check_labels(y_true, len(label_names)), _check_labels(y_pred, len(label_names), "y_pred")
    g = _check_groups(groups, len(y))
    if len(pred) != len(y):
        raise ValueError(f"y_pred has {len(pred)} windows, y_true {len(y)}")
    rows: dict[str, Any] = {}
    recalls: list[list[float]] = [[] for _ in label_names]
    for name in sorted(set(g.tolist()), key=str):
        m = g == name
        cm = _confusion(y[m], pred[m], len(label_names))
        rows[str(name)] = {"windows": int(m.sum()), "confusion_matrix": cm.astype(int).tolist()}
        for c in range(len(label_names)):
            if cm[c].sum():
                recalls[c].append(float(cm[c, c] / cm[c].sum()))
    mean = {n: (float(np.mean(r)) if r else None) for n, r in zip(label_names, recalls)}
    return {"groups": rows, "group_mean_recall": mean, "groups_per_label": {n: len(r) for n, r in zip(label_names, recalls)}}


# --- files --------------------------------------------------------------------------------


def plot_confusion(cm: np.ndarray, label_names: Sequence[str], path: str | Path, title: str = "") -> Path:
    """PNG of the confusion matrix: count and row-normalised recall per cell, written atomically."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    cm = np.asarray(cm)
    names = [str(n) for n in label_names]
    if cm.ndim != 2 or cm.shape != (len(names), len(names)):
        raise ValueError(f"confusion matrix of shape {cm.shape} does not fit {len(names)} labels")
    rows = cm.sum(axis=1)
    norm = np.full(cm.shape, np.nan)
    np.divide(cm, rows[:, None], out=norm, where=rows[:, None] > 0)
    n = len(names)
    side = 2.4 + 1.2 * n
    fig = Figure(figsize=(side + 1.3, side), dpi=120)
    ax = fig.add_subplot()
    im = ax.imshow(np.nan_to_num(norm), cmap="Blues", vmin=0.0, vmax=1.0)
    size = max(7, 12 - n)
    for i in range(n):
        for j in range(n):
            text = f"{cm[i, j]}\n{norm[i, j]:.1%}" if rows[i] else f"{cm[i, j]}\n–"
            color = "white" if norm[i, j] > 0.6 else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=size, color=color)
    ax.set_xticks(range(n), names, rotation=30, ha="right")
    ax.set_yticks(range(n), [f"{name}\n(n={r})" for name, r in zip(names, rows)])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04).set_label("row-normalised (recall)")
    fig.tight_layout()
    return save_figure(fig, Path(path))


def write_report(report: dict[str, Any], out_dir: Path, title: str) -> tuple[Path, Path]:
    """Write metrics.json and confusion_matrix.png (each atomically) to `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = []
    if report.get("balanced_accuracy") is not None:
        summary.append(f"balanced acc {report['balanced_accuracy']:.3f}")
    if report.get("macro_auc") is not None:
        summary.append(f"macro AUC {report['macro_auc']:.3f}")
    full_title = "\n".join(t for t in (title, ", ".join(summary)) if t)
    png = plot_confusion(np.asarray(report["confusion_matrix"]), report["label_names"], out_dir / CONFUSION_FILE, full_title)
    js = out_dir / METRICS_FILE
    write_json_atomic(js, report)
    return js, png


# --- coverage (the uncertain answer) ------------------------------------------------------

COVERAGE_FILE = "coverage.json"
COVERAGE_PLOT = "coverage.png"


def coverage_curve(
    y_true: Any, probs: Any, eligible: Any = None, n_points: int = 50, include: Sequence[float] = ()
) -> list[dict[str, float | None]]:
    """Coverage vs balanced accuracy as the confidence threshold rises.

    For thresholds at the quantiles of the top probability of the `eligible` windows (those that pass
    the signal-quality rule; None: all), coverage is the share of ALL windows answered (eligible and
    top probability >= threshold) and balanced accuracy is over the answered windows (classes with at
    least one answered window). `include` adds thresholds (e.g. the chosen one). Sorted by rising threshold.
    """
    y, p = _check_y_probs(y_true, probs)
    ok = np.ones(len(y), bool) if eligible is None else np.asarray(eligible, dtype=bool)
    if ok.shape != y.shape:
        raise ValueError(f"eligible must have one entry per window ({len(y)}), got shape {ok.shape}")
    if n_points < 2:
        raise ValueError(f"n_points must be >= 2, got {n_points}")
    conf = p.max(axis=1)
    if not ok.any():
        return []
    thresholds = np.unique(np.concatenate([[0.0], np.quantile(conf[ok], np.linspace(0, 1, n_points)), list(include)]))
    n_classes = p.shape[1]
    pred = p.argmax(axis=1)
    out: list[dict[str, float | None]] = []
    for t in thresholds:
        answered = ok & (conf >= t)
        cm = _confusion(y[answered], pred[answered], n_classes)
        out.append({
            "threshold": float(t),
            "coverage": float(answered.mean()),
            "windows": int(answered.sum()),
            "balanced_accuracy": _none_if_nan(balanced_accuracy(cm)) if answered.any() else None,
        })
    return out


def plot_coverage(curve: list[dict[str, Any]], path: str | Path, threshold: float | None = None, title: str = "") -> Path:
    """PNG of balanced accuracy vs coverage, the chosen threshold marked; written atomically."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4), dpi=120)
    ax = fig.add_subplot()
    pts = [(c["coverage"], c["balanced_accuracy"]) for c in curve if c["balanced_accuracy"] is not None]
    if pts:
        ax.plot([a for a, _ in pts], [b for _, b in pts], marker=".", lw=1)
    if threshold is not None and curve:
        at = min(curve, key=lambda c: abs(c["threshold"] - threshold))
        if at["balanced_accuracy"] is not None:
            ax.plot([at["coverage"]], [at["balanced_accuracy"]], "o", color="C3", label=f"threshold {threshold:.3f}")
            ax.legend(fontsize=8)
    ax.set_xlabel("coverage (share of windows answered)")
    ax.set_ylabel("balanced accuracy on answered windows")
    ax.set_xlim(0, 1.02)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, Path(path))


def wilson_ci(k: int, n: int, z: float = 1.959964) -> tuple[float, float] | None:
    """95% Wilson score interval of a proportion k/n (records as independent subjects); None for n = 0."""
    if n <= 0:
        return None
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))
