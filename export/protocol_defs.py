"""Constants of the serial protocol (firmware/PROTOCOL.md), defined once for both sides.

The host (`host.protocol`) imports them; the firmware gets them as `ecg_protocol_defs.h`, written by
`protocol_defs_header()` into the generated sources. Window status codes are
`pipeline.signal.quality.QualityStatus`'s (the device's `pipeline.signal.device_rule.WindowStatus` codes, extended by
FLAT, NOISY and LOW_CONFIDENCE): `WindowStatus` here is that enum. The "unknown" values of a RESULT's
heart rate and RR irregularity are `pipeline.signal.beats`'s, where `window_rhythm` defines both figures.
"""

from __future__ import annotations

import enum

from pipeline.signal.beats import HR_UNKNOWN, RR_IRREGULARITY_UNKNOWN
from pipeline.signal.quality import QualityStatus

WindowStatus = QualityStatus  # a RESULT's status byte

from .c_arrays import _banner, _define, _guard

PROTOCOL_DEFS_HEADER = "ecg_protocol_defs.h"

SYNC = b"\xa5\x5a"
VERSION = 1
HEADER_BYTES = 8  # sync (2), version, type, seq u16, len u16
CRC_BYTES = 2
MAX_PAYLOAD = 512
MAX_FRAME = HEADER_BYTES + MAX_PAYLOAD + CRC_BYTES
CRC_POLY = 0x1021  # CRC-16/CCITT-FALSE: init 0xFFFF, not reflected, no final xor
CRC_INIT = 0xFFFF
SAMPLES_FIXED_BYTES = 5  # first sample u32, count u8
MAX_BATCH = (MAX_PAYLOAD - SAMPLES_FIXED_BYTES) // 2  # samples per SAMPLES / REPLAY_SAMPLES frame
SAMPLE_BATCH = 10  # samples per SAMPLES frame a device sends while streaming
REPLAY_WINDOW_FIXED_BYTES = 8  # window id u32, offset u16, total u16
MAX_WINDOW_CHUNK = MAX_PAYLOAD - REPLAY_WINDOW_FIXED_BYTES
MAX_LABELS = 32
RESULT_FIXED_BYTES = 17  # RESULT without logits and without the rhythm fields
RESULT_RHYTHM_BYTES = 4  # hr_x10 u16, rr_irregularity u16: RESULTs of a device with Capability.BEATS
BEATS_FIXED_BYTES = 1  # count u8
BEAT_BYTES = 4  # one beat: its u32 sample index
MAX_BEATS = 16  # beats per BEATS frame (a detector decides at most learn_candidates + 1 = 12 at one sample)
MAX_STRING = 255
# A reader gives up a partial frame after this long without a byte (a frame is sent in one burst;
# the longest takes 45 ms at 115200 baud).
IDLE_FLUSH_MS = 100
LEAD_OFF_BIT = 0x8000
ADC_MASK = 0x7FFF
SHA256_BYTES = 32
FINGERPRINT_BYTES = 8


class FrameType(enum.IntEnum):
    """Frame type codes; codes from 0x80 up travel host -> device."""

    INFO = 0x01
    SAMPLES = 0x02
    RESULT = 0x03
    ACK = 0x04
    ERROR = 0x05
    BEATS = 0x06
    COMMAND = 0x81
    REPLAY_SAMPLES = 0x82
    REPLAY_WINDOW = 0x83


class CommandCode(enum.IntEnum):
    GET_INFO = 1  # arg 0; answered by ACK, then INFO
    RESET = 2  # arg 0; pipeline, sample and window counters back to 0
    SOURCE = 3  # arg SampleSource
    STREAM = 4  # arg 0 off, 1 on (SAMPLES frames)
    TEXT = 5  # arg 0 frames, 1 text lines for the Arduino IDE's Serial Plotter (TEXT_* below)


class SampleSource(enum.IntEnum):
    """What feeds the device pipeline (argument of COMMAND SOURCE)."""

    ADC = 0
    REPLAY = 1


# A command's argument must be below this.
COMMAND_ARGS = {CommandCode.GET_INFO: 1, CommandCode.RESET: 1, CommandCode.SOURCE: len(SampleSource), CommandCode.STREAM: 2,
                CommandCode.TEXT: 2}  # fmt: skip

# Text mode (COMMAND TEXT 1, or the firmware's ECG_APP_TEXT): lines the Arduino IDE's Serial Plotter
# draws ("key:value" pairs) or ignores (every colon followed by a space, so no pair has a value).
TEXT_SAMPLE = "ecg"  # one line per sample: ecg:<ADC counts>,hr:<bpm, one decimal; 0 unknown>,lead_off:<0|1>
TEXT_HR = "hr"
TEXT_LEAD_OFF = "lead_off"
TEXT_RESULT = "result"  # result: window <index> <STATUS> [<LABEL> <top %>] hr <bpm> rr <per mille>
TEXT_LOST = "lost"  # lost: <n> samples (the sample counter jumped by n)
TEXT_HELLO = "ecg-edge"  # ecg-edge: <firmware> text mode <rate> Hz <bits>-bit ... research tool, not a medical device
TEXT_STRINGS = {"SAMPLE": TEXT_SAMPLE, "HR": TEXT_HR, "LEAD_OFF": TEXT_LEAD_OFF, "RESULT": TEXT_RESULT, "LOST": TEXT_LOST, "HELLO": TEXT_HELLO}


class ResultSource(enum.IntEnum):
    """Where a RESULT's window came from."""

    LIVE = 0
    REPLAY_SAMPLES = 1
    REPLAY_WINDOW = 2


class TimeUnit(enum.IntEnum):
    """Unit of a RESULT's inference time."""

    MICROSECONDS = 0
    INSTRUCTIONS = 1


class Capability(enum.IntFlag):
    MODEL = 0x01
    REPLAY_SAMPLES = 0x02
    REPLAY_WINDOW = 0x04
    BEATS = 0x08  # sends BEATS frames, and RESULTs with hr_x10 and rr_irregularity


CAPABILITIES_ALL = int(Capability.MODEL | Capability.REPLAY_SAMPLES | Capability.REPLAY_WINDOW | Capability.BEATS)


class ErrorCode(enum.IntEnum):
    UNKNOWN_TYPE = 1  # a frame type the receiver does not take
    BAD_LENGTH = 2  # payload length does not match its fields
    BAD_VALUE = 3  # a field out of range (code, enum, label, string byte, count)
    REPLAY_OVERFLOW = 4  # more replay samples than the last ACK's credits
    NOT_REPLAYING = 5  # REPLAY_SAMPLES while the source is the ADC
    NO_MODEL = 6  # REPLAY_WINDOW on a device without a model
    WINDOW_CHUNK = 7  # REPLAY_WINDOW chunk out of order or of the wrong total size
    INFERENCE_FAILED = 8


# (enum, C macro prefix) in the order they appear in the header.
ENUMS: tuple[tuple[type[enum.IntEnum] | type[enum.IntFlag], str], ...] = (
    (FrameType, "ECG_PROTO_TYPE_"),
    (CommandCode, "ECG_PROTO_CMD_"),
    (SampleSource, "ECG_PROTO_SOURCE_"),
    (ResultSource, "ECG_PROTO_FROM_"),
    (TimeUnit, "ECG_PROTO_TIME_"),
    (Capability, "ECG_PROTO_CAP_"),
    (ErrorCode, "ECG_PROTO_ERR_"),
    (WindowStatus, "ECG_PROTO_STATUS_"),
)

# (C macro name after ECG_PROTO_, value, written in hex)
SCALARS: tuple[tuple[str, int, bool], ...] = (
    ("SYNC0", SYNC[0], True),
    ("SYNC1", SYNC[1], True),
    ("VERSION", VERSION, False),
    ("HEADER_BYTES", HEADER_BYTES, False),
    ("CRC_BYTES", CRC_BYTES, False),
    ("MAX_PAYLOAD", MAX_PAYLOAD, False),
    ("MAX_FRAME", MAX_FRAME, False),
    ("CRC_POLY", CRC_POLY, True),
    ("CRC_INIT", CRC_INIT, True),
    ("MAX_BATCH", MAX_BATCH, False),
    ("SAMPLE_BATCH", SAMPLE_BATCH, False),
    ("MAX_WINDOW_CHUNK", MAX_WINDOW_CHUNK, False),
    ("MAX_LABELS", MAX_LABELS, False),
    ("RESULT_FIXED_BYTES", RESULT_FIXED_BYTES, False),
    ("RESULT_RHYTHM_BYTES", RESULT_RHYTHM_BYTES, False),
    ("BEATS_FIXED_BYTES", BEATS_FIXED_BYTES, False),
    ("BEAT_BYTES", BEAT_BYTES, False),
    ("MAX_BEATS", MAX_BEATS, False),
    ("HR_UNKNOWN", HR_UNKNOWN, False),
    ("RR_IRREGULARITY_UNKNOWN", RR_IRREGULARITY_UNKNOWN, True),
    ("MAX_STRING", MAX_STRING, False),
    ("IDLE_FLUSH_MS", IDLE_FLUSH_MS, False),
    ("LEAD_OFF_BIT", LEAD_OFF_BIT, True),
    ("ADC_MASK", ADC_MASK, True),
    ("SHA256_BYTES", SHA256_BYTES, False),
    ("FINGERPRINT_BYTES", FINGERPRINT_BYTES, False),
)
HEX_ENUMS = (FrameType, Capability)


def _literal(value: int, hex_: bool) -> str:
    """A C integer constant in hex or decimal (no suffix: all are non-negative and fit 16 bits)."""
    return f"0x{value:02X}" if hex_ else str(value)


def protocol_defs_header() -> str:
    """`ecg_protocol_defs.h`: every constant of the serial protocol as C99 macros (ECG_PROTO_*).

    Each enum also gets `<PREFIX>VALID(x)`, true for its members (flags: `ECG_PROTO_CAP_ALL`), and
    each command `ECG_PROTO_CMD_<NAME>_ARGS`, the bound its argument must stay below.
    """
    guard = _guard(PROTOCOL_DEFS_HEADER)
    out = _banner(f"serial protocol version {VERSION} constants (export/protocol_defs.py, firmware/PROTOCOL.md)")
    out += f"#ifndef {guard}\n#define {guard}\n\n"
    out += "".join(_define(f"ECG_PROTO_{name}", _literal(value, hex_)) for name, value, hex_ in SCALARS)
    for cls, prefix in ENUMS:
        out += f"\n/* {cls.__module__}.{cls.__name__} */\n"
        out += "".join(_define(prefix + str(m.name), _literal(int(m), cls in HEX_ENUMS)) for m in cls)
        if cls is Capability:
            out += _define(prefix + "ALL", _literal(CAPABILITIES_ALL, True))
        else:
            out += _define(prefix + "VALID(x)", "(" + " || ".join(f"(x) == {prefix}{m.name}" for m in cls) + ")")
    out += "\n/* A command's argument must be below its _ARGS. */\n"
    out += "".join(_define(f"ECG_PROTO_CMD_{code.name}_ARGS", str(limit)) for code, limit in COMMAND_ARGS.items())
    out += "\n/* Text mode: the keys and words of its lines (export/protocol_defs.py TEXT_*), the status names. */\n"
    out += "".join(_define(f"ECG_PROTO_TEXT_{name}", f'"{value}"') for name, value in TEXT_STRINGS.items())
    statuses = sorted(WindowStatus, key=int)
    if [int(s) for s in statuses] != list(range(len(statuses))):
        raise ValueError("status codes must run 0..n-1 to be a name table")
    out += _define("ECG_PROTO_STATUS_NAMES", "{" + ", ".join(f'"{s.name}"' for s in statuses) + "}")
    return out + f"\n#endif /* {guard} */\n"
