"""Classify a live stream on the host, window by window, exactly as the device would.

`HostClassifier.load(path)` takes a checkpoint `.pt` (the float model, `pipeline.inference.device_path.CheckpointModel`)
or a bundle directory (its `model_int8.tflite` through TFLM, `export.bundle_model.BundleModel`: the same
int8 logits the device computes; probabilities are the softmax of the dequantized logits). `feed(block)`
takes the blocks a `host.sources.LiveSource` reads and returns every window that became complete; the
model and its threshold run as in `pipeline.inference.device_path.answer_windows`.

The rule is `pipeline.signal.device`'s, applied incrementally (`DeviceStream`): window k covers session
samples [k * hop, k * hop + window); LEAD_OFF when one of its samples had the lead-off flag, SATURATED
past the rail limit, else the causal filter (restarted from the steady state of the first good sample
after every lead-off stretch) is z-scored and classified. With the model's quality rule and confidence
threshold (a bundle's manifest `uncertainty`, a checkpoint's `uncertainty`; `pipeline.signal.quality`) windows
can also be FLAT or NOISY (not classified) or LOW_CONFIDENCE (classified, label and probabilities kept;
bundles decide it on the int8 outputs as the device does, `quality.low_confidence_int8`). Fed in any
split, the windows equal `pipeline.signal.device.device_windows(..., quality=rule)` on the whole stream.
Besides that rule:

- Samples lost (a block starting past the previous block's end) count as lead-off samples, as on the
  device: the windows over the gap are LEAD_OFF and the filter restarts after it.
- A block starting before the previous block's end means the device restarted (its counter went
  back): the stream starts again from that block.
- Windows that start before the first sample received (a device streaming since long before the host
  connected) are not reported: their samples are unknown. The first window reported is the first
  with k * hop >= the first sample received; the filter starts there, so its first windows can differ
  from the device's, whose filter has run since power-on.
- A source rate other than the spec's is first resampled to the spec's rate by `StreamResampler`: the
  polyphase FIR of `scipy.signal.resample_poly` (same Kaiser-window design), run causally with the
  samples before the first one held at its value, so chunks give exactly what the whole stream gives.
  Output sample m sits at input time m * fs_in / fs_out from the first sample received; it is flagged
  lead-off when any input sample under its FIR taps was. Window indices and first samples are then
  counted at the spec's rate from the first sample received.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from scipy import signal as sps

from pipeline.inference.device_path import AnsweredWindow, CheckpointModel, answer_windows
from pipeline.signal.device import DeviceWindow
from pipeline.signal.device_rule import DEFAULT_RULE, DeviceRule, WindowStatus, saturated_mask
from pipeline.signal.preprocess import zscore
from pipeline.signal.quality import QualityRule, QualityStatus, assess_window
from pipeline.signal.spec import PreprocessSpec

if TYPE_CHECKING:
    from export.bundle_model import BundleModel


class BlockLike(Protocol):
    first_sample: int
    values: np.ndarray
    lead_off: np.ndarray


@dataclass(frozen=True)
class WindowResult:
    window_index: int
    first_sample: int  # session sample (at the spec's rate) of the window's first sample
    status: WindowStatus  # a pipeline.signal.quality.QualityStatus when the model carries a quality rule or threshold
    label: str | None  # None when not classified (status not OK or LOW_CONFIDENCE)
    probabilities: dict[str, float] | None
    int8_logits: tuple[int, ...] | None = None  # bundle models only: the model's raw int8 outputs


# ------------------------------------------------------------------ resampling


class StreamResampler:
    """Polyphase resampling of a stream in chunks; the output never depends on how the input was split."""

    def __init__(self, fs_in: float, fs_out: float) -> None:
        if fs_in <= 0 or fs_out <= 0:
            raise ValueError(f"sampling rates must be positive (got {fs_in} -> {fs_out})")
        ratio = Fraction(fs_out / fs_in).limit_denominator(10_000)
        if abs(float(ratio) - fs_out / fs_in) > 1e-9:
            raise ValueError(f"cannot resample {fs_in} Hz to {fs_out} Hz with a rational ratio")
        self.up, self.down = ratio.numerator, ratio.denominator
        max_rate = max(self.up, self.down)
        half_len = 10 * max_rate  # scipy.signal.resample_poly's filter design
        h = sps.firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0)) * self.up
        self.delay = half_len
        self.taps_per_phase = math.ceil(h.size / self.up)
        padded = np.zeros(self.taps_per_phase * self.up)
        padded[: h.size] = h
        self.phases = padded.reshape(self.taps_per_phase, self.up).T  # phases[p, j] = h[p + j * up]
        self._x = np.zeros(0)
        self._off = np.zeros(0, dtype=bool)
        self._x_start = 0  # input index of _x[0]
        self._received = 0
        self._first: float | None = None
        self._m = 0  # next output index

    def push(self, x: np.ndarray, lead_off: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Resampled values and lead-off flags that the input so far determines."""
        x = np.asarray(x, dtype=np.float64)
        if self._first is None and x.size:
            self._first = float(x[0])
        self._x = np.concatenate([self._x, x])
        self._off = np.concatenate([self._off, np.asarray(lead_off, dtype=bool)])
        self._received += x.size
        # output m needs input indices up to (m * down + delay) // up
        m_end = (self._received * self.up - self.delay - 1) // self.down + 1 if self._received else 0
        m = np.arange(self._m, max(self._m, m_end))
        if m.size == 0:
            return np.zeros(0), np.zeros(0, dtype=bool)
        pos = m * self.down + self.delay
        phase, i0 = pos % self.up, pos // self.up
        idx = i0[:, None] - np.arange(self.taps_per_phase)[None, :] - self._x_start
        before = idx < -self._x_start  # input before the first sample: held at its value
        idx = np.clip(idx, 0, None)
        xs = np.where(before, self._first, self._x[idx])
        taps = self.phases[phase]
        y = np.einsum("ij,ij->i", taps, xs)
        off = (self._off[idx] & ~before & (taps != 0)).any(axis=1)
        self._m = int(m[-1]) + 1
        keep_from = max(0, (self._m * self.down + self.delay) // self.up - self.taps_per_phase + 1)
        drop = keep_from - self._x_start
        if drop > 0:
            self._x, self._off, self._x_start = self._x[drop:], self._off[drop:], keep_from
        return y, off


# ------------------------------------------------------------------ the device rule, incrementally


class DeviceStream:
    """`pipeline.signal.device.device_windows`, one chunk at a time (with `quality`: its FLAT/NOISY checks too;
    the rule's device part then replaces `rule`)."""

    def __init__(
        self, spec: PreprocessSpec, adc_max: int, rule: DeviceRule = DEFAULT_RULE, hop: int | None = None, quality: QualityRule | None = None
    ) -> None:
        if spec.filter != "causal":
            raise ValueError(f"filter {spec.filter!r}: the device runs the causal filter only")
        rule = quality.device if quality is not None else rule
        self.spec, self.adc_max, self.rule, self.quality = spec, adc_max, rule, quality
        self.hop = spec.device_hop if hop is None else hop
        self.sos = spec.sos()
        self._zi_unit = sps.sosfilt_zi(self.sos)[:, None, :]
        self._limit = rule.saturation_max_samples(spec.window)
        self.reset()

    def reset(self) -> None:
        self.next_sample: int | None = None  # session index of the next sample expected
        self._start = 0  # session index of the buffers' first sample
        self._raw = np.zeros(0)
        self._off = np.zeros(0, dtype=bool)
        self._filt = np.zeros(0)
        self._zi: np.ndarray | None = None  # filter state; None while the leads are off
        self._k = 0  # next window index

    def push(self, first_sample: int, raw: np.ndarray, lead_off: np.ndarray) -> list[DeviceWindow]:
        raw = np.asarray(raw, dtype=np.float64)
        off = np.asarray(lead_off, dtype=bool)
        if raw.shape != off.shape or raw.ndim != 1:
            raise ValueError(f"samples {raw.shape} and lead-off flags {off.shape} must be one channel of the same length")
        if raw.size and (raw.min() < 0 or raw.max() > self.adc_max):
            raise ValueError(f"samples outside the ADC range 0..{self.adc_max}")
        if self.next_sample is None or first_sample < self.next_sample:
            self.reset()
            self.next_sample = self._start = first_sample
            self._k = -(-first_sample // self.hop)
        if first_sample > self.next_sample:  # lost samples: lead-off, as on the device
            gap = first_sample - self.next_sample
            raw = np.concatenate([np.full(gap, float(self.adc_max)), raw])
            off = np.concatenate([np.ones(gap, dtype=bool), off])
        self._raw = np.concatenate([self._raw, raw])
        self._off = np.concatenate([self._off, off])
        self._filt = np.concatenate([self._filt, self._filter(raw, off)])
        self.next_sample += raw.size
        out = []
        while (s := self._k * self.hop) + self.spec.window <= self.next_sample:
            a, b = s - self._start, s - self._start + self.spec.window
            if self._off[a:b].any():
                out.append(DeviceWindow(self._k, s, WindowStatus.LEAD_OFF, None))
            elif int(saturated_mask(self._raw[a:b], self.adc_max, self.rule).sum()) > self._limit:
                out.append(DeviceWindow(self._k, s, WindowStatus.SATURATED, None))
            elif (st := self._quality(a, b)) != WindowStatus.OK:
                out.append(DeviceWindow(self._k, s, st, None))
            else:
                out.append(DeviceWindow(self._k, s, WindowStatus.OK, zscore(self._filt[a:b], self.spec.zscore_eps)))
            self._k += 1
        drop = min(self._k * self.hop, self.next_sample) - self._start
        if drop > 0:
            self._raw, self._off, self._filt = self._raw[drop:], self._off[drop:], self._filt[drop:]
            self._start += drop
        return out

    def _quality(self, a: int, b: int) -> QualityStatus:
        """FLAT, NOISY or OK by the quality rule (OK without one); resampled values are rounded to counts."""
        if self.quality is None:
            return QualityStatus.OK
        return assess_window(np.rint(self._raw[a:b]), None, self._filt[a:b], self.adc_max, self.spec.fs, self.quality).status

    def _filter(self, raw: np.ndarray, off: np.ndarray) -> np.ndarray:
        """Continue the causal filter over good samples; lead-off samples stop it (0 in the output)."""
        y = np.zeros(raw.size)
        i = 0
        while i < raw.size:
            if off[i]:
                self._zi = None
                i += 1
                continue
            j = i + int(np.argmax(off[i:])) if off[i:].any() else raw.size
            seg = raw[i:j][None, :]
            if self._zi is None:
                self._zi = self._zi_unit * seg[:, 0][None, :, None]
            out, self._zi = sps.sosfilt(self.sos, seg, axis=-1, zi=self._zi)
            y[i:j] = out[0]
            i = j
        return y


# ------------------------------------------------------------------ models


def _checkpoint_model(path: Path) -> CheckpointModel:
    from pipeline.models.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    if ckpt.in_leads != 1:
        raise ValueError(f"{path}: the model takes leads {ckpt.leads}; a live stream has one lead")
    return CheckpointModel(ckpt)


def _bundle_model(path: Path) -> BundleModel:
    from export.bundle_model import BundleModel

    model = BundleModel.load(path, verify=True)
    if len(model.leads) != 1:
        raise ValueError(f"{path}: the model takes leads {list(model.leads)}; a live stream has one lead")
    return model


class HostClassifier:
    """A model and the device rule over one live stream; `feed` blocks, get the windows they complete."""

    def __init__(self, model: CheckpointModel | BundleModel, rate_hz: float | None = None, adc_bits: int = 12) -> None:
        self.model = model
        self.spec: PreprocessSpec = model.spec
        self.label_names: tuple[str, ...] = model.labels
        self.rate_hz = float(self.spec.fs)
        self.adc_bits = adc_bits
        self.restarts = 0
        self.configure(rate_hz or self.spec.fs, adc_bits)

    @classmethod
    def load(cls, path: str | Path, *, rate_hz: float | None = None, adc_bits: int = 12) -> HostClassifier:
        """From a checkpoint file (.pt, float model) or a bundle directory (int8 model); `rate_hz` and
        `adc_bits` are the source's (default: the spec's rate, 12 bits)."""
        path = Path(path)
        if path.is_dir():
            model: CheckpointModel | BundleModel = _bundle_model(path)
        elif path.is_file():
            model = _checkpoint_model(path)
        else:
            raise ValueError(f"{path}: no such checkpoint file or bundle directory")
        return cls(model, rate_hz, adc_bits)

    @property
    def kind(self) -> str:
        return self.model.kind

    def mismatch(self, info: object) -> str | None:
        """Why a device's INFO (host.protocol.Info) would window or classify differently from this model, or None."""
        fp = getattr(info, "spec_fingerprint", b"").hex()
        if fp and fp != self.spec.fingerprint():
            return f"the device preprocesses with spec {fp}, the model with {self.spec.fingerprint()}"
        tflite = getattr(self.model, "tflite", None)  # a bundle's model
        if tflite is not None:
            import hashlib

            sha = hashlib.sha256(tflite.read_bytes()).hexdigest()
            dev = getattr(info, "model_sha256", b"").hex()
            if dev and dev != "0" * 64 and dev != sha:
                return f"the device runs model {dev[:16]}..., the bundle has {sha[:16]}..."
        return None

    def configure(self, rate_hz: float, adc_bits: int) -> None:
        """Set the source's rate and ADC resolution; a change restarts the stream (counted in `restarts`)."""
        if not 1 <= adc_bits <= 15:
            raise ValueError(f"ADC bits must be 1..15, not {adc_bits}")
        if hasattr(self, "stream") and (rate_hz, adc_bits) == (self.rate_hz, self.adc_bits):
            return
        if hasattr(self, "stream"):
            self.restarts += 1
        self.rate_hz, self.adc_bits = float(rate_hz), adc_bits
        self.stream = DeviceStream(self.spec, 2**adc_bits - 1, quality=self.model.uncertainty.quality)
        self.resampler = None if self.rate_hz == self.spec.fs else StreamResampler(self.rate_hz, self.spec.fs)
        self._next_in: int | None = None

    def feed(self, block: BlockLike) -> list[WindowResult]:
        """Every window completed by this block, classified when its status is OK."""
        values = np.asarray(block.values)
        off = np.asarray(block.lead_off, dtype=bool)
        if self.resampler is None:
            windows = self.stream.push(int(block.first_sample), values, off)
        else:
            windows = self.stream.push(*self._resampled(int(block.first_sample), values, off))
        return self._classify(windows)

    def _resampled(self, first: int, values: np.ndarray, off: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
        assert self.resampler is not None
        if self._next_in is not None and first < self._next_in:  # the device restarted
            self.resampler = StreamResampler(self.rate_hz, self.spec.fs)
            self._next_in = None
        if self._next_in is not None and first > self._next_in:  # lost: hold the last value, flagged lead-off
            gap = first - self._next_in
            values = np.concatenate([np.full(gap, self._last), values])
            off = np.concatenate([np.ones(gap, dtype=bool), off])
        if values.size:
            self._last = float(values[-1])
        self._next_in = first + values.size if self._next_in is None else self._next_in + values.size
        out_start = self.resampler._m
        y, yoff = self.resampler.push(values, off)
        # resampled values stay within the ADC range for the saturation rule (FIR overshoot at edges)
        return out_start, np.clip(y, 0, self.stream.adc_max), yoff

    def _classify(self, windows: list[DeviceWindow]) -> list[WindowResult]:
        return [self._result(a) for a in answer_windows(windows, self.model)]

    def _result(self, a: AnsweredWindow) -> WindowResult:
        if a.probabilities is None:
            return WindowResult(a.index, a.start, a.status, None, None)
        score = a.logits if a.logits is not None else a.probabilities
        label = self.label_names[int(np.argmax(score))]  # first on ties, like the device
        logits = tuple(int(v) for v in a.logits) if a.logits is not None else None
        return WindowResult(a.index, a.start, a.status, label, {n: float(p) for n, p in zip(self.label_names, a.probabilities)}, logits)
