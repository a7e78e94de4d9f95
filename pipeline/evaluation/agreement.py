"""One model on two versions of the same records (e.g. PTB-XL raw vs a zero-phase filtered, z-scored copy).

Windows are matched by (record id, start); the report says how often the model's answer changes
between the versions, how far the probabilities move, and the balanced accuracy of each version on
the matched windows: what the other version's preprocessing costs a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.dataset import Dataset, DatasetError
from pipeline.inference.classifiers import Classifier
from pipeline.evaluation.metrics import balanced_accuracy, confusion_matrix


def matched_windows(a: Dataset, b: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Indices into `a` and `b` of the windows both hold (same record id and start), in `a`'s order."""
    key_b = {(str(r), int(s)): i for i, (r, s) in enumerate(zip(b.record, b.start))}
    pairs = [(i, key_b[(str(r), int(s))]) for i, (r, s) in enumerate(zip(a.record, a.start)) if (str(r), int(s)) in key_b]
    if not pairs:
        raise DatasetError(f"{a.path} and {b.path} share no window (record id and start)")
    ia, ib = (np.array(x, dtype=np.int64) for x in zip(*pairs))
    if not np.array_equal(a.y[ia], b.y[ib]):
        bad = int(np.flatnonzero(a.y[ia] != b.y[ib])[0])
        raise DatasetError(f"record {a.record[ia[bad]]}: label {a.label_names[a.y[ia[bad]]]} in {a.path}, {b.label_names[b.y[ib[bad]]]} in {b.path}")
    return ia, ib


def version_agreement(clf: Classifier, a: Dataset, b: Dataset) -> dict[str, Any]:
    """Top-1 agreement, probability shift and per-version balanced accuracy on the windows both data sets hold."""
    if a.label_names != b.label_names or tuple(clf.label_names) != tuple(a.label_names):
        raise DatasetError(f"labels differ: model {list(clf.label_names)}, {a.path} {list(a.label_names)}, {b.path} {list(b.label_names)}")
    ia, ib = matched_windows(a, b)
    pa = clf.predict_proba(np.asarray(a.X[ia]), a.leads)
    pb = clf.predict_proba(np.asarray(b.X[ib]), b.leads)
    y = a.y[ia]
    n = len(clf.label_names)

    def bal(p: np.ndarray) -> float:
        return float(balanced_accuracy(confusion_matrix(y, p.argmax(1), n)))

    return {
        "a": str(Path(a.path)),
        "b": str(Path(b.path)),
        "windows": int(len(ia)),
        "records": int(len(np.unique(a.record[ia]))),
        "top1_agreement": float((pa.argmax(1) == pb.argmax(1)).mean()),
        "mean_abs_probability_diff": float(np.abs(pa - pb).mean()),
        "max_abs_probability_diff": float(np.abs(pa - pb).max()),
        "balanced_accuracy_a": bal(pa),
        "balanced_accuracy_b": bal(pb),
        "support": {name: int((y == i).sum()) for i, name in enumerate(clf.label_names)},
    }
