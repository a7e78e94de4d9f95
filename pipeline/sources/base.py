"""What every database source shares: the record task, build options and the per-record result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.signal.preprocess import cut_windows, filtered_at_rate, window_starts
from pipeline.data.records import Record
from pipeline.signal.spec import PreprocessSpec


@dataclass(frozen=True)
class Task:
    """One record to turn into windows. `label` is known up front for record-level labels."""

    db: str
    path: Path
    record_id: str
    patient: str
    label: str | None = None
    split: str = ""


@dataclass(frozen=True)
class Options:
    """Everything a worker needs; picklable so records can run in other processes."""

    spec: PreprocessSpec
    hop: int
    leads: tuple[str, ...] | str
    fallback: bool = False
    max_windows_per_record: int = 0
    arrhythmia_min_count: int = 1
    arrhythmia_min_ratio: float = 0.0
    seed: int = 13
    normal_label: str = "NORMAL"
    mitdb_normal: bool = False  # also NORMAL windows of sinus rhythm with normal beats only (external checks)
    label_mode: str = "loose"  # record-level rules applied while reading (the challenge layout's SNOMED codes)
    ectopic: bool = False  # premature-beat codes count as a rhythm other than SR (--ectopic-as-arrhythmia)


@dataclass
class Result:
    """A record's windows (or the reason it gave none)."""

    task: Task
    X: np.ndarray
    labels: list[str]
    starts: np.ndarray
    leads: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    excluded: str | None = None  # left out by a label rule, not an error
    info: dict[str, Any] = field(default_factory=dict)  # per-record facts for dataset.json (Plan.record_info's keys)


@dataclass
class Plan:
    """The tasks of one database plus what was skipped while planning."""

    db: str
    tasks: list[Task]
    missing: list[str] = field(default_factory=list)  # listed in metadata, absent on disk
    excluded: int = 0  # left out by the label rule before reading
    extra_files: dict[str, str] = field(default_factory=dict)  # metadata files and their sha256
    # per-record facts kept in dataset.json under the source: {key: {record id: value}} (e.g. CinC 2017's own label)
    record_info: dict[str, dict[str, Any]] = field(default_factory=dict)


def windows_of(rec: Record, opts: Options) -> tuple[np.ndarray, np.ndarray]:
    """Filtered signal at the spec's rate and the start of every whole window."""
    y = filtered_at_rate(rec.signal, rec.fs, opts.spec)
    return y, window_starts(y.shape[-1], opts.spec.window, opts.hop)


def cap_windows(starts: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """At most `limit` starts, chosen by a shuffle seeded per record as the seed project does."""
    if not limit or len(starts) <= limit:
        return starts
    order = np.arange(len(starts))
    np.random.default_rng(seed).shuffle(order)
    return np.sort(starts[order[:limit]])


def record_windows(task: Task, rec: Record, filtered: np.ndarray, starts: np.ndarray, label: str, opts: Options) -> Result:
    """Result holding the z-scored windows at `starts`, all with `label`."""
    X = cut_windows(filtered, starts, opts.spec)
    return Result(task=task, X=X, labels=[label] * len(starts), starts=starts, leads=rec.leads, files=rec.files)


def empty_result(task: Task, *, error: str | None = None, excluded: str | None = None) -> Result:
    """A record that gives no windows: unreadable (`error`) or left out by a label rule (`excluded`)."""
    return Result(task, np.zeros((0, 0, 0), np.float32), [], np.zeros(0, np.int64), error=error, excluded=excluded)


def list_records(root: Path) -> list[str]:
    """Record names from the database's RECORDS file, else every header below `root`."""
    listing = root / "RECORDS"
    if listing.exists():
        return [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.hea"))


def present(root: Path, names: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split record names into those whose header exists and those missing."""
    have, missing = [], []
    for n in names:
        (have if (root / f"{n}.hea").exists() else missing).append(n)
    return have, missing
