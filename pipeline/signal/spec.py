"""PreprocessSpec: the single source of truth for what the device and training compute.

`export` writes it into the bundle manifest and a generated C header; nothing else
restates these numbers.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from scipy import signal as sps

FilterMode = Literal["causal", "zero-phase"]
FilterInit = Literal["steady", "zero"]


@dataclass(frozen=True)
class PreprocessSpec:
    """Rate, filter, window and normalisation shared by pipeline, export and firmware."""

    fs: int = 250
    window: int = 2500
    dataset_hop: int = 2500
    device_hop: int = 625
    band_hz: tuple[float, float] = (0.5, 40.0)
    band_order: int = 4
    filter: FilterMode = "causal"
    # "steady": the causal filter state starts at the steady state of the first sample
    # (scipy's sosfilt_zi scaled by x[0]), so a DC offset (2048 ADC counts, or a PTB-XL
    # baseline) produces no start-up step; "zero" is plain sosfilt with zero state.
    filter_init: FilterInit = "steady"
    notch_hz: float | None = None
    notch_q: float = 30.0
    zscore_eps: float = 1e-6
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        lo, hi = self.band_hz
        if not 0 < lo < hi < self.fs / 2:
            raise ValueError(f"band {self.band_hz} Hz must satisfy 0 < low < high < fs/2 = {self.fs / 2}")
        if self.filter not in ("causal", "zero-phase"):
            raise ValueError(f"filter must be 'causal' or 'zero-phase', not {self.filter!r}")
        if self.filter_init not in ("steady", "zero"):
            raise ValueError(f"filter_init must be 'steady' or 'zero', not {self.filter_init!r}")
        if self.notch_hz is not None and self.notch_hz not in (50.0, 60.0):
            raise ValueError(f"notch must be 50 or 60 Hz, not {self.notch_hz}")
        if self.window <= 0 or self.dataset_hop <= 0 or self.device_hop <= 0:
            raise ValueError("window and hops must be positive sample counts")

    @property
    def window_seconds(self) -> float:
        return self.window / self.fs

    def band_sos(self) -> np.ndarray:
        """Butterworth band-pass as second-order sections (float64)."""
        return sps.butter(self.band_order, self.band_hz, btype="bandpass", fs=self.fs, output="sos")

    def notch_sos(self) -> np.ndarray | None:
        if self.notch_hz is None:
            return None
        b, a = sps.iirnotch(self.notch_hz, self.notch_q, fs=self.fs)
        return sps.tf2sos(b, a)

    def sos(self) -> np.ndarray:
        """Every causal section the device runs, in order: band-pass then optional notch."""
        return _cascade(self).copy()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("extra")
        d["band_hz"] = list(self.band_hz)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PreprocessSpec":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__ and k != "extra"}
        unknown = set(d) - set(known)
        if unknown:
            raise ValueError(f"unknown PreprocessSpec fields: {sorted(unknown)}")
        if "band_hz" in known:
            known["band_hz"] = tuple(float(v) for v in known["band_hz"])
        return cls(**known)

    def fingerprint(self) -> str:
        """Short sha256 of the canonical JSON form, to tag data sets, checkpoints and bundles."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def with_(self, **changes: Any) -> "PreprocessSpec":
        return replace(self, **changes)


@lru_cache(maxsize=8)
def _cascade(spec: PreprocessSpec) -> np.ndarray:
    notch = spec.notch_sos()
    band = spec.band_sos()
    return band if notch is None else np.vstack([band, notch])


DEFAULT_SPEC = PreprocessSpec()
