"""The device's own window rule: status codes, the lead-off and saturation test (`DeviceRule`).

`pipeline.signal.device` applies it to a stream; `pipeline.signal.quality` extends its statuses.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass

import numpy as np


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


def saturated_mask(raw: np.ndarray, adc_max: int, rule: DeviceRule = DEFAULT_RULE) -> np.ndarray:
    raw = np.asarray(raw, dtype=np.int64)
    margin = rule.rail_margin(adc_max)
    return (raw <= margin) | (raw >= adc_max - margin)


def good_runs(lead_off: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of every run of samples without a lead-off flag."""
    bad = np.concatenate([[True], lead_off.astype(bool), [True]])
    edges = np.flatnonzero(np.diff(bad.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]
