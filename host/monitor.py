"""`ecg-host monitor`: a live view of a board (this firmware or a plain AD8232 sketch) on a serial port.

The terminal view (rich, ~4 refreshes a second) shows the last seconds of the ECG, the heart rate
(`host.heart_rate` on the raw samples), lead-off and saturation now, the latest window's class
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
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from export.protocol_defs import Capability, ResultSource, WindowStatus
from pipeline.atomic import write_text_atomic
from pipeline.console import DISCLAIMER
from pipeline.device import DEFAULT_RULE, saturated_mask
from pipeline.preprocess import output_probabilities

from .heart_rate import HeartRate

TRACE_S = 5.0
REFRESH_S = 0.25  # terminal view
LOG_EVERY_S = 1.0  # plain status lines
SATURATION_S = 0.5  # "saturated now": over the last this many seconds of good samples
READ_S = 0.05


@dataclass(frozen=True)
class Window:
    """One classified (or refused) window as shown: from a device RESULT or the host classifier."""

    window_index: int
    status: str  # WindowStatus name
    label: str | None
    probabilities: dict[str, float] | None


def device_window(result: Any, info: Any) -> Window:
    """A device RESULT as shown: probabilities = softmax of its int8 logits dequantized with INFO's output
    scale and zero point."""
    labels = tuple(info.labels)
    probs = None
    if result.logits and info.output_scale > 0 and len(result.logits) == len(labels):
        p = output_probabilities(np.asarray(result.logits), info.output_scale, info.output_zero_point)
        probs = {n: float(v) for n, v in zip(labels, p)}
    label = labels[result.label] if 0 <= result.label < len(labels) else None
    return Window(int(result.window_index), WindowStatus(result.status).name, label, probs)


class MonitorState:
    """Everything the views show, updated from the source's blocks and results."""

    def __init__(self, port: str, kind: str, rate_hz: float, rate_estimated: bool, adc_bits: int,
                 info_line: str = "", labels: tuple[str, ...] = (), trace_seconds: float = TRACE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.port, self.kind, self.info_line = port, kind, info_line
        self.rate_estimated, self.adc_bits = rate_estimated, adc_bits
        self.trace_seconds = trace_seconds
        self.clock = clock
        self.started = clock()
        self.samples = 0
        self.bpm: float | None = None
        self.hr_history: list[tuple[float, float]] = []
        self.lead_off_now = False
        self.saturated_now = False
        self.latest: Window | None = None
        self.label_counts: Counter[str] = Counter({n: 0 for n in labels})
        self.status_counts: Counter[str] = Counter({s.name: 0 for s in WindowStatus})
        self.stats: dict[str, int] = {}
        self.classifier_note = ""
        self.hr: HeartRate | None = None
        self.rate_hz = 0.0
        self.set_rate(rate_hz, rate_estimated)

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    def set_rate(self, rate_hz: float, estimated: bool) -> None:
        """(Re)start the trace and the heart rate at a new rate (a text rate estimate may be refined)."""
        self.rate_estimated = estimated
        if not rate_hz or rate_hz != rate_hz or abs(rate_hz - self.rate_hz) <= 0.005 * rate_hz:
            return
        self.rate_hz = float(rate_hz)
        n = max(1, int(round(self.trace_seconds * rate_hz)))
        self._values: deque[int] = deque(maxlen=n)
        self._off: deque[bool] = deque(maxlen=n)
        self.hr = HeartRate(self.rate_hz)

    def add_block(self, first_sample: int, values: np.ndarray, lead_off: np.ndarray) -> None:
        values = np.asarray(values)
        lead_off = np.asarray(lead_off, dtype=bool)
        if values.size == 0:
            return
        self.samples += int(values.size)
        self._values.extend(int(v) for v in values)
        self._off.extend(bool(f) for f in lead_off)
        assert self.hr is not None
        self.hr.feed(values, lead_off, first_sample)
        self.bpm = self.hr.bpm
        if self.bpm is not None:
            self.hr_history.append((self.elapsed, self.bpm))
            del self.hr_history[:-2000]
        self.lead_off_now = bool(lead_off[-1])
        recent_n = max(1, int(SATURATION_S * self.rate_hz))
        v = np.fromiter(self._values, dtype=np.int64)[-recent_n:]
        off = np.fromiter(self._off, dtype=bool)[-recent_n:]
        sat = saturated_mask(v[~off], 2**self.adc_bits - 1)
        self.saturated_now = bool(sat.size) and sat.mean() > DEFAULT_RULE.saturation_max_fraction

    def add_window(self, w: Window) -> None:
        self.latest = w
        self.status_counts[w.status] += 1
        if w.label:
            self.label_counts[w.label] += 1

    def trace(self) -> tuple[np.ndarray, np.ndarray]:
        """The last `trace_seconds` of raw counts and their lead-off flags."""
        return np.fromiter(self._values, dtype=np.int64), np.fromiter(self._off, dtype=bool)

    @property
    def trace_range(self) -> str:
        v, off = self.trace()
        good = v[~off]
        return f"{good.min()}..{good.max()}" if good.size else ""


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
                             info_line, labels)  # fmt: skip
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
                for r in results:
                    if r.source == ResultSource.LIVE and info is not None and classifier is None:
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
