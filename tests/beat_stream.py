"""A sample-by-sample statement of pipeline.signal.beats, shaped as the firmware runs it (rings, no arrays
of the whole stream). Slow; tests use it to check that the reference's vectorised form means the same.
"""

from __future__ import annotations

from pipeline.signal.beats import BUFFER, TH_SHIFT, BeatConfig


class StreamingBeats:
    def __init__(self, cfg: BeatConfig) -> None:
        self.cfg = cfg
        self.size = cfg.history
        self.beats: list[int] = []
        self.decided: list[int] = []  # the absolute sample whose push made each beat final
        self.reset(0)

    def reset(self, start: int) -> None:
        """A new run begins at absolute sample `start`."""
        self.start, self.n = start, 0
        self.x_hist: list[int] = []
        self.lp1_hist: list[int] = []
        self.lp_hist: list[int] = []
        self.h_hist = [0, 0, 0, 0, 0]  # h[n-4] .. h[n]
        self.e_hist: list[int] = []
        self.m_ring = [0] * self.size
        self.e_ring = [0] * self.size
        self.h_ring = [0] * self.size
        self.top = 0
        self.learning: list[tuple[int, int, int, int]] = []
        self.live = False
        self.qrs = self.noise = self.rr = [0] * BUFFER
        self.last: int | None = None
        self.last_slope = 0
        self.kept: tuple[int, int, int, int] | None = None  # (p, m, slope, beat sample)

    def _sum_last(self, hist: list[int], k: int, before: int) -> int:
        vals = hist[-k:]
        return sum(vals) + before * (k - len(vals))

    def push(self, x: int, lead_off: bool = False) -> None:
        if lead_off:
            self.reset(self.start + self.n + 1)
            return
        c = self.cfg
        n = self.n
        if n == 0:
            self.x0 = x
        self.x_hist = (self.x_hist + [x])[-c.lp_len:]
        lp1 = self._sum_last(self.x_hist, c.lp_len, self.x0)
        if n == 0:
            self.lp10 = lp1
        self.lp1_hist = (self.lp1_hist + [lp1])[-c.lp_len:]
        lp = self._sum_last(self.lp1_hist, c.lp_len, self.lp10)
        if n == 0:
            self.lp0 = lp
        self.lp_hist = (self.lp_hist + [lp])[-c.hp_len:]
        centre = (c.hp_len - 1) // 2
        delayed = self.lp_hist[-1 - centre] if len(self.lp_hist) > centre else self.lp0
        h = c.hp_len * delayed - self._sum_last(self.lp_hist, c.hp_len, self.lp0)
        hh = self.h_hist = self.h_hist[1:] + [h]
        e = abs(2 * hh[4] + hh[3] - hh[1] - 2 * hh[0]) >> c.e_shift
        self.e_hist = (self.e_hist + [e])[-c.mwi_len:]
        m = sum(self.e_hist)
        k = n % self.size
        self.m_ring[k], self.e_ring[k], self.h_ring[k] = m, e, abs(h)
        if n < c.learn:
            self.top = max(self.top, m)
        self.n += 1
        p = n - c.reach
        if p >= 0 and self._is_candidate(p, n):
            cand = (p, self._m(p), *self._slope_and_where(p))  # while the rings still hold p's neighbourhood
            if self.live:
                self._decide(*cand)
            else:
                self.learning.append(cand)
        if n == c.learn - 1 + c.reach:
            self._start_deciding()
        if self.live:
            self._search_back(n)

    def _m(self, i: int) -> int:
        return self.m_ring[i % self.size]

    def _is_candidate(self, p: int, n: int) -> bool:
        v = self._m(p)
        if v <= 0:
            return False
        if any(self._m(i) > v for i in range(max(0, p - self.cfg.reach), p)):
            return False
        return all(self._m(i) < v for i in range(p + 1, n + 1))

    def _start_deciding(self) -> None:
        self.live = True
        self.qrs = [self.top] * BUFFER
        self.noise = [self.top // 8] * BUFFER
        self.rr = [self.cfg.default_rr] * BUFFER
        for cand in self.learning:
            self._search_back(self.cfg.learn - 2 + self.cfg.reach)
            self._decide(*cand)

    def _threshold(self) -> int:
        q, n = sum(self.qrs) // BUFFER, sum(self.noise) // BUFFER
        return n + ((q - n) * self.cfg.th_num >> TH_SHIFT) if q > n else n

    def _slope_and_where(self, p: int) -> tuple[int, int]:
        lo = max(0, p - self.cfg.mwi_len)
        slope = max(self.e_ring[i % self.size] for i in range(lo, p + 1))
        best, at = -1, lo
        for i in range(lo, p + 1):
            if self.h_ring[i % self.size] > best:
                best, at = self.h_ring[i % self.size], i
        return slope, max(0, at - self.cfg.delay)

    def _beat(self, p: int, value: int, slope: int, where: int) -> None:
        if self.last is not None:
            self.rr = self.rr[1:] + [p - self.last]
        self.qrs = self.qrs[1:] + [value]
        self.last, self.last_slope, self.kept = p, slope, None
        self.beats.append(self.start + where)
        self.decided.append(self.start + self.n - 1)  # the sample being pushed

    def _decide(self, p: int, value: int, slope: int, where: int) -> None:
        c = self.cfg
        if self.last is not None and p - self.last <= c.refractory:
            return
        if value > self._threshold() and not (self.last is not None and p - self.last < c.t_wave and 2 * slope < self.last_slope):
            self._beat(p, value, slope, where)
            return
        self.noise = self.noise[1:] + [value]
        if self.kept is None or value > self.kept[1]:
            self.kept = (p, value, slope, where)

    def _search_back(self, now: int) -> None:
        if self.last is None or self.kept is None:
            return
        due = self.last + sum(self.rr) // BUFFER * self.cfg.sb_num // self.cfg.sb_den
        if now >= due and self.kept[1] > self._threshold() // 2:
            self._beat(*self.kept)
