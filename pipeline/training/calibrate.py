"""Decision calibration: per-class logit offsets fitted on the validation split, folded into the model.

Offsets are added to the final linear layer's bias, so every later step (evaluation, ONNX,
int8 TFLite, the firmware) uses the calibrated decision without knowing about it.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.models.checkpoint import load_checkpoint, read_payload, save_atomic
from pipeline.data.dataset import load_dataset
from pipeline.inference.classifiers import select_leads


def balanced_accuracy_of(logits: np.ndarray, y: np.ndarray, n_classes: int) -> float:
    pred = logits.argmax(1)
    return float(np.mean([np.mean(pred[y == c] == c) for c in range(n_classes) if np.any(y == c)]))


def fit_logit_bias(logits: np.ndarray, y: np.ndarray, span: float = 3.0, step: float = 0.1) -> np.ndarray:
    """Offsets (first class fixed at 0) maximising balanced accuracy; ties go to the smallest offsets."""
    n = logits.shape[1]
    grid = np.round(np.arange(-span, span + step / 2, step), 6)
    best, best_bias = -1.0, np.zeros(n)
    for combo in itertools.product(grid, repeat=n - 1):
        bias = np.array((0.0, *combo))
        score = balanced_accuracy_of(logits + bias, y, n)
        if score > best + 1e-12 or (abs(score - best) <= 1e-12 and np.abs(bias).sum() < np.abs(best_bias).sum()):
            best, best_bias = score, bias
    return best_bias


def calibrate(checkpoint: Path, data: Path, out: Path, split: str = "val") -> dict[str, Any]:
    """Fit offsets on `split` of `data` and write a calibrated copy of `checkpoint` to `out`."""
    ck = load_checkpoint(checkpoint)
    ds = load_dataset(data)
    if tuple(ds.label_names) != tuple(ck.label_names):
        raise ValueError(f"{data}: labels {ds.label_names} differ from the model's {ck.label_names}")
    idx = ds.class_indices(split)
    if len(idx) == 0:
        raise ValueError(f"{data}: the {split} split is empty")
    with torch.no_grad():
        x = select_leads(np.asarray(ds.X[idx]), ds.leads, ck.leads, str(data))
        logits = ck.model(torch.from_numpy(np.ascontiguousarray(x))).numpy()
    y = ds.y[idx]
    bias = fit_logit_bias(logits, y)
    obj = read_payload(checkpoint)
    head = [k for k in obj["state_dict"] if k.endswith("classifier.bias")]
    if len(head) != 1:
        raise ValueError(f"{checkpoint}: cannot find the final linear layer's bias (classifier.bias)")
    obj["state_dict"][head[0]] = obj["state_dict"][head[0]] + torch.tensor(bias, dtype=obj["state_dict"][head[0]].dtype)
    n = len(ck.label_names)
    report = {
        "split": split,
        "logit_bias": bias.tolist(),
        "balanced_accuracy_before": balanced_accuracy_of(logits, y, n),
        "balanced_accuracy_after": balanced_accuracy_of(logits + bias, y, n),
        "source": str(checkpoint),
    }
    obj["calibration"] = report
    save_atomic(obj, Path(out))
    return report
