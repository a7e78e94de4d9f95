"""What `ecg-host monitor` keeps of a live board: the trace, heart rate, latest window and counters.

`host.monitor` feeds it from the source; the views (`host.monitor_view`) only read it. The heart rate
is the board's own (RESULT hr_x10 and rr_irregularity, beats marked in the trace) when it has the BEATS
capability, else `host.heart_rate`'s detector on the raw samples (plain-text sketches, older firmware).
"""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from export.protocol_defs import WindowStatus
from pipeline.signal.device_rule import DEFAULT_RULE, saturated_mask
from pipeline.signal.preprocess import output_probabilities

from .heart_rate import HeartRate

TRACE_S = 5.0
SATURATION_S = 0.5  # "saturated now": over the last this many seconds of good samples
MAX_BEAT_MARKS = 64  # board beats kept for marking the trace (more than TRACE_S holds at 300 bpm)


@dataclass(frozen=True)
class Window:
    """One classified (or refused) window as shown: from a device RESULT or the host classifier."""

    window_index: int
    status: str  # WindowStatus name
    label: str | None
    probabilities: dict[str, float] | None


def device_window(result: Any, info: Any) -> Window:
    """A device RESULT as shown: probabilities = softmax of its int8 logits dequantized with INFO's output
    scale and zero point."""
    labels = tuple(info.labels)
    probs = None
    if result.logits and info.output_scale > 0 and len(result.logits) == len(labels):
        p = output_probabilities(np.asarray(result.logits), info.output_scale, info.output_zero_point)
        probs = {n: float(v) for n, v in zip(labels, p)}
    label = labels[result.label] if 0 <= result.label < len(labels) else None
    return Window(int(result.window_index), WindowStatus(result.status).name, label, probs)


class MonitorState:
    """Everything the views show, updated from the source's blocks and results."""

    def __init__(self, port: str, kind: str, rate_hz: float, rate_estimated: bool, adc_bits: int,
                 info_line: str = "", labels: tuple[str, ...] = (), trace_seconds: float = TRACE_S,
                 clock: Callable[[], float] = time.monotonic, board_beats: bool = False) -> None:  # fmt: skip
        self.port, self.kind, self.info_line = port, kind, info_line
        self.board_beats = board_beats  # HR from the board's RESULTs and its beats, not host.heart_rate
        self.rr_irregularity: float | None = None  # the board's, as a fraction (0.05: 5 %)
        self._board_bpm: float | None = None
        self._beats: deque[int] = deque(maxlen=MAX_BEAT_MARKS)
        self.rate_estimated, self.adc_bits = rate_estimated, adc_bits
        self.trace_seconds = trace_seconds
        self.clock = clock
        self.started = clock()
        self.samples = 0
        self.bpm: float | None = None
        self.hr_history: list[tuple[float, float]] = []
        self.lead_off_now = False
        self.saturated_now = False
        self.latest: Window | None = None
        self.label_counts: Counter[str] = Counter({n: 0 for n in labels})
        self.status_counts: Counter[str] = Counter({s.name: 0 for s in WindowStatus})
        self.stats: dict[str, int] = {}
        self.classifier_note = ""
        self.hr: HeartRate | None = None
        self.rate_hz = 0.0
        self.set_rate(rate_hz, rate_estimated)

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    def set_rate(self, rate_hz: float, estimated: bool) -> None:
        """(Re)start the trace and the heart rate at a new rate (a text rate estimate may be refined)."""
        self.rate_estimated = estimated
        if not rate_hz or rate_hz != rate_hz or abs(rate_hz - self.rate_hz) <= 0.005 * rate_hz:
            return
        self.rate_hz = float(rate_hz)
        n = max(1, int(round(self.trace_seconds * rate_hz)))
        self._values: deque[int] = deque(maxlen=n)
        self._off: deque[bool] = deque(maxlen=n)
        self._index: deque[int] = deque(maxlen=n)  # session sample index of each trace sample
        self.hr = None if self.board_beats else HeartRate(self.rate_hz)

    def add_block(self, first_sample: int, values: np.ndarray, lead_off: np.ndarray) -> None:
        values = np.asarray(values)
        lead_off = np.asarray(lead_off, dtype=bool)
        if values.size == 0:
            return
        self.samples += int(values.size)
        self._values.extend(int(v) for v in values)
        self._off.extend(bool(f) for f in lead_off)
        self._index.extend(range(first_sample, first_sample + values.size))
        self.lead_off_now = bool(lead_off[-1])
        if self.hr is not None:
            self.hr.feed(values, lead_off, first_sample)
            self.bpm = self.hr.bpm
        else:
            self.bpm = None if self.lead_off_now else self._board_bpm
        if self.bpm is not None:
            self.hr_history.append((self.elapsed, self.bpm))
            del self.hr_history[:-2000]
        recent_n = max(1, int(SATURATION_S * self.rate_hz))
        v = np.fromiter(self._values, dtype=np.int64)[-recent_n:]
        off = np.fromiter(self._off, dtype=bool)[-recent_n:]
        sat = saturated_mask(v[~off], 2**self.adc_bits - 1)
        self.saturated_now = bool(sat.size) and sat.mean() > DEFAULT_RULE.saturation_max_fraction

    def add_rhythm(self, result: Any) -> None:
        """A board RESULT's heart rate and RR irregularity (a device with the BEATS capability)."""
        self._board_bpm = result.bpm
        self.rr_irregularity = result.irregularity
        self.bpm = None if self.lead_off_now else self._board_bpm

    def add_beats(self, samples: list[int]) -> None:
        """Session sample indices of beats the board detected."""
        self._beats.extend(int(b) for b in samples)

    def add_window(self, w: Window) -> None:
        self.latest = w
        self.status_counts[w.status] += 1
        if w.label:
            self.label_counts[w.label] += 1

    def trace(self) -> tuple[np.ndarray, np.ndarray]:
        """The last `trace_seconds` of raw counts and their lead-off flags."""
        return np.fromiter(self._values, dtype=np.int64), np.fromiter(self._off, dtype=bool)

    def trace_beats(self) -> np.ndarray:
        """Positions in `trace()` of the board's beats that fall inside it (empty without the board's beats)."""
        index = np.fromiter(self._index, dtype=np.int64)
        beats = np.fromiter(self._beats, dtype=np.int64)
        pos = np.searchsorted(index, beats)
        inside = pos < index.size
        pos, beats = pos[inside], beats[inside]
        return pos[index[pos] == beats]

    @property
    def trace_range(self) -> str:
        v, off = self.trace()
        good = v[~off]
        return f"{good.min()}..{good.max()}" if good.size else ""
