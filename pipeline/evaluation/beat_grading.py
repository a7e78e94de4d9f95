"""Grading the device's beat detector as the field grades QRS detectors: MIT-BIH, beat by beat.

Each record's first channel as the device would see it (resampled to 250 Hz, through the AD8232
board model into ADC counts), its whole length, against the reference beat annotations (beat
symbols only, `label_rules.is_beat`). A detection within `TOLERANCE_S` of a reference beat matches
it (one to one, `wfdb.processing.compare_annotations`). As in ANSI/AAMI EC57, detections inside
ventricular flutter or fibrillation episodes (between the '[' and ']' marks, record 207) are left
out, since those stretches hold no reference beats.
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import wfdb
from tqdm import tqdm
from wfdb import processing

from pipeline.data.label_rules import is_beat, rescale_positions
from pipeline.data.records import read_record
from pipeline.signal.beats import DEFAULT_BEATS, BeatConfig, detect_beats
from pipeline.signal.preprocess import resample
from pipeline.signal.quality import counts_from_mv
from pipeline.util.figures import save_figure

TOLERANCE_S = 0.150
ANCHORS = {  # published gross figures on all of MIT-BIH (sensitivity, positive predictivity)
    "Pan and Tompkins 1985": {"beats_detected": 0.993},
    "Hamilton and Tompkins 1986": {"sensitivity": 0.9969, "positive_predictivity": 0.9977},
    "Elgendi 2013": {"sensitivity": 0.9978, "positive_predictivity": 0.9987},
}


class BeatGradingError(ValueError):
    """A record or annotation file that cannot be graded (the message names it)."""


@dataclass
class DeviceStream:
    record: str
    counts: np.ndarray  # ADC counts at the device rate
    reference: np.ndarray  # reference beat samples at the device rate
    excluded: list[tuple[int, int]]  # [start, end] sample spans left out (VF/flutter)


def read_mitdb_stream(path: Path, cfg: BeatConfig = DEFAULT_BEATS) -> DeviceStream:
    """The first channel of an MIT-BIH record as ADC counts at the device rate, with its beats."""
    path = Path(path)
    header = wfdb.rdheader(str(path))
    rec = read_record(path, [header.sig_name[0]], hash_files=False)
    try:
        ann = wfdb.rdann(str(path), "atr")
    except FileNotFoundError as exc:
        raise BeatGradingError(f"{path.name}: no reference annotations ({path.name}.atr is missing)") from exc
    counts, _ = counts_from_mv(resample(rec.signal[0], rec.fs, cfg.fs), cfg.fs)
    samples = np.asarray(ann.sample)
    beats = rescale_positions(samples[[is_beat(s) for s in ann.symbol]], rec.fs, cfg.fs)
    excluded, start = [], None
    for s, sym in zip(rescale_positions(samples, rec.fs, cfg.fs), ann.symbol):
        if sym == "[":
            start = int(s)
        elif sym == "]" and start is not None:
            excluded.append((start, int(s)))
            start = None
    if start is not None:
        excluded.append((start, counts.size - 1))
    return DeviceStream(path.name, counts, beats, excluded)


def grade_stream(stream: DeviceStream, cfg: BeatConfig = DEFAULT_BEATS) -> dict[str, Any]:
    """Beat-by-beat counts for one stream (its detections come from `detect_beats`)."""
    det = detect_beats(stream.counts, None, cfg)
    for a, b in stream.excluded:
        det = det[(det < a) | (det > b)]
    tol = int(round(TOLERANCE_S * cfg.fs))
    if stream.reference.size == 0 or det.size == 0:
        tp = 0
    else:
        tp = int(processing.compare_annotations(stream.reference, det, tol).tp)
    fn, fp = int(stream.reference.size - tp), int(det.size - tp)
    return {
        "record": stream.record,
        "beats": int(stream.reference.size),
        "detected": int(det.size),
        "tp": tp,
        "fn": fn,
        "fp": fp,
        "sensitivity": tp / (tp + fn) if tp + fn else None,
        "positive_predictivity": tp / (tp + fp) if tp + fp else None,
        "excluded_seconds": round(sum(b - a for a, b in stream.excluded) / cfg.fs, 1),
    }


def _grade_one(args: tuple[Path, BeatConfig]) -> dict[str, Any]:
    path, cfg = args
    return grade_stream(read_mitdb_stream(path, cfg), cfg)


def mitdb_records(mitdb_dir: Path) -> list[str]:
    """The record names of an MIT-BIH copy, from its RECORDS file (else every .hea)."""
    mitdb_dir = Path(mitdb_dir)
    listing = mitdb_dir / "RECORDS"
    if listing.exists():
        names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    else:
        names = sorted(p.stem for p in mitdb_dir.glob("*.hea"))
    if not names:
        raise BeatGradingError(f"{mitdb_dir}: no MIT-BIH records (no RECORDS file and no .hea files)")
    return names


def grade_mitdb(mitdb_dir: Path, records: list[str] | None = None, cfg: BeatConfig = DEFAULT_BEATS,
                jobs: int = 1, progress: bool = True) -> dict[str, Any]:
    """Gross and per-record sensitivity and positive predictivity over MIT-BIH records."""
    mitdb_dir = Path(mitdb_dir)
    names = records or mitdb_records(mitdb_dir)
    for name in names:
        if not (mitdb_dir / f"{name}.hea").exists():
            raise BeatGradingError(f"{mitdb_dir / name}: record not found ({name}.hea is missing)")
    t0 = time.perf_counter()
    work = [(mitdb_dir / n, cfg) for n in names]
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            rows = list(tqdm(pool.map(_grade_one, work), total=len(work), desc="beats", unit="record", disable=not progress))
    else:
        rows = [_grade_one(w) for w in tqdm(work, desc="beats", unit="record", disable=not progress)]
    tp, fn, fp = (sum(r[k] for r in rows) for k in ("tp", "fn", "fp"))
    return {
        "records": len(rows),
        "beats": sum(r["beats"] for r in rows),
        "tp": tp,
        "fn": fn,
        "fp": fp,
        "sensitivity": tp / (tp + fn) if tp + fn else None,
        "positive_predictivity": tp / (tp + fp) if tp + fp else None,
        "per_record": rows,
        "worst": [r["record"] for r in sorted(rows, key=lambda r: -(r["fn"] + r["fp"]))[:3]],
        "tolerance_ms": round(TOLERANCE_S * 1000),
        "rule": "first channel, resampled to the device rate, AD8232 board model to ADC counts; beat symbols only; "
                "detections in VF/flutter episodes ('[' to ']') left out (EC57)",
        "config": cfg.to_dict(),
        "anchors": ANCHORS,
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }


def plot_worst(report: dict[str, Any], mitdb_dir: Path, path: Path, cfg: BeatConfig = DEFAULT_BEATS, seconds: float = 8.0) -> Path:
    """Errors per record (bars), then a strip around the first missed or extra beat of the worst records."""
    from matplotlib.figure import Figure

    worst = report["worst"]
    rows = report["per_record"]
    fig = Figure(figsize=(11, 2.6 * (1 + len(worst))), layout="constrained")
    axes = fig.subplots(1 + len(worst), 1)
    axes = np.atleast_1d(axes)
    names = [r["record"] for r in rows]
    x = np.arange(len(rows))
    axes[0].bar(x, [r["fn"] for r in rows], label="missed (FN)", color="tab:red")
    axes[0].bar(x, [r["fp"] for r in rows], bottom=[r["fn"] for r in rows], label="extra (FP)", color="tab:orange")
    axes[0].set_xticks(x, names, rotation=90, fontsize=7)
    axes[0].set_ylabel("beats")
    se, pp = report["sensitivity"], report["positive_predictivity"]
    axes[0].set_title(f"MIT-BIH, {report['records']} records: Se {100 * se:.2f}%, +P {100 * pp:.2f}% (150 ms match)")
    axes[0].legend(fontsize=8)
    tol = int(round(TOLERANCE_S * cfg.fs))
    for ax, name in zip(axes[1:], worst):
        s = read_mitdb_stream(Path(mitdb_dir) / name, cfg)
        det = detect_beats(s.counts, None, cfg)
        missed = [r for r in s.reference if det.size == 0 or np.min(np.abs(det - r)) > tol]
        extra = [d for d in det if s.reference.size == 0 or np.min(np.abs(s.reference - d)) > tol]
        focus = min(missed[:1] + extra[:1], default=0)
        a = max(0, int(focus - seconds * cfg.fs / 2))
        b = min(s.counts.size, a + int(seconds * cfg.fs))
        t = np.arange(a, b) / cfg.fs
        ax.plot(t, s.counts[a:b], lw=0.7, color="k")
        for pos, style, lab in ((s.reference, "tab:green", "reference"), (det, "tab:blue", "detected")):
            sel = pos[(pos >= a) & (pos < b)]
            ax.plot(sel / cfg.fs, s.counts[sel], "v" if lab == "reference" else "^", color=style, label=lab, ms=6)
        row = next(r for r in rows if r["record"] == name)
        ax.set_title(f"record {name}: {row['fn']} missed, {row['fp']} extra of {row['beats']} beats", fontsize=9)
        ax.set_xlabel("s")
        ax.set_ylabel("ADC counts")
        ax.legend(fontsize=7, loc="upper right")
    return save_figure(fig, Path(path))
