"""The reference preprocessing: resample -> device filter -> window -> z-score.

The firmware computes the same chain in float32 (see PreprocessSpec); tests compare
them. Signals are shaped `(leads, samples)`.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy import signal as sps

from pipeline.signal.spec import PreprocessSpec


def resample(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Polyphase resampling along the last axis (identity when the rates match)."""
    if fs_in <= 0 or fs_out <= 0:
        raise ValueError(f"sampling rates must be positive (got {fs_in} -> {fs_out})")
    if fs_in == fs_out:
        return np.asarray(x, dtype=np.float64)
    ratio = Fraction(fs_out / fs_in).limit_denominator(10_000)
    if abs(float(ratio) - fs_out / fs_in) > 1e-9:
        raise ValueError(f"cannot resample {fs_in} Hz to {fs_out} Hz with a rational ratio")
    return sps.resample_poly(np.asarray(x, dtype=np.float64), ratio.numerator, ratio.denominator, axis=-1)


def device_filter(x: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Band-pass (and optional notch) exactly as the device runs it, along the last axis."""
    x = np.asarray(x, dtype=np.float64)
    if spec.filter == "zero-phase":
        # Only to reproduce the seed project (ba-form filtfilt); the device cannot do this.
        b, a = sps.butter(spec.band_order, spec.band_hz, btype="bandpass", fs=spec.fs)
        y = sps.filtfilt(b, a, x, axis=-1)
        notch = spec.notch_sos()
        return y if notch is None else sps.sosfiltfilt(notch, y, axis=-1)
    sos = spec.sos()
    if spec.filter_init == "zero":
        return sps.sosfilt(sos, x, axis=-1)
    x2 = np.atleast_2d(x)
    # sosfilt_zi is the state for a unit step; scaling it by each lead's first sample
    # gives shape (sections, leads, 2), which sosfilt wants for axis=-1.
    zi = sps.sosfilt_zi(sos)[:, None, :] * x2[:, 0][None, :, None]
    y, _ = sps.sosfilt(sos, x2, axis=-1, zi=zi)
    return y.reshape(x.shape)


def zscore(w: np.ndarray, eps: float) -> np.ndarray:
    """Per-window, per-lead z-score in float32: (x - mean) / (std + eps)."""
    w = np.asarray(w, dtype=np.float32)
    mean = w.mean(axis=-1, keepdims=True, dtype=np.float64).astype(np.float32)
    std = w.std(axis=-1, keepdims=True, dtype=np.float64).astype(np.float32)
    return ((w - mean) / (std + np.float32(eps))).astype(np.float32)


def window_starts(n: int, window: int, hop: int) -> np.ndarray:
    """Start samples of every whole window in a signal of `n` samples."""
    if n < window:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, n - window + 1, hop, dtype=np.int64)


def filtered_at_rate(x: np.ndarray, fs_in: float, spec: PreprocessSpec) -> np.ndarray:
    """Resample to the spec's rate and run the device filter: `(leads, n_out)` float64."""
    return device_filter(resample(x, fs_in, spec.fs), spec)


def cut_windows(y: np.ndarray, starts: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Z-scored windows `(len(starts), leads, window)` float32 from a filtered signal."""
    out = np.empty((len(starts), y.shape[0], spec.window), dtype=np.float32)
    for i, s in enumerate(starts):
        out[i] = zscore(y[:, s : s + spec.window], spec.zscore_eps)
    return out


def preprocess_signal(x: np.ndarray, fs_in: float, spec: PreprocessSpec, hop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Whole chain for one record: windows `(k, leads, window)` float32 and their starts at spec.fs."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    y = filtered_at_rate(x, fs_in, spec)
    starts = window_starts(y.shape[-1], spec.window, spec.dataset_hop if hop is None else hop)
    return cut_windows(y, starts, spec), starts


def quantize_input(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """int8 model input as TFLite's QUANTIZE computes it: round half away from zero, then clamp."""
    if not scale > 0:
        raise ValueError(f"quantization scale must be positive, got {scale}")
    q = np.asarray(x, dtype=np.float32) / np.float32(scale)
    q = np.sign(q) * np.floor(np.abs(q) + np.float32(0.5)) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def softmax(z: np.ndarray) -> np.ndarray:
    """Softmax along the last axis (float64)."""
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def output_probabilities(logits_int8: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Class probabilities from a model's int8 outputs: softmax of the dequantized logits."""
    return softmax((np.asarray(logits_int8, dtype=np.float64) - zero_point) * scale)
