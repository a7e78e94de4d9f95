"""`ecg-host demo` (what `make demo` runs): the whole chain to the virtual devices, with a log fit for a file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import require_m4_toolchain

from host.cli import main as host_main
from pipeline.util.console import NOISE_LINES, without_noise_lines

XNNPACK = NOISE_LINES[0]
# glog-style lines of TensorFlow/absl/torch C++ logging: "I0000 00:00:...", "W1125 01:52:15.841000 ..."
CPP_LOG_LINE = re.compile(r"^[IWE]\d{4} \d\d:\d\d:\d\d\.\d+ ", re.MULTILINE)


def _check_device(d: dict) -> None:
    assert d["windows_identical_fraction"] == 1.0 and d["streams_identical_fraction"] == 1.0
    assert d["windows"] > 0 and d["raw_path_windows"] > 0 and d["failures"] == []
    assert d["frames_dropped"] == 0 and d["crc_errors"] == 0 and Path(d["parity_png"]).stat().st_size > 10_000


def _reuse(demo_bundle: tuple[Path, Path], out: Path) -> Path:
    """`out` with the session's demo run (data set, training run, bundle) linked in, for --skip-train."""
    src = demo_bundle[1].parent
    out.mkdir()
    for name in ("dataset", "train", "bundle"):
        (out / name).symlink_to(src / name)
    return out


@pytest.mark.slow
def test_demo_whole_chain_with_a_quiet_log(tmp_path):
    """Data -> train -> bundle -> firmware -> simulate -> parity, piped to a file as a CI log would be.

    4 epochs as the session's demo_bundle: after 3 the tiny model's logits nearly tie and int8 top-1
    falls below the 0.99 tolerance, which the demo rightly reports with exit 1."""
    out, log = tmp_path / "demo", tmp_path / "demo.log"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # console.py must set it itself
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    cmd = [str(Path(sys.executable).parent / "ecg-host"), "demo", "--out-dir", str(out), "--epochs", "4", "--patients-per-class", "6", "--no-emulate"]
    with open(log, "wb") as f:
        code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, timeout=600).returncode
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert text.startswith("Research tool, not a medical device")
    assert "\r" not in text and "XNNPACK" not in text and not CPP_LOG_LINE.search(text), text
    assert "torchvision" not in text and "absl" not in text
    report = json.loads((out / "report.json").read_text())
    for key in ("float_test_balanced_accuracy", "float_test_recall", "int8_top1_agreement", "tflm_identical_fraction",
                "flatbuffer_bytes", "arena_bytes", "bundle", "firmware_sources", "report", "wall_seconds"):  # fmt: skip
        assert key in report, key
    assert set(report["float_test_recall"]) == {"NORMAL", "MI", "ARRHYTHMIA"} and report["parity_failures"] == []
    assert list(report["devices"]) == ["simulate"] and report["emulate_skipped"] == "--no-emulate"
    _check_device(report["devices"]["simulate"])
    assert (Path(report["firmware_sources"]) / "ecg_config.h").is_file()
    assert f"bundle: {out / 'bundle'}" in text and f"generated firmware sources: {out / 'firmware'}" in text
    assert "emulate skipped: --no-emulate" in text


@pytest.mark.slow
def test_demo_on_the_emulated_cortex_m4(demo_bundle, tmp_path, capsys):
    """The device part (--skip-train) on the session's bundle, with the Cortex-M4 image under QEMU."""
    require_m4_toolchain()
    out = _reuse(demo_bundle, tmp_path / "demo")
    code = host_main(["demo", "--out-dir", str(out), "--skip-train", "--no-progress"])
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert code == 0, report["parity_failures"]
    assert list(report["devices"]) == ["simulate", "emulate"] and report["emulate_skipped"] is None
    emu = report["devices"]["emulate"]
    _check_device(emu)
    _check_device(report["devices"]["simulate"])
    assert emu["time_unit"] == "INSTRUCTIONS" and report["devices"]["simulate"]["time_unit"] == "MICROSECONDS"
    assert 1_000_000 < emu["instructions_per_inference"] < 100_000_000
    assert emu["ms_at_64mhz"] == pytest.approx(emu["instructions_per_inference"] / 64e3)
    assert 0 < emu["ram_bytes"] < emu["flash_bytes"] and emu["program"].endswith(".elf")
    assert f"flash {emu['flash_bytes']:,} B, RAM {emu['ram_bytes']:,} B" in printed
    assert f"{emu['instructions_per_inference']:,} instructions per inference" in printed


def test_skip_train_needs_an_earlier_run(tmp_path, capsys):
    code = host_main(["demo", "--out-dir", str(tmp_path / "empty"), "--skip-train", "--no-emulate"])
    assert code == 2
    assert f"{tmp_path / 'empty' / 'train' / 'eval' / 'metrics.json'}: missing" in capsys.readouterr().err


# --------------------------------------------------------------------------- console noise


def test_noise_lines_are_dropped_from_file_descriptor_2(capfd):
    with without_noise_lines():
        os.write(2, XNNPACK + b"\nkept\n")  # as C++ code writes: straight to the descriptor
        os.write(2, b"INFO: Created"), os.write(2, b" something else\r\n")
        os.write(2, XNNPACK + b"\r\n")
    assert capfd.readouterr().err == "kept\nINFO: Created something else\r\n"


def test_litert_set_up_is_quiet(demo_bundle, capfd):
    from export.runtimes import run_litert

    data, bundle = demo_bundle
    run_litert(bundle / "model_int8.tflite", np.zeros((1, 1, 2500), np.float32), reference_kernels=False)
    assert "XNNPACK" not in capfd.readouterr().err
