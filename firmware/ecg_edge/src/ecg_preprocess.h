/* The streaming device path of the PreprocessSpec: filter -> ring of one window -> status,
 * z-score and int8 quantization every hop. The rule is pipeline/device.py's:
 *
 * - window k covers samples [k * hop, k * hop + ECG_WINDOW_SAMPLES) since ecg_pre_init();
 * - ECG_STATUS_LEAD_OFF when any of its samples had a lead-off flag; the filter restarts at the
 *   first good sample after lead-off;
 * - ECG_STATUS_SATURATED when more than ECG_SATURATION_MAX_SAMPLES samples sit at an ADC rail;
 * - ECG_STATUS_OK otherwise: ecg_pre_window() z-scores and quantizes it.
 */
#ifndef ECG_PREPROCESS_H
#define ECG_PREPROCESS_H

#include <stdint.h>

#include "ecg_generated.h"
#include "ecg_filter.h"

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
} ecg_pre;

/* adc_max: the ADC's largest code (4095 for 12 bits); hop: samples between windows (> 0). */
void ecg_pre_init(ecg_pre *p, uint16_t adc_max, uint32_t hop);

/* Push one sample; returns 1 when it completes a window (then call ecg_pre_status/ecg_pre_window). */
int ecg_pre_push(ecg_pre *p, uint16_t raw, int lead_off);

/* Status of the window just completed (ECG_STATUS_*). */
int ecg_pre_status(const ecg_pre *p);

/* Index of the window just completed, and its first sample. */
uint32_t ecg_pre_window_index(const ecg_pre *p);
uint32_t ecg_pre_window_start(const ecg_pre *p);

/* Z-score the window in float32 as the reference does and quantize it as TFLite's QUANTIZE
 * (round half away from zero, clamp): q gets ECG_WINDOW_SAMPLES values; z (may be NULL) the floats. */
void ecg_pre_window(const ecg_pre *p, float scale, int32_t zero_point, int8_t *q, float *z);

#endif /* ECG_PREPROCESS_H */
