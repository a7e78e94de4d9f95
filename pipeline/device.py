"""The device path as a reference: raw ADC samples and lead-off flags in, windows and their status out.

The firmware core (firmware/ecg_edge/src) computes the same thing sample by sample; `ecg-export
crosscheck` compares the two. The rule, defined here once and exported into the config header:

- Window k covers device samples [k * hop, k * hop + window) counted from power-on or reset; its
  result is due when its last sample arrives.
- LEAD_OFF: a sample in the window had the LO+ or LO- flag set. The filter restarts from the
  steady state of the first good sample after the leads come back, so every window without a
  lead-off sample was filtered by one uninterrupted run of the filter.
- SATURATED: more than `saturation_max_samples` samples of the window sit at an ADC rail
  (within `rail_margin(adc_max)` counts of 0 or `adc_max`).
- OK: classified. The window is z-scored (`preprocess.zscore`) and quantized for the model.

With a `quality.QualityRule` (`device_windows(..., quality=rule)`, a bundle that carries one) the
windows that pass get `quality.assess_window`'s FLAT and NOISY checks too (statuses are then
`quality.QualityStatus`); LOW_CONFIDENCE comes later, from the model's outputs
(`quality.low_confidence_int8`).
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from .preprocess import device_filter, zscore
from .spec import PreprocessSpec

if TYPE_CHECKING:
    from .quality import QualityRule


class WindowStatus(enum.IntEnum):
    """Why a window was or was not classified (the numbers go into the C header and the protocol)."""

    OK = 0
    LEAD_OFF = 1
    SATURATED = 2


@dataclass(frozen=True)
class DeviceRule:
    """Signal-quality rule the device applies before classifying a window."""

    saturation_max_fraction: float = 0.01
    rail_margin_per_1024: int = 1  # counts of margin per 1024 ADC codes (12-bit: 4, 10-bit: 1)

    def saturation_max_samples(self, window: int) -> int:
        return int(np.floor(self.saturation_max_fraction * window))

    def rail_margin(self, adc_max: int) -> int:
        """Counts from either rail that still count as saturated (at least 1)."""
        return max(1, (adc_max + 1) * self.rail_margin_per_1024 // 1024)

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


DEFAULT_RULE = DeviceRule()


@dataclass
class DeviceWindow:
    index: int
    start: int
    status: WindowStatus  # a quality.QualityStatus when a quality rule was applied
    z: np.ndarray | None  # (window,) float32 when status is OK


def saturated_mask(raw: np.ndarray, adc_max: int, rule: DeviceRule = DEFAULT_RULE) -> np.ndarray:
    raw = np.asarray(raw, dtype=np.int64)
    margin = rule.rail_margin(adc_max)
    return (raw <= margin) | (raw >= adc_max - margin)


def _good_runs(lead_off: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of every run of samples without a lead-off flag."""
    bad = np.concatenate([[True], lead_off.astype(bool), [True]])
    edges = np.flatnonzero(np.diff(bad.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def device_windows(
    raw: np.ndarray,
    lead_off: np.ndarray | None,
    spec: PreprocessSpec,
    adc_max: int,
    rule: DeviceRule = DEFAULT_RULE,
    hop: int | None = None,
    quality: QualityRule | None = None,
) -> list[DeviceWindow]:
    """Every window the device emits for this stream of ADC counts, with its status and z-scores.

    `quality`: also apply its FLAT/NOISY checks (its `device` part must be `rule` or `rule` left at
    the default, which it then replaces).
    """
    if quality is not None:
        if rule != DEFAULT_RULE and rule != quality.device:
            raise ValueError(f"device rule {rule} differs from the quality rule's {quality.device}")
        rule = quality.device
    if spec.filter != "causal":
        raise ValueError(f"filter {spec.filter!r}: the device runs the causal filter only")
    raw = np.asarray(raw)
    if raw.ndim != 1:
        raise ValueError(f"raw samples must be one channel, got shape {raw.shape}")
    if raw.size and (raw.min() < 0 or raw.max() > adc_max):
        raise ValueError(f"raw samples outside the ADC range 0..{adc_max}")
    off = np.zeros(raw.size, dtype=bool) if lead_off is None else np.asarray(lead_off, dtype=bool)
    if off.shape != raw.shape:
        raise ValueError(f"lead-off flags {off.shape} do not match samples {raw.shape}")
    hop = spec.device_hop if hop is None else hop
    filtered = np.zeros(raw.size, dtype=np.float64)
    for a, b in _good_runs(off):
        filtered[a:b] = device_filter(raw[a:b].astype(np.float64), spec)
    off_count = np.concatenate([[0], np.cumsum(off)])
    sat_count = np.concatenate([[0], np.cumsum(saturated_mask(raw, adc_max, rule))])
    limit = rule.saturation_max_samples(spec.window)
    out = []
    for k, s in enumerate(range(0, raw.size - spec.window + 1, hop)):
        e = s + spec.window
        if off_count[e] > off_count[s]:
            out.append(DeviceWindow(k, s, WindowStatus.LEAD_OFF, None))
        elif sat_count[e] - sat_count[s] > limit:
            out.append(DeviceWindow(k, s, WindowStatus.SATURATED, None))
        elif quality is not None and (st := _quality_status(raw[s:e], filtered[s:e], adc_max, spec, quality)) != WindowStatus.OK:
            out.append(DeviceWindow(k, s, st, None))
        else:
            out.append(DeviceWindow(k, s, WindowStatus.OK, zscore(filtered[s:e], spec.zscore_eps)))
    return out


def _quality_status(raw: np.ndarray, filtered: np.ndarray, adc_max: int, spec: PreprocessSpec, quality: QualityRule) -> enum.IntEnum:
    from .quality import assess_window  # quality builds on this module

    return assess_window(raw, None, filtered, adc_max, spec.fs, quality).status
