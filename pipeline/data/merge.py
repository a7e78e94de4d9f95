"""Merge data sets built with the same preprocessing into one, e.g. PTB-XL lead I + lead II + MIT-BIH.

With `lead_as`, every input must be single-lead and its windows become that lead of the merged set:
a single-lead model then trains on windows of several leads or devices (the AD8232 worn as lead I, a
Holter's modified lead II). Record ids get `@<input lead>` so the same record from two lead sets stays
two records; patients keep their ids, and a patient in two different splits is refused (the same
PTB-XL patient always falls in the same strat_fold split).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.data.dataset import Dataset, DatasetError, DatasetWriter, count_table, load_dataset, set_counts

RECORD_KEYED = ("record_labels", "record_polarity", "record_leads")  # per-record source facts that follow their records


def _check_inputs(sets: list[Dataset], lead_as: str | None) -> list[str]:
    first = sets[0]
    for ds in sets[1:]:
        if ds.spec != first.spec:
            raise DatasetError(f"{ds.path}: preprocessed with {ds.spec.to_dict()}, {first.path} with {first.spec.to_dict()}")
        if ds.label_names != first.label_names:
            raise DatasetError(f"{ds.path}: labels {list(ds.label_names)}, {first.path} has {list(first.label_names)}")
    if lead_as is None:
        for ds in sets[1:]:
            if ds.leads != first.leads:
                raise DatasetError(f"{ds.path}: leads {ds.leads}, {first.path} has {first.leads} (merge single-lead sets with --lead-as)")
        return first.leads
    for ds in sets:
        if len(ds.leads) != 1:
            raise DatasetError(f"{ds.path}: {len(ds.leads)} leads {ds.leads}; --lead-as takes single-lead data sets")
    return [lead_as]


def merge_datasets(inputs: Sequence[Path], out: Path, lead_as: str | None = None) -> Path:
    """Write the windows of every input (in order) as one data set at `out` (atomically)."""
    if len(inputs) < 2:
        raise DatasetError("merge needs at least two data sets")
    sets = [load_dataset(p) for p in inputs]
    leads = _check_inputs(sets, lead_as)
    sources: dict[str, Any] = {}
    merged_from = []
    with DatasetWriter(out, sets[0].spec) as w:
        for ds in sets:
            suffix = f"@{ds.leads[0]}" if lead_as is not None else ""
            _, first, inverse = np.unique(ds.record, return_index=True, return_inverse=True)
            for r in np.argsort(first, kind="stable"):  # records in their order in the input
                rows = np.flatnonzero(inverse == r)
                k = rows[0]
                w.add(np.asarray(ds.X[rows]), ds.y[rows], str(ds.patient[k]), f"{ds.record[k]}{suffix}", ds.start[rows], str(ds.split[k]),
                      ds.targets[rows])  # fmt: skip
            for name, src in ds.meta.get("sources", {}).items():
                entry = sources.setdefault(f"{name}{suffix}", {})
                for key in ("record_paths", *RECORD_KEYED):
                    if key in src:
                        entry[key] = {f"{rid}{suffix}": v for rid, v in src[key].items()}
            merged_from.append({"path": str(ds.path), "dataset_sha256": ds.meta["dataset_sha256"], "leads": ds.leads, "n_windows": len(ds)})
        cols = w.columns()
        meta = {
            "label_set": sets[0].meta.get("label_set"),
            "label_names": list(sets[0].label_names),
            "leads": leads,
            "merged_from": merged_from,
            "sources": sources,
            "counts": count_table(cols["y"], cols["patient"], cols["split"], sets[0].label_names),
            "label_sets": set_counts(cols["y"], cols["targets"], cols["split"], sets[0].label_names),
        }
        return w.finish(cols, np.arange(w.n), meta)
