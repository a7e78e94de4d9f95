"""`ecg-host parity` over a real serial link: the virtual device, the emulated Cortex-M4, and what goes wrong.

A port that is not a device, a device with another model, a device that dies mid-run, garbage on
the line and a device reset: each ends in a clear report or error within its timeout, never a hang.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from conftest import ptbxl_student, require_m4_toolchain

from host.cli import main as host_main
from host.devices import emulate, simulate
from host.link import DeviceLink, LinkError
from host.parity import run_parity
from host.ptys import open_pty
from pipeline.data.dataset import load_dataset
from pipeline.signal.quality import QualityStatus

pytestmark = pytest.mark.slow


def _check(report: dict) -> None:
    assert report["int8_identical_fraction"] == 1.0 and report["int8_max_lsb_diff"] == 0
    assert report["raw_path_identical_fraction"] == 1.0 and report["raw_path_windows"] > 0
    assert report["frames_dropped"] == 0 and report["crc_errors"] == 0 and report["samples_lost"] == 0
    assert report["device"]["backend"] == "native" and report["failures"] == []
    # the streams' statuses as the device sent them, equal to the extended reference (quality rule, threshold)
    counts = report["status_counts"]
    assert set(counts) == {s.name for s in QualityStatus} and counts["OK"] > 0 and counts["FLAT"] > 0 and counts["NOISY"] > 0


def test_parity_against_simulate(demo_bundle, tmp_path):
    data, bundle = demo_bundle
    out = tmp_path / "parity.json"
    with simulate(bundle, link=tmp_path / "ttyECG") as dev:
        assert (tmp_path / "ttyECG").resolve() == Path(dev.port).resolve()
        code = host_main(["parity", "--port", str(tmp_path / "ttyECG"), "--bundle", str(bundle), "--data", str(data),
                          "--out", str(out), "--streams", "3", "--synthetic-seconds", "40", "--no-progress"])  # fmt: skip
    report = json.loads(out.read_text())
    assert code == 0, report["failures"]
    _check(report)
    assert report["windows"] == len(load_dataset(data).indices("test"))
    assert out.with_suffix(".png").stat().st_size > 10_000


def test_parity_against_emulate(demo_bundle, tmp_path):
    require_m4_toolchain()
    data, bundle = demo_bundle
    with emulate(bundle) as dev:
        report, failed = run_parity(dev.port, bundle, data, limit=6, streams=1, synthetic_seconds=20, timeout=30, progress=False)
    assert failed == []
    _check(report)
    assert report["device"]["time_unit"] == "INSTRUCTIONS" and report["max_inference_ms"] > 0


@pytest.mark.realdata
def test_parity_ptbxl_student_on_simulate(shared_data, tmp_path):
    """A PTB-XL-trained student through the serial link: test windows and PTB-XL records."""
    data, bundle = ptbxl_student(shared_data, tmp_path, parity_limit=8)
    with simulate(bundle) as dev:
        report, failed = run_parity(dev.port, bundle, data, streams=5, synthetic_seconds=30, progress=False)
    assert failed == []
    _check(report)


def test_a_port_that_is_not_a_device(demo_bundle, tmp_path):
    """A silent pty and one that prints text: both fail fast and say why."""
    data, bundle = demo_bundle
    master, slave, port = open_pty()
    try:
        t0 = time.monotonic()
        with pytest.raises(LinkError, match="no INFO within"):
            run_parity(port, bundle, data, limit=1, timeout=2, progress=False)
        assert time.monotonic() - t0 < 30

        stop = threading.Event()

        def chatter() -> None:
            while not stop.is_set():
                os.write(master, b"2048\r\n2051\r\n" * 50)
                time.sleep(0.01)

        thread = threading.Thread(target=chatter, daemon=True)
        thread.start()
        with pytest.raises(LinkError, match="without one valid frame|no INFO"):
            run_parity(port, bundle, data, limit=1, timeout=3, progress=False)
        stop.set()
        thread.join()
    finally:
        os.close(master)
        os.close(slave)
    with pytest.raises(LinkError, match="no such device"):
        run_parity(str(tmp_path / "nothing-here"), bundle, data, limit=1, progress=False)


def test_a_device_with_another_model(demo_bundle, tmp_path):
    data, bundle = demo_bundle
    other = tmp_path / "other"
    shutil.copytree(bundle, other)
    manifest = json.loads((other / "manifest.json").read_text())
    model = bytearray((other / "model_int8.tflite").read_bytes())
    model[-1] ^= 0xFF  # another model: its sha256 differs from the device's
    (other / "model_int8.tflite").write_bytes(bytes(model))
    import hashlib

    manifest["files"]["model_int8.tflite"] = hashlib.sha256(bytes(model)).hexdigest()
    (other / "manifest.json").write_text(json.dumps(manifest))
    with simulate(bundle) as dev:
        with pytest.raises(LinkError, match="runs model .* the bundle has"):
            run_parity(dev.port, other, data, limit=1, progress=False)


def test_device_dies_mid_run_and_resets_are_counted(demo_bundle):
    data, bundle = demo_bundle
    with simulate(bundle) as dev:
        with DeviceLink(dev.port) as link:
            link.get_info()
            link.poll(1.0)
            from export.protocol_defs import CommandCode

            link.command(CommandCode.RESET)
            link.poll(1.0)
            assert link.stats.resets == 1 and link.stats.samples_lost == 0 and link.stats.frames_dropped == 0
            dev.close()  # the cable is pulled: the pty's other end goes away
            t0 = time.monotonic()
            with pytest.raises(LinkError):
                link.get_info(timeout=3)
                link.poll(1.0)
            assert time.monotonic() - t0 < 10


def test_garbage_on_the_line_is_counted_and_survived(demo_bundle):
    """Bytes injected between the device's frames (a noisy cable): the reader drops and counts them."""
    data, bundle = demo_bundle
    with simulate(bundle) as dev:
        with DeviceLink(dev.port) as link:
            link.get_info()
            link.poll(0.5)
            before = link.stats.frames
            # inject garbage into the host's read path, as a line glitch would
            link.reader.feed(bytes([0xA5, 0x5A, 0x01, 0x02, 0xFF, 0xFF, 0x00]) + os.urandom(300))
            link.poll(1.0)
            assert link.stats.dropped_bytes >= 300 and link.stats.frames > before
            assert link.get_info().model_sha256  # still answering
