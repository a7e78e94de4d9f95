"""host/heart_rate.py: the streaming R-peak detector and heart rate, on synthetic and real ECGs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from host.heart_rate import HeartRate, detect_r_peaks
from pipeline.signal import ad8232
from pipeline.data import synthetic

NOISY = replace(ad8232.Disturbances(), mains_prob=1.0, emg_prob=1.0, wander_prob=1.0, motion_prob=0.0, lead_off_prob=0.0)


def _synthetic(bpm: float, fs: float, seconds: float, seed: int, inverted: bool = False, hrv: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """AD8232 ADC counts of a sinus rhythm at `bpm` (exactly, without `hrv`) with mains, EMG and baseline
    wander; and its R peaks."""
    rng = np.random.default_rng(seed)
    patient = replace(synthetic.sample_patient("NORMAL", rng), hr_bpm=float(bpm))
    if not hrv:
        patient = replace(patient, hrv_cv=0.0)
    ecg = synthetic.simulate_ecg_annotated("NORMAL", seconds, fs, rng, patient)
    counts, lead_off = ad8232.to_adc(-ecg.signal if inverted else ecg.signal, fs, rng, dist=NOISY)
    assert not lead_off.any()
    return counts, ecg.r_samples


def _match(ref: np.ndarray, det: np.ndarray, tol: int) -> int:
    """True positives: reference beats with an unused detection within `tol` samples."""
    used = np.zeros(det.size, bool)
    tp = 0
    for s in ref:
        near = np.flatnonzero((np.abs(det - s) <= tol) & ~used)
        if near.size:
            used[near[np.argmin(np.abs(det[near] - s))]] = True
            tp += 1
    return tp


def _feed(hr: HeartRate, x: np.ndarray, off: np.ndarray | None = None, block: int = 25) -> list[int]:
    off = np.zeros(x.size, bool) if off is None else off
    out: list[int] = []
    for i in range(0, x.size, block):
        out += hr.feed(x[i : i + block], off[i : i + block])
    return out


@pytest.mark.parametrize("bpm", [40, 72, 120, 180])
@pytest.mark.parametrize("inverted", [False, True], ids=["upright", "inverted"])
@pytest.mark.parametrize("fs", [250.0, 125.0, 500.0])
def test_heart_rate_of_synthetic_signals(bpm: int, inverted: bool, fs: float) -> None:
    counts, r = _synthetic(bpm, fs, 40.0, seed=bpm, inverted=inverted, hrv=False)
    hr = HeartRate(fs)
    det = np.asarray(_feed(hr, counts, block=int(fs // 10)))
    # every beat found (the last ~0.3 s are not decided yet), none invented
    inside = r[(r > 0.2 * fs) & (r < counts.size - 0.3 * fs)]
    assert _match(inside, det, int(0.05 * fs)) == inside.size
    assert det.size <= inside.size + 1
    assert hr.bpm is not None and abs(hr.bpm - bpm) <= 1.0, hr.bpm


@pytest.mark.parametrize("bpm", [55, 100])
def test_heart_rate_follows_a_variable_rhythm(bpm: int) -> None:
    """With heart rate variability: HR equals the true beats' median over the detector's window."""
    fs = 250.0
    counts, r = _synthetic(bpm, fs, 40.0, seed=bpm, inverted=bpm > 80)
    hr = HeartRate(fs)
    _feed(hr, counts)
    recent = r[(r >= counts.size - 10 * fs) & (r < counts.size - 0.3 * fs)]  # the last ~0.3 s are not decided yet
    truth = 60 * fs / np.median(np.diff(recent))
    assert abs(truth - bpm) < 0.15 * bpm  # the signal really has about that rate
    assert hr.bpm is not None and abs(hr.bpm - truth) <= 1.0, (hr.bpm, truth)


def test_blocks_of_any_size_give_the_same_beats() -> None:
    counts, _ = _synthetic(72, 250.0, 30.0, seed=3)
    whole = detect_r_peaks(counts, 250.0, block=counts.size)
    rng = np.random.default_rng(0)
    hr, got, i = HeartRate(250.0), [], 0
    while i < counts.size:
        n = int(rng.integers(1, 80))
        got += hr.feed(counts[i : i + n])
        i += n
    assert whole.size > 30
    np.testing.assert_array_equal(np.asarray(got), whole)
    np.testing.assert_array_equal(detect_r_peaks(counts, 250.0, block=1), whole)


def test_no_rate_until_three_beats_and_none_during_lead_off() -> None:
    fs = 250.0
    counts, r = _synthetic(90, fs, 40.0, seed=5)
    off = np.zeros(counts.size, bool)
    off[int(20 * fs) : int(24 * fs)] = True
    counts = counts.copy()
    counts[off] = ad8232.AD8232Config().max_count  # the AD8232 output at the rail, as on the board
    hr = HeartRate(fs)
    seen: dict[float, float | None] = {}
    beats: list[int] = []
    for i in range(0, counts.size, 25):
        beats += hr.feed(counts[i : i + 25], off[i : i + 25])
        seen[(i + 25) / fs] = hr.bpm
    assert seen[1.0] is None  # still learning
    assert seen[19.9] is not None and abs(seen[19.9] - 90) < 8
    assert all(v is None for t, v in seen.items() if 20.1 <= t <= 24.0)
    assert seen[24.5] is None  # restarted: no beats from before the lead-off
    assert seen[40.0] is not None and abs(seen[40.0] - 90) < 8
    assert not any(20 * fs <= b < 24 * fs for b in beats)
    assert hr.restarts == 1
    # after the electrodes are back every beat is found again
    after = r[(r > 24.5 * fs) & (r < counts.size - 0.3 * fs)]
    assert _match(after, np.asarray(beats), int(0.05 * fs)) >= after.size - 1


def test_lost_samples_restart_the_detector_unless_a_few() -> None:
    counts, _ = _synthetic(72, 250.0, 20.0, seed=7)
    hr = HeartRate(250.0)
    hr.feed(counts[:2500], first_sample=0)
    assert hr.bpm is not None
    hr.feed(counts[2501:2525], first_sample=2501)  # one sample lost (a garbled text line): bridged
    assert hr.bpm is not None and hr.restarts == 0
    hr.feed(counts[2600:2625], first_sample=2600)  # 75 samples never arrived
    assert hr.bpm is None and hr.restarts == 1


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="50 Hz"):
        HeartRate(50.0)
    with pytest.raises(ValueError, match="lead-off flags"):
        HeartRate(250.0).feed(np.zeros(10), np.zeros(9, bool))


BEAT_SYMBOLS = set("NLRBAaJSVrFejnE/fQ?")


@pytest.mark.realdata
@pytest.mark.parametrize("record", ["100", "101", "103", "119"])
def test_mitbih_detections_match_annotations(shared_data, record: str) -> None:
    import wfdb

    path = str(shared_data / "mitdb" / record)
    rec = wfdb.rdrecord(path, sampto=5 * 60 * 360, channels=[0], physical=False)
    fs = float(rec.fs)
    ann = wfdb.rdann(path, "atr", sampto=5 * 60 * 360)
    ref = np.asarray([s for s, sym in zip(ann.sample, ann.symbol) if sym in BEAT_SYMBOLS])
    raw = rec.d_signal[:, 0]  # raw ADC counts (11-bit), at the record's 360 Hz
    for inverted in (False, True):
        det = detect_r_peaks(2047 - raw if inverted else raw, fs, block=36)
        tp = _match(ref, det, int(round(0.150 * fs)))
        se, ppv = tp / ref.size, tp / det.size
        print(f"MIT-BIH {record}{' inverted' if inverted else ''}: {ref.size} beats, {det.size} detections, sensitivity {se:.4f}, PPV {ppv:.4f}")
        assert se >= 0.97 and ppv >= 0.97
