"""`ecg-export crosscheck`: the C firmware core against the Python reference and TFLM, offline.

Builds the core for a target (host, host-asan; cortex-m4 and riscv32 under QEMU, see export/qemu.py), then:
- model: the data set's test windows, quantized, through the native backend (`nn_runner`) and
  through TFLM's Python runtime on the same int8 input: int8 outputs must be identical;
- preprocessing: whole records streamed sample by sample at 250 Hz as ADC counts (the test split's
  records, MIT-BIH records, synthetic AD8232 streams with drift, mains, saturation and lead-off)
  through `stream_runner` and through `pipeline.signal.device`: window status, z-scores and int8 inputs;
- statuses: with the bundle's quality rule (`pipeline.signal.quality`) the stream check covers FLAT and NOISY
  too, and the raw path LOW_CONFIDENCE (the bundle's confidence threshold on TFLM's outputs,
  `quality.low_confidence_int8`); `status_counts` counts the reference's final statuses, and the
  synthetic streams include a stretch of every kind (`quality_stream`);
- raw path: the same streams through `device_image` (filter -> window -> model on the device)
  against TFLM on the reference's quantized windows: logits and status;
- beats: the same streams through the device's beat detector (`stream_runner -b`) against
  `pipeline.signal.beats.detect_beats`: `beats_identical_fraction` is the fraction of streams whose
  beat lists (every sample index) are identical, and must be 1.0; `rhythm_identical_fraction` (and
  `raw_path_rhythm_identical_fraction`) the fraction of windows whose heart rate and RR irregularity are
  the reference's (`pipeline.signal.beats.window_rhythms`), also 1.0;
- cost (the QEMU targets): flash and RAM of the device image, instructions per inference, per MAC
  and per sample (QEMU -icount; export/qemu.py says how each target counts), and the portable
  kernels (NN_FORCE_PORTABLE) against the optimized ones: their instructions and identical outputs.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from pipeline.signal.ad8232 import AD8232Config, Disturbances, mv_to_counts, to_adc
from pipeline.signal.beats import detect_beats_timed
from pipeline.data.dataset import Dataset, load_dataset, write_json_atomic
from pipeline.inference.classifiers import select_leads
from pipeline.inference.device_path import AnsweredWindow, device_answers
from pipeline.signal.preprocess import quantize_input, resample
from pipeline.signal.quality import QualityStatus
from pipeline.data.records import read_record
from pipeline.sources import mitdb as mitdb_source
from pipeline.signal.spec import PreprocessSpec

from .bundle import quantization, read_manifest
from .bundle_model import BundleModel
from .firmware import generate_firmware
from .onnx_export import ExportError
from .qemu import TARGETS as QEMU_TARGET_TABLE
from .runtimes import run_tflm_int8

FIRMWARE_DIR = Path(__file__).resolve().parents[1] / "firmware"
QEMU_TARGETS = tuple(QEMU_TARGET_TABLE)
TARGETS = ("host", "host-asan", *QEMU_TARGETS)
ADC = AD8232Config()
PORTABLE_WINDOWS = 4
CLOCKS_HZ = {"nano33ble_64mhz": 64e6, "esp32_240mhz": 240e6, "esp32c3_160mhz": 160e6}


@dataclass(frozen=True)
class Tolerances:
    int8_identical: float = 1.0
    preprocess_max_abs: float = 1e-4
    input_identical: float = 0.999
    status_identical: float = 1.0
    raw_path_identical: float = 1.0
    beats_identical: float = 1.0


@dataclass
class Stream:
    """One stream of ADC counts and lead-off flags the device would see."""

    name: str
    raw: np.ndarray  # uint16
    lead_off: np.ndarray  # bool


@dataclass
class Target:
    """A built target: runs its programs (natively, or under QEMU for the QEMU targets)."""

    name: str
    build: Path
    run: Callable[[str, list[str], Path], None]
    stats: dict[str, Any] = field(default_factory=dict)

    def program(self, name: str) -> Path:
        return self.build / f"{name}{_exe(self.name)}"


def _exe(target: str) -> str:
    """The programs' file name suffix (the Makefile's EXE)."""
    return ".elf" if target in QEMU_TARGETS else ""


def make(target: str, gen: Path, build: Path, programs: list[str], extra_cflags: str = "") -> None:
    """Build harness programs of the firmware for `target`; the compiler's output goes into the error."""
    cmd = ["make", "-s", "-C", str(FIRMWARE_DIR), f"TARGET={target}", f"GEN={gen}", f"BUILD={build}", f"EXTRA_CFLAGS={extra_cflags}"]
    cmd += [str(build / f"{p}{_exe(target)}") for p in programs]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ExportError(f"firmware build for {target} failed:\n{proc.stdout[-2000:]}{proc.stderr[-4000:]}")


def program_runner(target: str, build: Path) -> Callable[[str, list[str], Path], None]:
    """run(program, args, cwd): a harness program built for `target` in `build`, natively or under QEMU;
    an ExportError with its output when it fails."""
    if target in QEMU_TARGETS:
        from .qemu import run_elf

        def run_qemu(program: str, args: list[str], cwd: Path) -> None:
            res = run_elf(build / f"{program}.elf", args, cwd=cwd)
            if res.returncode != 0:
                raise ExportError(f"{program} on {target} failed (exit {res.returncode}): {res.console[-1500:]}")

        return run_qemu

    def run_host(program: str, args: list[str], cwd: Path) -> None:
        proc = subprocess.run([str(build / program), *args], cwd=cwd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ExportError(f"{program} ({target}) failed (exit {proc.returncode}): {proc.stderr[-1500:]}")

    return run_host


def build_target(target: str, gen: Path, work: Path) -> Target:
    if target not in TARGETS:
        raise ExportError(f"unknown target {target!r}; expected one of {TARGETS}")
    if target in QEMU_TARGETS:
        from .qemu import ensure_toolchain

        ensure_toolchain(target)
    build = work / f"build-{target}"
    make(target, gen, build, ["nn_runner", "stream_runner", "device_image"])
    return Target(target, build, program_runner(target, build))


# ------------------------------------------------------------------ streams


def record_stream(path: Path, leads: Sequence[str], spec: PreprocessSpec, max_seconds: float = 0.0) -> Stream:
    """A WFDB record as the device would see it: the first of `leads` it has, resampled to the spec's rate, in ADC counts."""
    rec = read_record(path, list(leads), fallback=True, hash_files=False)
    x = resample(rec.signal[0], rec.fs, spec.fs)
    if max_seconds:
        x = x[: int(max_seconds * spec.fs)]
    raw = mv_to_counts(x, ADC)
    return Stream(path.name, raw, np.zeros(raw.size, dtype=bool))


def synthetic_streams(spec: PreprocessSpec, seconds: float, seed: int = 0) -> list[Stream]:
    """AD8232 streams with drift, mains, motion and lead-off, and one that clips at the rails."""
    from pipeline.data.synthetic import simulate_ecg

    rng = np.random.default_rng(seed)
    n = int(seconds * spec.fs)
    out = []
    rough = Disturbances(wander_prob=1.0, mains_prob=1.0, motion_prob=1.0, emg_prob=1.0, lead_off_prob=1.0)
    cases = [("NORMAL", "drift_mains_leadoff", rough, 1.0), ("ARRHYTHMIA", "drift_mains_leadoff", rough, 1.0), ("NORMAL", "clipping", Disturbances.none(), 2.5)]
    for i, (label, kind, dist, gain) in enumerate(cases):
        ecg = simulate_ecg(label, seconds, spec.fs, rng)[:n] * gain
        raw, off = to_adc(ecg, spec.fs, rng, ADC, dist)
        out.append(Stream(f"synthetic_{kind}_{i}", raw, off))
    out.append(quality_stream(spec, seconds, seed + 1))
    return out


def quality_stream(spec: PreprocessSpec, seconds: float, seed: int = 0) -> Stream:
    """An AD8232 stream, without lead-off flags, that passes through every signal-quality status:
    clean ECG, a stuck input (the same count for 3 s), a signal too small to read, EMG, strong mains
    hum, and electrode pops (steps larger than the ECG), each `seconds / 6` long."""
    from pipeline.data.synthetic import simulate_ecg

    rng = np.random.default_rng(seed)
    n = int(seconds * spec.fs)
    part = n // 6
    ecg = simulate_ecg("NORMAL", seconds, spec.fs, rng)[:n].copy()
    t = np.arange(n) / spec.fs
    tiny, emg, mains, pops = (slice(k * part, (k + 1) * part) for k in (2, 3, 4, 5))
    ecg[tiny] *= 0.01
    ecg[emg] += 0.4 * rng.standard_normal(part)
    ecg[mains] += 1.0 * np.sin(2 * np.pi * 50.0 * t[mains])
    for t0 in range(pops.start + 300, pops.stop, int(4.3 * spec.fs)):  # a pop every 4.3 s, alternating sign
        sign = 1 if (t0 // 7) % 2 else -1
        ecg[t0:] += sign * 2.5 * np.exp(-(np.arange(n - t0)) / (0.15 * spec.fs))
    raw, off = to_adc(ecg, spec.fs, rng, ADC, Disturbances.none())
    stuck = slice(part + part // 3, part + part // 3 + int(3 * spec.fs))
    raw[stuck] = raw[stuck.start]
    return Stream("synthetic_quality", raw, off)


def write_samples(stream: Stream, path: Path) -> None:
    packed = stream.raw.astype(np.uint32) | (stream.lead_off.astype(np.uint32) << 16)
    packed.astype("<u4").tofile(path)


def _logit_bytes(n_labels: int) -> int:
    return (n_labels + 3) // 4 * 4


def _result_fields(n_labels: int) -> list[tuple[Any, ...]]:
    return [("index", "<i4"), ("first", "<i4"), ("status", "<i4"), ("label", "<i4"), ("hr_x10", "<u2"), ("rr_irregularity", "<u2"),
            ("logits", "i1", _logit_bytes(n_labels))]  # fmt: skip


def stream_dtype(window: int, n_labels: int) -> np.dtype:
    """One window record of stream_runner's output: a result, then the window's z-scores and int8 input."""
    return np.dtype([*_result_fields(n_labels), ("z", "<f4", window), ("q", "i1", window)])


def result_dtype(n_labels: int) -> np.dtype:
    """One window record of device_image's output."""
    return np.dtype(_result_fields(n_labels))


# ------------------------------------------------------------------ checks


def _same_place(rec: np.void, status: int, w: AnsweredWindow) -> bool:
    """A device record with this status at the reference window's index and first sample."""
    return int(rec["status"]) == int(status) and int(rec["index"]) == w.index and int(rec["first"]) == w.start


@dataclass
class _Tally:
    """Windows compared with the reference and the reference's final statuses."""

    windows: int = 0
    status_equal: int = 0
    rhythm_equal: int = 0  # heart rate and RR irregularity both as the reference's
    status_counts: dict[str, int] = field(default_factory=lambda: {s.name: 0 for s in QualityStatus})

    def _pairs(self, name: str, program: str, ref: list[AnsweredWindow], recs: np.ndarray) -> list[tuple[AnsweredWindow, np.void]]:
        """(reference, device record) of one stream, counted; an ExportError when their numbers differ."""
        if len(recs) != len(ref):
            raise ExportError(f"{name}: {program} emitted {len(recs)} windows, the reference {len(ref)}")
        self.windows += len(ref)
        for w, r in zip(ref, recs):
            self.status_counts[w.status.name] += 1
            self.rhythm_equal += int(r["hr_x10"]) == w.hr_x10 and int(r["rr_irregularity"]) == w.rr_irregularity
        return list(zip(ref, recs))


@dataclass
class PreprocessTally(_Tally):
    ok_windows: int = 0
    max_abs_diff: float = 0.0
    input_equal: int = 0
    input_total: int = 0
    samples: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    per_stream: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, name: str, ref: list[AnsweredWindow], dev: np.ndarray) -> None:
        """Compare one stream of `stream_runner -n` records (statuses before the model: a reference
        LOW_CONFIDENCE window is OK there) with the reference."""
        diff = 0.0
        for w, d in self._pairs(name, "the device", ref, dev):
            pre_model = QualityStatus.OK if w.classified else w.status
            self.statuses[pre_model.name] = self.statuses.get(pre_model.name, 0) + 1
            self.status_equal += _same_place(d, pre_model, w)
            if w.q is None or int(d["status"]) != int(pre_model):
                continue
            q = w.q
            self.ok_windows += 1
            diff = max(diff, float(np.abs(d["z"].astype(np.float64) - w.z.astype(np.float64)).max()))
            self.input_equal += int((d["q"] == q).sum())
            self.input_total += q.size
        self.max_abs_diff = max(self.max_abs_diff, diff)
        counts = {st.name: sum(w.status == st for w in ref) for st in QualityStatus}
        self.per_stream[name] = {"windows": len(ref), "ok": sum(w.classified for w in ref), "max_abs_diff": diff, "status_counts": {k: v for k, v in counts.items() if v}}


@dataclass
class RawPathTally(_Tally):
    """device_image (the whole device path) against the reference: logits of classified windows, every status."""

    logits_equal: int = 0
    classified: int = 0

    def add(self, name: str, ref: list[AnsweredWindow], res: np.ndarray, n_labels: int) -> None:
        for w, r in self._pairs(name, "device_image", ref, res):
            same = _same_place(r, w.status, w)
            if w.logits is not None:
                self.classified += 1
                equal = bool((r["logits"][:n_labels] == w.logits).all()) and int(r["label"]) == int(np.argmax(w.logits))
                self.logits_equal += equal
                same = same and equal
            else:
                same = same and int(r["label"]) == -1
            self.status_equal += same


def test_inputs(ds: Dataset, manifest: dict[str, Any], limit: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The test split's windows in the model's leads `(n, leads, window)` float32, and their int8 model
    inputs `(n, window * leads)` in the TFLite layout, quantized as the device does."""
    idx = ds.indices("test")
    idx = idx[:limit] if limit else idx
    windows = select_leads(np.asarray(ds.X[idx]), ds.leads, manifest["leads"], str(ds.path)).astype(np.float32)
    in_q, _ = quantization(manifest)
    inputs = [quantize_input(w.T.reshape(-1), *in_q) for w in windows]
    return windows, np.stack(inputs) if inputs else np.zeros((0, ds.spec.window * len(manifest["leads"])), np.int8)


def op_instructions(native: Any, per_op: np.ndarray) -> list[dict[str, Any]]:
    """Per op of the native model: index, type, MACs, mean instructions per inference and per MAC
    (`per_op`: nn_runner's OPSTATS as (inferences, ops))."""
    mean = per_op.mean(axis=0)
    return [
        {"index": i, "op": kind, "macs": int(macs), "instructions": round(float(n)), "instructions_per_mac": float(n) / macs if macs else None}
        for i, (kind, macs, n) in enumerate(zip(native.ops, native.op_macs, mean))
    ]


def model_check(target: Target, blob: Path, tflite: Path, inputs: np.ndarray, work: Path, native_model: Any = None) -> dict[str, Any]:
    """Native backend vs TFLM on the same int8 inputs `(n, features)`; with `native_model` (the
    NativeModel of `blob`) and a target that counts instructions, also each op's instructions."""
    inputs.astype(np.int8).tofile(work / "inputs.bin")
    target.run("nn_runner", [str(blob), "inputs.bin", "outputs.bin", "nn_stats.bin", "nn_opstats.bin"], work)
    native = np.fromfile(work / "outputs.bin", dtype=np.int8).reshape(len(inputs), -1)
    tflm = run_tflm_int8(tflite, inputs)
    stats = np.fromfile(work / "nn_stats.bin", dtype="<u8") if (work / "nn_stats.bin").exists() else np.zeros(0)
    per_op = np.fromfile(work / "nn_opstats.bin", dtype="<u8") if (work / "nn_opstats.bin").exists() else np.zeros(0)
    counted = native_model is not None and len(inputs) and per_op.size == len(inputs) * len(native_model.ops)
    return {
        "windows": int(len(inputs)),
        "identical": int((native == tflm).all(axis=1).sum()),
        "max_lsb_diff": int(np.abs(native.astype(np.int32) - tflm.astype(np.int32)).max()) if len(inputs) else 0,
        "instructions": [int(v) for v in stats[: len(inputs)]],
        "op_instructions": op_instructions(native_model, per_op.reshape(len(inputs), -1)) if counted else None,
        "native": native,
    }


def portable_check(tgt: Target, gen: Path, work: Path, blob: Path, inputs: np.ndarray, optimized: np.ndarray) -> None:
    """The portable kernels (NN_FORCE_PORTABLE) on a QEMU target: their instruction count, and outputs equal
    to the optimized path's (the Cortex-M4's DSP kernels; elsewhere the same im2col / lookup-table kernels in C)."""
    build = work / f"build-{tgt.name}-portable"
    make(tgt.name, gen, build, ["nn_runner"], "-DNN_FORCE_PORTABLE=1")
    portable = Target(tgt.name, build, program_runner(tgt.name, build))
    inputs.astype(np.int8).tofile(work / "portable_inputs.bin")
    portable.run("nn_runner", [str(blob), "portable_inputs.bin", "portable_outputs.bin", "portable_stats.bin"], work)
    out = np.fromfile(work / "portable_outputs.bin", dtype=np.int8).reshape(len(inputs), -1)
    tgt.stats["portable_instructions"] = np.fromfile(work / "portable_stats.bin", dtype="<u8")[: len(inputs)].tolist()
    tgt.stats["portable_identical"] = bool(np.array_equal(out, optimized))


def iter_streams(ds: Dataset, lead: str, mitdb: Path | None, mitdb_records: int, max_seconds: float, synthetic_seconds: float) -> Iterator[Stream]:
    for record_id in dict.fromkeys(ds.record[ds.indices("test")].tolist()):
        yield record_stream(ds.record_path(record_id), [lead], ds.spec)
    if mitdb is not None:
        names = [ln.strip() for ln in (mitdb / "RECORDS").read_text().split() if ln.strip()]
        for name in names[:mitdb_records] if mitdb_records else names:
            yield record_stream(mitdb / name, mitdb_source.DEFAULT_LEADS, ds.spec, max_seconds)
    yield from synthetic_streams(ds.spec, synthetic_seconds)


def crosscheck(
    bundle: Path,
    data: Path,
    target: str,
    *,
    mitdb: Path | None = None,
    mitdb_records: int = 0,
    max_seconds: float = 0.0,
    synthetic_seconds: float = 180.0,
    limit: int = 0,
    raw_path_windows: int = 64,
    work: Path | None = None,
    tol: Tolerances = Tolerances(),
    progress: bool = True,
) -> tuple[dict[str, Any], list[str]]:
    """Run every check; returns the report and the tolerances it failed."""
    bundle, data = Path(bundle), Path(data)
    manifest = read_manifest(bundle)
    ds = load_dataset(data)
    if tuple(ds.label_names) != tuple(manifest["labels"]):
        raise ExportError(f"data set {data}: labels {ds.label_names} differ from the bundle's {manifest['labels']}")
    if ds.spec.fingerprint() != manifest["spec_fingerprint"]:
        raise ExportError(f"data set {data}: preprocessing {ds.spec.fingerprint()} differs from the bundle's {manifest['spec_fingerprint']}")
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="ecg-crosscheck-") as scratch:
        work = Path(work or scratch)
        work.mkdir(parents=True, exist_ok=True)
        gen = work / "generated"
        info = generate_firmware(bundle, gen)
        from .native_model import build_native_model

        native = build_native_model((bundle / "model_int8.tflite").read_bytes())
        blob = work / "model.bin"
        blob.write_bytes(native.blob)
        tgt = build_target(target, gen, work)
        reference = BundleModel.from_manifest(bundle, manifest)
        lead = manifest["leads"][0]
        _, inputs = test_inputs(ds, manifest, limit)
        model = model_check(tgt, blob, bundle / "model_int8.tflite", inputs, work, native)
        if target in QEMU_TARGETS and len(inputs):
            portable_check(tgt, gen, work, blob, inputs[:PORTABLE_WINDOWS], model["native"][:PORTABLE_WINDOWS])

        # preprocessing and raw path: whole streams
        tally = PreprocessTally()
        raw = RawPathTally()
        streams = list(iter_streams(ds, lead, mitdb, mitdb_records, max_seconds, synthetic_seconds))
        rec_dt, res_dt = stream_dtype(ds.spec.window, len(ds.label_names)), result_dtype(len(ds.label_names))
        for s in tqdm(streams, desc=f"streams ({target})", unit="stream", disable=None if progress else True):
            write_samples(s, work / "samples.bin")
            tgt.run("stream_runner", ["-n", "-b", "beats.bin", "samples.bin", "windows.bin", str(ADC.max_count), str(ds.spec.device_hop), "stream_stats.bin"], work)
            dev = np.fromfile(work / "windows.bin", dtype=rec_dt)
            st = np.fromfile(work / "stream_stats.bin", dtype="<u8")
            tally.samples += int(st[0])
            tgt.stats["push_instructions"] = tgt.stats.get("push_instructions", 0) + int(st[3])
            tgt.stats["window_instructions"] = tgt.stats.get("window_instructions", 0) + int(st[4])
            tgt.stats["ok_windows"] = tgt.stats.get("ok_windows", 0) + int(st[2])
            tgt.stats["beat_instructions"] = tgt.stats.get("beat_instructions", 0) + int(st[6])
            beats = detect_beats_timed(s.raw, s.lead_off)  # the reference's beats, for the beat check and the rhythm
            same_beats = np.array_equal(np.fromfile(work / "beats.bin", dtype="<u4").astype(np.int64), beats[0])
            tgt.stats["beat_streams"] = tgt.stats.get("beat_streams", 0) + 1
            tgt.stats["beat_streams_identical"] = tgt.stats.get("beat_streams_identical", 0) + int(same_beats)
            ref = device_answers(s.raw, s.lead_off, ds.spec, ADC.max_count, reference, beats=beats)
            tally.add(s.name, ref, dev)
            if raw.classified >= raw_path_windows:
                continue
            tgt.run("device_image", ["samples.bin", "results.bin", str(ADC.max_count), str(ds.spec.device_hop)], work)
            raw.add(s.name, ref, np.fromfile(work / "results.bin", dtype=res_dt), len(ds.label_names))

        report = _report(target, tgt, native, info, model, tally, raw, ds)
        report["elapsed_s"] = round(time.time() - started, 1)
        failed = failures(report, tol)
        report["failures"] = failed
        return report, failed


def _cost(target: Target, native: Any, model: dict[str, Any], tally: PreprocessTally) -> dict[str, Any]:
    if target.name not in QEMU_TARGETS or not model["instructions"]:
        return {}
    from .qemu import elf_size

    per_inf = float(np.mean(model["instructions"]))
    size = elf_size(target.program("device_image"))
    per_sample = target.stats["push_instructions"] / max(tally.samples, 1)
    per_window = target.stats["window_instructions"] / max(target.stats["ok_windows"], 1)
    out: dict[str, Any] = {
        "flash_bytes": int(size["flash_bytes"]),
        "ram_bytes": int(size["ram_bytes"]),
        "image_sections": size,
        "instructions_per_inference": round(per_inf),
        "instructions_per_mac": per_inf / native.macs,
        "preprocess_instructions_per_sample": per_sample,
        "preprocess_instructions_per_window": per_window,
        "beats_instructions_per_sample": target.stats["beat_instructions"] / max(tally.samples, 1),
    }
    if target.stats.get("portable_instructions"):
        out["instructions_per_mac_portable"] = float(np.mean(target.stats["portable_instructions"])) / native.macs
        out["portable_identical"] = target.stats["portable_identical"]
    for board, hz in CLOCKS_HZ.items():
        out[f"inference_ms_{board}"] = 1e3 * per_inf / hz
    return out


def _report(target: str, tgt: Target, native: Any, info: dict, model: dict, tally: PreprocessTally, raw: RawPathTally, ds: Dataset) -> dict[str, Any]:
    report: dict[str, Any] = {
        "target": target,
        "windows": model["windows"],
        "int8_identical_fraction": model["identical"] / model["windows"] if model["windows"] else None,
        "int8_max_lsb_diff": model["max_lsb_diff"],
        "preprocess_max_abs_diff": tally.max_abs_diff,
        "input_identical_fraction": tally.input_equal / tally.input_total if tally.input_total else None,
        "status_identical_fraction": tally.status_equal / tally.windows if tally.windows else None,
        "raw_path_identical_fraction": raw.logits_equal / raw.classified if raw.classified else None,
        "raw_path_windows": raw.classified,
        "raw_path_status_identical_fraction": raw.status_equal / raw.windows if raw.windows else None,
        "raw_path_status_counts": raw.status_counts,
        "beats_identical_fraction": tgt.stats["beat_streams_identical"] / tgt.stats["beat_streams"] if tgt.stats.get("beat_streams") else None,
        "rhythm_identical_fraction": tally.rhythm_equal / tally.windows if tally.windows else None,
        "raw_path_rhythm_identical_fraction": raw.rhythm_equal / raw.windows if raw.windows else None,
        "stream_windows": tally.windows,
        "stream_ok_windows": tally.ok_windows,
        "stream_samples": tally.samples,
        "stream_statuses": tally.statuses,
        "status_counts": tally.status_counts,
        "streams": tally.per_stream,
        "model_sha256": info["model_sha256"],
        "spec_fingerprint": info["spec_fingerprint"],
        "native_arena_bytes": native.arena_bytes,
        "tflm_arena_bytes": info["tflm_arena_bytes"],
        "macs": native.macs,
        "op_instructions": model["op_instructions"],  # per op, where the target counts instructions
    }
    report.update(_cost(tgt, native, model, tally))
    hop_s = ds.spec.device_hop / ds.spec.fs
    for board, hz in CLOCKS_HZ.items():
        key = f"inference_ms_{board}"
        if key in report:
            report[f"hop_share_{board}"] = report[key] / 1e3 / hop_s
    return report


def failures(report: dict[str, Any], tol: Tolerances) -> list[str]:
    checks = [
        ("int8_identical_fraction", tol.int8_identical, ">="),
        ("input_identical_fraction", tol.input_identical, ">="),
        ("status_identical_fraction", tol.status_identical, ">="),
        ("raw_path_status_identical_fraction", tol.status_identical, ">="),
        ("raw_path_identical_fraction", tol.raw_path_identical, ">="),
        ("beats_identical_fraction", tol.beats_identical, ">="),
        ("rhythm_identical_fraction", tol.beats_identical, ">="),
        ("raw_path_rhythm_identical_fraction", tol.beats_identical, ">="),
        ("preprocess_max_abs_diff", tol.preprocess_max_abs, "<="),
    ]
    out = [] if report.get("portable_identical", True) else [f"portable and optimized kernels differ on {report['target']}"]
    for key, bound, op in checks:
        value = report.get(key)
        if value is None:
            out.append(f"{key}: nothing was compared")
        elif (op == ">=" and value < bound) or (op == "<=" and value > bound):
            out.append(f"{key} {value:.6g} {'<' if op == '>=' else '>'} {bound}")
    return out


def write_report(report: dict[str, Any], path: Path) -> None:
    write_json_atomic(Path(path), report)


def summary(report: dict[str, Any]) -> str:
    lines = [
        f"target {report['target']}: {report['windows']} test windows, {report['stream_windows']} streamed windows "
        f"({report['stream_samples']:,} samples, {report['stream_ok_windows']} classified)",
        f"int8 outputs identical to TFLM: {report['int8_identical_fraction']:.2%}",
        f"preprocessing max |dz| {report['preprocess_max_abs_diff']:.3g}, int8 inputs identical {report['input_identical_fraction']:.4%}, "
        f"window status identical {report['status_identical_fraction']:.2%}",
        f"raw device path == TFLM on the reference window: {report['raw_path_identical_fraction']:.2%} of {report['raw_path_windows']}, "
        f"statuses (with the confidence threshold) {report['raw_path_status_identical_fraction']:.2%}",
        "reference statuses: " + ", ".join(f"{k} {v}" for k, v in report["status_counts"].items()),
        f"beats identical to pipeline.signal.beats on {report['beats_identical_fraction']:.2%} of the streams, "
        f"window heart rate and RR irregularity on {report['rhythm_identical_fraction']:.2%} of the windows",
        f"native arena {report['native_arena_bytes']:,} B (TFLM {report['tflm_arena_bytes']:,} B), {report['macs']:,} MACs",
    ]
    if "flash_bytes" in report:
        lines.append(f"{report['target']} image: flash {report['flash_bytes']:,} B, RAM {report['ram_bytes']:,} B")
        lines.append(
            f"{report['instructions_per_inference']:,} instructions per inference ({report['instructions_per_mac']:.3f} per MAC); "
            f"preprocessing {report['preprocess_instructions_per_sample']:.0f} per sample + {report['preprocess_instructions_per_window']:,.0f} per window"
        )
        lines.append(
            f"at 1 instruction/cycle: {report['inference_ms_nano33ble_64mhz']:.1f} ms at 64 MHz ({report['hop_share_nano33ble_64mhz']:.1%} of a hop), "
            f"{report['inference_ms_esp32c3_160mhz']:.1f} ms at 160 MHz ({report['hop_share_esp32c3_160mhz']:.1%}), "
            f"{report['inference_ms_esp32_240mhz']:.1f} ms at 240 MHz ({report['hop_share_esp32_240mhz']:.1%})"
        )
    return "\n".join(lines)
