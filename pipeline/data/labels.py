"""Label names: the one place that fixes their order (DESIGN.md, Labels), and per-window label sets."""

from __future__ import annotations

import numpy as np

LABELS: tuple[str, ...] = ("NORMAL", "MI", "ARRHYTHMIA")
STAGE1_LABELS: tuple[str, ...] = ("SINUS", "ARRHYTHMIA")
STAGE2_LABELS: tuple[str, ...] = ("NORMAL", "MI")

LABEL_SETS: dict[str, tuple[str, ...]] = {
    "three_class": LABELS,
    "stage1": STAGE1_LABELS,
    "stage2": STAGE2_LABELS,
}

# A window may carry a set of labels where its source cannot tell them apart (a partial label:
# CinC 2017's N says "sinus rhythm", not "no infarction"), written "NORMAL|MI": the first name is the
# label it is reported under, the set is what training accepts. A window with no class at all (CinC's
# "too noisy") is NO_CLASS: y = NO_CLASS_Y, an empty set; it never trains a class, it tests the quality rule.
SET_SEP = "|"
NO_CLASS = "NOISY"
NO_CLASS_Y = -1


def label_index(name: str, labels: tuple[str, ...] = LABELS) -> int:
    """Index of `name` in `labels`, with a clear error for unknown names."""
    try:
        return labels.index(name)
    except ValueError:
        raise ValueError(f"unknown label {name!r}; expected one of {list(labels)}") from None


def parse_label(text: str, labels: tuple[str, ...] = LABELS) -> tuple[int, int]:
    """(y, set mask) of a window label: "MI" -> (1, 0b010), "NORMAL|MI" -> (0, 0b011), NO_CLASS -> (-1, 0)."""
    if text == NO_CLASS:
        return NO_CLASS_Y, 0
    names = text.split(SET_SEP)
    idx = [label_index(n, labels) for n in names]
    if len(set(idx)) != len(idx):
        raise ValueError(f"label set {text!r} names a label twice")
    return idx[0], int(sum(1 << i for i in idx))


def one_hot_masks(y: np.ndarray) -> np.ndarray:
    """The set mask each plain label stands for (1 << y; 0 for NO_CLASS windows)."""
    y = np.asarray(y, dtype=np.int64)
    return np.where(y >= 0, np.left_shift(1, np.clip(y, 0, 62)), 0).astype(np.int64)


def mask_names(mask: int, labels: tuple[str, ...] = LABELS) -> str:
    """"NORMAL|MI" for a mask (NO_CLASS for the empty set)."""
    names = [n for i, n in enumerate(labels) if mask >> i & 1]
    return SET_SEP.join(names) if names else NO_CLASS
