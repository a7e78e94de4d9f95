"""The device path reference (pipeline.signal.device): window timing, lead-off, saturation, filter restart."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.signal.device_rule import DEFAULT_RULE, DeviceRule, WindowStatus, saturated_mask

from pipeline.signal.device import device_windows
from pipeline.signal.preprocess import device_filter, zscore
from pipeline.signal.spec import PreprocessSpec

SPEC = PreprocessSpec()
ADC_MAX = 4095


def _stream(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SPEC.fs
    x = 2048 + 300 * np.sin(2 * np.pi * 1.2 * t) + 20 * rng.standard_normal(n) + 0.05 * np.arange(n)
    return np.clip(np.rint(x), 0, ADC_MAX).astype(np.uint16)


def test_windows_every_hop_from_power_on():
    raw = _stream(5000)
    wins = device_windows(raw, None, SPEC, ADC_MAX)
    assert [w.start for w in wins] == list(range(0, 5000 - 2500 + 1, 625))
    assert [w.index for w in wins] == list(range(len(wins)))
    assert all(w.status == WindowStatus.OK for w in wins)
    # with no lead-off the windows are the reference preprocessing of the whole stream
    y = device_filter(raw.astype(np.float64), SPEC)
    for w in wins:
        np.testing.assert_array_equal(w.z, zscore(y[w.start : w.start + 2500], SPEC.zscore_eps))


def test_lead_off_blocks_windows_and_restarts_the_filter():
    raw = _stream(8000)
    off = np.zeros(raw.size, dtype=bool)
    off[3000:3100] = True
    wins = device_windows(raw, off, SPEC, ADC_MAX)
    status = {w.start: w.status for w in wins}
    assert status[0] == WindowStatus.OK and status[625] == WindowStatus.LEAD_OFF  # 625..3125 holds 3000
    assert status[2500] == WindowStatus.LEAD_OFF and status[3125] == WindowStatus.OK  # 3125 starts after the restart at 3100
    restarted = device_filter(raw[3100:].astype(np.float64), SPEC)  # steady state of sample 3100
    w = next(w for w in wins if w.start == 3125)
    np.testing.assert_array_equal(w.z, zscore(restarted[25 : 25 + 2500], SPEC.zscore_eps))
    whole = device_filter(raw.astype(np.float64), SPEC)
    assert not np.array_equal(w.z, zscore(whole[3125:5625], SPEC.zscore_eps))


def test_saturation_counts_rail_samples():
    rule = DeviceRule(saturation_max_fraction=0.01)
    assert rule.saturation_max_samples(2500) == 25 and rule.rail_margin(4095) == 4 and rule.rail_margin(1023) == 1
    raw = _stream(2500)
    raw[100:125] = ADC_MAX  # 25 samples at the rail: still classified
    assert device_windows(raw, None, SPEC, ADC_MAX, rule)[0].status == WindowStatus.OK
    raw[125] = 2  # the low rail counts too
    assert device_windows(raw, None, SPEC, ADC_MAX, rule)[0].status == WindowStatus.SATURATED
    assert saturated_mask(np.array([0, 4, 5, 4090, 4091, 4095]), ADC_MAX, DEFAULT_RULE).tolist() == [True, True, False, False, True, True]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="ADC range"):
        device_windows(np.array([0, 5000]), None, SPEC, ADC_MAX)
    with pytest.raises(ValueError, match="do not match"):
        device_windows(_stream(10), np.zeros(3, dtype=bool), SPEC, ADC_MAX)
    with pytest.raises(ValueError, match="causal"):
        device_windows(_stream(10), None, SPEC.with_(filter="zero-phase"), ADC_MAX)


def test_quality_rule_extends_the_statuses_and_leaves_the_default_alone():
    """device_windows(..., quality=rule): FLAT/NOISY as pipeline.signal.quality.assess_stream judges them;
    without a rule the statuses stay OK/LEAD_OFF/SATURATED."""
    from pipeline.signal.quality import DEFAULT_QUALITY, QualityStatus, assess_stream

    rng = np.random.default_rng(1)
    t = np.arange(12500) / SPEC.fs
    raw = np.rint(2048 + 300 * np.sin(2 * np.pi * 1.2 * t) + rng.standard_normal(t.size)).astype(np.int64)
    raw[3000:3400] = raw[3000]  # stuck input, no lead-off flag: FLAT
    raw[7500:10000] = np.clip(raw[7500:10000] + np.rint(300 * rng.standard_normal(2500)), 0, ADC_MAX)  # white noise: NOISY
    off = np.zeros(raw.size, dtype=bool)
    off[11000] = True
    plain = device_windows(raw, off, SPEC, ADC_MAX)
    ruled = device_windows(raw, off, SPEC, ADC_MAX, quality=DEFAULT_QUALITY)
    assert {w.status for w in plain} <= set(WindowStatus)
    expected = assess_stream(raw, off, np.array([w.start for w in ruled]), SPEC, ADC_MAX, DEFAULT_QUALITY)
    assert [w.status for w in ruled] == [q.status for q in expected]
    assert {QualityStatus.OK, QualityStatus.FLAT, QualityStatus.NOISY, QualityStatus.LEAD_OFF} <= {w.status for w in ruled}
    for p, r in zip(plain, ruled):  # the rule only takes windows the device rule would classify
        assert r.status == p.status or (p.status == WindowStatus.OK and r.z is None)
        if r.status == WindowStatus.OK:
            np.testing.assert_array_equal(r.z, p.z)
    with pytest.raises(ValueError, match="differs"):
        device_windows(raw, off, SPEC, ADC_MAX, DeviceRule(saturation_max_fraction=0.5), quality=DEFAULT_QUALITY)
