"""Recordings of one's own (`ecg-host record --label L --patient P`, or any WFDB record with `label:` and
`patient:` header comments), at any rate: the whole record windowed, every window with the record's label."""

from __future__ import annotations

from pathlib import Path

from pipeline.data.label_rules import header_field
from pipeline.data.labels import LABELS
from pipeline.data.records import RecordError, read_record
from pipeline.sources.base import Options, Plan, Result, Task, empty_result, list_records, present, record_windows, windows_of

NAME = "recordings"
DEFAULT_LEADS = ("II",)


def plan(root: Path) -> Plan:
    have, missing = present(root, list_records(root))
    return Plan(NAME, [Task(NAME, root / r, f"{NAME}:{r}", "") for r in have], missing)


def process(task: Task, opts: Options) -> Result:
    rec = read_record(task.path, opts.leads, fallback=opts.fallback)
    label = header_field(rec.comments, "label")
    if not label:
        return empty_result(task, excluded="no 'label:' header comment (ecg-host record --label)")
    if label not in LABELS:
        raise RecordError(task.path, f"label {label!r} is none of {list(LABELS)}")
    patient = header_field(rec.comments, "patient") or task.path.name
    filtered, starts = windows_of(rec, opts)
    task = Task(task.db, task.path, task.record_id, f"{NAME}:{patient}", label)
    return record_windows(task, rec, filtered, starts, label, opts)
