"""Running trained classifiers on windows: one checkpoint, or two stages combined into three labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from pipeline.models.checkpoint import Checkpoint, CheckpointError
from pipeline.data.labels import LABELS, STAGE1_LABELS, STAGE2_LABELS
from pipeline.signal.spec import PreprocessSpec


class Classifier(Protocol):
    label_names: tuple[str, ...]
    spec: PreprocessSpec
    leads: list[str]

    def predict_proba(self, X: np.ndarray, lead_names: list[str]) -> np.ndarray: ...


def lead_positions(have: list[str], want: list[str], source: str = "input") -> list[int]:
    """Positions of the `want` lead names in `have` (case-insensitive); a clear error when one is missing."""
    upper = [h.upper() for h in have]
    missing = [w for w in want if w.upper() not in upper]
    if missing:
        raise ValueError(f"{source} lacks lead(s) {missing} (has {have})")
    return [upper.index(w.upper()) for w in want]


def select_leads(X: np.ndarray, have: list[str], want: list[str], source: str = "input") -> np.ndarray:
    """The `want` leads of `X` (N, leads, W) by name."""
    return X[:, lead_positions(have, want, source)]


def checkpoint_proba(ckpt: Checkpoint, X: np.ndarray, lead_names: list[str], batch: int = 256) -> np.ndarray:
    """Softmax probabilities of a checkpoint's model on windows `X` (N, leads, W)."""
    x = select_leads(X, lead_names, ckpt.leads)
    if x.shape[-1] != ckpt.spec.window:
        raise ValueError(f"windows of {x.shape[-1]} samples; {ckpt.path} expects {ckpt.spec.window}")
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            logits = ckpt.model(torch.from_numpy(np.ascontiguousarray(x[i : i + batch], dtype=np.float32)))
            out.append(torch.softmax(logits, dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(ckpt.label_names)), np.float32)


@dataclass
class Single:
    """One checkpoint as a classifier."""

    ckpt: Checkpoint

    @property
    def label_names(self) -> tuple[str, ...]:
        return self.ckpt.label_names

    @property
    def spec(self) -> PreprocessSpec:
        return self.ckpt.spec

    @property
    def leads(self) -> list[str]:
        return self.ckpt.leads

    def predict_proba(self, X: np.ndarray, lead_names: list[str]) -> np.ndarray:
        return checkpoint_proba(self.ckpt, X, lead_names)


def combine_two_stage(p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    """Three-label probabilities from stage 1 (SINUS, ARRHYTHMIA) and stage 2 (NORMAL, MI).

    P(ARRHYTHMIA) = p1[ARRHYTHMIA]; P(NORMAL) = p1[SINUS] * p2[NORMAL]; P(MI) = p1[SINUS] * p2[MI],
    ordered as LABELS. Rows sum to one; the prediction is their argmax.
    """
    out = np.empty((len(p1), len(LABELS)), dtype=np.float64)
    sinus, arr = p1[:, STAGE1_LABELS.index("SINUS")], p1[:, STAGE1_LABELS.index("ARRHYTHMIA")]
    out[:, LABELS.index("ARRHYTHMIA")] = arr
    out[:, LABELS.index("NORMAL")] = sinus * p2[:, STAGE2_LABELS.index("NORMAL")]
    out[:, LABELS.index("MI")] = sinus * p2[:, STAGE2_LABELS.index("MI")]
    return out


@dataclass
class TwoStage:
    """Stage 1 (SINUS vs ARRHYTHMIA) then stage 2 (NORMAL vs MI), reported as the three labels."""

    stage1: Checkpoint
    stage2: Checkpoint

    def __post_init__(self) -> None:
        for ck, want in ((self.stage1, STAGE1_LABELS), (self.stage2, STAGE2_LABELS)):
            if tuple(ck.label_names) != want:
                raise CheckpointError(f"{ck.path}: labels {ck.label_names}, expected {want} for this stage")
        if self.stage1.spec != self.stage2.spec:
            raise CheckpointError(f"{self.stage1.path} and {self.stage2.path} were trained with different preprocessing")

    label_names = LABELS

    @property
    def spec(self) -> PreprocessSpec:
        return self.stage1.spec

    @property
    def leads(self) -> list[str]:
        return list(dict.fromkeys(self.stage1.leads + self.stage2.leads))

    def predict_proba(self, X: np.ndarray, lead_names: list[str]) -> np.ndarray:
        return combine_two_stage(checkpoint_proba(self.stage1, X, lead_names), checkpoint_proba(self.stage2, X, lead_names))
