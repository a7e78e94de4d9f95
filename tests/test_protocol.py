"""The serial protocol: host/protocol.py against the device side (ecg_protocol.c through harness/proto_tool.c).

Both directions on every frame type with edge values, the encoders' limits, malformed payloads and
fuzzed streams (garbage, bit flips, truncated frames, every split point) where both readers must
recover every intact frame and count the same drops. A RESULT's layout follows the capabilities of the
last INFO in the stream (the rhythm fields of Capability.BEATS), as a host decodes it. The C side runs
natively, under ASan/UBSan and on the Cortex-M4 under QEMU.
"""

from __future__ import annotations

import copy
import random
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Callable

import pytest
from conftest import require_m4_toolchain

from export.crosscheck import FIRMWARE_DIR
from export.firmware import generate_firmware
from export.protocol_defs import (
    CAPABILITIES_ALL,
    HR_UNKNOWN,
    MAX_BATCH,
    MAX_BEATS,
    MAX_FRAME,
    MAX_LABELS,
    MAX_PAYLOAD,
    MAX_WINDOW_CHUNK,
    PROTOCOL_DEFS_HEADER,
    RR_IRREGULARITY_UNKNOWN,
    SAMPLE_BATCH,
    Capability,
    CommandCode,
    ErrorCode,
    FrameType,
    ResultSource,
    SampleSource,
    TimeUnit,
    protocol_defs_header,
)
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
    ReplayWindow,
    Result,
    Samples,
    crc16,
    decode_message,
    encode_frame,
    window_chunks,
)
from export.protocol_defs import WindowStatus

TARGETS = ("host", "host-asan", "cortex-m4")
PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))


# ---- the C side -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gen_dir(demo_bundle, tmp_path_factory) -> Path:
    """A bundle's generated sources, with the protocol header (written here until ecg-export firmware does)."""
    _, bundle = demo_bundle
    gen = tmp_path_factory.mktemp("proto") / "gen"
    generate_firmware(bundle, gen)
    (gen / PROTOCOL_DEFS_HEADER).write_text(protocol_defs_header(), encoding="ascii")
    return gen




@pytest.fixture(scope="module", params=TARGETS)
def tool(request, gen_dir, tmp_path_factory) -> Callable[..., None]:
    """Runs proto_tool of one target with file arguments; a non-zero exit fails the test."""
    target = request.param
    if target == "cortex-m4":
        require_m4_toolchain()
    build = tmp_path_factory.mktemp(f"proto-{target}")
    program = build / ("proto_tool.elf" if target == "cortex-m4" else "proto_tool")
    cmd = ["make", "-s", "-j8", "-C", str(FIRMWARE_DIR), f"TARGET={target}", f"GEN={gen_dir}", f"BUILD={build}", str(program)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]

    def run(*args: object) -> None:
        if target == "cortex-m4":  # semihosting: file names relative to the working directory
            from export.qemu import run_elf

            paths = [Path(a) for a in args[1:] if isinstance(a, Path)]
            cwd = paths[0].parent
            res = run_elf(program, [a.name if isinstance(a, Path) else str(a) for a in args], cwd=cwd)
            code, log = res.returncode, res.console
        else:
            proc = subprocess.run([str(program), *map(str, args)], capture_output=True, text=True)
            code, log = proc.returncode, proc.stderr
        assert code == 0, f"proto_tool {args[0]} ({target}) exit {code}: {log[-3000:]}"

    return run


def c_decode(tool: Callable[..., None], tmp_path: Path, stream: bytes, window: int = 0) -> list[str]:
    src, out = tmp_path / "in.bin", tmp_path / "out.txt"
    src.write_bytes(stream)
    tool("decode", src, out, *([window] if window else []))
    return out.read_text().splitlines()


# ---- the same text from the Python side -------------------------------------------------------


def _hex(text: str) -> str:
    return text.encode("latin-1").hex()


def _f32(x: float) -> str:
    return f"{struct.unpack('<I', struct.pack('<f', x))[0]:08x}"


def _values(values: tuple[int, ...], lead_off: tuple[bool, ...]) -> str:
    return ",".join(str(v | (0x8000 if f else 0)) for v, f in zip(values, lead_off))


def describe(frame: Frame, capabilities: Capability | None = None) -> str:
    """The line proto_tool decode writes for a frame, from a device with `capabilities` (None: no INFO yet)."""
    try:
        m = decode_message(frame, capabilities)
    except ProtocolError as exc:
        return f"FRAME seq={frame.seq} type={frame.type} len={len(frame.payload)} error={int(exc.code)}"
    s = frame.seq
    if isinstance(m, Info):
        return (f"INFO seq={s} fw={_hex(m.firmware)} backend={_hex(m.backend)} sha={m.model_sha256.hex()} spec={m.spec_fingerprint.hex()} "
                f"rate={m.rate_hz} window={m.window} hop={m.hop} adc_bits={m.adc_bits} caps={int(m.capabilities)} "
                f"labels={','.join(_hex(x) for x in m.labels)} in={_f32(m.input_scale)}/{m.input_zero_point} "
                f"out={_f32(m.output_scale)}/{m.output_zero_point} unit={int(m.time_unit)}")  # fmt: skip
    if isinstance(m, Samples):
        return f"SAMPLES seq={s} first={m.first_sample} values={_values(m.values, m.lead_off)}"
    if isinstance(m, Result):
        rhythm = f" hr={m.hr_x10} irregularity={m.rr_irregularity}" if m.has_rhythm else ""
        return (f"RESULT seq={s} window={m.window_index} first={m.first_sample} status={int(m.status)} label={m.label} "
                f"logits={','.join(map(str, m.logits))} time={m.time} unit={int(m.time_unit)} source={int(m.source)}{rhythm}")  # fmt: skip
    if isinstance(m, Beats):
        return f"BEATS seq={s} samples={','.join(map(str, m.samples))}"
    if isinstance(m, Ack):
        return f"ACK seq={s} acked={m.seq} type={int(m.type)} credits={m.credits}"
    if isinstance(m, Error):
        return f"ERROR seq={s} code={int(m.code)} about={m.about_seq} message={_hex(m.message)}"
    if isinstance(m, Command):
        return f"COMMAND seq={s} code={int(m.code)} arg={m.arg}"
    if isinstance(m, ReplaySamples):
        return f"REPLAY_SAMPLES seq={s} values={_values(m.values, m.lead_off)}"
    assert isinstance(m, ReplayWindow)
    return f"REPLAY_WINDOW seq={s} id={m.window_id} offset={m.offset} total={m.total} data={m.data.hex()}"


def counters_line(reader: Reader) -> str:
    st = reader.stats
    return f"COUNTERS frames={st.frames} dropped={st.dropped_bytes} crc_errors={st.crc_errors} header_errors={st.header_errors} pending={reader.pending}"


class Describer:
    """`describe` with the capabilities of the last INFO described, as proto_tool decode (and a host) keeps them."""

    def __init__(self) -> None:
        self.capabilities: Capability | None = None

    def __call__(self, frame: Frame) -> str:
        line = describe(frame, self.capabilities)
        if line.startswith("INFO"):
            self.capabilities = Info.decode(frame.payload).capabilities
        return line


def describe_all(frames: list[Frame]) -> list[str]:
    say = Describer()
    return [say(f) for f in frames]


def py_decode(stream: bytes) -> tuple[list[Frame], list[str], Reader]:
    """(frames, the lines proto_tool decode writes, the reader at the end of the stream).

    Like proto_tool, the lines end with the counters, then the frames and counters after a flush.
    """
    reader = Reader()
    frames = reader.feed(stream)
    say = Describer()
    lines = [say(f) for f in frames] + [counters_line(reader)]
    flushed = copy.deepcopy(reader)
    lines += [say(f) for f in flushed.flush()] + [counters_line(flushed)]
    return frames, lines, reader


# ---- the fixed set of proto_tool encode ---------------------------------------------------------


def fixed_messages() -> list[Message]:
    """The messages `proto_tool encode` writes, in order, starting at seq 0xFFFD."""
    labels = ("NORMAL", "MI", "ARRHYTHMIA")
    us, instr = TimeUnit.MICROSECONDS, TimeUnit.INSTRUCTIONS
    lead10 = tuple(i in (2, 3, 9) for i in range(10))
    return [
        Info("ecg-edge 0.1.0", "native", bytes(range(32)), bytes.fromhex("0123456789abcdef"), 250, 2500, 625, 12,
             Capability(CAPABILITIES_ALL), labels, 0.0431372523, -128, 0.00390625, 127, instr),  # fmt: skip
        Info("", "none", bytes(32), bytes(8), 65535, 0, 0, 255, Capability(0), (), 0.0, 0, 0.0, 0, us),
        Samples(0xFFFFFFFF, (0, 0x7FFF, 0, 0x7FFF, 2048, 1, 4095, 1023, 16384, 0x7FFE), lead10),
        Samples(0, ()),
        Samples(123456789, tuple((i * 129) & 0x7FFF for i in range(MAX_BATCH)), tuple(i % 7 == 0 for i in range(MAX_BATCH))),
        Result(0xFFFFFFFF, 0xFFFFFFFF, WindowStatus.OK, 2, (-128, 127, 0), 0xFFFFFFFF, instr, ResultSource.REPLAY_WINDOW),
        Result(0, 0, WindowStatus.LEAD_OFF, -1, (), 0, us, ResultSource.LIVE),
        Result(7, 4375, WindowStatus.SATURATED, 127, tuple(range(-128, 127)), 1234567, us, ResultSource.REPLAY_SAMPLES),
        Result(8, 5000, WindowStatus.FLAT, -1, (), 0, us, ResultSource.LIVE),
        Result(9, 5625, WindowStatus.NOISY, -1, (), 0, us, ResultSource.REPLAY_SAMPLES),
        Result(10, 6250, WindowStatus.LOW_CONFIDENCE, 1, (3, 4, -2), 812, us, ResultSource.LIVE),
        Info("ecg-edge 0.2.0", "native", bytes(range(32)), bytes.fromhex("0123456789abcdef"), 250, 2500, 625, 12,
             Capability(CAPABILITIES_ALL), labels, 0.0431372523, -128, 0.00390625, 127, instr),  # fmt: skip
        Result(11, 6875, WindowStatus.OK, 0, (-128, 127, 0), 900, us, ResultSource.LIVE, 723, 41),
        Result(12, 7500, WindowStatus.LEAD_OFF, -1, (), 0, us, ResultSource.LIVE, HR_UNKNOWN, RR_IRREGULARITY_UNKNOWN),
        Result(0xFFFFFFFF, 0xFFFFFFFF, WindowStatus.NOISY, -1, (), 0, instr, ResultSource.REPLAY_SAMPLES, 0xFFFF, 0xFFFE),
        Beats((0,)),
        Beats(tuple(1000 + 187 * i for i in range(MAX_BEATS))),
        Beats((0xFFFFFFFE, 0xFFFFFFFF)),
        Ack(0xFFFF, FrameType.REPLAY_SAMPLES, 0xFFFF),
        Ack(0, FrameType.COMMAND, 0),
        Error(ErrorCode.WINDOW_CHUNK, 0xFFFF, "chunk at 1512 of window 9, expected 1008"),
        Error(ErrorCode.INFERENCE_FAILED, 0, ""),
        Command(CommandCode.GET_INFO),
        Command(CommandCode.RESET),
        Command(CommandCode.SOURCE, SampleSource.REPLAY),
        Command(CommandCode.STREAM, 1),
        ReplaySamples(tuple(0x7FFF - i * 100 for i in range(MAX_BATCH)), tuple(i % 5 == 4 for i in range(MAX_BATCH))),
        ReplaySamples(()),
        ReplaySamples((0x7FFF,), (True,)),
        ReplayWindow(0xFFFFFFFF, 0, 2500, bytes((i * 37) % 256 ^ 0x80 for i in range(MAX_WINDOW_CHUNK))),
        ReplayWindow(5, 2496, 2500, bytes([0x80, 0x7F, 0x00, 0xFF])),
        ReplayWindow(0, 0, 1, bytes([0xF9])),
    ]


def encode_all(messages: list[Message], seq: int) -> bytes:
    enc = Encoder(seq)
    return b"".join(enc.encode(m) for m in messages)


def test_every_type_in_the_fixed_set():
    assert {m.TYPE for m in fixed_messages()} == set(FrameType)


@pytest.mark.slow
def test_c_encoder_to_python(tool, tmp_path):
    out = tmp_path / "enc.bin"
    tool("encode", out)
    stream = out.read_bytes()
    expected = fixed_messages()
    assert stream == encode_all(expected, 0xFFFD)  # byte for byte, CRC and wrapping seq included
    frames, _, reader = py_decode(stream)
    assert [f.message() for f in frames] == expected
    assert [f.seq for f in frames] == [(0xFFFD + i) & 0xFFFF for i in range(len(expected))]
    assert reader.stats.frames == len(expected) and reader.stats.dropped_bytes == 0 and reader.pending == 0


@pytest.mark.slow
def test_python_encoder_to_c(tool, tmp_path):
    stream = encode_all(fixed_messages(), 0xFFF0)
    _, lines, _ = py_decode(stream)
    assert c_decode(tool, tmp_path, stream) == lines
    assert not any(line.startswith("FRAME") for line in lines)


# ---- limits -----------------------------------------------------------------------------------


def _info(**changes: object) -> Info:
    fields: dict[str, object] = dict(firmware="fw", backend="native", model_sha256=bytes(32), spec_fingerprint=bytes(8), rate_hz=0, window=0,
                                     hop=0, adc_bits=0, capabilities=0, labels=("L",) * MAX_LABELS, input_scale=0.0, input_zero_point=0,
                                     output_scale=0.0, output_zero_point=0, time_unit=0)  # fmt: skip
    fields.update(changes)
    return Info(**fields)  # type: ignore[arg-type]


def _result(**changes: object) -> Result:
    fields: dict[str, object] = dict(window_index=0, first_sample=0, status=0, label=2, logits=(1, 2, 3), time=0, time_unit=0, source=0)
    fields.update(changes)
    return Result(**fields)  # type: ignore[arg-type]


_BIG = dict(firmware="x" * 255, labels=("L",))
LIMITS: dict[str, Callable[[], Message]] = {
    "info_max_labels": lambda: _info(),
    "info_too_many_labels": lambda: _info(labels=("L",) * (MAX_LABELS + 1)),
    "info_full": lambda: _info(**_BIG, backend="x" * 193),
    "info_too_long": lambda: _info(**_BIG, backend="x" * 194),
    "info_not_printable": lambda: _info(**_BIG, backend="nat\x7f"),
    "info_negative_scale": lambda: _info(**_BIG, input_scale=-1.0),
    "info_infinite_scale": lambda: _info(**_BIG, output_scale=float("inf")),
    "info_beats": lambda: _info(**_BIG, output_scale=1.0, capabilities=Capability.BEATS),
    "info_unknown_capability": lambda: _info(**_BIG, output_scale=1.0, capabilities=Capability.BEATS << 1),
    "info_bad_unit": lambda: _info(**_BIG, output_scale=1.0, time_unit=2),
    "samples_max": lambda: Samples(0, (0,) * MAX_BATCH),
    "samples_over": lambda: Samples(0, (0,) * (MAX_BATCH + 1)),
    "replay_samples_max": lambda: ReplaySamples((0,) * MAX_BATCH),
    "replay_samples_over": lambda: ReplaySamples((0,) * (MAX_BATCH + 1)),
    "result_ok": lambda: _result(),
    "result_label_past_logits": lambda: _result(label=3),
    "result_label_negative": lambda: _result(label=-2),
    "result_flat": lambda: _result(label=-1, logits=(), status=3),
    "result_low_confidence": lambda: _result(status=5),
    "result_bad_status": lambda: _result(label=-1, status=len(WindowStatus)),
    "result_bad_source": lambda: _result(label=-1, source=3),
    "result_rhythm_ignored": lambda: _result(label=-1),
    "result_rhythm_unknown": lambda: _result(label=-1, hr_x10=HR_UNKNOWN, rr_irregularity=RR_IRREGULARITY_UNKNOWN),
    "result_rhythm_ok": lambda: _result(label=-1, hr_x10=750, rr_irregularity=0),
    "result_rhythm_half_unknown": lambda: _result(label=-1, hr_x10=750, rr_irregularity=RR_IRREGULARITY_UNKNOWN),
    "result_rhythm_other_half_unknown": lambda: _result(label=-1, hr_x10=HR_UNKNOWN, rr_irregularity=12),
    "result_rhythm_lead_off": lambda: _result(label=-1, status=WindowStatus.LEAD_OFF, hr_x10=750, rr_irregularity=0),
    "beats_max": lambda: Beats((0,) * MAX_BEATS),
    "beats_over": lambda: Beats((0,) * (MAX_BEATS + 1)),
    "beats_empty": lambda: Beats(()),
    "command_ok": lambda: Command(CommandCode.SOURCE, 1),
    "command_source_arg": lambda: Command(CommandCode.SOURCE, 2),
    "command_get_info_arg": lambda: Command(CommandCode.GET_INFO, 1),
    "command_unknown": lambda: Command(9, 0),  # type: ignore[arg-type]
    "ack_ok": lambda: Ack(1, FrameType.COMMAND, 5),
    "ack_unknown_type": lambda: Ack(1, FrameType.BEATS + 1, 5),  # type: ignore[arg-type]
    "error_longest_message": lambda: Error(ErrorCode.BAD_VALUE, 3, "x" * 255),
    "error_message_too_long": lambda: Error(ErrorCode.BAD_VALUE, 3, "x" * 256),
    "error_unknown_code": lambda: Error(0, 3, ""),  # type: ignore[arg-type]
    "window_max_chunk": lambda: ReplayWindow(1, 0, 2500, bytes(MAX_WINDOW_CHUNK)),
    "window_chunk_over": lambda: ReplayWindow(1, 0, 2500, bytes(MAX_WINDOW_CHUNK + 1)),
    "window_past_total": lambda: ReplayWindow(1, 2491, 2500, bytes(10)),
    "window_empty_chunk": lambda: ReplayWindow(1, 0, 2500, b""),
}


def _frame_len(make: Callable[[], Message]) -> int:
    try:
        return len(Encoder().encode(make()))
    except ProtocolError:
        return 0


@pytest.mark.slow
def test_encoder_limits_agree(tool, tmp_path):
    tool("limits", tmp_path / "limits.txt")
    c = dict(line.rsplit(" ", 1) for line in (tmp_path / "limits.txt").read_text().splitlines())
    expected = {name: _frame_len(make) for name, make in LIMITS.items()}
    assert {k: int(c[k]) for k in LIMITS} == expected
    assert expected["info_full"] == expected["window_max_chunk"] == MAX_FRAME and expected["info_too_long"] == 0
    assert expected["result_rhythm_ok"] == expected["result_rhythm_ignored"] + 4 and expected["beats_max"] == 10 + 1 + 4 * MAX_BEATS
    assert not any(expected[k] for k in ("result_rhythm_half_unknown", "result_rhythm_other_half_unknown", "result_rhythm_lead_off",
                                         "beats_over", "beats_empty", "info_unknown_capability"))  # fmt: skip
    assert int(c["next_seq"]) == sum(1 for v in expected.values() if v)  # refused frames use no sequence number
    assert int(c["crc_check"]) == crc16(b"123456789") == 0x29B1  # the CRC-16/CCITT-FALSE check value
    assert c["hex_ok"] == c["hex_bad_digit"] == c["hex_bad_length"] == "1"
    assert int(c["pack_saturates"]) == 0x7FFF


# ---- malformed payloads, fuzzed streams -------------------------------------------------------


def _text(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(PRINTABLE) for _ in range(rng.randint(0, n)))


def random_message(rng: random.Random) -> Message:
    """A valid message of any type with random fields, edge values included."""
    kind = rng.choice(list(FrameType))
    u32 = lambda: rng.choice((0, 0xFFFFFFFF, rng.getrandbits(32)))  # noqa: E731
    if kind == FrameType.INFO:
        return Info(_text(rng, 40), rng.choice(("native", "tflm", "none")), rng.randbytes(32), rng.randbytes(8), rng.getrandbits(16),
                    rng.getrandbits(16), rng.getrandbits(16), rng.getrandbits(8), Capability(rng.getrandbits(4)),
                    tuple(_text(rng, 12) for _ in range(rng.randint(0, 6))), rng.uniform(0, 1), rng.randint(-128, 127),
                    rng.uniform(0, 1), rng.randint(-128, 127), rng.choice(list(TimeUnit)))  # fmt: skip
    if kind in (FrameType.SAMPLES, FrameType.REPLAY_SAMPLES):
        n = rng.choice((SAMPLE_BATCH, 0, 1, MAX_BATCH, rng.randint(0, MAX_BATCH)))
        values = tuple(rng.getrandbits(15) for _ in range(n))
        flags = tuple(rng.random() < 0.1 for _ in range(n))
        return Samples(u32(), values, flags) if kind == FrameType.SAMPLES else ReplaySamples(values, flags)
    if kind == FrameType.RESULT:
        status = rng.choice(list(WindowStatus))
        classified = status in (WindowStatus.OK, WindowStatus.LOW_CONFIDENCE)
        logits = tuple(rng.randint(-128, 127) for _ in range(rng.randint(1, 8))) if classified else ()
        label = rng.randrange(len(logits)) if logits else -1
        rhythm: tuple[int | None, int | None] = (None, None)  # a device without Capability.BEATS
        if rng.random() < 0.5:
            known = status != WindowStatus.LEAD_OFF and rng.random() < 0.8
            rhythm = (rng.choice((1, 0xFFFF, rng.randint(300, 2000))), rng.choice((0, 0xFFFE, rng.randint(0, 400)))) if known else (HR_UNKNOWN, RR_IRREGULARITY_UNKNOWN)
        return Result(u32(), u32(), status, label, logits, u32(), rng.choice(list(TimeUnit)), rng.choice(list(ResultSource)), *rhythm)
    if kind == FrameType.BEATS:
        start = u32()
        return Beats(tuple((start + 150 * i) & 0xFFFFFFFF for i in range(rng.choice((1, MAX_BEATS, rng.randint(1, MAX_BEATS))))))
    if kind == FrameType.ACK:
        return Ack(rng.getrandbits(16), rng.choice(list(FrameType)), rng.getrandbits(16))
    if kind == FrameType.ERROR:
        return Error(rng.choice(list(ErrorCode)), rng.getrandbits(16), _text(rng, 60))
    if kind == FrameType.COMMAND:
        code = rng.choice(list(CommandCode))
        return Command(code, rng.randrange({CommandCode.SOURCE: 2, CommandCode.STREAM: 2}.get(code, 1)))
    total = rng.randint(1, 3000)
    offset = rng.randrange(total)
    return ReplayWindow(u32(), offset, total, rng.randbytes(rng.randint(1, min(MAX_WINDOW_CHUNK, total - offset))))


def _garbage(rng: random.Random) -> bytes:
    """Random bytes, often with a lone sync or a false header (any length up to past MAX_PAYLOAD)."""
    out = bytearray(rng.randbytes(rng.randint(1, 30)))
    trap = rng.choice((b"", b"\xa5", b"\xa5\x5a", b"\xa5\x5a\x01", b"\xa5\x5a\x02",
                       b"\xa5\x5a\x01" + rng.randbytes(3) + struct.pack("<H", rng.randint(0, MAX_PAYLOAD + 40))))  # fmt: skip
    out[rng.randint(0, len(out)) : 0] = trap
    return bytes(out)


def fuzz_stream(seed: int, frames: int) -> tuple[bytes, list[bytes], int]:
    """(stream, its intact frames in order, frames damaged after their sync bytes)."""
    rng = random.Random(seed)
    enc = Encoder(rng.getrandbits(16))
    stream, intact, damaged = bytearray(), [], 0
    for _ in range(frames):
        frame = bytearray(enc.encode(random_message(rng)))
        if rng.random() < 0.2:
            stream += _garbage(rng)
        r = rng.random()
        if r < 0.1:
            bit = rng.randrange(8 * len(frame))
            frame[bit // 8] ^= 1 << (bit % 8)
            damaged += bit >= 16
        elif r < 0.2:
            frame = frame[: rng.randrange(1, len(frame))]
        else:
            intact.append(bytes(frame))
        stream += frame
    tail = 0
    while tail < MAX_FRAME:  # a clean tail: every candidate started before it is settled by the end
        frame = enc.encode(random_message(rng))
        intact.append(frame)
        stream += frame
        tail += len(frame)
    return bytes(stream), intact, damaged


def test_python_reader_recovers_intact_frames():
    for seed in range(4):
        stream, intact, damaged = fuzz_stream(seed, 400)
        frames, _, reader = py_decode(stream)
        assert [f.encode() for f in frames] == intact
        st = reader.stats
        assert st.frames == len(intact) and st.crc_errors + st.header_errors >= damaged > 0
        assert sum(map(len, intact)) + st.dropped_bytes + reader.pending == len(stream) and reader.pending == 0


def test_python_reader_any_split():
    stream, intact, _ = fuzz_stream(7, 12)
    frames, lines, reader = py_decode(stream)
    assert reader.stats.dropped_bytes > 0 and reader.stats.crc_errors > 0  # damage to recover from
    whole = lines[: len(frames) + 1]  # before the flush
    for k in range(len(stream) + 1):  # two pieces, split at every byte boundary
        reader = Reader()
        frames = reader.feed(stream[:k]) + reader.feed(stream[k:])
        assert describe_all(frames) + [counters_line(reader)] == whole
    reader, frames = Reader(), []
    for b in stream:  # one byte at a time, as the device reader
        frames += reader.feed(bytes([b]))
    assert [f.encode() for f in frames] == intact and counters_line(reader) == whole[-1]
    rng, reader, frames, pos = random.Random(1), Reader(), [], 0
    while pos < len(stream):
        step = rng.randint(0, 40)
        frames += reader.feed(stream[pos : pos + step])
        pos += step
    assert describe_all(frames) + [counters_line(reader)] == whole


@pytest.mark.slow
def test_c_reader_on_fuzzed_streams(tool, tmp_path):
    for seed in range(3):
        stream, intact, _ = fuzz_stream(100 + seed, 300)
        frames, lines, _ = py_decode(stream)
        assert [f.encode() for f in frames] == intact
        assert c_decode(tool, tmp_path, stream) == lines


@pytest.mark.slow
def test_c_reader_on_garbage_and_false_headers(tool, tmp_path):
    rng = random.Random(5)
    alphabet = b"\xa5\x5a\x01\x00\xff\x02"
    stream = bytearray(rng.choice(alphabet) if rng.random() < 0.7 else rng.getrandbits(8) for _ in range(60000))
    enc, hidden = Encoder(), []
    for pos in sorted(rng.sample(range(len(stream)), 20), reverse=True):  # good frames amid false headers
        hidden.append(enc.encode(random_message(rng)))
        stream[pos:pos] = hidden[-1]
    frames, lines, reader = py_decode(bytes(stream))
    assert reader.stats.header_errors > 100 and reader.stats.crc_errors > 10
    assert sum(len(f.encode()) for f in frames) + reader.stats.dropped_bytes + reader.pending == len(stream)
    flushed = copy.deepcopy(reader)
    assert sorted(f.encode() for f in frames + flushed.flush()) == sorted(hidden)  # each found, if late
    assert c_decode(tool, tmp_path, stream) == lines


@pytest.mark.slow
def test_flush_delivers_frames_behind_a_false_header(tool, tmp_path):
    frame = Encoder(3).encode(Command(CommandCode.GET_INFO))
    stream = b"\xa5\x5a\x01\x81\x00\x00\xf4\x01" + frame  # a false header announcing 500 bytes
    reader = Reader()
    assert reader.feed(stream) == [] and reader.pending == len(stream)
    assert [f.encode() for f in reader.flush()] == [frame] and reader.pending == 0
    assert reader.stats.dropped_bytes == 8 and reader.feed(b"") == [] and reader.flush() == []
    lines = c_decode(tool, tmp_path, stream)
    assert lines == py_decode(stream)[1] and lines[1] == "COMMAND seq=3 code=1 arg=0"


def malformed_frames(seed: int) -> bytes:
    """Frames with a good CRC around bad payloads: truncated, extended, mutated, random; unknown types."""
    rng = random.Random(seed)
    out, seq = bytearray(), 0
    for m in fixed_messages() + [random_message(rng) for _ in range(150)]:
        payload = m.encode()
        cuts = range(len(payload)) if len(payload) <= 64 else rng.sample(range(len(payload)), 12)
        variants = [payload[:k] for k in cuts] + [payload + b"\x00", rng.randbytes(len(payload))]
        for _ in range(6):
            mutated = bytearray(payload)
            if mutated:
                mutated[rng.randrange(len(mutated))] = rng.getrandbits(8)
            variants.append(bytes(mutated))
        for p in variants:
            out += encode_frame(m.TYPE, seq, p[:MAX_PAYLOAD])
            seq = (seq + 1) & 0xFFFF
    unknown = sorted(set(range(256)) - set(FrameType))
    for t in rng.sample(unknown, 20):
        out += encode_frame(t, 7, rng.randbytes(rng.randint(0, 20)))
    return bytes(out)


@pytest.mark.slow
def test_malformed_payloads_agree(tool, tmp_path):
    stream = malformed_frames(11)
    _, lines, reader = py_decode(stream)
    errors = {int(m.group(1)) for line in lines if (m := re.search(r"error=(\d+)$", line))}
    assert errors == {ErrorCode.UNKNOWN_TYPE, ErrorCode.BAD_LENGTH, ErrorCode.BAD_VALUE}
    assert reader.stats.dropped_bytes == 0 and sum(line.startswith("FRAME") for line in lines) > 1000
    assert c_decode(tool, tmp_path, stream) == lines


# ---- what Capability.BEATS changes -----------------------------------------------------------------


def _info_caps(caps: int) -> Info:
    return Info("fw", "native", bytes(32), bytes(8), 250, 2500, 625, 12, Capability(caps), ("A", "B"), 0.5, 0, 0.25, 0, TimeUnit.MICROSECONDS)


OLD_RESULT = Result(5, 3125, WindowStatus.OK, 1, (-3, 9), 700, TimeUnit.MICROSECONDS, ResultSource.LIVE)
NEW_RESULT = Result(5, 3125, WindowStatus.OK, 1, (-3, 9), 700, TimeUnit.MICROSECONDS, ResultSource.LIVE, 723, 41)


def test_result_layout_follows_the_capabilities():
    old, new = OLD_RESULT.encode(), NEW_RESULT.encode()
    assert len(new) == len(old) + 4 and new[: len(old)] == old and new[len(old) :] == bytes.fromhex("d3022900")
    without = Capability.MODEL | Capability.REPLAY_SAMPLES | Capability.REPLAY_WINDOW
    assert Result.decode(old, without) == OLD_RESULT and Result.decode(new, Capability.BEATS) == NEW_RESULT
    assert Result.decode(old) == OLD_RESULT and Result.decode(new) == NEW_RESULT  # no INFO yet: either
    assert not OLD_RESULT.has_rhythm and OLD_RESULT.bpm is None and OLD_RESULT.irregularity is None
    assert NEW_RESULT.bpm == 72.3 and NEW_RESULT.irregularity == 0.041
    unknown = Result(6, 0, WindowStatus.LEAD_OFF, -1, (), 0, 0, 0, HR_UNKNOWN, RR_IRREGULARITY_UNKNOWN)
    assert unknown.has_rhythm and unknown.bpm is None and unknown.irregularity is None
    cases = [
        (lambda: Result.decode(new, without), "RESULT: 4 bytes after source (a device without the BEATS capability"),
        (lambda: Result.decode(old, Capability.BEATS), "RESULT: payload of 19 bytes ends inside hr_x10 and rr_irregularity"),
        (lambda: Result.decode(new[:-2], Capability.BEATS), "ends inside hr_x10 and rr_irregularity"),
        (lambda: Result.decode(new[:-2]), "ends inside hr_x10 and rr_irregularity"),
        (lambda: Result.decode(new + b"\0"), "RESULT: 1 bytes after rr_irregularity"),
        (lambda: Result.decode(old[:12], without), "RESULT: payload of 12 bytes ends inside the 2 logits"),
    ]
    for make, message in cases:
        with pytest.raises(ProtocolError, match=re.escape(message)) as info:
            make()
        assert info.value.code == ErrorCode.BAD_LENGTH
    values = [
        (lambda: replace_result(hr_x10=750, rr_irregularity=None), "give both or neither"),
        (lambda: replace_result(hr_x10=750, rr_irregularity=RR_IRREGULARITY_UNKNOWN), "both are unknown"),
        (lambda: replace_result(hr_x10=HR_UNKNOWN, rr_irregularity=3), "both are unknown"),
        (lambda: replace_result(hr_x10=0x10000, rr_irregularity=3), "RESULT hr_x10 65536 is not a u16"),
        (lambda: replace_result(status=WindowStatus.LEAD_OFF, label=-1, logits=(), hr_x10=750, rr_irregularity=0), "LEAD_OFF window"),
        (lambda: Result.decode(struct.pack("<IIBbBIBBHH", 1, 0, WindowStatus.LEAD_OFF, -1, 0, 0, 0, 0, 750, 0)), "LEAD_OFF window"),
    ]
    for make, message in values:
        with pytest.raises(ProtocolError, match=re.escape(message)) as info:
            make()
        assert info.value.code == ErrorCode.BAD_VALUE


def replace_result(**changes: object) -> Result:
    from dataclasses import replace

    return replace(NEW_RESULT, **changes)


def test_beats_counts_and_lengths():
    assert Beats((1, 0xFFFFFFFF)).encode() == bytes.fromhex("02" + "01000000" + "ffffffff")
    assert Beats.decode(Beats(tuple(range(MAX_BEATS))).encode()).samples == tuple(range(MAX_BEATS))
    cases = [
        (lambda: Beats(()), ErrorCode.BAD_VALUE, f"BEATS: count 0, must be 1..{MAX_BEATS}"),
        (lambda: Beats((0,) * (MAX_BEATS + 1)), ErrorCode.BAD_VALUE, f"count {MAX_BEATS + 1}"),
        (lambda: Beats((-1,)), ErrorCode.BAD_VALUE, "BEATS sample -1 is not a u32"),
        (lambda: Beats((1 << 32,)), ErrorCode.BAD_VALUE, "is not a u32"),
        (lambda: Beats.decode(b"\x00"), ErrorCode.BAD_VALUE, "BEATS: count 0"),
        (lambda: Beats.decode(bytes([MAX_BEATS + 1]) + bytes(4 * (MAX_BEATS + 1))), ErrorCode.BAD_VALUE, f"count {MAX_BEATS + 1}"),
        (lambda: Beats.decode(b""), ErrorCode.BAD_LENGTH, "BEATS: payload of 0 bytes ends inside count"),
        (lambda: Beats.decode(bytes([2]) + bytes(7)), ErrorCode.BAD_LENGTH, "BEATS: payload of 8 bytes ends inside 2 beats of 4 bytes"),
        (lambda: Beats.decode(bytes([1]) + bytes(5)), ErrorCode.BAD_LENGTH, "BEATS: 1 bytes after 1 beats"),
        (lambda: Beats.decode(bytes([200]) + bytes(8)), ErrorCode.BAD_LENGTH, "ends inside 200 beats"),  # length before value
    ]
    for make, code, message in cases:
        with pytest.raises(ProtocolError, match=re.escape(message)) as info:
            make()
        assert info.value.code == code


@pytest.mark.slow
def test_c_decodes_results_by_the_last_info(tool, tmp_path):
    """proto_tool decode, like a host, takes a RESULT's layout from the last INFO: old firmware's RESULTs
    still decode, a length that does not match the device's capabilities is BAD_LENGTH on both sides."""
    enc = Encoder(0)
    without = Capability.MODEL | Capability.REPLAY_SAMPLES | Capability.REPLAY_WINDOW
    messages = [OLD_RESULT, NEW_RESULT, _info_caps(without), OLD_RESULT, NEW_RESULT, Beats((7,)), _info_caps(CAPABILITIES_ALL),
                OLD_RESULT, NEW_RESULT, Beats((7, 1 << 31))]  # fmt: skip
    stream = b"".join(enc.encode(m) for m in messages)
    bad_beats = [bytes([0]), bytes([MAX_BEATS + 1]) + bytes(4 * (MAX_BEATS + 1)), bytes([3]) + bytes(8)]
    stream += b"".join(encode_frame(FrameType.BEATS, 100 + i, p) for i, p in enumerate(bad_beats))
    _, lines, _ = py_decode(stream)
    results = [line for line in lines if "type=3 " in line or line.startswith("RESULT")]
    assert [line.split()[0] for line in results] == ["RESULT", "RESULT", "RESULT", "FRAME", "FRAME", "RESULT"]
    assert results[1].endswith(" hr=723 irregularity=41") and results[5].endswith(" hr=723 irregularity=41")
    assert results[3].endswith("len=23 error=2") and results[4].endswith("len=19 error=2")
    assert lines[9] == f"BEATS seq=9 samples=7,{1 << 31}"
    assert lines[10:13] == ["FRAME seq=100 type=6 len=1 error=3", f"FRAME seq=101 type=6 len={1 + 4 * (MAX_BEATS + 1)} error=3",
                            "FRAME seq=102 type=6 len=9 error=2"]  # fmt: skip
    assert c_decode(tool, tmp_path, stream) == lines


# ---- window assembly ---------------------------------------------------------------------------


@pytest.mark.slow
def test_c_window_assembly(tool, tmp_path):
    rng = random.Random(3)
    size = 2500
    wins = {i: rng.randbytes(size) for i in range(10, 17)}
    a, b, c, d, f = (window_chunks(i, wins[i]) for i in (10, 11, 12, 13, 16))
    script: list[tuple[ReplayWindow, str]] = [(ch, "") for ch in a[:-1]] + [(a[-1], "complete 10")]
    script += [(b[0], ""), (b[1], ""), (b[3], "error 11"), (b[4], "error 11")]  # a chunk skipped
    script += [(c[0], ""), (c[1], "")] + [(ch, "") for ch in d[:-1]] + [(d[-1], "complete 13")]  # offset 0 restarts
    script += [(ReplayWindow(14, 0, size - 100, wins[14][:504]), "error 14")]  # wrong total
    script += [(ReplayWindow(15, 0, size, wins[15][:504]), ""), (ReplayWindow(99, 504, size, wins[15][504:1008]), "error 99")]
    g = window_chunks(16, wins[16], chunk=400)
    script += [(ch, "") for ch in g[:-1]] + [(g[-1], "complete 16")] + [(f[1], "error 16")]  # nothing active
    enc = Encoder()
    stream = b"".join(enc.encode(ch) for ch, _ in script)
    frames, lines, _ = py_decode(stream)
    expected = []
    for line, (_, outcome) in zip(lines, script):
        expected.append(line)
        if outcome:
            verdict, wid = outcome.split()
            crc = f" crc={crc16(wins[int(wid)]):04x}" if verdict == "complete" else ""
            expected.append(f"WINDOW id={wid} {verdict}{crc}" if verdict == "complete" else f"WINDOW id={wid} error")
    expected += lines[len(script) :]
    assert c_decode(tool, tmp_path, stream, window=size) == expected
    assert b"".join(ch.data for ch in a) == wins[10] and [ch.offset for ch in g] == list(range(0, 2500, 400))


# ---- Python side alone --------------------------------------------------------------------------


def test_messages_round_trip():
    rng = random.Random(0)
    for m in fixed_messages() + [random_message(rng) for _ in range(300)]:
        frame = Reader().feed(Encoder(9).encode(m))
        assert len(frame) == 1 and frame[0].seq == 9 and frame[0].message() == m


def test_invalid_fields_raise_protocol_errors():
    cases = [
        (lambda: Samples(-1, ()), ErrorCode.BAD_VALUE),
        (lambda: Samples(0, (0x8000,)), ErrorCode.BAD_VALUE),
        (lambda: Samples(0, (1, 2), (True,)), ErrorCode.BAD_VALUE),
        (lambda: Result(0, 0, WindowStatus.OK, 0, (200,), 0, 0, 0), ErrorCode.BAD_VALUE),
        (lambda: _info(input_scale=float("nan")), ErrorCode.BAD_VALUE),
        (lambda: _info(model_sha256=bytes(31)), ErrorCode.BAD_VALUE),
        (lambda: Command(CommandCode.RESET, 1), ErrorCode.BAD_VALUE),
        (lambda: encode_frame(1, 0, bytes(MAX_PAYLOAD + 1)), ErrorCode.BAD_LENGTH),
        (lambda: encode_frame(1, 0x10000, b""), ErrorCode.BAD_VALUE),
        (lambda: Samples.decode(bytes(4)), ErrorCode.BAD_LENGTH),
        (lambda: Ack.decode(bytes(6)), ErrorCode.BAD_LENGTH),
        (lambda: Command.decode(bytes([2, 1, 0, 0, 0])), ErrorCode.BAD_VALUE),
        (lambda: decode_message(Frame(0x42, 0, b"")), ErrorCode.UNKNOWN_TYPE),
        (lambda: window_chunks(1, b""), ErrorCode.BAD_VALUE),
    ]
    for make, code in cases:
        with pytest.raises(ProtocolError) as info:
            make()
        assert info.value.code == code
    assert _info(input_scale=0.1).input_scale == struct.unpack("<f", struct.pack("<f", 0.1))[0]
    assert Samples(0, (5,)).lead_off == (False,)


def test_replay_credits():
    credits = ReplayCredits()
    with pytest.raises(ProtocolError):
        credits.sent(0, 1)  # nothing granted yet
    credits.sent(0)  # COMMAND SOURCE
    credits.ack(Ack(0, FrameType.COMMAND, 300))
    credits.sent(1, 200)
    assert credits.room == 100
    with pytest.raises(ProtocolError) as info:
        credits.sent(2, 101)
    assert info.value.code == ErrorCode.REPLAY_OVERFLOW
    credits.sent(2, 100)
    credits.ack(Ack(1, FrameType.REPLAY_SAMPLES, 150))  # 150 free after frame 1; frame 2 still in flight
    assert credits.room == 50
    credits.ack(Ack(1, FrameType.REPLAY_SAMPLES, 999))  # a repeated answer changes nothing
    assert credits.room == 50
    credits.error(Error(ErrorCode.NOT_REPLAYING, 2, ""))
    assert credits.room == 150


def test_defs_header_and_bandwidth():
    header = protocol_defs_header()
    assert header.startswith("/* Generated by ecg-export") and "do not edit" in header.splitlines()[0]
    for t in FrameType:
        assert f"#define ECG_PROTO_TYPE_{t.name} 0x{int(t):02X}\n" in header
    assert f"#define ECG_PROTO_MAX_FRAME {MAX_FRAME}\n" in header
    # PROTOCOL.md states the bandwidth of streaming at 250 Hz with a RESULT per 2.5 s hop: check its numbers.
    samples = len(Encoder().encode(Samples(0, (0,) * SAMPLE_BATCH)))
    result = len(Encoder().encode(Result(0, 0, WindowStatus.OK, 0, (0, 0, 0), 0, 0, 0)))
    per_second = samples * 250 / SAMPLE_BATCH + result / 2.5
    doc = (FIRMWARE_DIR / "PROTOCOL.md").read_text()
    assert f"{samples} bytes" in doc and f"{result} bytes" in doc
    assert f"{per_second:g} bytes/s" in doc and f"{100 * per_second * 10 / 115200:.2f} %" in doc
    # ... and with the BEATS capability: longer RESULTs, a BEATS frame per beat (at 75 and 180 bpm)
    result = len(Encoder().encode(Result(0, 0, WindowStatus.OK, 0, (0, 0, 0), 0, 0, 0, 750, 0)))
    beat = len(Encoder().encode(Beats((1000,))))
    assert f"({result} bytes with 3 logits, {result / 2.5:g} bytes/s)" in doc and f"BEATS frame of {beat} bytes" in doc
    for bpm, text in ((75, "{:g} bytes/s at 75 bpm, **{:.2f} %**"), (180, "({:g} bytes/s, {:.2f} %, at 180 bpm)")):
        per_second = samples * 250 / SAMPLE_BATCH + result / 2.5 + beat * bpm / 60
        assert f"at {bpm} bpm {beat * bpm / 60:g} bytes/s" in doc
        assert text.format(round(per_second, 6), 100 * per_second * 10 / 115200) in doc, text


@pytest.mark.slow
def test_cppcheck(gen_dir):
    if shutil.which("cppcheck") is None:
        pytest.skip("cppcheck is not installed")
    src = FIRMWARE_DIR / "ecg_edge" / "src"
    common = ["cppcheck", "--std=c99", "--error-exitcode=1", "--inline-suppr", "--suppress=missingIncludeSystem", "-q",
              f"-I{src}", f"-I{gen_dir}", f"-I{FIRMWARE_DIR / 'harness'}"]  # fmt: skip
    for enable, path in (("warning,style,performance,portability", src / "ecg_protocol.c"),
                         ("warning,performance,portability", FIRMWARE_DIR / "harness" / "proto_tool.c")):  # fmt: skip
        proc = subprocess.run([*common, f"--enable={enable}", str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
