"""The embedded AD8232-like synthetic set, read back as WFDB like any other database."""

from __future__ import annotations

from pathlib import Path

from pipeline.data.label_rules import header_field
from pipeline.data.records import RecordError, read_record
from pipeline.sources.base import Options, Plan, Result, Task, list_records, present, record_windows, windows_of

NAME = "synthetic"
DEFAULT_LEADS = ("II",)
EXPECTED_FS = (250.0,)


def plan(root: Path) -> Plan:
    have, missing = present(root, list_records(root))
    return Plan(NAME, [Task(NAME, root / r, f"{NAME}:{r}", "") for r in have], missing)


def process(task: Task, opts: Options) -> Result:
    rec = read_record(task.path, opts.leads, fallback=opts.fallback, expected_fs=EXPECTED_FS)
    label, patient = header_field(rec.comments, "label"), header_field(rec.comments, "patient")
    if not label or not patient:
        raise RecordError(task.path, "header lacks the 'label:' and 'patient:' comments of a synthetic record")
    filtered, starts = windows_of(rec, opts)
    task = Task(task.db, task.path, task.record_id, f"{NAME}:{patient}", label)
    return record_windows(task, rec, filtered, starts, label, opts)
