"""MIT-BIH Arrhythmia: ARRHYTHMIA windows from beat annotations (NORMAL only with `mitdb_normal`, for external checks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.data.label_rules import arrhythmia_window_mask, sinus_normal_window_mask
from pipeline.data.records import read_annotation, read_annotation_aux, read_record, sha256_file
from pipeline.sources.base import Options, Plan, Result, Task, cap_windows, list_records, present, record_windows, windows_of

NAME = "mitdb"
DEFAULT_LEADS = ("MLII", "II", "V1", "V2", "I")
EXPECTED_FS = (360.0,)
# Records 201 and 202 come from the same subject (MIT-BIH directory); they share a patient id.
SAME_SUBJECT = {"202": "201"}


def patient_of(record: str) -> str:
    return f"{NAME}:{SAME_SUBJECT.get(record, record)}"


def plan(root: Path) -> Plan:
    have, missing = present(root, list_records(root))
    tasks = [Task(NAME, root / r, f"{NAME}:{r}", patient_of(r)) for r in have]
    return Plan(NAME, tasks, missing)


def process(task: Task, opts: Options) -> Result:
    rec = read_record(task.path, opts.leads, fallback=opts.fallback, expected_fs=EXPECTED_FS)
    samples, symbols, _ = read_annotation(task.path, "atr")
    rec.files[f"{task.path.name}.atr"] = sha256_file(task.path.parent / f"{task.path.name}.atr")
    filtered, starts = windows_of(rec, opts)
    mask = arrhythmia_window_mask(
        samples, symbols, rec.fs, opts.spec.fs, starts, opts.spec.window, opts.arrhythmia_min_count, opts.arrhythmia_min_ratio
    )
    chosen = cap_windows(starts[mask], opts.max_windows_per_record, opts.seed)
    result = record_windows(task, rec, filtered, chosen, "ARRHYTHMIA", opts)
    if not opts.mitdb_normal:
        return result
    aux = read_annotation_aux(task.path, "atr")
    normal = sinus_normal_window_mask(samples, symbols, aux, rec.fs, opts.spec.fs, starts, opts.spec.window)
    more = record_windows(task, rec, filtered, cap_windows(starts[normal], opts.max_windows_per_record, opts.seed), opts.normal_label, opts)
    if len(more.starts) == 0:
        return result
    if len(result.starts) == 0:
        return more
    order = np.argsort(np.concatenate([result.starts, more.starts]), kind="stable")
    result.X = np.concatenate([result.X, more.X])[order]
    result.labels = [(result.labels + more.labels)[i] for i in order]
    result.starts = np.concatenate([result.starts, more.starts])[order]
    return result
