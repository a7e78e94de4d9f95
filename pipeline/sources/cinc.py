"""PhysioNet/CinC Challenge 2020/2021 layout: `.hea` + `.mat` at any rate, SNOMED CT codes in `# Dx:`.

Labels come from the codes at read time (`label_rules.snomed_label`, PTB-XL's rule). The layout has no
patient ids: a record is its own patient (`cinc:<record>`, split later by the build's stratified split),
except the challenge's PTB-XL copies (HRxxxxx = ecg_id xxxxx), which keep their PTB-XL identity
(`ptbxl:<ecg_id>`, patient and `strat_fold` split from ptbxl_database.csv).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

from pipeline.data.dataset import DatasetError
from pipeline.data.label_rules import UnknownSnomedCode, parse_dx, snomed_label
from pipeline.data.records import RecordError, read_record
from pipeline.sources.base import Options, Plan, Result, Task, empty_result, list_records, present, record_windows, windows_of

NAME = "cinc"
DEFAULT_LEADS = ("II",)
PTBXL_RECORD = re.compile(r"HR(\d{5})")

# ecg_id -> (patient, split) from PTB-XL metadata
PtbxlIdentities = Mapping[int, tuple[str, str]]


def identity(root: Path, record: str, ptbxl_ids: PtbxlIdentities | None) -> tuple[str, str, str]:
    """(record id, patient, split) of one record; an HR record needs its ecg_id in `ptbxl_ids`."""
    stem = Path(record).name
    match = PTBXL_RECORD.fullmatch(stem)
    if not match:
        return f"{NAME}:{stem}", f"{NAME}:{stem}", ""
    ecg = int(match.group(1))
    if ptbxl_ids is None:
        raise DatasetError(
            f"record {root / record}: a PTB-XL record (ecg_id {ecg}); give --ptbxl-dir (a PTB-XL root with ptbxl_database.csv) "
            "for its patient and strat_fold"
        )
    if ecg not in ptbxl_ids:
        raise DatasetError(f"record {root / record}: ecg_id {ecg} is not in the PTB-XL metadata given (--ptbxl-dir)")
    patient, split = ptbxl_ids[ecg]
    return f"ptbxl:{ecg}", patient, split


def plan(root: Path, ptbxl_ids: PtbxlIdentities | None = None) -> Plan:
    """Every record under `root` (its RECORDS file, else every header below it); labels come at read time."""
    have, missing = present(root, list_records(root))
    tasks = []
    for r in have:
        record_id, patient, split = identity(root, r, ptbxl_ids)
        tasks.append(Task(NAME, root / r, record_id, patient, split=split))
    return Plan(NAME, tasks, missing)


def header_comments(path: Path) -> list[str]:
    """The `#` comment lines of a record's header, without the `#`."""
    header = path.parent / f"{path.name}.hea"
    try:
        text = header.read_text(errors="replace")
    except FileNotFoundError:
        raise RecordError(path, f"header file {header.name} is missing") from None
    return [line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")]


def record_label(path: Path, mode: str, ectopic: bool = False) -> str | None:
    """The label the record's `# Dx:` codes give under `mode`; RecordError without codes or with an unknown one."""
    codes = parse_dx(header_comments(path))
    if codes is None:
        raise RecordError(path, "the header has no '# Dx:' line (SNOMED CT codes)")
    if not codes:
        raise RecordError(path, "the header's '# Dx:' line holds no code")
    try:
        return snomed_label(codes, mode, ectopic)  # type: ignore[arg-type]
    except UnknownSnomedCode as exc:
        raise RecordError(path, str(exc)) from None


def process(task: Task, opts: Options) -> Result:
    label = record_label(task.path, opts.label_mode, opts.ectopic)
    if label is None:
        return empty_result(task, excluded=f"SNOMED CT codes give no label under label mode {opts.label_mode}")
    rec = read_record(task.path, opts.leads, fallback=opts.fallback)
    filtered, starts = windows_of(rec, opts)
    return record_windows(task, rec, filtered, starts, label, opts)
