"""The device's whole path in Python: its window rule with the model's quality rule
(`pipeline.signal.device`), the model on the windows that pass, then the model's confidence threshold.

One composition for every model (`WindowModel`): a checkpoint (`CheckpointModel`: softmax
probabilities, `Uncertainty.low_confidence`) or a bundle (`export.bundle_model.BundleModel`: TFLM on
the quantized windows, `quality.low_confidence_int8` on its int8 outputs as the device decides).
`device_answers` runs it on a whole stream; `answer_windows` on windows judged elsewhere (the host's
incremental `DeviceStream`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol, Sequence

import numpy as np

from pipeline.signal.beats import HR_UNKNOWN, RR_IRREGULARITY_UNKNOWN, detect_beats_timed, window_rhythms
from pipeline.signal.device import device_windows
from pipeline.signal.device_rule import WindowStatus
from pipeline.signal.quality import QualityStatus, Uncertainty
from pipeline.signal.spec import PreprocessSpec

if TYPE_CHECKING:
    from pipeline.models.checkpoint import Checkpoint


@dataclass(frozen=True)
class ModelOutputs:
    """A model's answers for n windows."""

    probabilities: np.ndarray  # (n, classes)
    low_confidence: np.ndarray  # (n,) bool: below the confidence threshold
    q: np.ndarray | None = None  # (n, features) int8 inputs of a quantized model
    logits: np.ndarray | None = None  # (n, classes) int8 outputs of a quantized model


class WindowModel(Protocol):
    """A model over z-scored one-lead windows `(n, window)`, with its quality rule and threshold."""

    @property
    def uncertainty(self) -> Uncertainty: ...

    def run(self, z: np.ndarray) -> ModelOutputs: ...


class JudgedWindow(Protocol):
    """A window the device rule has judged (`pipeline.signal.device.DeviceWindow`)."""

    index: int
    start: int
    status: WindowStatus
    z: np.ndarray | None


@dataclass(frozen=True)
class AnsweredWindow:
    """One window as the device answers it: its final status and, when classified, the model's outputs."""

    index: int
    start: int
    status: WindowStatus  # the window's, or QualityStatus.LOW_CONFIDENCE for a classified one below the threshold
    z: np.ndarray | None = None  # z-scores of a classified window
    probabilities: np.ndarray | None = None
    q: np.ndarray | None = None  # int8 model input (quantized models)
    logits: np.ndarray | None = None  # int8 model outputs (quantized models)
    hr_x10: int = HR_UNKNOWN  # the window's rhythm as a device with the beat detector sends it (device_answers)
    rr_irregularity: int = RR_IRREGULARITY_UNKNOWN

    @property
    def classified(self) -> bool:
        return self.probabilities is not None


class CheckpointModel:
    """A checkpoint's float model on one-lead windows; LOW_CONFIDENCE from its softmax and threshold."""

    kind = "checkpoint"

    def __init__(self, ckpt: Checkpoint) -> None:
        from pipeline.inference.classifiers import Single

        self.clf = Single(ckpt)
        self.spec: PreprocessSpec = ckpt.spec
        self.labels: tuple[str, ...] = tuple(ckpt.label_names)
        self.uncertainty: Uncertainty = ckpt.uncertainty

    def run(self, z: np.ndarray) -> ModelOutputs:
        probs = self.clf.predict_proba(z[:, None, :], list(self.clf.leads))
        return ModelOutputs(probs, self.uncertainty.low_confidence(probs))


def _row(a: np.ndarray | None, i: int) -> np.ndarray | None:
    return None if a is None else a[i]


def answer_windows(windows: Sequence[JudgedWindow], model: WindowModel) -> list[AnsweredWindow]:
    """The model on the OK windows, then its threshold (LOW_CONFIDENCE); other windows keep their status."""
    ok = [w for w in windows if w.status == WindowStatus.OK]
    out = model.run(np.stack([w.z for w in ok])) if ok else None
    rows = {w.index: i for i, w in enumerate(ok)}
    answers = []
    for w in windows:
        i = rows.get(w.index)
        if out is None or i is None:
            answers.append(AnsweredWindow(w.index, w.start, w.status))
            continue
        status = QualityStatus.LOW_CONFIDENCE if out.low_confidence[i] else w.status
        answers.append(AnsweredWindow(w.index, w.start, status, w.z, out.probabilities[i], _row(out.q, i), _row(out.logits, i)))
    return answers


def device_answers(
    raw: np.ndarray, lead_off: np.ndarray | None, spec: PreprocessSpec, adc_max: int, model: WindowModel, hop: int | None = None,
    beats: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[AnsweredWindow]:
    """Every window the device answers for this stream of ADC counts: `device_windows` with the model's
    quality rule, the model on the OK ones, the model's confidence threshold, and each window's rhythm
    figures from the device's beat detector (`pipeline.signal.beats.window_rhythms`). `beats`: the
    stream's `detect_beats_timed`, when the caller has it already."""
    windows = device_windows(raw, lead_off, spec, adc_max, hop=hop, quality=model.uncertainty.quality)
    answers = answer_windows(windows, model)
    beats, decided = detect_beats_timed(raw, lead_off) if beats is None else beats
    rhythm = window_rhythms(beats, decided, [a.start for a in answers], spec.window, [a.status for a in answers])
    return [replace(a, hr_x10=hr, rr_irregularity=irr) for a, (hr, irr) in zip(answers, rhythm)]
