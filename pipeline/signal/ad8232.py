"""Signal model of an AD8232 ECG breakout read by a microcontroller ADC.

What a common AD8232 module (SparkFun-style: instrumentation amp x100, output op-amp x11,
output centred on REFOUT ~ VCC/2, on-board ~0.5 Hz high-pass and ~40 Hz low-pass) followed
by a 12-bit, 3.3 V MCU ADC produces, plus the disturbances of hand-held recordings: mains
hum, EMG, baseline wander, electrode motion, amplitude changes and lead-off stretches.

Reused by the synthetic data set, by training augmentation (`augment_window`) and by the
virtual device that streams ADC counts. Every function is pure numpy/scipy, takes an
explicit `np.random.Generator` where it is random, and works for any length and rate.
Signals are in mV at the electrodes unless a name says counts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
from scipy import signal as sps

FloatArray = np.ndarray


@dataclass(frozen=True)
class AD8232Config:
    """Analogue chain and ADC. Defaults: SparkFun-style AD8232 breakout on a 3.3 V, 12-bit MCU."""

    gain: float = 1100.0  # V/V: instrumentation amp (100) x output op-amp (11)
    vref: float = 3.3  # ADC reference (= supply), V
    adc_bits: int = 12
    offset_v: float = 1.65  # output reference REFOUT ~ VCC/2, V
    highpass_hz: float = 0.5  # on-board high-pass corner
    highpass_order: int = 2
    lowpass_hz: float = 40.0  # on-board low-pass corner (skipped when >= lowpass_max_nyquist * fs/2)
    lowpass_order: int = 2
    lowpass_max_nyquist: float = 0.95
    analog_filter: bool = True  # apply the front-end filters (causal, like the hardware)

    @property
    def max_count(self) -> int:
        """Largest ADC code (the high rail)."""
        return 2**self.adc_bits - 1

    @property
    def counts_per_mv(self) -> float:
        """ADC counts per mV at the electrodes."""
        return self.gain * 1e-3 * 2**self.adc_bits / self.vref

    @property
    def offset_counts(self) -> float:
        """ADC code of 0 mV at the electrodes (the output reference)."""
        return self.offset_v / self.vref * 2**self.adc_bits


@dataclass(frozen=True)
class Disturbances:
    """Disturbance amplitudes and per-record probabilities (defaults: a typical hand-held recording).

    Each `*_prob` is the chance that a record has that disturbance at all; nominal amplitudes
    are then multiplied per record by a factor drawn from [1 - amplitude_jitter, 1 + amplitude_jitter].
    """

    amplitude_jitter: float = 0.5

    mains_prob: float = 0.8
    mains_freq: float = 50.0  # Hz (60.0 in the Americas)
    mains_amplitude_mv: float = 0.05
    mains_harmonic: int = 3  # above Nyquist it aliases, as in an ADC
    mains_harmonic_ratio: float = 0.25
    mains_freq_jitter_hz: float = 0.05
    mains_am_depth: float = 0.3  # slow amplitude modulation as cables and hands move
    mains_am_hz: float = 0.2

    emg_prob: float = 0.6
    emg_rms_mv: float = 0.015  # between bursts
    emg_band_hz: tuple[float, float] = (20.0, 150.0)  # upper edge capped below Nyquist
    emg_filter_order: int = 4
    emg_burst_rate_per_min: float = 6.0
    emg_burst_duration_s: tuple[float, float] = (0.3, 1.5)
    emg_burst_gain: float = 4.0  # rms multiplier at the peak of a burst

    wander_prob: float = 0.9
    resp_amplitude_mv: float = 0.1
    resp_hz: tuple[float, float] = (0.15, 0.4)
    drift_amplitude_mv: float = 0.2
    drift_hz: tuple[float, float] = (0.01, 0.1)
    drift_components: int = 3

    motion_prob: float = 0.4
    motion_rate_per_min: float = 2.0
    motion_amplitude_mv: float = 1.0
    motion_duration_s: tuple[float, float] = (0.2, 1.0)
    motion_hz: tuple[float, float] = (0.5, 3.0)
    motion_min_fraction: float = 0.3  # each event's amplitude is uniform in [this, 1] x nominal

    scale_prob: float = 1.0
    scale_range: tuple[float, float] = (0.7, 1.3)  # electrode contact / placement

    lead_off_prob: float = 0.1
    lead_off_rate_per_min: float = 1.0  # at least one stretch when a record has lead-off
    lead_off_duration_s: tuple[float, float] = (0.5, 3.0)
    # Electrode half-cell offset appearing at the input while a lead is off; after reconnection
    # the high-pass turns its removal into the recovery transient real boards show.
    lead_off_step_mv: float = 5.0

    @classmethod
    def none(cls) -> Disturbances:
        """No disturbance at all (the ADC path becomes deterministic)."""
        return cls(
            mains_prob=0.0, emg_prob=0.0, wander_prob=0.0, motion_prob=0.0,
            scale_prob=0.0, lead_off_prob=0.0,
        )

    def scaled(self, factor: float) -> Disturbances:
        """Same probabilities, additive disturbance amplitudes times `factor`."""
        return replace(
            self,
            mains_amplitude_mv=self.mains_amplitude_mv * factor,
            emg_rms_mv=self.emg_rms_mv * factor,
            resp_amplitude_mv=self.resp_amplitude_mv * factor,
            drift_amplitude_mv=self.drift_amplitude_mv * factor,
            motion_amplitude_mv=self.motion_amplitude_mv * factor,
        )


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation: probabilities and amplitudes relative to the window's std."""

    mains_prob: float = 0.3
    mains_rel: float = 0.15
    mains_freqs: tuple[float, ...] = (50.0, 60.0)
    emg_prob: float = 0.3
    emg_rel: float = 0.08
    wander_prob: float = 0.5
    wander_rel: float = 0.4
    motion_prob: float = 0.2
    motion_rel: float = 1.0
    motion_rate_per_min: float = 6.0
    scale_prob: float = 0.5
    scale_log_range: float = 0.25  # gain drawn log-uniformly in exp(+-range)
    shift_prob: float = 0.5
    max_shift_s: float = 0.1
    min_fraction: float = 0.3  # each amplitude is uniform in [this, 1] x its *_rel


_D = Disturbances()


def _time(n: int, fs: float) -> FloatArray:
    return np.arange(n, dtype=np.float64) / fs


def _poisson_events(n: int, fs: float, rng: np.random.Generator, rate_per_min: float,
                    min_events: int) -> int:
    expected = max(rate_per_min, 0.0) * n / fs / 60.0
    return max(int(rng.poisson(expected)), min_events) if n > 0 else 0


def _jitter(rng: np.random.Generator, nominal: float, jitter: float) -> float:
    return nominal * rng.uniform(1.0 - jitter, 1.0 + jitter)


def mains(n: int, fs: float, rng: np.random.Generator, freq: float = _D.mains_freq,
          amplitude_mv: float = _D.mains_amplitude_mv, harmonic: int = _D.mains_harmonic,
          harmonic_ratio: float = _D.mains_harmonic_ratio,
          freq_jitter_hz: float = _D.mains_freq_jitter_hz, am_depth: float = _D.mains_am_depth,
          am_hz: float = _D.mains_am_hz) -> FloatArray:
    """Mains hum: fundamental plus one harmonic, slowly amplitude-modulated (mV)."""
    t = _time(n, fs)
    f = freq + rng.uniform(-freq_jitter_hz, freq_jitter_hz)
    ph = rng.uniform(0.0, 2 * np.pi, size=3)
    envelope = 1.0 + am_depth * np.sin(2 * np.pi * am_hz * t + ph[2])
    tone = np.sin(2 * np.pi * f * t + ph[0])
    tone += harmonic_ratio * np.sin(2 * np.pi * harmonic * f * t + ph[1])
    return amplitude_mv * envelope * tone


@lru_cache(maxsize=64)
def _band_sos(lo: float, hi: float, fs: float, order: int) -> np.ndarray | None:
    """Band-pass (or high-pass when `hi` is past Nyquist) design; None when nothing is left."""
    nyq = fs / 2
    hi = min(hi, 0.9 * nyq)
    if lo >= hi:
        return None
    return sps.butter(order, (lo, hi), btype="bandpass", fs=fs, output="sos")


def emg_noise(n: int, fs: float, rng: np.random.Generator, rms_mv: float = _D.emg_rms_mv,
              band_hz: tuple[float, float] = _D.emg_band_hz, order: int = _D.emg_filter_order,
              burst_rate_per_min: float = _D.emg_burst_rate_per_min,
              burst_duration_s: tuple[float, float] = _D.emg_burst_duration_s,
              burst_gain: float = _D.emg_burst_gain) -> FloatArray:
    """Band-limited muscle noise with bursts of stronger activity (mV)."""
    if n == 0:
        return np.zeros(0)
    white = rng.standard_normal(n)
    sos = _band_sos(float(band_hz[0]), float(band_hz[1]), float(fs), order)
    if sos is None:  # EMG band above Nyquist: it aliases to white noise
        noise = white
    else:
        lo, hi = band_hz[0], min(band_hz[1], 0.9 * fs / 2)
        # Normalise by the expected (not measured) rms so short windows keep the same scale.
        noise = sps.sosfilt(sos, white) / np.sqrt(2 * (hi - lo) / fs)
    envelope = np.ones(n)
    for _ in range(_poisson_events(n, fs, rng, burst_rate_per_min, 0)):
        length = max(int(rng.uniform(*burst_duration_s) * fs), 1)
        start = int(rng.integers(0, n))
        bump = (burst_gain - 1.0) * np.hanning(length + 2)[1:-1]
        envelope[start:start + length] += bump[: n - start]
    return rms_mv * noise * envelope


def slow_sines(t: FloatArray, rng: np.random.Generator, f_range: tuple[float, float],
                components: int) -> FloatArray:
    """Sum of random low-frequency sines with unit total rms (for any length)."""
    out = np.zeros_like(t)
    for _ in range(components):
        f = rng.uniform(*f_range)
        out += np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return out * np.sqrt(2.0 / max(components, 1))


def baseline_wander(n: int, fs: float, rng: np.random.Generator,
                    resp_amplitude_mv: float = _D.resp_amplitude_mv,
                    resp_hz: tuple[float, float] = _D.resp_hz,
                    drift_amplitude_mv: float = _D.drift_amplitude_mv,
                    drift_hz: tuple[float, float] = _D.drift_hz,
                    drift_components: int = _D.drift_components) -> FloatArray:
    """Respiration (0.15-0.4 Hz) plus slow electrode drift (mV)."""
    t = _time(n, fs)
    f_resp = rng.uniform(*resp_hz)
    resp = resp_amplitude_mv * np.sin(2 * np.pi * f_resp * t + rng.uniform(0, 2 * np.pi))
    drift = drift_amplitude_mv * slow_sines(t, rng, drift_hz, drift_components) / np.sqrt(2)
    return resp + drift


def electrode_motion(n: int, fs: float, rng: np.random.Generator,
                     rate_per_min: float = _D.motion_rate_per_min,
                     amplitude_mv: float = _D.motion_amplitude_mv,
                     duration_s: tuple[float, float] = _D.motion_duration_s,
                     freq_hz: tuple[float, float] = _D.motion_hz,
                     min_fraction: float = _D.motion_min_fraction,
                     min_events: int = 0) -> FloatArray:
    """Electrode motion: bursts of large, smooth, low-frequency deflections (mV)."""
    out = np.zeros(n)
    for _ in range(_poisson_events(n, fs, rng, rate_per_min, min_events)):
        length = max(int(rng.uniform(*duration_s) * fs), 1)
        start = int(rng.integers(0, n))
        tau = np.arange(length) / fs
        window = np.sin(np.pi * (np.arange(length) + 0.5) / length) ** 2
        wave = np.cos(2 * np.pi * rng.uniform(*freq_hz) * tau + rng.uniform(0, 2 * np.pi))
        amp = amplitude_mv * rng.uniform(min_fraction, 1.0) * rng.choice((-1.0, 1.0))
        out[start:start + length] += (amp * window * wave)[: n - start]
    return out


def lead_off_mask(n: int, fs: float, rng: np.random.Generator,
                  rate_per_min: float = _D.lead_off_rate_per_min,
                  duration_s: tuple[float, float] = _D.lead_off_duration_s,
                  min_events: int = 0) -> np.ndarray:
    """Boolean mask of lead-off stretches (True = an electrode is off)."""
    mask = np.zeros(n, dtype=bool)
    for _ in range(_poisson_events(n, fs, rng, rate_per_min, min_events)):
        length = max(int(rng.uniform(*duration_s) * fs), 1)
        start = int(rng.integers(0, n))
        mask[start:start + length] = True
    return mask


def disturb(ecg_mv: FloatArray, fs: float, rng: np.random.Generator,
            dist: Disturbances = _D) -> FloatArray:
    """The ECG as the electrodes see it: amplitude-scaled plus the additive disturbances (mV).

    Lead-off is not applied here (it needs a flag); `to_adc` handles it.
    """
    x = np.asarray(ecg_mv, dtype=np.float64).copy()
    n, j = x.size, dist.amplitude_jitter
    if rng.random() < dist.scale_prob:
        x *= rng.uniform(*dist.scale_range)
    if rng.random() < dist.mains_prob:
        x += mains(n, fs, rng, dist.mains_freq, _jitter(rng, dist.mains_amplitude_mv, j),
                   dist.mains_harmonic, dist.mains_harmonic_ratio, dist.mains_freq_jitter_hz,
                   dist.mains_am_depth, dist.mains_am_hz)
    if rng.random() < dist.emg_prob:
        x += emg_noise(n, fs, rng, _jitter(rng, dist.emg_rms_mv, j), dist.emg_band_hz,
                       dist.emg_filter_order, dist.emg_burst_rate_per_min,
                       dist.emg_burst_duration_s, dist.emg_burst_gain)
    if rng.random() < dist.wander_prob:
        x += baseline_wander(n, fs, rng, _jitter(rng, dist.resp_amplitude_mv, j), dist.resp_hz,
                             _jitter(rng, dist.drift_amplitude_mv, j), dist.drift_hz,
                             dist.drift_components)
    if rng.random() < dist.motion_prob:
        x += electrode_motion(n, fs, rng, dist.motion_rate_per_min,
                              _jitter(rng, dist.motion_amplitude_mv, j), dist.motion_duration_s,
                              dist.motion_hz, dist.motion_min_fraction, min_events=1)
    return x


@lru_cache(maxsize=64)
def frontend_sos(fs: float, config: AD8232Config = AD8232Config()) -> np.ndarray:
    """Digital stand-in (bilinear transform) for the analogue high-pass + low-pass."""
    sections = [sps.butter(config.highpass_order, config.highpass_hz, btype="highpass",
                           fs=fs, output="sos")]
    if config.lowpass_hz < config.lowpass_max_nyquist * fs / 2:
        sections.append(sps.butter(config.lowpass_order, config.lowpass_hz, btype="lowpass",
                                   fs=fs, output="sos"))
    return np.vstack(sections)


def analog_frontend(x_mv: FloatArray, fs: float, config: AD8232Config = AD8232Config()) -> FloatArray:
    """Causal front-end filtering (mV in, mV out), starting settled on the first sample."""
    x = np.asarray(x_mv, dtype=np.float64)
    if x.size == 0:
        return x.copy()
    sos = frontend_sos(float(fs), config)
    # A module that has been on for a while: filter state settled on the first input value.
    zi = sps.sosfilt_zi(sos) * x[0]
    y, _ = sps.sosfilt(sos, x, zi=zi)
    return y


def mv_to_counts(x_mv: FloatArray, config: AD8232Config = AD8232Config()) -> np.ndarray:
    """Gain, offset, rounding quantisation and clipping to the ADC range (uint16)."""
    codes = np.rint(np.asarray(x_mv, dtype=np.float64) * config.counts_per_mv + config.offset_counts)
    return np.clip(codes, 0, config.max_count).astype(np.uint16)


def to_adc(ecg_mv: FloatArray, fs: float, rng: np.random.Generator,
           config: AD8232Config = AD8232Config(),
           dist: Disturbances = _D) -> tuple[np.ndarray, np.ndarray]:
    """ADC counts (uint16) and lead-off flags (bool) an MCU reads for this ECG (mV).

    Disturbances, analogue filters, gain/offset, quantisation, clipping; while a lead is off
    the AD8232 output saturates at the high rail and the flag is True.
    """
    x = disturb(ecg_mv, fs, rng, dist)
    if rng.random() < dist.lead_off_prob:
        lead_off = lead_off_mask(x.size, fs, rng, dist.lead_off_rate_per_min,
                                 dist.lead_off_duration_s, min_events=1)
    else:
        lead_off = np.zeros(x.size, dtype=bool)
    x[lead_off] += dist.lead_off_step_mv
    if config.analog_filter:
        x = analog_frontend(x, fs, config)
    counts = mv_to_counts(x, config)
    counts[lead_off] = config.max_count
    return counts, lead_off


def adc_to_mv(counts: np.ndarray, config: AD8232Config = AD8232Config()) -> FloatArray:
    """mV at the electrodes from ADC counts (inverse of gain and offset)."""
    return (np.asarray(counts, dtype=np.float64) - config.offset_counts) / config.counts_per_mv


def _shift(x: np.ndarray, shift: int) -> np.ndarray:
    """Shift along the last axis, holding the edge value."""
    if shift == 0 or x.shape[-1] == 0:
        return x
    shift = int(np.clip(shift, -(x.shape[-1] - 1), x.shape[-1] - 1))
    out = np.empty_like(x)
    if shift > 0:
        out[..., shift:] = x[..., :-shift]
        out[..., :shift] = x[..., :1]
    else:
        out[..., :shift] = x[..., -shift:]
        out[..., shift:] = x[..., -1:]
    return out


def _augment_lead(x: FloatArray, fs: float, rng: np.random.Generator, on: dict[str, bool],
                  mains_freq: float, amp: float, cfg: AugmentConfig) -> FloatArray:
    """Additive disturbances for one lead; `amp` is the lead's std times the strength."""
    n, y = x.size, x.copy()

    def level(rel: float) -> float:
        return rel * amp * rng.uniform(cfg.min_fraction, 1.0)

    if on["mains"]:
        y += mains(n, fs, rng, freq=mains_freq, amplitude_mv=level(cfg.mains_rel))
    if on["emg"]:
        y += emg_noise(n, fs, rng, rms_mv=level(cfg.emg_rel))
    if on["wander"]:
        y += baseline_wander(n, fs, rng, resp_amplitude_mv=level(cfg.wander_rel),
                             drift_amplitude_mv=level(cfg.wander_rel))
    if on["motion"]:
        y += electrode_motion(n, fs, rng, rate_per_min=cfg.motion_rate_per_min,
                              amplitude_mv=cfg.motion_rel * amp,
                              min_fraction=cfg.min_fraction, min_events=1)
    return y


def augment_window(x: np.ndarray, fs: float, rng: np.random.Generator, strength: float = 1.0,
                   config: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """Randomly disturb a window of shape (n,) or (leads, n); float32 out, same shape.

    Amplitudes are relative to each lead's std (so any input scale works, and the result
    scales with the input); `strength` scales every amplitude, gain and shift (0 = identity).
    Which disturbances are applied is decided once per window, shared by all leads.
    """
    arr = np.asarray(x, dtype=np.float64)
    leads = np.atleast_2d(arr)
    on = {name: bool(rng.random() < getattr(config, f"{name}_prob"))
          for name in ("mains", "emg", "wander", "motion")}
    mains_freq = float(rng.choice(config.mains_freqs))
    gain = 1.0
    if rng.random() < config.scale_prob:
        gain = float(np.exp(strength * rng.uniform(-config.scale_log_range, config.scale_log_range)))
    shift = 0
    if rng.random() < config.shift_prob:
        max_shift = int(round(strength * config.max_shift_s * fs))
        shift = int(rng.integers(-max_shift, max_shift + 1))
    out = np.empty_like(leads)
    for i, lead in enumerate(leads):
        amp = strength * float(np.std(lead)) if lead.size else 0.0
        out[i] = _augment_lead(lead, fs, rng, on, mains_freq, amp, config) if amp > 0 else lead
    out = _shift(out * gain, shift)
    return out.reshape(arr.shape).astype(np.float32)
