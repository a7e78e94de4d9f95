"""`simulate --speed`, the noisy line of host/faults.py, and `ecg-host soak` (host/soak.py).

The fault injector is checked against the byte stream itself (flips by XOR, drops and duplicates on
a stream without repeated neighbours), for determinism whatever the chunking, and for rates near
the asked ones. The soak runs real MIT-BIH and PTB-XL records through `simulate --speed 100`: a
minute on a clean line (nothing lost), ten minutes through the proxy at BER 1e-5 (every delivered
window identical, no corrupt frame accepted, every lost RESULT reported). Speed bounds are loose:
the suite runs on a busy two-core machine.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from host.cli import main as host_main
from host.devices import DeviceError, simulate, speed_arg
from host.faults import FaultInjector, FaultSpec
from host.link import DeviceLink
from host.soak import run_soak

STREAM = bytes(range(256)) * 64  # no byte equals its neighbour: a duplicate or a drop shows


def _out(injector: FaultInjector, data: bytes, step: int = 0) -> bytes:
    parts = [data[i : i + step] for i in range(0, len(data), step)] if step else [data]
    return b"".join(chunk for part in parts for _, chunk, _ in injector.apply(part))


def test_flips_are_counted_exactly_and_deterministic() -> None:
    spec = FaultSpec(ber=1e-3, seed=7)
    inj = FaultInjector(spec)
    out = _out(inj, STREAM)
    flipped = int(np.unpackbits(np.frombuffer(out, np.uint8) ^ np.frombuffer(STREAM, np.uint8)).sum())
    assert inj.counts.flipped_bits == flipped
    n_bits = 8 * len(STREAM)
    assert abs(flipped - 1e-3 * n_bits) < 5 * np.sqrt(1e-3 * n_bits)
    assert _out(FaultInjector(spec), STREAM, step=333) == out  # any chunking: the same line
    assert _out(FaultInjector(FaultSpec(ber=1e-3, seed=8)), STREAM) != out


def test_drops_and_duplicates_are_counted_exactly() -> None:
    inj = FaultInjector(FaultSpec(drop_rate=2e-3, seed=3))
    out = np.frombuffer(_out(inj, STREAM, step=1000), np.uint8).astype(int)
    gaps = (np.diff(out) - 1) % 256  # bytes missing between neighbours (never 256 in a row at this rate)
    missing = int(gaps.sum()) + int(out[0]) + (255 - int(out[-1]))  # the stream runs 0..255, 0..255, ...
    assert inj.counts.dropped_bytes == missing > 0
    assert len(out) == len(STREAM) - inj.counts.dropped_bytes
    inj = FaultInjector(FaultSpec(dup_rate=2e-3, seed=3))
    out = np.frombuffer(_out(inj, STREAM, step=1000), np.uint8)
    assert inj.counts.duplicated_bytes == int((out[1:] == out[:-1]).sum()) > 0
    assert len(out) == len(STREAM) + inj.counts.duplicated_bytes


def test_pauses_split_the_line_and_damage_is_located() -> None:
    inj = FaultInjector(FaultSpec(pause_rate=1e-3, pause_s=0.2, dup_rate=1e-3, seed=5))
    chunks = inj.apply(STREAM)
    assert len(chunks) == inj.counts.pauses + 1 and inj.counts.pauses > 0
    assert chunks[0][0] == 0.0 and all(p == 0.2 for p, _, _ in chunks[1:])
    for _, chunk, damage in chunks:  # a duplicated byte sits at each damaged offset
        assert all(chunk[k] == chunk[k + 1] for k in damage)
    assert sum(len(d) for _, _, d in chunks) == inj.counts.duplicated_bytes


@pytest.mark.parametrize("bad", [{"ber": -0.1}, {"drop_rate": 1.0}, {"dup_rate": float("nan")}, {"pause_s": -1.0}])
def test_fault_spec_refuses_bad_rates(bad: dict) -> None:
    with pytest.raises(ValueError, match="fault"):
        FaultSpec(**bad)


@pytest.mark.parametrize("bad", [0, -1, float("inf"), 1e4, 1e-9])
def test_speed_out_of_range_is_an_error(bad: float) -> None:
    with pytest.raises(DeviceError, match="expected a number from"):
        speed_arg(bad)
    assert speed_arg(2.5) == "2.5" and speed_arg(100) == "100"


def test_cli_options_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, says in ((["simulate", "--bundle", "b", "--speed", "0"], "--speed"),
                       (["simulate", "--text", "--speed", "3"], "--speed"),
                       (["soak", "--port", "p", "--bundle", "b", "--data", "d", "--seconds", "10", "--drop-rate", "0.1"], "only apply with --faults"),
                       (["soak", "--port", "p", "--bundle", "b", "--data", "d", "--seconds", "0"], "--seconds"),
                       (["soak", "--port", "p", "--bundle", "b", "--data", "d", "--seconds", "9", "--faults", "2"], "probability")):  # fmt: skip
        with pytest.raises(SystemExit) as exc:
            host_main(argv)
        assert exc.value.code == 2
        assert says in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("speed", [1, 40])
def test_simulate_speed_paces_the_sample_clock(demo_bundle: tuple[Path, Path], device_cache: Path, speed: float) -> None:
    """The SAMPLES counter (lost samples included) advances speed x 250 per wall second, loosely."""
    with simulate(demo_bundle[1], work=device_cache, speed=speed) as dev, DeviceLink(dev.port) as link:
        link.poll(0.5)
        seen: list[tuple[float, int]] = []
        link.on_samples = lambda m: seen.append((time.monotonic(), m.first_sample + len(m.values)))  # type: ignore[misc]
        link.poll(3.0)
        (t0, n0), (t1, n1) = seen[0], seen[-1]
        rate = (n1 - n0) / (t1 - t0)
        assert 0.6 * speed * 250 < rate < 1.4 * speed * 250, f"{rate:.0f} samples/s at speed {speed}"


def _soak(bundle: Path, device_cache: Path, data: list[Path], seconds: float, faults: FaultSpec | None, out: Path) -> dict:
    with simulate(bundle, work=device_cache, speed=100) as dev:
        report, failed = run_soak(dev.port, bundle, data, seconds, faults=faults, out=out, progress=False, timeout=20.0)
    assert report["windows"] > 0
    return report | {"failed": failed}


@pytest.mark.slow
def test_soak_clean_line_loses_nothing(demo_bundle: tuple[Path, Path], device_cache: Path, shared_data: Path, tmp_path: Path) -> None:
    r = _soak(demo_bundle[1], device_cache, [shared_data / "mitdb", shared_data / "ptbxl"], 60.0, None, tmp_path / "soak.json")
    assert r["failed"] == [], r["mismatch_examples"]
    assert r["identical_fraction"] == 1.0 and r["results"] == r["windows"]
    assert r["results_lost"] == r["samples_lost"] == r["frames_dropped"] == r["corrupt_frames_accepted"] == 0
    assert r["samples_echoed"] > 0.9 * r["samples_sent"]
    assert (tmp_path / "soak.json").is_file()


@pytest.mark.slow
def test_soak_ten_minutes_through_a_noisy_line(demo_bundle: tuple[Path, Path], device_cache: Path, shared_data: Path, tmp_path: Path) -> None:
    spec = FaultSpec(ber=1e-5, drop_rate=1e-5, dup_rate=1e-5, pause_rate=1e-5, seed=1)
    r = _soak(demo_bundle[1], device_cache, [shared_data / "mitdb", shared_data / "ptbxl"], 600.0, spec, tmp_path / "soak.json")
    line = r["faults"]
    assert sum(line[d]["flipped_bits"] + line[d]["dropped_bytes"] + line[d]["duplicated_bytes"] for d in ("host_to_device", "device_to_host")) > 0
    assert r["frames_crc_rejected"] > 0  # the noise reached frames, and the CRC refused them
    assert r["corrupt_frames_accepted"] == 0, r["mismatch_examples"]
    assert r["identical_fraction"] == 1.0
    assert r["results"] + r["results_lost"] == r["windows"]  # every window answered or reported lost
    assert r["failed"] == []
    assert r["resync_seconds"]["device_to_host"]["events"] > 0
    assert r["speedup"] > 10, f"{r['speedup']:.1f} x real time"  # about 50-100 x on an idle machine (bench_soak.py)
