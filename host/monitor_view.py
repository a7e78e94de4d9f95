"""What `ecg-host monitor` shows: the rich terminal view, the plain status line for logs, and the
matplotlib window (`--plot`). Everything here only reads a `host.monitor_state.MonitorState`."""

from __future__ import annotations

import numpy as np
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.text import Text

from pipeline.util.console import DISCLAIMER

from .monitor_state import MonitorState

TRACE_ROWS = 10
BAR_WIDTH = 30
BEAT_MARK = "▼"  # above the trace, over each beat the board detected
NO_MODEL = "no model: pass --model CHECKPOINT_OR_BUNDLE to classify"

# Braille cell: dot (column, row) -> bit; rows 0..3 from the top.
_DOTS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))


def braille_trace(values: np.ndarray, lead_off: np.ndarray, width: int, rows: int = TRACE_ROWS) -> list[Text]:
    """`values` drawn into `width` x `rows` braille cells (2 x 4 dots each), newest at the right, scaled to
    the good samples' range; cells over lead-off samples are shaded red with LEAD OFF written across."""
    width, rows = max(1, width), max(1, rows)
    px_w, px_h = 2 * width, 4 * rows
    cells = np.zeros((rows, width), dtype=np.int32)
    off_col = np.zeros(width, dtype=bool)
    n = values.size
    if n:
        # pixel column j holds samples [edges[j], edges[j+1]); the window fills the width right-aligned
        edges = np.linspace(0, n, px_w + 1).astype(int)
        good = ~lead_off
        lo, hi = (float(values[good].min()), float(values[good].max())) if good.any() else (0.0, 1.0)
        if hi - lo < 8:
            mid = (hi + lo) / 2
            lo, hi = mid - 4, mid + 4
        scale = (px_h - 1) / (hi - lo)
        prev: float | None = None
        for j in range(px_w):
            a, b = edges[j], max(edges[j + 1], edges[j] + 1)
            seg, off = values[a:b], lead_off[a:b]
            if off.any():
                off_col[j // 2] = True
                prev = None
                continue
            ys = (hi - seg) * scale  # 0 at the top
            top, bottom = float(ys.min()), float(ys.max())
            if prev is not None:  # join to the previous column so steep QRS edges stay connected
                top, bottom = min(top, prev), max(bottom, prev)
            prev = float(ys[-1])
            for y in range(int(round(top)), int(round(bottom)) + 1):
                y = min(max(y, 0), px_h - 1)
                cells[y // 4, j // 2] |= _DOTS[j % 2][y % 4]
    lines = []
    for r in range(rows):
        chars = ["░" if off_col[c] else chr(0x2800 + int(cells[r, c])) for c in range(width)]
        styles = ["red" if off_col[c] else "green" for c in range(width)]
        if r == rows // 2:
            tag = " LEAD OFF "
            for a, b in _runs(off_col):
                if b - a >= len(tag):
                    start = a + (b - a - len(tag)) // 2
                    chars[start : start + len(tag)] = list(tag)
                    styles[start : start + len(tag)] = ["bold white on red"] * len(tag)
        line = Text()
        for ch, st in zip(chars, styles):
            line.append(ch, style=st)
        lines.append(line)
    return lines


def beat_marks(n: int, beats: np.ndarray, width: int) -> Text:
    """One row of `width` cells over a `braille_trace` of `n` samples: BEAT_MARK above the cells holding
    the sample positions `beats`."""
    width = max(1, width)
    row = [" "] * width
    if n:
        edges = np.linspace(0, n, 2 * width + 1).astype(int)  # as braille_trace: pixel column j holds [edges[j], edges[j+1])
        for b in np.asarray(beats, dtype=np.int64):
            if 0 <= b < n:
                row[min(width - 1, int(np.searchsorted(edges, b, side="right") - 1) // 2)] = BEAT_MARK
    return Text("".join(row), style="bold magenta")


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    m = np.concatenate([[False], mask, [False]]).astype(np.int8)
    d = np.flatnonzero(np.diff(m))
    return [(int(a), int(b)) for a, b in zip(d[::2], d[1::2])]


def _bpm_text(bpm: float | None) -> str:
    return f"HR {bpm:.0f} bpm" if bpm is not None else "HR -- bpm"


def _rhythm_text(state: MonitorState) -> str:
    """Where the heart rate comes from; the board's RR irregularity when it sends one."""
    if not state.board_beats:
        return ""
    irr = state.rr_irregularity
    return f"(board)  RR irregularity {100 * irr:.1f} %" if irr is not None and state.bpm is not None else "(board)  RR irregularity --"


def signal_state(state: MonitorState) -> tuple[str, str]:
    """(text, rich style) of the electrode/ADC state now."""
    if state.samples == 0:
        return "waiting for samples", "yellow"
    if state.lead_off_now:
        return "LEAD OFF", "bold white on red"
    if state.saturated_now:
        return "SATURATED", "bold black on yellow"
    return "signal OK", "bold green"


def _bar(p: float) -> str:
    full = int(round(p * BAR_WIDTH))
    return "█" * full + "·" * (BAR_WIDTH - full)


def render(state: MonitorState, width: int) -> RenderableType:
    """The whole terminal view for a console `width` columns wide."""
    parts: list[RenderableType] = [Text(DISCLAIMER, style="bold yellow")]
    rate = f"{state.rate_hz:g} Hz" + (" (estimated)" if state.rate_estimated else "") if state.rate_hz else "rate unknown"
    parts.append(Text(f"ecg-host monitor  port {state.port}  {state.kind} input  {rate}  {state.adc_bits}-bit ADC  "
                      f"{state.elapsed:.0f} s", style="bold"))  # fmt: skip
    if state.info_line:
        parts.append(Text(f"firmware: {state.info_line}", style="dim"))
    values, lead_off = state.trace()
    rows = braille_trace(values, lead_off, width - 4)
    if state.board_beats:
        rows.insert(0, beat_marks(values.size, state.trace_beats(), width - 4))
    parts.append(Panel(Group(*rows), padding=(0, 1),
                       title=f"ECG, last {state.trace_seconds:g} s" + (f" (ADC {state.trace_range})" if state.trace_range else "")
                       + (f", {BEAT_MARK} beats the board detected" if state.board_beats else "")))  # fmt: skip
    text, style = signal_state(state)
    head = Text()
    head.append(_bpm_text(state.bpm), style="bold cyan")
    if state.board_beats:
        head.append(" " + _rhythm_text(state), style="cyan")
    head.append("   ")
    head.append(text, style=style)
    parts.append(head)
    parts.append(_classification(state))
    parts.append(Text("windows by label: " + "  ".join(f"{k} {v}" for k, v in state.label_counts.items())))
    parts.append(Text("windows by status: " + "  ".join(f"{k} {v}" for k, v in state.status_counts.items())))
    s = state.stats
    parts.append(Text(f"link: frames dropped {s.get('frames_dropped', 0)}, samples lost {s.get('samples_lost', 0)}, "
                      f"CRC errors {s.get('crc_errors', 0)}, bad lines {s.get('bad_lines', 0)}", style="dim"))  # fmt: skip
    return Group(*parts)


def _classification(state: MonitorState) -> RenderableType:
    if state.classifier_note:
        head = Text(state.classifier_note, style="yellow")
    else:
        head = Text("waiting for the first window")
    w = state.latest
    if w is None:
        return head
    lines = [Text(f"window {w.window_index}: {w.status}" + (f" -> {w.label}" if w.label else " (not classified)"), style="bold")]
    if w.probabilities:
        for name, p in w.probabilities.items():
            lines.append(Text(f"  {name:<11} {_bar(p)} {p:6.1%}", style="bold magenta" if name == w.label else ""))
    if state.classifier_note:
        lines.insert(0, head)
    return Group(*lines)


def status_line(state: MonitorState) -> str:
    """One plain line (no colour, no carriage return) for logs: time, HR, state, latest window."""
    text, _ = signal_state(state)
    w = state.latest
    if w is None:
        latest = state.classifier_note or "no window yet"
    else:
        p = f" {w.probabilities[w.label]:.2f}" if w.label and w.probabilities else ""
        latest = f"window {w.window_index} {w.status} {w.label or '-'}{p}"
    s = state.stats
    hr = _bpm_text(state.bpm) + (" " + _rhythm_text(state) if state.board_beats else "")
    return (f"t={state.elapsed:.0f}s {hr} | {text} | latest {latest} | "
            f"lost {s.get('samples_lost', 0)} dropped {s.get('frames_dropped', 0)} crc {s.get('crc_errors', 0)} bad {s.get('bad_lines', 0)}")  # fmt: skip


def summary_line(state: MonitorState) -> str:
    labels = ", ".join(f"{k} {v}" for k, v in state.label_counts.items() if v)
    return (f"monitor: {state.elapsed:.0f} s, {state.samples} samples, last {_bpm_text(state.bpm)}, "
            f"{sum(state.status_counts.values())} windows{f' ({labels})' if labels else ''}, {state.stats.get('samples_lost', 0)} samples lost")  # fmt: skip


# ------------------------------------------------------------------ --plot


class PlotError(ValueError):
    """--plot cannot open a window."""


def gui_backend() -> str:
    """matplotlib's backend when it can open a window; PlotError (saying why and what to do) when not."""
    import os

    import matplotlib.pyplot as plt
    from matplotlib.backends import BackendFilter, backend_registry

    backend = plt.get_backend()
    interactive = {b.lower() for b in backend_registry.list_builtin(BackendFilter.INTERACTIVE)}
    if backend.lower() not in interactive:
        why = "no display: DISPLAY and WAYLAND_DISPLAY are unset" if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) else "no GUI toolkit found"
        raise PlotError(f"--plot needs a GUI window but matplotlib's backend is {backend!r} ({why}): run it on a desktop "
                        "with Tk or Qt (e.g. apt install python3-tk, or MPLBACKEND=QtAgg with PyQt installed), or leave out --plot")  # fmt: skip
    return backend


class PlotView:
    """A live matplotlib window: the trace, HR over time and the latest probabilities."""

    def __init__(self) -> None:
        gui_backend()
        import matplotlib.pyplot as plt

        self.plt = plt
        plt.ion()
        self.fig, (self.ax_ecg, self.ax_hr, self.ax_p) = plt.subplots(3, 1, figsize=(10, 7), gridspec_kw={"height_ratios": [3, 1.2, 1.2]})
        self.fig.canvas.manager.set_window_title("ecg-host monitor")  # type: ignore[union-attr]
        self.fig.suptitle(DISCLAIMER, fontsize=9, color="darkred")
        (self.line,) = self.ax_ecg.plot([], [], lw=0.8, color="tab:green")
        (self.beat_line,) = self.ax_ecg.plot([], [], "v", color="tab:purple", ms=6, label="beats (board)")
        (self.hr_line,) = self.ax_hr.plot([], [], color="tab:blue")
        self.ax_hr.set_ylabel("HR (bpm)")
        self.ax_ecg.set_ylabel("ADC counts")
        self.closed = False
        self.fig.canvas.mpl_connect("close_event", lambda _e: setattr(self, "closed", True))
        self.fig.tight_layout()
        plt.show(block=False)

    def update(self, state: MonitorState) -> None:
        values, off = state.trace()
        rate = state.rate_hz or 1.0
        t = (np.arange(values.size) - values.size) / rate
        y = np.where(off, np.nan, values.astype(float))
        self.line.set_data(t, y)
        beats = state.trace_beats()
        self.beat_line.set_data(t[beats], y[beats])
        for c in list(self.ax_ecg.collections):
            c.remove()
        if off.any():
            self.ax_ecg.fill_between(t, 0, 1, where=off, transform=self.ax_ecg.get_xaxis_transform(), color="red", alpha=0.2)
        self.ax_ecg.set_xlim(-state.trace_seconds, 0)
        if np.isfinite(y).any():
            lo, hi = np.nanmin(y), np.nanmax(y)
            self.ax_ecg.set_ylim(lo - 0.05 * (hi - lo + 1), hi + 0.05 * (hi - lo + 1))
        text, _ = signal_state(state)
        self.ax_ecg.set_title(f"{state.port}  {state.kind}  {state.rate_hz:g} Hz  {_bpm_text(state.bpm)} {_rhythm_text(state)}  {text}", fontsize=10)
        if state.hr_history:
            ht, hv = zip(*state.hr_history)
            self.hr_line.set_data(ht, hv)
            self.ax_hr.set_xlim(max(0.0, ht[-1] - 120), max(10.0, ht[-1]))
            self.ax_hr.set_ylim(min(hv) - 10, max(hv) + 10)
        w = state.latest
        self.ax_p.clear()
        if w is not None and w.probabilities:
            names = list(w.probabilities)
            self.ax_p.barh(names, [w.probabilities[n] for n in names], color="tab:purple")
            self.ax_p.set_xlim(0, 1)
            self.ax_p.set_title(f"window {w.window_index}: {w.status} -> {w.label}", fontsize=10)
        else:
            self.ax_p.set_title(state.classifier_note or (f"window {w.window_index}: {w.status}" if w else "no window yet"), fontsize=10)
        self.fig.canvas.draw_idle()
        self.fig.canvas.flush_events()

    def close(self) -> None:
        self.plt.close(self.fig)
