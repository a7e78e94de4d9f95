"""The firmware's signal-quality rule and confidence threshold against pipeline.signal.quality, decision for decision.

The C core (ecg_preprocess.c, ecg_core.c) must take exactly the decisions of the Python reference
(`pipeline.signal.device.device_windows(..., quality=rule)`, `pipeline.signal.quality.low_confidence_int8`): on
synthetic streams holding every status, on windows built to sit just below and just above each
threshold, and on a grid of int8 outputs around the confidence threshold; natively, under
AddressSanitizer/UBSan and on the Cortex-M4 under QEMU. A bundle without the rule keeps today's
statuses; the thresholds the device applies are the generated header's.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import require_m4_toolchain

from export.bundle import manifest_uncertainty, quantization, read_manifest
from export.crosscheck import ADC, Stream, make, quality_stream, stream_dtype, synthetic_streams, write_samples
from export.firmware import generate_firmware
from pipeline.signal.ad8232 import Disturbances, to_adc
from pipeline.signal.device_rule import WindowStatus
from pipeline.signal.device import device_windows
from pipeline.signal.preprocess import device_filter, softmax
from pipeline.signal.quality import QualityRule, QualityStatus, assess_window, low_confidence_int8
from pipeline.signal.spec import PreprocessSpec
from pipeline.data.synthetic import simulate_ecg

pytestmark = pytest.mark.slow

PROGRAMS = ["stream_runner", "device_image"]
GAP = 100  # samples between two sweep windows, flagged lead-off: each window's filter starts afresh


# ------------------------------------------------------------------ builds


class Build:
    """The harness programs of one target built against one generated directory."""

    def __init__(self, target: str, gen: Path, build: Path) -> None:
        self.target, self.gen, self.build = target, gen, build
        make(target, gen, build, PROGRAMS)

    def run(self, program: str, args: list[str], cwd: Path) -> None:
        if self.target == "cortex-m4":
            from export.qemu import run_elf

            res = run_elf(self.build / f"{program}.elf", args, cwd=cwd)
            assert res.returncode == 0, res.console[-1500:]
        else:
            proc = subprocess.run([str(self.build / program), *args], cwd=cwd, capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr[-1500:]

    def statuses(self, stream: Stream, spec: PreprocessSpec, hop: int, work: Path) -> np.ndarray:
        """Statuses `stream_runner -n` gives (before the model)."""
        write_samples(stream, work / "samples.bin")
        self.run("stream_runner", ["-n", "samples.bin", "windows.bin", str(ADC.max_count), str(hop)], work)
        return np.fromfile(work / "windows.bin", dtype=stream_dtype(spec.window, 3))["status"]

    def low_confidence(self, logits: np.ndarray, work: Path) -> np.ndarray:
        """`ecg_low_confidence()` on rows of int8 outputs (`stream_runner -c`)."""
        logits.astype(np.int8).tofile(work / "logits.bin")
        self.run("stream_runner", ["-c", "logits.bin", "low.bin"], work)
        return np.fromfile(work / "low.bin", dtype=np.uint8).astype(bool)


@pytest.fixture(scope="module")
def bundle_info(demo_bundle) -> dict:
    """The demo bundle, its spec, rule, threshold and output scale; it must carry a rule and a threshold."""
    _, bundle = demo_bundle
    manifest = read_manifest(bundle)
    unc = manifest_uncertainty(manifest)
    assert unc.quality is not None and unc.confidence_threshold > 0, "the demo bundle must carry the quality rule and a threshold"
    return {"bundle": bundle, "spec": PreprocessSpec.from_dict(manifest["spec"]), "rule": unc.quality,
            "threshold": unc.confidence_threshold, "out_scale": quantization(manifest)[1][0]}  # fmt: skip


@pytest.fixture(scope="module")
def gen(bundle_info, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("quality") / "generated"
    generate_firmware(bundle_info["bundle"], out)
    return out


_BUILDS: dict[tuple[str, Path], Build] = {}


def _build(target: str, gen: Path) -> Build:
    if target == "cortex-m4":
        require_m4_toolchain()
    key = (target, gen)
    if key not in _BUILDS:
        _BUILDS[key] = Build(target, gen, gen.parent / f"build-{target}")
    return _BUILDS[key]


# ------------------------------------------------------------------ windows near each threshold


def _ecg_counts(seed: int, amplitude: float = 1.0) -> np.ndarray:
    """A clean window of ADC counts (quiet AD8232 path) and nothing else."""
    rng = np.random.default_rng(seed)
    ecg = simulate_ecg("NORMAL", 10.0, 250, rng)[:2500] * amplitude
    raw, _ = to_adc(ecg, 250, rng, ADC, Disturbances.none())
    return raw.astype(np.int64)


def _judge(raw: np.ndarray, spec: PreprocessSpec, rule: QualityRule) -> QualityStatus:
    """The reference on one window whose filter starts at its first sample (as in the sweep stream)."""
    return assess_window(raw, None, device_filter(raw.astype(np.float64), spec), ADC.max_count, spec.fs, rule).status


def _straddle(make_window: Callable[[float], np.ndarray], lo: float, hi: float, spec: PreprocessSpec, rule: QualityRule) -> list[np.ndarray]:
    """Bisect the parameter until two windows, one each side of the decision, differ by one step."""
    a, b = make_window(lo), make_window(hi)
    sa, sb = _judge(a, spec, rule), _judge(b, spec, rule)
    assert sa != sb, f"the sweep {lo}..{hi} does not cross the threshold ({sa.name} at both ends)"
    for _ in range(40):
        mid = (lo + hi) / 2
        m = make_window(mid)
        if _judge(m, spec, rule) == sa:
            lo, a = mid, m
        else:
            hi, b = mid, m
    return [a, b]


def sweep_windows(spec: PreprocessSpec, rule: QualityRule) -> dict[str, list[np.ndarray]]:
    """For each threshold, windows that sit just below and just above it."""
    base = _ecg_counts(1)
    mid = int(np.median(base))
    n = spec.window
    rng = np.random.default_rng(5)
    noise = rng.standard_normal(n)
    t = np.arange(n)
    bump = -np.exp(-0.5 * ((t - 1300) / (0.1 * spec.fs)) ** 2)  # a motion bump, smooth: no hf energy
    small = np.rint(mid + (base - mid) * 0.3).astype(np.int64)
    drift = 3.0 * np.sin(2 * np.pi * 0.7 * t / spec.fs)  # slow: no long runs of equal counts, no hf energy
    rail = ADC.max_count
    out: dict[str, list[np.ndarray]] = {}
    # FLAT: peak-to-peak of the filtered window (the ECG scaled around its baseline)
    out["flat_p2p"] = _straddle(lambda a: np.rint(mid + (base - mid) * a + drift).astype(np.int64), 0.001, 1.0, spec, rule)
    # FLAT: a run of equal counts one sample short of, at and past the limit
    run = rule.flat_max_run_samples(spec.fs)
    out["flat_run"] = []
    for length in (run - 1, run, run + 1):
        w = base.copy()
        w[1000 : 1000 + length] = w[1000]
        out["flat_run"].append(w)
    # NOISY: white noise raising the hf ratio past its limit
    out["noisy_hf"] = _straddle(lambda a: np.clip(np.rint(base + a * noise), 0, rail).astype(np.int64), 0.0, 200.0, spec, rule)
    # NOISY: a motion bump against segments of ECG (the jump ratio)
    out["noisy_jump"] = _straddle(lambda a: np.clip(np.rint(small + a * bump), 0, rail).astype(np.int64), 0.0, 1900.0, spec, rule)
    # SATURATED: the baseline raised until the R peaks clip at the rail on more samples than allowed
    out["saturated"] = _straddle(lambda a: np.clip(np.rint(base + a), 0, rail).astype(np.int64), 0.0, 3000.0, spec, rule)
    return out


def sweep_stream(windows: list[np.ndarray]) -> Stream:
    """Windows separated by GAP lead-off samples: with hop window + GAP each window is judged alone."""
    raw, off = [], []
    for w in windows:
        raw += [w, np.full(GAP, int(w[-1]))]
        off += [np.zeros(w.size, bool), np.ones(GAP, bool)]
    return Stream("sweep", np.concatenate(raw).astype(np.uint16), np.concatenate(off))


@pytest.fixture(scope="module")
def sweep(bundle_info) -> tuple[Stream, dict[str, list[np.ndarray]]]:
    by_rule = sweep_windows(bundle_info["spec"], bundle_info["rule"])
    return sweep_stream([w for ws in by_rule.values() for w in ws]), by_rule


def _reference(stream: Stream, spec: PreprocessSpec, rule: QualityRule | None, hop: int | None = None) -> np.ndarray:
    return np.array([int(w.status) for w in device_windows(stream.raw, stream.lead_off, spec, ADC.max_count, hop=hop, quality=rule)])


# ------------------------------------------------------------------ confidence grid


def confidence_grid(n_random: int = 2000) -> np.ndarray:
    """int8 outputs (n, 3): every pair of gaps below the top (0..255, ties included), the same rows with
    the top elsewhere, and random rows."""
    d1, d2 = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    top = np.full(d1.size, 127)
    grid = np.stack([top, top - d1.ravel(), top - d2.ravel()], axis=1)
    rng = np.random.default_rng(0)
    moved = rng.permuted(grid[::7], axis=1) - rng.integers(0, 100, size=(grid[::7].shape[0], 1))
    rows = rng.integers(-128, 128, size=(n_random, 3))
    return np.concatenate([grid, moved.clip(-128, 127), rows]).astype(np.int8)


def near_threshold_rows(logits: np.ndarray, out_scale: float, threshold: float, margin: float) -> np.ndarray:
    p = softmax(logits.astype(np.float64) * out_scale).max(axis=1)
    return logits[np.abs(p - threshold) < margin]


# ------------------------------------------------------------------ tests


def test_reference_sweep_sits_on_the_thresholds(bundle_info, sweep):
    """The sweep really straddles each threshold: both decisions, and measurements close to the limit."""
    spec, rule = bundle_info["spec"], bundle_info["rule"]
    _, by_rule = sweep
    expect = {"flat_p2p": {"OK", "FLAT"}, "flat_run": {"OK", "FLAT"}, "noisy_hf": {"OK", "NOISY"},
              "noisy_jump": {"OK", "NOISY"}, "saturated": {"OK", "SATURATED"}}  # fmt: skip
    for name, windows in by_rule.items():
        got = [_judge(w, spec, rule) for w in windows]
        assert {s.name for s in got} == expect[name], (name, got)
    p2p = [assess_window(w, None, device_filter(w.astype(np.float64), spec), ADC.max_count, spec.fs, rule).p2p_mv for w in by_rule["flat_p2p"]]
    assert all(abs(v - rule.flat_min_p2p_mv) < 0.01 * rule.flat_min_p2p_mv for v in p2p), p2p
    hf = [assess_window(w, None, device_filter(w.astype(np.float64), spec), ADC.max_count, spec.fs, rule).hf_ratio for w in by_rule["noisy_hf"]]
    assert all(abs(v - rule.noise_max_hf_ratio) < 1e-3 for v in hf), hf
    jump = [assess_window(w, None, device_filter(w.astype(np.float64), spec), ADC.max_count, spec.fs, rule).jump_ratio for w in by_rule["noisy_jump"]]
    assert all(abs(v - rule.noise_max_jump_ratio) < 1e-2 for v in jump), jump
    limit = rule.device.saturation_max_samples(spec.window)
    sat = [assess_window(w, None, device_filter(w.astype(np.float64), spec), ADC.max_count, spec.fs, rule).saturated_samples for w in by_rule["saturated"]]
    assert sat[0] <= limit < sat[1] <= limit + 3, sat


@pytest.mark.parametrize("target", ["host", "host-asan", "cortex-m4"])
def test_statuses_equal_python_on_every_kind_and_at_each_threshold(bundle_info, gen, sweep, tmp_path, target):
    spec, rule = bundle_info["spec"], bundle_info["rule"]
    b = _build(target, gen)
    seconds = 60.0 if target == "cortex-m4" else 120.0
    seen: set[str] = set()
    for s in synthetic_streams(spec, seconds):
        ref = _reference(s, spec, rule)
        dev = b.statuses(s, spec, spec.device_hop, tmp_path)
        np.testing.assert_array_equal(dev, ref, err_msg=s.name)
        seen |= {QualityStatus(int(v)).name for v in ref}
    assert seen == {"OK", "LEAD_OFF", "SATURATED", "FLAT", "NOISY"}, seen
    stream, _ = sweep
    hop = spec.window + GAP
    ref = _reference(stream, spec, rule, hop)
    assert len(ref) == sum(len(w) for w in sweep[1].values())
    np.testing.assert_array_equal(b.statuses(stream, spec, hop, tmp_path), ref)


@pytest.mark.parametrize("target", ["host", "host-asan", "cortex-m4"])
def test_confidence_equals_python_around_the_threshold(bundle_info, gen, tmp_path, target):
    scale, t = bundle_info["out_scale"], bundle_info["threshold"]
    b = _build(target, gen)
    logits = confidence_grid()
    if target == "cortex-m4":  # QEMU: the rows near the threshold and a few hundred others
        logits = np.concatenate([near_threshold_rows(logits, scale, t, 0.02), logits[::97]])
    ref = low_confidence_int8(logits, scale, t)
    assert ref.any() and not ref.all()
    np.testing.assert_array_equal(b.low_confidence(logits, tmp_path), ref)
    # the integer test is the softmax's except within 1e-5 of the threshold
    p = softmax(logits.astype(np.float64) * scale).max(axis=1)
    clear = np.abs(p - t) > 1e-5
    np.testing.assert_array_equal(ref[clear], (p < t)[clear])
    assert (np.abs(p - t) < 1e-3).sum() >= 20, "the grid must hold rows close to the threshold"


def test_low_confidence_windows_keep_their_answer(bundle_info, gen, tmp_path):
    """device_image: LOW_CONFIDENCE windows carry logits and label; FLAT/NOISY ones carry none."""
    from export.crosscheck import reference_windows, result_dtype

    spec, bundle = bundle_info["spec"], bundle_info["bundle"]
    manifest = read_manifest(bundle)
    in_q, out_q = quantization(manifest)
    b = _build("host", gen)
    s = quality_stream(spec, 90.0, seed=4)
    write_samples(s, tmp_path / "samples.bin")
    b.run("device_image", ["samples.bin", "results.bin", str(ADC.max_count), str(spec.device_hop)], tmp_path)
    res = np.fromfile(tmp_path / "results.bin", dtype=result_dtype(3))
    ref = reference_windows(s.raw, s.lead_off, spec, bundle / "model_int8.tflite", in_q, out_q, manifest_uncertainty(manifest))
    np.testing.assert_array_equal(res["status"], [int(w.status) for w in ref])
    for w, r in zip(ref, res):
        if w.logits is None:
            assert r["label"] == -1 and not r["logits"].any()
        else:
            assert r["label"] == int(np.argmax(w.logits)) and (r["logits"][:3] == w.logits).all()
    assert {"FLAT", "NOISY"} <= {w.status.name for w in ref}


def test_bundle_without_rule_gives_todays_statuses(bundle_info, tmp_path):
    """No quality rule and threshold 0 in the manifest: ECG_QUALITY_CHECKS 0, and only OK/LEAD_OFF/SATURATED."""
    spec = bundle_info["spec"]
    plain = tmp_path / "bundle"
    shutil.copytree(bundle_info["bundle"], plain)
    manifest = json.loads((plain / "manifest.json").read_text())
    manifest.pop("uncertainty")
    (plain / "manifest.json").write_text(json.dumps(manifest, indent=2))
    gen = tmp_path / "generated"
    generate_firmware(plain, gen)
    header = (gen / "ecg_config.h").read_text()
    assert "#define ECG_QUALITY_CHECKS 0" in header and "#define ECG_CONFIDENCE_THRESHOLD 0.0f" in header
    b = Build("host", gen, tmp_path / "build")
    for s in [quality_stream(spec, 60.0), *synthetic_streams(spec, 40.0)[2:3]]:
        today = np.array([int(w.status) for w in device_windows(s.raw, s.lead_off, spec, ADC.max_count)])
        np.testing.assert_array_equal(b.statuses(s, spec, spec.device_hop, tmp_path), today)
        assert set(today.tolist()) <= {int(v) for v in WindowStatus}
    logits = confidence_grid()
    assert not b.low_confidence(logits, tmp_path).any()


def _set_define(header: str, name: str, value: str) -> str:
    new, n = re.subn(rf"^#define {name} .*$", f"#define {name} {value}", header, flags=re.M)
    assert n == 1, name
    return new


def test_device_applies_the_headers_thresholds(bundle_info, gen, tmp_path):
    """Change the confidence threshold and the flat threshold in a copy of the generated header: the
    device's decisions follow them (and differ from the bundle's)."""
    spec, rule, scale, t = bundle_info["spec"], bundle_info["rule"], bundle_info["out_scale"], bundle_info["threshold"]
    edited = tmp_path / "generated"
    shutil.copytree(gen, edited)
    header = (edited / "ecg_config.h").read_text()
    header = _set_define(header, "ECG_CONFIDENCE_THRESHOLD", "0.9f")
    header = _set_define(header, "ECG_QUALITY_FLAT_MIN_P2P_MV_F64", "0.3")
    (edited / "ecg_config.h").write_text(header)
    b = Build("host", edited, tmp_path / "build")

    logits = confidence_grid()
    got = b.low_confidence(logits, tmp_path)
    np.testing.assert_array_equal(got, low_confidence_int8(logits, scale, 0.9))
    assert (got != low_confidence_int8(logits, scale, t)).sum() > 1000

    s = sweep_stream(sweep_windows(spec, rule)["flat_p2p"] + [_ecg_counts(2, 0.25), _ecg_counts(3, 1.0)])
    hop = spec.window + GAP
    got = b.statuses(s, spec, hop, tmp_path)
    np.testing.assert_array_equal(got, _reference(s, spec, replace(rule, flat_min_p2p_mv=0.3), hop))
    assert (got != _reference(s, spec, rule, hop)).any(), "the edited threshold must change a decision"


def test_hop_too_small_for_the_quality_sums_is_refused(bundle_info, gen, tmp_path):
    b = _build("host", gen)
    s = quality_stream(bundle_info["spec"], 20.0)
    write_samples(s, tmp_path / "samples.bin")
    proc = subprocess.run([str(b.build / "stream_runner"), "-n", "samples.bin", "w.bin", str(ADC.max_count), "100"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode != 0 and "hop too small" in proc.stderr


def test_cortex_m4_image_size(gen, tmp_path):
    """device_firmware.elf with the quality rule: within 48 KiB of RAM and 96 KiB of flash."""
    require_m4_toolchain()
    from export.qemu import elf_size

    make("cortex-m4", gen, tmp_path / "m4", ["device_firmware"])
    size = elf_size(tmp_path / "m4" / "device_firmware.elf")
    print(f"device_firmware.elf: flash {size['flash_bytes']:,} B, RAM {size['ram_bytes']:,} B")
    assert 0 < size["ram_bytes"] <= 48 * 1024 and 0 < size["flash_bytes"] <= 96 * 1024
