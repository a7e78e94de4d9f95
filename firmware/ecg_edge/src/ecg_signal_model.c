/* The built-in AD8232-like signal source: see ecg_signal_model.h. */
#include "ecg_signal_model.h"

/* One beat: five smooth bumps around the R peak (centre and half width in ms, amplitude in per mille
 * of the R wave). A bump is (1 - x^2)^2 for |x| < 1, x = (t - centre) / half width. */
typedef struct {
    int16_t centre_ms, half_ms, permille;
} wave;

static const wave waves[ECG_SIGNAL_WAVES] = {
    {-170, 50, 120},  /* P */
    {-35, 15, -100},  /* Q */
    {0, 25, 1000},    /* R */
    {35, 17, -220},   /* S */
    {260, 90, 250},   /* T */
};

#define WANDER_MILLIHZ 300u
#define RR_JITTER_PERCENT 4

static uint32_t next_random(ecg_signal *s)
{
    uint32_t x = s->rng; /* xorshift32 */
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    s->rng = x;
    return x;
}

/* Samples of `ms` milliseconds at the configured rate (rounded). */
static int32_t ms_to_samples(const ecg_signal *s, int32_t ms)
{
    const int32_t num = ms * (int32_t)s->cfg.rate_hz;
    return num >= 0 ? (num + 500) / 1000 : -((-num + 500) / 1000);
}

/* Microvolts of one beat `t` samples after its R peak (t may be negative). */
static int32_t beat_uv(const ecg_signal *s, int32_t t)
{
    int32_t sum = 0;
    int i;
    for (i = 0; i < ECG_SIGNAL_WAVES; i++) {
        const int32_t w = s->wave_half[i];
        const int32_t d = t - s->wave_centre[i];
        if (d > -w && d < w) {
            const int32_t u = d * d * 4096 / (w * w); /* x^2, Q12 */
            const int32_t v = 4096 - u;               /* 1 - x^2 */
            const int32_t bump = v * v >> 12;         /* (1 - x^2)^2, Q12 */
            sum += (int32_t)s->wave_uv[i] * bump / 4096;
        }
    }
    return sum;
}

/* sin(2 pi phase / 2^32) in Q15 by the parabola 4x(1 - |x|), x in [-1, 1) (smooth, within 6 %). */
static int32_t sine_q15(uint32_t phase)
{
    const int32_t x = (int32_t)(int16_t)(uint16_t)(phase >> 16); /* Q15, [-1, 1) */
    const int32_t ax = x < 0 ? -x : x;
    return x * (32768 - ax) >> 13;
}

static int32_t next_rr(ecg_signal *s)
{
    const int32_t k = s->rr_mean * RR_JITTER_PERCENT / 100;
    int32_t rr = s->rr_mean;
    if (k > 0) {
        rr += (int32_t)(next_random(s) % (uint32_t)(2 * k + 1)) - k;
    }
    return rr;
}

void ecg_signal_default_config(ecg_signal_config *c, uint16_t rate_hz)
{
    c->rate_hz = rate_hz;
    c->heart_rate_bpm = 72;
    c->adc_bits = 12;
    c->r_amplitude_uv = 1200;
    c->wander_uv = 150;
    c->noise_uv = 20;
    c->lead_off_every_s = 0;
    c->lead_off_for_s = 0;
    c->seed = 1;
}

void ecg_signal_init(ecg_signal *s, const ecg_signal_config *c)
{
    int i;
    s->cfg = *c;
    if (s->cfg.rate_hz < 50) {
        s->cfg.rate_hz = 50;
    }
    if (s->cfg.heart_rate_bpm < 20) {
        s->cfg.heart_rate_bpm = 20;
    } else if (s->cfg.heart_rate_bpm > 250) {
        s->cfg.heart_rate_bpm = 250;
    }
    if (s->cfg.adc_bits < 8) {
        s->cfg.adc_bits = 8;
    } else if (s->cfg.adc_bits > 15) {
        s->cfg.adc_bits = 15;
    }
    if (s->cfg.r_amplitude_uv > 5000) {
        s->cfg.r_amplitude_uv = 5000;
    }
    if (s->cfg.wander_uv > 5000) {
        s->cfg.wander_uv = 5000;
    }
    if (s->cfg.noise_uv > 1000) {
        s->cfg.noise_uv = 1000;
    }
    s->rng = s->cfg.seed != 0 ? s->cfg.seed : 1u;
    s->rr_mean = (int32_t)s->cfg.rate_hz * 60 / (int32_t)s->cfg.heart_rate_bpm;
    s->since_r = s->rr_mean / 2;
    s->to_r = s->rr_mean - s->since_r;
    s->wander_phase = 0;
    /* 2^32 * f / rate, f = WANDER_MILLIHZ / 1000 Hz */
    s->wander_step = (uint32_t)(((uint64_t)WANDER_MILLIHZ << 32) / (1000u * (uint64_t)s->cfg.rate_hz));
    for (i = 0; i < ECG_SIGNAL_WAVES; i++) {
        const int32_t w = ms_to_samples(s, waves[i].half_ms);
        s->wave_half[i] = (int16_t)(w < 1 ? 1 : w);
        s->wave_centre[i] = (int16_t)ms_to_samples(s, waves[i].centre_ms);
        s->wave_uv[i] = (int16_t)((int32_t)s->cfg.r_amplitude_uv * waves[i].permille / 1000);
    }
    s->adc_max = (uint16_t)((1u << s->cfg.adc_bits) - 1u);
    s->counts_mid = (int32_t)1 << (s->cfg.adc_bits - 1);
    s->cycle_pos = 0;
    if (s->cfg.lead_off_every_s > 0 && s->cfg.lead_off_for_s > 0 && s->cfg.lead_off_for_s < s->cfg.lead_off_every_s) {
        s->cycle_len = (uint32_t)s->cfg.lead_off_every_s * s->cfg.rate_hz;
        s->off_from = (uint32_t)(s->cfg.lead_off_every_s - s->cfg.lead_off_for_s) * s->cfg.rate_hz;
    } else {
        s->cycle_len = 0;
        s->off_from = 0;
    }
}

uint16_t ecg_signal_next(ecg_signal *s, int *lead_off)
{
    int32_t uv, counts, noise;
    uint32_t r;
    int off = 0;

    if (s->to_r <= 0) {
        s->since_r = 0;
        s->to_r = next_rr(s);
    }
    uv = beat_uv(s, s->since_r) + beat_uv(s, -s->to_r);
    s->since_r++;
    s->to_r--;

    uv += (int32_t)s->cfg.wander_uv * sine_q15(s->wander_phase) / 32768;
    s->wander_phase += s->wander_step;

    r = next_random(s);
    noise = (int32_t)(r & 0xFFu) + (int32_t)((r >> 8) & 0xFFu) - 255; /* triangular, +-255 */
    uv += noise * (int32_t)s->cfg.noise_uv / 256;

    if (s->cycle_len > 0) {
        off = s->cycle_pos >= s->off_from;
        if (++s->cycle_pos == s->cycle_len) {
            s->cycle_pos = 0;
        }
    }
    if (lead_off != 0) {
        *lead_off = off;
    }
    if (off) {
        return s->adc_max; /* the AD8232 output rails high with an electrode off */
    }
    /* 2^bits / 3 counts per mV: 2^bits / 3000 per microvolt, rounded half away from zero */
    counts = uv * ((int32_t)1 << s->cfg.adc_bits);
    counts = counts >= 0 ? (counts + 1500) / 3000 : -((-counts + 1500) / 3000);
    counts += s->counts_mid;
    if (counts < 0) {
        counts = 0;
    } else if (counts > (int32_t)s->adc_max) {
        counts = s->adc_max;
    }
    return (uint16_t)counts;
}
