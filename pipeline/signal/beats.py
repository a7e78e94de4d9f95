"""The device's beat detector: R peaks in the raw ADC counts at 250 Hz, in integer arithmetic.

Defined once here; `export` writes `BeatConfig` into ecg_config.h (`ECG_BEAT_*`) and the firmware's
ecg_beats.c runs the same rule sample by sample, so both give the same beats to the sample on every
target (soft-float RISC-V included): integers only, no rounding mode to agree on.

Per run of good samples (a lead-off sample or a gap in the sample counter ends a run; the next one
starts from nothing), with x the ADC counts and n the sample within the run:
- low-pass: a moving sum of `lp_len` samples, twice (triangular, gain lp_len^2; at 250 Hz with
  lp_len 5 its zeros sit on 50 Hz and 100 Hz, so mains hum never reaches the detector);
- high-pass: h[n] = hp_len * lp[n - (hp_len - 1) / 2] - (the sum of the last hp_len lp values);
- slope: d[n] = 2 h[n] + h[n-1] - h[n-3] - 2 h[n-4]; e[n] = |d[n]| >> e_shift (so that the integral
  fits 32 bits for 16-bit counts: the firmware keeps it in int32);
- integration: m[n] = the sum of the last `mwi_len` e values;
  before the run's first sample x, lp, h and e are taken as settled (x[0], lp[0], 0, 0);
- candidates: m[p] > 0, m[p] >= every m in [p - reach, p) (within the run), m[p] > every m in
  (p, p + reach]; decided at sample p + reach;
- learning: the first `learn` samples set the thresholds (QRS buffer = the largest m there, noise
  buffer = an eighth of it, RR buffer = `default_rr`); at sample learn - 1 + reach the candidates
  found so far are decided in order, then every later one as it comes;
- a decision (Hamilton and Tompkins 1986): a candidate within `refractory` of the last beat is
  dropped; one above the threshold thr = noise + (qrs - noise) * th_num / 16 (means of the two
  8-entry buffers, floored; thr = noise when qrs <= noise) is a beat unless it comes within
  `t_wave` of the last beat with a slope (max e over [p - mwi_len, p]) under half the last beat's
  (a T wave); everything else is a noise peak, and the largest noise peak since the last beat is kept;
- search-back: once rr_mean * sb_num / sb_den samples have passed since the last beat (rr_mean =
  the floored mean of the last 8 RR intervals), the kept noise peak becomes a beat if it is above
  thr / 2 (checked after each sample's decision, and at the end of the stream);
- a beat's sample: the largest |h| over [p - mwi_len, p] (the first one on a tie), moved back by the
  filters' delay (lp_len - 1 + (hp_len - 1) / 2), not before the run's start.

`window_rhythm` turns the beats of one window into the two figures a device RESULT carries (heart
rate and RR irregularity), in integers too, so the firmware computes the same numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from pipeline.signal.device_rule import WindowStatus, good_runs

BUFFER = 8  # entries of the QRS, noise and RR buffers (means are sums // 8)
TH_SHIFT = 4  # the threshold fraction is th_num / 2**TH_SHIFT
HR_UNKNOWN = 0  # window_rhythm's hr_x10 when the window has fewer than 2 RR intervals or a lead off
HR_X10_MAX = 0xFFFF  # hr_x10 is a u16 on the wire: known rates are clamped to 1..HR_X10_MAX
RR_IRREGULARITY_UNKNOWN = 0xFFFF  # window_rhythm's irregularity when the heart rate is unknown
RR_IRREGULARITY_MAX = 0xFFFE  # known irregularities are clamped to this (never reached: see window_rhythm)
BEAT_LOG = 64  # the last decided beats a device keeps for window_rhythm (see window_rhythms; > max_beats_in)


class BeatConfigError(ValueError):
    """A beat detector setting the integer rule cannot take."""


@dataclass(frozen=True)
class BeatConfig:
    """The detector's parameters, in samples at the device rate (250 Hz)."""

    fs: int = 250
    lp_len: int = 5
    hp_len: int = 23  # odd: the high-pass's centre tap is a sample
    mwi_len: int = 25
    e_shift: int = 2  # e = |slope| >> e_shift
    reach: int = 50  # 200 ms: a candidate is the largest m within this on either side
    refractory: int = 50  # 200 ms
    t_wave: int = 90  # 360 ms
    learn: int = 500  # 2 s
    default_rr: int = 250  # 1 s, until real intervals fill the RR buffer
    th_num: int = 7  # thr = noise + (qrs - noise) * 7 / 16
    sb_num: int = 5  # search-back after 5/3 of the mean RR
    sb_den: int = 3

    def __post_init__(self) -> None:
        if self.hp_len % 2 != 1:
            raise BeatConfigError(f"hp_len {self.hp_len} must be odd")
        for name, value in asdict(self).items():
            if not isinstance(value, int) or value <= 0:
                raise BeatConfigError(f"{name} must be a positive integer, not {value!r}")
        if not 0 < self.th_num < 1 << TH_SHIFT:
            raise BeatConfigError(f"th_num {self.th_num} must be in 1..{(1 << TH_SHIFT) - 1}")
        if self.learn <= self.reach:
            raise BeatConfigError(f"learn ({self.learn}) must be longer than reach ({self.reach})")

    @property
    def delay(self) -> int:
        """Samples from an R peak to where the band-passed signal shows it."""
        return self.lp_len - 1 + (self.hp_len - 1) // 2

    @property
    def history(self) -> int:
        """Samples of m, e and |h| the streaming detector keeps (firmware ring sizes come from this)."""
        return max(2 * self.reach + 1, self.reach + self.mwi_len + 1)

    @property
    def learn_candidates(self) -> int:
        """Most candidates the learning span can hold (they are at least reach + 1 apart)."""
        return -(-self.learn // (self.reach + 1)) + 1

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


DEFAULT_BEATS = BeatConfig()


def _moving_sum(x: np.ndarray, n: int, before: int) -> np.ndarray:
    """sum of x[i - n + 1 .. i] for every i, with `before` standing in for samples before the start."""
    padded = np.concatenate([np.full(n - 1, before, dtype=np.int64), x])
    c = np.concatenate([[0], np.cumsum(padded)])
    return c[n:] - c[:-n]


def filter_chain(x: np.ndarray, cfg: BeatConfig = DEFAULT_BEATS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(h, e, m) of one run of counts: the high-passed signal, |slope| and its moving integral (int64)."""
    x = np.asarray(x, dtype=np.int64)
    lp1 = _moving_sum(x, cfg.lp_len, int(x[0]))
    lp = _moving_sum(lp1, cfg.lp_len, int(lp1[0]))
    c = (cfg.hp_len - 1) // 2
    delayed = np.concatenate([np.full(c, lp[0], dtype=np.int64), lp])[: lp.size]
    h = cfg.hp_len * delayed - _moving_sum(lp, cfg.hp_len, int(lp[0]))
    hh = np.concatenate([np.zeros(4, dtype=np.int64), h])
    d = 2 * hh[4:] + hh[3:-1] - hh[1:-3] - 2 * hh[:-4]
    e = np.abs(d) >> cfg.e_shift
    return h, e, _moving_sum(e, cfg.mwi_len, 0)


def candidates(m: np.ndarray, reach: int) -> np.ndarray:
    """Indices p with m[p] > 0, m[p] >= m over [p - reach, p) and m[p] > m over (p, p + reach], all known."""
    n = m.size
    if n <= reach:
        return np.zeros(0, dtype=np.int64)
    padded = np.concatenate([np.full(reach, -1, dtype=np.int64), m, np.full(reach, -1, dtype=np.int64)])
    windows = sliding_window_view(padded, reach)
    left = windows[:n].max(axis=1)
    right = windows[reach + 1 : reach + 1 + n].max(axis=1)
    p = np.flatnonzero((m > 0) & (m >= left) & (m > right))
    return p[p + reach < n]


class _Decider:
    """The decision rule over one run's candidates, in the order the device meets them."""

    def __init__(self, cfg: BeatConfig, h: np.ndarray, e: np.ndarray, m: np.ndarray) -> None:
        self.cfg, self.h, self.e, self.m = cfg, h, e, m
        top = int(m[: cfg.learn].max())
        self.qrs = [top] * BUFFER
        self.noise = [top // 8] * BUFFER
        self.rr = [cfg.default_rr] * BUFFER
        self.last: int | None = None
        self.last_slope = 0
        self.kept: tuple[int, int, int] | None = None  # (p, m, slope) of the largest noise peak since the last beat
        self.beats: list[int] = []
        self.decided: list[int] = []  # the sample at which each beat became final
        self.now = 0  # the sample of the latest decision: the state (last, kept, buffers) is as it left it

    def threshold(self) -> int:
        q, n = sum(self.qrs) // BUFFER, sum(self.noise) // BUFFER
        return n + ((q - n) * self.cfg.th_num >> TH_SHIFT) if q > n else n

    def _slope(self, p: int) -> int:
        return int(self.e[max(0, p - self.cfg.mwi_len) : p + 1].max())

    def _where(self, p: int) -> int:
        lo = max(0, p - self.cfg.mwi_len)
        return max(0, lo + int(np.argmax(np.abs(self.h[lo : p + 1]))) - self.cfg.delay)

    def _beat(self, p: int, value: int, slope: int, at: int) -> None:
        if self.last is not None:
            self.rr = self.rr[1:] + [p - self.last]
        self.qrs = self.qrs[1:] + [value]
        self.last, self.last_slope, self.kept = p, slope, None
        self.beats.append(self._where(p))
        self.decided.append(at)

    def search_back(self, now: int) -> None:
        """At sample `now`: the kept noise peak becomes a beat once the search-back interval has passed."""
        if self.last is None or self.kept is None:
            return
        due = self.last + sum(self.rr) // BUFFER * self.cfg.sb_num // self.cfg.sb_den
        if now >= due and self.kept[1] > self.threshold() // 2:
            # the device checks after every sample: it fired at the first sample past both `due` and
            # the decision that left the state as it is
            self._beat(*self.kept, at=max(due, self.now))

    def decide(self, p: int, at: int) -> None:
        """Decide candidate p at sample `at` (p + reach, or the end of the learning span)."""
        cfg = self.cfg
        self.now = at
        if self.last is not None and p - self.last <= cfg.refractory:
            return
        value, slope = int(self.m[p]), self._slope(p)
        if value > self.threshold() and not (self.last is not None and p - self.last < cfg.t_wave and 2 * slope < self.last_slope):
            self._beat(p, value, slope, at)
            return
        self.noise = self.noise[1:] + [value]
        if self.kept is None or value > self.kept[1]:
            self.kept = (p, value, slope)


def _run_beats(x: np.ndarray, cfg: BeatConfig) -> tuple[list[int], list[int]]:
    """Beats of one run of good samples and the samples at which they became final (indices within the run)."""
    n = x.size
    if n < cfg.learn + cfg.reach:
        return [], []
    h, e, m = filter_chain(x, cfg)
    dec = _Decider(cfg, h, e, m)
    start = cfg.learn - 1 + cfg.reach  # the sample at which learning ends and decisions begin
    for p in candidates(m, cfg.reach):
        t = max(int(p) + cfg.reach, start)
        dec.search_back(t - 1)  # what the device checked after the samples before this decision
        dec.decide(int(p), t)
    dec.search_back(n - 1)
    return dec.beats, dec.decided


def detect_beats(counts: np.ndarray, lead_off: np.ndarray | None = None, cfg: BeatConfig = DEFAULT_BEATS) -> np.ndarray:
    """Sample indices of the R peaks the device finds in a stream of ADC counts (int64, increasing)."""
    return detect_beats_timed(counts, lead_off, cfg)[0]


def detect_beats_timed(counts: np.ndarray, lead_off: np.ndarray | None = None,
                       cfg: BeatConfig = DEFAULT_BEATS) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(beats, decided): the R peaks as `detect_beats` and the sample whose push made each final on the
    device (a beat is reported by the push of sample decided[i], after its R peak; both increase)."""
    x = np.asarray(counts)
    if x.ndim != 1:
        raise ValueError(f"counts must be one channel, got shape {x.shape}")
    off = np.zeros(x.size, dtype=bool) if lead_off is None else np.asarray(lead_off, dtype=bool)
    if off.shape != x.shape:
        raise ValueError(f"lead-off flags {off.shape} do not match samples {x.shape}")
    beats: list[int] = []
    decided: list[int] = []
    for a, b in good_runs(off):
        run, at = _run_beats(x[a:b].astype(np.int64), cfg)
        beats += [a + k for k in run]
        decided += [a + k for k in at]
    return np.asarray(beats, dtype=np.int64), np.asarray(decided, dtype=np.int64)


def window_rhythm(beats: Iterable[int], first_sample: int, window: int, fs: int = DEFAULT_BEATS.fs,
                  status: int = WindowStatus.OK) -> tuple[int, int]:  # fmt: skip
    """(hr_x10, rr_irregularity) of the window [first_sample, first_sample + window), in integers.

    Over the k RR intervals between consecutive beats b with first_sample <= b < first_sample + window:
    - hr_x10: beats per minute x 10 from the lower median RR m (sorted RRs, index (k - 1) // 2),
      rounded: (600 fs + m // 2) // m, clamped to 1..HR_X10_MAX;
    - rr_irregularity: the mean absolute successive RR difference over the mean RR, per mille:
      1000 k sum|RR_i - RR_i-1| // ((k - 1) sum RR), clamped to RR_IRREGULARITY_MAX (never reached:
      |a - b| < a + b keeps it below 4000). 0 for a steady rhythm, larger the more irregular the RRs.
    Both are unknown (HR_UNKNOWN, RR_IRREGULARITY_UNKNOWN) with fewer than 2 intervals (3 beats) or
    when the window's status is LEAD_OFF. `beats` must increase strictly; a device passes the beats it
    has decided when the window ends (a beat is decided `reach` samples or more after its peak, so the
    window's last beat often counts only in later windows). C: compute 1000 k sum|dRR| in
    64 bits (it is below 2000 window^2 / refractory: 2.5e8 for 2500 samples and DEFAULT_BEATS).
    """
    if window <= 0 or fs <= 0:
        raise ValueError(f"window ({window}) and fs ({fs}) must be positive")
    if int(status) == WindowStatus.LEAD_OFF:
        return HR_UNKNOWN, RR_IRREGULARITY_UNKNOWN
    inside = [int(b) for b in beats if first_sample <= int(b) < first_sample + window]
    rr = [b - a for a, b in zip(inside, inside[1:])]
    if any(r <= 0 for r in rr):
        raise ValueError(f"beats must increase strictly, got {inside}")
    k = len(rr)
    if k < 2:
        return HR_UNKNOWN, RR_IRREGULARITY_UNKNOWN
    m = sorted(rr)[(k - 1) // 2]
    hr_x10 = min(max((600 * fs + m // 2) // m, 1), HR_X10_MAX)
    diffs = sum(abs(b - a) for a, b in zip(rr, rr[1:]))
    irregularity = min(1000 * k * diffs // ((k - 1) * sum(rr)), RR_IRREGULARITY_MAX)
    return hr_x10, irregularity


def max_beats_in(window: int, cfg: BeatConfig = DEFAULT_BEATS) -> int:
    """Most beats one run can place in `window` samples: decided candidates are more than `refractory`
    apart and a beat sits within mwi_len of its candidate, so n beats span at least
    (n - 1)(refractory + 1) - mwi_len samples. (A lead-off restarts the run; such a window is LEAD_OFF.)"""
    return (window - 1 + cfg.mwi_len) // (cfg.refractory + 1) + 1


def window_rhythms(beats: np.ndarray, decided: np.ndarray, starts: Iterable[int], window: int, statuses: Iterable[int],
                   fs: int = DEFAULT_BEATS.fs) -> list[tuple[int, int]]:  # fmt: skip
    """The rhythm figures a device sends with each window's RESULT: `window_rhythm` over the last
    BEAT_LOG beats it had decided when the window's last sample was pushed (`detect_beats_timed`)."""
    beats, decided = np.asarray(beats, dtype=np.int64), np.asarray(decided, dtype=np.int64)
    out = []
    for start, status in zip(starts, statuses):
        known = int(np.searchsorted(decided, start + window - 1, side="right"))
        out.append(window_rhythm(beats[max(0, known - BEAT_LOG) : known].tolist(), start, window, fs, status))
    return out
