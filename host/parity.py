"""`ecg-host parity`: a running device (board, virtual device, emulator) against the Python reference.

Over the serial link: INFO must name the bundle's model (sha256) and preprocessing (spec
fingerprint); the test split's windows go to the device as REPLAY_WINDOW (the model alone, compared
with TFLM's int8 outputs and the float model's top-1), and whole records and synthetic AD8232
streams as REPLAY_SAMPLES (the whole device path, compared with `pipeline.inference.device_path.device_answers`
on the bundle's model: `pipeline.signal.device` with its quality rule, TFLM, its confidence threshold: every
status, FLAT, NOISY and LOW_CONFIDENCE included, and the logits of classified windows).
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

from export.bundle import read_manifest, verify_files
from export.bundle_model import BundleModel
from export.crosscheck import ADC, iter_streams, test_inputs
from export.protocol_defs import Capability, TimeUnit
from export.runtimes import run_litert, run_tflm_int8
from pipeline.util.atomic import write_bytes_atomic
from pipeline.data.dataset import load_dataset, write_json_atomic
from pipeline.inference.device_path import AnsweredWindow, device_answers
from pipeline.signal.preprocess import softmax
from pipeline.signal.quality import QualityStatus

from .link import DeviceLink, LinkError
from .protocol import Result


@dataclass(frozen=True)
class Tolerances:
    int8_identical: float = 1.0
    raw_path_identical: float = 1.0
    rhythm_identical: float = 1.0


@dataclass(frozen=True)
class ExpectedResult:
    """What a device must answer for one window: the reference device path's status, int8 logits
    (None when not classified) and rhythm figures (`pipeline.inference.device_path.device_answers`)."""

    status: int
    logits: tuple[int, ...] | None
    hr_x10: int
    rr_irregularity: int

    def same_answer(self, r: Result) -> bool:
        """Status and logits as the reference's."""
        return self.status == int(r.status) and (self.logits is None or self.logits == tuple(r.logits))

    def same_rhythm(self, r: Result) -> bool | None:
        """Heart rate and RR irregularity as the reference's; None from a device without the beat detector."""
        return None if r.hr_x10 is None else (self.hr_x10, self.rr_irregularity) == (r.hr_x10, r.rr_irregularity)

    def matches(self, r: Result) -> bool:
        """The whole RESULT as the reference's (the rhythm only where the device sends it)."""
        return self.same_answer(r) and self.same_rhythm(r) is not False


def expected_results(ref: Sequence[AnsweredWindow]) -> dict[int, ExpectedResult]:
    """Window index -> what the device must answer, from `device_answers`."""
    return {w.index: ExpectedResult(int(w.status), None if w.logits is None else tuple(int(v) for v in w.logits), w.hr_x10, w.rr_irregularity)
            for w in ref}  # fmt: skip


def check_identity(info: Any, bundle: Path, manifest: dict[str, Any], port: str) -> None:
    sha = hashlib.sha256((bundle / "model_int8.tflite").read_bytes()).hexdigest()
    if info.model_sha256.hex() != sha:
        raise LinkError(f"device on {port} runs model {info.model_sha256.hex()[:16]}..., the bundle has {sha[:16]}...: flash the bundle's firmware (ecg-export firmware --bundle {bundle})")
    if info.spec_fingerprint.hex() != manifest["spec_fingerprint"]:
        raise LinkError(f"device on {port} preprocesses with spec {info.spec_fingerprint.hex()}, the bundle with {manifest['spec_fingerprint']}")


def info_dict(info: Any) -> dict[str, Any]:
    return {
        "firmware": info.firmware, "backend": info.backend, "model_sha256": info.model_sha256.hex(),
        "spec_fingerprint": info.spec_fingerprint.hex(), "rate_hz": info.rate_hz, "window": info.window, "hop": info.hop,
        "adc_bits": info.adc_bits, "capabilities": int(info.capabilities), "labels": list(info.labels),
        "input_scale": info.input_scale, "input_zero_point": info.input_zero_point,
        "output_scale": info.output_scale, "output_zero_point": info.output_zero_point, "time_unit": info.time_unit.name,
    }  # fmt: skip


def plot(float_logits: np.ndarray, device_logits: np.ndarray, labels: list[str], out: Path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pf, pd = softmax(float_logits), softmax(device_logits)
    fig, axes = plt.subplots(1, len(labels), figsize=(4 * len(labels), 4))
    for k, ax in enumerate(np.atleast_1d(axes)):
        ax.scatter(pf[:, k], pd[:, k], s=10, alpha=0.6)
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
        ax.set(title=f"P({labels[k]})", xlabel="float model", ylabel="device (int8)", xlim=(0, 1), ylim=(0, 1))
    fig.suptitle("device vs float model probabilities (research tool, not a medical device)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(out, buf.getvalue())


def run_parity(
    port: str,
    bundle: Path,
    data: Path,
    *,
    baud: int = 115200,
    limit: int = 0,
    streams: int = 0,
    synthetic_seconds: float = 60.0,
    cpu_hz: float = 64e6,
    timeout: float = 10.0,
    out: Path | None = None,
    progress: bool = True,
) -> tuple[dict[str, Any], list[str]]:
    bundle, data = Path(bundle), Path(data)
    manifest = read_manifest(bundle)
    verify_files(bundle, manifest)
    ds = load_dataset(data)
    model = BundleModel.from_manifest(bundle, manifest)
    windows, inputs = test_inputs(ds, manifest, limit)
    reference = run_tflm_int8(model.tflite, inputs)
    float_logits = run_litert(bundle / "model_float.tflite", windows, reference_kernels=False).logits

    with DeviceLink(port, baud) as link:
        info = link.get_info(timeout=min(timeout, 5.0))
        check_identity(info, bundle, manifest, port)
        device = np.zeros_like(reference)
        times = []
        for k, x in enumerate(tqdm(inputs, desc="replay windows", unit="win", disable=None if progress else True)):
            r = link.replay_window(k, x.tobytes(), timeout)
            device[k] = np.asarray(r.logits, dtype=np.int8)
            times.append(r.time)
        raw_equal = raw_total = rhythm_equal = rhythm_total = 0
        statuses = {st.name: 0 for st in QualityStatus}
        stream_list = list(iter_streams(ds, manifest["leads"][0], None, 0, 0.0, synthetic_seconds))
        if streams:
            synthetic = [s for s in stream_list if s.name.startswith("synthetic")]
            stream_list = stream_list[:streams] + synthetic[:1] + [s for s in synthetic[1:] if s.name == "synthetic_quality"]
        for s in tqdm(stream_list, desc="replay streams", unit="stream", disable=None if progress else True):
            ref = device_answers(s.raw, s.lead_off, ds.spec, ADC.max_count, model)
            results = link.replay_stream(s.raw, s.lead_off, len(ref), timeout)
            expected = expected_results(ref)
            for r in results:
                statuses[QualityStatus(int(r.status)).name] += 1
                raw_total += 1
                want = expected.get(r.window_index)
                raw_equal += want is not None and want.same_answer(r)
                if r.hr_x10 is not None:  # a device with the beat detector
                    rhythm_total += 1
                    rhythm_equal += want is not None and bool(want.same_rhythm(r))
            raw_total += max(0, len(ref) - len(results))
        link.poll(0.2)
        stats = link.stats

    unit = info.time_unit
    to_ms = (lambda t: t / 1e3) if unit == TimeUnit.MICROSECONDS else (lambda t: t / cpu_hz * 1e3)
    report: dict[str, Any] = {
        "port": port,
        "device": info_dict(info),
        "windows": int(len(inputs)),
        "int8_identical_fraction": float((device == reference).all(axis=1).mean()) if len(inputs) else None,
        "int8_max_lsb_diff": int(np.abs(device.astype(np.int32) - reference.astype(np.int32)).max()) if len(inputs) else 0,
        "raw_path_identical_fraction": raw_equal / raw_total if raw_total else None,
        "raw_path_windows": raw_total,
        # heart rate and RR irregularity as pipeline.signal.beats.window_rhythms (None: no beat detector on the device)
        "rhythm_identical_fraction": rhythm_equal / rhythm_total if rhythm_total else None,
        "status_counts": statuses,
        "top1_agreement_float": float((device.argmax(1) == float_logits.argmax(1)).mean()) if len(inputs) else None,
        "frames_dropped": stats.frames_dropped,
        "crc_errors": stats.crc_errors,
        "dropped_bytes": stats.dropped_bytes,
        "samples_lost": stats.samples_lost,
        "device_errors": stats.errors,
        "max_inference_ms": max(map(to_ms, times)) if times else None,
        "inference_time_basis": "microseconds measured on the device" if unit == TimeUnit.MICROSECONDS else f"instructions at {cpu_hz / 1e6:g} MHz",
    }
    tol = Tolerances()
    failed = []
    for key, bound in (("int8_identical_fraction", tol.int8_identical), ("raw_path_identical_fraction", tol.raw_path_identical)):
        v = report[key]
        if v is None or v < bound:
            failed.append(f"{key} {v} < {bound}")
    if info.capabilities & Capability.BEATS and (report["rhythm_identical_fraction"] or 0.0) < tol.rhythm_identical:
        failed.append(f"rhythm_identical_fraction {report['rhythm_identical_fraction']} < {tol.rhythm_identical}")
    report["failures"] = failed
    if out is not None:
        write_json_atomic(Path(out), report)
        if len(inputs):
            plot(float_logits, model.dequantize(device), list(model.labels), Path(out).with_suffix(".png"))
    return report, failed


def summary(report: dict[str, Any]) -> str:
    d = report["device"]
    return "\n".join([
        f"device: {d['firmware']} ({d['backend']}), model {d['model_sha256'][:16]}..., spec {d['spec_fingerprint']}",
        f"model alone: int8 outputs identical to TFLM on {report['int8_identical_fraction']:.2%} of {report['windows']} windows; "
        f"top-1 agrees with the float model on {report['top1_agreement_float']:.2%}",
        f"whole device path: {report['raw_path_identical_fraction']:.2%} of {report['raw_path_windows']} windows identical to the reference"
        + ("" if report.get("rhythm_identical_fraction") is None else f"; heart rate and RR irregularity on {report['rhythm_identical_fraction']:.2%}"),
        f"link: {report['frames_dropped']} frames dropped, {report['crc_errors']} CRC errors, {report['samples_lost']} samples lost; "
        f"slowest inference {report['max_inference_ms']:.1f} ms ({report['inference_time_basis']})",
    ])


def print_outcome(summary: str, written: str | None, failed: list[str]) -> int:
    """Print a check's summary, what it wrote and each failure; its exit status (1 on failures)."""
    print(summary)
    if written:
        print(f"-> {written}")
    for f in failed:
        print(f"FAIL: {f}", file=sys.stderr)
    return 1 if failed else 0
