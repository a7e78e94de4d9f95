"""The device's beat detector (pipeline.signal.beats) and its MIT-BIH grading (ecg-pipeline beats)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import wfdb

from beat_stream import StreamingBeats
from pipeline.cli import main
from pipeline.data.synthetic import sample_patient, simulate_ecg_annotated
from pipeline.evaluation.beat_grading import BeatGradingError, DeviceStream, grade_mitdb, grade_stream, read_mitdb_stream
from pipeline.signal.ad8232 import Disturbances, to_adc
from pipeline.signal.beats import (
    DEFAULT_BEATS,
    HR_UNKNOWN,
    HR_X10_MAX,
    RR_IRREGULARITY_UNKNOWN,
    BeatConfig,
    BeatConfigError,
    BEAT_LOG,
    candidates,
    detect_beats,
    detect_beats_timed,
    max_beats_in,
    window_rhythm,
    window_rhythms,
)
from pipeline.signal.device_rule import WindowStatus

FS = DEFAULT_BEATS.fs
NOISY = Disturbances(motion_prob=1.0, emg_prob=1.0, lead_off_prob=0.0)


def _synthetic(hr: float, seconds: float, seed: int, dist: Disturbances = NOISY) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    patient = replace(sample_patient("NORMAL", rng), hr_bpm=float(hr))
    ecg = simulate_ecg_annotated("NORMAL", seconds, FS, rng, patient)
    counts, off = to_adc(ecg.signal, FS, rng, dist=dist)
    return counts.astype(np.int64), off, ecg.r_samples


def _streamed(counts: np.ndarray, off: np.ndarray | None = None) -> np.ndarray:
    """The statement's beats, after checking that it made each final where detect_beats_timed says."""
    s = StreamingBeats(DEFAULT_BEATS)
    flags = np.zeros(counts.size, dtype=bool) if off is None else off
    for x, o in zip(counts, flags):
        s.push(int(x), bool(o))
    beats, decided = detect_beats_timed(counts, flags)
    if np.array_equal(beats, s.beats):
        np.testing.assert_array_equal(np.asarray(s.decided, dtype=np.int64), decided)
    return np.asarray(s.beats, dtype=np.int64)


def test_sample_by_sample_statement_matches_the_reference():
    """tests/beat_stream.py (the firmware's shape) and detect_beats give the same beats, lead-off included."""
    counts, off, _ = _synthetic(75, 40.0, seed=3, dist=replace(NOISY, lead_off_prob=1.0, lead_off_rate_per_min=4.0))
    assert off.any() and not off.all()
    ref = detect_beats(counts, off)
    assert ref.size > 20
    np.testing.assert_array_equal(_streamed(counts, off), ref)
    # lead-off inside the learning span, and a run too short to learn: no beats from it
    off2 = np.zeros(counts.size, dtype=bool)
    off2[300] = True
    off2[900:905] = True
    off2[905 + DEFAULT_BEATS.learn :] = False
    np.testing.assert_array_equal(_streamed(counts, off2), detect_beats(counts, off2))
    assert detect_beats(counts[: DEFAULT_BEATS.learn + DEFAULT_BEATS.reach - 1]).size == 0


@pytest.mark.realdata
def test_sample_by_sample_matches_on_mitdb(shared_data: Path):
    for name, seconds in (("203", 120), ("228", 90)):
        s = read_mitdb_stream(shared_data / "mitdb" / name)
        x = s.counts[: seconds * FS]
        np.testing.assert_array_equal(_streamed(x), detect_beats(x))


@pytest.mark.parametrize("hr", [40, 60, 90, 120, 150, 180])
def test_heart_rate_on_the_signal_model_within_2_bpm(hr: int):
    """AD8232 board model with motion artefacts and EMG on every record: HR from the detected beats
    within 2 bpm of the true beats' (the generator varies RR a little around the nominal rate), both by the
    device's own rule (`window_rhythm` over the whole record)."""
    for seed in range(2):
        counts, off, true = _synthetic(hr, 60.0, seed=1000 * seed + hr)
        beats = detect_beats(counts, off)
        (got, _), (want, _) = window_rhythm(beats, 0, counts.size), window_rhythm(true, 0, counts.size)  # bpm x 10
        assert got != HR_UNKNOWN and abs(got - want) <= 20, (hr, seed, got, want)
        matched = sum(np.min(np.abs(beats - t)) <= 0.15 * FS for t in true[(true > DEFAULT_BEATS.learn) & (true < counts.size - FS)])
        assert matched >= 0.97 * np.sum((true > DEFAULT_BEATS.learn) & (true < counts.size - FS)), (hr, seed)


def test_candidates_rule_by_hand():
    m = np.array([0, 1, 5, 5, 2, 0, 0, 3, 9, 1, 0, 0, 0, 0], dtype=np.int64)
    # 5 at index 3 (the last of a plateau) and 9 at 8 are the largest within 2 on either side
    assert candidates(m, 2).tolist() == [3, 8]
    assert candidates(m, 5).tolist() == [8]
    assert candidates(np.zeros(20, dtype=np.int64), 2).tolist() == []


def test_window_rhythm_by_hand():
    """hr_x10 and rr_irregularity (what a RESULT carries), computed by hand."""
    unknown = (HR_UNKNOWN, RR_IRREGULARITY_UNKNOWN)
    # steady 200-sample RR at 250 Hz: 75.0 bpm, no irregularity
    assert window_rhythm([100, 300, 500, 700], 0, 2500, 250) == (750, 0)
    # RRs 200, 250, 200, 300: lower median 200 -> 750; 1000 * 4 * (50 + 50 + 100) // (3 * 950) = 800000 // 2850 = 280
    assert window_rhythm([0, 200, 450, 650, 950], 0, 2500, 250) == (750, 280)
    # RRs 213, 214: lower median 213; (150000 + 106) // 213 = 704 (704.2 bpm x 10); 1000 * 2 * 1 // (1 * 427) = 4
    assert window_rhythm([10, 223, 437], 0, 2500, 250) == (704, 4)
    # RR 199: 753.8 rounds up to 754 ((150000 + 99) // 199)
    assert window_rhythm([0, 199, 398], 0, 2500, 250) == (754, 0)
    # the window is [first_sample, first_sample + window): beats outside it do not count
    beats = [4900, 5000, 5200, 5400, 7499, 7500]
    assert window_rhythm(beats, 5000, 2500, 250) == window_rhythm([0, 200, 400, 2499], 0, 2500, 250)
    # RRs 200, 200, 2099: lower median 200 (index (3 - 1) // 2 = 1 of 200, 200, 2099); 1000 * 3 * 1899 // (2 * 2499) = 1139
    assert window_rhythm([0, 200, 400, 2499], 0, 2500, 250) == (750, 1139)
    # fewer than two intervals, a LEAD_OFF window: unknown
    assert window_rhythm([], 0, 2500, 250) == window_rhythm([10, 210], 0, 2500, 250) == unknown
    assert window_rhythm([4900, 5100, 5300], 5000, 2500, 250) == unknown
    assert window_rhythm([100, 300, 500], 0, 2500, 250, status=WindowStatus.LEAD_OFF) == unknown
    assert window_rhythm([100, 300, 500], 0, 2500, 250, status=WindowStatus.SATURATED) == (750, 0)
    # clamps: a 1-sample RR at 250 Hz would be 150000; a 1500-sample RR at 1 Hz rounds to 0
    assert window_rhythm([0, 1, 2], 0, 10, 250) == (HR_X10_MAX, 0)
    assert window_rhythm([0, 1500, 3000], 0, 5000, 1) == (1, 0)
    # the largest irregularity: 1000 * 3 * (999 + 999) // (2 * 1002) = 2991 (always below 4000)
    assert window_rhythm([0, 1, 1001, 1002], 0, 5000, 250) == (HR_X10_MAX, 2991)


def test_window_rhythms_take_the_beats_decided_by_the_window_end():
    """A RESULT's figures use the beats decided when the window's last sample was pushed, the last BEAT_LOG of them."""
    ok, off = [WindowStatus.OK], [WindowStatus.LEAD_OFF]
    beats = np.array([100, 300, 500, 700])
    # the last beat is decided one sample after the window [0, 800) ends: 3 beats count
    assert window_rhythms(beats, beats + 100, [0], 800, ok) == [window_rhythm([100, 300, 500], 0, 800)]
    # decided at the window's last sample: it counts
    assert window_rhythms(beats, np.array([200, 400, 600, 799]), [0], 800, ok) == [window_rhythm(beats, 0, 800)]
    assert window_rhythms(beats, beats + 60, [0], 800, off) == [(HR_UNKNOWN, RR_IRREGULARITY_UNKNOWN)]
    # the log: only the last BEAT_LOG decided beats are known (a window longer than any device's)
    many = np.arange(BEAT_LOG + 10) * 100
    assert window_rhythms(many, many + 60, [0], 10**6, ok) == [window_rhythm(many[-BEAT_LOG:], 0, 10**6)]
    # the log always holds every beat a window can have
    assert max_beats_in(2500) <= BEAT_LOG
    cfg = DEFAULT_BEATS
    # candidates refractory + 1 apart, the first beat mwi_len later in its candidate's span than the others
    n, step = max_beats_in(2500), cfg.refractory + 1
    densest = [0] + [step - cfg.mwi_len + j * step for j in range(n - 1)]
    assert densest[-1] < 2500 <= densest[-1] + step  # the bound is tight
    with pytest.raises(ValueError, match="increase strictly"):
        window_rhythm([0, 200, 200, 400], 0, 2500, 250)
    with pytest.raises(ValueError, match="must be positive"):
        window_rhythm([0, 200, 400], 0, 0, 250)


def test_window_rhythm_of_detected_beats():
    """On the board model's signal the window figures give the true rate; AF-like RR jitter raises irregularity."""
    counts, off, true = _synthetic(75, 40.0, seed=11, dist=Disturbances(motion_prob=0, emg_prob=0, lead_off_prob=0))
    beats = detect_beats(counts, off)
    for first in range(0, counts.size - 2500, 625):
        hr, irregularity = window_rhythm(beats, first, 2500, FS)
        want, _ = window_rhythm(true, first, 2500, FS)
        if first >= DEFAULT_BEATS.learn:
            assert abs(hr - want) <= 20 and irregularity < 60, (first, hr, want, irregularity)
    rng = np.random.default_rng(0)
    jittery = np.cumsum(rng.integers(120, 280, 20))
    assert window_rhythm(jittery, 0, 10**6, FS)[1] > 150


def test_config_and_input_errors():
    with pytest.raises(BeatConfigError, match="hp_len 22 must be odd"):
        BeatConfig(hp_len=22)
    with pytest.raises(BeatConfigError, match="th_num"):
        BeatConfig(th_num=16)
    with pytest.raises(BeatConfigError, match="learn"):
        BeatConfig(learn=40)
    with pytest.raises(ValueError, match="one channel"):
        detect_beats(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="lead-off flags"):
        detect_beats(np.zeros(10), np.zeros(9, dtype=bool))


def test_grading_counts_by_hand():
    """A stream whose detections are known: matches within 150 ms count once; VF spans are left out."""
    counts, _, true = _synthetic(60, 30.0, seed=5, dist=Disturbances(motion_prob=0, emg_prob=0, lead_off_prob=0, mains_prob=0, wander_prob=0))
    det = detect_beats(counts)
    ok = DeviceStream("hand", counts, det.copy(), [])
    row = grade_stream(ok)
    assert (row["tp"], row["fn"], row["fp"]) == (det.size, 0, 0)
    shifted = DeviceStream("late", counts, det + int(0.2 * FS), [])  # every reference 200 ms later: nothing matches
    row = grade_stream(shifted)
    assert (row["tp"], row["fn"], row["fp"]) == (0, det.size, det.size)
    dropped = DeviceStream("vf", counts, det[det < 15 * FS], [(15 * FS, counts.size - 1)])
    row = grade_stream(dropped)
    assert (row["fn"], row["fp"]) == (0, 0) and row["excluded_seconds"] > 10


def test_vf_marks_and_bad_records(tmp_path: Path):
    counts, _, true = _synthetic(70, 20.0, seed=7, dist=Disturbances(motion_prob=0, emg_prob=0, lead_off_prob=0))
    mv = (counts - 2048) / 1365.0
    wfdb.wrsamp("900", fs=FS, units=["mV"], sig_name=["MLII"], p_signal=mv[:, None], write_dir=str(tmp_path))
    marks = np.array([*true[true < 10 * FS], 10 * FS, 15 * FS])
    symbols = ["N"] * int(np.sum(true < 10 * FS)) + ["[", "]"]
    order = np.argsort(marks, kind="stable")
    wfdb.wrann("900", "atr", marks[order], [symbols[i] for i in order], write_dir=str(tmp_path))
    s = read_mitdb_stream(tmp_path / "900")
    assert s.excluded == [(10 * FS, 15 * FS)]
    assert s.reference.size == int(np.sum(true < 10 * FS))  # '[' and ']' are not beats
    (tmp_path / "901.hea").write_text((tmp_path / "900.hea").read_text().replace("900", "901"))
    (tmp_path / "901.dat").write_bytes((tmp_path / "900.dat").read_bytes())
    with pytest.raises(BeatGradingError, match="901.atr is missing"):
        read_mitdb_stream(tmp_path / "901")
    with pytest.raises(BeatGradingError, match="record not found"):
        grade_mitdb(tmp_path, ["902"], progress=False)


@pytest.mark.realdata
def test_beats_command_on_mitdb_records(shared_data: Path, tmp_path: Path):
    out = tmp_path / "R.json"
    assert main(["beats", "--raw-dir", str(shared_data), "--records", "100,105,203", "--out", str(out), "--jobs", "1", "--no-progress"]) == 0
    r = json.loads(out.read_text())
    assert r["records"] == 3 and len(r["per_record"]) == 3
    assert {"records", "sensitivity", "positive_predictivity", "per_record", "worst"} <= set(r)
    by = {row["record"]: row for row in r["per_record"]}
    assert by["100"]["sensitivity"] >= 0.999 and by["100"]["positive_predictivity"] >= 0.999
    assert r["sensitivity"] >= 0.99 and r["positive_predictivity"] >= 0.99
    assert r["tp"] + r["fn"] == r["beats"] == sum(row["beats"] for row in r["per_record"])
    assert out.with_suffix(".png").stat().st_size > 10_000
