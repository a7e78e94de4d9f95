"""The live path on a busy machine (tests/load.py: two CPU-bound processes and a memory toucher for the
test's whole duration): `ecg-host record` takes 60 s of live signal from the virtual device
(`simulate`) and from the Cortex-M4 image under QEMU (`emulate`, its real 256-sample ring and
real-time pacing).

- simulate: 0 samples lost, 0 frames dropped, 0 CRC errors; the device counted no loss either.
- emulate: every sample the recording misses is one the device counted (the jumps of the SAMPLES
  counter equal the growth of its `lost` counter over the recording, printed every second), and its
  UART dropped nothing; it keeps real time (the 60 s take well under 90 s of wall time).

Only one busy machine runs at a time across pytest-xdist workers (a lock in the session's shared
directory): two of these tests never load 4 processes onto 2 cores. The emulate test needs
qemu-system-arm and arm-none-eabi-gcc: skipped without them, a failure under CI=true.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import ContextManager

import numpy as np
import pytest
import wfdb

from conftest import REPO, require_m4_toolchain, shared_root
from host.devices import emulate, simulate
from load import Load, busy_machine

pytestmark = [pytest.mark.slow, pytest.mark.load]

SECONDS = 60
RATE = 250
MIN_LOAD_CPU_S = 0.5 * SECONDS  # the load really ran: at least half a core for the whole recording


def _busy(tmp_path_factory: pytest.TempPathFactory) -> ContextManager[Load]:
    """The busy machine, one at a time across pytest-xdist workers."""
    return busy_machine(lock=shared_root(tmp_path_factory) / "busy-machine.lock")


def _record(port: str, out: Path) -> tuple[subprocess.CompletedProcess, float]:
    """`ecg-host record` for SECONDS; its result and wall time."""
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "host.cli", "record", "--port", port, "--out", str(out), "--seconds", str(SECONDS)],
                          cwd=REPO, capture_output=True, text=True, timeout=SECONDS * 4)  # fmt: skip
    return done, time.monotonic() - t0


def _comments(out: Path) -> dict[str, str]:
    rec = wfdb.rdrecord(str(out))
    assert rec.sig_len == SECONDS * RATE, rec.sig_len
    return dict(c.split(": ", 1) for c in rec.comments if ": " in c)


def _numbers(text: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", text)}


def test_simulate_under_load(demo_bundle: tuple[Path, Path], device_cache: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    out = tmp_path / "busy_sim"
    with simulate(demo_bundle[1], work=device_cache) as dev:
        with _busy(tmp_path_factory) as load:
            done, wall = _record(dev.port, out)
            load_cpu = load.cpu_seconds()
    counters = dev.counters()  # printed when it stopped
    assert done.returncode == 0, done.stderr
    assert load_cpu >= MIN_LOAD_CPU_S, f"the load got only {load_cpu:.0f} CPU s: not a busy machine"
    c = _comments(out)
    link = _numbers(c["link"])
    assert c["samples_lost"].startswith("0 ") and link["samples_lost"] == 0, c
    assert link["frames_dropped"] == 0 and link["crc_errors"] == 0 and link["frames"] >= SECONDS * RATE // 10, link
    assert not np.isnan(wfdb.rdrecord(str(out)).p_signal).any()
    assert counters["lost"] == 0, counters
    print(f"\nsimulate under load: {SECONDS * RATE} samples in {wall:.1f} s, load {load_cpu:.0f} CPU s, link {link}")


def test_emulate_under_load(demo_bundle: tuple[Path, Path], device_cache: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    require_m4_toolchain()
    out = tmp_path / "busy_emu"
    with emulate(demo_bundle[1], work=device_cache, report_s=1) as dev:
        with _busy(tmp_path_factory) as load:
            done, wall = _record(dev.port, out)
            load_cpu = load.cpu_seconds()
        assert done.returncode == 0, done.stderr
        c = _comments(out)
        first = int(c["first_sample"].split()[0])
        end = first + SECONDS * RATE
        deadline = time.monotonic() + 20
        while not any(s["samples"] >= end for s in dev.counter_history()):  # the first count after the recording
            assert time.monotonic() < deadline, f"no counters past sample {end}:\n{dev.console()[-1000:]}"
            time.sleep(0.2)
        snaps = dev.counter_history()
    assert load_cpu >= MIN_LOAD_CPU_S, f"the load got only {load_cpu:.0f} CPU s: not a busy machine"
    start = {"lost": 0, "tx_dropped_bytes": 0}  # the counters start at 0: no line yet before the recording began
    before = ([s for s in snaps if s["samples"] <= first] or [start])[-1]
    after = next(s for s in snaps if s["samples"] >= end)
    link = _numbers(c["link"])
    # never silent: what the recording misses is exactly what the device counted, and no frame went missing
    assert link["samples_lost"] == after["lost"] - before["lost"], (link, before, after)
    assert after["tx_dropped_bytes"] == before["tx_dropped_bytes"] and link["frames_dropped"] == 0 and link["crc_errors"] == 0, (link, before, after)
    assert wall < 1.5 * SECONDS, f"{SECONDS} s of samples took {wall:.0f} s of wall time: not real time"
    print(f"\nemulate under load: {SECONDS * RATE} samples in {wall:.1f} s, {link['samples_lost']} lost (device counted "
          f"{after['lost'] - before['lost']}), load {load_cpu:.0f} CPU s")  # fmt: skip
