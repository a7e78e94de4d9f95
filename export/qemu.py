"""Cortex-M4F firmware programs under QEMU (`-machine mps2-an386`): run, size, toolchain.

A program built with `make -C firmware TARGET=cortex-m4` takes its arguments from the semihosting
command line, reads and writes host files through semihosting (relative to `cwd`), prints to the
semihosting console and ends with SYS_EXIT_EXTENDED, so QEMU's exit code is its status. Its
instruction counter (SysTick) is exact under `-icount shift=S`, where a 25 MHz tick is
40 / 2^S instructions; the firmware finds S by itself at reset.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

QEMU = "qemu-system-arm"
GCC = "arm-none-eabi-gcc"
SIZE = "arm-none-eabi-size"
APT_PACKAGES = ("gcc-arm-none-eabi", "libnewlib-arm-none-eabi", "qemu-system-arm")
APT_COMMAND = "apt-get install -y " + " ".join(APT_PACKAGES)

NS_PER_TICK = 40  # SysTick and the CMSDK timers run at 25 MHz of virtual time
FAULT_STATUS = 250  # M4_FAULT_STATUS in firmware/platform/m4/m4_platform.h
FATAL_MARKER = "m4 fatal:"  # the platform's line before FAULT_STATUS
CMDLINE_BYTES = 1023  # firmware/platform/m4/semihost.c
MAX_ARGS = 32
DEFAULT_TIMEOUT = 600.0

_M4_FLAGS = ("-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard")
_FLASH_SECTIONS = {".isr_vector": "text", ".text": "text", ".ARM.exidx": "text", ".ARM.extab": "text",
                   ".rodata": "rodata", ".init_array": "rodata"}  # fmt: skip
_RAM_SECTIONS = {".data": "data", ".bss": "bss", ".stack": "stack"}


class QemuError(RuntimeError):
    """A program did not run to its own exit under QEMU."""


class QemuTimeout(QemuError):
    """The program ran past the time limit (and was killed)."""


class QemuCrash(QemuError):
    """The program took a fault, overflowed its stack, or QEMU itself failed."""


class ToolchainMissing(RuntimeError):
    """The Arm compiler, newlib or QEMU is not installed (and could not be)."""


@dataclass(frozen=True)
class QemuResult:
    returncode: int
    console: str  # semihosting console and UART0, in order
    command: list[str]


def missing_tools() -> list[str]:
    """What is missing for building and running Cortex-M4 programs (empty when all is there)."""
    missing = [tool for tool in (QEMU, GCC, SIZE) if shutil.which(tool) is None]
    if GCC not in missing:
        libc = subprocess.run([GCC, *_M4_FLAGS, "-print-file-name=libc_nano.a"], capture_output=True, text=True)
        if not Path(libc.stdout.strip()).is_absolute():
            missing.append("newlib (libc_nano.a)")
    return missing


def qemu_available() -> bool:
    """True when qemu-system-arm, arm-none-eabi-gcc (with newlib) and arm-none-eabi-size are installed."""
    return not missing_tools()


def ensure_toolchain() -> None:
    """Install the Debian packages with apt-get when running as root; otherwise explain how."""
    missing = missing_tools()
    if not missing:
        return
    if getattr(os, "geteuid", lambda: -1)() != 0:
        raise ToolchainMissing(f"missing {', '.join(missing)}; install them with: sudo {APT_COMMAND}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *APT_PACKAGES]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True)
        proc = subprocess.run(install, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ToolchainMissing(f"'{' '.join(install)}' failed:\n{proc.stderr[-2000:]}")
    if missing_tools():
        raise ToolchainMissing(f"still missing after apt-get: {', '.join(missing_tools())}")


def _semihosting_arg(arg: str) -> str:
    """One argument as the firmware's splitter reads it (QEMU joins `arg=` values with spaces)."""
    if arg == "" or any(c in arg for c in ' \t"\\'):
        arg = '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg


def qemu_command(elf: Path, args: list[str], icount_shift: int = 0) -> list[str]:
    """The QEMU command line that runs `elf` with argv = [elf stem, *args]."""
    if not 0 <= icount_shift <= 10:
        raise ValueError(f"icount_shift must be in 0..10, not {icount_shift}")
    argv = [_semihosting_arg(a) for a in [elf.stem, *args]]
    if len(argv) > MAX_ARGS or len(" ".join(argv).encode()) > CMDLINE_BYTES:
        raise ValueError(f"{elf.name}: at most {MAX_ARGS} arguments and {CMDLINE_BYTES} bytes of command line")
    semihosting = ",".join(["enable=on", "target=native", *("arg=" + a.replace(",", ",,") for a in argv)])
    return [QEMU, "-machine", "mps2-an386", "-cpu", "cortex-m4", "-nographic", "-monitor", "none",
            "-serial", "stdio", "-no-reboot", "-semihosting-config", semihosting,
            "-icount", f"shift={icount_shift}", "-kernel", str(elf)]  # fmt: skip


def run_elf(elf: Path, args: list[str], cwd: Path, icount_shift: int = 0, timeout: float = DEFAULT_TIMEOUT) -> QemuResult:
    """Run a Cortex-M4 program to its exit; its file arguments are relative to `cwd`.

    Returns the program's exit status; raises QemuTimeout past `timeout` seconds and QemuCrash on a
    fault, a stack overflow or a QEMU failure, naming the ELF and quoting the console's end.
    """
    elf = Path(elf).resolve()
    if not elf.is_file():
        raise FileNotFoundError(f"no such ELF: {elf}")
    cmd = qemu_command(elf, args, icount_shift)
    try:
        proc = subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=timeout)  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        tail = (exc.output or b"").decode(errors="replace")[-1500:]
        raise QemuTimeout(f"{elf} did not finish within {timeout:g} s under QEMU; console so far:\n{tail}") from None
    console = proc.stdout.decode(errors="replace")
    lines = console.splitlines()
    qemu_failed = proc.returncode != 0 and any(ln.startswith(f"{QEMU}:") for ln in lines)  # e.g. bad ELF
    if proc.returncode < 0 or qemu_failed or any(ln.startswith(FATAL_MARKER) for ln in lines):
        raise QemuCrash(f"{elf} crashed under QEMU (exit {proc.returncode}):\n{console[-1500:]}")
    return QemuResult(proc.returncode, console, cmd)


def instructions_from_ticks(ticks: int, shift: int) -> int:
    """Instructions in `ticks` SysTick/CMSDK-timer ticks under `-icount shift=shift`."""
    return (ticks * NS_PER_TICK) >> shift


def elf_size(elf: Path) -> dict[str, int]:
    """Section sizes in bytes: text (code, vectors), rodata, data, bss, stack, and the totals
    flash_bytes (text + rodata + initial values of data) and ram_bytes (data + bss + stack)."""
    sizes = dict.fromkeys(("text", "rodata", "data", "bss", "stack"), 0)
    out = subprocess.run([SIZE, "-A", str(elf)], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit():
            kind = _FLASH_SECTIONS.get(parts[0]) or _RAM_SECTIONS.get(parts[0])
            if kind:
                sizes[kind] += int(parts[1])
    # Berkeley totals count every allocated section: a section missing from the tables above shows.
    berkeley = subprocess.run([SIZE, "-B", str(elf)], capture_output=True, text=True, check=True).stdout
    text, data, bss = (int(v) for v in berkeley.splitlines()[1].split()[:3])
    if (text, data, bss) != (sizes["text"] + sizes["rodata"], sizes["data"], sizes["bss"] + sizes["stack"]):
        raise ValueError(f"{elf}: sections not accounted for: size -A gives {sizes}, size -B {text} {data} {bss}")
    sizes["flash_bytes"] = sizes["text"] + sizes["rodata"] + sizes["data"]
    sizes["ram_bytes"] = sizes["data"] + sizes["bss"] + sizes["stack"]
    return sizes
