"""Tests of the AD8232 front-end / ADC signal model."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from pipeline.signal import ad8232
from pipeline.signal.ad8232 import AD8232Config, Disturbances

FS = 250.0


def _pulse_ecg(n: int, fs: float = FS, amp_mv: float = 1.0) -> np.ndarray:
    """Crude ECG stand-in: narrow positive pulses at 72 bpm."""
    t = np.arange(n) / fs
    return amp_mv * np.sin(np.pi * 1.2 * t) ** 40


def _power_fraction(x: np.ndarray, fs: float, lo: float, hi: float) -> float:
    """Fraction of the (Hann-windowed) power between lo and hi Hz."""
    spec = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(x.size))) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / fs)
    return float(spec[(freqs >= lo) & (freqs <= hi)].sum() / spec.sum())


def test_config_scale_factors() -> None:
    cfg = AD8232Config()
    assert cfg.max_count == 4095
    assert cfg.offset_counts == pytest.approx(2048.0)
    assert cfg.counts_per_mv == pytest.approx(1100 * 1e-3 * 4096 / 3.3)


def test_to_adc_range_dtype_and_flags() -> None:
    x = _pulse_ecg(15000, amp_mv=3.0)  # large enough to clip
    for seed in range(5):
        counts, lead_off = ad8232.to_adc(x, FS, np.random.default_rng(seed))
        assert counts.dtype == np.uint16 and lead_off.dtype == bool
        assert counts.shape == lead_off.shape == x.shape
        assert counts.min() >= 0 and counts.max() <= 4095
    assert counts.max() == 4095  # a 3 mV R wave rails at gain 1100


def test_clipping_at_both_rails() -> None:
    cfg = AD8232Config(analog_filter=False)
    x = np.array([-5.0, -1.0, 0.0, 1.0, 5.0])
    counts, _ = ad8232.to_adc(x, FS, np.random.default_rng(0), cfg, Disturbances.none())
    assert counts[0] == 0 and counts[-1] == 4095
    assert counts[2] == 2048
    assert 0 < counts[1] < 2048 < counts[3] < 4095


def test_lead_off_rails_high_and_is_flagged() -> None:
    dist = replace(Disturbances.none(), lead_off_prob=1.0, lead_off_rate_per_min=3.0)
    counts, lead_off = ad8232.to_adc(_pulse_ecg(15000), FS, np.random.default_rng(1), dist=dist)
    assert lead_off.any() and not lead_off.all()
    assert np.all(counts[lead_off] == 4095)
    assert (counts[~lead_off] == 4095).mean() < 0.05


def test_no_lead_off_by_default_without_probability() -> None:
    _, lead_off = ad8232.to_adc(_pulse_ecg(5000), FS, np.random.default_rng(2), dist=Disturbances.none())
    assert not lead_off.any()


def test_round_trip_within_quantisation() -> None:
    cfg = AD8232Config(analog_filter=False)
    x = np.random.default_rng(3).uniform(-1.4, 1.4, size=5000)
    counts, _ = ad8232.to_adc(x, FS, np.random.default_rng(0), cfg, Disturbances.none())
    back = ad8232.adc_to_mv(counts, cfg)
    lsb_mv = 1 / cfg.counts_per_mv
    assert np.max(np.abs(back - x)) <= 0.5 * lsb_mv + 1e-12


def test_analog_filter_is_band_pass_and_causal() -> None:
    n = int(20 * FS)
    step = np.zeros(n)
    step[int(5 * FS):] = 1.0
    y = ad8232.analog_frontend(step, FS)
    assert np.all(y[: int(5 * FS)] == 0)  # causal: nothing before the step
    assert y[int(5 * FS) + 3] > 0.8  # the edge passes
    assert abs(y[-1]) < 0.02  # DC is removed (0.5 Hz high-pass)
    t = np.arange(n) / FS
    hum = np.sin(2 * np.pi * 100 * t)
    assert np.std(ad8232.analog_frontend(hum, FS)[500:]) < 0.3 * np.std(hum)  # 40 Hz low-pass


def test_filter_changes_adc_output_only_when_enabled() -> None:
    x = _pulse_ecg(5000) + 0.5  # DC offset at the input
    on, _ = ad8232.to_adc(x, FS, np.random.default_rng(0), AD8232Config(), Disturbances.none())
    off, _ = ad8232.to_adc(x, FS, np.random.default_rng(0), AD8232Config(analog_filter=False),
                           Disturbances.none())
    assert abs(np.median(ad8232.adc_to_mv(off)) - 0.5) < 0.01
    assert abs(np.median(ad8232.adc_to_mv(on))) < 0.1


@pytest.mark.parametrize("freq", [50.0, 60.0])
def test_mains_power_at_line_frequency(freq: float) -> None:
    x = ad8232.mains(int(20 * FS), FS, np.random.default_rng(4), freq=freq, amplitude_mv=0.1)
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    freqs = np.fft.rfftfreq(x.size, 1 / FS)
    assert abs(freqs[np.argmax(spec)] - freq) < 0.2
    assert _power_fraction(x, FS, freq - 1, freq + 1) > 0.85
    assert np.max(np.abs(x)) < 0.1 * (1 + 0.3) * (1 + 0.25) + 1e-9


def test_mains_harmonic_present_when_sampled_fast() -> None:
    fs = 1000.0
    x = ad8232.mains(int(10 * fs), fs, np.random.default_rng(5), freq=50.0, harmonic_ratio=0.3)
    assert _power_fraction(x, fs, 149, 151) > 0.05


def test_baseline_wander_is_below_1hz() -> None:
    x = ad8232.baseline_wander(int(60 * FS), FS, np.random.default_rng(6))
    assert np.std(x) > 0.05
    assert _power_fraction(x, FS, 0, 1.0) > 0.99


def test_emg_noise_is_band_limited_with_requested_level() -> None:
    x = ad8232.emg_noise(int(30 * FS), FS, np.random.default_rng(7), rms_mv=0.02, burst_rate_per_min=0)
    assert np.std(x) == pytest.approx(0.02, rel=0.15)
    assert _power_fraction(x, FS, 15, FS / 2) > 0.9


def test_electrode_motion_is_large_and_slow() -> None:
    x = ad8232.electrode_motion(int(30 * FS), FS, np.random.default_rng(8), rate_per_min=10,
                                amplitude_mv=1.0, min_events=1)
    assert np.max(np.abs(x)) > 0.2
    assert _power_fraction(x, FS, 0, 8.0) > 0.95
    quiet = ad8232.electrode_motion(int(30 * FS), FS, np.random.default_rng(8), rate_per_min=0)
    assert not quiet.any()


def test_lead_off_mask_events() -> None:
    rng = np.random.default_rng(9)
    mask = ad8232.lead_off_mask(2500, FS, rng, rate_per_min=0, min_events=1)
    assert mask.dtype == bool and mask.any()
    assert not ad8232.lead_off_mask(2500, FS, rng, rate_per_min=0).any()


@pytest.mark.parametrize("n", [0, 1, 7, 1000])
@pytest.mark.parametrize("fs", [100.0, 250.0, 500.0])
def test_any_length_and_rate(n: int, fs: float) -> None:
    rng = np.random.default_rng(10)
    for fn in (ad8232.mains, ad8232.emg_noise, ad8232.baseline_wander, ad8232.electrode_motion):
        out = fn(n, fs, rng)
        assert out.shape == (n,) and np.all(np.isfinite(out))
    assert ad8232.lead_off_mask(n, fs, rng).shape == (n,)
    dist = Disturbances(lead_off_prob=1.0, motion_prob=1.0, emg_prob=1.0)
    counts, lead_off = ad8232.to_adc(np.zeros(n), fs, rng, dist=dist)
    assert counts.shape == lead_off.shape == (n,)
    assert ad8232.augment_window(np.ones(n, np.float32), fs, rng).shape == (n,)


def test_disturb_is_deterministic_and_noisy() -> None:
    x = _pulse_ecg(5000)
    a = ad8232.disturb(x, FS, np.random.default_rng(11), Disturbances())
    b = ad8232.disturb(x, FS, np.random.default_rng(11), Disturbances())
    c = ad8232.disturb(x, FS, np.random.default_rng(12), Disturbances())
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, x)
    np.testing.assert_array_equal(ad8232.disturb(x, FS, np.random.default_rng(0), Disturbances.none()), x)


def test_scaled_disturbances() -> None:
    d = Disturbances().scaled(2.0)
    assert d.mains_amplitude_mv == pytest.approx(2 * Disturbances().mains_amplitude_mv)
    assert d.mains_prob == Disturbances().mains_prob


@pytest.mark.parametrize("shape", [(2500,), (3, 2500)])
def test_augment_window_shape_dtype_determinism(shape: tuple[int, ...]) -> None:
    x = np.random.default_rng(13).standard_normal(shape).astype(np.float32)
    a = ad8232.augment_window(x, FS, np.random.default_rng(14))
    b = ad8232.augment_window(x, FS, np.random.default_rng(14))
    assert a.shape == x.shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    changed = [not np.array_equal(ad8232.augment_window(x, FS, np.random.default_rng(s)), x)
               for s in range(10)]
    assert sum(changed) >= 8


def test_augment_window_strength_zero_is_identity() -> None:
    x = _pulse_ecg(2500).astype(np.float32)
    for seed in range(5):
        np.testing.assert_array_equal(ad8232.augment_window(x, FS, np.random.default_rng(seed), 0.0), x)


def test_augment_window_is_scale_aware() -> None:
    x = (_pulse_ecg(2500) - 0.1).astype(np.float32)
    for seed in range(10):
        small = ad8232.augment_window(x, FS, np.random.default_rng(seed))
        big = ad8232.augment_window(x * 1000, FS, np.random.default_rng(seed))
        np.testing.assert_allclose(big / 1000, small, rtol=1e-4, atol=1e-5 * np.std(x))
        # disturbances stay of the order of the signal, not of absolute mV
        assert np.std(small - x) < 3 * np.std(x) + 1e-6


def test_augment_window_strength_increases_disturbance() -> None:
    x = _pulse_ecg(2500).astype(np.float32)
    diffs = {s: np.mean([np.std(ad8232.augment_window(x, FS, np.random.default_rng(k), s) - x)
                         for k in range(30)]) for s in (0.5, 2.0)}
    assert diffs[2.0] > 2 * diffs[0.5]
