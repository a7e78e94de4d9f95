"""Live input for `monitor` and `record`: a board running this firmware (binary frames) or a plain
AD8232 sketch printing one ADC value per line, behind one interface.

`open_source(port)` opens the port, tells the two apart (`detect`) and returns a started
`LiveSource`; `read()` then gives `Block`s of samples (and RESULTs from this firmware), `take_beats()` the
beats a board with the BEATS capability detected. Session sample indices only increase: a jump between
blocks means samples were lost. Every failure is a
`SourceError` naming the port: missing, busy, wrong baud rate, silent, or unplugged mid-session.

Text input is what common AD8232 example sketches print (SparkFun's): `Serial.println(analogRead(A0))`
once per loop, and `!` while a lead is off (LO+ or LO- high), lines ending in \\r\\n or \\n. A `!`
line is a sample at the ADC's high rail with lead_off set (what the AD8232 output does then). Such
sketches rarely pace their loop, so without `--rate` the rate is estimated from line arrival times.
This firmware's text mode for the Arduino IDE's Serial Plotter (COMMAND TEXT, firmware/PROTOCOL.md)
is read the same way: `ecg:<counts>,hr:<bpm>,lead_off:<0|1>` is a sample (lead-off as `!`), its
`result: ...` and `ecg-edge: ...` lines are skipped, and `lost: <n> samples` leaves a gap of n.
"""

from __future__ import annotations

import select
import time
from dataclasses import dataclass, field

import numpy as np
import serial
from scipy.stats import theilslopes

from export.protocol_defs import ADC_MASK, TEXT_HELLO, TEXT_LEAD_OFF, TEXT_LOST, TEXT_RESULT, TEXT_SAMPLE, Capability, CommandCode
from host.link import DEFAULT_BAUD, GARBAGE_BYTES, DeviceLink, LinkError, open_port, wait_readable
from host.protocol import Beats, Command, Encoder, Info, ProtocolError, Reader, Result, Samples, decode_message

DETECT_S = 1.5  # after the first byte, this long to find a frame or text lines
MIN_TEXT_LINES = 5  # well-formed lines that make a stream "text" (and at least twice the bad ones)
STRAY_BYTES = 16  # fewer bytes than this are line noise (a board being reset), not a wrong baud rate
ASK_INFO_AFTER_S = 0.5  # auto-detection asks for INFO after this much silence (a bootloader may be listening before)
ESTIMATE_MIN_S = 2.0  # text: line arrivals spanning this long before a rate estimate
ESTIMATE_EVERY_S = 1.0  # text: refine the estimate this often
ESTIMATE_POINTS = 400  # text: arrival points kept for the estimate (decimated beyond)
COMMON_RATES = (100.0, 125.0, 128.0, 200.0, 250.0, 256.0, 360.0, 500.0, 512.0, 1000.0)
SNAP_TOLERANCE = 0.01  # an estimate within 1 % of a common rate is taken as that rate
MAX_LINE = 128  # bytes; a longer "line" is neither an ADC value nor a text-mode line of this firmware
WAIT_SLICE_S = 0.05


class SourceError(LinkError):
    """The port cannot be used as a live source; the message names the port and what is wrong."""


@dataclass(frozen=True)
class Block:
    first_sample: int  # session sample index of values[0]; a jump past the previous block's end = samples lost
    values: np.ndarray  # int32 raw ADC counts
    lead_off: np.ndarray  # bool, same length (True: LO+/LO- set, or a '!' line in text input)
    arrival: float  # time.monotonic() when the data arrived

    @property
    def end(self) -> int:
        """Session index after the last sample."""
        return self.first_sample + len(self.values)


def merge_blocks(blocks: list[Block]) -> list[Block]:
    """Runs of contiguous blocks as one block each (arrival: the last piece's)."""
    out: list[Block] = []
    run: list[Block] = []
    for b in blocks + [None]:  # type: ignore[list-item]
        if run and (b is None or b.first_sample != run[-1].end):
            out.append(run[0] if len(run) == 1 else Block(run[0].first_sample, np.concatenate([r.values for r in run]),
                                                          np.concatenate([r.lead_off for r in run]), run[-1].arrival))  # fmt: skip
            run = []
        if b is not None:
            run.append(b)
    return out


def _read_bytes(ser: serial.Serial, port: str) -> bytes:
    try:
        return ser.read(ser.in_waiting or 1)
    except (serial.SerialException, OSError, TypeError) as exc:
        # TypeError: pyserial on a descriptor closed under it
        raise SourceError(f"port {port}: the device went away (cable pulled?): {exc}") from None


class LiveSource:
    """Base of `BinarySource` and `TextSource`; a context manager."""

    port: str
    kind: str  # "binary" | "text"
    rate_hz: float
    rate_estimated: bool = False
    info: Info | None = None
    no_data_timeout: float

    @property
    def adc_bits(self) -> int:
        raise NotImplementedError

    @property
    def board_beats(self) -> bool:
        """The board detects beats itself (Capability.BEATS): its BEATS frames and RESULT heart rates come in."""
        return False

    def take_beats(self) -> list[int]:
        """Session sample indices of the beats the board reported since the last call (increasing)."""
        return []

    def read(self, timeout: float = 0.5) -> tuple[list[Block], list[Result]]:
        """Whatever arrived within `timeout` s (possibly nothing; returns early once something came).
        Raises SourceError when no data at all arrived for `no_data_timeout` s, or the port vanished."""
        raise NotImplementedError

    def _pump(self) -> bool:
        """Take in what the port holds now; True when something was read."""
        raise NotImplementedError

    def _has_data(self) -> bool:
        raise NotImplementedError

    def _wait(self, ser: serial.Serial, timeout: float, silent: str) -> None:
        """Pump until data is ready or `timeout` passes; SourceError (saying `silent`) after `no_data_timeout` without data."""
        end = time.monotonic() + timeout
        while True:
            while self._pump():
                pass
            now = time.monotonic()
            if self._has_data() or now >= end:
                break
            wait_readable(ser, min(end - now, WAIT_SLICE_S))
        if time.monotonic() - self._last_data > self.no_data_timeout:
            raise SourceError(f"port {self.port}: no data for {self.no_data_timeout:g} s ({silent})")

    @property
    def stats(self) -> dict[str, int]:
        """frames, frames_dropped, samples_lost, crc_errors, dropped_bytes, bad_lines, resets."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> LiveSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        """One line for people: what is streaming, at which rate (and whether it was estimated)."""
        rate = f"{self.rate_hz:g} Hz" + (" (estimated from line arrival times; --rate sets it)" if self.rate_estimated else "")
        if self.info is not None:
            return f"{self.port}: this firmware ({self.info.firmware}, backend {self.info.backend}), {rate}, {self.adc_bits}-bit ADC"
        return f"{self.port}: text lines (one ADC value per line), {rate}, {self.adc_bits}-bit ADC"


# ------------------------------------------------------------------ binary: this firmware's frames


def ask_info(link: DeviceLink, timeout: float) -> Info:
    """GET_INFO, resent every second until INFO (an emulator notices a new client within a second)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return link.get_info(timeout=max(0.05, min(1.0, deadline - time.monotonic())))
        except LinkError as exc:
            if "no INFO within" not in str(exc):  # not a timeout: garbage, a write error, the port gone
                raise SourceError(str(exc)) from None
            if time.monotonic() >= deadline:
                raise SourceError(f"port {link.port}: no INFO within {timeout:g} s: is it running this firmware at this baud rate?") from None


class BinarySource(LiveSource):
    """This firmware over `DeviceLink`: SAMPLES become Blocks, RESULTs pass through, BEATS are kept for
    `take_beats()`.

    Session indices are the device's sample counter; after a device reset (the counter went back)
    they continue from the last block's end, and `stats["resets"]` counts it. `session_index()` maps a
    device counter (e.g. a RESULT's first_sample) to the session's."""

    kind = "binary"

    def __init__(self, link: DeviceLink, *, timeout: float = 5.0, stream: bool = True) -> None:
        self.link = link
        self.port = link.port
        self.no_data_timeout = timeout
        self._blocks: list[Block] = []
        self._results: list[Result] = []
        self._beats: list[int] = []
        self._offset = 0  # session index - device counter
        self._next_device: int | None = None
        self._next_session: int | None = None
        link.on_samples = self._on_samples
        link.on_result = self._on_result
        link.on_beats = self._on_beats
        self.info = ask_info(link, timeout)
        self.rate_hz = float(self.info.rate_hz)
        self.rate_estimated = False
        if stream:
            try:
                link.command(CommandCode.STREAM, 1, timeout=min(timeout, 3.0))
            except LinkError as exc:
                raise SourceError(str(exc)) from None
        self._frames_seen = link.stats.frames
        self._last_data = time.monotonic()

    @property
    def adc_bits(self) -> int:
        assert self.info is not None
        return int(self.info.adc_bits)

    def session_index(self, device_sample: int) -> int:
        """The session index of the device's sample counter value (valid since the last reset)."""
        return device_sample + self._offset

    def _on_samples(self, msg: Samples) -> None:
        dev = msg.first_sample
        if self._next_device is not None and dev < self._next_device:
            self._offset = (self._next_session or 0) - dev  # reset (or 2^32 wrap): carry on from the last block
        if not msg.values:
            return
        first = dev + self._offset
        values = np.asarray(msg.values, dtype=np.int32)
        lead_off = np.asarray(msg.lead_off, dtype=bool) if msg.lead_off else np.zeros(len(values), dtype=bool)
        self._blocks.append(Block(first, values, lead_off, time.monotonic()))
        self._next_device = dev + len(values)
        self._next_session = first + len(values)

    def _on_result(self, msg: Result) -> None:
        self._results.append(msg)

    def _on_beats(self, msg: Beats) -> None:
        self._beats += [self.session_index(b) for b in msg.samples]

    @property
    def board_beats(self) -> bool:
        caps = self.link.capabilities
        return caps is not None and bool(caps & Capability.BEATS)

    def take_beats(self) -> list[int]:
        beats, self._beats = self._beats, []
        return beats

    def _pump(self) -> bool:
        try:
            got = bool(self.link.poll(0))
        except SourceError:
            raise
        except LinkError as exc:
            raise SourceError(str(exc)) from None
        if self.link.stats.frames != self._frames_seen:
            self._frames_seen = self.link.stats.frames
            self._last_data = time.monotonic()
        return got

    def _has_data(self) -> bool:
        return bool(self._blocks or self._results or self._beats)

    def read(self, timeout: float = 0.5) -> tuple[list[Block], list[Result]]:
        self._wait(self.link.ser, timeout, "the device stopped streaming?")
        blocks, results = self._blocks, self._results
        self._blocks, self._results = [], []
        return blocks, results

    @property
    def stats(self) -> dict[str, int]:
        s = self.link.stats
        return {"frames": s.frames, "frames_dropped": s.frames_dropped, "samples_lost": s.samples_lost,
                "crc_errors": s.crc_errors, "dropped_bytes": s.dropped_bytes, "bad_lines": 0, "resets": s.resets}  # fmt: skip

    def close(self) -> None:
        self.link.close()


# ------------------------------------------------------------------ text: one ADC value per line

LEAD_OFF_LINE = b"!"


def _adc_value(text: bytes) -> int | None:
    if 0 < len(text) <= 5 and text.isdigit():
        value = int(text)
        return value if value <= ADC_MASK else None
    return None


def parse_line(line: bytes) -> int | None:
    """An ADC value, -1 for a lead-off line (`!`, or this firmware's text mode with lead_off:1), None for
    anything else."""
    text = line.strip()
    if text == LEAD_OFF_LINE:
        return -1
    if text.startswith(TEXT_SAMPLE.encode() + b":"):
        fields = dict(f.split(b":", 1) for f in text.split(b",") if b":" in f)
        value = _adc_value(fields.get(TEXT_SAMPLE.encode(), b""))
        off = fields.get(TEXT_LEAD_OFF.encode(), b"0")
        if value is None or off not in (b"0", b"1"):
            return None
        return -1 if off == b"1" else value
    return _adc_value(text)


MESSAGE_KEYS = (TEXT_RESULT, TEXT_LOST, TEXT_HELLO)  # this firmware's text-mode lines for people


def message_line(line: bytes) -> tuple[str, str] | None:
    """(key, rest) of a text-mode line for people (`result: ...`, `lost: <n> samples`, `ecg-edge: ...`), else None."""
    key, sep, rest = line.strip().decode("ascii", "replace").partition(": ")
    return (key, rest) if sep and key in MESSAGE_KEYS else None


def lost_samples(rest: str) -> int | None:
    """n of a `lost: <n> samples` line's rest, None when it is not that."""
    words = rest.split()
    return int(words[0]) if len(words) == 2 and words[0].isdigit() and words[1] == "samples" else None


@dataclass
class LineSplitter:
    """Splits bytes into lines; drops the partial line the stream was opened in and overlong lines."""

    synced: bool = False
    dropped_bytes: int = 0
    overlong: int = 0
    _buf: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        lines = self._buf.split(b"\n")
        self._buf = bytearray(lines.pop())
        if lines and not self.synced:
            self.dropped_bytes += len(lines.pop(0)) + 1
            self.synced = True
        if len(self._buf) > MAX_LINE:
            if self.synced:
                self.overlong += 1
            self.dropped_bytes += len(self._buf)
            self._buf.clear()
            self.synced = False  # the rest of this "line" is dropped up to its newline
        out = []
        for line in lines:
            if len(line) > MAX_LINE + 1:
                self.overlong += 1
                self.dropped_bytes += len(line) + 1
            elif line.strip():
                out.append(bytes(line))
        return out


def bits_for(max_value: int) -> int:
    """ADC resolution guessed from the largest value seen: 10 up to 1023, 12 up to 4095, else its bit length."""
    return 10 if max_value <= 1023 else 12 if max_value <= 4095 else int(max_value).bit_length()


def snap_rate(estimate: float) -> float:
    """`estimate` as the common rate within SNAP_TOLERANCE of it, else itself (to 0.01 Hz)."""
    for rate in COMMON_RATES:
        if abs(estimate - rate) <= SNAP_TOLERANCE * rate:
            return rate
    return round(estimate, 2)


class TextSource(LiveSource):
    """Lines of a plain AD8232 sketch. Session index = lines since the session start (the first whole
    line); a line that is neither a value nor `!` (after the first good one) leaves a one-sample gap."""

    kind = "text"

    def __init__(self, ser: serial.Serial, port: str, *, rate: float | None = None, adc_bits: int | None = None,
                 timeout: float = 5.0) -> None:  # fmt: skip
        if rate is not None and not rate > 0:
            raise SourceError(f"port {port}: --rate must be positive, not {rate}")
        if adc_bits is not None and not 1 <= adc_bits <= 15:
            raise SourceError(f"port {port}: --adc-bits must be 1..15, not {adc_bits}")
        self.ser = ser
        self.port = port
        self.no_data_timeout = timeout
        self.info = None
        self._fixed_rate = rate
        self._fixed_bits = adc_bits
        self.rate_hz = float(rate) if rate is not None else float("nan")
        self.rate_estimated = rate is None
        self.measured_rate_hz: float | None = None  # raw estimate from arrival times (also with --rate)
        self._lines = LineSplitter()
        self._index = 0
        self._started = False  # a good line was seen: bad lines now leave gaps
        self._max_value = 0
        self._pending: list[Block] = []
        self._points: list[tuple[float, int]] = []
        self._step = 1  # keep every _step-th arrival point (decimation)
        self._arrivals = 0
        self._estimated_at = 0.0
        self._bad_lines = 0
        self._samples_lost = 0
        self._bytes_without_line = 0
        self._last_data = time.monotonic()

    @property
    def adc_bits(self) -> int:
        return self._fixed_bits or bits_for(self._max_value)

    def ingest(self, data: bytes, arrival: float) -> None:
        """Take bytes that arrived at `arrival` (monotonic); complete lines become pending blocks."""
        if not data:
            return
        self._last_data = arrival
        lines = self._lines.feed(data)
        values: list[int] = []
        flags: list[bool] = []
        first = self._index

        def cut() -> None:
            if values:
                self._pending.append(Block(first, np.asarray(values, dtype=np.int32), np.asarray(flags, dtype=bool), arrival))
                values.clear()
                flags.clear()

        def gap(n: int) -> None:
            """n samples missing before the next line's: the block so far ends, the index jumps, counted lost."""
            nonlocal first
            cut()
            self._index += n
            self._samples_lost += n
            first = self._index

        good = False
        for line in lines:
            message = message_line(line)
            if message is not None:
                lost = lost_samples(message[1]) if message[0] == TEXT_LOST else None
                if lost and self._started:  # the board's own count of samples it lost
                    gap(lost)
                continue
            value = parse_line(line)
            if value is None or (self._fixed_bits and value > (1 << self._fixed_bits) - 1):
                self._bad_lines += 1
                if self._started:
                    gap(1)
                continue
            self._started = good = True
            if value >= 0:
                self._max_value = max(self._max_value, value)
            values.append(value if value >= 0 else (1 << self.adc_bits) - 1)
            flags.append(value < 0)
            self._index += 1
        cut()
        self._bytes_without_line = 0 if good else self._bytes_without_line + len(data)
        if good:
            self._arrival_point(arrival)

    def _arrival_point(self, arrival: float) -> None:
        self._arrivals += 1
        if self._arrivals % self._step == 0:
            self._points.append((arrival, self._index))
            if len(self._points) > ESTIMATE_POINTS:
                self._points = self._points[::2]
                self._step *= 2
        if arrival - self._estimated_at >= ESTIMATE_EVERY_S:
            self._estimate()

    def _estimate(self) -> None:
        """Theil-Sen slope of lines against arrival time: robust to bursts and stalls of the reader."""
        if len(self._points) < 10 or self._points[-1][0] - self._points[0][0] < ESTIMATE_MIN_S:
            return
        t = np.array([p[0] for p in self._points])
        n = np.array([p[1] for p in self._points], dtype=np.float64)
        slope = float(theilslopes(n, t - t[0])[0])
        self._estimated_at = self._points[-1][0]
        if not slope > 0:
            return
        self.measured_rate_hz = slope
        if self._fixed_rate is None:
            self.rate_hz = snap_rate(slope)

    @property
    def has_rate(self) -> bool:
        return self.rate_hz == self.rate_hz  # not NaN

    def _pump(self) -> bool:
        data = _read_bytes(self.ser, self.port)
        if data:
            self.ingest(data, time.monotonic())
            if self._bytes_without_line > GARBAGE_BYTES:
                raise SourceError(
                    f"port {self.port}: {self._bytes_without_line} bytes without one text line (a number or '!'): "
                    f"wrong --baud (this firmware: {DEFAULT_BAUD}), or binary frames (use the default --mode auto)"
                )
        return bool(data)

    def warm_up(self) -> None:
        """Read until the rate is known (estimated over ESTIMATE_MIN_S); what arrives stays pending for read()."""
        while not self.has_rate:
            if not self._pump():
                if time.monotonic() - self._last_data > self.no_data_timeout:
                    raise SourceError(f"port {self.port}: no data for {self.no_data_timeout:g} s while estimating the rate (--rate skips this)")
                wait_readable(self.ser, WAIT_SLICE_S)

    def _has_data(self) -> bool:
        return bool(self._pending)

    def read(self, timeout: float = 0.5) -> tuple[list[Block], list[Result]]:
        self._wait(self.ser, timeout, "the sketch stopped printing?")
        blocks, self._pending = merge_blocks(self._pending), []
        return blocks, []

    @property
    def stats(self) -> dict[str, int]:
        return {"frames": 0, "frames_dropped": 0, "samples_lost": self._samples_lost, "crc_errors": 0,
                "dropped_bytes": self._lines.dropped_bytes, "bad_lines": self._bad_lines + self._lines.overlong,
                "resets": 0, "lines": self._index}  # fmt: skip

    def close(self) -> None:
        self.ser.close()


# ------------------------------------------------------------------ telling them apart


@dataclass
class Detection:
    kind: str  # "binary" | "text"
    info: Info | None  # an INFO seen while detecting (a device sends one at power-on and when asked)
    chunks: list[tuple[bytes, float]]  # what arrived, with arrival times
    text_lines: int
    seconds: float


def detect(ser: serial.Serial, port: str, timeout: float = 5.0, *, ask_info: bool = True) -> Detection:
    """Read until protocol frames (binary) or MIN_TEXT_LINES well-formed lines (text) show up.

    With `ask_info`, a GET_INFO goes out after ASK_INFO_AFTER_S of silence (and every second after),
    so a device of this firmware with streaming off still answers; a text sketch ignores it."""
    reader = Reader()
    lines = LineSplitter()
    chunks: list[tuple[bytes, float]] = []
    good = bad = received = 0
    start = time.monotonic()
    first_byte: float | None = None
    asked = 0.0
    encoder = Encoder()
    while True:
        now = time.monotonic()
        data = _read_bytes(ser, port)
        if data:
            chunks.append((data, now))
            received += len(data)
            if first_byte is None and received >= STRAY_BYTES:
                first_byte = now
            info = None
            frames = 0
            for frame in reader.feed(data):
                try:
                    msg = decode_message(frame)
                except ProtocolError:
                    continue
                frames += 1
                info = msg if isinstance(msg, Info) else info
            if frames:
                return Detection("binary", info, chunks, good, now - start)
            for line in lines.feed(data):
                if message_line(line) is not None:
                    continue
                if parse_line(line) is None:
                    bad += 1
                else:
                    good += 1
            if good >= MIN_TEXT_LINES and good >= 2 * bad:
                return Detection("text", None, chunks, good, now - start)
            continue
        if first_byte is not None and now - first_byte > DETECT_S:
            raise SourceError(f"port {port}: got {received} bytes, no frame and no text line: wrong --baud? (this firmware: {DEFAULT_BAUD})")
        if first_byte is None and now - start > timeout:
            stray = f"; only {received} stray bytes" if received else ""
            raise SourceError(f"no data from {port} within {timeout:g} s (is the board running/streaming?{stray})")
        if ask_info and now - start > ASK_INFO_AFTER_S and now - asked > 1.0 and received < STRAY_BYTES:
            try:
                ser.write(encoder.encode(Command(CommandCode.GET_INFO)))
            except (serial.SerialException, OSError) as exc:
                raise SourceError(f"port {port}: cannot write ({exc})") from None
            asked = now
        wait_readable(ser, WAIT_SLICE_S)


MODES = ("auto", "binary", "text")


def _open(port: str, baud: int) -> serial.Serial:
    try:
        return open_port(port, baud)
    except SourceError:
        raise
    except LinkError as exc:
        raise SourceError(str(exc)) from None


def open_source(port: str, *, baud: int = DEFAULT_BAUD, mode: str = "auto", rate: float | None = None,
                adc_bits: int | None = None, timeout: float = 5.0, stream: bool = True) -> LiveSource:  # fmt: skip
    """Open the port, detect binary frames vs text lines (auto), and return a started source (a binary device is
    asked for INFO and to STREAM unless `stream=False`; a text source without `rate` has read ESTIMATE_MIN_S
    of lines to estimate it, kept for the first read()). Errors (SourceError): missing port, busy port,
    wrong baud (bytes but neither frames nor text lines), no data within `timeout`."""
    if mode not in MODES:
        raise SourceError(f"port {port}: mode {mode!r} is not one of {', '.join(MODES)}")
    ser = _open(port, baud)
    try:
        kind, chunks = mode, []
        if mode == "auto":
            found = detect(ser, port, timeout)
            kind, chunks = found.kind, found.chunks
        source: LiveSource
        if kind == "binary":
            source = BinarySource(DeviceLink(ser, baud), timeout=timeout, stream=stream)
        else:
            text = TextSource(ser, port, rate=rate, adc_bits=adc_bits, timeout=timeout)
            for data, arrival in chunks:
                text.ingest(data, arrival)
            text.warm_up()
            source = text
    except BaseException:
        ser.close()
        raise
    return source


# ------------------------------------------------------------------ probing (ecg-host ports)


@dataclass(frozen=True)
class Probe:
    kind: str  # "binary", "text", "busy", "missing", "silent", "unknown"
    summary: str  # one line for people
    info: Info | None = None


def probe_port(port: str, timeout: float = 2.0, baud: int = DEFAULT_BAUD) -> Probe:
    """What is on `port`: this firmware (its INFO), a text sketch, busy, silent or unknown. Opens the port
    (which resets many Arduino boards) and always closes it."""
    try:
        ser = _open(port, baud)
    except SourceError as exc:
        text = str(exc)
        return Probe("busy" if "busy" in text else "missing" if "no such device" in text else "unknown", text)
    deadline = time.monotonic() + timeout
    try:
        try:
            found = detect(ser, port, timeout)
        except SourceError as exc:
            return Probe("silent" if "no data" in str(exc) else "unknown", str(exc))
        if found.kind == "binary":
            info = found.info
            if info is None:
                try:
                    info = ask_info(DeviceLink(ser, baud), max(0.5, deadline - time.monotonic()))
                except SourceError as exc:
                    return Probe("unknown", f"protocol frames but {exc}")
            return Probe("binary", f"answers INFO: {info.firmware}, backend {info.backend}, model {info.model_sha256.hex()[:12]}", info)
        text = TextSource(ser, port, timeout=timeout)
        for data, arrival in found.chunks:
            text.ingest(data, arrival)
        end = max(deadline, time.monotonic() + 0.5)
        while time.monotonic() < end:  # a rough rate from what arrives within the probe time
            if not text._pump():
                wait_readable(ser, min(WAIT_SLICE_S, end - time.monotonic()))
        pts = text._points
        rate = ""
        if len(pts) >= 2 and pts[-1][0] > pts[0][0]:
            rate = f", ~{(pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0]):.0f} lines/s"
        return Probe("text", f"streams text lines (a plain AD8232 sketch){rate}, values up to {text._max_value} ({text.adc_bits}-bit?)")
    except SourceError as exc:
        return Probe("unknown", str(exc))
    finally:
        ser.close()

