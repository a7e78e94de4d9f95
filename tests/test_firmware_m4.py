"""The Cortex-M4F platform (firmware/platform/m4) under QEMU mps2-an386, through export.qemu.

Builds firmware/harness/m4_selftest.c with the project's Makefile and checks what the harnesses rely
on: arguments, binary-safe semihosting files, exit status, the instruction counter, sizes, the stack.
Skipped when the Arm toolchain or QEMU is missing; under CI=true that is a failure instead.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import require_m4_toolchain

from export import qemu

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"
LOOP = 500_000  # iterations of the 2-instruction calibrated loop




def _make(target: str, build: Path, gen: Path, program: str, *extra: str) -> Path:
    out = build / program
    proc = subprocess.run(["make", "-s", "-C", str(FIRMWARE), f"TARGET={target}", f"GEN={gen}", f"BUILD={build}", *extra, str(out)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, f"build of {out.name} ({target}) failed:\n{proc.stdout}\n{proc.stderr}"
    return out


@pytest.fixture(scope="module")
def elf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_m4_toolchain()
    gen = tmp_path_factory.mktemp("gen")  # empty: the self-test does not use the core
    return _make("cortex-m4", tmp_path_factory.mktemp("m4"), gen, "m4_selftest.elf")


def _values(console: str, prefix: str) -> dict[str, int]:
    """`key=value` integers of the console line that starts with `prefix`."""
    line = next((ln for ln in console.splitlines() if ln.startswith(prefix)), None)
    assert line is not None, f"no '{prefix}' line in:\n{console}"
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def _echoed(console: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^arg \d+ \[(.*)\]$", console, re.M)]


def test_arguments_round_trip(elf: Path, tmp_path: Path) -> None:
    args = ["plain", "two words", 'say "hi"', "back\\slash\\", "a,b,,c", "", "  lead", "ünï", "tab\there"]
    res = qemu.run_elf(elf, args, cwd=tmp_path)
    assert res.returncode == 0, res.console
    assert _echoed(res.console) == ["m4_selftest", *args]


def test_command_line_limits(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at most"):
        qemu.qemu_command(tmp_path / "x.elf", ["a"] * qemu.MAX_ARGS)
    with pytest.raises(ValueError, match="at most"):
        qemu.qemu_command(tmp_path / "x.elf", ["y" * qemu.CMDLINE_BYTES])
    with pytest.raises(ValueError, match="icount_shift"):
        qemu.qemu_command(tmp_path / "x.elf", [], icount_shift=11)


@pytest.mark.parametrize("size", [100_000, 99_000, 0])  # 99 000: a whole number of 3000-byte blocks
def test_file_round_trip(elf: Path, tmp_path: Path, size: int) -> None:
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    if size:
        data = bytes(range(256)) + b"\r\n\x1a\x00" + data[260:]  # every byte value, text-mode traps
    (tmp_path / "in.bin").write_bytes(data)
    res = qemu.run_elf(elf, ["--copy", "in.bin", "out.bin"], cwd=tmp_path)
    assert res.returncode == 0, res.console
    assert _values(res.console, "copy")["bytes"] == size
    assert (tmp_path / "out.bin").read_bytes() == data


def test_floating_point(elf: Path, tmp_path: Path) -> None:
    """The reset handler enables the FPU (hard-float code faults otherwise)."""
    res = qemu.run_elf(elf, ["--sqrt", "2"], cwd=tmp_path)
    assert res.returncode == 0 and abs(_values(res.console, "sqrt")["micro"] - 1_414_214) <= 1
    code = subprocess.run(["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True, text=True, check=True).stdout
    assert "vsqrt.f32" in code


def test_missing_input_fails(elf: Path, tmp_path: Path) -> None:
    res = qemu.run_elf(elf, ["--copy", "absent.bin", "out.bin"], cwd=tmp_path)
    assert res.returncode == 2 and "cannot open input" in res.console


@pytest.mark.parametrize(("status", "expected"), [(0, 0), (1, 1), (7, 7), (255, 255), (256, 255), (-1, 255)])
def test_exit_status_propagates(elf: Path, tmp_path: Path, status: int, expected: int) -> None:
    res = qemu.run_elf(elf, ["--exit", str(status)], cwd=tmp_path)
    assert res.returncode == expected, res.console


def test_instruction_count_shift0(elf: Path, tmp_path: Path) -> None:
    """At shift 0 a tick is 40 instructions: the loop reads back within 1% (+- one tick)."""
    res = qemu.run_elf(elf, ["--loop", str(LOOP)], cwd=tmp_path, icount_shift=0)
    v = _values(res.console, "loop")
    expected = 2 * LOOP
    assert v["expected"] == expected and v["shift"] == 0
    assert abs(v["measured"] - expected) <= 0.01 * expected + qemu.NS_PER_TICK
    assert v["measured"] >= expected - qemu.NS_PER_TICK
    assert abs(qemu.instructions_from_ticks(v["ticks"], 0) - expected) <= 0.01 * expected


@pytest.mark.parametrize("shift", [3, 5])
def test_instruction_count_exact(elf: Path, tmp_path: Path, shift: int) -> None:
    """With a finer tick the count is exact: the loop minus two back-to-back reads is 2N, give or
    take the loop's set-up, tick rounding and at most one SysTick wrap handler."""
    res = qemu.run_elf(elf, ["--loop", str(LOOP)], cwd=tmp_path, icount_shift=shift)
    v = _values(res.console, "loop")
    assert v["shift"] == shift  # the firmware found the -icount shift by itself
    assert abs(v["measured"] - v["overhead"] - 2 * LOOP) <= 16, v
    assert abs(qemu.instructions_from_ticks(v["ticks"], shift) - 2 * LOOP) <= 0.01 * 2 * LOOP


def test_elf_size(elf: Path) -> None:
    s = qemu.elf_size(elf)
    assert s["stack"] == 4096
    assert 1000 < s["text"] < 64 * 1024 and s["rodata"] < 16 * 1024 and s["data"] < 1024
    assert s["bss"] >= 3000 + 1024  # the self-test's copy buffer and the command line
    assert s["flash_bytes"] == s["text"] + s["rodata"] + s["data"]
    assert s["ram_bytes"] == s["data"] + s["bss"] + s["stack"]
    berkeley = subprocess.run([qemu.SIZE, "-B", str(elf)], capture_output=True, text=True, check=True).stdout
    text, data, bss = (int(x) for x in berkeley.splitlines()[1].split()[:3])
    assert bss == s["bss"] + s["stack"]  # size reports the stack with .bss
    assert text + data == s["flash_bytes"]


def test_stack_high_water(elf: Path, tmp_path: Path) -> None:
    base = _values(qemu.run_elf(elf, [], cwd=tmp_path).console, "stack used")
    deep = _values(qemu.run_elf(elf, ["--stack", "2048"], cwd=tmp_path).console, "stack used")
    assert base["size"] == deep["size"] == 4096
    assert 0 < base["used"] < 2048 < deep["used"] < 4096
    assert deep["used"] >= base["used"] + 2048


def test_stack_size_is_configurable(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    require_m4_toolchain()
    build, gen = tmp_path_factory.mktemp("m4big"), tmp_path_factory.mktemp("gen")
    big = _make("cortex-m4", build, gen, "m4_selftest.elf", "M4_STACK_BYTES=8192")
    assert qemu.elf_size(big)["stack"] == 8192
    res = qemu.run_elf(big, ["--stack", "6000"], cwd=tmp_path)
    v = _values(res.console, "stack used")
    assert res.returncode == 0 and v["size"] == 8192 and 6000 < v["used"] < 8192


def test_stack_overflow_is_a_crash(elf: Path, tmp_path: Path) -> None:
    with pytest.raises(qemu.QemuCrash, match="m4_selftest.elf"):
        qemu.run_elf(elf, ["--stack", "8192"], cwd=tmp_path)


def test_fault_is_a_crash(elf: Path, tmp_path: Path) -> None:
    with pytest.raises(qemu.QemuCrash, match=r"(?s)m4_selftest\.elf.*m4 fatal: exception 3 "):
        qemu.run_elf(elf, ["--fault"], cwd=tmp_path)


def test_timeout_names_the_program(elf: Path, tmp_path: Path) -> None:
    with pytest.raises(qemu.QemuTimeout, match=r"m4_selftest\.elf did not finish within 2 s"):
        qemu.run_elf(elf, ["--hang"], cwd=tmp_path, timeout=2)


@pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler")
def test_selftest_on_the_host(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    exe = _make("host", tmp_path_factory.mktemp("host"), tmp_path_factory.mktemp("gen"), "m4_selftest")
    (tmp_path / "in.bin").write_bytes(bytes(range(256)) * 40)
    proc = subprocess.run([str(exe), "x y", "--copy", "in.bin", "out.bin", "--loop", "1000", "--exit", "5"],
                          cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 5, proc.stderr
    assert _echoed(proc.stderr)[1:] == ["x y", "--copy", "in.bin", "out.bin", "--loop", "1000", "--exit", "5"]
    assert "loop counter unavailable" in proc.stderr and "stack used" not in proc.stderr
    sqrt = subprocess.run([str(exe), "--sqrt", "2"], capture_output=True, text=True).stderr
    assert abs(_values(sqrt, "sqrt")["micro"] - 1_414_214) <= 1
    assert (tmp_path / "out.bin").read_bytes() == bytes(range(256)) * 40


def test_plain_make_of_the_device_image_fits(demo_bundle: tuple[Path, Path], tmp_path: Path) -> None:
    """A plain `make` of the complete firmware image sizes the interpreter to the model and fits 48 KiB RAM / 96 KiB flash."""
    require_m4_toolchain()
    from export.firmware import generate_firmware

    gen = tmp_path / "gen"
    generate_firmware(demo_bundle[1], gen)
    header = (gen / "ecg_native_model.h").read_text()
    ops, tensors = (int(re.search(rf"#define ECG_NATIVE_{k} (\d+)", header).group(1)) for k in ("OPS", "TENSORS"))
    build = tmp_path / "build"
    dry = subprocess.run(["make", "-n", "-C", str(FIRMWARE), "TARGET=cortex-m4", f"GEN={gen}", f"BUILD={build}", str(build / "device_firmware.elf")],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    compiles = [ln for ln in dry.splitlines() if " -c " in ln]
    assert compiles and all(f"-DNN_MAX_OPS={ops} " in ln and f"-DNN_MAX_TENSORS={tensors} " in ln for ln in compiles)
    s = qemu.elf_size(_make("cortex-m4", build, gen, "device_firmware.elf"))
    assert s["ram_bytes"] <= 48 * 1024 and s["flash_bytes"] <= 96 * 1024, s
