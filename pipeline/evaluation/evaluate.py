"""Evaluate a classifier on a data set split: metrics.json, a confusion-matrix PNG, and the uncertain answer.

The uncertain answer (pipeline.signal.quality) needs the raw signal for its quality rule: the split's source
records are read again (the data set keeps their paths) and judged as the AD8232 board would see them.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.dataset import Dataset, DatasetError, write_json_atomic
from pipeline.inference.classifiers import Classifier, select_leads
from pipeline.evaluation.metrics import (
    COVERAGE_FILE,
    COVERAGE_PLOT,
    check_labels_present,
    classification_report,
    coverage_curve,
    per_group_breakdown,
    plot_coverage,
    write_report,
)
from pipeline.inference.predict import signal_quality, uncertain_summary, uncertainty_of, window_answers
from pipeline.signal.quality import Uncertainty, WindowQuality
from pipeline.data.labels import NO_CLASS_Y
from pipeline.evaluation.record_level import RECORD_RULE, RECORD_UNCERTAIN_RULE, answers_by_class, by_record, class_rows, source_classes
from pipeline.data.records import RecordError, read_record
from pipeline.evaluation.subgroups import SUBGROUP_PLOT, plot_subgroups, subgroup_recall, window_findings


def dataset_quality(ds: Dataset, idx: np.ndarray, lead: str, unc: Uncertainty) -> list[WindowQuality]:
    """Quality of the windows `idx` of `ds`, re-reading each source record once (lead `lead`, in mV)."""
    out: dict[int, WindowQuality] = {}
    records = ds.record[idx]
    for rid in np.unique(records):
        rows = idx[records == rid]
        path = ds.record_path(str(rid))
        try:
            rec = read_record(path, [ds.record_lead(str(rid), lead)], hash_files=False)
        except RecordError as exc:
            raise RecordError(path, f"{exc.reason} (the quality rule re-reads the source records; --no-quality leaves it out)") from exc
        q = signal_quality(rec.signal[0], rec.fs, ds.start[rows], ds.spec, unc, "mv")
        out.update(zip(rows.tolist(), q or []))
    return [out[int(i)] for i in idx]


def evaluate(
    clf: Classifier,
    ds: Dataset,
    out_dir: Path,
    split: str = "test",
    n_boot: int = 1000,
    seed: int = 0,
    title: str = "",
    quality: bool = True,
    input_lead: str | None = None,
    partial_labels: bool = False,
    subgroups: bool = False,
    record_level: bool = False,
) -> dict[str, Any]:
    """Report on `split` of `ds` (labels must match the classifier's, every label present).

    Besides the metrics of every window, `report["uncertain"]` holds the uncertain share (by reason),
    the metrics of the answered windows and the coverage vs balanced-accuracy curve (also written to
    coverage.json / coverage.png). `quality=False` leaves the signal-quality rule out (said in the report).
    `partial_labels` accepts a split without some labels (external checks: recall of those present).
    `input_lead` feeds that lead of the data set to a single-lead model in place of the lead it declares.
    Windows of no class (noisy) are left out of the metrics; `report["no_class"]` says how many were uncertain.
    Where the data set keeps its source's own class per record (CinC 2017), `report["by_source_class"]`
    gives each class's answers; `record_level` adds metrics per record (pipeline.evaluation.record_level).
    `subgroups` adds recall per finding (PTB-XL: MI territory, rhythm; MIT-BIH: rhythm, beats; pipeline.evaluation.subgroups) and subgroups.png.
    """
    if tuple(ds.label_names) != tuple(clf.label_names):
        raise ValueError(f"{ds.path}: labels {ds.label_names} differ from the model's {clf.label_names}")
    if ds.spec != clf.spec:
        raise ValueError(f"{ds.path}: preprocessed with {ds.spec.to_dict()}, the model expects {clf.spec.to_dict()}")
    every = ds.indices(split)
    if len(every) == 0:
        raise ValueError(f"{ds.path}: the {split} split is empty")
    cls = class_rows(ds.y[every])  # windows of no class (noisy) are judged for uncertainty only
    if len(cls) == 0:
        raise ValueError(f"{ds.path}: the {split} split holds no window with a class")
    idx, y = every[cls], ds.y[every[cls]]
    if not partial_labels:
        check_labels_present(y, list(ds.label_names), split)
    X, leads = np.asarray(ds.X[every]), list(ds.leads)
    if input_lead is not None:
        if len(clf.leads) != 1:
            raise ValueError(f"--lead {input_lead}: the model takes {len(clf.leads)} leads {list(clf.leads)}, not one")
        X, leads = select_leads(X, leads, [input_lead], f"data set {ds.path}"), list(clf.leads)
    probs_every = clf.predict_proba(X, leads)
    probs = probs_every[cls]
    report = classification_report(y, probs, list(ds.label_names), groups=ds.patient[idx], n_boot=n_boot, seed=seed)
    report["data"] = {"path": str(ds.path), "sha256": ds.meta["dataset_sha256"], "split": split, "lead": input_lead or clf.leads[0] if len(clf.leads) == 1 else None}
    pred = probs.argmax(axis=1)
    report["per_patient"] = per_group_breakdown(y, pred, ds.patient[idx], list(ds.label_names))
    if subgroups:
        report["subgroups"] = subgroup_recall(y, pred, window_findings(ds, idx), list(ds.label_names))

    unc = uncertainty_of(clf)
    if not quality:
        unc = Uncertainty(unc.confidence_threshold, None, unc.selection)
    note = None if quality else "left out by option (--no-quality)"
    q = None
    if unc.quality is not None:
        try:
            q = dataset_quality(ds, every, input_lead or clf.leads[0], unc)
        except DatasetError as exc:  # a data set that never kept its source records: said in the report and on stderr
            note = f"not applied: {exc}"
            warnings.warn(f"signal-quality rule {note}", stacklevel=2)
            unc = Uncertainty(unc.confidence_threshold, None, unc.selection)
    answers_every = window_answers(probs_every, clf.label_names, unc, q)
    answered_every = np.array([a["status"] == "OK" for a in answers_every], dtype=bool)
    answers, answered = [answers_every[i] for i in cls], answered_every[cls]
    eligible = np.array([q[i].ok for i in cls], dtype=bool) if q is not None else None
    curve = coverage_curve(y, probs, eligible, include=[unc.confidence_threshold])
    uncertain = uncertain_summary(answers, unc)
    uncertain["quality_note"] = note
    uncertain["coverage"] = float(answered.mean())
    uncertain["answered"] = (
        classification_report(y[answered], probs[answered], list(ds.label_names), groups=ds.patient[idx][answered], n_boot=n_boot, seed=seed)
        if answered.any()
        else None
    )
    uncertain["coverage_curve"] = COVERAGE_FILE
    report["uncertain"] = uncertain
    if len(cls) < len(every):
        no_class = [a for a, c in zip(answers_every, ds.y[every]) if c == NO_CLASS_Y]
        report["no_class"] = {"windows": len(no_class), **uncertain_summary(no_class, unc)}
    names = list(ds.label_names)
    classes = source_classes(ds, every)
    if any(c is not None for c in classes):
        report["by_source_class"] = {"windows": answers_by_class(classes, probs_every.argmax(1), ~answered_every, names)}
    if record_level:
        r = by_record(ds.record[every], ds.y[every], probs_every, ~answered_every)
        rc = class_rows(r["y"])
        groups = ds.patient[every][r["first"][rc]]
        report["record_level"] = {
            "rule": RECORD_RULE,
            "uncertain_rule": RECORD_UNCERTAIN_RULE,
            "records": int(len(r["record"])),
            "uncertain_share": float(r["uncertain"][rc].mean()),
            **classification_report(r["y"][rc], r["probs"][rc], names, groups=groups, n_boot=n_boot, seed=seed),
        }
        if "by_source_class" in report:
            at = r["first"].tolist()
            report["by_source_class"]["records"] = answers_by_class([classes[i] for i in at], r["probs"].argmax(1), r["uncertain"], names)
            polarity = source_classes(ds, every, "record_polarity")
            if any(p is not None for p in polarity):  # the QRS's sign (CinC 2017: many handheld recordings are inverted)
                both = [f"{classes[i]} {polarity[i]}" if classes[i] and polarity[i] else None for i in at]
                report["by_source_class"]["records_by_polarity"] = answers_by_class(both, r["probs"].argmax(1), r["uncertain"], names)
    out_dir = Path(out_dir)
    write_report(report, out_dir, title or f"{ds.path.name} ({split})")
    write_json_atomic(out_dir / COVERAGE_FILE, {"confidence_threshold": unc.confidence_threshold, "quality_applied": unc.quality is not None, "curve": curve})
    plot_coverage(curve, out_dir / COVERAGE_PLOT, unc.confidence_threshold, title or f"{ds.path.name} ({split})")
    if subgroups:
        plot_subgroups(report["subgroups"], out_dir / SUBGROUP_PLOT)
    return report
