"""Shared fixtures: the one way tests reach ../shared/data, and small WFDB writers."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import wfdb

REPO = Path(__file__).resolve().parents[1]
SHARED_ENV = "ECG_EDGE_SHARED_DATA"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (or $ECG_EDGE_SHARED_DATA); missing is a skip locally and a failure under CI=true."""
    root = Path(os.environ.get(SHARED_ENV, REPO.parent / "shared" / "data"))
    if not (root / "mitdb").is_dir() or not (root / "ptbxl").is_dir():
        msg = f"real PhysioNet copies not found at {root} (set {SHARED_ENV})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return root


def write_record(
    directory: Path,
    name: str,
    signal: np.ndarray,
    fs: float,
    leads: list[str],
    comments: list[str] | None = None,
) -> Path:
    """Write a WFDB record (format 16, mV) from `(samples, leads)` and return its path without extension."""
    directory.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(
        name,
        fs=fs,
        units=["mV"] * len(leads),
        sig_name=leads,
        p_signal=np.asarray(signal, dtype=np.float64),
        fmt=["16"] * len(leads),
        adc_gain=[200.0] * len(leads),
        baseline=[0] * len(leads),
        comments=comments or [],
        write_dir=str(directory),
    )
    return directory / name


def ecg_like(seconds: float, fs: float, hr: float = 72.0, seed: int = 0, leads: int = 1) -> np.ndarray:
    """A crude spiky periodic signal in mV, `(samples, leads)`, enough for the pipeline's plumbing."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * fs)) / fs
    phase = (t * hr / 60.0) % 1.0
    beat = np.exp(-((phase - 0.3) ** 2) / 2e-4) - 0.2 * np.exp(-((phase - 0.6) ** 2) / 4e-3)
    x = beat[:, None] * (1 + 0.1 * np.arange(leads))[None, :]
    return x + 0.02 * rng.standard_normal(x.shape)


def lines_until_ready(proc: subprocess.Popen, timeout: float) -> list[str]:
    """stdout lines of a `simulate` process up to its "serial port ready" line (or EOF / timeout)."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line:
            break
        lines.append(line)
        if line.startswith("serial port ready"):
            break
    return lines


def write_records_file(directory: Path, names: list[str]) -> None:
    (directory / "RECORDS").write_text("".join(f"{n}\n" for n in names))


@pytest.fixture(scope="session")
def demo_bundle(tmp_path_factory) -> tuple[Path, Path]:
    """(data set, bundle) of a small synthetic demo run, built once and shared by pytest-xdist workers."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    out = root / "demo-bundle"
    with FileLock(str(root / "demo-bundle.lock")):
        if not (out / "bundle" / "manifest.json").exists():
            from export.cli import main as export_main

            code = export_main(["demo", "--out-dir", str(out), "--epochs", "4", "--patients-per-class", "6", "--no-progress"])
            assert code == 0, "the demo chain failed"
    return out / "dataset", out / "bundle"


def require_m4_toolchain() -> None:
    """arm-none-eabi-gcc, newlib and qemu-system-arm: installed when missing under CI=true as root
    (a failure if that cannot be done), a skip with the apt-get command elsewhere."""
    from export import qemu

    if qemu.qemu_available():
        return
    if os.environ.get("CI", "").lower() == "true":
        try:
            qemu.ensure_toolchain()
        except Exception as exc:  # noqa: BLE001 - any failure to install is the CI failure
            pytest.fail(f"the Cortex-M4 toolchain is required under CI=true: {exc}")
        return
    pytest.skip(f"Cortex-M4 toolchain missing ({', '.join(qemu.missing_tools())}): {qemu.APT_COMMAND}")


@pytest.fixture
def m4_toolchain() -> None:
    require_m4_toolchain()
