"""Xtensa lx106 (the ESP8266's core; the ESP32's LX6 is the same GCC family): the firmware core
compiled with Debian's gcc-xtensa-lx106 and picolibc, and its programs run under QEMU.

    make -C firmware TARGET=xtensa-lx106 GEN=DIR BUILD=DIR   (firmware/mk/xtensa-lx106.mk)
    qemu-system-xtensa -M sim -cpu lx106 -nographic -monitor none -no-reboot \
      -semihosting-config enable=on,arg=PROG,arg=ARG1,... -icount shift=S -kernel PROG.elf

Every core, nn and generated source compiles warning-free (-Werror) and the core+model sizes are
reported. Debian's libgcc for lx106 leaves out what the ESP8266's ROM provides (division, 64-bit
multiplication, the software floating point); platform/xtensa supplies it, checked bit for bit
against Python's integers and the host's IEEE arithmetic. Then the lx106 builds must give the host
build's bytes: nn_runner's int8 outputs (optimized and portable kernels, random single ops, the
bundle's model), stream_runner's windows and beats and device_image's results on synthetic streams
and MIT-BIH records, proto_tool's frames. The platform's self-test (platform/xtensa/selftest)
checks arguments, files, exit status, the CCOUNT instruction counter, faults and the stack. The
toolchain is installed with apt-get when missing and running as root; otherwise the tests skip, and
under CI=true they fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import require_qemu_toolchain
from test_firmware_nn import CASE_IDS, make_case, rounding_case

from export import qemu
from export.firmware import generate_firmware
from export.native_model import build_native_model

REPO = Path(__file__).resolve().parents[1]
FIRMWARE = REPO / "firmware"
SRC = FIRMWARE / "ecg_edge" / "src"
TARGET = "xtensa-lx106"

# --------------------------------------------------------------------------- toolchain and QEMU

XT = qemu.TARGETS[TARGET]
SIZE = XT.size
NS_PER_CYCLE = XT.ns_per_tick  # XT_NS_PER_CYCLE: CCOUNT runs at 40 MHz of virtual time
FAULT_STATUS = qemu.FAULT_STATUS  # XT_FAULT_STATUS in firmware/platform/xtensa/xt_internal.h
FATAL_MARKER = XT.fatal_marker
EM_XTENSA = XT.elf_machine


def require_xtensa_toolchain() -> None:
    require_qemu_toolchain(TARGET)


@dataclass(frozen=True)
class XtResult:
    returncode: int
    console: str  # the program's console (QEMU's stderr) and anything QEMU said, in order
    command: list[str]


def run_elf(elf: Path, args: list[str], cwd: Path, icount_shift: int = 0, timeout: float = 300) -> XtResult:
    """Run an lx106 program to its exit; its file arguments are relative to `cwd`."""
    elf = Path(elf).resolve()
    if not elf.is_file():  # QEMU would wait forever at the reset vector
        raise FileNotFoundError(f"no such ELF: {elf}")
    cmd = qemu.qemu_command(elf, args, icount_shift, TARGET)
    proc = subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    return XtResult(proc.returncode, proc.stdout.decode(errors="replace"), cmd)


def run_ok(elf: Path, args: list[str], cwd: Path, icount_shift: int = 0) -> XtResult:
    res = run_elf(elf, args, cwd, icount_shift)
    assert res.returncode == 0 and FATAL_MARKER not in res.console, f"{elf.name} exit {res.returncode}:\n{res.console[-2000:]}"
    return res


def make(build: Path, gen: Path, *goals: str, cflags: str = "") -> subprocess.CompletedProcess[str]:
    cmd = ["make", "-s", "-C", str(FIRMWARE), f"TARGET={TARGET}", f"GEN={gen}", f"BUILD={build}", f"EXTRA_CFLAGS={cflags}", *goals]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


# --------------------------------------------------------------------------- builds

SECTION_KINDS = (("text", (".text", ".literal", ".vectors", ".reset_vector")), ("rodata", (".rodata",)), ("data", (".data",)),
                 ("bss", (".bss",)), ("stack", (".stack",)))  # fmt: skip


def object_sizes(objects: list[Path]) -> dict[str, int]:
    """Bytes of code (text and its literals), rodata, data, bss and stack summed over `objects` (ELF
    objects or programs); every allocated section must be one of these."""
    sizes = dict.fromkeys((k for k, _ in SECTION_KINDS), 0)
    out = subprocess.run([SIZE, "-A", *map(str, objects)], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) != 3 or not parts[1].isdigit() or parts[0].startswith((".debug", ".comment", ".xtensa.info", ".xt.")):
            continue
        kind = next((k for k, prefixes in SECTION_KINDS if parts[0].startswith(prefixes)), None)
        assert kind is not None or int(parts[1]) == 0, f"section {parts[0]} not accounted for:\n{out}"
        if kind:
            sizes[kind] += int(parts[1])
    return sizes


@pytest.fixture(scope="module")
def gen(demo_bundle, tmp_path_factory) -> Path:
    require_xtensa_toolchain()
    out = tmp_path_factory.mktemp("xt") / "generated"
    generate_firmware(demo_bundle[1], out)
    return out


@dataclass(frozen=True)
class XtBuild:
    root: Path
    make_output: str

    def obj(self, source: Path, gen: Path) -> Path:
        if source.parent == gen:
            return self.root / "gen" / (source.stem + ".o")
        return self.root / "obj" / source.relative_to(FIRMWARE).with_suffix(".o")


BUILDS = {"optimized": "", "portable": "-DNN_FORCE_PORTABLE=1"}
XT_PROGRAMS = ("nn_runner", "stream_runner", "device_image", "proto_tool", "xt_selftest")  # PROGRAMS in the .mk


@pytest.fixture(scope="module")
def xt_builds(gen, tmp_path_factory) -> dict[str, XtBuild]:
    """The core's and the kernels' archives and the programs, with the optimized and the portable kernels."""
    out = {}
    for name, cflags in BUILDS.items():
        root = tmp_path_factory.mktemp(f"xt-{name}")
        goals = [str(root / g) for g in ("libecgcore.a", "libnn.a", *(p + ".elf" for p in XT_PROGRAMS))]
        out[name] = XtBuild(root, (make(root, gen, *goals, cflags=cflags).stdout))
    return out


@pytest.fixture(scope="module")
def selftest(xt_builds) -> Path:
    return xt_builds["optimized"].root / "xt_selftest.elf"


@pytest.fixture(scope="module")
def host_build(gen, tmp_path_factory) -> Path:
    """The host build of the programs the lx106 results are compared with."""
    root = tmp_path_factory.mktemp("xt-host")
    cmd = ["make", "-s", "-C", str(FIRMWARE), "TARGET=host", f"GEN={gen}", f"BUILD={root}", *(str(root / p) for p in ("nn_runner", "stream_runner", "device_image", "proto_tool"))]
    subprocess.run(cmd, check=True, capture_output=True)
    return root


@pytest.fixture(scope="module")
def host_runner(host_build) -> Path:
    return host_build / "nn_runner"


# --------------------------------------------------------------------------- the core compiles


def test_core_compiles_warning_free(gen, xt_builds) -> None:
    """Every core, nn and generated source becomes an lx106 object under -Werror, both kernel paths."""
    sources = [*SRC.glob("*.c"), *(SRC / "nn").glob("*.c"), gen / "ecg_native_model.c"]
    assert len(sources) >= 15
    for name, build in xt_builds.items():
        assert "warning" not in build.make_output.lower(), build.make_output
        for source in sources:
            obj = build.obj(source, gen)
            assert obj.is_file(), f"{name}: no object for {source}"
            header = obj.read_bytes()[:20]
            assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == EM_XTENSA, f"{obj} is not an Xtensa object"


def test_core_and_model_size(gen, xt_builds) -> None:
    """The core (preprocessing, quality, beats, protocol, app), the kernels and the model, as lx106
    objects at -O2 (before the linker drops unused functions); printed, and written beside the build."""
    build = xt_builds["optimized"]
    core = object_sizes([build.obj(s, gen) for s in SRC.glob("*.c")])
    nn = object_sizes([build.obj(s, gen) for s in (SRC / "nn").glob("*.c")])
    model = object_sizes([build.obj(gen / "ecg_native_model.c", gen)])
    total = {k: core[k] + nn[k] + model[k] for k in core if k != "stack"}
    header = (gen / "ecg_native_model.h").read_text()
    report = {"core": core, "nn": nn, "model": model, "total": total,
              "native_arena_bytes": int(re.search(r"#define ECG_NATIVE_ARENA_BYTES (\d+)", header).group(1))}  # fmt: skip
    # The linked device path (device_image: core, kernels, model, platform, software floating point, libc).
    report["device_image_elf"] = object_sizes([build.root / "device_image.elf"])
    (build.root / "sizes.json").write_text(json.dumps(report, indent=1))
    print(f"\nlx106 sizes (bytes): {json.dumps(report)}")
    # The model's weights are read-only data, the kernels and the core are code.
    blob = (gen / "ecg_native_model.c").read_text()
    blob_len = int(re.search(r"g_ecg_native_model_len = (\d+)", blob).group(1))
    assert blob_len <= model["rodata"] < blob_len + 64 and model["text"] == 0
    assert core["text"] > 10_000 and nn["text"] > 5_000 and nn["bss"] == 0 == nn["data"]
    # The static RAM (the app state, the arena and nn_model) is what export/ram.py budgets for a 32-bit board.
    config = (gen / "ecg_config.h").read_text()
    ram = {k: int(re.search(rf"#define {k} (\d+)", config).group(1)) for k in ("ECG_RAM_ARENA_BYTES", "ECG_RAM_APP_STATE_BYTES", "ECG_MODEL_RAM_BYTES")}
    assert ram["ECG_RAM_ARENA_BYTES"] + ram["ECG_RAM_APP_STATE_BYTES"] < core["bss"] + core["data"] <= ram["ECG_MODEL_RAM_BYTES"]


# --------------------------------------------------------------------------- the platform


def _values(console: str, prefix: str) -> dict[str, int]:
    line = next((ln for ln in console.splitlines() if ln.startswith(prefix)), None)
    assert line is not None, f"no '{prefix}' line in:\n{console}"
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def test_arguments_round_trip(selftest, tmp_path: Path) -> None:
    args = ["plain", "two words", 'say "hi"', "back\\slash\\", "a,b,,c", "", "  lead", "ünï", "tab\there", "k=v"]
    res = run_ok(selftest, args, tmp_path)
    assert re.findall(r"^arg \d+ \[(.*)\]$", res.console, re.M) == ["xt_selftest", *args]


def test_command_line_limit(selftest, tmp_path: Path) -> None:
    res = run_elf(selftest, ["y" * 2100], tmp_path)
    assert res.returncode == FAULT_STATUS and "xt fatal: no command line, or longer than 2048 bytes" in res.console


@pytest.mark.parametrize("size", [100_000, 99_000, 0])  # 99 000: a whole number of 3000-byte blocks
def test_file_round_trip(selftest, tmp_path: Path, size: int) -> None:
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    if size:
        data = bytes(range(256)) + b"\r\n\x1a\x00" + data[260:]
    (tmp_path / "in.bin").write_bytes(data)
    res = run_ok(selftest, ["--copy", "in.bin", "out.bin"], tmp_path)
    assert _values(res.console, "copy")["bytes"] == size
    assert (tmp_path / "out.bin").read_bytes() == data


def test_missing_input_fails(selftest, tmp_path: Path) -> None:
    res = run_elf(selftest, ["--copy", "absent.bin", "out.bin"], tmp_path)
    assert res.returncode == 2 and "cannot open input" in res.console


@pytest.mark.parametrize(("status", "expected"), [(0, 0), (1, 1), (7, 7), (255, 255), (256, 255), (-1, 255)])
def test_exit_status_propagates(selftest, tmp_path: Path, status: int, expected: int) -> None:
    res = run_elf(selftest, ["--exit", str(status)], tmp_path)
    assert res.returncode == expected, res.console


def test_fault_is_reported(selftest, tmp_path: Path) -> None:
    res = run_elf(selftest, ["--fault"], tmp_path)
    # EXCCAUSE 0: illegal instruction, taken at the user exception vector.
    assert res.returncode == FAULT_STATUS and re.search(r"xt fatal: user exception cause=0x00000000 pc=0x402", res.console), res.console


def test_stack_overflow_is_reported(selftest, tmp_path: Path) -> None:
    res = run_ok(selftest, ["--stack", "2048"], tmp_path)
    v = _values(res.console, "stack used")
    assert 2048 <= v["used"] < v["size"] == 4096
    # Past the stack's bottom nothing is mapped: a load there faults (EXCCAUSE 15, LoadStorePIFAddrError,
    # with the stack pointer below the stack), a store is dropped and the paint tells at exit.
    res = run_elf(selftest, ["--stack", "8192"], tmp_path)
    assert res.returncode == FAULT_STATUS and re.search(r"xt fatal: (user exception cause=0x0000000f .*\()?stack overflow", res.console), res.console


def test_instruction_count_shift0(selftest, tmp_path: Path) -> None:
    """At shift 0 a cycle is 25 instructions: the loop reads back within one cycle and its overhead."""
    v = _values(run_ok(selftest, ["--loop", "500000"], tmp_path, icount_shift=0).console, "loop")
    assert v["shift"] == 0 and v["expected"] == 1_000_000
    assert abs(v["measured"] - v["overhead"] - v["expected"]) <= 2 * NS_PER_CYCLE
    assert abs(v["cycles"] * NS_PER_CYCLE - v["expected"]) <= 0.001 * v["expected"]



@pytest.mark.parametrize("shift", [3, 5])
def test_instruction_count_exact(selftest, tmp_path: Path, shift: int) -> None:
    """With a finer clock the count is exact: the loop minus two back-to-back reads is 2N, give or
    take the loop's set-up and rounding; CCOUNT runs 2^S x 0.04 cycles per instruction."""
    v = _values(run_ok(selftest, ["--loop", "500000"], tmp_path, icount_shift=shift).console, "loop")
    assert v["shift"] == shift  # the platform found the -icount shift by itself
    assert abs(v["measured"] - v["overhead"] - 1_000_000) <= 8, v
    assert abs(v["cycles"] * NS_PER_CYCLE / 2**shift - 1_000_000) <= 1000, v  # with the reads around the loop


def _arith_inputs() -> np.ndarray:
    """(N, 2) uint64 pairs: edges of every width and sign, then random values of random widths."""
    edges = [0, 1, 2, 3, 7, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x100000000, 0x123456789,
             2**63 - 1, 2**63, 2**64 - 1, 2**64 - 2, 2**64 - 2**31, 2**64 - 2**32]  # fmt: skip
    pairs = [(a, b) for a in edges for b in edges]
    rng = np.random.default_rng(7)
    bits = rng.integers(1, 65, size=(4000, 2))
    vals = rng.integers(0, 2**63, size=(4000, 2), dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, size=(4000, 2), dtype=np.uint64)
    vals = vals >> (np.uint64(64) - bits.astype(np.uint64))
    return np.concatenate([np.array(pairs, dtype=np.uint64), vals])


def _c_ops(a: int, b: int) -> list[int]:
    """What arith_record in xt_selftest.c writes for (a, b), from C99's rules on Python integers."""

    def signed(v: int, bits: int) -> int:
        return v - (1 << bits) if v >> (bits - 1) else v

    def trunc_div(x: int, y: int) -> tuple[int, int]:
        q = abs(x) // abs(y) * (1 if (x < 0) == (y < 0) else -1)
        return q, x - q * y

    m64 = 2**64 - 1
    out = [(a * b) & m64]
    out += [a // b, a % b] if b else [0, 0]
    sa, sb = signed(a, 64), signed(b, 64)
    out += [v & m64 for v in trunc_div(sa, sb)] if sb and not (sa == -(2**63) and sb == -1) else [0, 0]
    a32, b32 = a & 0xFFFFFFFF, b & 0xFFFFFFFF
    out += [a32 // b32, a32 % b32] if b32 else [0, 0]
    s32a, s32b = signed(a32, 32), signed(b32, 32)
    out += [v & m64 for v in trunc_div(s32a, s32b)] if s32b and not (s32a == -(2**31) and s32b == -1) else [0, 0]
    return out


def test_integer_helpers_match_c(selftest, tmp_path: Path) -> None:
    """32- and 64-bit multiplication, division and remainder (platform/xtensa/libgcc_gaps.c and
    Debian's libgcc) against C's operators computed on Python integers."""
    pairs = _arith_inputs()
    pairs.astype("<u8").tofile(tmp_path / "in.bin")
    res = run_ok(selftest, ["--arith", "in.bin", "out.bin"], tmp_path)
    assert _values(res.console, "arith")["records"] == len(pairs)
    got = np.fromfile(tmp_path / "out.bin", dtype="<u8").reshape(len(pairs), 9)
    for (a, b), row in zip(pairs.tolist(), got.tolist()):
        assert row == _c_ops(a, b), f"a={a:#x} b={b:#x}: got {[hex(v) for v in row]}, C gives {[hex(v) for v in _c_ops(a, b)]}"


FLOAT_RESULTS = 18  # xt_selftest.c float_record
FLOAT_COLUMNS = (4, 10, 11, 12, 13, 14, 15)  # binary32 results (low 32 bits)
DOUBLE_COLUMNS = (0, 1, 2, 3, 5, 8, 9)


def _float_inputs() -> np.ndarray:
    """(N, 2) uint64: the bits of two doubles, whose low halves are two floats. Edges (zeros, ties,
    subnormals, the largest values, infinities, NaN, the int32/uint32 limits) pairwise, random bit
    patterns, ordinary magnitudes, near-cancelling pairs and subnormals."""
    edges = [0.0, -0.0, 1.0, -1.0, 0.5, 1.5, 2.5, -2.5, 3.0, 1 / 3, 0.1, 2.0**-1022, 2.0**-1074, -(2.0**-1074),
             2.0**-1022 - 2.0**-1074, 1.7976931348623157e308, np.inf, -np.inf, np.nan, 2.0**31, -(2.0**31),
             2.0**31 - 0.5, -(2.0**31) - 0.5, 2.0**32 - 1, 2.0**32, -0.9, 1 + 2.0**-52, 1 - 2.0**-53, 1e-310,
             3.4028234663852886e38, 3.4028235677973366e38, 1.401298464324817e-45, 7.006492321624085e-46,
             1.1754943508222875e-38, 1 + 2.0**-24, 1 + 3 * 2.0**-24, 1 + 2.0**-24 + 2.0**-60, 16777217.0]  # fmt: skip
    e = np.array(edges, dtype=np.float64).view(np.uint64)
    with np.errstate(over="ignore"):  # the doubles beyond binary32 become infinities
        f = np.array(edges, dtype=np.float32).view(np.uint32).astype(np.uint64)
    edge_pairs = np.stack(np.meshgrid(e, e), -1).reshape(-1, 2)
    float_pairs = np.stack(np.meshgrid(f, f), -1).reshape(-1, 2) | np.uint64(0x3FF0000000000000)
    rng = np.random.default_rng(11)
    n = 3000
    raw = rng.integers(0, 2**63, size=(n, 2), dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, size=(n, 2), dtype=np.uint64)
    ordinary = (rng.choice([-1, 1], (n, 2)) * 10.0 ** rng.uniform(-8, 8, (n, 2))).view(np.uint64)
    near = 10.0 ** rng.uniform(-3, 3, n)
    cancel = np.stack([near, -near * (1 + rng.choice([1, -1], n) * 2.0 ** -rng.integers(1, 60, n))], -1).view(np.uint64)
    tiny = (rng.integers(0, 2**52, (n, 2), dtype=np.uint64) | (rng.integers(0, 60, (n, 2)).astype(np.uint64) << np.uint64(52)))
    floats = (rng.choice([-1, 1], (n, 2)) * 10.0 ** rng.uniform(-6, 6, (n, 2))).astype(np.float32).view(np.uint32).astype(np.uint64)
    floats |= raw & np.uint64(0xFFFFFFFF00000000)
    return np.concatenate([edge_pairs, float_pairs, raw, ordinary, cancel, tiny, floats]).astype(np.uint64)


def _float_expected(pairs: np.ndarray) -> np.ndarray:
    """What float_record writes, from the host's IEEE arithmetic (numpy: round to nearest even)."""
    a, b = pairs[:, 0].view(np.float64), pairs[:, 1].view(np.float64)
    low_a, low_b = (pairs & np.uint64(0xFFFFFFFF)).astype(np.uint32).T
    fa, fb = low_a.view(np.float32), low_b.view(np.float32)
    u64 = np.uint64

    def d(x: np.ndarray) -> np.ndarray:
        return x.astype(np.float64).view(u64)

    def f(x: np.ndarray) -> np.ndarray:
        return x.astype(np.float32).view(np.uint32).astype(u64)

    with np.errstate(all="ignore"):
        as_int = np.where((a > -2147483649.0) & (a < 2147483648.0), np.nan_to_num(np.trunc(a)), 0).astype(np.int64)
        as_uint = np.where((a > -1.0) & (a < 2.0**32), np.nan_to_num(np.trunc(a)), 0).astype(np.int64)
        f_uint = np.where((fa > -1.0) & (fa < np.float32(2.0**32)), np.nan_to_num(np.trunc(fa)), 0).astype(np.int64)
        cmp = sum(((x < y) | (x <= y) << 1 | (x > y) << 2 | (x >= y) << 3 | (x == y) << 4 | (x != y) << 5).astype(np.int64) << shift
                  for x, y, shift in ((a, b, 0), (fa, fb, 8)))  # fmt: skip
        cols = [d(a + b), d(a - b), d(a * b), d(a / b), f(a), d(fa), (as_int & 0xFFFFFFFF).astype(u64), as_uint.astype(u64),
                d(low_b.view(np.int32)), d(low_b), f(fa + fb), f(fa - fb), f(fa * fb), f(fa / fb), f(low_a.view(np.int32)),
                f(low_a.astype(np.float64)), f_uint.astype(u64), np.asarray(cmp).astype(u64)]  # fmt: skip
    return np.stack(cols, axis=1)


def test_floating_point_matches_ieee(selftest, tmp_path: Path) -> None:
    """Binary64 and binary32 arithmetic, conversions and comparisons (platform/xtensa/softfloat.c and
    Debian's libgcc) bit for bit against the host's IEEE arithmetic; a NaN may be any NaN."""
    pairs = _float_inputs()
    pairs.astype("<u8").tofile(tmp_path / "in.bin")
    res = run_ok(selftest, ["--float", "in.bin", "out.bin"], tmp_path)
    assert _values(res.console, "float")["records"] == len(pairs)
    got = np.fromfile(tmp_path / "out.bin", dtype="<u8").reshape(len(pairs), FLOAT_RESULTS)
    want = _float_expected(pairs)
    same = got == want
    for col in DOUBLE_COLUMNS:
        same[:, col] |= np.isnan(got[:, col].view(np.float64)) & np.isnan(want[:, col].view(np.float64))
    for col in FLOAT_COLUMNS:
        g, w = (x[:, col].astype(np.uint32).view(np.float32) for x in (got, want))
        same[:, col] |= np.isnan(g) & np.isnan(w)
    bad = np.argwhere(~same)
    assert not len(bad), f"{len(bad)} results differ, first: record {bad[0][0]} column {bad[0][1]} " \
        f"(a={pairs[bad[0][0], 0]:#x} b={pairs[bad[0][0], 1]:#x}): got {got[tuple(bad[0])]:#x}, IEEE {want[tuple(bad[0])]:#x}"


def test_cppcheck_platform() -> None:
    if shutil.which("cppcheck") is None:
        pytest.skip("cppcheck not installed")
    platform = FIRMWARE / "platform" / "xtensa"
    cmd = ["cppcheck", "--std=c99", "--enable=warning,performance,portability", "--error-exitcode=1", "--inline-suppr",
           "--suppress=missingIncludeSystem", "-q", "-D__xtensa__", f"-I{platform}", f"-I{FIRMWARE / 'harness'}", str(platform)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------- nn_runner: Xtensa == host


def run_runner(exe: Path, blob: bytes, inputs: np.ndarray, work: Path, icount_shift: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """(outputs (N, output bytes) int8, per-inference instructions or None on the host) of nn_runner."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "model.bin").write_bytes(blob)
    np.ascontiguousarray(inputs, dtype=np.int8).tofile(work / "in.bin")
    args = ["model.bin", "in.bin", "out.bin", "stats.bin"]
    if exe.suffix == ".elf":
        res = run_ok(exe, args, work, icount_shift)
    else:
        proc = subprocess.run([str(exe), *args], cwd=work, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{exe} exit {proc.returncode}: {proc.stderr[-2000:]}"
    out = np.fromfile(work / "out.bin", dtype=np.int8).reshape(len(inputs), -1)
    counts = np.fromfile(work / "stats.bin", dtype="<u8")
    return out, (counts if exe.suffix == ".elf" else None)


@pytest.mark.slow
def test_single_ops_match_host(xt_builds, host_runner, tmp_path: Path) -> None:
    """Random single-op models of tests/test_firmware_nn.py (edge values, every op, per-channel
    scales, the rounding case): both lx106 kernel paths give the host build's bytes."""
    for cid in [*CASE_IDS, "rounding"]:
        case = rounding_case() if cid == "rounding" else make_case(cid)
        blob = case.native.blob
        expected, _ = run_runner(host_runner, blob, case.inputs, tmp_path / "host" / cid)
        for name, build in xt_builds.items():
            got, _ = run_runner(build.root / "nn_runner.elf", blob, case.inputs, tmp_path / name / cid)
            mismatch = np.argwhere(got != expected)
            assert not len(mismatch), f"{case.name} lx106 {name}: {len(mismatch)} bytes differ from the host, first at {mismatch[0].tolist()}"


@pytest.mark.slow
def test_bundle_model_matches_host(demo_bundle, gen, xt_builds, host_runner, tmp_path: Path) -> None:
    """The bundle's model on 6 windows (edges and random): identical outputs on both lx106 builds,
    and the instructions per inference (printed) the same for every window."""
    native = build_native_model((demo_bundle[1] / "model_int8.tflite").read_bytes())
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, size=(6, native.input_bytes), dtype=np.int8)
    x[0], x[1] = -128, 127
    expected, _ = run_runner(host_runner, native.blob, x, tmp_path / "host")
    assert len(np.unique(expected, axis=0)) > 1
    counts = {}
    for name, build in xt_builds.items():
        got, counts[name] = run_runner(build.root / "nn_runner.elf", native.blob, x, tmp_path / name)
        np.testing.assert_array_equal(got, expected, err_msg=f"lx106 {name}")
    per_mac = {name: round(float(c[2:].mean()) / native.macs, 3) for name, c in counts.items()}
    print(f"\nlx106 nn_runner, {native.macs} MACs per inference: instructions {dict((k, v.tolist()) for k, v in counts.items())}, per MAC {per_mac}")
    for c in counts.values():  # no data-dependent path beyond a few branches in the activations
        assert c[2:].max() - c[2:].min() < 0.001 * c[2:].mean()


def test_refused_model_and_missing_file(xt_builds, tmp_path: Path) -> None:
    exe = xt_builds["optimized"].root / "nn_runner.elf"
    (tmp_path / "model.bin").write_bytes(b"not a model at all" * 8)
    (tmp_path / "in.bin").write_bytes(b"\0" * 16)
    res = run_elf(exe, ["model.bin", "in.bin", "out.bin"], tmp_path)
    assert res.returncode == 2 and "nn_runner: model model.bin refused" in res.console, res.console
    res = run_elf(exe, ["absent.bin", "in.bin", "out.bin"], tmp_path)
    assert res.returncode == 1 and "cannot open model absent.bin" in res.console, res.console


# --------------------------------------------------------------------------- the device path: Xtensa == host


def _bundle_spec(bundle: Path):
    from pipeline.signal.spec import PreprocessSpec

    return PreprocessSpec.from_dict(json.loads((bundle / "manifest.json").read_text())["spec"])


def _stream_matches_host(stream, spec, xt_build: Path, host_build: Path, work: Path) -> tuple[float, float, float]:
    """One stream through stream_runner (with beats) and device_image on both builds: every output
    byte the same. Returns the lx106's instructions per sample (preprocessing), per OK window
    (z-score, quantization, inference; 0 without one) and per sample in the beat detector."""
    from export.crosscheck import ADC, write_samples

    work.mkdir(parents=True)
    write_samples(stream, work / "samples.bin")
    common = ["samples.bin", "{}.out", str(ADC.max_count), str(spec.device_hop)]
    runs = {"stream_runner": ["-b", "{}.beats", *common, "{}.stats"], "device_image": common}
    for program, args in runs.items():
        host = subprocess.run([str(host_build / program), *(a.format("host") for a in args)], cwd=work, capture_output=True, text=True)
        assert host.returncode == 0, f"host {program} {stream.name}: {host.stderr[-1000:]}"
        run_ok(xt_build / f"{program}.elf", [a.format("xt") for a in args], work)
        for kind in ("out", "beats") if program == "stream_runner" else ("out",):
            ours, theirs = (work / f"xt.{kind}").read_bytes(), (work / f"host.{kind}").read_bytes()
            assert len(theirs) > 0 and ours == theirs, f"{program} {stream.name}: lx106 {kind} differs from the host's"
    stats, host_stats = (np.fromfile(work / f"{w}.stats", dtype="<u8") for w in ("xt", "host"))
    assert (stats[:3] == host_stats[:3]).all() and stats[3] > 0
    return stats[3] / stats[0], stats[4] / stats[2] if stats[2] else 0.0, stats[6] / stats[0]


def _print_costs(what: str, costs: list[tuple[float, float, float]]) -> None:
    per_sample, per_ok_window, beats = (round(float(np.mean([c[i] for c in costs if c[i] > 0])), 1) for i in range(3))
    print(f"\nlx106 stream_runner, {what}: instructions per sample {per_sample} (preprocessing), {beats} (beats); "
          f"per OK window {per_ok_window} (z-score, quantization, inference)")  # fmt: skip


@pytest.mark.slow
def test_streams_match_host(demo_bundle, xt_builds, host_build, tmp_path: Path) -> None:
    """Synthetic AD8232 streams (drift, mains, motion, lead-off, clipping, every quality status)
    through stream_runner (filter, window, status, z-score, quantization, inference, beats) and
    device_image (the app with its protocol): every byte the same as the host build's."""
    from export.crosscheck import synthetic_streams

    spec = _bundle_spec(demo_bundle[1])
    costs = [_stream_matches_host(st, spec, xt_builds["optimized"].root, host_build, tmp_path / st.name) for st in synthetic_streams(spec, 30.0, seed=5)]
    _print_costs("synthetic streams", costs)


@pytest.mark.slow
def test_mitdb_matches_host(shared_data, demo_bundle, xt_builds, host_build, tmp_path: Path) -> None:
    """Real ECG: MIT-BIH records 100 (normal) and 208 (many PVCs), 3 minutes each, as the device
    would sample them: byte-identical windows, beats and results on the lx106 and the host."""
    from export.crosscheck import record_stream
    from pipeline.sources import mitdb as mitdb_source

    spec = _bundle_spec(demo_bundle[1])
    streams = [record_stream(shared_data / "mitdb" / name, mitdb_source.DEFAULT_LEADS, spec, 180.0) for name in ("100", "208")]
    costs = [_stream_matches_host(st, spec, xt_builds["optimized"].root, host_build, tmp_path / st.name) for st in streams]
    _print_costs("MIT-BIH 100, 208", costs)


def test_protocol_matches_host(xt_builds, host_build, tmp_path: Path) -> None:
    """The serial protocol's C side (harness/proto_tool.c): encoded frames, the limits and the decoder's
    view of a byte stream (with the REPLAY window assembler) the same on the lx106 as on the host."""
    runs = (["encode", "{}.bin"], ["limits", "{}.txt"], ["decode", "host.bin", "{}.dec", "600"])
    for args in runs:
        host = subprocess.run([str(host_build / "proto_tool"), *(a.format("host") for a in args)], cwd=tmp_path, capture_output=True, text=True)
        assert host.returncode == 0, host.stderr
        run_ok(xt_builds["optimized"].root / "proto_tool.elf", [a.format("xt") for a in args], tmp_path)
    for out in ("bin", "txt", "dec"):
        assert (tmp_path / f"host.{out}").stat().st_size > 0 and (tmp_path / f"xt.{out}").read_bytes() == (tmp_path / f"host.{out}").read_bytes(), out


def test_crosscheck_xtensa(demo_bundle: tuple[Path, Path]) -> None:
    """`ecg-export crosscheck --target xtensa-lx106`: every identity of the Cortex-M4's, the portable kernels
    against the optimized ones, and the cost keys."""
    require_xtensa_toolchain()
    from test_firmware_core import _check

    from export.crosscheck import crosscheck

    data, bundle = demo_bundle
    report, failed = crosscheck(bundle, data, TARGET, limit=4, raw_path_windows=4, synthetic_seconds=40, progress=False)
    assert failed == []
    _check(report, TARGET)
    assert report["portable_identical"] is True and report["rhythm_identical_fraction"] == 1.0
    per_inf = report["instructions_per_inference"]
    assert per_inf > report["macs"] and report["instructions_per_mac"] == pytest.approx(per_inf / report["macs"], rel=1e-6)
    assert 0 < report["flash_bytes"] and report["image_sections"]["stack"] == 4096
    assert 0 < report["beats_instructions_per_sample"] < report["preprocess_instructions_per_sample"]
