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

from dataclasses import dataclass

import numpy as np

from pipeline.signal.device_rule import DEFAULT_RULE, DeviceRule, WindowStatus, good_runs, saturated_mask
from pipeline.signal.preprocess import device_filter, zscore
from pipeline.signal.spec import PreprocessSpec
from pipeline.signal.quality import QualityRule, assess_window


@dataclass
class DeviceWindow:
    index: int
    start: int
    status: WindowStatus  # a quality.QualityStatus when a quality rule was applied
    z: np.ndarray | None  # (window,) float32 when status is OK


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
    for a, b in good_runs(off):
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
        elif quality is not None and (st := assess_window(raw[s:e], None, filtered[s:e], adc_max, spec.fs, quality).status) != WindowStatus.OK:
            out.append(DeviceWindow(k, s, st, None))
        else:
            out.append(DeviceWindow(k, s, WindowStatus.OK, zscore(filtered[s:e], spec.zscore_eps)))
    return out
