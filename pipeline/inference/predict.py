"""Predict labels for a signal file of any length and rate, windowed like the device does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.inference.classifiers import Classifier, Single, lead_positions
from pipeline.signal.preprocess import preprocess_signal, resample
from pipeline.signal.quality import QualityStatus, Uncertainty, WindowQuality, assess_stream, counts_from_mv
from pipeline.data.records import RecordError, read_record
from pipeline.signal.spec import PreprocessSpec

UNCERTAIN = "UNCERTAIN"
UNITS = ("mv", "counts")


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


def uncertainty_of(clf: Classifier) -> Uncertainty:
    """The classifier's confidence threshold and quality rule; a two-stage pair carries none (never uncertain)."""
    return clf.ckpt.uncertainty if isinstance(clf, Single) else Uncertainty()


def signal_quality(
    x: np.ndarray, rate: float, starts: np.ndarray, spec: PreprocessSpec, unc: Uncertainty, units: str = "mv", adc_bits: int = 12
) -> list[WindowQuality] | None:
    """Quality of the windows at `starts` (spec rate) of one lead `x`, as the device would judge them.

    `units="mv"`: x is in mV at the electrodes and goes through the AD8232 board model first;
    `"counts"`: x holds raw ADC counts of an `adc_bits` ADC. None when `unc` carries no quality rule.
    """
    if unc.quality is None:
        return None
    if units not in UNITS:
        raise InputError(f"units must be one of {UNITS}, not {units!r}")
    y = resample(np.asarray(x, dtype=np.float64), rate, spec.fs)
    if units == "mv":
        counts, adc_max = counts_from_mv(y, spec.fs, adc_bits)
    else:
        adc_max = 2**adc_bits - 1
        if x.size and (np.min(x) < 0 or np.max(x) > adc_max):
            raise InputError(f"ADC counts outside 0..{adc_max} (give --adc-bits, or --input-units mv for a signal in mV)")
        counts = np.clip(np.rint(y), 0, adc_max).astype(np.int64)
    return assess_stream(counts, None, starts, spec, adc_max, unc.quality)


def window_answers(probs: np.ndarray, label_names: tuple[str, ...] | list[str], unc: Uncertainty, quality: list[WindowQuality] | None) -> list[dict]:
    """Per window: status OK/UNCERTAIN, the reason, label (UNCERTAIN or the top class) and confidence."""
    low = unc.low_confidence(probs)
    out = []
    for i, row in enumerate(probs):
        q = quality[i] if quality is not None else None
        reason = q.status if q is not None and not q.ok else QualityStatus.LOW_CONFIDENCE if low[i] else None
        top = label_names[int(row.argmax())]
        out.append({
            "status": UNCERTAIN if reason is not None else "OK",
            "reason": reason.reason if reason is not None else None,
            "label": UNCERTAIN if reason is not None else top,
            "top_label": top,
            "confidence": float(row.max()),
            "quality": q.to_dict() if q is not None else None,
        })
    return out


def uncertain_summary(answers: list[dict], unc: Uncertainty) -> dict:
    """Share of uncertain windows, counts by reason, and the rule that made them."""
    reasons: dict[str, int] = {}
    for a in answers:
        if a["reason"]:
            reasons[a["reason"]] = reasons.get(a["reason"], 0) + 1
    n = len(answers)
    return {
        "uncertain_share": (sum(reasons.values()) / n) if n else 0.0,
        "uncertain_by_reason": reasons,
        "confidence_threshold": unc.confidence_threshold,
        "quality_rule": None if unc.quality is None else unc.quality.to_dict(),
        "quality_applied": unc.quality is not None,
    }


def predict_file(
    clf: Classifier,
    path: Path,
    input_rate: float | None,
    lead: str | None = None,
    hop_s: float | None = None,
    units: str = "mv",
    adc_bits: int = 12,
) -> dict:
    """Windows of the file with a label and probabilities each; UNCERTAIN (with the reason) where the
    signal quality fails or the confidence is below the classifier's threshold."""
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
    unc = uncertainty_of(clf)
    first = lead_positions(names, clf.leads[:1], str(path))[0]  # the device judges its one lead
    quality = signal_quality(x[first], rate, starts, spec, unc, units, adc_bits)
    answers = window_answers(probs, clf.label_names, unc, quality)
    return {
        "input": str(path),
        "input_rate": rate,
        "input_units": units,
        "label_names": list(clf.label_names),
        **uncertain_summary(answers, unc),
        "windows": [
            {"start_s": float(s / spec.fs), **a, "probabilities": {n: float(p) for n, p in zip(clf.label_names, row)}}
            for s, a, row in zip(starts, answers, probs)
        ],
    }
