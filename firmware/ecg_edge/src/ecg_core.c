#include "ecg_core.h"

#include "ecg_infer.h"

int ecg_core_init(ecg_core *c, uint16_t adc_max, uint32_t hop)
{
    const int pre_ok = ecg_pre_init(&c->pre, adc_max, hop) == 0;
#if ECG_BEATS
    ecg_beats_init(&c->beats);
    c->beat_log_n = 0;
    c->beat_log_head = 0;
    c->on_beat = 0;
    c->beat_ctx = 0;
#endif
    c->ready = pre_ok && ecg_infer_init() == 0;
    return c->ready ? 0 : -1;
}

const char *ecg_core_error(const ecg_core *c)
{
    return c->pre.bad_hop ? "hop too small for the quality checks (ECG_QUALITY_MAX_WINDOWS windows in flight)" : ecg_infer_error();
}

int ecg_low_confidence(const int8_t *logits, int n)
{
    const uint64_t one = (uint64_t)1u << ECG_CONFIDENCE_BITS, half = one >> 1;
    const float threshold = ECG_CONFIDENCE_THRESHOLD;
    uint64_t sum = 0;
    int32_t top;
    int i;
    if (!(threshold > 0.0f) || n <= 0) {
        return 0;
    }
    top = logits[ecg_argmax(logits, n)];
    /* sum_i w[top - q_i], w[d] = 2^BITS exp(-scale d) by pipeline.signal.quality.confidence_weights' recurrence */
    for (i = 0; i < n; ++i) {
        uint32_t d = (uint32_t)(top - (int32_t)logits[i]);
        uint64_t w = one;
        while (d-- > 0u && w != 0u) {
            w = (w * ECG_CONFIDENCE_DECAY + half) >> ECG_CONFIDENCE_BITS;
        }
        sum += w;
    }
    return (double)sum > (double)one / (double)threshold;
}

int32_t ecg_argmax(const int8_t *logits, int n)
{
    int32_t best = 0;
    int i;
    for (i = 1; i < n; ++i) {
        if (logits[i] > logits[best]) {
            best = i;
        }
    }
    return best;
}

int ecg_core_push(ecg_core *c, uint16_t raw, int lead_off, ecg_result *r)
{
    (void)ecg_core_beats_push(c, raw, lead_off);
    return ecg_pre_push(&c->pre, raw, lead_off) ? ecg_core_classify(c, r) : 0;
}

#if ECG_BEATS
void ecg_core_on_beat(ecg_core *c, ecg_beat_fn fn, void *ctx)
{
    c->on_beat = fn;
    c->beat_ctx = ctx;
}

int ecg_core_beats_push(ecg_core *c, uint16_t raw, int lead_off)
{
    uint32_t beats[ECG_BEATS_MAX_PER_PUSH];
    const int n = ecg_beats_push(&c->beats, (int32_t)raw, lead_off, beats, ECG_BEATS_MAX_PER_PUSH);
    int i;
    for (i = 0; i < n; ++i) {
        uint32_t at = c->beat_log_head + c->beat_log_n;
        if (c->beat_log_n < ECG_BEAT_LOG) {
            c->beat_log_n++;
        } else {
            c->beat_log_head = c->beat_log_head + 1u == ECG_BEAT_LOG ? 0u : c->beat_log_head + 1u;
        }
        c->beat_log[at >= ECG_BEAT_LOG ? at - ECG_BEAT_LOG : at] = beats[i];
    }
    if (n > 0 && c->on_beat != 0) {
        c->on_beat(c->beat_ctx, beats, n);
    }
    return n;
}

void ecg_core_beats_restart(ecg_core *c)
{
    ecg_beats_reset(&c->beats, 0);
    c->beat_log_n = 0;
    c->beat_log_head = 0;
}

/* The window's rhythm figures from the beat log (pipeline.signal.beats.window_rhythms). */
static void window_rhythm(const ecg_core *c, ecg_result *r)
{
    ecg_beats_rhythm(c->beat_log, c->beat_log_head, c->beat_log_n, r->first_sample, ECG_WINDOW_SAMPLES, r->status == ECG_STATUS_LEAD_OFF, &r->hr_x10,
                     &r->rr_irregularity);
}
#else
void ecg_core_on_beat(ecg_core *c, ecg_beat_fn fn, void *ctx)
{
    (void)c;
    (void)fn;
    (void)ctx;
}

int ecg_core_beats_push(ecg_core *c, uint16_t raw, int lead_off)
{
    (void)c;
    (void)raw;
    (void)lead_off;
    return 0;
}

void ecg_core_beats_restart(ecg_core *c)
{
    (void)c;
}

static void window_rhythm(const ecg_core *c, ecg_result *r)
{
    (void)c;
    r->hr_x10 = ECG_BEAT_HR_UNKNOWN;
    r->rr_irregularity = ECG_BEAT_RR_IRREGULARITY_UNKNOWN;
}
#endif

void ecg_core_window_result(const ecg_core *c, ecg_result *r)
{
    int i;
    r->window_index = ecg_pre_window_index(&c->pre);
    r->first_sample = ecg_pre_window_start(&c->pre);
    r->status = ecg_pre_status(&c->pre);
    r->label = -1;
    for (i = 0; i < ECG_NUM_LABELS; ++i) {
        r->logits[i] = 0;
    }
    window_rhythm(c, r);
}

int ecg_core_classify(ecg_core *c, ecg_result *r)
{
    ecg_core_window_result(c, r);
    if (r->status != ECG_STATUS_OK) {
        return 1;
    }
    if (!c->ready) {
        return -1;
    }
    ecg_pre_window(&c->pre, ECG_INPUT_SCALE, ECG_INPUT_ZERO_POINT, ecg_infer_input(), 0);
    if (ecg_infer_run(r->logits) != 0) {
        return -1;
    }
    r->label = ecg_argmax(r->logits, ECG_NUM_LABELS);
    if (ecg_low_confidence(r->logits, ECG_NUM_LABELS)) {
        r->status = ECG_STATUS_LOW_CONFIDENCE;
    }
    return 1;
}
