"""`ecg-export bundle`: checkpoint -> ONNX -> float and int8 TFLite -> C sources -> manifest (+ parity).

The bundle is assembled in a scratch directory beside its destination and renamed into place
only when every step passed, so a failed export never leaves half a bundle behind.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.models.checkpoint import Checkpoint, load_checkpoint
from pipeline.data.dataset import Dataset, load_dataset, replace_dir, write_json_atomic
from pipeline.inference.classifiers import select_leads
from pipeline.models.architectures import model_stats
from pipeline.signal.quality import Uncertainty, threshold_q

from .budget import budget
from .c_arrays import write_firmware_sources
from .onnx_export import ExportError, export_onnx, onnx_vs_torch
from .parity import Tolerances, failures, parity, write_parity
from .tflite_convert import calibration_windows, convert, tflite_float_vs_onnx

MANIFEST = "manifest.json"
FORMAT = "ecg-edge-bundle/1"
FLOAT_TOLERANCE = 1e-4
PACKAGES = ("ecg-edge", "torch", "onnx", "onnxruntime", "onnx2tf", "tensorflow", "ai-edge-litert", "tflite-micro", "numpy")
CHECK_WINDOWS = 64


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def check_windows(ckpt: Checkpoint, ds: Dataset, split: str = "test", n: int = CHECK_WINDOWS) -> np.ndarray:
    """Real windows (the model's leads) for the float checks: the first `n` of `split`."""
    idx = ds.indices(split)[:n]
    if len(idx) == 0:
        idx = np.arange(min(n, len(ds)))
    return select_leads(np.asarray(ds.X[idx]), ds.leads, ckpt.leads, str(ds.path)).astype(np.float32)


def check_compatible(ckpt: Checkpoint, ds: Dataset) -> None:
    if ds.spec.window != ckpt.spec.window:
        raise ExportError(f"data set {ds.path}: windows of {ds.spec.window} samples, the model takes {ckpt.spec.window}")
    if tuple(ds.label_names) != tuple(ckpt.label_names):
        raise ExportError(f"data set {ds.path}: labels {ds.label_names} differ from the model's {ckpt.label_names}")


def file_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256_of(p) for p in sorted(root.rglob("*")) if p.is_file() and p.name != MANIFEST}


def build_bundle(
    checkpoint: Path,
    data: Path,
    out: Path,
    calib_size: int = 200,
    calib_seed: int = 0,
    parity_limit: int = 0,
    tol: Tolerances = Tolerances(),
) -> tuple[Path, list[str]]:
    """Write the bundle at `out`; returns it and the parity tolerances it failed (empty: none)."""
    ckpt = load_checkpoint(checkpoint)
    ds = load_dataset(data)
    check_compatible(ckpt, ds)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        onnx = export_onnx(ckpt, tmp / "model.onnx")
        windows = check_windows(ckpt, ds)
        onnx_diff = onnx_vs_torch(ckpt, onnx, windows)
        if not onnx_diff <= FLOAT_TOLERANCE:
            raise ExportError(f"onnxruntime parity: max |logit diff| vs torch {onnx_diff:.3g} > {FLOAT_TOLERANCE}")
        calib = calibration_windows(ds, calib_size, calib_seed, ckpt.leads)
        models = convert(onnx, calib, tmp)
        tfl_diff = tflite_float_vs_onnx(models.float_path, onnx, windows)
        if not tfl_diff <= FLOAT_TOLERANCE:
            raise ExportError(f"float TFLite parity: max |logit diff| vs ONNX {tfl_diff:.3g} > {FLOAT_TOLERANCE}")
        int8 = models.int8_path.read_bytes()
        stats = model_stats(ckpt.model, ckpt.in_leads, ckpt.spec.window)
        cost = budget(int8, macs=stats.macs)
        in_q, out_q = (models.input_q.scale, models.input_q.zero_point), (models.output_q.scale, models.output_q.zero_point)
        unc = ckpt.uncertainty
        write_firmware_sources(tmp / "firmware", int8, ckpt.spec, ckpt.label_names, in_q, out_q, in_leads=ckpt.in_leads, uncertainty=unc)
        report = parity(ckpt, onnx, models.float_path, models.int8_path, ds, limit=parity_limit)
        write_parity(report, tmp)
        failed = failures(report, tol)
        manifest = {
            "format": FORMAT,
            "disclaimer": "Research tool, not a medical device.",
            "labels": list(ckpt.label_names),
            "leads": ckpt.leads,
            "spec": ckpt.spec.to_dict(),
            "spec_fingerprint": ckpt.spec.fingerprint(),
            "model": ckpt.model_config,
            "checkpoint": {"path": str(checkpoint), "sha256": sha256_of(Path(checkpoint)), "dataset": ckpt.dataset},
            "quantization": {
                "input": {"scale": in_q[0], "zero_point": in_q[1], "shape": [1, ckpt.spec.window, ckpt.in_leads], "dtype": "int8"},
                "output": {"scale": out_q[0], "zero_point": out_q[1], "shape": [1, len(ckpt.label_names)], "dtype": "int8"},
                "calibration": {"windows": int(len(calib)), "seed": calib_seed, "split": "train", "stratified": True},
            },
            "checks": {"onnx_vs_torch_max_abs": onnx_diff, "float_tflite_vs_onnx_max_abs": tfl_diff, "tolerance": FLOAT_TOLERANCE},
            "budget": cost,
            "uncertainty": {**unc.to_dict(), "confidence_threshold_q": threshold_q(unc.confidence_threshold)},
            "parity": {"tolerances": asdict(tol), "failures": failed, "data": report["data"]},
            "metrics": {"best_epoch": ckpt.extra.get("best_epoch"), "history_last": (ckpt.extra.get("history") or [None])[-1]},
            "versions": versions(),
        }
        manifest["files"] = file_hashes(tmp)
        write_json_atomic(tmp / MANIFEST, manifest)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out, failed


def read_manifest(bundle: Path) -> dict[str, Any]:
    path = Path(bundle) / MANIFEST
    if not path.exists():
        raise ExportError(f"bundle {bundle}: {MANIFEST} is missing (not a bundle written by ecg-export bundle)")
    return json.loads(path.read_text())


def quantization(manifest: dict[str, Any]) -> tuple[tuple[float, int], tuple[float, int]]:
    """((input scale, zero point), (output scale, zero point)) of a bundle's int8 model."""
    q = manifest["quantization"]
    return tuple((float(q[k]["scale"]), int(q[k]["zero_point"])) for k in ("input", "output"))  # type: ignore[return-value]


def manifest_uncertainty(manifest: dict[str, Any]) -> Uncertainty:
    """A bundle's confidence threshold and quality rule; bundles made before they existed: threshold 0, no rule."""
    return Uncertainty.from_dict(manifest.get("uncertainty"))


def verify_files(bundle: Path, manifest: dict[str, Any]) -> None:
    """Refuse a bundle whose files do not match the sha256s its manifest lists."""
    for rel, digest in manifest["files"].items():
        p = Path(bundle) / rel
        if not p.exists():
            raise ExportError(f"bundle {bundle}: {rel} is missing")
        if sha256_of(p) != digest:
            raise ExportError(f"bundle {bundle}: {rel} does not match its sha256 in {MANIFEST} (edited or corrupt)")


def bundle_parity(bundle: Path, data: Path, limit: int = 0, tol: Tolerances = Tolerances()) -> tuple[dict[str, Any], list[str]]:
    """Re-run the parity report of an existing bundle on `data`, writing parity.json/png and the manifest."""
    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    verify_files(bundle, manifest)
    ckpt = load_checkpoint(manifest["checkpoint"]["path"])
    if sha256_of(Path(manifest["checkpoint"]["path"])) != manifest["checkpoint"]["sha256"]:
        raise ExportError(f"bundle {bundle}: checkpoint {manifest['checkpoint']['path']} changed since the bundle was made")
    ds = load_dataset(data)
    check_compatible(ckpt, ds)
    report = parity(ckpt, bundle / "model.onnx", bundle / "model_float.tflite", bundle / "model_int8.tflite", ds, limit=limit)
    write_parity(report, bundle)
    failed = failures(report, tol)
    manifest["parity"] = {"tolerances": asdict(tol), "failures": failed, "data": report["data"]}
    manifest["files"] = file_hashes(bundle)
    write_json_atomic(bundle / MANIFEST, manifest)
    return report, failed
