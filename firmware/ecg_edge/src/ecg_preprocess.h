/* The streaming device path of the PreprocessSpec: filter -> ring of one window -> status,
 * z-score and int8 quantization every hop. The rule is pipeline/signal/device.py's:
 *
 * - window k covers samples [k * hop, k * hop + ECG_WINDOW_SAMPLES) since ecg_pre_init();
 * - ECG_STATUS_LEAD_OFF when any of its samples had a lead-off flag; the filter restarts at the
 *   first good sample after lead-off;
 * - ECG_STATUS_SATURATED when more than ECG_SATURATION_MAX_SAMPLES samples sit at an ADC rail;
 * - with ECG_QUALITY_CHECKS (the bundle carries pipeline/signal/quality.py's rule): ECG_STATUS_FLAT when the
 *   filtered window's peak-to-peak is below the flat threshold or ECG_QUALITY_FLAT_MAX_RUN_SAMPLES raw
 *   samples in a row are equal; ECG_STATUS_NOISY when sum(d2^2) / sum(d1^2) of the raw counts exceeds
 *   the hf ratio squared (an exact 96-bit integer comparison) or the largest segment peak-to-peak is
 *   more than the jump ratio times their median. Same arithmetic as pipeline.signal.quality.assess_window,
 *   so the decisions are identical: the sums are running integer sums with a snapshot at the start of
 *   each window in flight (no raw window is kept), peak-to-peaks are float64 over the float32 ring;
 * - ECG_STATUS_OK otherwise: ecg_pre_window() z-scores and quantizes it.
 */
#ifndef ECG_PREPROCESS_H
#define ECG_PREPROCESS_H

#include <stdint.h>

#include "ecg_generated.h"
#include "ecg_filter.h"

/* Windows in flight the quality sums keep a snapshot for: ceil(ECG_WINDOW_SAMPLES / hop) must not
 * exceed it (16: hop >= 157 samples at 2500), 16 bytes each. */
#ifndef ECG_QUALITY_MAX_WINDOWS
#define ECG_QUALITY_MAX_WINDOWS 16
#endif

typedef struct {
    ecg_filter filter;
    float ring[ECG_WINDOW_SAMPLES]; /* filtered samples, float32 as the reference casts them */
    uint8_t rail_bits[(ECG_WINDOW_SAMPLES + 7) / 8];
    uint32_t count;         /* samples pushed since init */
    uint32_t pos;           /* ring index of the oldest sample (= next write) */
    uint32_t good_since;    /* index of the first sample after the last lead-off sample */
    uint32_t rail_count;    /* rail samples in the ring */
    uint32_t hop;
    uint16_t rail_low, rail_high;
    int32_t status;         /* ECG_STATUS_* of the window just completed */
    int bad_hop;            /* the hop needs more than ECG_QUALITY_MAX_WINDOWS snapshots: no windows */
#if ECG_QUALITY_CHECKS
    uint64_t e1, e2;        /* sums of squared first / second differences of the raw counts since init (mod 2^64) */
    uint64_t snap1[ECG_QUALITY_MAX_WINDOWS]; /* e1 after a window's first sample, per window in flight */
    uint64_t snap2[ECG_QUALITY_MAX_WINDOWS]; /* e2 after its second sample */
    double flat_min_p2p;    /* FLAT peak-to-peak threshold in counts */
    uint32_t run;           /* equal raw samples ending at the last one (at most the flat run) */
    uint32_t long_run_end;  /* count after the last sample that ended a flat run; 0: none yet */
    uint16_t prev0, prev1;  /* the last two raw samples */
#endif
} ecg_pre;

/* adc_max: the ADC's largest code (4095 for 12 bits); hop: samples between windows (> 0).
 * 0, or -1 when the quality checks cannot follow that many windows in flight (hop below
 * ECG_WINDOW_SAMPLES / ECG_QUALITY_MAX_WINDOWS): the pipeline then completes no window. */
int ecg_pre_init(ecg_pre *p, uint16_t adc_max, uint32_t hop);

/* Push one sample; returns 1 when it completes a window (then call ecg_pre_status/ecg_pre_window). */
int ecg_pre_push(ecg_pre *p, uint16_t raw, int lead_off);

/* Status of the window just completed (ECG_STATUS_*: OK, LEAD_OFF, SATURATED, FLAT, NOISY). */
int ecg_pre_status(const ecg_pre *p);

/* Index of the window just completed, and its first sample. */
uint32_t ecg_pre_window_index(const ecg_pre *p);
uint32_t ecg_pre_window_start(const ecg_pre *p);

/* Z-score the window in float32 as the reference does and quantize it as TFLite's QUANTIZE
 * (round half away from zero, clamp): q gets ECG_WINDOW_SAMPLES values; z (may be NULL) the floats. */
void ecg_pre_window(const ecg_pre *p, float scale, int32_t zero_point, int8_t *q, float *z);

#endif /* ECG_PREPROCESS_H */
