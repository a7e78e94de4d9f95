"""The "uncertain" answer: a signal-quality rule on the device's window and a confidence threshold.

Defined once here, carried by checkpoint and bundle (manifest.json, ecg_config.h), and cheap enough
for a Cortex-M on the window it already holds: the raw ADC counts with their lead-off flags and the
same counts after the device filter (`preprocess.device_filter`, restarted after lead-off exactly as
`pipeline.signal.device` does). In order, the first that applies wins:

- LEAD_OFF, SATURATED: `pipeline.signal.device_rule` (`DeviceRule`), unchanged: any lead-off sample, or
  more than `saturation_max_samples` samples at an ADC rail.
- FLAT: the filtered window's peak-to-peak is below `flat_min_p2p_mv`, or the raw counts repeat the
  same value for `flat_max_run_s` seconds or longer (a stuck or disconnected input without LO flags).
- NOISY: `hf_ratio = rms(second difference) / rms(first difference)` of the raw counts above
  `noise_max_hf_ratio` (a mean-frequency measure, 2 sin(pi f / fs) for a tone of f Hz: about 0.45
  on clean ECG at 250 Hz, 1.18 for pure 50 Hz hum, 1.73 for white noise: EMG, mains), or `jump_ratio`
  = the largest peak-to-peak of the filtered window's `jump_segment_s` segments over their median
  above `noise_max_jump_ratio` (baseline jumps, electrode pops and motion bursts larger than the
  ECG; a 2 s segment holds a beat at any rate above 30 bpm, so clean ECG stays near 1).
  Measured (tests/test_quality.py): PTB-XL lead II test windows hf_ratio <= 0.72, jump_ratio <= 2.6.

Exact arithmetic, so the firmware (ecg_preprocess.c) takes the same decision on every window: the
filtered window is the device's float32 ring, peak-to-peaks and the jump ratio are float64 operations
on those values (max - min, the median, one division); the hf test is the integer comparison
`e2 * den > num * e1` with e1, e2 the sums of squared first/second differences of the raw counts and
num/den = `QualityRule.hf_ratio2()`, the threshold squared as an exact fraction; run lengths are integers.

mV thresholds become counts with the AD8232 board's scale (`ad8232.AD8232Config`: full scale of the
ADC = vref / gain, 3.0 mV at the electrodes), for any ADC width: counts per mV = (adc_max + 1) / full_scale_mv.

The confidence threshold is on the largest softmax probability: a classified window whose top
probability is below it is UNCERTAIN (LOW_CONFIDENCE). `choose_threshold` picks it on validation.
"""

from __future__ import annotations

import enum
import math
from fractions import Fraction
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from pipeline.signal.ad8232 import AD8232Config, analog_frontend, mv_to_counts
from pipeline.signal.device_rule import DEFAULT_RULE, DeviceRule, WindowStatus, good_runs, saturated_mask
from pipeline.signal.preprocess import device_filter
from pipeline.signal.spec import PreprocessSpec

_BOARD = AD8232Config()


class QualityStatus(enum.IntEnum):
    """Why a window is (not) answered; the device's `WindowStatus` codes, extended."""

    OK = WindowStatus.OK
    LEAD_OFF = WindowStatus.LEAD_OFF
    SATURATED = WindowStatus.SATURATED
    FLAT = 3
    NOISY = 4
    LOW_CONFIDENCE = 5  # signal fine, model unsure (set from probabilities, not by `assess_window`)

    @property
    def reason(self) -> str:
        return self.name.lower()


class QualityError(ValueError):
    """A quality rule or input that cannot be used."""


@dataclass(frozen=True)
class QualityRule:
    """Signal-quality thresholds (one source of truth; see the module docstring for the rule)."""

    device: DeviceRule = DEFAULT_RULE
    flat_min_p2p_mv: float = 0.05
    flat_max_run_s: float = 1.0
    noise_max_hf_ratio: float = 0.95
    jump_segment_s: float = 2.0
    noise_max_jump_ratio: float = 3.0
    full_scale_mv: float = _BOARD.vref / _BOARD.gain * 1e3

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name != "device" and not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise QualityError(f"quality rule: {f.name} must be a positive number, not {v!r}")

    def counts_per_mv(self, adc_max: int) -> float:
        return (adc_max + 1) / self.full_scale_mv

    def flat_min_p2p_counts(self, adc_max: int) -> float:
        return self.flat_min_p2p_mv * self.counts_per_mv(adc_max)

    def flat_max_run_samples(self, fs: float) -> int:
        return max(2, int(round(self.flat_max_run_s * fs)))

    def jump_segment_samples(self, fs: float) -> int:
        return max(1, int(round(self.jump_segment_s * fs)))

    def hf_ratio2(self) -> Fraction:
        """`noise_max_hf_ratio` squared as the exact fraction the integer test uses.

        The ratio is first put on a denominator <= 1000 (0.95 -> 19/20) and capped at 2, which the
        ratio can never exceed (|d2| <= |d1[1:]| + |d1[:-1]|), so numerator and denominator stay
        below 2^22 and the device compares 96-bit products exactly.
        """
        return Fraction(min(self.noise_max_hf_ratio, 2.0)).limit_denominator(1000) ** 2

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["device"] = self.device.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "QualityRule":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise QualityError(f"unknown quality rule fields {sorted(unknown)}")
        values = dict(d)
        if "device" in values:
            dev_names = {f.name for f in fields(DeviceRule)}
            bad = set(values["device"]) - dev_names
            if bad:
                raise QualityError(f"unknown device rule fields {sorted(bad)}")
            values["device"] = DeviceRule(**values["device"])
        return cls(**values)


DEFAULT_QUALITY = QualityRule()


@dataclass(frozen=True)
class WindowQuality:
    """A window's status and the measurements behind it."""

    status: QualityStatus
    lead_off_fraction: float
    saturated_samples: int
    p2p_mv: float
    longest_run_s: float
    hf_ratio: float
    jump_ratio: float

    @property
    def ok(self) -> bool:
        return self.status == QualityStatus.OK

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = self.status.name
        return {k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v) for k, v in d.items()}


def _longest_run(raw: np.ndarray) -> int:
    """Length of the longest run of identical consecutive values."""
    if raw.size == 0:
        return 0
    change = np.flatnonzero(np.diff(raw) != 0)
    edges = np.concatenate([[-1], change, [raw.size - 1]])
    return int(np.diff(edges).max())


def _jump_ratio(filtered: np.ndarray, seg: int) -> float:
    """Largest peak-to-peak of the `seg`-sample segments over their median (1 without segments or signal)."""
    n_seg = filtered.size // seg
    if n_seg == 0:
        return 1.0
    seg_p2p = np.ptp(filtered[: n_seg * seg].reshape(n_seg, seg), axis=1)
    med = float(np.median(seg_p2p))
    top = float(seg_p2p.max())
    if med > 0:
        return top / med
    return 1.0 if top == 0 else math.inf


def assess_window(
    raw: np.ndarray, lead_off: np.ndarray | None, filtered: np.ndarray, adc_max: int, fs: float, rule: QualityRule = DEFAULT_QUALITY
) -> WindowQuality:
    """Status of one window: raw ADC counts, lead-off flags (None: none) and the device-filtered counts
    (taken in float32, as the device's ring holds them)."""
    raw = np.asarray(raw, dtype=np.int64)
    filtered = np.asarray(filtered, dtype=np.float32).astype(np.float64)
    if raw.ndim != 1 or filtered.shape != raw.shape:
        raise QualityError(f"raw {raw.shape} and filtered {filtered.shape} must be one window of the same length")
    off = np.zeros(raw.size, bool) if lead_off is None else np.asarray(lead_off, dtype=bool)
    if off.shape != raw.shape:
        raise QualityError(f"lead-off flags {off.shape} do not match samples {raw.shape}")
    n = raw.size
    per_mv = rule.counts_per_mv(adc_max)
    n_sat = int(saturated_mask(raw, adc_max, rule.device).sum())
    p2p = float(np.ptp(filtered)) if n else 0.0
    run = _longest_run(raw)
    d1 = np.diff(raw)
    d2 = np.diff(d1)
    e1, e2 = int(np.dot(d1, d1)), int(np.dot(d2, d2))  # exact: at most 2500 * 2^32
    hf = math.sqrt(e2 / e1) if e1 > 0 else 0.0  # a constant window is FLAT anyway
    r2 = rule.hf_ratio2()
    jump = _jump_ratio(filtered, rule.jump_segment_samples(fs))
    if off.any():
        status = QualityStatus.LEAD_OFF
    elif n_sat > rule.device.saturation_max_samples(n):
        status = QualityStatus.SATURATED
    elif p2p < rule.flat_min_p2p_counts(adc_max) or run >= rule.flat_max_run_samples(fs):
        status = QualityStatus.FLAT
    elif e2 * r2.denominator > r2.numerator * e1 or jump > rule.noise_max_jump_ratio:
        status = QualityStatus.NOISY
    else:
        status = QualityStatus.OK
    return WindowQuality(status, float(off.mean()) if n else 0.0, n_sat, p2p / per_mv, run / fs, hf, jump)


def filtered_stream(raw: np.ndarray, lead_off: np.ndarray | None, spec: PreprocessSpec) -> np.ndarray:
    """The device filter over a stream of counts, restarted after every lead-off stretch (as `pipeline.signal.device`)."""
    raw = np.asarray(raw, dtype=np.float64)
    off = np.zeros(raw.size, bool) if lead_off is None else np.asarray(lead_off, dtype=bool)
    out = np.zeros(raw.size, dtype=np.float64)
    for a, b in good_runs(off):
        out[a:b] = device_filter(raw[a:b], spec)
    return out


def assess_stream(
    raw: np.ndarray,
    lead_off: np.ndarray | None,
    starts: np.ndarray,
    spec: PreprocessSpec,
    adc_max: int,
    rule: QualityRule = DEFAULT_QUALITY,
) -> list[WindowQuality]:
    """Status of the windows `[s, s + spec.window)` of a stream of ADC counts at `spec.fs`."""
    raw = np.asarray(raw)
    if raw.ndim != 1:
        raise QualityError(f"raw samples must be one channel, got shape {raw.shape}")
    if raw.size and (raw.min() < 0 or raw.max() > adc_max):
        raise QualityError(f"raw samples outside the ADC range 0..{adc_max}")
    off = np.zeros(raw.size, bool) if lead_off is None else np.asarray(lead_off, dtype=bool)
    y = filtered_stream(raw, off, spec)
    w = spec.window
    out = []
    for s in np.asarray(starts, dtype=np.int64):
        if s < 0 or s + w > raw.size:
            raise QualityError(f"window at sample {s} does not fit a stream of {raw.size} samples")
        out.append(assess_window(raw[s : s + w], off[s : s + w], y[s : s + w], adc_max, spec.fs, rule))
    return out


def counts_from_mv(x_mv: np.ndarray, fs: float, adc_bits: int = _BOARD.adc_bits) -> tuple[np.ndarray, int]:
    """What the AD8232 board reads for a signal in mV at the electrodes: (ADC counts, adc_max).

    Used to judge recordings in physical units (files, data sets) by the device's rule.
    """
    cfg = AD8232Config(adc_bits=adc_bits)
    return mv_to_counts(analog_frontend(np.asarray(x_mv, dtype=np.float64), fs, cfg), cfg).astype(np.int64), cfg.max_count


# --- the confidence threshold -------------------------------------------------------------

THRESHOLD_RULE = (
    "largest max-softmax threshold t that keeps at least `target_coverage` of the validation windows "
    "(coverage = share with top probability >= t); windows below t are UNCERTAIN (low confidence)"
)
DEFAULT_TARGET_COVERAGE = 0.9


def confidence(probs: np.ndarray) -> np.ndarray:
    """Top class probability of each row."""
    return np.asarray(probs, dtype=np.float64).max(axis=1)


def choose_threshold(probs: np.ndarray, target_coverage: float = DEFAULT_TARGET_COVERAGE) -> float:
    """The k-th largest top probability, k = ceil(target_coverage * N) (see THRESHOLD_RULE)."""
    if not 0 < target_coverage <= 1:
        raise QualityError(f"target coverage must be in (0, 1], not {target_coverage}")
    conf = np.sort(confidence(probs))[::-1]
    if conf.size == 0:
        raise QualityError("no windows to choose a confidence threshold on")
    k = int(math.ceil(target_coverage * conf.size - 1e-9))
    return float(conf[k - 1])


@dataclass(frozen=True)
class Uncertainty:
    """What a checkpoint/bundle carries: the confidence threshold and the quality rule (None: none).

    Checkpoints written before this existed load as `Uncertainty()`: threshold 0 and no quality
    rule, i.e. never uncertain.
    """

    confidence_threshold: float = 0.0
    quality: QualityRule | None = None
    selection: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence_threshold <= 1.0:
            raise QualityError(f"confidence threshold must be a probability in [0, 1], not {self.confidence_threshold}")

    def low_confidence(self, probs: np.ndarray) -> np.ndarray:
        return confidence(probs) < self.confidence_threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "confidence_threshold": float(self.confidence_threshold),
            "confidence_rule": "UNCERTAIN when the largest softmax probability < confidence_threshold",
            "quality": None if self.quality is None else self.quality.to_dict(),
            "selection": dict(self.selection),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "Uncertainty":
        if not d:
            return cls()
        q = d.get("quality")
        return cls(float(d.get("confidence_threshold", 0.0)), None if q is None else QualityRule.from_dict(q), dict(d.get("selection") or {}))


CONFIDENCE_BITS = 30  # fixed point of the int8 confidence test: 1.0 = 2^30


def confidence_decay_q(output_scale: float) -> int:
    """round(2^30 * exp(-output_scale)): the softmax weight of one int8 output step below the top."""
    if not (math.isfinite(output_scale) and output_scale > 0):
        raise QualityError(f"output scale must be a positive number, not {output_scale!r}")
    return int(round(math.ldexp(math.exp(-output_scale), CONFIDENCE_BITS)))


def confidence_weights(decay_q: int) -> np.ndarray:
    """w[d] ~ 2^30 * exp(-scale * d) for d = 0..255 by the integer recurrence the firmware runs:
    w[0] = 2^30, w[d] = (w[d - 1] * decay_q + 2^29) >> 30."""
    w = [1 << CONFIDENCE_BITS]
    for _ in range(255):
        w.append((w[-1] * decay_q + (1 << (CONFIDENCE_BITS - 1))) >> CONFIDENCE_BITS)
    return np.array(w, dtype=np.int64)


def low_confidence_int8(logits: np.ndarray, output_scale: float, threshold: float) -> np.ndarray:
    """Which rows of int8 model outputs `(n, classes)` are LOW_CONFIDENCE, exactly as the device decides.

    The top probability of softmax(scale * (q - zero_point)) is 1 / sum_i exp(-scale * d_i), d_i = q_top - q_i,
    so it is below t when sum_i w[d_i] > 2^30 / t (`confidence_weights`; the sum is an exact integer,
    the bound one float64 division by the threshold in float32, as `ECG_CONFIDENCE_THRESHOLD`). A
    threshold of 0 never applies. Agrees with the float softmax except within ~1e-5 of the threshold.
    """
    q = np.atleast_2d(np.asarray(logits, dtype=np.int64))
    t = float(np.float32(threshold))
    if t <= 0 or q.shape[0] == 0:
        return np.zeros(q.shape[0], dtype=bool)
    w = confidence_weights(confidence_decay_q(output_scale))
    total = w[q.max(axis=1, keepdims=True) - q].sum(axis=1)
    return total.astype(np.float64) > math.ldexp(1.0, CONFIDENCE_BITS) / t


def threshold_q(threshold: float) -> int:
    """The threshold in TFLite's int8 softmax output space (scale 1/256, zero point -128).

    A window is uncertain when the int8 softmax of its top class is below this value; -128 for a
    zero threshold, so nothing is.
    """
    return int(min(127, max(-128, math.ceil(threshold * 256 - 1e-9) - 128)))
