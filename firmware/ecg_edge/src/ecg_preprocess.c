/* Arduino IDE builds have no per-project flags: keep a*b+c unfused so float32 results match numpy. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "ecg_preprocess.h"

#include <math.h>

int ecg_pre_init(ecg_pre *p, uint16_t adc_max, uint32_t hop)
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
    p->status = ECG_STATUS_OK;
    p->bad_hop = 0;
#if ECG_QUALITY_CHECKS
    p->bad_hop = (ECG_WINDOW_SAMPLES + p->hop - 1u) / p->hop > ECG_QUALITY_MAX_WINDOWS;
    p->e1 = 0;
    p->e2 = 0;
    for (i = 0; i < ECG_QUALITY_MAX_WINDOWS; ++i) {
        p->snap1[i] = 0;
        p->snap2[i] = 0;
    }
    /* pipeline.signal.quality.QualityRule.flat_min_p2p_counts(), the same float64 operations */
    p->flat_min_p2p = ECG_QUALITY_FLAT_MIN_P2P_MV_F64 * (((double)adc_max + 1.0) / ECG_QUALITY_FULL_SCALE_MV_F64);
    p->run = 0;
    p->long_run_end = 0;
    p->prev0 = 0;
    p->prev1 = 0;
#endif
    return p->bad_hop ? -1 : 0;
}

#if ECG_QUALITY_CHECKS
/* Running sums and the flat run for sample number t (= count before it); snapshots at window starts. */
static void quality_push(ecg_pre *p, uint16_t raw, uint32_t t)
{
    if (t >= 1u) {
        const int64_t d1 = (int64_t)raw - (int64_t)p->prev0;
        p->e1 += (uint64_t)(d1 * d1);
        p->run = raw == p->prev0 ? (p->run < ECG_QUALITY_FLAT_MAX_RUN_SAMPLES ? p->run + 1u : p->run) : 1u;
    } else {
        p->run = 1u;
    }
    if (t >= 2u) {
        const int64_t d2 = (int64_t)raw - 2 * (int64_t)p->prev0 + (int64_t)p->prev1;
        p->e2 += (uint64_t)(d2 * d2);
    }
    p->prev1 = p->prev0;
    p->prev0 = raw;
    if (p->run >= ECG_QUALITY_FLAT_MAX_RUN_SAMPLES) {
        p->long_run_end = t + 1u;
    }
    /* A window's first difference pairs its samples 0 and 1: e1 is taken after sample 0, e2 after 1. */
    if (t % p->hop == 0u) {
        p->snap1[(t / p->hop) % ECG_QUALITY_MAX_WINDOWS] = p->e1;
    }
    if (t >= 1u && (t - 1u) % p->hop == 0u) {
        p->snap2[((t - 1u) / p->hop) % ECG_QUALITY_MAX_WINDOWS] = p->e2;
    }
}

/* a * b > c * d, exactly (96-bit products). */
static int product_greater(uint64_t a, uint32_t b, uint64_t c, uint32_t d)
{
    const uint64_t ab_lo = (a & 0xFFFFFFFFu) * b, cd_lo = (c & 0xFFFFFFFFu) * d;
    const uint64_t ab_hi = (a >> 32) * b + (ab_lo >> 32), cd_hi = (c >> 32) * d + (cd_lo >> 32);
    return ab_hi != cd_hi ? ab_hi > cd_hi : (ab_lo & 0xFFFFFFFFu) > (cd_lo & 0xFFFFFFFFu);
}

#define QUALITY_SEGMENTS (ECG_WINDOW_SAMPLES / ECG_QUALITY_JUMP_SEGMENT_SAMPLES)

/* FLAT, NOISY or OK for the window just completed (its samples are in the ring from pos). */
static int32_t quality_status(const ecg_pre *p)
{
    const uint32_t start = p->count - ECG_WINDOW_SAMPLES;
    const uint32_t slot = (start / p->hop) % ECG_QUALITY_MAX_WINDOWS;
    const uint64_t e1 = p->e1 - p->snap1[slot], e2 = p->e2 - p->snap2[slot];
    float lo = p->ring[p->pos], hi = lo;
    double top = 0.0, med = 1.0;
    uint32_t k, i = p->pos;
#if QUALITY_SEGMENTS > 0
    double seg[QUALITY_SEGMENTS];
    uint32_t n;
    float s_lo = lo, s_hi = lo;
#endif
    for (k = 0; k < ECG_WINDOW_SAMPLES; ++k) {
        const float v = p->ring[i];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
#if QUALITY_SEGMENTS > 0
        if (k % ECG_QUALITY_JUMP_SEGMENT_SAMPLES == 0u) {
            s_lo = v;
            s_hi = v;
        }
        s_lo = v < s_lo ? v : s_lo;
        s_hi = v > s_hi ? v : s_hi;
        if (k % ECG_QUALITY_JUMP_SEGMENT_SAMPLES == ECG_QUALITY_JUMP_SEGMENT_SAMPLES - 1u && k / ECG_QUALITY_JUMP_SEGMENT_SAMPLES < QUALITY_SEGMENTS) {
            seg[k / ECG_QUALITY_JUMP_SEGMENT_SAMPLES] = (double)s_hi - (double)s_lo;
        }
#endif
        i = (i + 1u == ECG_WINDOW_SAMPLES) ? 0u : i + 1u;
    }
    if ((double)hi - (double)lo < p->flat_min_p2p ||
        p->long_run_end >= start + (uint32_t)ECG_QUALITY_FLAT_MAX_RUN_SAMPLES) {
        return ECG_STATUS_FLAT;
    }
    if (product_greater(e2, ECG_QUALITY_HF_RATIO2_DEN, e1, ECG_QUALITY_HF_RATIO2_NUM)) {
        return ECG_STATUS_NOISY;
    }
#if QUALITY_SEGMENTS > 0
    /* numpy.median: sort, the middle value or the mean of the two middle ones */
    for (k = 1; k < QUALITY_SEGMENTS; ++k) {
        const double v = seg[k];
        for (n = k; n > 0 && seg[n - 1] > v; --n) {
            seg[n] = seg[n - 1];
        }
        seg[n] = v;
    }
    top = seg[QUALITY_SEGMENTS - 1];
    med = QUALITY_SEGMENTS % 2 ? seg[QUALITY_SEGMENTS / 2] : (seg[QUALITY_SEGMENTS / 2 - 1] + seg[QUALITY_SEGMENTS / 2]) / 2.0;
    if (med > 0.0) {
        return top / med > ECG_QUALITY_NOISE_MAX_JUMP_RATIO_F64 ? ECG_STATUS_NOISY : ECG_STATUS_OK;
    }
    if (top != 0.0) {
        return ECG_STATUS_NOISY; /* the ratio is infinite */
    }
#endif
    /* no segments, or no signal at all: ratio 1 */
    (void)top;
    (void)med;
    return 1.0 > ECG_QUALITY_NOISE_MAX_JUMP_RATIO_F64 ? ECG_STATUS_NOISY : ECG_STATUS_OK;
}
#endif

static int32_t window_status(const ecg_pre *p)
{
    if (p->good_since > ecg_pre_window_start(p)) {
        return ECG_STATUS_LEAD_OFF;
    }
    if (p->rail_count > ECG_SATURATION_MAX_SAMPLES) {
        return ECG_STATUS_SATURATED;
    }
#if ECG_QUALITY_CHECKS
    return quality_status(p);
#else
    return ECG_STATUS_OK;
#endif
}

int ecg_pre_push(ecg_pre *p, uint16_t raw, int lead_off)
{
    const uint32_t i = p->pos;
    const uint8_t bit = (uint8_t)(1u << (i & 7u));
    const int rail = raw <= p->rail_low || raw >= p->rail_high;

#if ECG_QUALITY_CHECKS
    quality_push(p, raw, p->count);
#endif
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
    if (p->bad_hop || p->count < ECG_WINDOW_SAMPLES || (p->count - ECG_WINDOW_SAMPLES) % p->hop != 0u) {
        return 0;
    }
    p->status = window_status(p);
    return 1;
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
    return (int)p->status;
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
