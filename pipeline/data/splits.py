"""Patient-level splits, the leak check and per-split balancing."""

from __future__ import annotations

import numpy as np

SPLITS: tuple[str, ...] = ("train", "val", "test")


class SplitError(ValueError):
    """A split that would leak a patient across parts."""


def ptbxl_fold_split(fold: int) -> str:
    """PTB-XL's recommended split: folds 1-8 train, 9 validation, 10 test."""
    if not 1 <= int(fold) <= 10:
        raise ValueError(f"strat_fold must be 1..10, got {fold}")
    return "test" if fold == 10 else "val" if fold == 9 else "train"


def stratified_patient_split(
    patients: np.ndarray, labels: np.ndarray, train: float = 0.7, val: float = 0.15, seed: int = 13
) -> np.ndarray:
    """Split names per window, assigning whole patients, stratified by each patient's majority label.

    The seed project's rule: per class, shuffle its patients, take max(1, int(n*train))
    for train and max(1, int(n*val)) for validation (leaving at least one for each part
    when the class has three or more patients), the rest for test.
    """
    patients = np.asarray(patients)
    labels = np.asarray(labels)
    unique = np.unique(patients)
    n_classes = int(labels.max()) + 1 if labels.size else 0
    majority = {p: int(np.argmax(np.bincount(labels[patients == p], minlength=n_classes))) for p in unique}
    rng = np.random.default_rng(seed)
    part: dict[str, str] = {}
    for cls in range(n_classes):
        members = [p for p in unique if majority[p] == cls]
        rng.shuffle(members)
        n = len(members)
        if n == 0:
            continue
        n_train, n_val = max(1, int(n * train)), max(1, int(n * val))
        if n_train + n_val >= n:
            n_train, n_val = max(1, n - 2), 1
        for i, p in enumerate(members):
            part[p] = "train" if i < n_train else "val" if i < n_train + n_val else "test"
    return np.array([part[p] for p in patients], dtype="<U5")


def check_split(patients: np.ndarray, splits: np.ndarray) -> None:
    """Refuse any patient whose windows fall in more than one split."""
    seen: dict[str, str] = {}
    leaks: dict[str, set[str]] = {}
    for p, s in zip(np.asarray(patients).tolist(), np.asarray(splits).tolist()):
        first = seen.setdefault(p, s)
        if first != s:
            leaks.setdefault(p, {first}).add(s)
    if leaks:
        shown = ", ".join(f"{p} in {sorted(v)}" for p, v in list(leaks.items())[:5])
        raise SplitError(f"{len(leaks)} patient(s) appear in more than one split: {shown}")
    unknown = set(np.unique(splits).tolist()) - set(SPLITS)
    if unknown:
        raise SplitError(f"unknown split names {sorted(unknown)}; expected {SPLITS}")


def balance_indices(labels: np.ndarray, splits: np.ndarray, seed: int = 13) -> np.ndarray:
    """Sorted window indices after down-sampling each split to its smallest class (seeded)."""
    rng = np.random.default_rng(seed)
    keep: list[np.ndarray] = []
    for s in SPLITS:
        in_split = np.flatnonzero(splits == s)
        if in_split.size == 0:
            continue
        classes = np.unique(labels[in_split])
        smallest = min(int((labels[in_split] == c).sum()) for c in classes)
        for c in classes:
            idx = in_split[labels[in_split] == c]
            keep.append(np.sort(rng.choice(idx, size=smallest, replace=False)))
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)
