"""The firmware's beat detector (ecg_beats.c, fed by the device core) against pipeline.signal.beats, beat for beat.

`stream_runner -b` feeds every sample and lead-off flag of a stream through `ecg_core_beats_push` (the
same place and the same restarts as the preprocessing) and writes the beats; they must equal
`detect_beats` exactly: on real MIT-BIH records, on synthetic AD8232 streams with noise, clipping and
lead-off, on full-scale 16-bit input (the int32/int64 bounds, under UBSan), around the learning span
(lead-off inside it, streams shorter than it), natively, under AddressSanitizer/UBSan and on the
Cortex-M4 under QEMU. Also: the generated ECG_BEAT_* macros, the state's size against export/ram.py,
the device applying the header's parameters, the cost per sample on the M4, cppcheck.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from conftest import require_m4_toolchain

from export.c_arrays import _beats_block, config_header
from export.crosscheck import ADC, FIRMWARE_DIR, Stream, make, synthetic_streams, write_samples
from export.firmware import generate_firmware
from export.ram import beat_state_bytes
from pipeline.data.synthetic import simulate_ecg
from pipeline.signal.ad8232 import Disturbances, to_adc
from pipeline.signal.beats import (
    BEAT_LOG,
    DEFAULT_BEATS,
    HR_UNKNOWN,
    HR_X10_MAX,
    RR_IRREGULARITY_MAX,
    RR_IRREGULARITY_UNKNOWN,
    BeatConfig,
    detect_beats,
)
from pipeline.signal.spec import DEFAULT_SPEC

pytestmark = pytest.mark.slow

SRC = FIRMWARE_DIR / "ecg_edge" / "src"
TARGETS = ["host", "host-asan", "cortex-m4"]
MITDB_RECORDS = ("100", "105", "208")  # normal, noisy, many PVCs
FULL_SCALE = 65535


# ------------------------------------------------------------------ builds


@pytest.fixture(scope="module")
def gen(demo_bundle, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("beats") / "generated"
    generate_firmware(demo_bundle[1], out)
    return out


class Runner:
    """stream_runner of one target: the beats and the stats of a stream."""

    def __init__(self, target: str, build: Path) -> None:
        self.target, self.build = target, build

    def run(self, stream: Stream, work: Path, adc_max: int = ADC.max_count) -> tuple[np.ndarray, np.ndarray]:
        write_samples(stream, work / "samples.bin")
        args = ["-n", "-b", "beats.bin", "samples.bin", "windows.bin", str(adc_max), str(DEFAULT_SPEC.device_hop), "stats.bin"]
        if self.target == "cortex-m4":
            from export.qemu import run_elf

            res = run_elf(self.build / "stream_runner.elf", args, cwd=work)
            assert res.returncode == 0, res.console[-1500:]
        else:
            proc = subprocess.run([str(self.build / "stream_runner"), *args], cwd=work, capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr[-1500:]
        beats = np.fromfile(work / "beats.bin", dtype="<u4").astype(np.int64)
        return beats, np.fromfile(work / "stats.bin", dtype="<u8")

    def check(self, stream: Stream, work: Path, adc_max: int = ADC.max_count) -> np.ndarray:
        """The device's beats of `stream`, asserted identical to detect_beats; returns them."""
        beats, stats = self.run(stream, work, adc_max)
        ref = detect_beats(stream.raw, stream.lead_off)
        np.testing.assert_array_equal(beats, ref, err_msg=f"{stream.name} ({self.target})")
        assert stats[7] == ref.size and stats[0] == stream.raw.size
        return ref


_RUNNERS: dict[tuple[str, Path], Runner] = {}


def _runner(target: str, gen: Path) -> Runner:
    if target == "cortex-m4":
        require_m4_toolchain()
    key = (target, gen)
    if key not in _RUNNERS:
        build = gen.parent / f"build-{target}"
        make(target, gen, build, ["stream_runner"])
        _RUNNERS[key] = Runner(target, build)
    return _RUNNERS[key]


# ------------------------------------------------------------------ streams


def _ecg_counts(seconds: float, seed: int, dist: Disturbances | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = int(seconds * DEFAULT_SPEC.fs)
    ecg = simulate_ecg("NORMAL", seconds, DEFAULT_SPEC.fs, rng)[:n]
    return to_adc(ecg, DEFAULT_SPEC.fs, rng, ADC, dist or Disturbances.none())


def full_scale_streams(seconds: float, seed: int = 3) -> list[Stream]:
    """16-bit counts at the extremes the int32 filters and the int64 integral must take: ECG over the
    whole range, white noise rail to rail, a square wave between the rails; lead-off bursts in each."""
    rng = np.random.default_rng(seed)
    n = int(seconds * DEFAULT_SPEC.fs)
    ecg = simulate_ecg("ARRHYTHMIA", seconds, DEFAULT_SPEC.fs, rng)[:n]
    scaled = np.clip(32768 + ecg * 12000 + 3000 * rng.standard_normal(n), 0, FULL_SCALE)
    noise = rng.integers(0, FULL_SCALE + 1, n)
    square = np.where((np.arange(n) // 3) % 2 == 0, 0, FULL_SCALE)
    out = []
    for name, x in (("ecg16", scaled), ("noise16", noise), ("square16", square)):
        off = np.zeros(n, dtype=bool)
        for start in rng.integers(0, n - 300, 4):
            off[start : start + int(rng.integers(1, 300))] = True
        out.append(Stream(f"full_scale_{name}", x.astype(np.uint16), off))
    return out


def learning_edge_streams() -> list[Stream]:
    """One clean ECG stream with a lead-off sample or stretch at the edges of the learning span and of
    its replay, and streams shorter than a run needs for its first decision (no beats)."""
    cfg = DEFAULT_BEATS
    span = cfg.learn + cfg.reach  # samples of a run up to and including its first decision
    raw, _ = _ecg_counts(30.0, seed=11)
    zeros = np.zeros(raw.size, dtype=bool)
    out = []
    for at in (0, 1, cfg.reach, cfg.learn // 2, cfg.learn - 1, cfg.learn, span - 2, span - 1, span, span + 1):
        off = zeros.copy()
        off[at] = True
        out.append(Stream(f"lead_off_at_{at}", raw, off))
    off = zeros.copy()
    for k in range(4):  # four runs that end inside their learning span or its replay, then a long one
        start = 200 + k * (span - 40 + 13 * k)
        off[start : start + 7] = True
    out.append(Stream("lead_off_in_four_learning_spans", raw, off))
    off = zeros.copy()
    off[cfg.learn - 100 : cfg.learn + 400] = True  # lead-off from the middle of learning into the next run's
    out.append(Stream("lead_off_across_learning", raw, off))
    for n in (0, 1, cfg.reach, cfg.learn, span - 1):
        out.append(Stream(f"short_{n}", raw[:n], zeros[:n]))
    off = zeros.copy()
    off[span - 1 :: span] = True  # runs of exactly span - 1 samples: none ever decides
    out.append(Stream("runs_one_short", raw, off))
    return out


# ------------------------------------------------------------------ the generated parameters


def test_header_carries_every_beat_parameter(gen):
    header = (gen / "ecg_config.h").read_text()
    defines = dict(re.findall(r"^#define (ECG_BEAT_\w+) (\S+)$", header, re.M))
    cfg = DEFAULT_BEATS
    expected = {f"ECG_BEAT_{f.name.upper()}": str(getattr(cfg, f.name)) for f in fields(BeatConfig)}
    expected |= {"ECG_BEAT_DELAY": str(cfg.delay), "ECG_BEAT_HISTORY": str(cfg.history), "ECG_BEAT_LEARN_CANDIDATES": str(cfg.learn_candidates),
                 "ECG_BEAT_BUFFER": "8", "ECG_BEAT_TH_SHIFT": "4", "ECG_BEAT_LOG": str(BEAT_LOG),
                 "ECG_BEAT_HR_UNKNOWN": f"{HR_UNKNOWN}u", "ECG_BEAT_HR_X10_MAX": f"{HR_X10_MAX}u",
                 "ECG_BEAT_RR_IRREGULARITY_UNKNOWN": f"{RR_IRREGULARITY_UNKNOWN}u", "ECG_BEAT_RR_IRREGULARITY_MAX": f"{RR_IRREGULARITY_MAX}u"}  # fmt: skip
    assert defines == expected
    # the C takes its parameters from the header only
    for name in ("ecg_beats.c", "ecg_beats.h"):
        text = (SRC / name).read_text()
        code = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        assert not re.search(r"\b(250|500|23|25|50|90)\b", code), f"{name} spells a BeatConfig value instead of its macro"


def _probe_config(tmp_path: Path, cfg: BeatConfig) -> Path:
    """A directory with an ecg_config.h for `cfg` (and an empty native model header) that ecg_beats.h takes."""
    d = tmp_path / f"cfg-{cfg.reach}-{cfg.mwi_len}-{cfg.learn}"
    d.mkdir()
    (d / "ecg_config.h").write_text(config_header(DEFAULT_SPEC, ("A", "B"), (0.1, 0), (0.1, 0), "0" * 64, beats=cfg))
    (d / "ecg_native_model.h").write_text("/* none */\n")
    (d / "probe.c").write_text('#include "ecg_beats.h"\nconst unsigned long ecg_beats_probe_size = sizeof(ecg_beats);\n')
    return d


CONFIGS = [DEFAULT_BEATS, BeatConfig(lp_len=4, hp_len=19, mwi_len=30, reach=40, learn=700, th_num=5, sb_num=3, sb_den=2)]


@pytest.mark.parametrize("compiler", ["cc", "arm-none-eabi-gcc"])
def test_state_size_is_the_ram_budgets(tmp_path, compiler):
    """sizeof(ecg_beats) equals export.ram.beat_state_bytes (the figure in the generated RAM budget)."""
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} not installed")
    arch = ["-mcpu=cortex-m4", "-mthumb"] if compiler.startswith("arm") else []
    for cfg in CONFIGS:
        d = _probe_config(tmp_path, cfg)
        proc = subprocess.run([compiler, *arch, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O1", "-S", f"-I{SRC}", f"-I{d}",
                               str(d / "probe.c"), "-o", "-"], capture_output=True, text=True)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        size = re.search(r"ecg_beats_probe_size:\s*\n\s*\.(?:word|long|quad)\s+(\d+)", proc.stdout)
        assert size, proc.stdout[-800:]
        assert int(size.group(1)) == beat_state_bytes(cfg), cfg
    assert beat_state_bytes() < 2400


def test_device_applies_the_headers_parameters(gen, tmp_path):
    """A header with other BeatConfig values: the device's beats are detect_beats' with those values."""
    cfg = BeatConfig(lp_len=4, hp_len=19, mwi_len=20, reach=40, refractory=60, t_wave=80, learn=400, th_num=5, sb_num=3, sb_den=2)
    other = tmp_path / "generated"
    shutil.copytree(gen, other)
    header = (other / "ecg_config.h").read_text()
    block = re.search(r"/\* The beat detector .*?#define ECG_BEAT_LEARN_CANDIDATES \d+\n", header, re.S)
    assert block
    (other / "ecg_config.h").write_text(header.replace(block.group(0), _beats_block(cfg)))
    build = tmp_path / "build"
    make("host", other, build, ["stream_runner"])
    runner = Runner("host", build)
    raw, off = _ecg_counts(90.0, seed=5, dist=Disturbances(wander_prob=1.0, mains_prob=1.0, emg_prob=1.0, lead_off_prob=1.0))
    stream = Stream("other_parameters", raw, off)
    beats, _ = runner.run(stream, tmp_path)
    np.testing.assert_array_equal(beats, detect_beats(raw, off, cfg))
    assert not np.array_equal(beats, detect_beats(raw, off)), "the other parameters should change the beats"


# ------------------------------------------------------------------ identical beats


@pytest.mark.parametrize("target", TARGETS)
def test_beats_identical_on_synthetic_streams(gen, tmp_path, target):
    """AD8232 streams with drift, mains, EMG, motion, lead-off, clipping, every quality status; 16-bit extremes."""
    r = _runner(target, gen)
    seconds = 40.0 if target == "cortex-m4" else 150.0
    total = 0
    for s in synthetic_streams(DEFAULT_SPEC, seconds):
        total += r.check(s, tmp_path).size
    for s in full_scale_streams(seconds / 2):
        r.check(s, tmp_path, adc_max=FULL_SCALE)
    assert total > seconds  # about a beat a second in each


@pytest.mark.parametrize("target", TARGETS)
def test_lead_off_in_learning_and_short_streams(gen, tmp_path, target):
    """Lead-off inside the learning span and its replay restarts the detector exactly as the reference
    does; a run shorter than the learning span and the decision delay never makes a beat."""
    r = _runner(target, gen)
    found = {s.name: r.check(s, tmp_path) for s in learning_edge_streams()}
    for name, beats in found.items():
        if name.startswith("short_") or name == "runs_one_short":
            assert beats.size == 0, name
        else:
            assert beats.size > 10, name
    at = DEFAULT_BEATS.learn // 2
    assert found[f"lead_off_at_{at}"][0] > at  # the run after the lead-off learns again from nothing


@pytest.mark.realdata
@pytest.mark.parametrize("target", TARGETS)
def test_beats_identical_on_mitdb(shared_data, gen, tmp_path, target):
    """The first minutes of MIT-BIH records as the device sees them (pipeline.evaluation.beat_grading)."""
    from pipeline.evaluation.beat_grading import read_mitdb_stream

    r = _runner(target, gen)
    records, seconds = (MITDB_RECORDS[:1], 120) if target == "cortex-m4" else (MITDB_RECORDS, 300)
    for name in records:
        d = read_mitdb_stream(shared_data / "mitdb" / name)
        x = d.counts[: seconds * DEFAULT_SPEC.fs]
        assert x.min() >= 0 and x.max() <= ADC.max_count
        beats = r.check(Stream(name, x.astype(np.uint16), np.zeros(x.size, dtype=bool)), tmp_path)
        ref = d.reference[d.reference < x.size]
        assert abs(beats.size - ref.size) < 0.1 * ref.size, (name, beats.size, ref.size)


# ------------------------------------------------------------------ cost, the streaming statement, static analysis


def test_cost_on_the_cortex_m4(gen, tmp_path):
    """Instructions per sample of the beat detector (ecg_core_beats_push) against the preprocessing's
    (ecg_pre_push), both as stream_runner counts them (each with the counter's own cost once)."""
    r = _runner("cortex-m4", gen)
    beats = pre = samples = 0
    worst = 0
    for s in synthetic_streams(DEFAULT_SPEC, 40.0)[:2]:
        _, st = r.run(s, tmp_path)
        samples, pre, beats, worst = samples + int(st[0]), pre + int(st[3]), beats + int(st[6]), max(worst, int(st[10]))
        assert int(st[9]) == beat_state_bytes()
    per_beats, per_pre = beats / samples, pre / samples
    print(f"beat detector {per_beats:.0f} instructions per sample (at most {worst}), preprocessing {per_pre:.0f}: "
          f"{per_beats / per_pre:.1%}; state {beat_state_bytes()} B")  # fmt: skip
    assert 0 < per_beats < 0.10 * per_pre


def test_streaming_statement_matches_the_reference():
    """tests/beat_stream.py (the C's blueprint, sample by sample) gives detect_beats' beats."""
    from beat_stream import StreamingBeats

    for s in [*learning_edge_streams()[::4], synthetic_streams(DEFAULT_SPEC, 40.0)[0]]:
        sb = StreamingBeats(DEFAULT_BEATS)
        for x, off in zip(s.raw.tolist(), s.lead_off.tolist()):
            sb.push(int(x), bool(off))
        np.testing.assert_array_equal(np.asarray(sb.beats, dtype=np.int64), detect_beats(s.raw, s.lead_off), err_msg=s.name)


def test_cppcheck_beats(gen):
    if shutil.which("cppcheck") is None:
        pytest.skip("cppcheck not installed")
    common = ["cppcheck", "--std=c99", "--error-exitcode=1", "--inline-suppr", "--suppress=missingIncludeSystem", "-q",
              f"-I{SRC}", f"-I{SRC / 'nn'}", f"-I{gen}", f"-I{FIRMWARE_DIR / 'harness'}"]  # fmt: skip
    for enable, paths in (("warning,style,performance,portability", [SRC / "ecg_beats.c"]),
                          ("warning,performance,portability", [SRC / "ecg_core.c", FIRMWARE_DIR / "harness" / "stream_runner.c"])):  # fmt: skip
        proc = subprocess.run([*common, f"--enable={enable}", *map(str, paths)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_beats_compile_for_8_bit_avr(gen, tmp_path):
    """The sketch's Uno build compiles every source: ecg_beats.c must build warning-free with a 16-bit int."""
    if shutil.which("avr-gcc") is None:
        pytest.skip("avr-gcc not installed")
    cmd = ["avr-gcc", "-mmcu=atmega328p", "-Os", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wshadow", "-Wconversion",
           "-c", f"-I{SRC}", f"-I{SRC / 'nn'}", f"-I{gen}", str(SRC / "ecg_beats.c"), "-o", str(tmp_path / "beats.o")]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr

