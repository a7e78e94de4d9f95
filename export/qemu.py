"""Bare-metal firmware programs under QEMU: run, size, toolchain, for each target in `TARGETS`.

- `cortex-m4`: Cortex-M4F, `qemu-system-arm -machine mps2-an386` (firmware/platform/m4).
- `riscv32`: RV32IMC with soft float (an ESP32-C3-class core), `qemu-system-riscv32 -machine virt
  -bios none` with a CPU that has no A, F or D extension, so a stray atomic or floating-point
  instruction traps (firmware/platform/rv32).
- `xtensa-lx106`: the ESP8266's core, `qemu-system-xtensa -M sim -cpu lx106`, with the simulator's
  calls for arguments, files and exit (firmware/platform/xtensa).

A program built with `make -C firmware TARGET=<target>` takes its arguments from the semihosting
command line, reads and writes host files through semihosting (relative to `cwd`), prints to the
semihosting console and ends with SYS_EXIT_EXTENDED, so QEMU's exit code is its status
(firmware/platform/semihost). Instruction counting under `-icount shift=S` (one instruction takes
2^S ns of virtual time; the firmware finds S by itself at reset with a loop of known length):
- cortex-m4: SysTick runs at 25 MHz of virtual time, so a tick is 40 / 2^S instructions;
- riscv32: QEMU returns its virtual clock in ns for `minstret`, so instructions = minstret >> S,
  exact at every shift (tests/test_firmware_riscv.py checks it against loops of known length);
- xtensa-lx106: CCOUNT runs at 40 MHz of virtual time, so a cycle is 25 / 2^S instructions.

The module-level constants (QEMU, GCC, SIZE, APT_PACKAGES, ...) are the Cortex-M4's, as before.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

CMDLINE_BYTES = 1023  # firmware/platform/semihost/semihost.c
MAX_ARGS = 32
DEFAULT_TIMEOUT = 600.0
APT_LOCK_TIMEOUT_S = 600
FAULT_STATUS = 250  # SH_FAULT_STATUS in firmware/platform/semihost/semihost.h


@dataclass(frozen=True)
class QemuTarget:
    """How to build, run and measure the programs of one QEMU target."""

    name: str
    qemu: str
    machine: tuple[str, ...]  # QEMU's machine and CPU arguments
    gcc: str
    size: str
    objdump: str
    cflags: tuple[str, ...]  # enough of the target's flags to find its libc
    libc: str  # a file of the libc that `gcc -print-file-name` must find, or its absolute path
    apt_packages: tuple[str, ...]
    flash_sections: dict[str, str]  # ELF section -> kind (text, rodata)
    ram_sections: dict[str, str]  # ELF section -> kind (data, bss, stack)
    overlay_sections: tuple[str, ...]  # allocated, counted by size -B, but laid over another section
    fatal_marker: str  # the platform's console line before FAULT_STATUS
    ns_per_tick: int  # virtual ns per count of the platform's instruction counter
    elf_machine: int  # e_machine of its ELF files
    # Arm/RISC-V semihosting hands the program one command line that the firmware splits at spaces
    # (arguments quoted); the Xtensa simulator's calls give each argument as it is.
    cmdline_joined: bool = True

    @property
    def apt_command(self) -> str:
        return "apt-get install -y " + " ".join(self.apt_packages)

    def instructions(self, ticks: int, shift: int) -> int:
        """Instructions in `ticks` counts of the platform's counter under `-icount shift=shift`."""
        return (ticks * self.ns_per_tick) >> shift


TARGETS: dict[str, QemuTarget] = {
    "cortex-m4": QemuTarget(
        name="cortex-m4",
        qemu="qemu-system-arm",
        machine=("-machine", "mps2-an386", "-cpu", "cortex-m4"),
        gcc="arm-none-eabi-gcc",
        size="arm-none-eabi-size",
        objdump="arm-none-eabi-objdump",
        cflags=("-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"),
        libc="libc_nano.a",
        apt_packages=("gcc-arm-none-eabi", "libnewlib-arm-none-eabi", "qemu-system-arm"),
        flash_sections={".isr_vector": "text", ".text": "text", ".ARM.exidx": "text", ".ARM.extab": "text",
                        ".rodata": "rodata", ".init_array": "rodata"},  # fmt: skip
        ram_sections={".data": "data", ".bss": "bss", ".stack": "stack"},
        overlay_sections=(),
        fatal_marker="m4 fatal:",
        ns_per_tick=40,  # SysTick and the CMSDK timers run at 25 MHz of virtual time
        elf_machine=40,  # EM_ARM
    ),
    "riscv32": QemuTarget(
        name="riscv32",
        qemu="qemu-system-riscv32",
        machine=("-machine", "virt", "-bios", "none", "-cpu", "rv32,a=false,f=false,d=false"),
        gcc="riscv64-unknown-elf-gcc",
        size="riscv64-unknown-elf-size",
        objdump="riscv64-unknown-elf-objdump",
        cflags=("-march=rv32imc", "-mabi=ilp32"),
        libc="picolibc.specs",  # the picolibc package's link to its libraries
        apt_packages=("gcc-riscv64-unknown-elf", "picolibc-riscv64-unknown-elf", "qemu-system-misc"),
        flash_sections={".text": "text", ".rodata": "rodata", ".init_array": "rodata"},
        # .tdata/.tbss: picolibc's thread-local errno (the one thread's block); .tbss_space reserves
        # .tbss's room, which the linker lays over the next section (firmware/platform/rv32/virt.ld).
        ram_sections={".data": "data", ".tdata": "data", ".tbss_space": "bss", ".bss": "bss", ".stack": "stack"},
        overlay_sections=(".tbss",),
        fatal_marker="rv32 fatal:",
        ns_per_tick=1,  # minstret counts virtual ns
        elf_machine=243,  # EM_RISCV
    ),
    "xtensa-lx106": QemuTarget(
        name="xtensa-lx106",
        qemu="qemu-system-xtensa",
        machine=("-M", "sim", "-cpu", "lx106"),
        gcc="xtensa-lx106-elf-gcc",
        size="xtensa-lx106-elf-size",
        objdump="xtensa-lx106-elf-objdump",
        cflags=(),
        libc="/usr/lib/xtensa-lx106-elf/picolibc.specs",  # XT_PICOLIBC_SPECS in firmware/mk/xtensa-lx106.mk
        apt_packages=("gcc-xtensa-lx106", "picolibc-xtensa-lx106-elf", "qemu-system-misc"),
        flash_sections={".reset_vector": "text", ".vectors": "text", ".text": "text", ".rodata": "rodata", ".init_array": "rodata"},
        ram_sections={".data": "data", ".bss": "bss", ".stack": "stack"},
        overlay_sections=(),
        fatal_marker="xt fatal:",
        ns_per_tick=25,  # CCOUNT runs at 40 MHz of virtual time
        elf_machine=94,  # EM_XTENSA
        cmdline_joined=False,  # the simulator's argv calls hand over each `arg=` as its own string
    ),
}

_M4 = TARGETS["cortex-m4"]
QEMU = _M4.qemu
GCC = _M4.gcc
SIZE = _M4.size
APT_PACKAGES = _M4.apt_packages
APT_COMMAND = _M4.apt_command
NS_PER_TICK = _M4.ns_per_tick
FATAL_MARKER = _M4.fatal_marker
FATAL_MARKERS = tuple(t.fatal_marker for t in TARGETS.values())


class QemuError(RuntimeError):
    """A program did not run to its own exit under QEMU."""


class QemuTimeout(QemuError):
    """The program ran past the time limit (and was killed)."""


class QemuCrash(QemuError):
    """The program took a fault, overflowed its stack, or QEMU itself failed."""


class ToolchainMissing(RuntimeError):
    """The target's compiler, libc or QEMU is not installed (and could not be)."""


@dataclass(frozen=True)
class QemuResult:
    returncode: int
    console: str  # semihosting console and UART0, in order
    command: list[str]


def qemu_target(name: str) -> QemuTarget:
    if name not in TARGETS:
        raise ValueError(f"unknown QEMU target {name!r}; expected one of {tuple(TARGETS)}")
    return TARGETS[name]


def target_of(elf: Path) -> QemuTarget:
    """The target an ELF file was built for (its e_machine)."""
    head = Path(elf).read_bytes()[:20]
    if head[:4] != b"\x7fELF" or len(head) < 20:
        raise ValueError(f"{elf}: not an ELF file")
    machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    for t in TARGETS.values():
        if t.elf_machine == machine:
            return t
    raise ValueError(f"{elf}: ELF machine {machine} is none of {tuple(TARGETS)}")


def missing_tools(target: str = "cortex-m4") -> list[str]:
    """What is missing for building and running `target`'s programs (empty when all is there)."""
    t = qemu_target(target)
    missing = [tool for tool in (t.qemu, t.gcc, t.size) if shutil.which(tool) is None]
    if Path(t.libc).is_absolute():
        if not Path(t.libc).is_file():
            missing.append(f"{t.apt_packages[1]} ({t.libc})")
    elif t.gcc not in missing:
        libc = subprocess.run([t.gcc, *t.cflags, f"-print-file-name={t.libc}"], capture_output=True, text=True)
        if not Path(libc.stdout.strip()).is_absolute():
            missing.append(f"{t.apt_packages[1]} ({t.libc})")
    return missing


def qemu_available(target: str = "cortex-m4") -> bool:
    """True when `target`'s QEMU, compiler (with its libc) and size tool are installed."""
    return not missing_tools(target)


def ensure_toolchain(target: str = "cortex-m4") -> None:
    """Install `target`'s Debian packages with apt-get when running as root; otherwise explain how."""
    t = qemu_target(target)
    missing = missing_tools(target)
    if not missing:
        return
    if getattr(os, "geteuid", lambda: -1)() != 0:
        raise ToolchainMissing(f"missing {', '.join(missing)}; install them with: sudo {t.apt_command}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Two test workers may install two targets' packages at once: wait for the other's dpkg lock.
    wait = ["-o", f"DPkg::Lock::Timeout={APT_LOCK_TIMEOUT_S}"]
    install = ["apt-get", *wait, "install", "-y", "--no-install-recommends", *t.apt_packages]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", *wait, "update"], env=env, capture_output=True)
        proc = subprocess.run(install, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ToolchainMissing(f"'{' '.join(install)}' failed:\n{proc.stderr[-2000:]}")
    if missing_tools(target):
        raise ToolchainMissing(f"still missing after apt-get: {', '.join(missing_tools(target))}")


def _semihosting_arg(arg: str) -> str:
    """One argument as the firmware's splitter reads it (QEMU joins `arg=` values with spaces)."""
    if arg == "" or any(c in arg for c in ' \t"\\'):
        arg = '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg


def qemu_command(elf: Path, args: list[str], icount_shift: int = 0, target: str = "cortex-m4") -> list[str]:
    """The QEMU command line that runs `elf` (built for `target`) with argv = [elf stem, *args]."""
    t = qemu_target(target)
    if not 0 <= icount_shift <= 10:
        raise ValueError(f"icount_shift must be in 0..10, not {icount_shift}")
    argv = [_semihosting_arg(a) if t.cmdline_joined else a for a in [elf.stem, *args]]
    if t.cmdline_joined and (len(argv) > MAX_ARGS or len(" ".join(argv).encode()) > CMDLINE_BYTES):
        raise ValueError(f"{elf.name}: at most {MAX_ARGS} arguments and {CMDLINE_BYTES} bytes of command line")
    semihosting = ",".join(["enable=on", "target=native", *("arg=" + a.replace(",", ",,") for a in argv)])
    return [t.qemu, *t.machine, "-nographic", "-monitor", "none",
            "-serial", "stdio", "-no-reboot", "-semihosting-config", semihosting,
            "-icount", f"shift={icount_shift}", "-kernel", str(elf)]  # fmt: skip


def run_elf(elf: Path, args: list[str], cwd: Path, icount_shift: int = 0, timeout: float = DEFAULT_TIMEOUT) -> QemuResult:
    """Run a program (of the target its ELF header names) to its exit; its file arguments are relative to `cwd`.

    Returns the program's exit status; raises QemuTimeout past `timeout` seconds and QemuCrash on a
    fault, a stack overflow or a QEMU failure, naming the ELF and quoting the console's end.
    """
    elf = Path(elf).resolve()
    if not elf.is_file():
        raise FileNotFoundError(f"no such ELF: {elf}")
    t = target_of(elf)
    cmd = qemu_command(elf, args, icount_shift, t.name)
    try:
        proc = subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=timeout)  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        tail = (exc.output or b"").decode(errors="replace")[-1500:]
        raise QemuTimeout(f"{elf} did not finish within {timeout:g} s under QEMU; console so far:\n{tail}") from None
    console = proc.stdout.decode(errors="replace")
    lines = console.splitlines()
    qemu_failed = proc.returncode != 0 and any(ln.startswith(f"{t.qemu}:") for ln in lines)  # e.g. bad ELF
    if proc.returncode < 0 or qemu_failed or any(ln.startswith(t.fatal_marker) for ln in lines):
        raise QemuCrash(f"{elf} crashed under QEMU (exit {proc.returncode}):\n{console[-1500:]}")
    return QemuResult(proc.returncode, console, cmd)


def instructions_from_ticks(ticks: int, shift: int, target: str = "cortex-m4") -> int:
    """Instructions in `ticks` counts of `target`'s counter (SysTick; minstret) under `-icount shift=shift`."""
    return qemu_target(target).instructions(ticks, shift)


def elf_size(elf: Path) -> dict[str, int]:
    """Section sizes in bytes: text (code, vectors), rodata, data, bss, stack, and the totals
    flash_bytes (text + rodata + initial values of data) and ram_bytes (data + bss + stack)."""
    t = target_of(elf)
    sizes = dict.fromkeys(("text", "rodata", "data", "bss", "stack"), 0)
    overlaid = 0
    out = subprocess.run([t.size, "-A", str(elf)], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit():
            kind = t.flash_sections.get(parts[0]) or t.ram_sections.get(parts[0])
            if kind:
                sizes[kind] += int(parts[1])
            elif parts[0] in t.overlay_sections:
                overlaid += int(parts[1])
    # Berkeley totals count every allocated section: a section missing from the tables above shows.
    berkeley = subprocess.run([t.size, "-B", str(elf)], capture_output=True, text=True, check=True).stdout
    text, data, bss = (int(v) for v in berkeley.splitlines()[1].split()[:3])
    if (text, data, bss) != (sizes["text"] + sizes["rodata"], sizes["data"], sizes["bss"] + sizes["stack"] + overlaid):
        raise ValueError(f"{elf}: sections not accounted for: size -A gives {sizes}, size -B {text} {data} {bss}")
    sizes["flash_bytes"] = sizes["text"] + sizes["rodata"] + sizes["data"]
    sizes["ram_bytes"] = sizes["data"] + sizes["bss"] + sizes["stack"]
    return sizes
