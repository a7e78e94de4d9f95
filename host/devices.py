"""Devices the host talks to without hardware: the virtual device (`simulate`) and the Cortex-M4 image
under QEMU (`emulate`).

Both run the firmware's device program (firmware/harness/device_firmware.c: the application of
firmware/ecg_edge/src/ecg_app.c behind a 250 Hz sample timer) built from a bundle's generated
sources, with its serial link on a pseudo-terminal that any serial client opens like a board's port:

- `simulate`: the host-native build; the pty is created here and its master side handed to the
  program (`--serial fd:N`); inference times in microseconds.
- `emulate`: the Cortex-M4F build under `qemu-system-arm -machine mps2-an386 -icount shift=4` (one
  instruction per 16 ns of virtual time: 62.5 M instructions per second, a Nano 33 BLE-class CPU;
  `wfi` idling keeps virtual time with the wall clock), UART0 on a QEMU pty; inference times in
  instructions.

On a busy desktop nothing is lost silently: the sample timer catches up the ticks a descheduled device
missed (timer_getoverrun), the firmware's ring holds 256 samples (about 1 s; the worst wake-up delay
measured beside two CPU-bound processes and a memory toucher was 20 ms), the pty holds about 16.9 KB
(some 20 s of the stream) for a reader that falls behind, and whatever is lost anyway shows as a jump
of the SAMPLES counter equal to the firmware's `lost` counter (tests/test_live_load.py).

The ADC reads the firmware's AD8232 signal model (`synthetic`) or a WFDB record converted here to
ADC counts (resampled to the bundle's rate, `pipeline.signal.ad8232.mv_to_counts`). Builds are cached per
bundle under `work` (default `$ECG_EDGE_CACHE` or `~/.cache/ecg-edge/devices`).
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator

from export.protocol_defs import CommandCode
from pipeline.signal.spec import PreprocessSpec

from .protocol import Command, Encoder, Info, Reader, decode_message
from .ptys import check_link, make_link, open_pty, remove_link

PROGRAM = "device_firmware"
DEFAULT_ICOUNT_SHIFT = 4
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
BUILD_LOCK_TIMEOUT_S = 900.0
CONSOLE_LINES = 400
REPORT_S = 5  # emulate: seconds of samples between the firmware's counter lines
MAX_SPEED = 1000.0  # simulate --speed: the fastest device clock, times real time
SPEED_DECIMALS = 6  # what device_firmware's --speed parses
_PTY_LINE = re.compile(r"char device redirected to (\S+) \(label (\S+)\)")
_READY = "device: running"


class DeviceError(RuntimeError):
    """A virtual or emulated device could not be built, started, or stopped running."""


# ------------------------------------------------------------------ build


def default_work_dir() -> Path:
    """Where builds are cached: $ECG_EDGE_CACHE/devices or ~/.cache/ecg-edge/devices."""
    root = os.environ.get("ECG_EDGE_CACHE")
    return Path(root) / "devices" if root else Path.home() / ".cache" / "ecg-edge" / "devices"


@dataclass(frozen=True)
class DeviceBuild:
    target: str  # "host", "host-asan" or "cortex-m4"
    program: Path
    gen: Path  # the bundle's generated sources
    generated: dict[str, Any]  # gen/generated.json
    extra_cflags: str


def _generate(bundle: Path, gen: Path) -> dict[str, Any]:
    """The bundle's generated sources in `gen`, rewritten only when they changed (keeps make's timestamps)."""
    from export.firmware import generate_firmware

    fresh = gen.with_name(gen.name + ".new")
    shutil.rmtree(fresh, ignore_errors=True)
    info = generate_firmware(bundle, fresh)
    old = gen / "generated.json"
    if old.exists() and json.loads(old.read_text()).get("files") == info["files"]:
        shutil.rmtree(fresh)
        return info
    shutil.rmtree(gen, ignore_errors=True)
    fresh.rename(gen)
    return info


def _lock(lock: IO[str], root: Path) -> None:
    """Exclusive lock on the build cache `root`, waiting at most BUILD_LOCK_TIMEOUT_S for another build."""
    deadline = time.monotonic() + BUILD_LOCK_TIMEOUT_S
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise DeviceError(f"{root} stayed locked by another build for {BUILD_LOCK_TIMEOUT_S:g} s") from None
            time.sleep(0.2)


def build_device(bundle: Path, target: str, work: Path | None = None, *, no_model: bool = False) -> DeviceBuild:
    """Generate the bundle's sources and build the device program for `target` (cached, locked)."""
    from export.crosscheck import make

    bundle = Path(bundle).resolve()
    if not (bundle / "manifest.json").is_file():
        raise DeviceError(f"{bundle}: not a bundle (no manifest.json)")
    if target == "cortex-m4":
        from export.qemu import ensure_toolchain

        ensure_toolchain()
    work = Path(work or default_work_dir()).resolve()
    key = hashlib.sha256(str(bundle).encode()).hexdigest()[:12]
    root = work / f"{bundle.name}-{key}"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        _lock(lock, root)
        info = _generate(bundle, root / "generated")
        flags = "-DECG_APP_NO_MODEL=1" if no_model else ""  # the Makefile sizes the interpreter to the model
        build = root / f"build-{target}{'-nomodel' if no_model else ''}"
        make(target, root / "generated", build, [PROGRAM], flags)
    program = build / (f"{PROGRAM}.elf" if target == "cortex-m4" else PROGRAM)
    return DeviceBuild(target, program, root / "generated", info, flags)


# ------------------------------------------------------------------ ADC input


# Lead names that stand for each other when a record lacks the bundle's (MIT-BIH calls lead II "MLII").
EQUIVALENT_LEADS = {"II": ("MLII",), "MLII": ("II",)}


def record_samples(record: Path, bundle: Path, out: Path, lead: str | None = None) -> int:
    """Convert a WFDB record (path without extension) to the device's samples file: `lead` (default:
    the bundle's lead, or an equivalent name), resampled to the bundle's rate, as AD8232 ADC counts
    (`mv_to_counts`); one uint32 LE per sample, lead-off bit clear. Returns the number of samples."""
    import numpy as np

    from export.bundle import read_manifest
    from pipeline.signal.ad8232 import AD8232Config, mv_to_counts
    from pipeline.signal.preprocess import resample
    from pipeline.data.records import read_record

    manifest = read_manifest(Path(bundle))
    spec = PreprocessSpec.from_dict(manifest["spec"])
    record = Path(record)
    if not Path(str(record) + ".hea").exists():
        raise DeviceError(f"{record}: no WFDB header ({record.name}.hea) there")
    if lead:
        leads = [lead]
    else:
        leads = [name for first in manifest["leads"] for name in (first, *EQUIVALENT_LEADS.get(first.upper(), ()))]
    rec = read_record(record, leads, fallback=lead is None, hash_files=False)
    raw = mv_to_counts(resample(rec.signal[0], rec.fs, spec.fs), AD8232Config())
    if raw.size == 0:
        raise DeviceError(f"{record}: no samples")
    raw.astype("<u4").tofile(Path(out))  # bits 0-15 ADC, bit 16 lead-off (clear)
    return int(np.asarray(raw).size)


@dataclass(frozen=True)
class SignalOptions:
    """The firmware's AD8232 signal model (firmware/ecg_edge/src/ecg_signal_model.h)."""

    heart_rate: int = 72
    seed: int = 1
    lead_off: tuple[int, int] | None = None  # (every s, for s): a lead-off stretch at the end of each period

    def args(self) -> list[str]:
        out = ["--heart-rate", str(self.heart_rate), "--seed", str(self.seed)]
        if self.lead_off:
            out += ["--lead-off", f"{self.lead_off[0]},{self.lead_off[1]}"]
        return out


def speed_arg(speed: float) -> str:
    """`speed` as device_firmware's --speed decimal; DeviceError unless 10^-6 <= speed <= MAX_SPEED."""
    import math

    if not isinstance(speed, (int, float)) or not math.isfinite(speed) or not 10.0**-SPEED_DECIMALS <= speed <= MAX_SPEED:
        raise DeviceError(f"speed {speed!r}: expected a number from {10.0**-SPEED_DECIMALS:g} to {MAX_SPEED:g} (times real time)")
    return f"{speed:.{SPEED_DECIMALS}f}".rstrip("0").rstrip(".")


def _adc_args(bundle: Path, record: Path | None, synthetic: bool, signal_opts: SignalOptions | None, loop: bool, lead: str | None, scratch: Path) -> list[str]:
    if record is not None and synthetic:
        raise DeviceError("give a record or the synthetic signal, not both")
    if record is None:
        return (signal_opts or SignalOptions()).args()
    samples = scratch / "samples.bin"
    record_samples(Path(record), bundle, samples, lead)
    return ["--samples", str(samples)] + (["--loop"] if loop else [])


# ------------------------------------------------------------------ running device


@dataclass
class Device:
    """A running virtual or emulated device: its serial port (`port`, and `link` when asked for) and its console."""

    kind: str  # "simulate" or "emulate"
    port: str
    command: list[str]
    build: DeviceBuild
    link: Path | None = None
    _proc: subprocess.Popen | None = field(default=None, repr=False)
    _console: collections.deque = field(default_factory=lambda: collections.deque(maxlen=CONSOLE_LINES), repr=False)
    _scratch: tempfile.TemporaryDirectory | None = field(default=None, repr=False)
    _threads: list[threading.Thread] = field(default_factory=list, repr=False)
    _exit: int | None = field(default=None, repr=False)

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """The program's exit status once it ended (negative: killed by that signal), else None."""
        return self._exit if self._proc is None else self._proc.poll()

    def console(self) -> str:
        """The device's console so far (the program's stderr; QEMU's semihosting console), last lines."""
        return "\n".join(self._console)

    def counters(self) -> dict[str, int]:
        """The firmware's latest counters ("device: counters ..."): simulate prints them when it stops
        (after close()), emulate every REPORT_S seconds."""
        history = self.counter_history()
        return history[-1] if history else {}

    def counter_history(self) -> list[dict[str, int]]:
        """Every counters line the firmware printed so far (of the console's last CONSOLE_LINES), oldest first."""
        return [{k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)} for line in self._console if line.startswith("device: counters")]

    def check(self) -> None:
        """Raise DeviceError (with the console's end) when the device is no longer running."""
        if not self.alive:
            raise DeviceError(f"the {self.kind} device ({self.build.program}) exited with status {self.returncode}:\n{self.console()[-2000:]}")

    def close(self) -> str:
        """Stop the device (SIGTERM, then SIGKILL), remove the link; returns the console."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(STOP_TIMEOUT_S)
            self._exit = proc.returncode
            for t in self._threads:
                t.join(STOP_TIMEOUT_S)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        remove_link(self.link)
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None
        return self.console()

    def _follow(self, stream: IO[bytes], ready: threading.Event, port_box: list[str]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\r\n")
            self._console.append(line)
            m = _PTY_LINE.search(line)
            if m:
                port_box.append(m.group(1))
            if line.startswith(_READY):
                ready.set()
        ready.set()  # EOF: the process ended; the caller checks


def _start(kind: str, build: DeviceBuild, command: list[str], link: Path | None, scratch: tempfile.TemporaryDirectory,
           port: str | None, pass_fds: tuple[int, ...] = (), cwd: Path | None = None) -> Device:
    link = check_link(link, DeviceError)
    # Same process group: Ctrl-C in a terminal stops the device too (it prints its counters on SIGINT).
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            pass_fds=pass_fds, cwd=cwd)  # fmt: skip
    dev = Device(kind, port or "", command, build, None, proc, _scratch=scratch)
    ready = threading.Event()
    port_box: list[str] = []
    for stream in (proc.stdout, proc.stderr):
        t = threading.Thread(target=dev._follow, args=(stream, ready, port_box), daemon=True)
        t.start()
        dev._threads.append(t)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and not (ready.is_set() and (dev.port or port_box)):
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    if not dev.port and port_box:
        dev.port = port_box[0]
    if proc.poll() is not None or not ready.is_set() or not dev.port:
        time.sleep(0.1)
        console = dev.console()
        dev.close()
        what = "exited" if proc.poll() is not None else f"did not start within {START_TIMEOUT_S:g} s"
        raise DeviceError(f"the {kind} device {what}: {' '.join(command)}\n{console[-2000:]}")
    if link is not None:
        try:
            make_link(link, dev.port, DeviceError)
        except DeviceError:
            dev.close()
            raise
        dev.link = link
    return dev


@contextlib.contextmanager
def _removed_on_error(scratch: tempfile.TemporaryDirectory) -> Iterator[None]:
    """Remove the scratch directory when the block fails."""
    try:
        yield
    except BaseException:
        scratch.cleanup()
        raise


def _set_up(
    kind: str, bundle: Path, target: str, work: Path | None,
    record: Path | None, synthetic: bool, signal_opts: SignalOptions | None, loop: bool, lead: str | None, *, no_model: bool = False,
) -> tuple[DeviceBuild, tempfile.TemporaryDirectory, list[str]]:  # fmt: skip
    """What `simulate` and `emulate` start from: the built program, a scratch directory and the ADC's arguments."""
    bundle = Path(bundle)
    build = build_device(bundle, target, work, no_model=no_model)
    scratch = tempfile.TemporaryDirectory(prefix=f"ecg-{kind}-")
    with _removed_on_error(scratch):
        adc = _adc_args(bundle, Path(record) if record else None, synthetic and record is None, signal_opts, loop, lead, Path(scratch.name))
    return build, scratch, adc


def simulate(
    bundle: Path,
    record: Path | None = None,
    synthetic: bool = True,
    link: Path | None = None,
    *,
    signal_opts: SignalOptions | None = None,
    loop: bool = False,
    lead: str | None = None,
    work: Path | None = None,
    no_model: bool = False,
    sanitize: bool = False,
    speed: float = 1.0,
    extra_args: tuple[str, ...] = (),
) -> Device:
    """Start the virtual device (host build) on a new pseudo-terminal; returns it running.

    `speed`: the device's clocks (sample timer, milliseconds, inference clock) run this many times
    faster than real time: live SAMPLES come at speed x the rate, the idle flush and inference times
    are in device time. REPLAY_SAMPLES are taken as fast as the credits allow at any speed.

    `record` (a WFDB path) replaces the signal model (`synthetic`); `loop` plays it again at its end
    (otherwise the electrodes come off there). `no_model` builds ECG_APP_NO_MODEL=1 (what an Uno
    runs), `sanitize` the AddressSanitizer/UBSan build; `extra_args` go to the program (e.g.
    ("--stall", "2,2500"): see firmware/harness/device_firmware.c).
    """
    target = "host-asan" if sanitize else "host"
    clock = [] if speed == 1 else ["--speed", speed_arg(speed)]
    build, scratch, adc = _set_up("simulate", bundle, target, work, record, synthetic, signal_opts, loop, lead, no_model=no_model)
    with _removed_on_error(scratch):
        master, slave, port = open_pty()
    try:
        command = [str(build.program), "--serial", f"fd:{master}", *adc, *clock, *extra_args]
        return _start("simulate", build, command, link, scratch, port, pass_fds=(master,))
    finally:
        # The device holds the master; nobody holds the slave until a client opens `port`.
        os.close(master)
        os.close(slave)


def semihosting_config(argv: list[str]) -> str:
    """`-semihosting-config` with `argv` as the program's command line (firmware/platform/semihost/semihost.c splits it)."""
    quoted = []
    for a in argv:
        if a == "" or any(c in a for c in ' \t"\\'):
            a = '"' + a.replace("\\", "\\\\").replace('"', '\\"') + '"'
        quoted.append("arg=" + a.replace(",", ",,"))
    return ",".join(["enable=on", "target=native", *quoted])


def qemu_device_command(elf: Path, args: list[str], icount_shift: int = DEFAULT_ICOUNT_SHIFT) -> list[str]:
    """The QEMU command of `emulate`: UART0 on a new pty, semihosting for arguments, files and console."""
    from export.qemu import CMDLINE_BYTES, MAX_ARGS, QEMU

    argv = [Path(elf).stem, *args]
    config = semihosting_config(argv)
    if len(argv) > MAX_ARGS or len(" ".join(argv).encode()) > CMDLINE_BYTES:
        raise DeviceError(f"{elf}: at most {MAX_ARGS} arguments and {CMDLINE_BYTES} bytes of command line")
    return [QEMU, "-machine", "mps2-an386", "-cpu", "cortex-m4", "-nographic", "-monitor", "none",
            "-chardev", "pty,id=uart0", "-serial", "chardev:uart0", "-no-reboot",
            "-semihosting-config", config, "-icount", f"shift={icount_shift},align=on", "-kernel", str(elf)]  # fmt: skip


def emulate(
    bundle: Path,
    record: Path | None = None,
    synthetic: bool = True,
    link: Path | None = None,
    *,
    signal_opts: SignalOptions | None = None,
    loop: bool = False,
    lead: str | None = None,
    work: Path | None = None,
    icount_shift: int = DEFAULT_ICOUNT_SHIFT,
    report_s: int = REPORT_S,
    extra_args: tuple[str, ...] = (),
) -> Device:
    """Start the Cortex-M4 image under QEMU with UART0 on a pseudo-terminal; returns it running.

    QEMU is stopped with a signal, so the firmware prints its counters every `report_s` seconds of
    samples instead of at the end (Device.counters() gives the latest)."""
    if not 0 <= icount_shift <= 10:
        raise DeviceError(f"icount shift must be in 0..10, not {icount_shift}")
    build, scratch, adc = _set_up("emulate", bundle, "cortex-m4", work, record, synthetic, signal_opts, loop, lead)
    with _removed_on_error(scratch):
        command = qemu_device_command(build.program, [*adc, "--report", str(report_s), *extra_args], icount_shift)
    return _start("emulate", build, command, link, scratch, None, cwd=Path(scratch.name))


# ------------------------------------------------------------------ a first word with the device


def query_info(port: str, timeout: float = 10.0) -> Info:
    """Ask the device on `port` for its INFO (GET_INFO, resent every second); DeviceError on timeout."""
    import serial

    enc = Encoder(random.randrange(1 << 16))  # a fresh seq: never mistaken for a retransmission
    reader = Reader()
    deadline = time.monotonic() + timeout
    with serial.Serial(port, 115200, timeout=0.05) as ser:
        ser.reset_input_buffer()
        asked = 0.0
        while time.monotonic() < deadline:
            if time.monotonic() - asked > 1.0:
                ser.write(enc.encode(Command(CommandCode.GET_INFO)))
                asked = time.monotonic()
            for frame in reader.feed(ser.read(4096)):
                try:
                    msg = decode_message(frame)
                except ValueError:
                    continue
                if isinstance(msg, Info):
                    return msg
    raise DeviceError(f"no INFO from {port} within {timeout:g} s")


def info_summary(info: Info) -> str:
    caps = ", ".join(c.name.lower() for c in type(info.capabilities) if c in info.capabilities) or "none"
    unit = "instructions" if int(info.time_unit) == 1 else "us"
    return (
        f"{info.firmware}, backend {info.backend}, model {info.model_sha256.hex()[:16]}..., spec {info.spec_fingerprint.hex()}\n"
        f"{info.rate_hz} Hz, window {info.window}, hop {info.hop}, {info.adc_bits}-bit ADC, labels {', '.join(info.labels)}, "
        f"capabilities: {caps}, inference time in {unit}"
    )
