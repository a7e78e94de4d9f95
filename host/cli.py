"""`ecg-host`: the serial host tool. For now: list the serial ports a board may be on."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from serial.tools import list_ports

from pipeline.console import DISCLAIMER, run


def cmd_ports(args: argparse.Namespace) -> int:
    ports = sorted(list_ports.comports(include_links=args.links), key=lambda p: p.device)
    if not ports:
        print("no serial ports found (is the board plugged in?)")
    for p in ports:
        ids = f" [{p.vid:04x}:{p.pid:04x}]" if p.vid is not None and p.pid is not None else ""
        print(f"{p.device}\t{p.description}{ids}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecg-host",
        description=f"Talk to an ecg-edge board over serial (monitor, record, parity and simulate arrive with the host issue). {DISCLAIMER}",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("ports", help="list serial ports")
    p.add_argument("--links", action="store_true", help="include symlinks such as /dev/serial/by-id/*")
    p.set_defaults(func=cmd_ports)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv, (OSError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
