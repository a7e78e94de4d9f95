"""Host side of the binary serial protocol (firmware/PROTOCOL.md): frames, messages, a resynchronising reader.

The device side is firmware/ecg_edge/src/ecg_protocol.c; the constants of both come from
`export.protocol_defs`. Every message validates its fields when built, so an encoder never sends what
a decoder would reject and a decoded message is always in range. Decoding malformed input raises
only `ProtocolError`, carrying the ERROR code a device would answer with.

A RESULT's layout depends on the device: one with `Capability.BEATS` appends its window's heart rate
and RR irregularity. `decode_message(frame, capabilities)` takes the capabilities of the device's
INFO and then requires exactly that layout; with `capabilities=None` (no INFO seen yet) it accepts
either, which the payload's length tells apart.
"""

from __future__ import annotations

import binascii
import math
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

from export.protocol_defs import (
    ADC_MASK,
    BEAT_BYTES,
    CAPABILITIES_ALL,
    COMMAND_ARGS,
    CRC_BYTES,
    CRC_INIT,
    FINGERPRINT_BYTES,
    HEADER_BYTES,
    HR_UNKNOWN,
    LEAD_OFF_BIT,
    MAX_BATCH,
    MAX_BEATS,
    MAX_LABELS,
    MAX_PAYLOAD,
    MAX_STRING,
    MAX_WINDOW_CHUNK,
    RR_IRREGULARITY_UNKNOWN,
    SHA256_BYTES,
    SYNC,
    VERSION,
    Capability,
    CommandCode,
    ErrorCode,
    FrameType,
    ResultSource,
    TimeUnit,
    WindowStatus,
)


class ProtocolError(ValueError):
    """A frame, payload or message that breaks the protocol; `code` is the matching ERROR code."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def crc16(data: bytes | bytearray, crc: int = CRC_INIT) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, not reflected, no final xor)."""
    return binascii.crc_hqx(data, crc)


def encode_frame(frame_type: int, seq: int, payload: bytes) -> bytes:
    """sync, version, type, seq, len, payload, CRC over version..payload."""
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(ErrorCode.BAD_LENGTH, f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    _uint("frame type", frame_type, 8)
    _uint("seq", seq, 16)
    body = struct.pack("<BBHH", VERSION, frame_type, seq, len(payload)) + payload
    return SYNC + body + struct.pack("<H", crc16(body))


@dataclass(frozen=True)
class Frame:
    """A frame that passed the header and CRC checks; its payload is not decoded yet."""

    type: int
    seq: int
    payload: bytes

    def encode(self) -> bytes:
        return encode_frame(self.type, self.seq, self.payload)

    def message(self, capabilities: Capability | None = None) -> Message:
        """The payload decoded (`decode_message`; `capabilities`: the sender's INFO's, None while unknown)."""
        return decode_message(self, capabilities)


# ---- field checks and payload parsing ---------------------------------------------------------


def _uint(name: str, value: int, bits: int) -> int:
    if not 0 <= value < 1 << bits:
        raise ProtocolError(ErrorCode.BAD_VALUE, f"{name} {value} is not a u{bits}")
    return int(value)


def _int8(name: str, value: int) -> int:
    if not -128 <= value <= 127:
        raise ProtocolError(ErrorCode.BAD_VALUE, f"{name} {value} is not an int8")
    return int(value)


def _member(cls: Any, name: str, value: int) -> Any:
    try:
        return cls(value)
    except ValueError:
        raise ProtocolError(ErrorCode.BAD_VALUE, f"{name} {value} is not a {cls.__name__}") from None


def _text(name: str, value: str) -> str:
    if len(value) > MAX_STRING or not all(" " <= ch <= "~" for ch in value):
        raise ProtocolError(ErrorCode.BAD_VALUE, f"{name} {value!r}: strings are up to {MAX_STRING} printable ASCII characters")
    return value


def _float32(name: str, value: float) -> float:
    """`value` rounded to float32; finite and >= 0 (a quantization scale, 0 without a model)."""
    if not (math.isfinite(value) and 0 <= value <= 3.4028234663852886e38):
        raise ProtocolError(ErrorCode.BAD_VALUE, f"{name} {value} is not a finite non-negative float32")
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


class _Fields:
    """Reads one frame type's payload front to back; running past its end or leaving bytes over is BAD_LENGTH."""

    def __init__(self, payload: bytes, frame: FrameType) -> None:
        self.data = payload
        self.frame = frame.name
        self.pos = 0

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, what: str = "a field") -> bytes:
        if self.pos + n > len(self.data):
            raise ProtocolError(ErrorCode.BAD_LENGTH, f"{self.frame}: payload of {len(self.data)} bytes ends inside {what}")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def unpack(self, fmt: str, what: str = "a field") -> tuple[Any, ...]:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))

    def text(self) -> str:
        """A length-prefixed string, decoded losslessly; the message checks its characters."""
        return self.take(self.unpack("B")[0]).decode("latin-1")

    def end(self, last: str = "the last field") -> None:
        if self.pos != len(self.data):
            raise ProtocolError(ErrorCode.BAD_LENGTH, f"{self.frame}: {len(self.data) - self.pos} bytes after {last}")


def _pack_text(value: str) -> bytes:
    return bytes([len(value)]) + value.encode("ascii")


def _check_samples(obj: object, values: tuple[int, ...], lead_off: tuple[bool, ...]) -> None:
    values = tuple(_uint("ADC value", v, 15) for v in values)
    lead_off = tuple(bool(f) for f in lead_off) if lead_off else (False,) * len(values)
    if len(values) > MAX_BATCH or len(lead_off) != len(values):
        raise ProtocolError(ErrorCode.BAD_VALUE, f"{len(values)} samples, {len(lead_off)} flags (at most {MAX_BATCH})")
    _set(obj, "values", values)
    _set(obj, "lead_off", lead_off)


def _pack_samples(values: tuple[int, ...], lead_off: tuple[bool, ...]) -> bytes:
    packed = [v | (LEAD_OFF_BIT if f else 0) for v, f in zip(values, lead_off)]
    return struct.pack(f"<B{len(packed)}H", len(packed), *packed)


def _unpack_samples(f: _Fields) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    (count,) = f.unpack("B")
    packed = f.unpack(f"{count}H")
    return tuple(p & ADC_MASK for p in packed), tuple(bool(p & LEAD_OFF_BIT) for p in packed)


# ---- messages -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Info:
    """Device -> host: who the device is and what it runs."""

    TYPE: ClassVar[FrameType] = FrameType.INFO
    firmware: str
    backend: str  # "native", "tflm" or "none"
    model_sha256: bytes  # 32 raw bytes, zeros without a model
    spec_fingerprint: bytes  # 8 raw bytes (PreprocessSpec.fingerprint() as bytes)
    rate_hz: int
    window: int
    hop: int
    adc_bits: int
    capabilities: Capability
    labels: tuple[str, ...]
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    time_unit: TimeUnit

    def __post_init__(self) -> None:
        _text("firmware", self.firmware)
        _text("backend", self.backend)
        if len(self.model_sha256) != SHA256_BYTES or len(self.spec_fingerprint) != FINGERPRINT_BYTES:
            raise ProtocolError(ErrorCode.BAD_VALUE, f"model sha256 takes {SHA256_BYTES} bytes, spec fingerprint {FINGERPRINT_BYTES}")
        _set(self, "model_sha256", bytes(self.model_sha256))
        _set(self, "spec_fingerprint", bytes(self.spec_fingerprint))
        for name in ("rate_hz", "window", "hop"):
            _uint(name, getattr(self, name), 16)
        _uint("adc_bits", self.adc_bits, 8)
        if int(self.capabilities) & ~CAPABILITIES_ALL or int(self.capabilities) < 0:
            raise ProtocolError(ErrorCode.BAD_VALUE, f"unknown capability bits {int(self.capabilities):#x}")
        _set(self, "capabilities", Capability(self.capabilities))
        if len(self.labels) > MAX_LABELS:
            raise ProtocolError(ErrorCode.BAD_VALUE, f"{len(self.labels)} labels, at most {MAX_LABELS}")
        _set(self, "labels", tuple(_text("label", s) for s in self.labels))
        _set(self, "input_scale", _float32("input scale", self.input_scale))
        _set(self, "output_scale", _float32("output scale", self.output_scale))
        _int8("input zero point", self.input_zero_point)
        _int8("output zero point", self.output_zero_point)
        _set(self, "time_unit", _member(TimeUnit, "time unit", self.time_unit))

    def encode(self) -> bytes:
        out = _pack_text(self.firmware) + _pack_text(self.backend) + self.model_sha256 + self.spec_fingerprint
        out += struct.pack("<HHHBBB", self.rate_hz, self.window, self.hop, self.adc_bits, self.capabilities, len(self.labels))
        out += b"".join(_pack_text(s) for s in self.labels)
        out += struct.pack("<fbfbB", self.input_scale, self.input_zero_point, self.output_scale, self.output_zero_point, self.time_unit)
        return out

    @classmethod
    def decode(cls, payload: bytes) -> Info:
        f = _Fields(payload, cls.TYPE)
        firmware, backend = f.text(), f.text()
        sha, fingerprint = f.take(SHA256_BYTES), f.take(FINGERPRINT_BYTES)
        rate, window, hop, adc_bits, caps, n = f.unpack("HHHBBB")
        labels = tuple(f.text() for _ in range(n))
        in_scale, in_zp, out_scale, out_zp, unit = f.unpack("fbfbB")
        f.end()
        return cls(firmware, backend, sha, fingerprint, rate, window, hop, adc_bits, caps, labels, in_scale, in_zp, out_scale, out_zp, unit)


@dataclass(frozen=True)
class Samples:
    """Device -> host: consecutive raw ADC samples; `first_sample` counts samples since reset."""

    TYPE: ClassVar[FrameType] = FrameType.SAMPLES
    first_sample: int
    values: tuple[int, ...]  # 15-bit ADC counts
    lead_off: tuple[bool, ...] = ()  # empty: no lead-off flags

    def __post_init__(self) -> None:
        _uint("first sample", self.first_sample, 32)
        _check_samples(self, self.values, self.lead_off)

    def encode(self) -> bytes:
        return struct.pack("<I", self.first_sample) + _pack_samples(self.values, self.lead_off)

    @classmethod
    def decode(cls, payload: bytes) -> Samples:
        f = _Fields(payload, cls.TYPE)
        (first,) = f.unpack("I")
        values, lead_off = _unpack_samples(f)
        f.end()
        return cls(first, values, lead_off)


@dataclass(frozen=True)
class Result:
    """Device -> host: one window's status and, when classified, its int8 logits and label."""

    TYPE: ClassVar[FrameType] = FrameType.RESULT
    window_index: int
    first_sample: int
    status: WindowStatus
    label: int  # -1 when not classified
    logits: tuple[int, ...]  # int8, empty when not classified
    time: int
    time_unit: TimeUnit
    source: ResultSource
    # Only from a device with Capability.BEATS (both or neither): pipeline.signal.beats.window_rhythm's
    # figures for the window, HR_UNKNOWN / RR_IRREGULARITY_UNKNOWN when it has too few beats.
    hr_x10: int | None = None  # heart rate, bpm x 10
    rr_irregularity: int | None = None  # mean |successive RR difference| / mean RR, per mille

    def __post_init__(self) -> None:
        _uint("window index", self.window_index, 32)
        _uint("first sample", self.first_sample, 32)
        _set(self, "status", _member(WindowStatus, "status", self.status))
        _set(self, "logits", tuple(_int8("logit", v) for v in self.logits))
        _int8("label", self.label)
        if len(self.logits) > 255 or not (self.label == -1 or 0 <= self.label < len(self.logits)):
            raise ProtocolError(ErrorCode.BAD_VALUE, f"label {self.label} with {len(self.logits)} logits")
        _uint("time", self.time, 32)
        _set(self, "time_unit", _member(TimeUnit, "time unit", self.time_unit))
        _set(self, "source", _member(ResultSource, "source", self.source))
        if (self.hr_x10 is None) != (self.rr_irregularity is None):
            raise ProtocolError(ErrorCode.BAD_VALUE, f"RESULT: hr_x10 {self.hr_x10} and rr_irregularity {self.rr_irregularity}: give both or neither")
        if self.hr_x10 is not None:
            _uint("RESULT hr_x10", self.hr_x10, 16)
            _uint("RESULT rr_irregularity", self.rr_irregularity, 16)  # type: ignore[arg-type]
            if (self.hr_x10 == HR_UNKNOWN) != (self.rr_irregularity == RR_IRREGULARITY_UNKNOWN):
                raise ProtocolError(ErrorCode.BAD_VALUE, f"RESULT: hr_x10 {self.hr_x10} with rr_irregularity {self.rr_irregularity}: "
                                    f"both are unknown ({HR_UNKNOWN}, {RR_IRREGULARITY_UNKNOWN:#x}) or neither")  # fmt: skip
            if self.status == WindowStatus.LEAD_OFF and self.hr_x10 != HR_UNKNOWN:
                raise ProtocolError(ErrorCode.BAD_VALUE, f"RESULT: a LEAD_OFF window has an unknown heart rate, not hr_x10 {self.hr_x10}")

    @property
    def has_rhythm(self) -> bool:
        """The RESULT carries hr_x10 and rr_irregularity (its device has Capability.BEATS)."""
        return self.hr_x10 is not None

    @property
    def bpm(self) -> float | None:
        """The window's heart rate, None when not sent or unknown."""
        return None if self.hr_x10 in (None, HR_UNKNOWN) else self.hr_x10 / 10  # type: ignore[operator]

    @property
    def irregularity(self) -> float | None:
        """The window's RR irregularity as a fraction (0.05: 5 %), None when not sent or unknown."""
        return None if self.rr_irregularity in (None, RR_IRREGULARITY_UNKNOWN) else self.rr_irregularity / 1000  # type: ignore[operator]

    def encode(self) -> bytes:
        n = len(self.logits)
        out = struct.pack(f"<IIBbB{n}bIBB", self.window_index, self.first_sample, self.status, self.label, n,
                          *self.logits, self.time, self.time_unit, self.source)  # fmt: skip
        return out + (struct.pack("<HH", self.hr_x10, self.rr_irregularity) if self.has_rhythm else b"")

    @classmethod
    def decode(cls, payload: bytes, capabilities: Capability | None = None) -> Result:
        """`capabilities`: the sender's (INFO); with BEATS the rhythm fields are required, without it they are
        refused, and None (not known yet) takes either layout."""
        f = _Fields(payload, cls.TYPE)
        window, first, status, label, n = f.unpack("IIBbB")
        logits = f.unpack(f"{n}b", f"the {n} logits")
        time, unit, source = f.unpack("IBB", "time, time unit and source")
        beats = bool(Capability(capabilities) & Capability.BEATS) if capabilities is not None else f.left > 0
        hr = irregularity = None
        if beats:
            hr, irregularity = f.unpack("HH", "hr_x10 and rr_irregularity (sent by a device with the BEATS capability)")
        f.end("source (a device without the BEATS capability sends no hr_x10 and rr_irregularity)" if not beats else "rr_irregularity")
        return cls(window, first, status, label, logits, time, unit, source, hr, irregularity)


@dataclass(frozen=True)
class Ack:
    """Device -> host: the host frame `seq` of `type` was accepted; `credits` replay samples still fit."""

    TYPE: ClassVar[FrameType] = FrameType.ACK
    seq: int
    type: FrameType
    credits: int

    def __post_init__(self) -> None:
        _uint("acked seq", self.seq, 16)
        _set(self, "type", _member(FrameType, "acked type", self.type))
        _uint("credits", self.credits, 16)

    def encode(self) -> bytes:
        return struct.pack("<HBH", self.seq, self.type, self.credits)

    @classmethod
    def decode(cls, payload: bytes) -> Ack:
        f = _Fields(payload, cls.TYPE)
        seq, type_, credits = f.unpack("HBH")
        f.end()
        return cls(seq, type_, credits)


@dataclass(frozen=True)
class Error:
    """Device -> host: the host frame `about_seq` was refused (or something failed while handling it)."""

    TYPE: ClassVar[FrameType] = FrameType.ERROR
    code: ErrorCode
    about_seq: int
    message: str

    def __post_init__(self) -> None:
        _set(self, "code", _member(ErrorCode, "error code", self.code))
        _uint("about seq", self.about_seq, 16)
        _text("message", self.message)

    def encode(self) -> bytes:
        return struct.pack("<BH", self.code, self.about_seq) + _pack_text(self.message)

    @classmethod
    def decode(cls, payload: bytes) -> Error:
        f = _Fields(payload, cls.TYPE)
        code, about = f.unpack("BH")
        message = f.text()
        f.end()
        return cls(code, about, message)


@dataclass(frozen=True)
class Beats:
    """Device -> host (Capability.BEATS): sample indices of R peaks its detector found, in the SAMPLES counter."""

    TYPE: ClassVar[FrameType] = FrameType.BEATS
    samples: tuple[int, ...]  # 1..MAX_BEATS u32 sample indices since power-on or RESET

    def __post_init__(self) -> None:
        _set(self, "samples", tuple(_uint("BEATS sample", v, 32) for v in self.samples))
        if not 1 <= len(self.samples) <= MAX_BEATS:
            raise ProtocolError(ErrorCode.BAD_VALUE, f"BEATS: count {len(self.samples)}, must be 1..{MAX_BEATS}")

    def encode(self) -> bytes:
        return struct.pack(f"<B{len(self.samples)}I", len(self.samples), *self.samples)

    @classmethod
    def decode(cls, payload: bytes) -> Beats:
        f = _Fields(payload, cls.TYPE)
        (count,) = f.unpack("B", "count")
        samples = f.unpack(f"{count}I", f"{count} beats of {BEAT_BYTES} bytes")
        f.end(f"{count} beats")
        return cls(samples)


@dataclass(frozen=True)
class Command:
    """Host -> device: GET_INFO and RESET (arg 0), SOURCE (SampleSource), STREAM (0 off, 1 on)."""

    TYPE: ClassVar[FrameType] = FrameType.COMMAND
    code: CommandCode
    arg: int = 0

    def __post_init__(self) -> None:
        _set(self, "code", _member(CommandCode, "command", self.code))
        if not 0 <= self.arg < COMMAND_ARGS[self.code]:
            raise ProtocolError(ErrorCode.BAD_VALUE, f"{self.code.name} takes an argument below {COMMAND_ARGS[self.code]}, not {self.arg}")

    def encode(self) -> bytes:
        return struct.pack("<BI", self.code, self.arg)

    @classmethod
    def decode(cls, payload: bytes) -> Command:
        f = _Fields(payload, cls.TYPE)
        code, arg = f.unpack("BI")
        f.end()
        return cls(code, arg)


@dataclass(frozen=True)
class ReplaySamples:
    """Host -> device: raw samples the device pipeline takes instead of the ADC (0 samples: ask for credits)."""

    TYPE: ClassVar[FrameType] = FrameType.REPLAY_SAMPLES
    values: tuple[int, ...]
    lead_off: tuple[bool, ...] = ()

    def __post_init__(self) -> None:
        _check_samples(self, self.values, self.lead_off)

    def encode(self) -> bytes:
        return _pack_samples(self.values, self.lead_off)

    @classmethod
    def decode(cls, payload: bytes) -> ReplaySamples:
        f = _Fields(payload, cls.TYPE)
        values, lead_off = _unpack_samples(f)
        f.end()
        return cls(values, lead_off)


@dataclass(frozen=True)
class ReplayWindow:
    """Host -> device: bytes [offset, offset + len(data)) of the `total`-byte int8 model input `window_id`."""

    TYPE: ClassVar[FrameType] = FrameType.REPLAY_WINDOW
    window_id: int
    offset: int
    total: int
    data: bytes  # int8 values as raw bytes (numpy: array.astype(np.int8).tobytes())

    def __post_init__(self) -> None:
        _uint("window id", self.window_id, 32)
        _uint("offset", self.offset, 16)
        _uint("total", self.total, 16)
        _set(self, "data", bytes(self.data))
        if not 1 <= len(self.data) <= MAX_WINDOW_CHUNK or self.offset + len(self.data) > self.total:
            raise ProtocolError(ErrorCode.BAD_VALUE, f"chunk of {len(self.data)} bytes at {self.offset} of {self.total}")

    def encode(self) -> bytes:
        return struct.pack("<IHH", self.window_id, self.offset, self.total) + self.data

    @classmethod
    def decode(cls, payload: bytes) -> ReplayWindow:
        f = _Fields(payload, cls.TYPE)
        window_id, offset, total = f.unpack("IHH")
        data = f.take(len(payload) - f.pos)
        return cls(window_id, offset, total, data)


Message = Union[Info, Samples, Result, Ack, Error, Beats, Command, ReplaySamples, ReplayWindow]
MESSAGES: dict[int, Any] = {cls.TYPE: cls for cls in (Info, Samples, Result, Ack, Error, Beats, Command, ReplaySamples, ReplayWindow)}


def decode_message(frame: Frame, capabilities: Capability | None = None) -> Message:
    """The frame's payload as its message; ProtocolError when the type is unknown or the payload malformed.

    `capabilities`: those of the sender's INFO, which fix a RESULT's layout (None: not known yet, either)."""
    cls = MESSAGES.get(frame.type)
    if cls is None:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown frame type {frame.type:#04x}")
    if cls is Result:
        return Result.decode(frame.payload, capabilities)
    return cls.decode(frame.payload)


def window_chunks(window_id: int, data: bytes, chunk: int = MAX_WINDOW_CHUNK) -> list[ReplayWindow]:
    """One int8 model input as REPLAY_WINDOW chunks of at most `chunk` bytes, in the order to send them."""
    if not 1 <= chunk <= MAX_WINDOW_CHUNK or not data:
        raise ProtocolError(ErrorCode.BAD_VALUE, f"chunk size {chunk} (1..{MAX_WINDOW_CHUNK}), window of {len(data)} bytes")
    return [ReplayWindow(window_id, i, len(data), data[i : i + chunk]) for i in range(0, len(data), chunk)]


class Encoder:
    """Frames messages with one sender's sequence numbers (+1 per frame, wrapping at 2**16)."""

    def __init__(self, seq: int = 0) -> None:
        self.seq = _uint("seq", seq, 16)

    def encode(self, message: Message) -> bytes:
        frame = encode_frame(message.TYPE, self.seq, message.encode())
        self.seq = (self.seq + 1) & 0xFFFF
        return frame


# ---- reading a byte stream ----------------------------------------------------------------------


@dataclass
class ReaderStats:
    frames: int = 0  # frames delivered
    dropped_bytes: int = 0  # bytes that were not part of a delivered frame
    crc_errors: int = 0  # complete candidates whose CRC failed
    header_errors: int = 0  # candidates after a sync with a wrong version or a length over MAX_PAYLOAD


@dataclass
class Reader:
    """Splits a byte stream into frames, resynchronising after garbage, bit errors and truncated frames.

    Behaves exactly like feeding the device reader (ecg_proto_reader_push) one byte at a time: on a
    bad header or CRC it drops the candidate's first byte only and rescans what it buffered, so a
    frame behind a false sync is found. feed() may take any split of the stream.
    """

    stats: ReaderStats = field(default_factory=ReaderStats)
    _buf: bytearray = field(default_factory=bytearray, repr=False)

    @property
    def pending(self) -> int:
        """Bytes buffered that may still begin a frame."""
        return len(self._buf)

    def _reject(self) -> None:
        del self._buf[:1]
        self.stats.dropped_bytes += 1

    def feed(self, data: bytes) -> list[Frame]:
        buf = self._buf
        buf += data
        out: list[Frame] = []
        while buf:
            if buf[0] != SYNC[0]:
                skip = buf.find(SYNC[0])
                skip = len(buf) if skip < 0 else skip
                del buf[:skip]
                self.stats.dropped_bytes += skip
                continue
            if len(buf) < 2:
                break
            if buf[1] != SYNC[1]:
                self._reject()
                continue
            if len(buf) < 3:
                break
            if buf[2] != VERSION:
                self.stats.header_errors += 1
                self._reject()
                continue
            if len(buf) < HEADER_BYTES:
                break
            type_, seq, n = struct.unpack_from("<BHH", buf, 3)
            if n > MAX_PAYLOAD:
                self.stats.header_errors += 1
                self._reject()
                continue
            end = HEADER_BYTES + n + CRC_BYTES
            if len(buf) < end:
                break
            if crc16(buf[2 : end - CRC_BYTES]) != int.from_bytes(buf[end - CRC_BYTES : end], "little"):
                self.stats.crc_errors += 1
                self._reject()
                continue
            out.append(Frame(type_, seq, bytes(buf[HEADER_BYTES : end - CRC_BYTES])))
            self.stats.frames += 1
            del buf[:end]
        return out

    def flush(self) -> list[Frame]:
        """The line went idle (IDLE_FLUSH_MS) inside a candidate: give it up and every later one,
        returning the frames buffered behind them. Leaves the buffer empty."""
        out: list[Frame] = []
        while self._buf:
            self._reject()
            out += self.feed(b"")
        return out


class ReplayCredits:
    """Host flow control for REPLAY_SAMPLES: never more un-ACKed samples in flight than the last ACK's credits.

    Call sent() for every frame the host sends (count 0 for frames other than REPLAY_SAMPLES), then
    ack() or error() with each answer. The device answers host frames in order, so an answer to
    `seq` settles every frame sent before it too.
    """

    def __init__(self) -> None:
        self.credits = 0
        self._in_flight: OrderedDict[int, int] = OrderedDict()

    @property
    def in_flight(self) -> int:
        """Frames sent and not yet answered."""
        return len(self._in_flight)

    @property
    def room(self) -> int:
        """Replay samples that may be sent now."""
        return max(0, self.credits - sum(self._in_flight.values()))

    def sent(self, seq: int, count: int = 0) -> None:
        if count > self.room:
            raise ProtocolError(ErrorCode.REPLAY_OVERFLOW, f"{count} samples, room for {self.room}")
        self._in_flight[seq] = count

    def _settle(self, seq: int) -> bool:
        if seq not in self._in_flight:
            return False
        while self._in_flight:
            if self._in_flight.popitem(last=False)[0] == seq:
                break
        return True

    def ack(self, ack: Ack) -> None:
        if self._settle(ack.seq):
            self.credits = ack.credits

    def error(self, error: Error) -> None:
        self._settle(error.about_seq)
