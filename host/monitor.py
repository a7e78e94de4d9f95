"""`ecg-host monitor`: a live view of a board (this firmware or a plain AD8232 sketch) on a serial port.

The terminal view (rich, ~4 refreshes a second) shows the last seconds of the ECG, the heart rate
(the board's own, from its RESULTs, with its beats marked in the trace, when it has the BEATS
capability; else `host.heart_rate` on the raw samples), lead-off and saturation now, the latest window's class
probabilities and status, counts per label and per status, and the link's error counters. Binary input
shows the device's own RESULTs; text input and a device without a model (an Uno) are classified on the
host with `--model` (`HostClassifier`).
When stdout is not a terminal it prints one plain status line a second instead; `--plot` opens a
matplotlib window instead. Ctrl-C (or SIGTERM) ends it cleanly with a one-line summary and exit 0.
"""

from __future__ import annotations

import argparse
import io
import signal
import sys
import time
from pathlib import Path
from typing import Any

from export.protocol_defs import Capability, ResultSource, WindowStatus
from pipeline.util.atomic import write_text_atomic
from pipeline.util.console import DISCLAIMER

from .monitor_state import MonitorState, Window, device_window

REFRESH_S = 0.25  # terminal view
LOG_EVERY_S = 1.0  # plain status lines
READ_S = 0.05


class MonitorError(ValueError):
    """A monitor setting that cannot work (the message says which and why)."""


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


class _Views:
    """The terminal view (rich Live), plain log lines, or the --plot window; refreshed from the main loop."""

    def __init__(self, args: argparse.Namespace, out: Any) -> None:
        from rich.console import Console

        self.out = out
        self.plot = None
        self.live = None
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self.console = Console(file=out, force_terminal=self.tty or None)
        self.last = 0.0
        if args.plot:
            from .monitor_view import PlotView

            self.plot = PlotView()
        elif self.tty:
            from rich.live import Live

            self.live = Live(console=self.console, auto_refresh=False, transient=False, redirect_stdout=False, redirect_stderr=False)
            self.live.start()
        else:
            print(DISCLAIMER, file=out, flush=True)

    def update(self, state: MonitorState, force: bool = False) -> None:
        from .monitor_view import render, status_line

        now = time.monotonic()
        every = LOG_EVERY_S if self.live is None and self.plot is None else REFRESH_S
        if not force and now - self.last < every:
            return
        self.last = now
        if self.plot is not None:
            self.plot.update(state)
            if self.plot.closed:
                raise KeyboardInterrupt  # the window was closed: stop as Ctrl-C does
        elif self.live is not None:
            self.live.update(render(state, self.console.width), refresh=True)
        else:
            print(status_line(state), file=self.out, flush=True)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
        if self.plot is not None:
            self.plot.close()
            self.plot = None


def save_screen(state: MonitorState, path: Path, width: int) -> None:
    """The last view as text (.txt) or SVG (.svg), through rich's console recording."""
    from rich.console import Console

    from .monitor_view import render

    suffix = path.suffix.lower()
    if suffix not in (".txt", ".svg"):
        raise MonitorError(f"--save-screen {path}: give a .txt or .svg file")
    rec = Console(record=True, width=width, file=io.StringIO(), force_terminal=True, color_system="truecolor")
    rec.print(render(state, width))
    text = rec.export_svg(title="ecg-host monitor") if suffix == ".svg" else rec.export_text()
    write_text_atomic(path, text)


def monitor(args: argparse.Namespace, out: Any = None) -> int:
    """Run the monitor until --seconds passed, Ctrl-C/SIGTERM, or the --plot window closes."""
    out = out or sys.stdout
    if args.save_screen and Path(args.save_screen).suffix.lower() not in (".txt", ".svg"):
        raise MonitorError(f"--save-screen {args.save_screen}: give a .txt or .svg file")
    if args.seconds < 0:
        raise MonitorError(f"--seconds {args.seconds}: must be >= 0 (0: until Ctrl-C)")
    if args.plot:
        from .monitor_view import gui_backend

        gui_backend()  # PlotError (a ValueError: one line, exit 2) before the port is opened
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _monitor(args, out)
    except KeyboardInterrupt:  # before the first sample (opening the port, estimating the rate, loading the model)
        print("monitor: stopped before the view started", file=out, flush=True)
        return 0


def _monitor(args: argparse.Namespace, out: Any) -> int:
    from .sources import open_source

    source = open_source(args.port, baud=args.baud, mode="text" if args.text else "auto", rate=args.rate,
                         adc_bits=args.adc_bits, timeout=args.timeout)  # fmt: skip
    with source:
        info = source.info
        if info is not None:
            from .devices import info_summary

            info_line = info_summary(info).splitlines()[0]
            labels = tuple(info.labels)
        else:
            info_line, labels = "", ()
        classifier = None
        note = ""
        on_board = info is not None and bool(Capability(info.capabilities) & Capability.MODEL)
        if on_board:
            if args.model:
                note = "--model ignored: this device classifies on board (its RESULTs are shown)"
        elif args.model:  # text input, or a device without a model (an Uno): classify on the host
            from .host_classifier import HostClassifier

            classifier = HostClassifier.load(args.model, rate_hz=source.rate_hz, adc_bits=source.adc_bits)
            labels = classifier.label_names
        else:
            note = "no model: pass --model CHECKPOINT_OR_BUNDLE to classify" + (" on the host" if info is not None else "")
        state = MonitorState(source.port, source.kind, source.rate_hz, source.rate_estimated, source.adc_bits,
                             info_line, labels, board_beats=source.board_beats)  # fmt: skip
        state.classifier_note = note
        views = _Views(args, out)
        deadline = time.monotonic() + args.seconds if args.seconds else None
        try:
            while deadline is None or time.monotonic() < deadline:
                blocks, results = source.read(READ_S)
                state.set_rate(source.rate_hz, source.rate_estimated)
                state.adc_bits = source.adc_bits
                if classifier is not None:
                    classifier.configure(source.rate_hz, source.adc_bits)
                for b in blocks:
                    state.add_block(b.first_sample, b.values, b.lead_off)
                    if classifier is not None:
                        for w in classifier.feed(b):
                            state.add_window(Window(w.window_index, WindowStatus(w.status).name, w.label, w.probabilities))
                state.add_beats(source.take_beats())
                for r in results:
                    if r.source != ResultSource.LIVE or info is None:
                        continue
                    if state.board_beats and r.has_rhythm:
                        state.add_rhythm(r)
                    if classifier is None:
                        state.add_window(device_window(r, info))
                state.stats = source.stats
                views.update(state)
        except KeyboardInterrupt:
            pass
        finally:
            try:
                views.update(state, force=True)
            finally:
                views.close()
        if args.save_screen:
            save_screen(state, Path(args.save_screen), views.console.width if views.tty else 100)
    from .monitor_view import summary_line

    print(summary_line(state), file=out, flush=True)
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    return monitor(args)


def add_monitor_command(subparsers: Any) -> None:
    """Add `monitor` to ecg-host's subcommands."""
    p = subparsers.add_parser(
        "monitor", help="live view: ECG trace, heart rate, lead-off, class probabilities",
        description="Live view of a board on a serial port: this firmware (binary frames, its own RESULTs) or a plain "
        "AD8232 sketch printing one ADC value per line (classified on the host with --model). Ctrl-C stops it. "
        f"Example: ecg-host monitor --port /dev/ttyUSB0. {DISCLAIMER}",
    )  # fmt: skip
    p.add_argument("--port", required=True, help="serial port of the board, or the pty of simulate/emulate")
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--text", action="store_true", help="the board prints one ADC value per line (default: detect)")
    p.add_argument("--rate", type=float, help="text input: sample rate, Hz (default: estimated from arrival times)")
    p.add_argument("--adc-bits", type=int, help="text input: ADC resolution (default: 10 while every value <= 1023, else 12)")
    p.add_argument("--model", type=Path, help="text input or a device without a model (an Uno): checkpoint (.pt) or bundle directory to classify with on the host")
    p.add_argument("--plot", action="store_true", help="a live matplotlib window instead of the terminal view")
    p.add_argument("--seconds", type=float, default=0.0, help="stop after this many seconds (0: until Ctrl-C)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds without any data before giving up")
    p.add_argument("--save-screen", type=Path, metavar="PATH", help="at exit, write the last view as text (.txt) or SVG (.svg)")
    p.set_defaults(func=cmd_monitor)
