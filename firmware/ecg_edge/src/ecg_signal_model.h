/* A built-in AD8232-like signal source: what the ADC of a board with an AD8232 breakout reads from a
 * resting adult, without electrodes or a person. Used by the emulated Cortex-M4 image and the host
 * virtual device when no record is given, and by a sketch with nothing wired to its ADC.
 *
 * - PQRST beats (smooth bumps for P, Q, R, S and T) at a configurable mean heart rate, each RR
 *   interval varied by up to +-4 % (deterministic PRNG: the same seed gives the same stream);
 * - baseline wander (0.3 Hz), a little noise;
 * - the AD8232 chain of pipeline/signal/ad8232.py's defaults: gain 1100 into a 3.3 V ADC of `adc_bits`,
 *   output centred at mid-scale, so 2^adc_bits / 3 counts per mV (1365.3 at 12 bits), clipped to the
 *   ADC range;
 * - optional lead-off stretches: the output sits at the high rail with the lead-off flag set, as the
 *   AD8232 does when an electrode comes off.
 *
 * Integer arithmetic only per sample (8-bit CPUs included); about 80 bytes of state.
 */
#ifndef ECG_SIGNAL_MODEL_H
#define ECG_SIGNAL_MODEL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint16_t rate_hz;          /* sample rate, Hz (250) */
    uint16_t heart_rate_bpm;   /* mean heart rate, beats per minute (72); 20..250 */
    uint8_t adc_bits;          /* ADC resolution (12); 8..15 */
    uint16_t r_amplitude_uv;   /* R wave at the electrodes, microvolts (1200) */
    uint16_t wander_uv;        /* baseline wander amplitude, microvolts (150) */
    uint16_t noise_uv;         /* noise, at most this many microvolts (20) */
    uint16_t lead_off_every_s; /* 0: never; else a lead-off stretch ends every so many seconds */
    uint16_t lead_off_for_s;   /* its length, seconds (< lead_off_every_s) */
    uint32_t seed;             /* PRNG seed (0 is taken as 1) */
} ecg_signal_config;

#define ECG_SIGNAL_WAVES 5 /* P, Q, R, S, T */

typedef struct {
    ecg_signal_config cfg;
    int16_t wave_centre[ECG_SIGNAL_WAVES]; /* samples from the R peak */
    int16_t wave_half[ECG_SIGNAL_WAVES];   /* half widths, samples */
    int16_t wave_uv[ECG_SIGNAL_WAVES];     /* amplitudes, microvolts */
    uint32_t rng;
    int32_t since_r;      /* samples since the previous R peak */
    int32_t to_r;         /* samples until the next R peak */
    int32_t rr_mean;      /* mean RR interval, samples */
    uint32_t wander_phase, wander_step; /* 2^32 is one period */
    uint32_t cycle_pos, cycle_len, off_from; /* lead-off cycle, samples */
    int32_t counts_mid;   /* mid-scale code */
    uint16_t adc_max;
} ecg_signal;

/* The defaults above for `rate_hz`. */
void ecg_signal_default_config(ecg_signal_config *c, uint16_t rate_hz);
/* Start a stream (out-of-range settings are clamped). */
void ecg_signal_init(ecg_signal *s, const ecg_signal_config *c);
/* The next ADC reading; *lead_off gets the LO+/LO- state. */
uint16_t ecg_signal_next(ecg_signal *s, int *lead_off);

#ifdef __cplusplus
}
#endif

#endif /* ECG_SIGNAL_MODEL_H */
