"""Answers per recording and per source class: what a user of a short recording (CinC 2017) is told.

A record's answer is the mean of its windows' probabilities (every window), its label the largest;
the record is uncertain when at least half of its windows are (RECORD_UNCERTAIN_RULE). A source class
is the database's own label of a record (CinC 2017: N, A, O, ~), kept in dataset.json as `record_labels`;
for each, the share of every answer (labels and UNCERTAIN) and of each label ignoring uncertainty.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from pipeline.data.dataset import Dataset
from pipeline.data.labels import NO_CLASS_Y
from pipeline.evaluation.metrics import wilson_ci
from pipeline.inference.predict import UNCERTAIN

RECORD_RULE = "record label: the argmax of the mean window probability over all its windows"
RECORD_UNCERTAIN_SHARE = 0.5
RECORD_UNCERTAIN_RULE = f"a record is uncertain when at least {RECORD_UNCERTAIN_SHARE:.0%} of its windows are"


def source_classes(ds: Dataset, idx: np.ndarray, key: str = "record_labels") -> list[str | None]:
    """The source's own class of each window's record (`record_labels` in dataset.json; or another per-record
    fact such as `record_polarity`), None where it has none."""
    table: dict[str, str] = {}
    for src in ds.meta.get("sources", {}).values():
        table.update(src.get(key, {}))
    return [table.get(str(r)) for r in ds.record[idx]]


def by_record(records: np.ndarray, y: np.ndarray, probs: np.ndarray, uncertain: np.ndarray) -> dict[str, np.ndarray]:
    """Per record (in first-seen order): id, label (-1: no class), mean probabilities, uncertain flag, window
    count, and `first`: the position of its first window in the inputs."""
    ids, first, inverse = np.unique(records, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    n = np.bincount(inverse, minlength=len(ids))
    mean = np.zeros((len(ids), probs.shape[1]))
    np.add.at(mean, inverse, probs)
    mean /= n[:, None]
    share = np.bincount(inverse, weights=uncertain.astype(float), minlength=len(ids)) / n
    labels = y[first]
    mixed = np.flatnonzero(np.bincount(inverse, weights=(y != labels[inverse]).astype(float), minlength=len(ids)) > 0)
    if len(mixed):
        raise ValueError(f"record {ids[mixed[0]]}: its windows carry different labels; a record-level report needs one label per record")
    return {"record": ids[order], "y": labels[order], "probs": mean[order], "uncertain": (share >= RECORD_UNCERTAIN_SHARE)[order], "windows": n[order],
            "first": first[order]}


def answers_by_class(classes: Sequence[str | None], top: np.ndarray, uncertain: np.ndarray, label_names: Sequence[str]) -> dict[str, Any]:
    """Per source class: count, share of each answer (UNCERTAIN where uncertain) and of each top label."""
    found = np.array(classes, dtype=object)
    out: dict[str, Any] = {}
    for c in sorted({c for c in classes if c is not None}):
        m = found == c
        n = int(m.sum())
        said = np.bincount(top[m], minlength=len(label_names))
        answered = np.bincount(top[m & ~uncertain], minlength=len(label_names))
        n_unc = int((m & uncertain).sum())
        out[c] = {
            "n": n,
            "top_label_share": {name: float(k / n) for name, k in zip(label_names, said)},
            "top_label_ci95": {name: wilson_ci(int(k), n) for name, k in zip(label_names, said)},
            "answer_share": {**{name: float(k / n) for name, k in zip(label_names, answered)}, UNCERTAIN: n_unc / n},
            "uncertain_share": n_unc / n,
            "uncertain_ci95": wilson_ci(n_unc, n),
        }
    return out


def class_rows(y: np.ndarray) -> np.ndarray:
    """Positions of rows that have a class."""
    return np.flatnonzero(np.asarray(y) != NO_CLASS_Y)
