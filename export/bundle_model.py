"""A bundle's int8 model as the device runs it, for `pipeline.inference.device_path`.

The windows are quantized as the device quantizes them, run through TFLM (the same int8 outputs the
device computes), and judged LOW_CONFIDENCE on those int8 outputs (`quality.low_confidence_int8`);
probabilities are the softmax of the dequantized outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipeline.inference.device_path import ModelOutputs
from pipeline.signal.preprocess import output_probabilities, quantize_input
from pipeline.signal.quality import Uncertainty, low_confidence_int8
from pipeline.signal.spec import PreprocessSpec

from .bundle import manifest_uncertainty, quantization, read_manifest, verify_files
from .runtimes import run_tflm_int8


@dataclass(frozen=True)
class BundleModel:
    """`model_int8.tflite` of a bundle with its quantization, leads, labels, spec and uncertainty."""

    kind: ClassVar[str] = "bundle"
    tflite: Path
    spec: PreprocessSpec
    leads: tuple[str, ...]
    labels: tuple[str, ...]
    in_q: tuple[float, int]
    out_q: tuple[float, int]
    uncertainty: Uncertainty

    @classmethod
    def load(cls, bundle: Path, *, verify: bool = False) -> BundleModel:
        """From a bundle directory; `verify`: refuse files that do not match the manifest's sha256s."""
        manifest = read_manifest(bundle)
        if verify:
            verify_files(bundle, manifest)
        return cls.from_manifest(bundle, manifest)

    @classmethod
    def from_manifest(cls, bundle: Path, manifest: dict[str, Any]) -> BundleModel:
        in_q, out_q = quantization(manifest)
        spec = PreprocessSpec.from_dict(manifest["spec"])
        return cls(Path(bundle) / "model_int8.tflite", spec, tuple(manifest["leads"]), tuple(manifest["labels"]), in_q, out_q, manifest_uncertainty(manifest))

    def run(self, z: np.ndarray) -> ModelOutputs:
        """z-scored windows `(n, window)`, quantized as the device does."""
        return self.run_int8(np.stack([quantize_input(w, *self.in_q) for w in z]))

    def run_int8(self, q: np.ndarray) -> ModelOutputs:
        """int8 model inputs `(n, features)`."""
        logits = run_tflm_int8(self.tflite, q)
        low = low_confidence_int8(logits, self.out_q[0], self.uncertainty.confidence_threshold)
        return ModelOutputs(output_probabilities(logits, *self.out_q), low, q, logits)

    def dequantize(self, logits: np.ndarray) -> np.ndarray:
        """int8 outputs as float64 logits."""
        return (logits.astype(np.float64) - self.out_q[1]) * self.out_q[0]
