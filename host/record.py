"""`ecg-host record`: a live stream (this firmware's frames or a plain-text AD8232 sketch) to a WFDB record.

Files (PATH given without extension):
- PATH.dat: format 16 (little-endian int16), the raw ADC counts as received, appended as they arrive.
  Samples lost on the way (a jump in the device's sample counter) are stored as WFDB's invalid-sample
  value -32768, which `wfdb.rdrecord` returns as NaN in `p_signal`; never as made-up signal.
- PATH.hea: one signal, fs = the source's rate (a text rate estimated from arrival times is stored
  rounded to whole Hz, and the comments say so), adc_gain = ADC counts per mV at the electrodes and
  baseline = the ADC code of 0 mV, both from `pipeline.signal.ad8232.AD8232Config` (gain 1100 V/V, vref 3.3 V,
  output reference vref / 2, the source's ADC bits; all overridable), units mV, sig_name = the lead
  (default II, the model's lead for `ecg-pipeline predict`). So `rdrecord(PATH).p_signal` is mV at the
  electrodes. Comments (`key: value`) give port, source kind, firmware INFO, start time, rate and
  whether it was estimated, samples lost, and the link's counters (`link: frames=N frames_dropped=N
  samples_lost=N crc_errors=N dropped_bytes=N bad_lines=N resets=N`, text input also `lines=N`).
- PATH.ecg (`ANN_EXT`), read with `wfdb.rdann(PATH, "ecg")`:
  * lead-off: WFDB signal-quality annotations `~` (NOISE): subtype 0x11 (signal 0 noisy and
    unreadable) with aux_note `lead_off` at the first lead-off sample, subtype 0 with aux_note
    `lead_on` at the first sample after the stretch; a stretch still open at the end has no `lead_on`.
  * device RESULTs (binary input): comment annotations `"` at the window's LAST sample (when the
    device decides), aux_note `result window=K first=S status=OK label=NORMAL logits=28,-94,92
    p=NORMAL:0.0123,MI:0.0004,ARRHYTHMIA:0.9873` (first: the window's first sample in this record,
    negative when it began before the recording; probabilities: softmax of the int8 logits
    dequantized with INFO's output scale and zero point; label `-` and no logits/p when not classified).
  * samples lost: comment annotation `"` with aux_note `lost N` at the first lost sample.
  * device restarted (its counter went back): comment annotation `"` with aux_note `device_reset`.
- PATH.qrs (`BEAT_EXT`), from a board with the BEATS capability: its beats as WFDB beat annotations,
  `N` at each beat's sample (the record's numbering), as WFDB's QRS detectors (sqrs, gqrs) write
  them: `wfdb.rdann(PATH, "qrs")`, `pipeline.data.records.read_annotation(PATH, "qrs")`. Beats whose
  sample is not in the record (before it started, past its end) are counted, not written.

The header and the annotations are rewritten atomically (temp file + rename) about once a second, after
the samples they describe are in PATH.dat, so that even a killed process leaves a readable record.
PATH.dat is written unbuffered, so the bytes that reached it are known: when a write fails (a full disk,
a file that cannot be written) the recording stops with an error naming the file, PATH.dat is cut to its
whole samples and the header rewritten for them; if even that fails, the last header stays, describing
the samples written before it.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, TextIO

import numpy as np

from pipeline.signal.ad8232 import AD8232Config
from pipeline.util.atomic import write_text_atomic
from pipeline.util.console import DISCLAIMER
from pipeline.data.labels import LABELS
from pipeline.signal.preprocess import output_probabilities

ANN_EXT = "ecg"
BEAT_EXT = "qrs"  # the board's beats (WFDB's annotator name for QRS detector output)
BEAT_SYMBOL = "N"  # a beat, type not decided (the detector does not classify beats)
INVALID = -32768  # WFDB's invalid sample in format 16 (NaN in p_signal)
LEAD_OFF_SUBTYPE = 0x11  # NOISE subtype: bit 0 signal 0 noisy, bit 4 signal 0 unreadable
REWRITE_S = 1.0
PROGRESS_S = 0.5
READ_S = 0.25


class RecordingError(ValueError):
    """A recording that cannot be started (existing files, bad settings)."""


class RecordWriteError(RuntimeError):
    """A file of the recording could not be written (a full disk, no permission); the message names it."""


@contextmanager
def _writing(path: str | Path) -> Iterator[None]:
    """An OSError inside the block becomes a RecordWriteError naming `path`."""
    try:
        yield
    except OSError as exc:
        raise RecordWriteError(f"cannot write {path}: {exc.strerror or exc}") from exc


def adc_config(adc_bits: int, gain: float | None = None, vref: float | None = None) -> AD8232Config:
    """The AD8232 chain of the recording: defaults from AD8232Config, the output reference at vref / 2."""
    base = AD8232Config()
    v = base.vref if vref is None else vref
    if not v > 0 or not (gain is None or gain > 0):
        raise RecordingError(f"gain and vref must be positive (gain {gain}, vref {vref})")
    if not 1 <= adc_bits <= 15:
        raise RecordingError(f"ADC bits must be 1..15, not {adc_bits}")
    offset = base.offset_v if vref is None else v / 2
    return AD8232Config(gain=base.gain if gain is None else gain, vref=v, adc_bits=adc_bits, offset_v=offset)


def record_files(path: Path) -> list[Path]:
    return [Path(f"{path}.{ext}") for ext in ("hea", "dat", ANN_EXT, BEAT_EXT)]


@dataclass
class Annotation:
    sample: int
    symbol: str
    subtype: int
    aux: str


@dataclass
class WfdbRecording:
    """One recording being written: samples appended to PATH.dat, header and annotations rewritten."""

    path: Path
    lead_name: str = "II"
    force: bool = False
    n: int = 0  # samples in PATH.dat (lost ones included)
    lost: int = 0
    lead_off_samples: int = 0
    annotations: list[Annotation] = field(default_factory=list)
    results: int = 0
    results_outside: int = 0  # RESULTs whose window did not end inside the record
    _pending: list[Annotation] = field(default_factory=list)  # RESULTs ahead of their last samples
    beats: list[int] = field(default_factory=list)  # the board's beats, record samples (in PATH.qrs)
    beats_outside: int = 0  # board beats whose sample is not in the record
    _pending_beats: list[int] = field(default_factory=list)  # beats ahead of their samples
    _checksum: int = 0
    _first_value: int = 0
    _origin: int | None = None  # source sample index of record sample 0
    _next: int | None = None  # source sample index expected next
    _off_open: bool = False
    _dat_bytes: int = 0  # bytes that reached PATH.dat
    on_disk: int = 0  # samples the header on disk describes

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        existing = [p for p in record_files(self.path) if p.exists()]
        if existing and not self.force:
            raise RecordingError(f"{existing[0]} exists: choose another --out or overwrite with --force")
        if not self.path.name or not all(c.isalnum() or c in "-_" for c in self.path.name):
            raise RecordingError(f"--out {self.path}: a WFDB record name has only letters, digits, '-' and '_'")
        if not self.lead_name or any(c.isspace() for c in self.lead_name):
            raise RecordingError(f"--lead-name {self.lead_name!r}: a WFDB signal name is one word")
        self._dat: Any = None  # opened with the first samples: a session that never starts leaves no files

    @property
    def origin(self) -> int | None:
        """The source's sample index of record sample 0 (after a device reset: as if it had counted on)."""
        return self._origin

    # ---- data
    def _open_dat(self) -> BinaryIO:
        """PATH.dat, unbuffered: a write returns how many bytes reached the file."""
        return open(f"{self.path}.dat", "wb", buffering=0)

    def _write(self, digital: np.ndarray) -> None:
        dat = f"{self.path}.dat"
        with _writing(dat):
            if self._dat is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                for p in record_files(self.path):  # only there with --force
                    p.unlink(missing_ok=True)
                self._dat = self._open_dat()
            d = np.asarray(digital, dtype="<i2")
            view = memoryview(d.tobytes())
            while view:
                k = self._dat.write(view)
                if not k:
                    raise OSError(f"wrote nothing of {len(view)} bytes")
                self._dat_bytes += k
                view = view[k:]
        if self.n == 0 and d.size:
            self._first_value = int(d[0])
        self._checksum = (self._checksum + int(d.astype(np.int64).sum())) % 65536
        self.n += d.size

    def add_samples(self, first_sample: int, values: np.ndarray, lead_off: np.ndarray, limit: int | None = None) -> int:
        """Append one block (source sample indices); returns how many samples it added (lost ones included).
        `limit`: the record's final length, never exceeded."""
        values = np.asarray(values)
        lead_off = np.asarray(lead_off, dtype=bool)
        if values.size and (values.min() < 0 or values.max() > 32767):
            raise ValueError(f"ADC values {values.min()}..{values.max()} do not fit WFDB format 16")
        if self._next is None:
            self._origin = self._next = first_sample
        elif first_sample < self._next:  # the device restarted: its counter went back
            self.annotations.append(Annotation(self.n, '"', 0, "device_reset"))
            self._origin = first_sample - self.n
            self._next = first_sample
        start = self.n
        gap = first_sample - self._next
        if gap > 0:
            if limit is not None:
                gap = min(gap, limit - self.n)
            self.annotations.append(Annotation(self.n, '"', 0, f"lost {gap}"))
            self._write(np.full(gap, INVALID))
            self.lost += gap
        if limit is not None:
            keep = max(0, limit - self.n)
            values, lead_off = values[:keep], lead_off[:keep]
        base = self.n
        changes = np.flatnonzero(np.diff(np.concatenate([[self._off_open], lead_off]).astype(np.int8)))
        for i in changes:
            on = bool(lead_off[i])
            self.annotations.append(Annotation(base + int(i), "~", LEAD_OFF_SUBTYPE if on else 0, "lead_off" if on else "lead_on"))
        if lead_off.size:
            self._off_open = bool(lead_off[-1])
        self.lead_off_samples += int(lead_off.sum())
        self._write(values)
        self._next = first_sample + values.size
        self._settle()
        return self.n - start

    def add_result(self, r: Any, first_sample: int, window: int, labels: tuple[str, ...], out_q: tuple[float, int]) -> None:
        """A device RESULT whose window starts at source sample `first_sample`, annotated at the window's last
        sample (skipped, and counted, when that is outside the record). A RESULT can arrive before the
        SAMPLES frame holding its window's last sample: it waits for it."""
        if self._origin is None:
            self.results_outside += 1
            return
        first = first_sample - self._origin
        last = first + window - 1
        if last < 0:
            self.results_outside += 1
            return
        status = getattr(r.status, "name", str(r.status))
        aux = f"result window={r.window_index} first={first} status={status}"
        if r.logits and r.label >= 0:
            p = output_probabilities(np.asarray(r.logits), out_q[0], out_q[1])
            aux += f" label={labels[r.label]} logits={','.join(str(int(v)) for v in r.logits)}"
            aux += " p=" + ",".join(f"{n}:{v:.4f}" for n, v in zip(labels, p))
        else:
            aux += " label=-"
        self._pending.append(Annotation(last, '"', 0, aux))
        self._settle()

    def add_beats(self, samples: list[int]) -> None:
        """Beats the board detected, at source sample indices; a beat waits for its sample to be recorded."""
        for s in samples:
            if self._origin is None or s < self._origin:
                self.beats_outside += 1
            else:
                self._pending_beats.append(int(s) - self._origin)
        self._settle()

    def _settle(self) -> None:
        ready = [a for a in self._pending if a.sample < self.n]
        self._pending = [a for a in self._pending if a.sample >= self.n]
        self.annotations += ready
        self.results += len(ready)
        self.beats += [b for b in self._pending_beats if b < self.n]
        self._pending_beats = [b for b in self._pending_beats if b >= self.n]

    # ---- files
    def header_text(self, fs: float, adc: AD8232Config, comments: list[str], start: dt.datetime) -> str:
        gain = adc.counts_per_mv
        baseline = adc.offset_counts
        if baseline != round(baseline):
            raise RecordingError(f"the ADC code of 0 mV ({baseline}) is not a whole count: WFDB needs an integer baseline")
        checksum = (self._checksum + 32768) % 65536 - 32768
        t = start.astimezone(dt.timezone.utc)
        lines = [
            f"{self.path.name} 1 {fs:.10g} {self.n} {t:%H:%M:%S}.{t.microsecond // 1000:03d} {t:%d/%m/%Y}",
            f"{self.path.name}.dat 16 {gain:.10g}({int(baseline)})/mV {adc.adc_bits} 0 {self._first_value} {checksum} 0 {self.lead_name}",
        ]
        return "\n".join(lines + [f"# {c}" for c in comments]) + "\n"

    def flush(self, fs: float, adc: AD8232Config, comments: list[str], start: dt.datetime) -> None:
        """Header and annotations of the samples in PATH.dat (written unbuffered), each replaced atomically."""
        if self.n == 0:
            return
        with _writing(f"{self.path}.hea"):
            write_text_atomic(f"{self.path}.hea", self.header_text(fs, adc, comments, start))
        self.on_disk = self.n
        anns = sorted((a for a in self.annotations if a.sample < self.n), key=lambda a: a.sample)
        self._write_annotation_file(ANN_EXT, anns, fs)
        beats = np.unique(np.asarray([b for b in self.beats if b < self.n], dtype=np.int64))
        self._write_annotation_file(BEAT_EXT, [Annotation(int(b), BEAT_SYMBOL, 0, "") for b in beats], fs)

    def salvage(self, fs: float, adc: AD8232Config, comments: Callable[[], list[str]], start: dt.datetime) -> str | None:
        """After a failed write: the whole samples that reached PATH.dat become the record (the file cut
        to them, the counters recounted, header and annotations rewritten). Returns why the header could
        not be rewritten (then the last one stays, and the record is its `on_disk` samples), None when it was."""
        dat = Path(f"{self.path}.dat")
        if self._dat is not None:
            self._dat.close()
            self._dat = None
        self.n = self._dat_bytes // 2  # a block cut short keeps its whole samples that got there
        self._recount()
        if self.n == 0:
            return None
        with _writing(dat):
            os.truncate(dat, self.n * 2)  # a sample cut in half goes; truncating needs no space
            kept = np.fromfile(dat, dtype="<i2")
        self._first_value = int(kept[0])
        self._checksum = int(kept.astype(np.int64).sum()) % 65536
        try:
            self.flush(fs, adc, comments(), start)
        except RecordWriteError as exc:
            self.n = self.on_disk
            self._recount()
            return str(exc)
        return None

    def _recount(self) -> None:
        """`lost`, `lead_off_samples`, `results` and `beats` of the first `n` samples, from their annotations."""
        self.annotations = [a for a in self.annotations if a.sample < self.n]
        self.beats = [b for b in self.beats if b < self.n]
        self.results = sum(a.aux.startswith("result ") for a in self.annotations)
        self.lost = sum(min(int(a.aux.split()[1]), self.n - a.sample) for a in self.annotations if a.aux.startswith("lost "))
        off = 0
        since: int | None = None
        for a in sorted(self.annotations, key=lambda a: a.sample):
            if a.aux == "lead_off":
                since = a.sample
            elif a.aux == "lead_on" and since is not None:
                off, since = off + a.sample - since, None
        self.lead_off_samples = off + (self.n - since if since is not None else 0)

    def _write_annotation_file(self, ext: str, anns: list[Annotation], fs: float) -> None:
        """PATH.`ext` replaced atomically by `anns` (sorted by sample); removed when there are none."""
        import wfdb

        target = Path(f"{self.path}.{ext}")
        if not anns:
            target.unlink(missing_ok=True)
            return
        tmp_name = f"{self.path.name}_tmp{uuid.uuid4().hex[:8]}"
        tmp = self.path.parent / f"{tmp_name}.{ext}"
        aux = [a.aux for a in anns] if any(a.aux for a in anns) else None
        try:
            with _writing(target):
                wfdb.wrann(tmp_name, ext, np.array([a.sample for a in anns]), symbol=[a.symbol for a in anns],
                           subtype=np.array([a.subtype for a in anns]), aux_note=aux, fs=fs,
                           write_dir=str(self.path.parent))  # fmt: skip
                os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def close(self) -> None:
        """Close PATH.dat; RESULTs and beats still waiting for samples that never came count as outside the record."""
        self.results_outside += len(self._pending)
        self._pending.clear()
        self.beats_outside += len(self._pending_beats)
        self._pending_beats.clear()
        if self._dat is not None:
            self._dat.close()

    def discard(self) -> None:
        """Nothing was recorded: leave no files behind (an existing record stays when none were written)."""
        opened = self._dat is not None
        self.close()
        if opened:
            for p in record_files(self.path):
                p.unlink(missing_ok=True)


# ------------------------------------------------------------------ the command


class _Stop:
    """SIGINT/SIGTERM set a flag the loop checks between reads: a write is never cut in half."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _Stop:
        for s in (signal.SIGINT, signal.SIGTERM):
            self._old[s] = signal.signal(s, self._set)
        return self

    def _set(self, signum: int, frame: Any) -> None:
        self.signal = signum

    def __exit__(self, *exc: object) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _rate_text(source: Any, fs: float) -> str:
    if getattr(source, "rate_estimated", False):
        measured = getattr(source, "measured_rate_hz", None) or source.rate_hz
        return f"{fs:g} Hz, estimated from arrival times ({measured:.2f} Hz) and rounded"
    if source.kind == "binary":
        return f"{fs:g} Hz, from the device's INFO"
    return f"{fs:g} Hz, given with --rate"


def _comments(source: Any, args: Any, fs: float, adc: AD8232Config, start: dt.datetime, rec: WfdbRecording) -> list[str]:
    info = source.info
    firmware = (
        f"{info.firmware}, backend {info.backend}, model_sha256 {info.model_sha256.hex()}, spec_fingerprint {info.spec_fingerprint.hex()}"
        if info is not None else "none (plain-text input)"
    )  # fmt: skip
    return [
        f"ecg-edge recording (ecg-host record). {DISCLAIMER}",
        f"port: {source.port}",
        f"source: {source.kind}" + (" (one ADC value per line)" if source.kind == "text" else " (ecg-edge frames)"),
        f"firmware: {firmware}",
        f"start: {start.isoformat(timespec='milliseconds')}",
        f"first_sample: {rec.origin} (the source's sample index of sample 0)",
        f"rate: {_rate_text(source, fs)}",
        f"rate_estimated: {'yes' if getattr(source, 'rate_estimated', False) else 'no'}",
        f"adc: {adc.adc_bits} bits, gain {adc.gain:g} V/V, vref {adc.vref:g} V, 0 mV at {adc.offset_counts:g} counts",
        f"samples_lost: {rec.lost} (stored as invalid samples, NaN in p_signal; annotated 'lost N' in .{ANN_EXT})",
        f"lead_off_samples: {rec.lead_off_samples}",
        "link: " + " ".join(f"{k}={v}" for k, v in source.stats.items()),
        f"annotations: .{ANN_EXT} (~ lead_off/lead_on; \" result ... at the window's last sample; \" lost N)",
    ] + ([f"beats: .{BEAT_EXT} ({BEAT_SYMBOL} at each beat the board detected: {len(rec.beats)})"] if getattr(source, "board_beats", False) else []) + (
        [f"label: {args.label}", f"patient: {args.patient or Path(args.out).name}"] if args.label else [])  # fmt: skip


def _record_rate(source: Any) -> float:
    return float(round(source.rate_hz)) if getattr(source, "rate_estimated", False) else float(source.rate_hz)


def record(args: Any, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run `ecg-host record` with parsed arguments; the exit status. `out`, `err`: default sys.stdout, sys.stderr."""
    from .sources import SourceError, open_source

    out, err = out or sys.stdout, err or sys.stderr

    if args.seconds < 0:
        raise RecordingError(f"--seconds {args.seconds}: must be >= 0 (0: until Ctrl-C)")
    adc_config(args.adc_bits or 12, args.gain, args.vref)  # refuse bad settings before opening the port
    rec = WfdbRecording(Path(args.out), lead_name=args.lead_name, force=args.force)
    tty = err.isatty()
    old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        source = open_source(args.port, baud=args.baud, mode="text" if args.text else "auto", rate=args.rate,
                             adc_bits=args.adc_bits, timeout=args.timeout)  # fmt: skip
    except KeyboardInterrupt:
        print(f"stopped while opening {args.port}: no record written", file=out)
        return 0
    finally:
        signal.signal(signal.SIGTERM, old_term)
    start = dt.datetime.now().astimezone()
    error: str | None = None
    write_error: str | None = None  # a file of the record could not be written: what it holds is kept
    with source, _Stop() as stop:
        print(f"recording {source.kind} input from {source.port} to {rec.path}.hea/.dat"
              + (f" for {args.seconds:g} s" if args.seconds else " until Ctrl-C"), file=out, flush=True)  # fmt: skip
        if getattr(source, "rate_estimated", False):
            print(f"note: no --rate given: the rate is estimated from arrival times ({source.rate_hz:.2f} Hz so far)", file=out, flush=True)
        last_flush = last_progress = time.monotonic()

        def settings() -> tuple[float, AD8232Config]:
            return _record_rate(source), adc_config(args.adc_bits or source.adc_bits, args.gain, args.vref)

        try:
            while stop.signal is None:
                limit = round(args.seconds * _record_rate(source)) if args.seconds else None
                blocks, results = source.read(READ_S)
                for b in blocks:
                    rec.add_samples(int(b.first_sample), b.values, b.lead_off, limit)
                if results and source.info is not None:
                    q = (source.info.output_scale, source.info.output_zero_point)
                    to_session = getattr(source, "session_index", lambda s: s)
                    for r in results:
                        rec.add_result(r, to_session(int(r.first_sample)), source.info.window, tuple(source.info.labels), q)
                rec.add_beats(source.take_beats())
                now = time.monotonic()
                if now - last_flush >= REWRITE_S:
                    fs, adc = settings()
                    rec.flush(fs, adc, _comments(source, args, fs, adc, start, rec), start)
                    last_flush = now
                if tty and now - last_progress >= PROGRESS_S:
                    fs = _record_rate(source)
                    print(f"\r{rec.n / fs:8.1f} s  {rec.n} samples  lead-off {rec.lead_off_samples / fs:.1f} s  lost {rec.lost}  results {rec.results} ",
                          end="", file=err, flush=True)  # fmt: skip
                    last_progress = now
                if limit is not None and rec.n >= limit:
                    break
        except SourceError as exc:
            error = str(exc)
        except RecordWriteError as exc:
            error = write_error = str(exc)
        if tty:
            print(file=err)
        fs, adc = settings()
        if rec.n == 0 and write_error is None:
            rec.discard()
            print(f"no samples received from {source.port}: no record written", file=out)
            if error:
                print(f"error: {error}", file=err)
            return 1 if error else 0
        if write_error is None:
            try:
                rec.flush(fs, adc, _comments(source, args, fs, adc, start, rec), start)
            except RecordWriteError as exc:
                error = write_error = str(exc)
        if write_error is not None:
            stale = rec.salvage(fs, adc, lambda: _comments(source, args, fs, adc, start, rec), start)
            if stale is not None:
                error = f"{write_error}; then {stale}: the header on disk describes the first {rec.on_disk} samples"
            if rec.n == 0:
                print(f"nothing could be written: no record at {rec.path}", file=out)
                print(f"error: {error}", file=err)
                return 1
        rec.close()
    why = {None: "", signal.SIGINT: " (interrupted)", signal.SIGTERM: " (terminated)"}.get(stop.signal, "")
    if write_error is not None:
        why = " (writing failed)"
    elif error:
        why = " (the source failed)"
    print(f"kept {rec.n / fs:.2f} s{why}: {rec.n} samples at {fs:g} Hz in {rec.path}.hea/.dat; "
          f"{rec.lead_off_samples} lead-off samples, {rec.lost} samples lost, {rec.results} device results"
          + (f" in {rec.path}.{ANN_EXT}" if rec.annotations else ""), file=out)  # fmt: skip
    if getattr(source, "board_beats", False):
        print(f"{len(rec.beats)} beats the board detected" + (f" in {rec.path}.{BEAT_EXT}" if rec.beats else "")
              + (f" ({rec.beats_outside} outside the record, not annotated)" if rec.beats_outside else ""), file=out)  # fmt: skip
    if rec.results_outside:
        print(f"note: {rec.results_outside} device results were for windows that did not end inside the record (not annotated)", file=out)
    if getattr(source, "rate_estimated", False):
        print(f"note: the rate {fs:g} Hz is an estimate from arrival times; give --rate if you know it", file=out)
    if error:
        print(f"error: {error}", file=err)
        return 1
    return 0


def add_record_command(subparsers: Any) -> None:
    """Add `record` to ecg-host's subcommands."""
    p = subparsers.add_parser(
        "record",
        help="record a live stream to a WFDB record (with lead-off, device results and lost samples annotated)",
        description="Record this firmware's stream, or a plain-text AD8232 sketch (one ADC value per line, '!' for "
        f"lead-off), to WFDB: PATH.hea/PATH.dat in mV at the electrodes, annotations PATH.{ANN_EXT} (wfdb.rdann), and "
        f"the beats of a board that detects them as beat annotations PATH.{BEAT_EXT}. "
        "Ctrl-C, SIGTERM or a pulled cable keep everything received. "
        "Example: ecg-host record --port /dev/ttyUSB0 --seconds 60 --out rec01",
    )
    p.add_argument("--port", required=True, help="serial port of the board, or the pty of simulate/emulate")
    p.add_argument("--seconds", type=float, default=0.0, help="length to record (0: until Ctrl-C; default 0)")
    p.add_argument("--out", type=Path, required=True, help=f"record path without extension (writes PATH.hea, PATH.dat, PATH.{ANN_EXT}; PATH.{BEAT_EXT} from a board that detects beats)")
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--text", action="store_true", help="the port prints one ADC value per line (default: detect)")
    p.add_argument("--rate", type=float, help="text input: sample rate in Hz (default: estimated from arrival times)")
    p.add_argument("--adc-bits", type=int, help="ADC resolution (default: the device's INFO; text: 10 if no value exceeds 1023, else 12)")
    p.add_argument("--lead-name", default="II", help="signal name in the header (default II, the models' lead)")
    p.add_argument("--vref", type=float, help=f"ADC reference in V; 0 mV sits at vref/2 (default {AD8232Config().vref:g})")
    p.add_argument("--gain", type=float, help=f"AD8232 gain in V/V (default {AD8232Config().gain:g})")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds without any data before giving up (default 5)")
    p.add_argument("--force", action="store_true", help="overwrite an existing record at --out")
    p.add_argument("--label", choices=LABELS, help="what the recording is, for `ecg-pipeline prepare recordings` (header comment `label:`)")
    p.add_argument("--patient", help="who it is from (header comment `patient:`; default the record name): recordings of one person stay in one split")
    p.set_defaults(func=lambda args: record(args))
