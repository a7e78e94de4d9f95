/* The beat detector, sample by sample: see ecg_beats.h and pipeline/signal/beats.py (the rule);
 * tests/beat_stream.py is the Python statement this file follows step for step.
 *
 * Per sample (the hot path) only the filters, the integral and a deque of the integral's window
 * run: p = n - reach is a candidate when it is the last maximum of m over [p - reach, p + reach]
 * (m[p] >= every m before it, > every m after it), i.e. the front of a deque that keeps the window's
 * entries with strictly decreasing m. Candidates, the end of the learning span and the search-back
 * are rare and handled out of line (rare()).
 */
#include "ecg_beats.h"

#include <string.h>

#define RING ECG_BEATS_RING
#define DEQUE ECG_BEATS_DEQUE
#define WINDOW (2u * ECG_BEAT_REACH + 1u) /* samples of the candidate window */
#define NOT_DUE UINT64_MAX

#if defined(__GNUC__)
#define ECG_BEATS_COLD __attribute__((noinline, cold))
#else
#define ECG_BEATS_COLD
#endif

/* Beats made final by one push, written to the caller's array. */
typedef struct {
    uint32_t *out;
    int max;
    int count;
} beat_sink;

/* Ring position `back` samples before position k (back <= RING). */
static uint32_t ring_back(uint32_t k, uint32_t back)
{
    return k >= back ? k - back : k + RING - back;
}

void ecg_beats_init(ecg_beats *b)
{
    memset(b, 0, sizeof *b);
    ecg_beats_reset(b, 0);
}

void ecg_beats_reset(ecg_beats *b, uint32_t start)
{
    b->start = start;
    b->n = 0; /* the run's state is set up by its first good sample (run_begin) */
}

/* The run's first sample: before it, x, lp1 and lp are taken as settled on it and h, e as 0. */
static ECG_BEATS_COLD void run_begin(ecg_beats *b, int32_t x0)
{
    const int32_t lp10 = ECG_BEAT_LP_LEN * x0, lp0 = ECG_BEAT_LP_LEN * lp10;
    int i;
    for (i = 0; i < ECG_BEAT_HP_LEN; ++i) {
        b->lp[i] = lp0;
        if (i < ECG_BEAT_LP_LEN) {
            b->x[i] = x0;
            b->lp1[i] = lp10;
        }
    }
    b->lp1_sum = lp10;
    b->lp_sum = lp0;
    b->hp_sum = ECG_BEAT_HP_LEN * lp0;
    b->h1 = b->h2 = b->h3 = b->h4 = 0;
    b->m_now = 0;
    b->top = 0;
    b->search_at = NOT_DUE;
    b->dq_front = b->dq_back = 0;
    b->k = b->i_lp = b->i_hp = 0;
    b->n_learning = 0;
    b->live = b->have_last = b->have_kept = 0;
}

/* The floored mean of a buffer of non-negative integrals. */
static int64_t mean(const int32_t *v)
{
    uint64_t sum = 0;
    int i;
    for (i = 0; i < ECG_BEAT_BUFFER; ++i) {
        sum += (uint64_t)v[i];
    }
    return (int64_t)(sum / ECG_BEAT_BUFFER);
}

/* thr = noise + (qrs - noise) * th_num / 2^TH_SHIFT over the buffers' means; noise when qrs <= noise. */
static void update_threshold(ecg_beats *b)
{
    const int64_t q = mean(b->qrs), nz = mean(b->noise);
    b->thr = q > nz ? nz + (((q - nz) * ECG_BEAT_TH_NUM) >> ECG_BEAT_TH_SHIFT) : nz;
}

/* Replace the oldest entry of a buffer (the order of the entries does not matter: only means are taken). */
static void put(int32_t *v, uint8_t *oldest, int32_t value)
{
    v[*oldest] = value;
    *oldest = (uint8_t)(*oldest + 1u == ECG_BEAT_BUFFER ? 0u : *oldest + 1u);
}

static void emit(ecg_beats *b, beat_sink *sink, uint32_t sample)
{
    if (sink->count < sink->max) {
        sink->out[sink->count++] = sample;
    } else {
        b->dropped++;
    }
}

static void beat(ecg_beats *b, const ecg_beat_candidate *c, beat_sink *sink)
{
    const uint32_t p = c->p, where = c->where; /* c may be &b->kept */
    if (b->have_last) {
        b->rr[b->rr_i] = p - b->last;
        b->rr_i = (uint8_t)(b->rr_i + 1u == ECG_BEAT_BUFFER ? 0u : b->rr_i + 1u);
    }
    put(b->qrs, &b->qrs_i, c->m);
    b->last = p;
    b->last_slope = c->slope;
    b->have_last = 1;
    b->have_kept = 0;
    b->search_at = NOT_DUE; /* nothing kept */
    update_threshold(b);
    emit(b, sink, b->start + where);
}

/* At run sample `now`: the kept noise peak becomes a beat once the search-back interval has passed
 * (and it is above half the threshold: search_at says when, see arm_search_back). */
static void search_back(ecg_beats *b, uint32_t now, beat_sink *sink)
{
    if ((uint64_t)now >= b->search_at) {
        beat(b, &b->kept, sink);
    }
}

/* When the search-back takes the kept noise peak: rr_mean * sb_num / sb_den samples after the last
 * beat, if there is a last beat and a kept peak above half the threshold; never (NOT_DUE) otherwise.
 * Its inputs change only at a decision (a beat sets NOT_DUE: nothing is kept after it). */
static void arm_search_back(ecg_beats *b)
{
    uint64_t rr_sum = 0;
    int i;
    for (i = 0; i < ECG_BEAT_BUFFER; ++i) {
        rr_sum += b->rr[i];
    }
    b->search_at = b->have_last && b->have_kept && b->kept.m > b->thr / 2
                       ? (uint64_t)b->last + rr_sum / ECG_BEAT_BUFFER * ECG_BEAT_SB_NUM / ECG_BEAT_SB_DEN
                       : NOT_DUE;
}

static void decide(ecg_beats *b, const ecg_beat_candidate *c, beat_sink *sink)
{
    if (b->have_last && c->p - b->last <= (uint32_t)ECG_BEAT_REFRACTORY) {
        return;
    }
    if (c->m > b->thr &&
        !(b->have_last && c->p - b->last < (uint32_t)ECG_BEAT_T_WAVE && 2u * c->slope < b->last_slope)) { /* slopes < 2^31 */
        beat(b, c, sink);
        return;
    }
    put(b->noise, &b->noise_i, c->m);
    update_threshold(b);
    if (!b->have_kept || c->m > b->kept.m) {
        b->kept = *c;
        b->have_kept = 1;
    }
    arm_search_back(b); /* the threshold changed, maybe the kept peak too */
}

/* The learning span is over: thresholds from its largest integral, then its candidates in order. */
static void start_deciding(ecg_beats *b, beat_sink *sink)
{
    uint16_t i;
    b->live = 1;
    for (i = 0; i < ECG_BEAT_BUFFER; ++i) {
        b->qrs[i] = b->top;
        b->noise[i] = b->top / 8; /* an eighth of it; top >= 0 */
        b->rr[i] = ECG_BEAT_DEFAULT_RR;
    }
    b->qrs_i = b->noise_i = b->rr_i = 0;
    update_threshold(b);
    for (i = 0; i < b->n_learning; ++i) {
        search_back(b, ECG_BEAT_LEARN - 2 + ECG_BEAT_REACH, sink); /* as after the sample before this one */
        decide(b, &b->learning[i], sink);
    }
}

/* The candidate at run sample p: its integral m, slope (the largest e over [p - mwi_len, p]) and beat
 * sample (the first largest |h| there, moved back by the filters' delay, not before the run's start). */
static void candidate(const ecg_beats *b, uint32_t p, int32_t m, ecg_beat_candidate *c)
{
    const uint32_t lo = p >= ECG_BEAT_MWI_LEN ? p - ECG_BEAT_MWI_LEN : 0u;
    /* the ring's next position k is sample b->n; sample lo is b->n - lo samples before it */
    uint32_t pos = ring_back(b->k, b->n - lo), i, at = lo, best, slope;
    best = b->h_abs[pos];
    slope = b->e[pos];
    for (i = lo + 1u; i <= p; ++i) {
        pos = pos + 1u == RING ? 0u : pos + 1u;
        if (b->h_abs[pos] > best) {
            best = b->h_abs[pos];
            at = i;
        }
        if (b->e[pos] > slope) {
            slope = b->e[pos];
        }
    }
    c->m = m;
    c->p = p;
    c->slope = slope;
    c->where = at > ECG_BEAT_DELAY ? at - ECG_BEAT_DELAY : 0u;
}

/* What sample n (the run's, already counted in b->n) left to do besides the filters: a candidate
 * (is_candidate: p = n - reach), the end of the learning span, the search-back. */
static ECG_BEATS_COLD int rare(ecg_beats *b, uint32_t n, int is_candidate, uint32_t *beats_out, int max_out)
{
    beat_sink sink;
    sink.out = beats_out;
    sink.max = max_out;
    sink.count = 0;
    if (is_candidate) {
        ecg_beat_candidate c;
        candidate(b, n - ECG_BEAT_REACH, b->dq_m[b->dq_front], &c);
        if (b->live) {
            decide(b, &c, &sink);
        } else if (b->n_learning < ECG_BEAT_LEARN_CANDIDATES) { /* always: candidates are reach + 1 apart */
            b->learning[b->n_learning++] = c;
        }
    }
    if (n == ECG_BEAT_LEARN - 1 + ECG_BEAT_REACH) {
        start_deciding(b, &sink);
    }
    if (b->live) {
        search_back(b, n, &sink);
    }
    return sink.count;
}

int ecg_beats_push(ecg_beats *b, int32_t x, int lead_off, uint32_t *beats_out, int max_out)
{
    uint32_t n, k, e, i_lp, i_hp, c_pos, front, back;
    int32_t lp1, lp, h, d, m;
    int is_candidate;

    if (lead_off) {
        b->start += b->n + 1u; /* the run ends; the next good sample starts one */
        b->n = 0;
        return 0;
    }
    if (b->n == 0) {
        run_begin(b, x);
    }
    n = b->n;
    k = b->k;

    /* low-pass: two moving sums of lp_len; high-pass: hp_len times the centre minus the sum of hp_len */
    i_lp = b->i_lp;
    lp1 = b->lp1_sum + x - b->x[i_lp];
    b->lp1_sum = lp1;
    b->x[i_lp] = x;
    lp = b->lp_sum + lp1 - b->lp1[i_lp];
    b->lp_sum = lp;
    b->lp1[i_lp] = lp1;
    b->i_lp = i_lp + 1u == ECG_BEAT_LP_LEN ? 0u : i_lp + 1u;
    i_hp = b->i_hp;
    b->hp_sum += lp - b->lp[i_hp];
    b->lp[i_hp] = lp;
    c_pos = i_hp + (ECG_BEAT_HP_LEN + 1u) / 2u; /* lp[n - (hp_len - 1) / 2] */
    c_pos = c_pos >= ECG_BEAT_HP_LEN ? c_pos - ECG_BEAT_HP_LEN : c_pos;
    h = ECG_BEAT_HP_LEN * b->lp[c_pos] - b->hp_sum;
    b->i_hp = i_hp + 1u == ECG_BEAT_HP_LEN ? 0u : i_hp + 1u;

    /* slope d = 2 h[n] + h[n-1] - h[n-3] - 2 h[n-4], e = |d| >> e_shift; integral m = the sum of the last mwi_len e */
    d = 2 * h + b->h1 - b->h3 - 2 * b->h4;
    b->h4 = b->h3;
    b->h3 = b->h2;
    b->h2 = b->h1;
    b->h1 = h;
    e = (d < 0 ? 0u - (uint32_t)d : (uint32_t)d) >> ECG_BEAT_E_SHIFT;
    m = b->m_now + (int32_t)e;
    if (n >= ECG_BEAT_MWI_LEN) {
        m -= (int32_t)b->e[ring_back(k, ECG_BEAT_MWI_LEN)];
    }
    b->m_now = m;
    b->e[k] = e;
    b->h_abs[k] = h < 0 ? 0u - (uint32_t)h : (uint32_t)h;
    b->k = k + 1u == RING ? 0u : k + 1u;
    b->n = n + 1u;
    if (n < ECG_BEAT_LEARN && m > b->top) {
        b->top = m;
    }

    /* the deque of [n - 2 reach, n]: drop the sample that left the window, then the ones m outdoes */
    front = b->dq_front;
    back = b->dq_back;
    if (front != back && (uint16_t)(n - b->dq_n[front]) >= WINDOW) {
        front = front + 1u == DEQUE ? 0u : front + 1u;
        b->dq_front = front;
    }
    while (back != front) {
        const uint32_t prev = back == 0u ? DEQUE - 1u : back - 1u;
        if (b->dq_m[prev] > m) {
            break;
        }
        back = prev;
    }
    b->dq_m[back] = m;
    b->dq_n[back] = (uint16_t)n;
    b->dq_back = back + 1u == DEQUE ? 0u : back + 1u;

    /* p = n - reach is a candidate when it is the window's last maximum (the front) and m[p] > 0 */
    is_candidate = n >= ECG_BEAT_REACH && b->dq_n[front] == (uint16_t)(n - ECG_BEAT_REACH) && b->dq_m[front] > 0;
    if (is_candidate || n == ECG_BEAT_LEARN - 1 + ECG_BEAT_REACH || (uint64_t)n >= b->search_at) {
        return rare(b, n, is_candidate, beats_out, max_out);
    }
    return 0;
}

void ecg_beats_rhythm(const uint32_t *beat_log, uint32_t head, uint32_t n, uint32_t first, uint32_t window, int lead_off,
                      uint16_t *hr_x10, uint16_t *rr_irregularity)
{
    uint32_t rr[ECG_BEAT_LOG];
    uint32_t k = 0, i, at = head, prev = 0, have_prev = 0, sum = 0, m;
    uint64_t diffs = 0, hr, irr;
    *hr_x10 = ECG_BEAT_HR_UNKNOWN;
    *rr_irregularity = ECG_BEAT_RR_IRREGULARITY_UNKNOWN;
    if (lead_off || n > ECG_BEAT_LOG || head >= ECG_BEAT_LOG) {
        return;
    }
    for (i = 0; i < n; ++i, at = at + 1u == ECG_BEAT_LOG ? 0u : at + 1u) {
        const uint32_t sample = beat_log[at];
        if (sample - first >= window) { /* modulo 2^32: before first or at first + window and later */
            continue;
        }
        if (have_prev) {
            rr[k] = sample - prev;
            sum += rr[k];
            if (k > 0) {
                diffs += rr[k] > rr[k - 1] ? rr[k] - rr[k - 1] : rr[k - 1] - rr[k];
            }
            k++;
        }
        prev = sample;
        have_prev = 1;
    }
    if (k < 2) {
        return;
    }
    irr = 1000u * (uint64_t)k * diffs / ((uint64_t)(k - 1) * sum);
    /* the lower median: insertion sort (k < ECG_BEAT_LOG), entry (k - 1) / 2 */
    for (i = 1; i < k; ++i) {
        const uint32_t v = rr[i];
        uint32_t j = i;
        while (j > 0 && rr[j - 1] > v) {
            rr[j] = rr[j - 1];
            j--;
        }
        rr[j] = v;
    }
    m = rr[(k - 1) / 2];
    hr = (600u * (uint64_t)ECG_BEAT_FS + m / 2u) / m;
    *hr_x10 = (uint16_t)(hr < 1u ? 1u : hr > ECG_BEAT_HR_X10_MAX ? ECG_BEAT_HR_X10_MAX : hr);
    *rr_irregularity = (uint16_t)(irr > ECG_BEAT_RR_IRREGULARITY_MAX ? ECG_BEAT_RR_IRREGULARITY_MAX : irr);
}
