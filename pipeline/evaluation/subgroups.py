"""Recall per finding inside a label: which MIs (by territory) and which arrhythmias a model catches.

Findings are read again from each window's source record (the data set keeps every record's path).
PTB-XL, from the record's `scp_codes`: an MI window gets the diagnostic subclasses of its MI codes
(IMI inferior, AMI anterior, LMI lateral, PMI posterior; several joined by '+'), an ARRHYTHMIA window
its rhythm codes other than SR, else its premature-beat codes (label_rules.ptbxl_finding). MIT-BIH,
from the beat annotations: an ARRHYTHMIA window gets the rhythms other than (N in force in it, else
its non-normal beats by type and count (label_rules.mitdb_window_finding). NORMAL windows and other
databases' windows get none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.data.dataset import Dataset, DatasetError
from pipeline.data.label_rules import PtbxlStatements, mitdb_window_finding, parse_scp_codes, ptbxl_finding
from pipeline.data.records import RecordError, read_annotation, read_annotation_aux
from pipeline.util.figures import save_figure
from pipeline.sources import mitdb, ptbxl
from pipeline.sources.ptbxl import DATABASE_CSV, STATEMENTS_CSV, read_metadata

SUBGROUP_RULE = (
    "PTB-XL: MI windows by the diagnostic_subclass of their MI codes (IMI inferior, AMI anterior, LMI lateral, "
    "PMI posterior; '+' joins several), ARRHYTHMIA windows by their rhythm codes other than SR, else their "
    "premature-beat codes; MIT-BIH: "
    "ARRHYTHMIA windows by the rhythms other than (N in force, else their non-normal beats by type and count"
)
MAX_PLOTTED = 24
SUBGROUP_PLOT = "subgroups.png"


class _PtbxlDirectory:
    """One PTB-XL directory's statements and raw `scp_codes` cells by ecg_id (parsed when asked)."""

    def __init__(self, root: Path):
        self.root = root
        try:
            table = read_metadata(root)
            self.statements = PtbxlStatements.read(root / STATEMENTS_CSV)
        except (FileNotFoundError, ValueError) as exc:
            raise DatasetError(f"{root}: cannot read PTB-XL metadata for subgroups ({exc})") from None
        self.cells = dict(zip(table["ecg_id"].astype(int), table["scp_codes"]))

    def codes(self, ecg_id: int, record: str) -> dict[str, float]:
        if ecg_id not in self.cells:
            raise DatasetError(f"{self.root / DATABASE_CSV}: no row for ecg_id {ecg_id} (record {record})")
        try:
            return parse_scp_codes(self.cells[ecg_id])
        except ValueError as exc:
            raise DatasetError(f"{self.root / DATABASE_CSV}: ecg_id {ecg_id}: {exc}") from None


class _MitdbRecord:
    """One MIT-BIH record's beat and rhythm annotations."""

    def __init__(self, path: Path, record: str):
        try:
            self.samples, self.symbols, self.fs = read_annotation(path, "atr")
            self.aux = read_annotation_aux(path, "atr")
        except RecordError as exc:
            raise DatasetError(f"{exc} (record {record})") from None
        if self.fs <= 0:
            raise DatasetError(f"{path}.atr: no sampling rate in the annotation file (record {record})")

    def finding(self, start: int, fs_out: float, window: int) -> str:
        return mitdb_window_finding(self.samples, self.symbols, self.aux, self.fs, fs_out, start, window)


def window_findings(ds: Dataset, idx: np.ndarray) -> list[str | None]:
    """The finding of each window `idx` of `ds` (None where there is none); merged sets included."""
    paths: dict[str, dict[str, str]] = {}
    for name, src in ds.meta.get("sources", {}).items():
        db = name.split("@")[0]
        if db in (ptbxl.NAME, mitdb.NAME):
            paths.setdefault(db, {}).update(src.get("record_paths", {}))
    if not paths:
        raise DatasetError(f"{ds.path}: holds no PTB-XL or MIT-BIH records (findings come from their metadata and annotations)")
    ptbxl_dirs: dict[Path, _PtbxlDirectory] = {}
    mitdb_records: dict[str, _MitdbRecord] = {}
    out: list[str | None] = []
    for i in idx:
        record, label = str(ds.record[i]), ds.label_names[int(ds.y[i])]
        db = record.split(":", 1)[0]
        path = paths.get(db, {}).get(record)
        if path is None or label not in ("MI", "ARRHYTHMIA"):
            out.append(None)
        elif db == ptbxl.NAME:
            root = Path(path).parents[2]  # <root>/records100/00000/00001_lr
            if root not in ptbxl_dirs:
                ptbxl_dirs[root] = _PtbxlDirectory(root)
            ecg_id = int(record.split(":", 1)[1].split("@")[0])
            out.append(ptbxl_finding(label, ptbxl_dirs[root].codes(ecg_id, record), ptbxl_dirs[root].statements))
        elif label == "ARRHYTHMIA":
            if path not in mitdb_records:
                mitdb_records[path] = _MitdbRecord(Path(path), record)
            out.append(mitdb_records[path].finding(int(ds.start[i]), ds.spec.fs, ds.spec.window))
        else:
            out.append(None)
    return out


def subgroup_recall(y: np.ndarray, pred: np.ndarray, subgroups: Sequence[str | None], label_names: Sequence[str]) -> dict[str, Any]:
    """Per label, per subgroup (most windows first): windows, recall and what the model said instead."""
    if not len(y) == len(pred) == len(subgroups):
        raise ValueError(f"{len(y)} labels, {len(pred)} predictions, {len(subgroups)} subgroups")
    found = np.array(subgroups, dtype=object)
    by_label: dict[str, dict[str, Any]] = {}
    for c, name in enumerate(label_names):
        names = sorted({s for s in found[y == c] if s is not None})
        rows = {}
        for s in names:
            m = (found == s) & (y == c)
            said = np.bincount(pred[m], minlength=len(label_names))
            rows[s] = {"windows": int(m.sum()), "recall": float(said[c] / m.sum()), "predicted": {n: int(k) for n, k in zip(label_names, said)}}
        if rows:
            by_label[name] = dict(sorted(rows.items(), key=lambda kv: (-kv[1]["windows"], kv[0])))
    return {"rule": SUBGROUP_RULE, "by_label": by_label}


def plot_subgroups(report: dict[str, Any], path: Path, title: str = "", min_windows: int = 3) -> Path:
    """Horizontal bars: recall of each subgroup with at least `min_windows` windows (the MAX_PLOTTED largest)."""
    from matplotlib.figure import Figure

    rows = [(f"{label} {s} (n={r['windows']})", r["recall"], r["windows"]) for label, subs in report["by_label"].items()
            for s, r in subs.items() if r["windows"] >= min_windows]  # fmt: skip
    largest = set(sorted(range(len(rows)), key=lambda k: -rows[k][2])[:MAX_PLOTTED])
    rows = [r for k, r in enumerate(rows) if k in largest]
    fig = Figure(figsize=(7, 0.9 + 0.32 * max(1, len(rows))), dpi=120)
    ax = fig.add_subplot()
    ax.barh(range(len(rows)), [r[1] for r in rows], color="tab:blue")
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("recall")
    ax.set_title(title or f"recall by finding (the {MAX_PLOTTED} largest subgroups with >= {min_windows} windows)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
