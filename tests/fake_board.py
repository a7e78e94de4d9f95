"""A fake board on a pseudo-terminal for the host's tests: this firmware's protocol with or without the
BEATS capability, from a signal whose beats the test knows (the real firmware does not send beats yet).

It answers GET_INFO (ACK, INFO) and every other COMMAND with an ACK, and streams from power-on:
SAMPLES of 10, a RESULT per hop over the last window (OK, or LEAD_OFF with a lead-off sample in it;
label 0), and with `beats` a BEATS frame for each beat `DECIDE` samples after it and the window's
`window_rhythm` figures in each RESULT (`rhythm` overrides them, so a test can tell the board's heart
rate from the host's). The signal is `host.textsim.TextSignal`'s (12-bit, constant RR), its beats
`pipeline.signal.beats.detect_beats`'s. Samples go out at `speed` x 250 Hz against the clock; while no
client holds the port they are dropped, as a USB serial port does.
"""

from __future__ import annotations

import os
import select
import time

import numpy as np

from export.protocol_defs import MAX_BEATS, SAMPLE_BATCH, Capability, CommandCode, ErrorCode, FrameType, ResultSource, TimeUnit, WindowStatus
from host.protocol import Ack, Beats, Command, Encoder, Error, Info, ProtocolError, Reader, Result, Samples, decode_message
from host.ptys import PtyDevice
from host.textsim import TextSignal
from pipeline.signal.beats import detect_beats, window_rhythm

RATE, WINDOW, HOP = 250, 2500, 625
DECIDE = 60  # samples from a beat to its BEATS frame (the detector's reach and filter delay)
LABELS = ("NORMAL", "MI", "ARRHYTHMIA")


class FakeBoard(PtyDevice):
    """The fake on a new pty (`port`), running from construction until close(); a context manager."""

    def __init__(self, beats: bool = True, heart_rate: int = 75, seconds: int = 120, speed: float = 4.0,
                 lead_off: tuple[int, int] | None = None, rhythm: tuple[int, int] | None = None) -> None:  # fmt: skip
        self.counts, self.lead_off = TextSignal(RATE, heart_rate, 3, lead_off, adc_bits=12).next(seconds * RATE)
        self.beats = detect_beats(self.counts, self.lead_off)
        self.has_beats, self.rhythm, self.speed = beats, rhythm, speed
        caps = Capability.MODEL | Capability.REPLAY_SAMPLES | Capability.REPLAY_WINDOW | (Capability.BEATS if beats else 0)
        self.info = Info("fake 1.0", "native", bytes(32), bytes(8), RATE, WINDOW, HOP, 12, caps, LABELS, 0.05, 0, 0.1, 0,
                         TimeUnit.MICROSECONDS)  # fmt: skip
        self.sent = 0  # samples produced (sent or dropped)
        self._decided = np.asarray(self.beats) + DECIDE
        self._enc = Encoder()
        self._reader = Reader()
        self._open()

    def result(self, k: int) -> Result:
        """The RESULT of window k."""
        first = k * HOP
        status = WindowStatus.LEAD_OFF if self.lead_off[first : first + WINDOW].any() else WindowStatus.OK
        rhythm: tuple[int | None, int | None] = (None, None)
        if self.has_beats:
            rhythm = window_rhythm(self.beats, first, WINDOW, RATE, status)
            if self.rhythm is not None and status != WindowStatus.LEAD_OFF:
                rhythm = self.rhythm
        classified = status == WindowStatus.OK
        return Result(k, first, status, 0 if classified else -1, (20, -20, -20) if classified else (), 500 if classified else 0,
                      TimeUnit.MICROSECONDS, ResultSource.LIVE, *rhythm)  # fmt: skip

    def _connected(self) -> bool:
        p = select.poll()
        p.register(self._master, select.POLLOUT)
        return not any(ev & select.POLLHUP for _, ev in p.poll(0))

    def _send(self, *messages: object) -> None:
        data = b"".join(self._enc.encode(m) for m in messages)  # type: ignore[arg-type]
        deadline = time.monotonic() + 1.0
        while data and self._connected() and time.monotonic() < deadline:
            try:
                data = data[os.write(self._master, data) :]
            except (BlockingIOError, OSError):
                time.sleep(0.002)

    def _commands(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except OSError:  # EAGAIN: nothing there; EIO: no client
            return
        for frame in self._reader.feed(data):
            try:
                msg = decode_message(frame)
            except ProtocolError as exc:
                self._send(Error(exc.code, frame.seq, str(exc)[:80]))
                continue
            if not isinstance(msg, Command):
                self._send(Error(ErrorCode.UNKNOWN_TYPE, frame.seq, "fake board: commands only"))
                continue
            self._send(Ack(frame.seq, FrameType.COMMAND, 0), *([self.info] if msg.code == CommandCode.GET_INFO else []))

    def _batch(self) -> None:
        """The next SAMPLE_BATCH samples, with the BEATS and RESULTs due once they are in."""
        a, b = self.sent, self.sent + SAMPLE_BATCH
        self.sent = b
        if not self._connected():
            return
        out: list[object] = [Samples(a, tuple(int(v) for v in self.counts[a:b]), tuple(bool(f) for f in self.lead_off[a:b]))]
        if self.has_beats:
            due = [int(x) for x in self.beats[(self._decided >= a) & (self._decided < b)]]
            out += [Beats(tuple(due[i : i + MAX_BEATS])) for i in range(0, len(due), MAX_BEATS)]
        out += [self.result((end - WINDOW) // HOP) for end in range(a + 1, b + 1) if end >= WINDOW and (end - WINDOW) % HOP == 0]
        self._send(*out)

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set() and self.sent + SAMPLE_BATCH <= self.counts.size:
            self._commands()
            while self.sent + SAMPLE_BATCH <= min(self.counts.size, (time.monotonic() - start) * RATE * self.speed):
                self._batch()
            self._stop.wait(0.005)
