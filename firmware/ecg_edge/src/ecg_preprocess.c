/* Arduino IDE builds have no per-project flags: keep a*b+c unfused so float32 results match numpy. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "ecg_preprocess.h"

#include <math.h>

void ecg_pre_init(ecg_pre *p, uint16_t adc_max, uint32_t hop)
{
    uint32_t i;
    uint32_t margin = ((uint32_t)adc_max + 1u) * ECG_RAIL_MARGIN_PER_1024 / 1024u;
    if (margin < 1u) {
        margin = 1u;
    }
    ecg_filter_restart(&p->filter);
    for (i = 0; i < ECG_WINDOW_SAMPLES; ++i) {
        p->ring[i] = 0.0f;
    }
    for (i = 0; i < sizeof p->rail_bits; ++i) {
        p->rail_bits[i] = 0;
    }
    p->count = 0;
    p->pos = 0;
    p->good_since = 0;
    p->rail_count = 0;
    p->hop = hop > 0u ? hop : 1u;
    p->rail_low = (uint16_t)margin;
    p->rail_high = (uint16_t)(adc_max > margin ? adc_max - margin : 0u);
}

int ecg_pre_push(ecg_pre *p, uint16_t raw, int lead_off)
{
    const uint32_t i = p->pos;
    const uint8_t bit = (uint8_t)(1u << (i & 7u));
    const int rail = raw <= p->rail_low || raw >= p->rail_high;

    if (p->rail_bits[i >> 3] & bit) {
        p->rail_count--;
    }
    if (rail) {
        p->rail_bits[i >> 3] |= bit;
        p->rail_count++;
    } else {
        p->rail_bits[i >> 3] &= (uint8_t)~bit;
    }
    if (lead_off) {
        ecg_filter_restart(&p->filter);
        p->ring[i] = 0.0f;
        p->good_since = p->count + 1u;
    } else {
        p->ring[i] = (float)ecg_filter_step(&p->filter, (double)raw);
    }
    p->count++;
    p->pos = (i + 1u == ECG_WINDOW_SAMPLES) ? 0u : i + 1u;
    return p->count >= ECG_WINDOW_SAMPLES && (p->count - ECG_WINDOW_SAMPLES) % p->hop == 0u;
}

uint32_t ecg_pre_window_start(const ecg_pre *p)
{
    return p->count - ECG_WINDOW_SAMPLES;
}

uint32_t ecg_pre_window_index(const ecg_pre *p)
{
    return ecg_pre_window_start(p) / p->hop;
}

int ecg_pre_status(const ecg_pre *p)
{
    if (p->good_since > ecg_pre_window_start(p)) {
        return ECG_STATUS_LEAD_OFF;
    }
    if (p->rail_count > ECG_SATURATION_MAX_SAMPLES) {
        return ECG_STATUS_SATURATED;
    }
    return ECG_STATUS_OK;
}

/* numpy: round half away from zero in float32, then clamp to int8. */
static int8_t quantize(float x, float scale, int32_t zero_point)
{
    const float v = x / scale;
    const float r = v < 0.0f ? -floorf(-v + 0.5f) : floorf(v + 0.5f);
    int32_t q;
    if (r > 255.0f) {
        return 127;
    }
    if (r < -256.0f) {
        return -128;
    }
    q = (int32_t)r + zero_point;
    return (int8_t)(q > 127 ? 127 : (q < -128 ? -128 : q));
}

void ecg_pre_window(const ecg_pre *p, float scale, int32_t zero_point, int8_t *q, float *z)
{
    /* The ring holds the window in time order starting at pos (the oldest sample). */
    double sum = 0.0, ss = 0.0, mean;
    float mean32, denom;
    uint32_t k, i;
    for (k = 0; k < ECG_WINDOW_SAMPLES; ++k) {
        sum += (double)p->ring[k];
    }
    mean = sum / (double)ECG_WINDOW_SAMPLES;
    for (k = 0; k < ECG_WINDOW_SAMPLES; ++k) {
        const double d = (double)p->ring[k] - mean;
        ss += d * d;
    }
    mean32 = (float)mean;
    denom = (float)sqrt(ss / (double)ECG_WINDOW_SAMPLES) + ECG_ZSCORE_EPS;
    i = p->pos;
    for (k = 0; k < ECG_WINDOW_SAMPLES; ++k) {
        const float v = (p->ring[i] - mean32) / denom;
        q[k] = quantize(v, scale, zero_point);
        if (z != 0) {
            z[k] = v;
        }
        i = (i + 1u == ECG_WINDOW_SAMPLES) ? 0u : i + 1u;
    }
}
