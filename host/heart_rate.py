"""Heart rate from a live ECG: a streaming R-peak detector on raw ADC counts, and HR from its RR intervals.

A causal Pan-Tompkins-style detector that takes the signal block by block at the source's rate
(100-1000 Hz), with the same beats whatever the block sizes:
band-pass 5-15 Hz (Butterworth, causal) -> derivative -> square (polarity independent: an AD8232 worn
with swapped electrodes gives inverted QRS complexes) -> moving-window integration (150 ms) -> peaks
of the integrated signal against adaptive signal/noise thresholds, a refractory period, a T-wave slope
test and a search-back for missed beats. A peak is decided once `decision_s` of signal follows it, so
beats come out about 0.2 s late. Lead-off (or a gap in the sample counter) ends a segment: thresholds
are learnt again over `learning_s` of good signal and the beat list starts empty (a gap of at most
`max_bridged_s`, e.g. one garbled text line, is bridged by holding the last value instead).

HR = 60 / median RR over the beats of the last `hr_window_s` seconds; None with fewer than
`min_beats` beats there or while a lead is off.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from scipy import signal as sps
from scipy.ndimage import maximum_filter1d

MIN_RATE_HZ, MAX_RATE_HZ = 100.0, 1000.0


@dataclass(frozen=True)
class DetectorConfig:
    band_hz: tuple[float, float] = (5.0, 15.0)
    band_order: int = 2  # per edge: 4 poles in all
    integration_s: float = 0.150
    refractory_s: float = 0.250
    decision_s: float = 0.200  # a peak must be the largest within +-this; it is decided this late
    t_wave_s: float = 0.360  # a peak this soon after a beat must be steep to count as a beat
    t_wave_slope_ratio: float = 0.5
    learning_s: float = 2.0
    searchback_rr: float = 1.66  # look back for a missed beat after this many mean RR intervals
    default_rr_s: float = 1.0  # mean RR until two intervals are known
    silence_s: float = 2.5  # nothing found for this long: halve the thresholds
    history_s: float = 6.0  # processed signal kept for search-back
    max_bridged_s: float = 0.02  # lost samples up to this long are bridged; a longer gap restarts detection
    hr_window_s: float = 10.0
    min_beats: int = 3


DEFAULT_CONFIG = DetectorConfig()


class _Segment:
    """Detection over one stretch of contiguous, electrode-on samples starting at absolute index `start`."""

    def __init__(self, fs: float, start: int, x0: float, sos: np.ndarray, delay: int, cfg: DetectorConfig) -> None:
        self.fs, self.cfg, self.sos, self.delay = fs, cfg, sos, delay
        self.start = start
        self.n = 0  # samples processed
        self.zi = sps.sosfilt_zi(sos) * x0  # settled on the first sample: no start-up transient
        self.win = max(1, int(round(cfg.integration_s * fs)))
        self.reach = max(1, int(round(cfg.decision_s * fs)))
        self.refractory = int(round(cfg.refractory_s * fs))
        self.t_wave = int(round(cfg.t_wave_s * fs))
        self.learning = int(round(cfg.learning_s * fs))
        self.silence = int(round(cfg.silence_s * fs))
        self.keep = int(round(cfg.history_s * fs)) + 2 * self.win + 2 * self.reach
        self.prev_bp = 0.0
        self.sq_tail = np.zeros(self.win - 1)
        # History, relative index base `self.base` (segment-relative sample of element 0).
        self.base = 0
        self.bp = np.zeros(0)
        self.slope = np.zeros(0)
        self.mwi = np.zeros(0)
        self.scanned = 0  # candidates before this (segment-relative) index have been decided
        self.learnt = False
        self.spki = self.npki = 0.0
        self.beats: list[int] = []  # segment-relative MWI peak index of each beat
        self.beat_slope = 0.0
        self.rr: deque[int] = deque(maxlen=8)
        self.noise: list[tuple[int, float, float]] = []  # (index, peak, slope) below threshold, for search-back
        self.quiet_from = 0

    # ---- signal chain
    def process(self, x: np.ndarray) -> list[float]:
        """Feed contiguous samples; returns the absolute positions (fractional samples) of the beats decided."""
        if x.size == 0:
            return []
        bp, self.zi = sps.sosfilt(self.sos, x, zi=self.zi)
        d = np.diff(bp, prepend=self.prev_bp) * self.fs
        self.prev_bp = float(bp[-1])
        sq = np.concatenate([self.sq_tail, d * d])
        csum = np.concatenate([[0.0], np.cumsum(sq)])
        mwi = (csum[self.win :] - csum[: -self.win]) / self.win
        self.sq_tail = sq[sq.size - (self.win - 1) :]
        self.bp = np.concatenate([self.bp, bp])
        self.slope = np.concatenate([self.slope, np.abs(d)])
        self.mwi = np.concatenate([self.mwi, mwi])
        self.n += x.size
        found = self._decide()
        excess = self.bp.size - self.keep
        if excess > 0:
            self.bp, self.slope, self.mwi = self.bp[excess:], self.slope[excess:], self.mwi[excess:]
            self.base += excess
        return [self.start + b for b in found]

    # ---- decisions
    def _at(self, a: np.ndarray, i: int, j: int) -> np.ndarray:
        """a[i:j] in segment-relative indices (clipped to the history kept)."""
        return a[max(0, i - self.base) : max(0, j - self.base)]

    def _learn(self) -> None:
        m = self._at(self.mwi, 0, self.learning)
        self.spki = 0.5 * float(m.max())
        self.npki = 0.5 * float(m.mean())
        self.learnt = True
        self.quiet_from = 0

    def _thr1(self) -> float:
        return self.npki + 0.25 * (self.spki - self.npki)

    def _rr_mean(self) -> float:
        return float(np.mean(self.rr)) if len(self.rr) >= 2 else self.cfg.default_rr_s * self.fs

    def _slope_at(self, i: int) -> float:
        s = self._at(self.slope, i - self.win, i + 1)
        return float(s.max()) if s.size else 0.0

    def _fiducial(self, i: int) -> float:
        """R position for an MWI peak at i: the largest |band-passed| value before it (to a fraction of a
        sample, by a parabola through its neighbours: RR at 125 Hz would otherwise move HR in 4 bpm steps
        at 180 bpm), less the filter's group delay."""
        lo = max(i - self.win - self.reach // 2, self.base)
        seg = np.abs(self._at(self.bp, lo, i + 1))
        if not seg.size:
            return float(i)
        k = int(np.argmax(seg))
        frac = 0.0
        if 0 < k < seg.size - 1:
            y0, y1, y2 = seg[k - 1], seg[k], seg[k + 1]
            den = y0 - 2 * y1 + y2
            frac = 0.5 * (y0 - y2) / den if den < 0 else 0.0
        return max(0.0, lo + k + frac - self.delay)

    def _beat(self, i: int, peak: float, slope: float, searchback: bool) -> float:
        if self.beats:
            self.rr.append(i - self.beats[-1])
        self.beats.append(i)
        self.beat_slope = slope
        self.spki = (0.25 * peak + 0.75 * self.spki) if searchback else (0.125 * peak + 0.875 * self.spki)
        self.noise = [c for c in self.noise if c[0] > i]
        self.quiet_from = i
        return self._fiducial(i)

    def _search_back(self, now: int, out: list[float]) -> None:
        """Before deciding anything at `now`: recover missed beats, or lower thresholds after a silence."""
        while True:
            last = self.beats[-1] if self.beats else None
            if last is None or now - last <= self.cfg.searchback_rr * self._rr_mean():
                break
            thr2 = 0.5 * self._thr1()
            pool = [c for c in self.noise if c[0] - last >= self.refractory and c[0] < now and c[1] > thr2]
            if not pool:
                break
            i, peak, slope = max(pool, key=lambda c: c[1])
            out.append(self._beat(i, peak, slope, searchback=True))
        if now - self.quiet_from > self.silence:
            self.spki *= 0.5
            self.npki *= 0.5
            self.quiet_from = now

    def _decide(self) -> list[float]:
        out: list[float] = []
        if not self.learnt:
            if self.n < max(self.learning, self.reach + 1):
                return out
            self._learn()
        end = self.n - self.reach  # decidable: the whole +-reach neighbourhood is in
        lo = max(self.scanned, self.base + self.reach)
        if end <= lo:
            return out
        m = self._at(self.mwi, lo - self.reach, end + self.reach)
        local = maximum_filter1d(m, size=2 * self.reach + 1, mode="nearest")
        core = slice(self.reach, self.reach + end - lo)
        cand = np.flatnonzero((m[core] >= local[core]) & (m[core] > 0))
        prev = -1
        for k in cand:
            i = lo + int(k)
            if prev >= 0 and i - prev <= self.reach:
                continue  # a plateau: its first sample stands for it
            prev = i
            self._search_back(i, out)
            peak = float(self.mwi[i - self.base])
            slope = self._slope_at(i)
            last = self.beats[-1] if self.beats else None
            if last is not None and i - last < self.refractory:
                continue
            is_t_wave = last is not None and i - last < self.t_wave and slope < self.cfg.t_wave_slope_ratio * self.beat_slope
            if peak > self._thr1() and not is_t_wave:
                out.append(self._beat(i, peak, slope, searchback=False))
            else:
                self.npki = 0.125 * peak + 0.875 * self.npki
                self.noise.append((i, peak, slope))
        self.scanned = end
        self._search_back(end, out)
        horizon = end - int(self.cfg.history_s * self.fs)
        self.noise = [c for c in self.noise if c[0] >= horizon]
        return out


class HeartRate:
    """Streaming R-peak detector and heart rate for one signal at `fs` Hz (raw ADC counts in)."""

    def __init__(self, fs: float, config: DetectorConfig = DEFAULT_CONFIG) -> None:
        if not MIN_RATE_HZ <= fs <= MAX_RATE_HZ:
            raise ValueError(f"heart rate: sample rate {fs:g} Hz is outside {MIN_RATE_HZ:g}-{MAX_RATE_HZ:g} Hz")
        self.fs = float(fs)
        self.cfg = config
        self.sos = sps.butter(config.band_order, config.band_hz, btype="bandpass", fs=self.fs, output="sos")
        b, a = sps.sos2tf(self.sos)
        centre = float(np.sqrt(config.band_hz[0] * config.band_hz[1]))
        self.delay = int(round(float(sps.group_delay((b, a), w=[centre], fs=self.fs)[1][0])))
        self._segment: _Segment | None = None
        self._next: int | None = None  # absolute index expected next
        self._last: float | None = None  # the last value fed
        self._beats: deque[float] = deque()  # R positions, fractional samples
        self.lead_off = False
        self.restarts = 0

    @property
    def beats(self) -> list[float]:
        """Absolute positions (fractional samples) of the R peaks kept (the last `hr_window_s` seconds or so)."""
        return list(self._beats)

    def _restart(self) -> None:
        if self._segment is not None:
            self.restarts += 1
        self._segment = None
        self._beats.clear()

    def feed(self, values: np.ndarray, lead_off: np.ndarray | None = None, first_sample: int | None = None) -> list[int]:
        """Take the next block (raw counts; lead-off flags; its first sample's index, which may jump after
        lost samples); returns the absolute indices of the beats decided with it."""
        x = np.asarray(values, dtype=np.float64)
        off = np.zeros(x.size, bool) if lead_off is None else np.asarray(lead_off, dtype=bool)
        if off.size != x.size:
            raise ValueError(f"heart rate: {x.size} samples but {off.size} lead-off flags")
        start = self._next if first_sample is None else int(first_sample)
        start = 0 if start is None else start
        if self._next is not None and start != self._next:
            gap = start - self._next
            if 0 < gap <= self.cfg.max_bridged_s * self.fs and self._last is not None and not self.lead_off:
                # a few samples lost (a garbled text line): hold the last value over them, keep the beats
                x = np.concatenate([np.full(gap, self._last), x])
                off = np.concatenate([np.zeros(gap, bool), off])
                start = self._next
            else:
                self._restart()  # samples lost (or a device reset): the filters and RR would straddle the gap
        self._next = start + x.size
        if x.size:
            self._last = float(x[-1])
        if x.size == 0:
            return []
        found: list[float] = []
        edges = np.flatnonzero(np.diff(off.astype(np.int8))) + 1
        for a, b in zip(np.concatenate([[0], edges]), np.concatenate([edges, [x.size]])):
            if off[a]:
                if not self.lead_off:
                    self._restart()
                self.lead_off = True
                continue
            self.lead_off = False
            if self._segment is None:
                self._segment = _Segment(self.fs, start + int(a), float(x[a]), self.sos, self.delay, self.cfg)
            found += self._segment.process(x[a:b])
        self._beats.extend(found)
        horizon = self._next - int(self.cfg.hr_window_s * self.fs)
        while self._beats and self._beats[0] < horizon - self.fs:  # a second more than HR needs
            self._beats.popleft()
        return [int(round(b)) for b in found]

    @property
    def bpm(self) -> float | None:
        """60 / median RR over the last `hr_window_s` s; None while a lead is off or with too few beats."""
        if self.lead_off or self._next is None:
            return None
        horizon = self._next - self.cfg.hr_window_s * self.fs
        recent = [b for b in self._beats if b >= horizon]
        if len(recent) < self.cfg.min_beats:
            return None
        return 60.0 * self.fs / float(np.median(np.diff(recent)))


def detect_r_peaks(values: np.ndarray, fs: float, lead_off: np.ndarray | None = None, block: int = 0,
                   config: DetectorConfig = DEFAULT_CONFIG) -> np.ndarray:
    """All R peaks of a whole signal, fed as the live path does (blocks of `block` samples; 0: 0.1 s)."""
    hr = HeartRate(fs, config)
    x = np.asarray(values)
    off = np.zeros(x.size, bool) if lead_off is None else np.asarray(lead_off, dtype=bool)
    step = block or max(1, int(fs // 10))
    out: list[int] = []
    for i in range(0, x.size, step):
        out += hr.feed(x[i : i + step], off[i : i + step])
    return np.asarray(sorted(out), dtype=np.int64)
