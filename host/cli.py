"""`ecg-host`: the serial host tool (ports, monitor, record, parity, soak, simulate, emulate, demo)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from pipeline.util.console import DISCLAIMER, run
from pipeline.util.threads import prepare_openmp

from .ports import add_ports_command


def cmd_parity(args: argparse.Namespace) -> int:
    from .parity import print_outcome, run_parity, summary

    report, failed = run_parity(
        args.port, args.bundle, args.data, baud=args.baud, limit=args.limit, streams=args.streams,
        synthetic_seconds=args.synthetic_seconds, cpu_hz=args.cpu_mhz * 1e6, timeout=args.timeout, out=args.out,
        progress=not args.no_progress,
    )  # fmt: skip
    return print_outcome(summary(report), f"{args.out}, {args.out.with_suffix('.png')}" if args.out else None, failed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecg-host",
        description=f"Talk to an ecg-edge board over serial: list ports, check a device against the Python reference, run a virtual or emulated device. {DISCLAIMER}",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_ports_command(sub)
    p = sub.add_parser(
        "parity",
        help="check a running device against the Python reference over the serial link",
        description="Sends the test split to the device as REPLAY windows (model alone) and REPLAY sample streams "
        "(whole device path) and compares its RESULTs with TFLM and the Python device path; exits 1 past tolerance. "
        "Example: ecg-host parity --port /dev/ttyUSB0 --bundle runs/demo/bundle --data runs/demo/dataset --out parity.json",
    )
    p.add_argument("--port", required=True, help="serial port of the board, or the pty of simulate/emulate")
    p.add_argument("--bundle", type=Path, required=True, help="the bundle the device's firmware was generated from")
    p.add_argument("--data", type=Path, required=True, help="data set: test windows and test records")
    p.add_argument("--out", type=Path, help="report JSON (and a PNG of device vs float probabilities beside it)")
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--limit", type=int, default=0, help="only the first N test windows (0: all)")
    p.add_argument("--streams", type=int, default=0, help="only the first N test records as streams, plus one synthetic stream (0: all)")
    p.add_argument("--synthetic-seconds", type=float, default=60.0)
    p.add_argument("--cpu-mhz", type=float, default=64.0, help="clock used to turn instruction counts into ms")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for any answer")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_parity)
    from .cli_devices import add_device_commands

    add_device_commands(sub)
    from .demo import add_demo_command

    add_demo_command(sub)
    from .record import add_record_command

    add_record_command(sub)
    from .monitor import add_monitor_command

    add_monitor_command(sub)
    from .cli_soak import add_soak_command

    add_soak_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    prepare_openmp()  # before torch loads (demo and parity train and run models)
    from .link import LinkError

    return run(build_parser(), argv, (OSError, ValueError, LinkError))


if __name__ == "__main__":
    sys.exit(main())
