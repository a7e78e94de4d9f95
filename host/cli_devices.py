"""`ecg-host simulate` and `ecg-host emulate`: a device on a pseudo-terminal, in the foreground until Ctrl-C.

`simulate --text` runs the virtual plain AD8232 sketch instead (host/textsim.py: one ADC value per line).

host/cli.py adds them with `add_device_commands(subparsers)`.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any

from .devices import DEFAULT_ICOUNT_SHIFT, Device, DeviceError, SignalOptions, emulate, info_summary, query_info, simulate, speed_arg

POLL_S = 0.5
TEXT_RATE = 250
TEXT_ADC_BITS = 10

SIMULATE_EXAMPLES = """Examples:
  ecg-host simulate --bundle runs/demo/bundle --link /tmp/ttyECG
      this firmware on a pty (binary protocol); then: ecg-host monitor --port /tmp/ttyECG
  ecg-host simulate --bundle runs/demo/bundle --record data/mitdb/100 --loop
      a WFDB record as the ADC input
  ecg-host simulate --bundle runs/demo/bundle --speed 100 --link /tmp/ttyECG
      the device's clock 100 times faster than real time (25000 samples/s; ecg-host soak uses it)
  ecg-host simulate --text --link /tmp/ttyAD8232
      a plain AD8232 sketch at 250 Hz, 10-bit values, 72 bpm
  ecg-host simulate --text --rate 500 --adc-bits 12 --heart-rate 90 --lead-off 30,5 --seed 3
      faster, 12-bit, electrodes off for 5 s every 30 s
"""


def _lead_off(text: str) -> tuple[int, int]:
    try:
        every, length = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected EVERY_S,FOR_S (e.g. 30,5)") from None
    if not 0 < length < every:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 < FOR_S < EVERY_S")
    return every, length


def _speed(text: str) -> float:
    try:
        value = float(text)
        speed_arg(value)
    except (ValueError, DeviceError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}" if isinstance(exc, DeviceError) else f"{text!r}: not a number") from None
    return value


def _common(p: argparse.ArgumentParser, bundle_required: bool = True) -> None:
    p.add_argument("--bundle", type=Path, required=bundle_required,
                   help="bundle directory (ecg-export bundle / demo)" + ("" if bundle_required else "; not with --text"))  # fmt: skip
    src = p.add_mutually_exclusive_group()
    src.add_argument("--record", type=Path, help="WFDB record (path without extension) to play as the ADC input")
    src.add_argument("--synthetic", action="store_true", help="the firmware's AD8232 signal model as the ADC input (default)")
    p.add_argument("--lead", help="lead of --record to play (default: the bundle's)")
    p.add_argument("--loop", action="store_true", help="play --record again at its end (default: the electrodes come off there)")
    p.add_argument("--heart-rate", type=int, default=72, help="signal model: mean heart rate, bpm (default 72)")
    p.add_argument("--seed", type=int, default=1, help="signal model: random seed (default 1)")
    p.add_argument("--lead-off", type=_lead_off, metavar="EVERY_S,FOR_S", help="signal model: electrodes off for FOR_S seconds every EVERY_S")
    p.add_argument("--link", type=Path, help="also make this symlink to the device's pty (like socat's link=)")
    p.add_argument("--work", type=Path, help="build cache (default $ECG_EDGE_CACHE/devices or ~/.cache/ecg-edge/devices)")
    p.add_argument("--plotter", action="store_true",
                   help="start in the Arduino Serial Plotter's text mode (as a sketch built with ECG_APP_TEXT 1); "
                   "monitor and record read it like a plain-text sketch")  # fmt: skip


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _serve(dev: Any) -> None:
    """Say the port is ready and wait until Ctrl-C, SIGTERM or the device's end."""
    print(f"serial port ready: {dev.link or dev.port} (any baud rate; Ctrl-C stops the device)", flush=True)
    try:
        while dev.alive:
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        print()


def _run(kind: str, start: Any, args: argparse.Namespace, **extra: Any) -> int:
    from export.onnx_export import ExportError
    from export.qemu import ToolchainMissing

    # SIGTERM ends the command like Ctrl-C: the device is stopped, not left behind.
    signal.signal(signal.SIGTERM, _interrupt)
    opts = SignalOptions(args.heart_rate, args.seed, args.lead_off)
    what = f"record {args.record}" if args.record else "the AD8232 signal model"
    print(f"building and starting the {kind} device ({what}) ...", flush=True)
    if args.plotter:
        extra["extra_args"] = ("--plotter",)
    try:
        dev: Device = start(args.bundle, record=args.record, synthetic=args.record is None, link=args.link,
                            signal_opts=opts, loop=args.loop, lead=args.lead, work=args.work, **extra)  # fmt: skip
    except (DeviceError, ExportError, ToolchainMissing, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with dev:
        speed = extra.get("speed", 1.0)
        print(f"{kind} device on {dev.port}" + (f" (link {dev.link})" if dev.link else "")
              + (f", its clock {speed:g} x real time" if speed != 1.0 else ""))  # fmt: skip
        try:
            print(info_summary(query_info(dev.port)))
        except DeviceError as exc:
            print(f"warning: {exc}", file=sys.stderr)
        _serve(dev)
        if not dev.alive and dev.returncode not in (0, None):
            print(f"error: the device stopped (status {dev.returncode}):\n{dev.console()[-2000:]}", file=sys.stderr)
            return 1
    counters = dev.counters()
    if counters:
        print("device counters: " + ", ".join(f"{k} {v}" for k, v in counters.items()))
    return 0


def _run_text(args: argparse.Namespace) -> int:
    from .textsim import TextDevice

    # SIGTERM ends the command like Ctrl-C: the pty is closed, the link removed.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        dev = TextDevice(rate=args.rate or TEXT_RATE, heart_rate=args.heart_rate, seed=args.seed, lead_off=args.lead_off,
                         adc_bits=args.adc_bits or TEXT_ADC_BITS, link=args.link)  # fmt: skip
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with dev:
        off = f", electrodes off {args.lead_off[1]} s every {args.lead_off[0]} s" if args.lead_off else ""
        print(f"virtual AD8232 sketch on {dev.port}" + (f" (link {dev.link})" if dev.link else ""))
        print(f"{dev.rate} Hz, {dev.adc_bits}-bit ADC, {args.heart_rate} bpm{off}: one ADC value per line, '!' while a lead is off")
        _serve(dev)
    print(f"lines: written {dev.lines_written}, dropped {dev.lines_dropped} (no client reading)")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    if args.text:
        wrong = [opt for opt, given in (("--bundle", args.bundle), ("--record", args.record), ("--synthetic", args.synthetic),
                                        ("--lead", args.lead), ("--loop", args.loop), ("--work", args.work),
                                        ("--speed", args.speed != 1.0), ("--plotter", args.plotter)) if given]  # fmt: skip
        if wrong:
            args.parser.error(f"--text runs the plain-text sketch: {', '.join(wrong)} do not apply")
        return _run_text(args)
    wrong = [opt for opt, given in (("--rate", args.rate is not None), ("--adc-bits", args.adc_bits is not None)) if given]
    if wrong:
        args.parser.error(f"{', '.join(wrong)} only apply with --text")
    if args.bundle is None:
        args.parser.error("the following arguments are required: --bundle (or --text for the plain-text sketch)")
    return _run("virtual", simulate, args, speed=args.speed)


def cmd_plotter(args: argparse.Namespace) -> int:
    """Switch a running board (or virtual device) between frames and the Serial Plotter's text lines."""
    from export.protocol_defs import CommandCode

    from .link import DeviceLink

    with DeviceLink(args.port, args.baud) as link:
        link.command(CommandCode.TEXT, 0 if args.off else 1, args.timeout)
    print(f"{args.port}: " + ("frames again (ecg-host monitor, record, parity)" if args.off else
                              "text lines for the Arduino IDE's Serial Plotter (ecg-host monitor reads them too; --off switches back)"))  # fmt: skip
    return 0


def cmd_emulate(args: argparse.Namespace) -> int:
    return _run("emulated Cortex-M4", emulate, args, icount_shift=args.icount_shift)


EMULATE_EXAMPLES = """Examples:
  ecg-host emulate --bundle runs/demo/bundle --link /tmp/ttyECG      then: ecg-host monitor --port /tmp/ttyECG
  ecg-host emulate --bundle runs/demo/bundle --record ../shared/data/mitdb/100 --link /tmp/ttyECG
  ecg-host parity --port /tmp/ttyECG --bundle runs/demo/bundle --data runs/demo/dataset
"""


def add_device_commands(subparsers: Any) -> None:
    """Add `simulate` and `emulate` to ecg-host's subcommands."""
    p = subparsers.add_parser("simulate", help="virtual device on a pseudo-terminal (host build of the firmware, or --text: a plain AD8232 sketch)",
                              description="Run the firmware's host build as a virtual device on a pseudo-terminal,\n"
                              "fed by the AD8232 signal model or a record, until Ctrl-C. With --text, run a virtual\n"
                              "plain AD8232 example sketch instead: one ADC value per line, '!' while a lead is off\n"
                              "(no bundle needed).", epilog=SIMULATE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    _common(p, bundle_required=False)
    p.add_argument("--text", action="store_true", help="a plain AD8232 sketch printing one ADC value per line (as SparkFun's example)")
    p.add_argument("--rate", type=int, help="--text: lines per second (default 250)")
    p.add_argument("--adc-bits", type=int, choices=(10, 12), help="--text: ADC resolution (default 10, an Uno's)")
    p.add_argument("--speed", type=_speed, default=1.0, metavar="N",
                   help="the device's clock N times faster than real time (sample timer, idle flush, inference times; "
                   "default 1; up to 1000)")  # fmt: skip
    p.set_defaults(func=cmd_simulate, parser=p)
    p = subparsers.add_parser("emulate", help="Cortex-M4 image under QEMU on a pseudo-terminal",
                              description="Run the firmware's Cortex-M4 image under qemu-system-arm (mps2-an386, "
                              f"-icount shift={DEFAULT_ICOUNT_SHIFT}: 62.5 M instructions/s) with UART0 on a "
                              "pseudo-terminal, until Ctrl-C.", epilog=EMULATE_EXAMPLES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    _common(p)
    p.add_argument("--icount-shift", type=int, default=DEFAULT_ICOUNT_SHIFT, help="QEMU -icount shift: 2^S ns per instruction (default 4)")
    p.set_defaults(func=cmd_emulate)
    p = subparsers.add_parser("plotter", help="switch a board to the Arduino Serial Plotter's text lines (--off: back to frames)",
                              description="Sends COMMAND TEXT: the board prints ecg:<counts>,hr:<bpm>,lead_off:<0|1> per sample "
                              "and a line per result (firmware/PROTOCOL.md, Text mode) until --off or a power cycle.")  # fmt: skip
    p.add_argument("--port", required=True, help="serial port of the board, or the pty of simulate/emulate")
    p.add_argument("--off", action="store_true", help="back to binary frames")
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the board's ACK")
    p.set_defaults(func=cmd_plotter)
