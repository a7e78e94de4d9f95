"""The devices the host talks to without hardware (host/devices.py): the virtual device (`simulate`,
host build of firmware/harness/device_firmware.c) and the Cortex-M4 image under QEMU (`emulate`,
-icount shift=4), both on a pseudo-terminal, spoken to with host/protocol.py.

Checks: INFO against the bundle; a live stream at real-time rate with a continuous sample counter and
a RESULT every hop; REPLAY_WINDOW logits equal to TFLM's; REPLAY_SAMPLES statuses and logits equal
to the reference device path (pipeline.signal.device + quantize + TFLM); garbage on the line (counted,
answered after, also under ASan/UBSan); a client that stops reading; lost samples (a stalled main
loop) as a counter jump and LEAD_OFF windows; a busy main loop is not an idle line; RESET; the
no-model build; a record as the ADC input; the CLI.
The emulate tests need qemu-system-arm and arm-none-eabi-gcc: skipped without them, a failure under CI=true.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest
import serial

from conftest import ecg_like, require_m4_toolchain, write_record
from device_cli import foreground
from export.bundle import read_manifest
from export.bundle_model import BundleModel
from export.protocol_defs import CAPABILITIES_ALL, MAX_BATCH, CommandCode, ErrorCode, FrameType, ResultSource, SampleSource, TimeUnit
from host.devices import Device, DeviceError, emulate, record_samples, simulate
from host.protocol import (
    Ack,
    Command,
    Encoder,
    Error,
    Info,
    Message,
    Reader,
    ReplayCredits,
    ReplaySamples,
    ReplayWindow,
    Result,
    Samples,
    decode_message,
    encode_frame,
    window_chunks,
)
from pipeline.signal.ad8232 import AD8232Config, Disturbances, to_adc
from pipeline.signal.device_rule import WindowStatus
from pipeline.signal.preprocess import quantize_input
from pipeline.inference.device_path import device_answers
from pipeline.signal.quality import QualityStatus
from pipeline.signal.spec import PreprocessSpec
from pipeline.data.synthetic import simulate_ecg

KINDS = ["simulate", "emulate"]
ADC = AD8232Config()
HOP_S = 2.5
CLASSIFIED = (QualityStatus.OK, QualityStatus.LOW_CONFIDENCE)  # a classified window, confident or not


# ------------------------------------------------------------------ the host side of the link


class Link:
    """A serial client of a device: sends messages, reads frames in order (nothing is lost between waits)."""

    def __init__(self, port: str) -> None:
        self.port = port
        self.ser = serial.Serial(port, 115200, timeout=0.02)
        self.ser.reset_input_buffer()
        self.reader = Reader()
        self.enc = Encoder(random.randrange(1 << 16))  # never mistaken for a retransmission of an earlier client
        self.inbox: deque[Message] = deque()

    def close(self) -> None:
        self.ser.close()

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, data: bytes, timeout: float = 60.0) -> None:
        """Write while reading: a host that only writes fills the device's output buffer and stalls it."""
        pos = 0
        deadline = time.monotonic() + timeout
        while pos < len(data):
            try:
                pos += os.write(self.ser.fd, data[pos:])  # pyserial's fd is non-blocking
            except BlockingIOError:
                pass
            if pos < len(data):
                if time.monotonic() > deadline:
                    raise AssertionError(f"{self.port}: the device took {pos} of {len(data)} bytes in {timeout:g} s")
                self._pump()

    def send(self, msg: Message) -> int:
        seq = self.enc.seq
        self.write(self.enc.encode(msg))
        return seq

    def send_frame(self, frame_type: int, payload: bytes) -> int:
        """A frame with any type and payload (for malformed ones), numbered like the others."""
        seq = self.enc.seq
        self.enc.seq = (seq + 1) & 0xFFFF
        self.write(encode_frame(frame_type, seq, payload))
        return seq

    def _pump(self) -> None:
        data = self.ser.read(self.ser.in_waiting or 1)
        for frame in self.reader.feed(data):
            self.inbox.append(decode_message(frame))

    def until(self, pred: Callable[[Message], bool], timeout: float, what: str) -> tuple[Message, list[Message]]:
        """The first message matching `pred`, and those before it."""
        seen: list[Message] = []
        deadline = time.monotonic() + timeout
        while True:
            while self.inbox:
                m = self.inbox.popleft()
                if pred(m):
                    return m, seen
                seen.append(m)
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.port}: no {what} within {timeout:g} s; got {_kinds(seen)}")
            self._pump()

    def answer(self, seq: int, timeout: float = 10.0) -> tuple[Ack | Error, list[Message]]:
        m, seen = self.until(lambda m: isinstance(m, (Ack, Error)) and (m.seq if isinstance(m, Ack) else m.about_seq) == seq, timeout, f"answer to seq {seq}")
        assert isinstance(m, (Ack, Error))
        return m, seen

    def command(self, code: CommandCode, arg: int = 0, timeout: float = 10.0) -> tuple[Ack, list[Message]]:
        ans, seen = self.answer(self.send(Command(code, arg)), timeout)
        assert isinstance(ans, Ack), f"{code.name} refused: {ans}"
        return ans, seen

    def hello(self, timeout: float = 20.0) -> Info:
        """GET_INFO until INFO comes (QEMU notices a new pty client within a second)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.send(Command(CommandCode.GET_INFO))
            try:
                m, _ = self.until(lambda m: isinstance(m, Info), 1.5, "INFO")
                assert isinstance(m, Info)
                return m
            except AssertionError:
                continue
        raise AssertionError(f"{self.port}: no INFO within {timeout:g} s")

    def quiet(self) -> None:
        """Streaming off, ADC source, counters at 0, nothing buffered."""
        self.hello()
        self.command(CommandCode.STREAM, 0)
        self.command(CommandCode.SOURCE, SampleSource.ADC)
        time.sleep(0.2)
        self._pump()
        self.inbox.clear()


def _kinds(msgs: list[Message]) -> str:
    counts: dict[str, int] = {}
    for m in msgs:
        counts[type(m).__name__] = counts.get(type(m).__name__, 0) + 1
    return str(counts)


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def pool(demo_bundle: tuple[Path, Path], device_cache: Path) -> Iterator[Callable[[str], Device]]:
    """get(kind) -> the module's running device of that kind, started on first use."""
    started: dict[str, Device] = {}

    def get(kind: str) -> Device:
        if kind not in started:
            if kind == "emulate":
                require_m4_toolchain()
            start = simulate if kind == "simulate" else emulate
            started[kind] = start(demo_bundle[1], work=device_cache)
        started[kind].check()
        return started[kind]

    yield get
    for dev in started.values():
        dev.close()


@pytest.fixture(scope="module")
def manifest(demo_bundle: tuple[Path, Path]) -> dict[str, Any]:
    return read_manifest(demo_bundle[1])


@pytest.fixture(scope="module")
def model(demo_bundle: tuple[Path, Path]) -> BundleModel:
    return BundleModel.load(demo_bundle[1])


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("kind", KINDS)
def test_info_matches_bundle(pool: Callable[[str], Device], kind: str, demo_bundle: tuple[Path, Path], manifest: dict[str, Any]) -> None:
    import hashlib

    dev = pool(kind)
    with Link(dev.port) as link:
        link.hello()
        seq = link.send(Command(CommandCode.GET_INFO))
        ack, _ = link.answer(seq)
        assert isinstance(ack, Ack) and ack.type == FrameType.COMMAND
        info, _ = link.until(lambda m: isinstance(m, Info), 5, "INFO after the ACK")
    assert isinstance(info, Info)
    assert info.model_sha256 == hashlib.sha256((demo_bundle[1] / "model_int8.tflite").read_bytes()).digest()
    assert info.spec_fingerprint == bytes.fromhex(manifest["spec_fingerprint"])
    assert info.labels == tuple(manifest["labels"])
    spec = PreprocessSpec.from_dict(manifest["spec"])
    assert (info.rate_hz, info.window, info.hop, info.adc_bits) == (spec.fs, spec.window, spec.device_hop, 12)
    assert info.backend == "native" and info.capabilities == CAPABILITIES_ALL  # model, both replays, beats
    assert info.input_zero_point == manifest["quantization"]["input"]["zero_point"]
    assert info.input_scale == pytest.approx(manifest["quantization"]["input"]["scale"], rel=1e-6)
    assert info.output_scale == pytest.approx(manifest["quantization"]["output"]["scale"], rel=1e-6)
    assert info.time_unit == (TimeUnit.MICROSECONDS if kind == "simulate" else TimeUnit.INSTRUCTIONS)


@pytest.mark.parametrize(("kind", "seconds"), [("simulate", 20), pytest.param("emulate", 60, marks=pytest.mark.slow)])
def test_live_stream_real_time(pool: Callable[[str], Device], kind: str, seconds: int) -> None:
    """After RESET: SAMPLES with a continuous counter from 0 at 250 samples per second of wall time,
    a RESULT for every window (every hop) as soon as its last sample is in, classified."""
    dev = pool(kind)
    n_target = seconds * 250
    with Link(dev.port) as link:
        link.quiet()
        link.command(CommandCode.STREAM, 1)
        _, _ = link.command(CommandCode.RESET)
        t0 = time.monotonic()
        nxt, results, arrivals = 0, [], []
        while nxt < n_target:
            m, _ = link.until(lambda m: isinstance(m, (Samples, Result)), 5, "SAMPLES or RESULT")
            if isinstance(m, Samples):
                assert m.first_sample == nxt, f"gap in the sample counter: expected {nxt}, got {m.first_sample}"
                assert len(m.values) == 10 and all(0 < v < 4095 for v in m.values) and not any(m.lead_off)
                nxt += len(m.values)
            else:
                assert isinstance(m, Result)
                results.append(m)
                arrivals.append((time.monotonic() - t0, nxt))
        elapsed = time.monotonic() - t0
        link.command(CommandCode.STREAM, 0)
    rate = nxt / elapsed
    assert 0.95 * 250 < rate < 1.05 * 250, f"{rate:.1f} samples/s of wall time"
    expected = [k for k in range(n_target) if 625 * k + 2500 + 10 <= nxt]
    assert [r.window_index for r in results[: len(expected)]] == expected
    for r, (t, at) in zip(results, arrivals):
        assert r.first_sample == 625 * r.window_index and r.source == ResultSource.LIVE
        assert r.status in CLASSIFIED and 0 <= r.label < 3 and len(r.logits) == 3 and r.time > 0
        assert abs(at - (r.first_sample + 2500)) <= 10, "a RESULT comes with the window's last sample (one batch either way)"
    gaps = np.diff([t for t, _ in arrivals])
    assert abs(np.median(gaps) - HOP_S) < 0.1 and np.all(np.abs(gaps - HOP_S) < 1.0), f"RESULT intervals {gaps}"
    if kind == "emulate":
        time.sleep(6)  # the emulated firmware prints its counters every 5 s of samples
        assert dev.counters()["lost"] == 0, dev.console()[-500:]
        print(f"\nemulate: {nxt} samples in {elapsed:.1f} s ({rate:.1f}/s), {len(results)} results, "
              f"live window {results[-1].time:,} instructions (z-score, quantize, inference)")  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_replay_window_matches_tflm(pool: Callable[[str], Device], kind: str, demo_bundle: tuple[Path, Path], model: BundleModel) -> None:
    from pipeline.data.dataset import load_dataset

    dev = pool(kind)
    ds = load_dataset(demo_bundle[0])
    idx = ds.indices("test")[:3]
    windows = [quantize_input(np.asarray(ds.X[i])[0], *model.in_q) for i in idx]
    rng = np.random.default_rng(7)
    windows += [rng.integers(-128, 128, 2500).astype(np.int8), np.where(np.arange(2500) % 50 < 25, 127, -128).astype(np.int8)]
    inputs = np.stack(windows)
    tflm = model.run_int8(inputs)  # the bundle's threshold on TFLM's outputs, decided as the device does
    ref = tflm.logits
    ids = [1000 + 17 * k for k in range(len(inputs))]
    with Link(dev.port) as link:
        link.quiet()
        link.command(CommandCode.STREAM, 1)  # live windows keep coming: they must not disturb the replayed ones
        t0 = time.monotonic()
        for wid, w in zip(ids, inputs):
            for chunk in window_chunks(wid, w.tobytes()):
                link.send(chunk)
        got: dict[int, Result] = {}
        acks = errors = 0
        while len(got) < len(ids):
            m, _ = link.until(lambda m: isinstance(m, (Result, Ack, Error)), 15, "RESULT of a replayed window")
            if isinstance(m, Result) and m.source == ResultSource.REPLAY_WINDOW:
                got[m.window_index] = m
            acks += isinstance(m, Ack)
            errors += isinstance(m, Error)
        elapsed = time.monotonic() - t0
        link.command(CommandCode.STREAM, 0)
    assert errors == 0 and acks == 5 * len(ids)
    for wid, expected, lo in zip(ids, ref, tflm.low_confidence):
        r = got[wid]
        assert r.logits == tuple(int(v) for v in expected), f"window {wid}: device {r.logits}, TFLM {tuple(expected)}"
        status = QualityStatus.LOW_CONFIDENCE if lo else QualityStatus.OK
        assert r.label == int(np.argmax(expected)) and r.status == status and r.first_sample == 0 and r.time > 0
    print(f"\n{kind}: {len(ids)} replayed windows in {elapsed:.2f} s, inference {np.mean([r.time for r in got.values()]):,.0f} "
          f"{'us' if kind == 'simulate' else 'instructions'}")  # fmt: skip


def _synthetic_stream(seconds: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """AD8232 counts with wander, mains and one lead-off stretch (crosscheck's rough stream)."""
    rng = np.random.default_rng(seed)
    ecg = simulate_ecg("NORMAL", seconds, 250, rng)[: int(seconds * 250)]
    rough = Disturbances(wander_prob=1.0, mains_prob=1.0, motion_prob=0.0, emg_prob=1.0, lead_off_prob=1.0)
    return to_adc(ecg, 250, rng, ADC, rough)


@pytest.mark.parametrize(("kind", "seconds"), [("simulate", 60), ("emulate", 30)])
def test_replay_samples_match_reference(pool: Callable[[str], Device], kind: str, seconds: int, model: BundleModel) -> None:
    """The whole device path on known input: statuses of every window and the logits of the OK ones
    equal pipeline.signal.device + quantize + TFLM; flow control by credits, no REPLAY_OVERFLOW."""
    dev = pool(kind)
    raw, off = _synthetic_stream(seconds, seed=3)
    ref = device_answers(raw, off, model.spec, ADC.max_count, model)
    statuses = {w.status for w in ref}
    assert WindowStatus.OK in statuses and WindowStatus.LEAD_OFF in statuses, "the stream must hold both kinds of window"
    ok = [w for w in ref if w.logits is not None]
    expected_logits = {w.index: tuple(int(v) for v in w.logits) for w in ok}

    results: list[Result] = []
    with Link(dev.port) as link:
        link.quiet()
        ack, _ = link.command(CommandCode.SOURCE, SampleSource.REPLAY)
        credits = ReplayCredits()
        credits.credits = ack.credits
        assert ack.credits >= MAX_BATCH
        t0 = time.monotonic()
        pos = outstanding = 0
        while pos < raw.size or outstanding:
            n = min(MAX_BATCH, credits.room, raw.size - pos)
            if n > 0:
                seq = link.send(ReplaySamples(tuple(int(v) for v in raw[pos : pos + n]), tuple(bool(f) for f in off[pos : pos + n])))
                credits.sent(seq, n)
                pos += n
                outstanding += 1
                continue
            if outstanding == 0:  # no room and nothing in flight: ask for fresh credits
                credits.sent(link.send(ReplaySamples(())), 0)
                outstanding += 1
            m, seen = link.until(lambda m: isinstance(m, (Ack, Error)), 20, "ACK of REPLAY_SAMPLES")
            results += [r for r in seen if isinstance(r, Result)]
            assert isinstance(m, Ack), f"replay refused: {m}"
            credits.ack(m)
            outstanding -= 1
        while len(results) < len(ref):
            m, _ = link.until(lambda m: isinstance(m, Result), 20, f"RESULT {len(results)} of {len(ref)}")
            assert isinstance(m, Result)
            results.append(m)
        elapsed = time.monotonic() - t0
        link.command(CommandCode.SOURCE, SampleSource.ADC)
    assert [r.window_index for r in results] == [w.index for w in ref]
    assert [r.first_sample for r in results] == [w.start for w in ref]
    assert [r.status for r in results] == [w.status for w in ref]
    assert all(r.source == ResultSource.REPLAY_SAMPLES for r in results)
    for r in results:
        if r.window_index in expected_logits:
            assert r.logits == expected_logits[r.window_index], f"window {r.window_index}"
        else:
            assert r.label == -1 and r.logits == ()
    print(f"\n{kind}: replayed {raw.size} samples ({len(ok)} classified windows) in {elapsed:.2f} s: {raw.size / elapsed:,.0f} samples/s")


def _junk(rng: random.Random, good: bytes) -> bytes:
    """Noise, false headers (one announcing a full payload), a frame cut short, a frame with a bad CRC."""
    out = bytearray(rng.randbytes(700))
    out += b"\xa5\x5a\x01\x81\x00\x00\x00\x02" + rng.randbytes(40)  # header of a 512-byte payload, then nothing
    out += b"\xa5\x5a\x07\x81" + rng.randbytes(30)  # wrong version
    out += good[:9]  # a frame cut short
    bad = bytearray(good)
    bad[-1] ^= 0xFF
    out += bad  # CRC error
    out += rng.randbytes(300).replace(b"\xa5", b"\x00")
    return bytes(out)


def _probe_errors(link: Link) -> None:
    """Malformed host frames each get their ERROR, and the device keeps answering."""
    cases = [
        (FrameType.COMMAND, bytes([9, 0, 0, 0, 0]), ErrorCode.BAD_VALUE),
        (FrameType.COMMAND, bytes([1, 0, 0]), ErrorCode.BAD_LENGTH),
        (0x99, b"hello", ErrorCode.UNKNOWN_TYPE),
        (FrameType.RESULT, b"", ErrorCode.UNKNOWN_TYPE),
        (FrameType.REPLAY_SAMPLES, ReplaySamples((2048,) * 5).encode(), ErrorCode.NOT_REPLAYING),
        (FrameType.REPLAY_WINDOW, ReplayWindow(5, 504, 2500, b"\x00" * 10).encode(), ErrorCode.WINDOW_CHUNK),
        (FrameType.REPLAY_WINDOW, ReplayWindow(5, 0, 2499, b"\x00" * 10).encode(), ErrorCode.WINDOW_CHUNK),
    ]
    for frame_type, payload, code in cases:
        ans, _ = link.answer(link.send_frame(frame_type, payload))
        assert isinstance(ans, Error) and ans.code == code, f"{frame_type:#x} {payload.hex()}: {ans}"


@pytest.mark.parametrize("kind", KINDS)
def test_garbage_does_not_break_the_device(pool: Callable[[str], Device], kind: str) -> None:
    dev = pool(kind)
    rng = random.Random(11)
    with Link(dev.port) as link:
        link.quiet()
        for _ in range(3):
            link.write(_junk(rng, link.enc.encode(Command(CommandCode.GET_INFO))))
            link.hello(timeout=10)
        _probe_errors(link)
        # A retransmission (same seq, type and payload) is ACKed again, not applied: no second INFO.
        seq = link.enc.seq
        frame = link.enc.encode(Command(CommandCode.GET_INFO))
        link.write(frame)
        link.until(lambda m: isinstance(m, Info), 5, "INFO")
        link.write(frame)
        ack, _ = link.answer(seq)
        assert isinstance(ack, Ack)
        ack, seen = link.answer(link.send(Command(CommandCode.STREAM, 0)))
        assert isinstance(ack, Ack) and not any(isinstance(m, Info) for m in seen)
    dev.check()


def test_client_that_stops_reading(demo_bundle: tuple[Path, Path], device_cache: Path) -> None:
    """A client that stops reading for a while (the pty holds about 20 KB: some 23 s of SAMPLES) loses
    no sample: the device drops what it cannot send, as a UART does, answers at once after, and its
    windows stay whole. (Under emulate QEMU blocks on the full pty instead: the emulated board, and
    its virtual time, stand still until it is read; a client must read while it writes.)"""
    with simulate(demo_bundle[1], work=device_cache) as dev:
        with Link(dev.port) as link:
            link.quiet()
            link.command(CommandCode.STREAM, 1)
            time.sleep(30)
            link.ser.reset_input_buffer()
            link.reader = Reader()
            link.inbox.clear()
            link.hello(timeout=10)
            after, _ = link.until(lambda m: isinstance(m, Result), 10, "RESULT")
            link.command(CommandCode.STREAM, 0)
    counters = dev.counters()
    assert isinstance(after, Result) and after.status in CLASSIFIED, f"samples were lost while nobody read: {after}"
    assert counters["lost"] == 0 and counters["tx_dropped_bytes"] > 0, counters


def test_garbage_is_counted_under_asan(demo_bundle: tuple[Path, Path], device_cache: Path) -> None:
    """The sanitized build (ASan, UBSan: any report kills it) takes junk; its reader counts every junk byte."""
    rng = random.Random(5)
    dev = simulate(demo_bundle[1], work=device_cache, sanitize=True)
    with dev, Link(dev.port) as link:
        link.quiet()
        junk = b"".join(_junk(rng, link.enc.encode(Command(CommandCode.GET_INFO))) for _ in range(4))
        for i in range(0, len(junk), 97):
            link.write(junk[i : i + 97])
        link.hello(timeout=10)
        _probe_errors(link)
        dev.check()
    counters = dev.counters()
    assert dev.returncode == 0, dev.console()
    assert counters["rx_dropped_bytes"] == len(junk), counters
    assert counters["rx_crc_errors"] >= 4 and counters["rx_header_errors"] >= 4, counters
    assert counters["lost"] == 0


@pytest.mark.parametrize("kind", KINDS)
def test_reset_restarts_the_counter(pool: Callable[[str], Device], kind: str) -> None:
    dev = pool(kind)
    with Link(dev.port) as link:
        link.quiet()
        link.command(CommandCode.STREAM, 1)
        link.until(lambda m: isinstance(m, Samples) and m.first_sample >= 300, 10, "300 samples")
        link.command(CommandCode.RESET)
        first, _ = link.until(lambda m: isinstance(m, Samples), 5, "SAMPLES after RESET")
        second, _ = link.until(lambda m: isinstance(m, Samples), 5, "more SAMPLES")
        link.command(CommandCode.STREAM, 0)
    assert isinstance(first, Samples) and isinstance(second, Samples)
    assert first.first_sample == 0 and second.first_sample == 10


@pytest.mark.parametrize("kind", KINDS)
def test_stream_on_again_loses_nothing(pool: Callable[[str], Device], kind: str) -> None:
    """STREAM 1 while streaming (what every new client sends first, `record` among them) sends the
    batch in progress before its ACK: the SAMPLES counter stays continuous and ends with STREAM 0's
    batch. (It used to drop the 1-9 samples batched so far, silently: a race a busy machine widened.)"""
    dev = pool(kind)
    rng = random.Random(19)
    samples: list[Samples] = []
    with Link(dev.port) as link:
        link.quiet()
        link.command(CommandCode.STREAM, 1)
        for _ in range(12):
            time.sleep(rng.uniform(0.0, 0.05))  # lands mid-batch 9 times in 10
            _, seen = link.command(CommandCode.STREAM, 1)
            samples += [m for m in seen if isinstance(m, Samples)]
        _, seen = link.command(CommandCode.STREAM, 0)
        samples += [m for m in seen if isinstance(m, Samples)]
    ends = [m.first_sample + len(m.values) for m in samples]
    jumps = [(end, m.first_sample) for end, m in zip(ends, samples[1:]) if m.first_sample != end]
    assert len(samples) > 12 and not jumps, jumps


def test_lost_samples_leave_a_gap(demo_bundle: tuple[Path, Path], device_cache: Path) -> None:
    """A main loop stalled longer than the ring (256 samples, about 1 s) loses samples: the counter jumps by exactly the
    number lost, the windows over the gap are LEAD_OFF (not classified), the next ones OK again."""
    dev = simulate(demo_bundle[1], work=device_cache, extra_args=("--stall", "2,2600"))
    samples: list[Samples] = []
    results: list[Result] = []
    with dev, Link(dev.port) as link:
        while not results or results[-1].status not in CLASSIFIED:
            m, _ = link.until(lambda m: isinstance(m, (Samples, Result)), 10, "SAMPLES or RESULT")
            (samples if isinstance(m, Samples) else results).append(m)  # type: ignore[arg-type]
            assert len(results) < 8, results
    lost = dev.counters()["lost"]
    jumps = [(a.first_sample + len(a.values), b.first_sample) for a, b in zip(samples, samples[1:]) if b.first_sample != a.first_sample + len(a.values)]
    assert len(jumps) == 1 and 0 < lost == jumps[0][1] - jumps[0][0], (jumps, lost)
    gap = range(*jumps[0])
    for r in results:
        over_gap = r.first_sample < gap.stop and gap.start < r.first_sample + 2500
        assert (r.status == WindowStatus.LEAD_OFF) if over_gap else (r.status in CLASSIFIED), (r, gap)
    assert results[-1].first_sample >= gap.stop


def test_late_sampler_counts_the_missed_ticks(demo_bundle: tuple[Path, Path], device_cache: Path) -> None:
    """Sampling as on the ESP32 and mbed sketches (the timer interrupt counts ticks, a sampler task takes
    the count and reads the ADC): a sampler late by 300 ms misses about 75 ticks, and they become lost
    samples (ecg_app_on_ticks) as a full ring's do: the SAMPLES counter jumps by exactly the number
    lost, never a silent merge of samples."""
    dev = simulate(demo_bundle[1], work=device_cache, extra_args=("--late-sampler", "2,300"))
    samples: list[Samples] = []
    with dev, Link(dev.port) as link:
        while not samples or samples[-1].first_sample < 4 * 250:
            m, _ = link.until(lambda m: isinstance(m, Samples), 10, "SAMPLES")
            samples.append(m)  # type: ignore[arg-type]
        last_read = time.monotonic()
    tail = int((time.monotonic() - last_read) * 250) + 5  # samples the device ran after the last frame read, until it stopped
    lost = dev.counters()["lost"]  # simulate prints its counters when it stops
    jumps = [(a.first_sample + len(a.values), b.first_sample) for a, b in zip(samples, samples[1:]) if b.first_sample != a.first_sample + len(a.values)]
    # Here the main loop is the sampler, so an inference may make it late by a tick now and then too:
    # every jump is counted, and the one of the late sampler is the large one at 2 s. A busy machine may
    # also make it late after the last frame read, before it stopped: those losses are in the counter only.
    assert jumps and sum(b - a for a, b in jumps) <= lost <= sum(b - a for a, b in jumps) + tail, (jumps, lost, tail)
    start, stop = max(jumps, key=lambda j: j[1] - j[0])
    assert 300 * 250 // 1000 - 5 <= stop - start <= 300 * 250 // 1000 + 5, jumps
    assert abs(start - 2 * 250) <= 20, jumps


def test_busy_device_is_not_an_idle_line(demo_bundle: tuple[Path, Path], device_cache: Path) -> None:
    """A main loop busy for 150 ms after reading part of a frame (a slow board's inference) must not
    give the frame up as if the line had gone idle (the protocol's 100 ms flush): every command is
    answered and no byte is dropped."""
    dev = simulate(demo_bundle[1], work=device_cache, extra_args=("--busy-after-rx", "150"))
    with dev, Link(dev.port) as link:
        link.quiet()
        for _ in range(5):
            seq = link.enc.seq
            frame = link.enc.encode(Command(CommandCode.GET_INFO))
            link.write(frame[:6])
            time.sleep(0.02)  # one frame written in two bursts, well within the 100 ms
            link.write(frame[6:])
            ans, _ = link.answer(seq, timeout=5)
            assert isinstance(ans, Ack)
    assert dev.counters()["rx_dropped_bytes"] == 0, dev.counters()


def test_no_model_build(demo_bundle: tuple[Path, Path], device_cache: Path) -> None:
    """ECG_APP_NO_MODEL=1 (the Uno's build): SAMPLES and commands only; long REPLAY frames are checked
    by the compact reader without being kept and answered with NO_MODEL."""
    dev = simulate(demo_bundle[1], work=device_cache, no_model=True)
    with dev, Link(dev.port) as link:
        info = link.hello()
        assert info.backend == "none" and int(info.capabilities) == 0 and info.model_sha256 == bytes(32)
        assert info.input_scale == 0 and info.labels == ("NORMAL", "MI", "ARRHYTHMIA")
        link.command(CommandCode.STREAM, 1)
        link.command(CommandCode.RESET)
        first, _ = link.until(lambda m: isinstance(m, Samples), 5, "SAMPLES")
        assert isinstance(first, Samples) and first.first_sample == 0
        link.command(CommandCode.STREAM, 0)
        for msg in (ReplaySamples((2048,) * MAX_BATCH), ReplaySamples(()), *window_chunks(1, bytes(2500))[:2]):
            ans, _ = link.answer(link.send(msg))
            assert isinstance(ans, Error) and ans.code == ErrorCode.NO_MODEL, ans
        rng = random.Random(3)
        link.write(_junk(rng, link.enc.encode(Command(CommandCode.GET_INFO))))
        link.hello(timeout=10)
        ans, _ = link.answer(link.send_frame(FrameType.COMMAND, bytes(40)))
        assert isinstance(ans, Error) and ans.code == ErrorCode.BAD_LENGTH
        ans, _ = link.answer(link.send_frame(FrameType.COMMAND, bytes([4, 7, 0, 0, 0])))
        assert isinstance(ans, Error) and ans.code == ErrorCode.BAD_VALUE
        # A short and a long frame with a bad CRC: not answered, counted; the next frame is answered.
        for msg in (Command(CommandCode.GET_INFO), ReplaySamples((2048,) * MAX_BATCH)):
            frame = bytearray(link.enc.encode(msg))
            frame[-1] ^= 0x5A
            link.write(bytes(frame))
        ans, seen = link.answer(link.send(Command(CommandCode.RESET)))
        assert isinstance(ans, Ack) and not any(isinstance(m, (Ack, Error, Info)) for m in seen)
    counters = dev.counters()
    assert counters["rx_crc_errors"] >= 2 and counters["rx_dropped_bytes"] > 1000, counters


@pytest.mark.parametrize("kind", KINDS)
def test_record_feeds_the_adc(kind: str, demo_bundle: tuple[Path, Path], device_cache: Path, tmp_path: Path) -> None:
    """A WFDB record (360 Hz) is resampled to 250 Hz ADC counts and read by the device in order."""
    if kind == "emulate":
        require_m4_toolchain()
    rec = write_record(tmp_path, "rec", ecg_like(40, 360.0, seed=4), 360.0, ["II"])
    expected_file = tmp_path / "expected.bin"
    n = record_samples(rec, demo_bundle[1], expected_file)
    expected = np.fromfile(expected_file, dtype="<u4")
    assert n == expected.size == 40 * 250
    start = simulate if kind == "simulate" else emulate
    with start(demo_bundle[1], record=rec, work=device_cache) as dev, Link(dev.port) as link:
        link.hello()
        link.command(CommandCode.STREAM, 1)
        got: list[int] = []
        while len(got) < 750:
            m, _ = link.until(lambda m: isinstance(m, Samples), 5, "SAMPLES")
            assert isinstance(m, Samples)
            got += m.values
    got_a = np.asarray(got, dtype=np.uint32)
    head = got_a[:20]
    offsets = [k for k in range(expected.size - 20) if np.array_equal(expected[k : k + 20] & 0xFFFF, head)]
    assert offsets, "the device's samples are not the record's"
    k = offsets[0]
    m = min(got_a.size, expected.size - k)
    assert np.array_equal(got_a[:m], expected[k : k + m] & 0xFFFF)


def test_bad_record_is_a_clear_error(demo_bundle: tuple[Path, Path], device_cache: Path, tmp_path: Path) -> None:
    with pytest.raises(DeviceError, match="no WFDB header"):
        simulate(demo_bundle[1], record=tmp_path / "absent", work=device_cache)


def test_cli_simulate_until_interrupted(demo_bundle: tuple[Path, Path], device_cache: Path, tmp_path: Path) -> None:
    """`ecg-host simulate` prints the port, the link and INFO, runs until SIGINT, then the counters."""
    link_path = tmp_path / "ttyECG"
    code = (
        "import argparse, sys\n"
        "from host.cli_devices import add_device_commands\n"
        "from pipeline.util.console import run\n"
        "p = argparse.ArgumentParser(prog='ecg-host'); add_device_commands(p.add_subparsers(dest='command', required=True))\n"
        "sys.exit(run(p, sys.argv[1:]))\n"
    )
    cmd = [sys.executable, "-u", "-c", code, "simulate", "--bundle", str(demo_bundle[1]), "--link", str(link_path), "--work", str(device_cache)]
    with foreground(cmd, ready_s=120, stop_s=30) as run:
        assert any("virtual device on /dev/" in ln and str(link_path) in ln for ln in run.lines), run.lines
        assert any("backend native" in ln for ln in run.lines), run.lines
        assert link_path.is_symlink()
        with Link(str(link_path)) as link:
            assert link.hello().backend == "native"
    assert run.returncode == 0, run.err
    assert "device counters: samples" in run.out and not link_path.exists()
