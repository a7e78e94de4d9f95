"""Parity report: torch float vs onnxruntime vs LiteRT (float, int8 reference/default kernels) vs TFLM."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.models.checkpoint import Checkpoint
from pipeline.data.dataset import Dataset, write_json_atomic
from pipeline.inference.classifiers import select_leads
from pipeline.signal.preprocess import softmax
from pipeline.util.figures import save_figure

from .runtimes import RuntimeResult, first_divergence, run_litert, run_onnx, run_tflm, run_torch

INT8_REFERENCE = "litert_int8_reference"


@dataclass(frozen=True)
class Tolerances:
    min_int8_top1: float = 0.99  # top-1 agreement of every int8 runtime with torch
    tflm_identical: float = 1.0  # share of windows whose TFLM int8 outputs equal LiteRT reference kernels'


def _recall(y: np.ndarray, pred: np.ndarray, labels: tuple[str, ...]) -> dict[str, float | None]:
    return {n: (float(np.mean(pred[y == i] == i)) if np.any(y == i) else None) for i, n in enumerate(labels)}


def compare(results: list[RuntimeResult], y: np.ndarray, labels: tuple[str, ...], threshold: float = 0.0) -> dict[str, Any]:
    """The report dict from runtime results; the first result (torch) is the reference.

    `top1_agreement_answered`: agreement on the windows the float model answers (top probability at or
    above the confidence `threshold`); below it the device says UNCERTAIN whatever the top label is."""
    ref = results[0]
    ref_pred, ref_prob = ref.logits.argmax(1), softmax(ref.logits)
    answered = ref_prob.max(1) >= threshold
    runtimes = {}
    for r in results:
        same = r.logits.argmax(1) == ref_pred
        runtimes[r.name] = {
            "top1_agreement": float(np.mean(same)),
            "top1_agreement_answered": float(np.mean(same[answered])) if answered.any() else None,
            "max_abs_logit_diff": float(np.abs(r.logits - ref.logits).max()),
            "mean_abs_prob_diff": float(np.abs(softmax(r.logits) - ref_prob).mean()),
            "per_class_recall": _recall(y, r.logits.argmax(1), labels),
        }
    by_name = {r.name: r for r in results}
    tflm, refk = by_name.get("tflm"), by_name.get(INT8_REFERENCE)
    identical, lsb = None, None
    if tflm is not None and refk is not None and tflm.raw_int8 is not None and refk.raw_int8 is not None:
        identical = float(np.mean(np.all(tflm.raw_int8 == refk.raw_int8, axis=1)))
        lsb = int(np.abs(tflm.raw_int8.astype(np.int32) - refk.raw_int8.astype(np.int32)).max())
    float_recall = runtimes[ref.name]["per_class_recall"]
    int8_recall = runtimes.get(INT8_REFERENCE, {}).get("per_class_recall", {})
    delta = {n: (None if int8_recall.get(n) is None or float_recall[n] is None else int8_recall[n] - float_recall[n]) for n in labels}
    return {
        "runtimes": runtimes,
        "tflm_identical_fraction": identical,
        "tflm_max_output_lsb_diff": lsb,
        "int8_recall_delta": delta,
        "n_windows": int(len(y)),
        "answered_windows": int(answered.sum()),
        "confidence_threshold": float(threshold),
        "label_names": list(labels),
    }


def diagnose(results: list[RuntimeResult], tfl_int8: Path, windows: np.ndarray, limit: int = 5) -> list[dict[str, object]]:
    """For the first `limit` windows where TFLM and LiteRT reference outputs differ, the operator where they part."""
    by_name = {r.name: r for r in results}
    tflm, refk = by_name["tflm"], by_name[INT8_REFERENCE]
    differ = np.flatnonzero(~np.all(tflm.raw_int8 == refk.raw_int8, axis=1))[:limit]
    return [{"window": int(i), **first_divergence(tfl_int8, windows[i])} for i in differ]


def run_all(ckpt: Checkpoint, onnx: Path, tfl_float: Path, tfl_int8: Path, windows: np.ndarray) -> list[RuntimeResult]:
    """Every runtime on the same windows, torch first."""
    return [
        run_torch(ckpt, windows),
        run_onnx(onnx, windows),
        run_litert(tfl_float, windows, reference_kernels=False),
        run_litert(tfl_int8, windows, reference_kernels=True),
        run_litert(tfl_int8, windows, reference_kernels=False),
        run_tflm(tfl_int8, windows),
    ]


def parity(ckpt: Checkpoint, onnx: Path, tfl_float: Path, tfl_int8: Path, ds: Dataset, split: str = "test", limit: int = 0) -> dict[str, Any]:
    """Run every runtime over `split` of `ds` (first `limit` windows when limit > 0) and compare."""
    if tuple(ds.label_names) != tuple(ckpt.label_names):
        raise ValueError(f"{ds.path}: labels {ds.label_names} differ from the model's {ckpt.label_names}")
    if ds.spec.window != ckpt.spec.window:
        raise ValueError(f"{ds.path}: windows of {ds.spec.window} samples, the model takes {ckpt.spec.window}")
    idx = ds.class_indices(split)
    if limit:
        idx = idx[:limit]
    if len(idx) == 0:
        raise ValueError(f"{ds.path}: the {split} split is empty")
    windows = select_leads(np.asarray(ds.X[idx]), ds.leads, ckpt.leads, str(ds.path)).astype(np.float32)
    results = run_all(ckpt, onnx, tfl_float, tfl_int8, windows)
    report = compare(results, ds.y[idx], ckpt.label_names, ckpt.uncertainty.confidence_threshold)
    # LiteRT's reference FULLY_CONNECTED requantizes in float, TFLM in integer arithmetic (upstream
    # LiteRT issue 8567), so the two can part by one LSB there; name the operator so users can tell.
    report["tflm_divergences"] = diagnose(results, tfl_int8, windows)
    report["data"] = {"path": str(ds.path), "sha256": ds.meta["dataset_sha256"], "split": split}
    return report


def failures(report: dict[str, Any], tol: Tolerances = Tolerances()) -> list[str]:
    """Every tolerance the report passes, as a sentence each (empty: all met)."""
    out = []
    for name, r in report["runtimes"].items():
        if "int8" in name or name == "tflm":
            if r["top1_agreement"] < tol.min_int8_top1:
                out.append(f"{name}: top-1 agreement with torch {r['top1_agreement']:.4f} < {tol.min_int8_top1}")
    ident = report.get("tflm_identical_fraction")
    if ident is None:
        out.append("TFLM vs LiteRT reference kernels: not compared")
    elif ident < tol.tflm_identical:
        where = ", ".join(sorted({f"{d.get('op', '?')} (+-{d.get('max_lsb', '?')} LSB)" for d in report.get("tflm_divergences", [])}))
        out.append(f"TFLM int8 outputs identical to LiteRT reference kernels on {ident:.4f} of windows < {tol.tflm_identical}" + (f"; first differing op: {where}" if where else ""))
    return out


def plot_parity(report: dict[str, Any], path: Path) -> Path:
    """Per-runtime top-1 agreement and max logit difference, and the recall change of int8."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["runtimes"])
    rt = report["runtimes"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    axes[0].barh(names, [rt[n]["top1_agreement"] for n in names], color="tab:blue")
    axes[0].set_xlim(min(0.9, min(rt[n]["top1_agreement"] for n in names)), 1.0)
    axes[0].set_title("top-1 agreement with torch")
    axes[1].barh(names, [max(rt[n]["max_abs_logit_diff"], 1e-9) for n in names], color="tab:orange")
    axes[1].set_xscale("log")
    axes[1].set_title("max |logit - torch logit|")
    delta = report["int8_recall_delta"]
    labels = list(delta)
    axes[2].bar(labels, [delta[n] or 0.0 for n in labels], color="tab:green")
    axes[2].axhline(0, color="k", lw=0.6)
    axes[2].set_title("int8 recall - float recall")
    ident = report.get("tflm_identical_fraction")
    fig.suptitle(f"{report['n_windows']} windows; TFLM == LiteRT reference on {ident:.2%} of them" if ident is not None else f"{report['n_windows']} windows")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def write_parity(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "parity.json", report)
    return out_dir / "parity.json", plot_parity(report, out_dir / "parity.png")
