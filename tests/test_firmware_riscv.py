"""The RV32IMC platform (firmware/platform/rv32) under `qemu-system-riscv32 -machine virt`, through export.qemu.

The self-test (firmware/harness/m4_selftest.c) checks what the harnesses rely on: arguments, binary-safe
semihosting files, exit status, faults, the stack guard, soft float and the minstret instruction
counter; then every harness program builds, the device program runs its timer and UART, and
`crosscheck --target riscv32` holds every identity of the Cortex-M4's. The toolchain is installed with
apt-get when missing (as root); the tests skip, with the command to run, only where that cannot be
done, and under CI=true they fail instead.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import require_qemu_toolchain
from test_firmware_core import _check

from export import qemu

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"
TARGET = "riscv32"
RV32 = qemu.TARGETS[TARGET]


def require_rv32_toolchain() -> None:
    require_qemu_toolchain(TARGET)


def _make(build: Path, gen: Path, *programs: str, extra: tuple[str, ...] = ()) -> list[Path]:
    outs = [build / f"{p}.elf" for p in programs]
    proc = subprocess.run(["make", "-s", "-C", str(FIRMWARE), f"TARGET={TARGET}", f"GEN={gen}", f"BUILD={build}", *extra, *map(str, outs)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, f"riscv32 build of {programs} failed:\n{proc.stdout}\n{proc.stderr}"
    return outs


@pytest.fixture(scope="module")
def elf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_rv32_toolchain()
    return _make(tmp_path_factory.mktemp("rv32"), tmp_path_factory.mktemp("gen"), "m4_selftest")[0]


def _values(console: str, prefix: str) -> dict[str, int]:
    """`key=value` integers of the console line that starts with `prefix`."""
    line = next((ln for ln in console.splitlines() if ln.startswith(prefix)), None)
    assert line is not None, f"no '{prefix}' line in:\n{console}"
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def test_arguments_files_and_soft_float(elf: Path, tmp_path: Path) -> None:
    args = ["plain", "two words", 'say "hi"', "back\\slash\\", "a,b,,c", "", "ünï"]
    data = bytes(range(256)) + b"\r\n\x1a\x00" + np.random.default_rng(1).integers(0, 256, 99_000, dtype=np.uint8).tobytes()
    (tmp_path / "in.bin").write_bytes(data)
    res = qemu.run_elf(elf, [*args, "--copy", "in.bin", "out.bin", "--sqrt", "2"], cwd=tmp_path)
    assert res.returncode == 0, res.console
    assert [m.group(1) for m in re.finditer(r"^arg \d+ \[(.*)\]$", res.console, re.M)][:8] == ["m4_selftest", *args]
    assert _values(res.console, "copy")["bytes"] == len(data) and (tmp_path / "out.bin").read_bytes() == data
    assert abs(_values(res.console, "sqrt")["micro"] - 1_414_214) <= 1
    assert res.command[res.command.index("-machine") + 1] == "virt" and "rv32,a=false,f=false,d=false" in res.command


def test_no_floating_point_instructions(elf: Path) -> None:
    """Soft float (ilp32): no F/D instruction anywhere in the image (the emulated CPU has none either)."""
    code = subprocess.run([RV32.objdump, "-d", str(elf)], capture_output=True, text=True, check=True).stdout
    fp = re.findall(r"^\s*[0-9a-f]+:\s+[0-9a-f]+\s+(f[a-z]*\.[sdq]|fl[wd]|fs[wd]|fmv\.[a-z.]+|frcsr|fscsr)\b", code, re.M)
    assert "__addsf3" in code or "__mulsf3" in code, "no soft-float routine linked: is the float code gone?"
    assert fp == []


@pytest.mark.parametrize(("status", "expected"), [(0, 0), (7, 7), (255, 255), (256, 255), (-1, 255)])
def test_exit_status_propagates(elf: Path, tmp_path: Path, status: int, expected: int) -> None:
    assert qemu.run_elf(elf, ["--exit", str(status)], cwd=tmp_path).returncode == expected


def test_missing_input_fails(elf: Path, tmp_path: Path) -> None:
    res = qemu.run_elf(elf, ["--copy", "absent.bin", "out.bin"], cwd=tmp_path)
    assert res.returncode == 2 and "cannot open input" in res.console


def test_fault_is_a_crash(elf: Path, tmp_path: Path) -> None:
    """An illegal instruction: the trap handler's marker line (mcause 2) and the fault status."""
    with pytest.raises(qemu.QemuCrash, match=r"(?s)m4_selftest\.elf crashed under QEMU \(exit 250\).*rv32 fatal: exception 2 mepc=0x8"):
        qemu.run_elf(elf, ["--fault"], cwd=tmp_path)


def test_stack_overflow_hits_the_guard(elf: Path, tmp_path: Path) -> None:
    """Past the 4 KiB stack the locked PMP guard faults at once (a store access fault, mcause 7)."""
    with pytest.raises(qemu.QemuCrash, match=r"rv32 fatal: exception 7 .* \(stack overflow: raise RV32_STACK_BYTES\)"):
        qemu.run_elf(elf, ["--stack", "8192"], cwd=tmp_path)
    base = _values(qemu.run_elf(elf, [], cwd=tmp_path).console, "stack used")
    deep = _values(qemu.run_elf(elf, ["--stack", "2048"], cwd=tmp_path).console, "stack used")
    assert base["size"] == deep["size"] == 4096 and 0 < base["used"] < 2048 < deep["used"] < 4096


def test_a_fault_without_semihosting_still_ends_qemu(elf: Path, tmp_path: Path) -> None:
    """Without semihosting the first console write traps again: the SiFive test device ends QEMU with 250."""
    cmd = qemu.qemu_command(elf, [], target=TARGET)
    i = cmd.index("-semihosting-config")
    proc = subprocess.run(cmd[:i] + cmd[i + 2 :], cwd=tmp_path, capture_output=True, timeout=60)
    assert proc.returncode == qemu.FAULT_STATUS


def test_timeout_names_the_program(elf: Path, tmp_path: Path) -> None:
    with pytest.raises(qemu.QemuTimeout, match=r"m4_selftest\.elf did not finish within 2 s"):
        qemu.run_elf(elf, ["--hang"], cwd=tmp_path, timeout=2)


@pytest.mark.parametrize("shift", [0, 3])
def test_instruction_count_is_exact(elf: Path, tmp_path: Path, shift: int) -> None:
    """minstret under -icount: loops of 2N instructions read back exactly (the same fixed set-up for every N),
    the firmware finds the shift by itself, and instructions_from_ticks converts the raw count."""
    loops = (1, 1000, 500_000)
    args = [a for n in loops for a in ("--loop", str(n))]
    console = qemu.run_elf(elf, args, cwd=tmp_path, icount_shift=shift).console
    lines = [{k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", ln)} for ln in console.splitlines() if ln.startswith("loop ")]
    assert [v["expected"] for v in lines] == [2 * n for n in loops], console
    setup = {v["measured"] - v["overhead"] - v["expected"] for v in lines}
    assert len(setup) == 1 and 0 <= setup.pop() <= 4, lines  # the loop's own set-up, identical for every N
    assert all(v["shift"] == shift for v in lines)
    # the raw count spans the two reads and half of the log line too: within 1% of a long loop
    raw = qemu.instructions_from_ticks(lines[-1]["ticks"], shift, TARGET)
    assert lines[-1]["expected"] < raw <= 1.01 * lines[-1]["expected"], lines[-1]


def test_elf_size(elf: Path) -> None:
    s = qemu.elf_size(elf)
    assert s["stack"] == 4096 and 1000 < s["text"] < 64 * 1024 and s["data"] < 1024
    assert s["bss"] >= 3000 + 1024  # the self-test's copy buffer and the command line
    assert s["flash_bytes"] == s["text"] + s["rodata"] + s["data"]
    assert s["ram_bytes"] == s["data"] + s["bss"] + s["stack"]


def _device_run(elf: Path, samples: Path, seconds: int) -> tuple[list, str]:
    """device_firmware fed by `samples` for `seconds` of virtual time, UART0 to a file: its decoded frames and console."""
    from host.protocol import Reader, decode_message

    cmd = qemu.qemu_command(elf, ["--samples", samples.name, "--seconds", str(seconds)], target=TARGET)
    cmd[cmd.index("-icount") + 1] = "shift=0,sleep=off"  # idle virtual time runs ahead of the host's
    cmd[cmd.index("-serial") + 1] = "file:uart.bin"
    proc = subprocess.run(cmd, cwd=samples.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout
    return [decode_message(f) for f in Reader().feed((samples.parent / "uart.bin").read_bytes())], proc.stdout


def test_every_harness_program_and_the_device(demo_bundle: tuple[Path, Path], tmp_path: Path) -> None:
    """Every harness program builds (-Werror, no heap); the device program's timer and UART carry the same
    results as device_image on the same samples, timed in instructions."""
    require_rv32_toolchain()
    from export.bundle import read_manifest
    from export.crosscheck import ADC, record_stream, result_dtype, write_samples
    from export.firmware import generate_firmware
    from host.protocol import Result
    from pipeline.data.dataset import load_dataset

    data, bundle = demo_bundle
    gen = tmp_path / "gen"
    generate_firmware(bundle, gen)
    programs = sorted(p.stem for p in (FIRMWARE / "harness").glob("*.c"))
    assert {"nn_runner", "stream_runner", "device_image", "proto_tool", "device_firmware"} <= set(programs)
    elfs = dict(zip(programs, _make(tmp_path / "build", gen, *programs)))
    size = qemu.elf_size(elfs["device_firmware"])
    assert size["stack"] == 3072 and size["ram_bytes"] <= 64 * 1024, size

    ds = load_dataset(data)
    stream = record_stream(ds.record_path(ds.record[ds.indices("test")][0]), read_manifest(bundle)["leads"], ds.spec)
    run = tmp_path / "run"
    run.mkdir()
    write_samples(stream, run / "samples.bin")
    seconds = int(stream.raw.size / ds.spec.fs)
    messages, console = _device_run(elfs["device_firmware"], run / "samples.bin", seconds)
    counters = _values(console, "device: counters")
    assert counters["lost"] == 0 and counters["samples"] == seconds * ds.spec.fs, console
    results = [m for m in messages if isinstance(m, Result)]
    assert len(results) == counters["windows"] > 0

    res = qemu.run_elf(elfs["device_image"], ["samples.bin", "results.bin", str(ADC.max_count), str(ds.spec.device_hop)], cwd=run)
    assert res.returncode == 0, res.console
    image = np.fromfile(run / "results.bin", dtype=result_dtype(len(ds.label_names)))
    assert len(image) >= len(results)
    classified = 0
    for r, ref in zip(results, image):
        assert (r.window_index, r.first_sample, int(r.status), r.label) == (int(ref["index"]), int(ref["first"]), int(ref["status"]), int(ref["label"]))
        if r.label >= 0:
            classified += 1
            assert r.logits == tuple(int(v) for v in ref["logits"][: len(r.logits)])
            assert r.time_unit.name == "INSTRUCTIONS" and r.time > 1_000_000
    assert classified > 0


def test_the_device_answers_over_its_uart(demo_bundle: tuple[Path, Path], tmp_path: Path) -> None:
    """The receive interrupt (PLIC, UART0) on a pseudo-terminal: the host's GET_INFO gets the bundle's INFO."""
    require_rv32_toolchain()
    from export.firmware import generate_firmware
    from host.devices import query_info

    data, bundle = demo_bundle
    generate_firmware(bundle, tmp_path / "gen")
    elf = _make(tmp_path / "build", tmp_path / "gen", "device_firmware")[0]
    cmd = qemu.qemu_command(elf, [], target=TARGET)
    cmd[cmd.index("-serial") : cmd.index("-serial") + 2] = ["-chardev", "pty,id=uart0", "-serial", "chardev:uart0"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        pty = re.search(r"char device redirected to (\S+) \(label uart0\)", line)
        assert pty, line
        info = query_info(pty.group(1), timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert info.model_sha256 == hashlib.sha256((bundle / "model_int8.tflite").read_bytes()).digest()
    assert info.time_unit.name == "INSTRUCTIONS"


def test_soft_float_gives_the_host_bits(demo_bundle: tuple[Path, Path], tmp_path: Path) -> None:
    """stream_runner on RV32 soft float and on the host: the same bytes (z-scores, int8 inputs, results, beats)."""
    require_rv32_toolchain()
    from export.crosscheck import ADC, make, quality_stream, synthetic_streams, write_samples
    from export.firmware import generate_firmware
    from pipeline.data.dataset import load_dataset

    data, bundle = demo_bundle
    spec = load_dataset(data).spec
    generate_firmware(bundle, tmp_path / "gen")
    make("host", tmp_path / "gen", tmp_path / "host", ["stream_runner"])
    rv = _make(tmp_path / "rv", tmp_path / "gen", "stream_runner")[0]
    for stream in [synthetic_streams(spec, 30)[0], quality_stream(spec, 60)]:
        outs = {}
        for name in ("host", "rv"):
            run = tmp_path / f"{name}-{stream.name}"
            run.mkdir()
            write_samples(stream, run / "samples.bin")
            args = ["-n", "-b", "beats.bin", "samples.bin", "windows.bin", str(ADC.max_count), str(spec.device_hop)]
            if name == "host":
                subprocess.run([str(tmp_path / "host" / "stream_runner"), *args], cwd=run, check=True, capture_output=True)
            else:
                assert qemu.run_elf(rv, args, cwd=run).returncode == 0
            outs[name] = ((run / "windows.bin").read_bytes(), (run / "beats.bin").read_bytes())
        assert len(outs["rv"][0]) > 0 and outs["rv"] == outs["host"], stream.name


def test_crosscheck_riscv32(demo_bundle: tuple[Path, Path]) -> None:
    """Every identity of the Cortex-M4 crosscheck, the portable kernels against the optimized ones, and the cost keys."""
    require_rv32_toolchain()
    from export.crosscheck import CLOCKS_HZ, crosscheck

    data, bundle = demo_bundle
    report, failed = crosscheck(bundle, data, TARGET, limit=6, raw_path_windows=4, synthetic_seconds=40, progress=False)
    assert failed == []
    _check(report, TARGET)
    assert report["portable_identical"] is True and report["rhythm_identical_fraction"] == 1.0
    assert 0 < report["ram_bytes"] <= 64 * 1024 and 0 < report["flash_bytes"] <= 128 * 1024
    assert report["image_sections"]["stack"] == 4096
    per_inf = report["instructions_per_inference"]
    assert per_inf > report["macs"] and report["instructions_per_mac"] == pytest.approx(per_inf / report["macs"], rel=1e-6)
    assert report["instructions_per_mac_portable"] > 1
    for board, hz in CLOCKS_HZ.items():
        assert report[f"inference_ms_{board}"] == pytest.approx(1e3 * per_inf / hz, rel=1e-6)
    assert "inference_ms_esp32c3_160mhz" in report
    assert report["preprocess_instructions_per_sample"] > 0 and report["preprocess_instructions_per_window"] > 0
    assert 0 < report["beats_instructions_per_sample"] < report["preprocess_instructions_per_sample"]


@pytest.mark.realdata
def test_crosscheck_riscv32_mitdb(shared_data: Path, demo_bundle: tuple[Path, Path]) -> None:
    """A whole minute of a real MIT-BIH record through the RV32 build, beside the demo data set's streams."""
    require_rv32_toolchain()
    from export.crosscheck import crosscheck

    data, bundle = demo_bundle
    report, failed = crosscheck(bundle, data, TARGET, mitdb=shared_data / "mitdb", mitdb_records=1, max_seconds=60,
                                synthetic_seconds=20, limit=2, raw_path_windows=2, progress=False)  # fmt: skip
    assert failed == [], failed
    assert report["streams"]["100"]["windows"] == (60 * 250 - 2500) // 625 + 1
    assert report["beats_identical_fraction"] == 1.0 and report["input_identical_fraction"] >= 0.999
