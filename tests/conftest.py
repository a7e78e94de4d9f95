"""Shared fixtures: the one way tests reach ../shared/data, the demo bundle and the device build cache
every pytest-xdist worker shares, a small PTB-XL student, and small WFDB writers."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import wfdb

from pipeline.util.threads import prepare_openmp

prepare_openmp()  # before a test module loads torch: the two pytest-xdist workers' OpenMP threads sleep while they wait

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


def write_records_file(directory: Path, names: list[str]) -> None:
    (directory / "RECORDS").write_text("".join(f"{n}\n" for n in names))


def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's base temporary directory, the same for every pytest-xdist worker."""
    root = tmp_path_factory.getbasetemp()
    return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root


@pytest.fixture(scope="session")
def demo_bundle(tmp_path_factory) -> tuple[Path, Path]:
    """(data set, bundle) of a small synthetic demo run, built once and shared by pytest-xdist workers."""
    from filelock import FileLock

    root = shared_root(tmp_path_factory)
    out = root / "demo-bundle"
    with FileLock(str(root / "demo-bundle.lock")):
        if not (out / "bundle" / "manifest.json").exists():
            from export.cli import main as export_main

            code = export_main(["demo", "--out-dir", str(out), "--epochs", "4", "--patients-per-class", "6", "--no-progress"])
            assert code == 0, "the demo chain failed"
    return out / "dataset", out / "bundle"


@pytest.fixture(scope="session")
def device_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One build cache of `simulate`/`emulate` for every worker (host/devices.py locks it)."""
    return shared_root(tmp_path_factory) / "device-cache"


def ptbxl_student(shared_data: Path, root: Path, parity_limit: int) -> tuple[Path, Path]:
    """(data set, bundle) of a small PTB-XL-trained student under `root`: 300 records, 2 epochs, any top-1."""
    from export.cli import main as export_main
    from pipeline.cli import main as pipeline_main

    data, run, bundle = root / "ptbxl", root / "run", root / "bundle"
    assert pipeline_main(["prepare", "ptbxl", "--ptbxl-dir", str(shared_data / "ptbxl"), "--max-records", "300", "--out", str(data), "--no-progress"]) == 0
    assert pipeline_main(["train", "--data", str(data), "--out-dir", str(run), "--model", "mcu", "--epochs", "2", "--patience", "0", "--no-progress"]) == 0
    assert export_main(["bundle", "--checkpoint", str(run / "checkpoint.pt"), "--data", str(data), "--out", str(bundle),
                        "--calib-size", "40", "--parity-limit", str(parity_limit), "--min-int8-top1", "0"]) in (0, 1)  # fmt: skip
    return data, bundle


def require_qemu_toolchain(target: str = "cortex-m4") -> None:
    """A QEMU target's compiler, libc and emulator (export/qemu.py TARGETS): installed with apt-get when
    missing and running as root; a skip naming the apt-get command when that cannot be done, and a
    failure under CI=true."""
    from export import qemu

    if qemu.qemu_available(target):
        return
    try:
        qemu.ensure_toolchain(target)
    except Exception as exc:  # noqa: BLE001 - any failure to install means no toolchain
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the {target} toolchain is required under CI=true: {exc}")
        pytest.skip(f"{target} toolchain missing and not installable here ({exc}); run: sudo {qemu.TARGETS[target].apt_command}")


def require_m4_toolchain() -> None:
    require_qemu_toolchain("cortex-m4")


@pytest.fixture
def m4_toolchain() -> None:
    require_m4_toolchain()
