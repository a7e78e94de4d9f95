"""Predict labels for a signal file of any length and rate, windowed like the device does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .inference import Classifier
from .preprocess import preprocess_signal
from .records import RecordError, read_record


class InputError(ValueError):
    """An input signal file that cannot be classified."""


def read_signal(path: Path, lead: str | None) -> tuple[np.ndarray, list[str], float | None]:
    """(leads, samples) float64, lead names and the file's own rate (WFDB only) from CSV, NPY or WFDB."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".hea", ".dat") or (not suffix and path.with_suffix(".hea").exists()):
        base = path.with_suffix("") if suffix else path
        try:
            rec = read_record(base, [lead] if lead else "all", hash_files=False)
        except RecordError as exc:
            raise InputError(str(exc)) from exc
        return rec.signal, rec.leads, rec.fs
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if suffix == ".npy":
        x = np.load(path, allow_pickle=False).astype(np.float64)
        x = x[None, :] if x.ndim == 1 else x
        if x.ndim != 2:
            raise InputError(f"{path}: expected a 1-D signal or (leads, samples), got shape {x.shape}")
        names = [lead or "II"] if x.shape[0] == 1 else [f"ch{i}" for i in range(x.shape[0])]
        return x, names, None
    if suffix in (".csv", ".txt"):
        table = pd.read_csv(path, header=None if _headerless(path) else "infer")
        if lead is not None:
            if lead not in table.columns:
                raise InputError(f"{path}: no column {lead!r} (has {list(table.columns)})")
            table = table[[lead]]
        elif table.shape[1] > 1:
            raise InputError(f"{path}: {table.shape[1]} columns; choose one with --lead")
        try:
            x = table.to_numpy(dtype=np.float64).T
        except ValueError as exc:
            raise InputError(f"{path}: non-numeric values ({exc})") from exc
        return x, [str(lead or "II")], None
    raise InputError(f"{path}: unsupported input type {suffix!r} (use .csv, .npy or a WFDB record)")


def _headerless(path: Path) -> bool:
    first = path.read_text().split("\n", 1)[0].split(",")[0].strip()
    try:
        float(first)
        return True
    except ValueError:
        return False


def predict_file(clf: Classifier, path: Path, input_rate: float | None, lead: str | None = None, hop_s: float | None = None) -> dict:
    """Windows of the file with a label and probabilities each."""
    x, names, file_rate = read_signal(path, lead)
    rate = input_rate or file_rate
    if rate is None:
        raise InputError(f"{path}: give the sampling rate with --input-rate")
    if np.isnan(x).any():
        raise InputError(f"{path}: NaN samples at index {int(np.argwhere(np.isnan(x))[0][-1])}")
    spec = clf.spec
    needed = int(np.ceil(spec.window * rate / spec.fs))
    if x.shape[1] < needed:
        raise InputError(f"{path}: {x.shape[1]} samples at {rate} Hz is shorter than one {spec.window_seconds:g} s window ({needed} samples)")
    if len(clf.leads) == 1 and len(names) == 1:
        names = list(clf.leads)  # a single-lead file is the model's lead
    hop = round((hop_s if hop_s else spec.dataset_hop / spec.fs) * spec.fs)
    X, starts = preprocess_signal(x, rate, spec, hop)
    probs = clf.predict_proba(X, names)
    labels = [clf.label_names[i] for i in probs.argmax(1)]
    return {
        "input": str(path),
        "input_rate": rate,
        "label_names": list(clf.label_names),
        "windows": [
            {"start_s": float(s / spec.fs), "label": lab, "probabilities": {n: float(p) for n, p in zip(clf.label_names, row)}}
            for s, lab, row in zip(starts, labels, probs)
        ],
    }
