"""`ecg-host ports`: serial ports, what their USB IDs say, and what answers on them."""

from __future__ import annotations

import argparse
from typing import Any

from serial.tools import list_ports


# Well-known USB IDs of boards and USB-serial bridges: (vid, pid or None for any) -> what it probably is.
USB_HINTS = {
    (0x303A, None): "Espressif native USB (ESP32-S2/S3/C3/C6)",
    (0x10C4, 0xEA60): "CP210x USB-UART (many ESP32 DevKits)",
    (0x1A86, 0x7523): "CH340 USB-UART (Arduino clones, ESP32 boards)",
    (0x1A86, 0x55D4): "CH9102/CH340 USB-UART (ESP32 boards)",
    (0x0403, 0x6001): "FTDI FT232R USB-UART",
    (0x0403, 0x6015): "FTDI FT231X USB-UART",
    (0x2341, None): "Arduino board",
    (0x2A03, None): "Arduino board (arduino.org)",
    (0x239A, None): "Adafruit board",
    (0x2E8A, None): "Raspberry Pi RP2040 board",
}

PORTS_EXAMPLES = """Examples:
  ecg-host ports                      every serial port, probed (opening a port resets many Arduino boards)
  ecg-host ports --no-probe           list only: nothing is opened
  ecg-host ports --port /tmp/ttyECG   probe one path, e.g. the pty of `ecg-host simulate` (repeatable)
  ecg-host ports --links --probe-timeout 4
"""


def usb_hint(vid: int | None, pid: int | None) -> str:
    """What a USB VID:PID probably is ("" when unknown)."""
    if vid is None:
        return ""
    return USB_HINTS.get((vid, pid)) or USB_HINTS.get((vid, None), "")


def port_line(device: str, info: object | None) -> str:
    """device, description, VID:PID, manufacturer, serial number and hint of one port, tab-separated."""
    parts = [device]
    if info is None:
        parts.append("(not a listed serial port)")
    else:
        vid, pid = getattr(info, "vid", None), getattr(info, "pid", None)
        parts.append(str(getattr(info, "description", "") or "n/a"))
        extra = [f"[{vid:04x}:{pid:04x}]"] if vid is not None and pid is not None else []
        for label, attr in (("", "manufacturer"), ("serial ", "serial_number")):
            if getattr(info, attr, None):
                extra.append(f"{label}{getattr(info, attr)}")
        hint = usb_hint(vid, pid)
        if hint:
            extra.append(f"({hint})")
        if extra:
            parts.append(" ".join(extra))
    return "\t".join(parts)


def cmd_ports(args: argparse.Namespace) -> int:
    from .sources import probe_port

    listed = {p.device: p for p in list_ports.comports(include_links=args.links)}
    devices = args.port or sorted(listed)
    if not devices:
        print("no serial ports found (is the board plugged in?)")
    for device in devices:
        line = port_line(device, listed.get(device))
        if not args.no_probe:
            line += f"\t-- {probe_port(device, timeout=args.probe_timeout, baud=args.baud).summary}"
        print(line, flush=True)
    return 0


def add_ports_command(sub: Any) -> None:
    """Add `ports` to ecg-host's subcommands."""
    p = sub.add_parser("ports", help="list serial ports and what answers on them",
                       description="List serial ports (path, description, USB VID:PID, manufacturer, serial number,\n"
                       "a hint from well-known USB IDs) and probe each: this firmware (its INFO), a plain AD8232\n"
                       "sketch (text lines), busy, or silent. No port is held afterwards.",
                       epilog=PORTS_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--links", action="store_true", help="include symlinks such as /dev/serial/by-id/*")
    p.add_argument("--no-probe", action="store_true", help="do not open the ports (opening resets many Arduino boards)")
    p.add_argument("--probe-timeout", type=float, default=2.0, metavar="S", help="seconds to wait for an answer per port (default 2)")
    p.add_argument("--port", action="append", metavar="PATH", help="probe just this path (e.g. a pty of `ecg-host simulate`); repeatable")
    p.add_argument("--baud", type=int, default=115200, help="baud rate to probe at (default 115200, this firmware's)")
    p.set_defaults(func=cmd_ports)
