"""PhysioNet/CinC Challenge 2017: short single-lead recordings of a consumer handheld device (AliveCor,
roughly lead I, 300 Hz). Labels from the challenge's reference file (label_rules.cinc2017_label); no
patient ids, so each record is its own subject; a deterministic split by record, stratified by class."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.data.dataset import DatasetError
from pipeline.data.label_rules import CINC2017_CLASSES, cinc2017_label
from pipeline.data.records import read_record, sha256_file
from pipeline.sources.base import Options, Plan, Result, Task, cap_windows, empty_result, list_records, present, record_windows, windows_of

NAME = "cinc2017"
DEFAULT_LEADS = ("ECG",)
EXPECTED_FS = (300.0,)
REFERENCE_FILES = ("REFERENCE-v3.csv", "REFERENCE.csv")  # the final labels first
SPLIT_SHARES = (0.70, 0.15)  # train, val; the rest is test
SHORT = "shorter than one window (predict refuses such a recording too)"


def read_reference(root: Path) -> tuple[Path, dict[str, str]]:
    """The reference file and its {record: class}; a malformed line, unknown class or repeated record names itself."""
    path = next((root / f for f in REFERENCE_FILES if (root / f).exists()), None)
    if path is None:
        raise FileNotFoundError(f"{root}: no CinC 2017 label file ({' or '.join(REFERENCE_FILES)})")
    labels: dict[str, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 2 or not parts[0]:
            raise DatasetError(f"{path}, line {n}: expected 'record,class', got {line!r}")
        record, code = parts
        if code not in CINC2017_CLASSES:
            raise DatasetError(f"{path}, line {n}: record {record}: unknown class {code!r} (expected one of {list(CINC2017_CLASSES)})")
        if record in labels:
            raise DatasetError(f"{path}, line {n}: record {record} is labelled twice")
        labels[record] = code
    return path, labels


def split_by_class(labels: dict[str, str], seed: int) -> dict[str, str]:
    """train / val / test per record: each class's records (sorted, then shuffled with `seed`) cut 70/15/15."""
    out: dict[str, str] = {}
    for k, code in enumerate(CINC2017_CLASSES):
        members = sorted(r for r, c in labels.items() if c == code)
        order = np.random.default_rng([seed, k]).permutation(len(members))
        n_train, n_val = round(len(members) * SPLIT_SHARES[0]), round(len(members) * SPLIT_SHARES[1])
        for rank, i in enumerate(order):
            out[members[i]] = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
    return out


def plan(root: Path, seed: int = 13, normal_set: str = "NORMAL", other: bool = True) -> Plan:
    """Every labelled record; one on disk without a label is an error, one labelled but absent is `missing`."""
    ref_path, labels = read_reference(root)
    on_disk = set(list_records(root))
    unlabelled = sorted(on_disk - set(labels))
    if unlabelled:
        raise DatasetError(f"{root}: record {unlabelled[0]} has no class in {ref_path.name} ({len(unlabelled)} such record(s))")
    have, missing = present(root, sorted(labels))
    split = split_by_class(labels, seed)
    result = Plan(NAME, [], missing, extra_files={ref_path.name: sha256_file(ref_path)})
    result.record_info["record_labels"] = {f"{NAME}:{r}": labels[r] for r in have}
    for r in have:
        label = cinc2017_label(labels[r], normal_set, other)
        if label is None:
            result.excluded += 1
            continue
        rid = f"{NAME}:{r}"
        result.tasks.append(Task(NAME, root / r, rid, rid, label, split[r]))
    return result


def polarity(filtered: np.ndarray) -> str:
    """"inverted" when the filtered lead's largest deflections point down (negative skewness), else "upright".

    The QRS complex dominates the skew of a band-passed ECG; on a lead-I-like recording it points up.
    """
    x = filtered - filtered.mean()
    sd = x.std()
    return "inverted" if sd > 0 and float(np.mean(x**3)) / sd**3 < 0 else "upright"


def process(task: Task, opts: Options) -> Result:
    rec = read_record(task.path, opts.leads, fallback=True, expected_fs=EXPECTED_FS)
    filtered, starts = windows_of(rec, opts)
    if len(starts) == 0:
        return empty_result(task, excluded=SHORT)
    starts = cap_windows(starts, opts.max_windows_per_record, opts.seed)
    res = record_windows(task, rec, filtered, starts, task.label or "", opts)
    res.info["record_polarity"] = polarity(filtered[0])
    return res
