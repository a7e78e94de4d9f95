"""PTB-XL: record-level labels from `scp_codes`, patient ids and `strat_fold` splits."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from pipeline.data.dataset import DatasetError
from pipeline.data.label_rules import LABEL_MODES, PtbxlStatements, parse_scp_codes, ptbxl_label, stage1_label, stage2_label
from pipeline.data.records import read_record, sha256_file
from pipeline.data.splits import ptbxl_fold_split
from pipeline.sources.base import Options, Plan, Result, Task, record_windows, windows_of

NAME = "ptbxl"
DATABASE_CSV = "ptbxl_database.csv"
STATEMENTS_CSV = "scp_statements.csv"
TWO_STAGE_MODES = ("stage1", "stage2")
ALL_MODES = (*LABEL_MODES, *TWO_STAGE_MODES)
RATES = {100: "filename_lr", 500: "filename_hr"}
REQUIRED_COLUMNS = ("ecg_id", "patient_id", "scp_codes", "strat_fold")


def record_label(statements: PtbxlStatements, scp_codes: dict[str, float], mode: str, assume_sinus: bool = True, ectopic: bool = False) -> str | None:
    """The label `mode` gives a record (None: left out); `ectopic`: premature-beat statements count as a rhythm other than SR."""
    classes, rhythms = statements.classes_and_rhythms(scp_codes, ectopic)
    if mode == "stage1":
        return stage1_label(rhythms, assume_sinus)
    if mode == "stage2":
        return stage2_label(classes, rhythms)
    return ptbxl_label(classes, rhythms, mode)  # type: ignore[arg-type]


def read_metadata(root: Path) -> pd.DataFrame:
    path = root / DATABASE_CSV
    if not path.exists():
        raise FileNotFoundError(f"{path}: PTB-XL metadata is missing (expected the official PhysioNet layout under {root})")
    table = pd.read_csv(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise DatasetError(f"{path}: columns {missing} are missing")
    return table


def _row_fields(row: dict, file_column: str, path: Path) -> tuple[int, str, dict[str, float], int, str]:
    ecg_id = row.get("ecg_id")
    where = f"{path}: row ecg_id={ecg_id}"
    try:
        ecg = int(ecg_id)
        patient = f"{NAME}:{int(float(row['patient_id']))}"
        fold = int(row["strat_fold"])
        ptbxl_fold_split(fold)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{where}: malformed patient_id/strat_fold ({exc})") from None
    try:
        codes = parse_scp_codes(row["scp_codes"])
    except ValueError as exc:
        raise DatasetError(f"{where}: {exc}") from None
    filename = row.get(file_column)
    if not isinstance(filename, str) or not filename:
        raise DatasetError(f"{where}: {file_column} is empty")
    return ecg, patient, codes, fold, filename


def plan(root: Path, mode: str, rate: int = 100, assume_sinus: bool = True, max_records: int = 0, ectopic: bool = False) -> Plan:
    if mode not in ALL_MODES:
        raise ValueError(f"unknown PTB-XL label mode {mode!r}; expected one of {ALL_MODES}")
    if rate not in RATES:
        raise ValueError(f"PTB-XL comes at 100 or 500 Hz, not {rate}")
    statements = PtbxlStatements.read(root / STATEMENTS_CSV)
    table = read_metadata(root)
    if max_records:
        table = table.head(max_records)
    result = Plan(NAME, [], extra_files={f: sha256_file(root / f) for f in (DATABASE_CSV, STATEMENTS_CSV)})
    columns = [c for c in table.columns if c in (*REQUIRED_COLUMNS, RATES[rate])]
    root_text = str(root)
    for values in zip(*(table[c].tolist() for c in columns)):
        ecg, patient, codes, fold, filename = _row_fields(dict(zip(columns, values)), RATES[rate], root / DATABASE_CSV)
        label = record_label(statements, codes, mode, assume_sinus, ectopic)
        if label is None:
            result.excluded += 1
        elif not os.path.exists(f"{root_text}/{filename}.hea"):  # plain strings: ~20k rows
            result.missing.append(str(ecg))
        else:
            result.tasks.append(Task(NAME, root / filename, f"{NAME}:{ecg}", patient, label, ptbxl_fold_split(fold)))
    return result


def process(task: Task, opts: Options) -> Result:
    rec = read_record(task.path, opts.leads, fallback=opts.fallback, expected_fs=tuple(float(r) for r in RATES))
    filtered, starts = windows_of(rec, opts)
    return record_windows(task, rec, filtered, starts, task.label or "", opts)


