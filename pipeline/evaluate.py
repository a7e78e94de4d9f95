"""Evaluate a classifier on a data set split: metrics.json and a confusion-matrix PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .dataset import Dataset
from .inference import Classifier
from .metrics import check_labels_present, classification_report, write_report


def evaluate(clf: Classifier, ds: Dataset, out_dir: Path, split: str = "test", n_boot: int = 1000, seed: int = 0, title: str = "") -> dict[str, Any]:
    """Report on `split` of `ds` (labels must match the classifier's, every label present)."""
    if tuple(ds.label_names) != tuple(clf.label_names):
        raise ValueError(f"{ds.path}: labels {ds.label_names} differ from the model's {clf.label_names}")
    if ds.spec != clf.spec:
        raise ValueError(f"{ds.path}: preprocessed with {ds.spec.to_dict()}, the model expects {clf.spec.to_dict()}")
    idx = ds.indices(split)
    if len(idx) == 0:
        raise ValueError(f"{ds.path}: the {split} split is empty")
    y = ds.y[idx]
    check_labels_present(y, list(ds.label_names), split)
    probs = clf.predict_proba(np.asarray(ds.X[idx]), ds.leads)
    report = classification_report(y, probs, list(ds.label_names), groups=ds.patient[idx], n_boot=n_boot, seed=seed)
    report["data"] = {"path": str(ds.path), "sha256": ds.meta["dataset_sha256"], "split": split}
    write_report(report, Path(out_dir), title or f"{ds.path.name} ({split})")
    return report
