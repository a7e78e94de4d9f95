"""`ecg-host soak`: hours of real records through a device, every RESULT checked (host/soak.py),
optionally through a noisy line (`--faults`, host/faults.py). host/cli.py adds it with `add_soak_command`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .faults import DEFAULT_PAUSE_S, FaultSpec

EXAMPLES = """Examples:
  ecg-host simulate --bundle runs/demo/bundle --speed 100 --link /tmp/ttyECG &
  ecg-host soak --port /tmp/ttyECG --bundle runs/demo/bundle --data ../shared/data/mitdb --data ../shared/data/ptbxl --seconds 3600 --out soak.json
  ecg-host soak --port /tmp/ttyECG --bundle runs/demo/bundle --data runs/demo/dataset --seconds 600 --faults 1e-5
"""


def _rate(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a number") from None
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a probability in [0, 1)")
    return v


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a number") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected more than 0")
    return v


def fault_spec(args: argparse.Namespace) -> FaultSpec | None:
    """The line of --faults and its options (None: a clean line, no proxy)."""
    given = [o for o, v in (("--drop-rate", args.drop_rate), ("--dup-rate", args.dup_rate), ("--pause-rate", args.pause_rate)) if v is not None]
    if args.faults is None:
        if given:
            args.parser.error(f"{', '.join(given)} only apply with --faults")
        return None
    ber = args.faults

    def pick(v: float | None) -> float:
        return ber if v is None else v

    return FaultSpec(ber, pick(args.drop_rate), pick(args.dup_rate), pick(args.pause_rate), args.pause_ms / 1e3, args.fault_seed)


def cmd_soak(args: argparse.Namespace) -> int:
    from .parity import print_outcome
    from .soak import run_soak, summary

    report, failed = run_soak(args.port, args.bundle, args.data, args.seconds, faults=fault_spec(args), baud=args.baud,
                              timeout=args.timeout, resend_s=args.resend_ms / 1e3, out=args.out, progress=not args.no_progress)  # fmt: skip
    return print_outcome(summary(report), str(args.out) if args.out else None, failed)


def add_soak_command(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "soak", help="stream hours of records through a device and check every RESULT (optionally over a noisy line)",
        description="Streams SECONDS of real records (prepared data sets or WFDB record directories, shared equally) "
        "as REPLAY_SAMPLES with credit flow control and resends, checks every RESULT against the Python reference "
        "and the device's SAMPLES against what was sent, and reports losses, link counters and host memory growth. "
        "--faults puts a noisy line between host and device. Exits 1 on any difference or corrupt frame accepted "
        "(on a clean line also on any loss).", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("--port", required=True, help="serial port of the board, or the pty of simulate/emulate")
    p.add_argument("--bundle", type=Path, required=True, help="the bundle the device's firmware was generated from")
    p.add_argument("--data", type=Path, action="append", required=True,
                   help="a prepared data set, or a directory of WFDB records (RECORDS or *.hea); repeat to mix")  # fmt: skip
    p.add_argument("--seconds", type=_positive, required=True, help="seconds of signal to stream")
    p.add_argument("--out", type=Path, help="report JSON")
    p.add_argument("--faults", type=_rate, metavar="BER", help="a noisy line: bit error rate; drops, duplicates and pauses per byte default to it too")
    p.add_argument("--drop-rate", type=_rate, help="--faults: bytes dropped, per byte (default BER)")
    p.add_argument("--dup-rate", type=_rate, help="--faults: bytes duplicated, per byte (default BER)")
    p.add_argument("--pause-rate", type=_rate, help="--faults: line pauses, per byte (default BER)")
    p.add_argument("--pause-ms", type=float, default=DEFAULT_PAUSE_S * 1e3, help=f"--faults: length of a pause (default {DEFAULT_PAUSE_S * 1e3:g} ms)")
    p.add_argument("--fault-seed", type=int, default=0, help="--faults: random seed (default 0)")
    p.add_argument("--resend-ms", type=_positive, default=50.0, help="resend a frame not answered within this (default 50 ms)")
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for any answer, resends included")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_soak, parser=p)
