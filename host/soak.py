"""`ecg-host soak`: hours of real records through a device's whole path, every RESULT checked.

Records stream lazily (one at a time, from prepared data sets or WFDB record directories) as
REPLAY_SAMPLES, one frame in flight with resends (`DeviceLink.request(resend_s=...)`: a frame or ACK
lost on a noisy line costs only time) within the device's credits, and every RESULT is compared with
the Python reference of `host/parity.py` (`device_answers` on the bundle's model). The device's
SAMPLES echo every sample it consumed: they must equal what was sent. Only counters are kept (and a
few examples of mismatches), so memory stays flat over hours; RSS growth is measured after a warm-up.

With `faults` a `host.faults.FaultProxy` sits between the host and the device. Whatever the line
does, no corrupt frame may be accepted: a RESULT that differs from the reference, a SAMPLES frame
that differs from what was sent, or a frame that passes the CRC and does not decode counts in
`corrupt_frames_accepted`; a window whose RESULT never came is counted in `results_lost` (known once
the device's credits show it drained its queue: its RESULTs precede that ACK on the line).
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import psutil
from tqdm import tqdm

from export.bundle import read_manifest, verify_files
from export.bundle_model import BundleModel
from export.crosscheck import ADC, Stream, record_stream
from export.protocol_defs import MAX_BATCH, CommandCode, ResultSource, SampleSource
from pipeline.data.dataset import load_dataset, write_json_atomic
from pipeline.inference.device_path import device_answers
from pipeline.signal.spec import PreprocessSpec

from .devices import EQUIVALENT_LEADS
from .faults import FaultProxy, FaultSpec
from .link import DeviceLink, LinkError, wait_readable
from .parity import ExpectedResult, check_identity, expected_results, info_dict
from .protocol import Ack, Command, ReplaySamples, Result, Samples

WARMUP_S = 60.0  # seconds of signal before the RSS baseline
MIN_BATCH = 16  # replay samples per frame after resends (fewer bytes for the noise to hit)
BATCH_STEP = 16
KEEP_EXAMPLES = 10  # mismatches kept in the report
DRAIN_WAIT_S = 0.002


class SoakError(LinkError):
    """The soak cannot run: bad data, a device that does not match the bundle, a stalled link."""


# ------------------------------------------------------------------ what to stream


def _record_paths(data: Path) -> list[Path]:
    """WFDB records of `data`: a prepared data set's records, or a directory's RECORDS (else its *.hea)."""
    if (data / "dataset.json").is_file():
        ds = load_dataset(data)
        return [ds.record_path(r) for r in dict.fromkeys(ds.record.tolist())]
    if (data / "RECORDS").is_file():
        return [data / ln.strip() for ln in (data / "RECORDS").read_text().split() if ln.strip()]
    found = sorted(p.with_suffix("") for p in data.rglob("*.hea"))
    if not found:
        raise SoakError(f"--data {data}: neither a prepared data set (dataset.json) nor WFDB records (RECORDS or *.hea)")
    return found


def soak_streams(data: list[Path], lead: str, spec: PreprocessSpec, seconds: float) -> Iterator[Stream]:
    """`seconds` of signal, shared equally by the `data` sources, record after record (again from the
    first when a source is shorter), read one at a time; records shorter than a window are skipped."""
    leads = [lead, *EQUIVALENT_LEADS.get(lead.upper(), ())]
    share = int(seconds * spec.fs) // len(data)
    for source in data:
        paths = _record_paths(Path(source))
        left, k, useful = share, 0, False
        while left > 0:
            if k == len(paths) and not useful:
                raise SoakError(f"--data {source}: no record of at least one window ({spec.window} samples at {spec.fs:g} Hz)")
            path = paths[k % len(paths)]
            k += 1
            try:
                s = record_stream(path, leads, spec)
            except Exception as exc:  # noqa: BLE001 - which record failed, whatever the reader raised
                raise SoakError(f"--data {source}: record {path}: {exc}") from None
            n = min(left, s.raw.size)
            if n < spec.window:
                continue
            useful = True
            left -= n
            yield Stream(f"{Path(source).name}/{path.name}", s.raw[:n], s.lead_off[:n])


# ------------------------------------------------------------------ the tally


@dataclass
class SoakTally:
    """Counters only (and the first few mismatches): flat memory over hours."""

    windows: int = 0
    results: int = 0
    identical: int = 0
    results_lost: int = 0
    unexpected_results: int = 0  # unknown window index, a second RESULT for a window, or not from replayed samples
    samples_sent: int = 0
    samples_echoed: int = 0
    echo_mismatches: int = 0
    streams: int = 0
    examples: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.examples) < KEEP_EXAMPLES:
            self.examples.append(text)


class _Current:
    """The stream being replayed: its reference answers and the samples, for the device's echo."""

    def __init__(self, stream: Stream, expected: dict[int, ExpectedResult]) -> None:
        self.stream, self.expected, self.seen = stream, expected, set()
        self.packed = stream.raw.astype(np.uint16) | (stream.lead_off.astype(np.uint16) << 15)


class Soaker:
    """The soak's side of a DeviceLink: replays streams reliably and checks what comes back."""

    def __init__(self, link: DeviceLink, tally: SoakTally, timeout: float, resend_s: float) -> None:
        self.link, self.tally, self.timeout, self.resend_s = link, tally, timeout, resend_s
        self.current: _Current | None = None
        self.batch = MAX_BATCH
        link.on_result = self._on_result
        link.on_samples = self._on_samples

    def _on_result(self, r: Result) -> None:
        cur, t = self.current, self.tally
        if cur is None:
            return  # the live ADC's windows before the first SOURCE replay is ACKed, or after the soak
        if r.source != ResultSource.REPLAY_SAMPLES or r.window_index not in cur.expected or r.window_index in cur.seen:
            t.unexpected_results += 1
            t.note(f"unexpected RESULT window {r.window_index} source {int(r.source)} ({cur.stream.name})")
            return
        cur.seen.add(r.window_index)
        t.results += 1
        want = cur.expected[r.window_index]
        if want.matches(r):
            t.identical += 1
        else:
            t.note(f"{cur.stream.name} window {r.window_index}: device status {int(r.status)} logits {tuple(r.logits)} rhythm "
                   f"{(r.hr_x10, r.rr_irregularity)}, reference {want}")  # fmt: skip

    def _on_samples(self, m: Samples) -> None:
        cur = self.current
        if cur is None:
            return  # the live ADC before the soak, or a stream's tail before the next SOURCE
        n = len(m.values)
        want = cur.packed[m.first_sample : m.first_sample + n]
        got = np.asarray(m.values, dtype=np.uint16) | (np.asarray(m.lead_off or (False,) * n, dtype=np.uint16) << 15)
        self.tally.samples_echoed += n
        if want.size != n or not np.array_equal(want, got):
            self.tally.echo_mismatches += 1
            self.tally.note(f"{cur.stream.name}: SAMPLES from {m.first_sample} differ from the samples sent")

    def _request(self, message: object) -> Ack:
        return self.link.request(message, self.timeout, self.resend_s)

    def _send(self, values: np.ndarray, lead_off: np.ndarray) -> Ack:
        """One REPLAY_SAMPLES frame, resent until ACKed; a frame that needed resends halves the next one."""
        resent = self.link.stats.frames_resent
        ack = self._request(ReplaySamples(tuple(int(v) for v in values), tuple(bool(v) for v in lead_off)))
        if self.link.stats.frames_resent > resent:
            self.batch = max(MIN_BATCH, self.batch // 2)
        else:
            self.batch = min(MAX_BATCH, self.batch + BATCH_STEP)
        return ack

    def replay(self, stream: Stream, expected: dict[int, ExpectedResult], on_samples: Any = None) -> None:
        """Replay one stream (SOURCE replay resets the device's pipeline), wait until the device drained
        it, and count the windows whose RESULT did not come."""
        ring = self._request_source(SampleSource.REPLAY).credits
        self.current = _Current(stream, expected)
        credits, i, n = ring, 0, stream.raw.size
        while i < n:
            k = min(credits, self.batch, n - i)
            credits = self._send(stream.raw[i : i + k], stream.lead_off[i : i + k]).credits
            i += k
            self.tally.samples_sent += k
            if on_samples is not None:
                on_samples(k)
        end = time.monotonic() + self.timeout
        while credits < ring:  # RESULTs of consumed samples precede the ACK that shows an empty queue
            if time.monotonic() > end:
                raise SoakError(f"port {self.link.port}: {stream.name}: the device kept {ring - credits} samples queued for {self.timeout:g} s")
            wait_readable(self.link.ser, DRAIN_WAIT_S)
            credits = self._send(stream.raw[:0], stream.lead_off[:0]).credits
        self.tally.windows += len(expected)
        self.tally.results_lost += len(expected) - len(self.current.seen)
        self.tally.streams += 1
        self.current = None

    def _request_source(self, source: SampleSource) -> Ack:
        return self._request(Command(CommandCode.SOURCE, int(source)))


# ------------------------------------------------------------------ the run


def _rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def expected_answers(stream: Stream, spec: PreprocessSpec, model: BundleModel) -> dict[int, ExpectedResult]:
    """Window index -> what the device must answer (`host/parity.py`'s reference device path)."""
    return expected_results(device_answers(stream.raw, stream.lead_off, spec, ADC.max_count, model))


def run_soak(
    port: str,
    bundle: Path,
    data: list[Path],
    seconds: float,
    *,
    faults: FaultSpec | None = None,
    baud: int = 115200,
    timeout: float = 10.0,
    resend_s: float = 0.05,
    out: Path | None = None,
    progress: bool = True,
) -> tuple[dict[str, Any], list[str]]:
    """Stream `seconds` of `data` through the device on `port`; the report and what failed."""
    if not seconds > 0:
        raise SoakError(f"--seconds {seconds}: expected more than 0")
    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    verify_files(bundle, manifest)
    spec = PreprocessSpec.from_dict(manifest["spec"])
    model = BundleModel.from_manifest(bundle, manifest)
    proxy = FaultProxy(port, faults) if faults is not None else None
    tally = SoakTally()
    started = time.monotonic()
    rss_before: int | None = None
    try:
        with DeviceLink(proxy.port if proxy else port, baud) as link:
            soaker = Soaker(link, tally, timeout, resend_s)
            soaker._request_source(SampleSource.REPLAY)  # the live ADC stops first: on a slow noisy line INFO then gets through
            info = _first_info(link, timeout, resend_s)
            check_identity(info, bundle, manifest, port)
            link.poll(0.1)
            base = link.stats.as_dict()
            base_errors = len(link.stats.errors)
            signal_s = 0.0
            bar = tqdm(total=round(seconds), desc="soak", unit="s", disable=None if progress else True)
            for stream in soak_streams(data, manifest["leads"][0], spec, seconds):
                expected = expected_answers(stream, spec, model)
                soaker.replay(stream, expected, lambda k: bar.update(k / spec.fs))
                del expected
                signal_s += stream.raw.size / spec.fs
                if rss_before is None and (signal_s >= min(WARMUP_S, seconds / 10)):
                    rss_before = _rss()
                if proxy is not None and proxy.error:
                    raise SoakError(proxy.error)
            bar.close()
            soaker._request_source(SampleSource.ADC)
            link.poll(0.1)
            wall = time.monotonic() - started
            rss_after = _rss()
            stats = link.stats.as_dict()
            errors = link.stats.errors[base_errors:]
    finally:
        if proxy is not None:
            proxy.close()
    delta = {k: stats[k] - base[k] for k in ("frames", "crc_errors", "dropped_bytes", "frames_dropped", "samples_lost", "frames_sent", "frames_resent")}
    undecodable = sum(e.startswith("undecodable") for e in errors)
    device_errors = [e for e in errors if not e.startswith("undecodable")]
    line = proxy.report() if proxy is not None else None
    crc_device_side = line["host_to_device"]["crc_rejected"] if line else None
    corrupt = tally.echo_mismatches + tally.unexpected_results + undecodable + (tally.results - tally.identical)
    report: dict[str, Any] = {
        "port": port,
        "device": info_dict(info),
        "data": [str(d) for d in data],
        "signal_seconds": signal_s,
        "streams": tally.streams,
        "windows": tally.windows,
        "results": tally.results,
        "identical_fraction": tally.identical / tally.results if tally.results else None,
        "results_lost": tally.results_lost,
        "corrupt_frames_accepted": corrupt,
        "samples_sent": tally.samples_sent,
        "samples_echoed": tally.samples_echoed,
        "samples_lost": delta["samples_lost"],
        "frames_dropped": delta["frames_dropped"],
        "crc_errors": delta["crc_errors"],
        "frames_sent_host": delta["frames_sent"],
        "frames_resent_host": delta["frames_resent"],
        "frames_sent_device": delta["frames"] + delta["frames_dropped"],
        "frames_sent": delta["frames_sent"] + delta["frames"] + delta["frames_dropped"],
        "frames_crc_rejected": delta["crc_errors"] + (crc_device_side or 0),
        "frames_crc_rejected_by_device": crc_device_side,
        "device_errors": device_errors[:KEEP_EXAMPLES],
        "device_error_count": len(device_errors),
        "mismatch_examples": tally.examples,
        "resync_seconds": {k: line[k]["resync"] for k in ("host_to_device", "device_to_host")} if line else None,
        "faults": line,
        "host_rss_before_bytes": rss_before,
        "host_rss_after_bytes": rss_after,
        "host_rss_growth_bytes": rss_after - rss_before if rss_before is not None else None,
        "wall_seconds": wall,
        "speedup": signal_s / wall if wall > 0 else None,
    }
    report["failures"] = failures(report, faults is not None)
    if out is not None:
        write_json_atomic(Path(out), report)
    return report, report["failures"]


def _first_info(link: DeviceLink, timeout: float, resend_s: float) -> Any:
    """INFO, asked again every `resend_s` x 10 on a noisy line."""
    end = time.monotonic() + timeout
    while True:
        try:
            return link.get_info(timeout=max(0.05, min(resend_s * 10, end - time.monotonic())))
        except LinkError:
            if time.monotonic() >= end:
                raise


def failures(report: dict[str, Any], faulty: bool) -> list[str]:
    """What makes the soak fail: any difference, any corrupt frame accepted, device errors; on a clean
    line also any loss."""
    out = []
    if report["identical_fraction"] is None or report["identical_fraction"] < 1.0:
        out.append(f"identical_fraction {report['identical_fraction']} < 1")
    if report["corrupt_frames_accepted"]:
        out.append(f"corrupt_frames_accepted {report['corrupt_frames_accepted']}")
    if report["device_error_count"]:
        out.append(f"{report['device_error_count']} device errors: {report['device_errors'][:3]}")
    if not faulty:
        for key in ("results_lost", "samples_lost", "frames_dropped", "crc_errors"):
            if report[key]:
                out.append(f"{key} {report[key]} on a clean line")
    return out


def summary(report: dict[str, Any]) -> str:
    lines = [
        f"soak: {report['signal_seconds']:.0f} s of signal ({report['streams']} records) in {report['wall_seconds']:.1f} s, "
        f"{report['speedup']:.1f} x real time",
        f"windows {report['windows']}: {report['results']} RESULTs, identical {report['identical_fraction']:.2%}, "
        f"lost {report['results_lost']}, corrupt frames accepted {report['corrupt_frames_accepted']}",
        f"link: frames sent {report['frames_sent']} (host {report['frames_sent_host']}, resent {report['frames_resent_host']}), "
        f"CRC rejected {report['frames_crc_rejected']}, frames dropped {report['frames_dropped']}, samples lost {report['samples_lost']}",
        f"host RSS growth {report['host_rss_growth_bytes'] / 1e6:.2f} MB" if report["host_rss_growth_bytes"] is not None else "host RSS: no baseline",
    ]
    if report["resync_seconds"]:
        lines.append("resync: " + ", ".join(f"{k} {v['events']} x, mean {v['mean_s'] or 0:.4f} s, max {v['max_s'] or 0:.4f} s" for k, v in report["resync_seconds"].items()))
    return "\n".join(lines)
