"""Live input sources (host/sources.py), the virtual plain-text AD8232 sketch (host/textsim.py) and
`ecg-host ports` / `ecg-host simulate --text`.

Against the virtual device of this firmware (`simulate`): auto-detected binary, INFO, contiguous
sample indices, a pulled cable. Against the text sketch: auto-detected text, the rate estimated from
arrival times (snapped to 250 Hz only because it is within 1 %; 240 Hz stays 240), lead-off lines
with their durations, --rate, 10- vs 12-bit values. Errors: missing port, busy port, random bytes
(wrong baud), a silent pty, a pty closed mid-read.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import serial
from scipy.signal import find_peaks

from device_cli import foreground
from host.cli import main as host_main
from host.devices import Device, simulate
from host.ptys import pty_port
from host.sources import (
    COMMON_RATES,
    Block,
    LiveSource,
    SourceError,
    TextSource,
    merge_blocks,
    open_source,
    parse_line,
    snap_rate,
)
from host.textsim import TextDevice, TextSignal, format_lines


def _collect(src: LiveSource, seconds: float) -> tuple[list[Block], list]:
    blocks: list[Block] = []
    results: list = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        b, r = src.read(0.2)
        blocks += b
        results += r
    return blocks, results


def _contiguous(blocks: list[Block]) -> bool:
    return all(a.end == b.first_sample for a, b in zip(blocks, blocks[1:]))


@pytest.fixture
def pty() -> Iterator[tuple[int, str]]:
    """A new raw pty: (master fd, the slave's path); the slave is not held open, the master is closed after the test."""
    master, port = pty_port()
    yield master, port
    os.close(master)


# ------------------------------------------------------------------ this firmware (binary)


@pytest.fixture(scope="module")
def device(demo_bundle: tuple[Path, Path], device_cache: Path) -> Iterator[Device]:
    with simulate(demo_bundle[1], work=device_cache) as dev:
        yield dev


def test_simulate_is_detected_as_binary(device: Device) -> None:
    with open_source(device.port, timeout=5) as src:
        assert src.kind == "binary" and src.info is not None
        assert src.info.backend == "native" and src.rate_hz == src.info.rate_hz == 250 and not src.rate_estimated
        assert src.adc_bits == src.info.adc_bits
        blocks, _ = _collect(src, 2.5)
        n = sum(len(b.values) for b in blocks)
        assert 500 <= n <= 750, n  # 2.5 s at 250 Hz (plus what was waiting)
        assert _contiguous(blocks), [(b.first_sample, b.end) for b in blocks][:20]
        assert all(b.values.dtype == np.int32 and b.lead_off.dtype == bool and len(b.lead_off) == len(b.values) for b in blocks)
        assert 0 < int(np.concatenate([b.values for b in blocks]).max()) < 4096
        stats = src.stats
        assert stats["samples_lost"] == 0 and stats["resets"] == 0 and stats["frames"] > 0, stats


def test_binary_reset_keeps_indices_increasing(device: Device) -> None:
    from export.protocol_defs import CommandCode

    with open_source(device.port, timeout=5) as src:
        assert isinstance(src, LiveSource) and src.kind == "binary"
        before, _ = _collect(src, 0.5)
        src.link.command(CommandCode.RESET)  # type: ignore[attr-defined]
        after, _ = _collect(src, 0.8)
        blocks = before + after
        assert _contiguous(blocks) and blocks[-1].end > before[-1].end
        assert src.stats["resets"] == 1, src.stats


def test_ports_says_the_simulated_device_answers_info(device: Device, capsys: pytest.CaptureFixture[str]) -> None:
    assert host_main(["ports", "--port", device.port]) == 0
    out = capsys.readouterr().out
    assert device.port in out and "answers INFO: ecg-edge" in out and "backend native" in out, out


def assert_cable_pulled(dev: Device | TextDevice, rate: float | None, collect_s: float) -> None:
    """Data flows from `dev`; once it is closed, reading says the device went away, naming the port."""
    with open_source(dev.port, rate=rate, timeout=5) as src:
        assert src.read(1.0)[0]
        dev.close()
        with pytest.raises(SourceError, match=f"port {dev.port}: the device went away"):
            _collect(src, collect_s)


def test_binary_cable_pulled(demo_bundle: tuple[Path, Path], device_cache: Path) -> None:
    with simulate(demo_bundle[1], work=device_cache) as dev:
        assert_cable_pulled(dev, None, 3.0)


@pytest.mark.parametrize("beats", [True, False])
def test_binary_board_beats(beats: bool) -> None:
    """A fake board with the BEATS capability: its beats (session indices) and RESULT rhythm figures come
    through; without it (older firmware) RESULTs of the old length decode and no beats come."""
    from fake_board import HOP, RATE, WINDOW, FakeBoard

    from export.protocol_defs import Capability
    from pipeline.signal.beats import window_rhythm

    with FakeBoard(beats=beats) as board, open_source(board.port, timeout=5) as src:
        assert src.kind == "binary" and src.board_beats == beats
        assert src.link.capabilities is not None and bool(src.link.capabilities & Capability.BEATS) == beats  # type: ignore[attr-defined]
        end = time.monotonic() + 4.0
        blocks, results, got = [], [], []
        while time.monotonic() < end:
            b, r = src.read(0.2)
            blocks, results, got = blocks + b, results + r, got + src.take_beats()
        assert _contiguous(blocks) and len(results) >= 3 and src.stats["frames_dropped"] == 0, src.stats
        assert not src.link.stats.errors  # type: ignore[attr-defined]
        assert all(r.has_rhythm == beats for r in results)
        if beats:
            for r in results:
                assert (r.hr_x10, r.rr_irregularity) == window_rhythm(board.beats, r.first_sample, WINDOW, RATE, r.status)
            assert got and set(got) <= set(board.beats.tolist()) and got == sorted(got)
            assert len(got) >= len(board.beats[(board.beats >= blocks[0].first_sample) & (board.beats < blocks[-1].end - 100)])
            assert results[0].first_sample % HOP == 0
        else:
            assert not got


# ------------------------------------------------------------------ the plain-text sketch


def test_text_is_detected_and_its_rate_estimated() -> None:
    with TextDevice(rate=250, lead_off=(3, 1)) as dev:
        started = time.monotonic()
        with open_source(dev.port, timeout=5) as src:
            assert time.monotonic() - started < 5
            assert src.kind == "text" and src.info is None and src.rate_estimated
            assert isinstance(src, TextSource) and src.measured_rate_hz is not None
            assert abs(src.measured_rate_hz - 250) < 2.5 and src.rate_hz == 250.0
            assert src.adc_bits == 10
            blocks, results = _collect(src, 7.0)
            assert not results and _contiguous(blocks) and blocks[0].first_sample == 0
            assert abs(src.measured_rate_hz - 250) < 1.0, src.measured_rate_hz
            values = np.concatenate([b.values for b in blocks])
            off = np.concatenate([b.lead_off for b in blocks])
            assert np.all(values[off] == 1023) and values[~off].max() <= 1023
            edges = np.flatnonzero(np.diff(off.astype(np.int8))) + 1
            starts, ends = edges[off[edges]], edges[~off[edges]]
            ends = ends[ends > starts[0]]
            assert len(starts) >= 2 and len(ends) >= 1, edges
            assert set(ends[: len(starts)] - starts[: len(ends)]) == {250}  # 1 s off at 250 lines/s
            assert set(np.diff(starts)) == {750}  # every 3 s
            assert src.stats["bad_lines"] == 0 and src.stats["samples_lost"] == 0, src.stats
        assert "estimated" in src.describe()


def test_uncommon_rate_is_not_snapped() -> None:
    with TextDevice(rate=240) as dev, open_source(dev.port, timeout=5) as src:
        assert src.rate_estimated and src.rate_hz not in COMMON_RATES
        assert abs(src.rate_hz - 240) < 2.4, src.rate_hz


def test_rate_option_forces_the_rate() -> None:
    with TextDevice(rate=250) as dev:
        started = time.monotonic()
        with open_source(dev.port, rate=360, timeout=5) as src:
            assert time.monotonic() - started < 1.9  # no estimate to wait for
            assert src.kind == "text" and src.rate_hz == 360 and not src.rate_estimated


@pytest.mark.parametrize("bits", [10, 12])
def test_adc_bits_are_detected(bits: int) -> None:
    with TextDevice(rate=250, adc_bits=bits, lead_off=(4, 1)) as dev, open_source(dev.port, rate=250, timeout=5) as src:
        blocks, _ = _collect(src, 1.0)
        assert src.adc_bits == bits
        values = np.concatenate([b.values for b in blocks])
        assert (values.max() > 1023) == (bits == 12)
    with TextDevice(rate=250, adc_bits=10) as dev, open_source(dev.port, rate=250, adc_bits=12, timeout=5) as src:
        assert src.adc_bits == 12  # --adc-bits wins


def test_ports_says_text(capsys: pytest.CaptureFixture[str]) -> None:
    with TextDevice(rate=250) as dev:
        assert host_main(["ports", "--port", dev.port, "--probe-timeout", "1"]) == 0
    out = capsys.readouterr().out
    assert dev.port in out and "streams text lines" in out and "answers INFO" not in out, out


# ------------------------------------------------------------------ errors


def test_missing_port() -> None:
    with pytest.raises(SourceError, match="/dev/ecg-edge-absent: no such device"):
        open_source("/dev/ecg-edge-absent")


def test_busy_port() -> None:
    with TextDevice() as dev, serial.Serial(dev.port, exclusive=True):
        with pytest.raises(SourceError, match=f"port {dev.port} is busy"):
            open_source(dev.port, timeout=2)


def test_random_bytes_are_a_wrong_baud_rate(pty: tuple[int, str]) -> None:
    master, port = pty
    stop = threading.Event()

    def spew() -> None:
        rng = np.random.default_rng(7)
        while not stop.is_set():
            try:
                os.write(master, rng.integers(0, 256, 64, dtype=np.uint8).tobytes())
            except OSError:
                return
            time.sleep(0.005)

    writer = threading.Thread(target=spew, daemon=True)
    writer.start()
    try:
        started = time.monotonic()
        with pytest.raises(SourceError, match=rf"port {port}: got \d+ bytes, no frame and no text line: wrong --baud\? \(this firmware: 115200\)"):
            open_source(port, timeout=5)
        assert time.monotonic() - started < 3
    finally:
        stop.set()
        writer.join(2)


def test_silent_port(pty: tuple[int, str]) -> None:
    _, port = pty
    started = time.monotonic()
    with pytest.raises(SourceError, match=rf"no data from {port} within 1 s \(is the board running/streaming\?\)"):
        open_source(port, timeout=1.0)
    assert 1.0 <= time.monotonic() - started < 2.5


def test_text_cable_pulled() -> None:
    dev = TextDevice(rate=250)
    try:
        assert_cable_pulled(dev, 250, 2.0)
    finally:
        dev.close()


def test_text_source_stops_when_the_sketch_goes_silent(pty: tuple[int, str]) -> None:
    master, port = pty
    ser = serial.Serial(port, timeout=0)
    src = TextSource(ser, port, rate=250, timeout=0.5)
    os.write(master, b"\r\n512\r\n513\r\n")
    blocks, _ = src.read(0.3)
    assert [b.values.tolist() for b in blocks] == [[512, 513]]
    with pytest.raises(SourceError, match=f"port {port}: no data for 0.5 s"):
        _collect(src, 1.5)
    src.close()


# ------------------------------------------------------------------ parsing and the signal, offline


def test_line_parsing_and_gaps() -> None:
    assert parse_line(b"512\r") == 512 and parse_line(b" 7 ") == 7 and parse_line(b"!\r") == -1
    assert parse_line(b"12a") is None and parse_line(b"-5") is None and parse_line(b"99999") is None
    src = TextSource(None, "test", rate=100)  # type: ignore[arg-type]
    src.ingest(b"23\r\n100\r\n101\r", 1.0)  # opened mid-line: "23" is dropped
    src.ingest(b"\n!\r\nhello\r\n102\r\n\r\n103\n", 1.1)
    blocks = merge_blocks(src._pending)
    assert [(b.first_sample, b.values.tolist(), b.lead_off.tolist()) for b in blocks] == [
        (0, [100, 101, 1023], [False, False, True]),  # '!' at the 10-bit rail (values so far <= 1023)
        (4, [102, 103], [False, False]),  # "hello" left a one-sample gap
    ]
    assert src.stats["bad_lines"] == 1 and src.stats["samples_lost"] == 1 and src.stats["lines"] == 6


def test_rate_snapping() -> None:
    assert snap_rate(248.0) == 250.0 and snap_rate(251.9) == 250.0 and snap_rate(357.0) == 360.0
    assert snap_rate(240.0) == 240.0 and snap_rate(300.123) == 300.12


def test_signal_has_the_mean_heart_rate_and_lead_off_stretches() -> None:
    sig = TextSignal(rate=250, heart_rate=72, seed=3, adc_bits=12)
    counts, off = sig.next(250 * 60)
    assert not off.any() and counts.max() < 4095
    peaks, _ = find_peaks(counts.astype(float), distance=100, prominence=400)
    assert len(peaks) in (71, 72, 73) and np.all(np.abs(np.diff(peaks) - 250 * 60 / 72) <= 1)
    again = TextSignal(rate=250, heart_rate=72, seed=3, adc_bits=12).next(250 * 60)[0]
    assert np.array_equal(counts, again)  # the seed fixes the stream
    sig = TextSignal(rate=250, heart_rate=60, lead_off=(30, 5), adc_bits=10)
    counts, off = sig.next(250 * 60)
    assert off.sum() == 2 * 5 * 250 and off[25 * 250 : 30 * 250].all() and not off[: 25 * 250].any()
    assert np.all(counts[off] == 1023) and counts.max() <= 1023
    assert format_lines(counts[: 2], off[: 2]) == b"%d\r\n%d\r\n" % (counts[0], counts[1])
    assert format_lines(np.array([1023]), np.array([True])) == b"!\r\n"


def test_text_device_drops_lines_without_a_client() -> None:
    with TextDevice(rate=500) as dev:
        time.sleep(0.5)
        assert dev.lines_written == 0 and dev.lines_dropped >= 200
        with serial.Serial(dev.port, timeout=0.5) as ser:
            before = dev.samples
            data = ser.read(200)
        assert data and dev.lines_written > 0
        assert dev.samples - before < 300  # what arrived is fresh, not a backlog


# ------------------------------------------------------------------ command line


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("ports", "simulate"):
        with pytest.raises(SystemExit):
            host_main([command, "--help"])
        assert "Examples:" in capsys.readouterr().out


def test_simulate_text_options_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        host_main(["simulate", "--text", "--bundle", "x"])
    assert "--bundle do not apply" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        host_main(["simulate", "--rate", "250"])
    assert "--rate only apply with --text" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        host_main(["simulate"])
    assert "--bundle" in capsys.readouterr().err


def test_cli_simulate_text(tmp_path: Path) -> None:
    link = tmp_path / "ttyAD8232"
    cmd = [sys.executable, "-u", "-m", "host.cli", "simulate", "--text", "--rate", "250", "--adc-bits", "12",
           "--lead-off", "30,5", "--link", str(link)]  # fmt: skip
    with foreground(cmd, ready_s=20, stop_s=10) as run:
        assert any("virtual AD8232 sketch on /dev/" in ln for ln in run.lines), run.lines
        assert link.is_symlink()
        with open_source(str(link), rate=250, timeout=5) as src:
            blocks, _ = _collect(src, 1.0)
            assert src.kind == "text" and src.adc_bits == 12 and sum(len(b.values) for b in blocks) > 100
    assert run.returncode == 0, run.err
    assert "lines: written" in run.out and not link.exists()
