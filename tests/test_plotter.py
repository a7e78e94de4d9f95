"""The firmware's text mode for the Arduino IDE's Serial Plotter, and ecg-host reading it.

The Plotter's parsing is restated from the Arduino IDE 2 plotter (arduino-serial-plotter-webapp,
msgAggregatorWorker.ts): a line with a colon past its first character is split at commas, spaces and
tabs into `key:value` tokens, and a token counts only when both its key and its value are non-empty;
each counted pair becomes a trace. So a line whose every colon is followed by a space draws nothing.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import serial

from export.protocol_defs import TEXT_HR, TEXT_LEAD_OFF, TEXT_SAMPLE, CommandCode
from host.cli import main as host_main
from host.devices import SignalOptions, simulate
from host.link import DeviceLink
from host.protocol import Reader, Samples, decode_message
from host.sources import TextSource, open_source
from pipeline.util.console import DISCLAIMER


def plotter_pairs(line: str) -> dict[str, str]:
    """The traces the IDE 2 Serial Plotter takes from one line (key -> value text)."""
    if line.find(":") <= 0:
        return {f"value {i + 1}": v for i, v in enumerate(re.split(r"[, \t]+", line)) if v}
    pairs = {}
    for token in re.split(r"[, \t]+", line):
        key, _, value = token.partition(":")
        if key.strip() and value.strip():
            pairs[key.strip()] = value.strip()
    return pairs


def _read_lines(port: str, seconds: float) -> list[str]:
    with serial.Serial(port, 115200, timeout=0.2) as ser:
        end, data = time.monotonic() + seconds, b""
        while time.monotonic() < end:
            data += ser.read(4096)
    return [ln.decode("ascii", "replace") for ln in data.split(b"\r\n")[1:-1]]  # whole lines only


def test_plotter_pairs_follow_the_ide():
    assert plotter_pairs("ecg:2041,hr:72.5,lead_off:0") == {"ecg": "2041", "hr": "72.5", "lead_off": "0"}
    assert plotter_pairs("result: window 3 OK NORMAL hr 72.5 bpm rr 20") == {}
    assert plotter_pairs("512") == {"value 1": "512"}


def test_text_mode_of_the_firmware(demo_bundle, device_cache: Path):
    """`ecg-host plotter` switches a running device to text lines: per sample ecg, hr and lead_off
    pairs, the hello and result lines draw nothing, hr follows the last result; --off: frames again."""
    _, bundle = demo_bundle
    with simulate(bundle, work=device_cache, signal_opts=SignalOptions(heart_rate=72, lead_off=(20, 2))) as dev:
        assert host_main(["plotter", "--port", dev.port]) == 0
        lines = _read_lines(dev.port, 13.0)
        hello = [ln for ln in lines if ln.startswith("ecg-edge: ")]
        assert len(hello) <= 1 and all("text mode, 250 Hz, 12-bit ADC" in ln and DISCLAIMER.split(":")[0].lower() in ln.lower() for ln in hello)
        results = [ln for ln in lines if ln.startswith("result: ")]
        samples = [ln for ln in lines if ln.startswith(TEXT_SAMPLE + ":")]
        assert len(samples) + len(results) + len(hello) == len(lines), set(lines) - set(samples) - set(results) - set(hello)
        assert all(plotter_pairs(ln) == {} for ln in hello + results)
        pairs = [plotter_pairs(ln) for ln in samples]
        assert all(set(p) == {TEXT_SAMPLE, TEXT_HR, TEXT_LEAD_OFF} for p in pairs)
        assert 13 * 250 * 0.6 < len(samples) < 13 * 250 * 1.1
        assert {p[TEXT_LEAD_OFF] for p in pairs} <= {"0", "1"} and all(0 <= int(p[TEXT_SAMPLE]) < 4096 for p in pairs)
        # the first result after 10 s of signal, with the board's heart rate, which the sample lines then carry
        m = re.fullmatch(r"result: window 0 (\w+) (\w+|-) hr (\d+\.\d) bpm rr (\d+)", results[0])
        assert m and m.group(1) in ("OK", "LOW_CONFIDENCE", "NOISY", "FLAT", "SATURATED"), results
        assert abs(float(m.group(3)) - 72) <= 3
        hr, checked = "0.0", 0  # unknown before the first window
        for ln in lines:
            if ln.startswith("result: "):
                hr = re.search(r" hr (\S+)", ln).group(1).replace("--", "0.0")
            elif ln.startswith(TEXT_SAMPLE + ":"):
                assert plotter_pairs(ln)[TEXT_HR] == hr, ln
                checked += hr != "0.0"
        assert checked > 100

        assert host_main(["plotter", "--port", dev.port, "--off"]) == 0
        with DeviceLink(dev.port) as link:
            link.command(CommandCode.STREAM, 1)
            got = link.wait_for(lambda msg: isinstance(msg, Samples), 5.0, "SAMPLES")
        assert isinstance(got, Samples)


def test_ecg_host_reads_the_plotter_mode(demo_bundle, device_cache: Path):
    """A device started in text mode (`simulate --plotter`) is detected as text, its rate found as 250 Hz,
    its lead-off lines flagged, nothing lost."""
    _, bundle = demo_bundle
    with simulate(bundle, work=device_cache, signal_opts=SignalOptions(lead_off=(6, 2)), extra_args=("--plotter",)) as dev:
        src = open_source(dev.port)
        try:
            assert src.kind == "text" and src.rate_hz == 250.0
            values, off, end = [], [], time.monotonic() + 9.0
            while time.monotonic() < end:
                for b in src.read(0.5)[0]:
                    values += b.values.tolist()
                    off += b.lead_off.tolist()
            stats = src.stats
        finally:
            src.close()
    assert stats["samples_lost"] == 0 and stats["bad_lines"] <= 1  # the first line may carry the power-on INFO frame
    assert len(values) > 9 * 250 * 0.6
    assert 0.1 < np.mean(off) < 0.5  # 2 s of every 6 s


def test_text_source_takes_this_firmwares_lines(tmp_path: Path):
    """Sample lines are samples (lead_off:1 as a `!` line), result and hello lines are skipped, a
    `lost: <n> samples` line leaves a gap of n counted as lost."""
    src = TextSource(serial.serial_for_url("loop://", timeout=0), "loop", rate=250.0, adc_bits=12)
    lines = ["junk before the first newline", "ecg-edge: 0.2.0 text mode, 250 Hz, 12-bit ADC",
             "ecg:100,hr:0.0,lead_off:0", "ecg:101,hr:0.0,lead_off:0", "result: window 0 OK NORMAL hr 72.0 bpm rr 5",
             "lost: 3 samples", "ecg:4095,hr:72.0,lead_off:1", "ecg:102,hr:72.0,lead_off:0", "ecg:x,hr:1,lead_off:0", "ecg:103,lead_off:0", ""]  # fmt: skip
    src.ingest("\r\n".join(lines).encode(), time.monotonic())
    blocks, _ = src.read(0.1)
    got = [(b.first_sample, b.values.tolist(), b.lead_off.tolist()) for b in blocks]
    assert got == [(0, [100, 101], [False, False]), (5, [4095, 102], [True, False]), (8, [103], [False])]
    assert src.stats["samples_lost"] == 3 + 1 and src.stats["bad_lines"] == 1  # the gap and the bad sample line
