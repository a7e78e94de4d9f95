"""The serial link to a device running this firmware: frames in, requests out, every wait bounded.

`DeviceLink` wraps a pyserial port (a board, a virtual device's pty, QEMU's UART pty) with the
protocol reader. It keeps the counters a user needs to trust a session: frames, bytes dropped,
CRC errors, frames missing from the device's sequence numbers, samples missing from the SAMPLES
counter, device resets. Nothing waits without a timeout; a port that is not a device, a device at
another baud rate and a device that stopped answering all end in a `LinkError` that says which.
Frames are decoded with the capabilities of the device's last INFO (a RESULT's layout depends on
them), either layout before the first one.
"""

from __future__ import annotations

import random
import select
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import serial

from export.protocol_defs import IDLE_FLUSH_MS, MAX_BATCH, Capability, CommandCode, ResultSource, SampleSource
from host.protocol import (
    Ack,
    Beats,
    Command,
    Encoder,
    Error,
    Frame,
    Info,
    Message,
    ProtocolError,
    Reader,
    ReplayCredits,
    ReplaySamples,
    Result,
    Samples,
    window_chunks,
)

DEFAULT_BAUD = 115200
GARBAGE_BYTES = 2048  # this many bytes without one valid frame: not our firmware at this baud rate


class LinkError(RuntimeError):
    """The device or port cannot be used; the message names the port and what happened."""


@dataclass
class LinkStats:
    frames: int = 0
    dropped_bytes: int = 0
    crc_errors: int = 0
    frames_dropped: int = 0  # gaps in the device's sequence numbers
    frames_sent: int = 0  # host frames written, resends included
    frames_resent: int = 0  # host frames written again because no answer came (request(resend_s=...))
    samples_lost: int = 0  # gaps in the SAMPLES counter
    resets: int = 0  # the SAMPLES counter went back (the device restarted)
    errors: list[str] = field(default_factory=list)  # ERROR frames received

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items()}


def wait_readable(ser: serial.Serial, seconds: float) -> None:
    """Sleep until the port has input or `seconds` passed (select where the port has a descriptor)."""
    if seconds <= 0:
        return
    try:
        select.select([ser.fileno()], [], [], seconds)
    except (AttributeError, OSError, ValueError, serial.SerialException):
        time.sleep(min(seconds, 0.002))


def open_port(port: str, baud: int = DEFAULT_BAUD) -> serial.Serial:
    """Open `port` exclusively, with errors that say whether it is missing or busy."""
    try:
        return serial.Serial(port, baud, timeout=0, write_timeout=5, exclusive=True)
    except serial.SerialException as exc:
        text = str(exc)
        if "No such file" in text or "could not open port" in text and "2]" in text:
            raise LinkError(f"port {port}: no such device (see `ecg-host ports`)") from None
        if "busy" in text.lower() or "lock" in text.lower() or "Resource temporarily unavailable" in text:
            raise LinkError(f"port {port} is busy: another program has it open") from None
        raise LinkError(f"port {port}: {text}") from None


class DeviceLink:
    """One open link; use as a context manager."""

    def __init__(self, port: str | serial.Serial, baud: int = DEFAULT_BAUD) -> None:
        self.ser = open_port(port, baud) if isinstance(port, str) else port
        self.port = self.ser.port or str(port)
        self.reader = Reader()
        self.encoder = Encoder(random.randrange(1 << 16))  # a fresh seq: never taken for a resend of an earlier session's frame
        self.stats = LinkStats()
        self.info: Info | None = None
        self._last_seq: int | None = None
        self._next_sample: int | None = None
        self._inbox: deque[Message] = deque()  # decoded, for wait_for() and replay_stream()
        self._last_rx = time.monotonic()
        self._bytes_without_frame = 0
        self.on_samples: Callable[[Samples], None] | None = None
        self.on_result: Callable[[Result], None] | None = None
        self.on_beats: Callable[[Beats], None] | None = None

    @property
    def capabilities(self) -> Capability | None:
        """The device's capabilities (its last INFO), None before the first INFO."""
        return self.info.capabilities if self.info is not None else None

    def __enter__(self) -> DeviceLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.ser.close()

    # ---- receiving
    def _read(self) -> list[Frame]:
        try:
            data = self.ser.read(self.ser.in_waiting or 1)
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"port {self.port}: the device went away ({exc})") from None
        now = time.monotonic()
        if not data:
            if self.reader.pending and (now - self._last_rx) * 1000 > IDLE_FLUSH_MS:
                return self._account(self.reader.flush())
            return []
        self._last_rx = now
        frames = self._account(self.reader.feed(data))
        self._bytes_without_frame = 0 if frames else self._bytes_without_frame + len(data)
        if self._bytes_without_frame > GARBAGE_BYTES:
            raise LinkError(
                f"port {self.port}: {self._bytes_without_frame} bytes without one valid frame: wrong baud rate, "
                "or the board runs other firmware (plain-text sketches: use monitor/record --text)"
            )
        return frames

    def _account(self, frames: list[Frame]) -> list[Frame]:
        rs = self.reader.stats
        self.stats.dropped_bytes, self.stats.crc_errors, self.stats.frames = rs.dropped_bytes, rs.crc_errors, rs.frames
        for f in frames:
            if self._last_seq is not None and f.seq != (self._last_seq + 1) & 0xFFFF:
                self.stats.frames_dropped += (f.seq - self._last_seq - 1) & 0xFFFF
            self._last_seq = f.seq
            self._observe(f)
        return frames

    def _observe(self, f: Frame) -> None:
        try:
            msg = f.message(self.capabilities)
        except ProtocolError as exc:
            self.stats.errors.append(f"undecodable {f.type:#x} frame: {exc}")
            return
        if isinstance(msg, Samples):
            if self._next_sample is not None and msg.first_sample != self._next_sample:
                if msg.first_sample < self._next_sample:
                    self.stats.resets += 1
                else:
                    self.stats.samples_lost += msg.first_sample - self._next_sample
            self._next_sample = msg.first_sample + len(msg.values)
            if self.on_samples:
                self.on_samples(msg)
        elif isinstance(msg, Result) and self.on_result:
            self.on_result(msg)
        elif isinstance(msg, Beats) and self.on_beats:
            self.on_beats(msg)
        elif isinstance(msg, Info):
            self.info = msg
        elif isinstance(msg, Error):
            self.stats.errors.append(f"device error {msg.code.name} about frame {msg.about_seq}: {msg.message}")
        self._inbox.append(msg)

    def poll(self, seconds: float = 0.0) -> list[Frame]:
        """Frames received within `seconds` (at least one read)."""
        end = time.monotonic() + seconds
        out = self._read()
        while time.monotonic() < end:
            got = self._read()
            out += got
            if not got:
                time.sleep(0.002)
        self._inbox.clear()
        return out

    def _next(self, match: Callable[[object], bool], timeout: float) -> object | None:
        """The first message (received from now on) for which `match` is true, None after `timeout`."""
        end = time.monotonic() + timeout
        while True:
            while self._inbox:
                msg = self._inbox.popleft()
                if match(msg):
                    return msg
            now = time.monotonic()
            if now > end:
                return None
            if not self._read():
                wait_readable(self.ser, min(0.002, end - now))

    def _silence(self, what: str, timeout: float) -> LinkError:
        heard = "heard nothing" if self.stats.frames == 0 and self.stats.dropped_bytes == 0 else f"received {self.stats.frames} frames"
        return LinkError(f"port {self.port}: no {what} within {timeout:g} s ({heard}): is it running this firmware at this baud rate?")

    def wait_for(self, match: Callable[[object], bool], timeout: float, what: str) -> object:
        """The first message (received from now on) for which `match` is true, or a LinkError."""
        msg = self._next(match, timeout)
        if msg is None:
            raise self._silence(what, timeout)
        return msg

    # ---- sending
    def _write(self, data: bytes) -> None:
        try:
            self.ser.write(data)
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"port {self.port}: cannot write ({exc})") from None
        self.stats.frames_sent += 1

    def send(self, message: object) -> int:
        """Send one host message; returns its sequence number."""
        seq = self.encoder.seq
        self._write(self.encoder.encode(message))  # type: ignore[arg-type]
        return seq

    def request(self, message: object, timeout: float = 3.0, resend_s: float | None = None) -> Ack:
        """Send and wait for its ACK; an ERROR answer becomes a LinkError. With `resend_s`, the same
        frame (same seq) is written again after each `resend_s` without an answer, until `timeout`:
        the device ACKs a retransmission of the frame it accepted last without applying it again
        (PROTOCOL.md, Conversation), so a frame or ACK lost on the line costs only time."""
        seq = self.encoder.seq
        data = self.encoder.encode(message)  # type: ignore[arg-type]
        self._write(data)
        end = time.monotonic() + timeout
        match = lambda m: isinstance(m, (Ack, Error)) and getattr(m, "seq", getattr(m, "about_seq", None)) == seq  # noqa: E731
        while True:
            left = end - time.monotonic()
            answer = self._next(match, left if resend_s is None else min(resend_s, max(0.0, left)))
            if answer is not None:
                break
            if time.monotonic() >= end:
                raise self._silence(f"answer to frame {seq}", timeout)
            self._write(data)
            self.stats.frames_resent += 1
        if isinstance(answer, Error):
            raise LinkError(f"port {self.port}: device refused frame {seq}: {answer.code.name} {answer.message}")
        return answer  # type: ignore[return-value]

    def command(self, code: CommandCode, arg: int = 0, timeout: float = 3.0, resend_s: float | None = None) -> Ack:
        return self.request(Command(code, arg), timeout, resend_s)

    def get_info(self, timeout: float = 3.0) -> Info:
        """Ask the device who it is (also proves it speaks this protocol)."""
        self._inbox.clear()
        self.send(Command(CommandCode.GET_INFO, 0))
        self.info = self.wait_for(lambda m: isinstance(m, Info), timeout, "INFO")  # type: ignore[assignment]
        return self.info  # type: ignore[return-value]

    # ---- replay
    def replay_window(self, window_id: int, data: bytes, timeout: float = 10.0) -> Result:
        """Run one quantized window through the device's model; its RESULT."""
        for chunk in window_chunks(window_id, data):
            self.request(chunk, timeout)
        return self.wait_for(lambda m: isinstance(m, Result) and m.window_index == window_id and m.source == ResultSource.REPLAY_WINDOW, timeout, f"RESULT of window {window_id}")  # type: ignore[return-value]

    def replay_stream(self, raw: np.ndarray, lead_off: np.ndarray, expected_windows: int, timeout: float = 10.0) -> list[Result]:
        """Feed samples through the device's whole path (SOURCE replay resets it); every RESULT, in order."""
        results: list[Result] = []
        credits = ReplayCredits()
        self.command(CommandCode.SOURCE, SampleSource.REPLAY, timeout)
        probe = self.send(ReplaySamples((), ()))
        credits.sent(probe, 0)
        i, n, last = 0, len(raw), time.monotonic()
        while i < n or len(results) < expected_windows:
            while self._inbox:
                msg = self._inbox.popleft()
                if isinstance(msg, Ack):
                    credits.ack(msg)
                elif isinstance(msg, Error):
                    credits.error(msg)
                    raise LinkError(f"port {self.port}: replay refused: {msg.code.name} {msg.message}")
                elif isinstance(msg, Result) and msg.source == ResultSource.REPLAY_SAMPLES:
                    results.append(msg)
                last = time.monotonic()
            room = min(credits.room, MAX_BATCH, n - i)
            if room > 0:
                seq = self.send(ReplaySamples(tuple(int(v) for v in raw[i : i + room]), tuple(bool(v) for v in lead_off[i : i + room])))
                credits.sent(seq, room)
                i += room
                continue
            if time.monotonic() - last > timeout:
                raise LinkError(f"port {self.port}: replay stalled after {i} of {n} samples and {len(results)} of {expected_windows} results")
            if not self._read():
                wait_readable(self.ser, 0.001)
            if credits.room == 0 and i < n and not credits.in_flight:
                credits.sent(self.send(ReplaySamples((), ())), 0)
        self.command(CommandCode.SOURCE, SampleSource.ADC, timeout)
        return results
