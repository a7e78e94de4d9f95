"""A virtual "AD8232 example sketch" on a pseudo-terminal: one ADC value per line, `!` while a lead is off.

What SparkFun's AD8232 example prints (`Serial.println(analogRead(A0))`, `!` when LO+ or LO- is
high), paced at `rate` Hz against time.monotonic() (sample i leaves at start + i / rate: no drift),
with Serial.println's \\r\\n line ends. The signal is `pipeline.data.synthetic`'s beat model for a NORMAL
patient drawn with `seed`, at exactly `heart_rate` bpm (constant RR, no beat-to-beat amplitude
jitter, so one loop of whole beats repeats seamlessly), plus deterministic baseline wander and seeded
noise, through `pipeline.signal.ad8232`'s front-end filters and ADC (`AD8232Config(adc_bits=...)`). While a
lead is off the output sits at the high rail; the electrode offset it leaves behind gives the
recovery transient of a real board. When no client reads, lines are dropped (and counted), as a USB
serial port does, instead of blocking.
"""

from __future__ import annotations

import os
import select
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy import signal as sps

from pipeline.signal.ad8232 import AD8232Config, Disturbances, frontend_sos, mv_to_counts
from pipeline.data.labels import LABELS
from pipeline.data.synthetic import sample_patient, simulate_ecg

from .ptys import PtyDevice

WANDER_MV = 0.1  # respiration-like baseline wander, mV
WANDER_HZ = 0.25
NOISE_MV = 0.01  # white noise rms, mV
MAX_TICK_S = 0.02  # the writer wakes at least this often (reads what clients send, notices close())


class TextSignal:
    """The sketch's ADC readings as a stream: `next(n)` gives the next n (counts uint16, lead_off bool)."""

    def __init__(self, rate: int = 250, heart_rate: int = 72, seed: int = 1, lead_off: tuple[int, int] | None = None,
                 adc_bits: int = 10) -> None:  # fmt: skip
        if int(rate) != rate or not 20 <= rate <= 10000:
            raise ValueError(f"rate {rate}: a whole number of Hz in 20..10000")
        if int(heart_rate) != heart_rate or not 20 <= heart_rate <= 250:
            raise ValueError(f"heart rate {heart_rate}: a whole number of bpm in 20..250")
        if not 8 <= adc_bits <= 15:
            raise ValueError(f"adc_bits {adc_bits}: 8..15")
        if lead_off is not None and not 0 < lead_off[1] < lead_off[0]:
            raise ValueError(f"lead_off {lead_off}: need 0 < FOR_S < EVERY_S")
        self.rate, self.heart_rate, self.lead_off = int(rate), int(heart_rate), lead_off
        self.config = AD8232Config(adc_bits=adc_bits)
        rng = np.random.default_rng(seed)
        # The shortest loop of whole beats that is a whole number of samples: k beats = k * 60 * rate / hr samples.
        beat = Fraction(60 * self.rate, self.heart_rate)
        k = beat.denominator
        self.loop_samples = int(beat * k)
        patient = sample_patient(LABELS[0], rng)
        ranges = replace(patient.ranges, resp_amp_mod=0.0, beat_amp_jitter=0.0)
        patient = replace(patient, hr_bpm=float(self.heart_rate), hrv_cv=0.0, ranges=ranges)
        # Render three loops and keep the middle one: every beat touching it is complete.
        x = simulate_ecg(LABELS[0], 3 * self.loop_samples / self.rate, self.rate, rng, patient)
        self._loop = x[self.loop_samples : 2 * self.loop_samples]
        self._noise = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
        self._phase = float(rng.uniform(0, 2 * np.pi))
        self._sos = frontend_sos(float(self.rate), self.config)
        self._zi: np.ndarray | None = None
        self._step_mv = Disturbances().lead_off_step_mv
        self.index = 0  # samples produced so far

    def lead_off_mask(self, start: int, n: int) -> np.ndarray:
        """Lead-off flags of samples start..start+n: the last FOR_S of every EVERY_S seconds."""
        i = np.arange(start, start + n)
        if self.lead_off is None:
            return np.zeros(n, dtype=bool)
        every, length = self.lead_off
        return (i % (every * self.rate)) >= (every - length) * self.rate

    def next(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        i = np.arange(self.index, self.index + n)
        x = self._loop[i % self.loop_samples].copy()
        x += WANDER_MV * np.sin(2 * np.pi * WANDER_HZ * i / self.rate + self._phase)
        x += NOISE_MV * self._noise.standard_normal(n)
        off = self.lead_off_mask(self.index, n)
        x[off] += self._step_mv
        if self.config.analog_filter:
            if self._zi is None:
                self._zi = sps.sosfilt_zi(self._sos) * x[0]
            x, self._zi = sps.sosfilt(self._sos, x, zi=self._zi)
        counts = mv_to_counts(x, self.config)
        counts[off] = self.config.max_count
        self.index += n
        return counts, off


def format_lines(counts: np.ndarray, lead_off: np.ndarray) -> bytes:
    """What the sketch prints: each value, or `!` while a lead is off, with \\r\\n."""
    return b"".join(b"!\r\n" if off else b"%d\r\n" % v for v, off in zip(counts.tolist(), lead_off.tolist()))


class TextDevice(PtyDevice):
    """The virtual sketch on a new pseudo-terminal (`port`; `link`: an optional symlink to it), running
    from construction until close(); a context manager."""

    def __init__(self, rate: int = 250, heart_rate: int = 72, seed: int = 1, lead_off: tuple[int, int] | None = None,
                 adc_bits: int = 10, link: str | Path | None = None) -> None:  # fmt: skip
        self.signal = TextSignal(rate, heart_rate, seed, lead_off, adc_bits)
        self.rate, self.heart_rate, self.adc_bits, self.lead_off = self.signal.rate, heart_rate, adc_bits, lead_off
        self.lines_written = 0
        self.lines_dropped = 0
        self.link: Path | None = None
        self._tail = b""  # the rest of a line the pty took only part of
        self._open(link)

    @property
    def samples(self) -> int:
        """Samples produced so far (written or dropped)."""
        return self.signal.index

    def _connected(self) -> bool:
        p = select.poll()
        p.register(self._master, select.POLLOUT)
        return not any(ev & select.POLLHUP for _, ev in p.poll(0))

    def _drain_input(self) -> None:
        """The sketch reads nothing; discard what clients send so they never block."""
        try:
            while os.read(self._master, 4096):
                pass
        except OSError:  # EAGAIN: nothing there; EIO: no client
            pass

    def _emit(self, counts: np.ndarray, lead_off: np.ndarray) -> None:
        text = format_lines(counts, lead_off)
        if not self._connected():
            self.lines_dropped += len(counts) + bool(self._tail)
            self._tail = b""
            return
        data = self._tail + text
        try:
            done = os.write(self._master, data)
        except (BlockingIOError, OSError):
            done = 0
        rest = data[done:]
        cut = rest.find(b"\n") + 1 if rest else 0
        if done and cut and data[done - 1 : done] != b"\n":
            self._tail, rest = rest[:cut], rest[cut:]  # finish the line the client already has part of
        else:
            self._tail = b""
        self.lines_written += data[:done].count(b"\n")
        self.lines_dropped += rest.count(b"\n")

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            due = int((time.monotonic() - start) * self.rate) + 1  # samples whose time has come
            if due > self.signal.index:
                counts, off = self.signal.next(due - self.signal.index)
                self._emit(counts, off)
            self._drain_input()
            wait = start + self.signal.index / self.rate - time.monotonic()
            self._stop.wait(min(max(wait, 0.0), MAX_TICK_S))
