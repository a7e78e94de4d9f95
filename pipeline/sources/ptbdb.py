"""PTB Diagnostic: MI or NORMAL from the header's "Reason for admission"; patient from the path."""

from __future__ import annotations

from pathlib import Path

from pipeline.data.label_rules import ptb_label
from pipeline.data.records import read_record
from pipeline.sources.base import Options, Plan, Result, Task, empty_result, list_records, present, record_windows, windows_of

NAME = "ptbdb"
DEFAULT_LEADS = ("ii",)
EXPECTED_FS = (1000.0,)


def plan(root: Path) -> Plan:
    have, missing = present(root, list_records(root))
    tasks = [Task(NAME, root / r, f"{NAME}:{r}", f"{NAME}:{Path(r).parts[0]}") for r in have]
    return Plan(NAME, tasks, missing)


def process(task: Task, opts: Options) -> Result:
    rec = read_record(task.path, opts.leads, fallback=opts.fallback, expected_fs=EXPECTED_FS)
    label = ptb_label(rec.comments)
    if label is None:
        return empty_result(task, excluded="reason for admission is neither MI nor healthy control")
    filtered, starts = windows_of(rec, opts)
    return record_windows(task, rec, filtered, starts, label, opts)
