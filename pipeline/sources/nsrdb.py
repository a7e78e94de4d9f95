"""MIT-BIH Normal Sinus Rhythm: every window NORMAL (SINUS in stage-1 sets)."""

from __future__ import annotations

from pathlib import Path

from pipeline.data.records import read_record
from pipeline.sources.base import Options, Plan, Result, Task, cap_windows, list_records, present, record_windows, windows_of

NAME = "nsrdb"
DEFAULT_LEADS = ("ECG1", "ECG2")
EXPECTED_FS = (128.0,)
DEFAULT_MAX_WINDOWS = 600


def plan(root: Path) -> Plan:
    have, missing = present(root, list_records(root))
    return Plan(NAME, [Task(NAME, root / r, f"{NAME}:{r}", f"{NAME}:{r}") for r in have], missing)


def process(task: Task, opts: Options) -> Result:
    rec = read_record(task.path, opts.leads, fallback=opts.fallback, expected_fs=EXPECTED_FS)
    filtered, starts = windows_of(rec, opts)
    chosen = cap_windows(starts, opts.max_windows_per_record, opts.seed)
    return record_windows(task, rec, filtered, chosen, opts.normal_label, opts)
