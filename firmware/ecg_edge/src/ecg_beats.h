/* The device's beat detector: R peaks in the raw ADC counts, sample by sample, in integers only.
 *
 * The rule is pipeline/signal/beats.py's (its docstring states it; tests/beat_stream.py is the same
 * rule written sample by sample, and this file follows it step for step): a triangular low-pass and a
 * moving-average high-pass, |slope|, a moving integral m, candidates (the largest m within
 * ECG_BEAT_REACH on either side), a learning span that sets the thresholds, Hamilton and Tompkins'
 * decision with refractory period, T-wave test and search-back. Every parameter is a generated
 * ECG_BEAT_* macro of ecg_config.h (pipeline.signal.beats.BeatConfig, written by export/c_arrays.py).
 *
 * Arithmetic: counts 0..65535 (16 bits); the filters and |slope| in 32 bits (|slope| < 2^31, checked
 * below), the integral, the QRS and noise buffers and the threshold in int64; no floating point;
 * divisions and shifts on non-negative values only. No heap: the candidate deque holds the window of 2 reach + 1 samples, the e and |h| rings
 * reach + mwi_len + 1 samples (ECG_BEAT_HISTORY is the larger of the two), the learning span's
 * candidates ECG_BEAT_LEARN_CANDIDATES entries.
 *
 * A lead-off sample ends the run of good samples: the next good sample starts a new run from
 * nothing (the filters settle on it, thresholds are learnt again). Sample indices are 32-bit and
 * absolute: ecg_beats_reset() says which absolute index the next sample has.
 */
#ifndef ECG_BEATS_H
#define ECG_BEATS_H

#include <stdint.h>

#include "ecg_generated.h"

#if !defined(ECG_BEAT_HISTORY) || !defined(ECG_BEAT_LEARN_CANDIDATES) || !defined(ECG_BEAT_BUFFER)
#error "ecg_config.h has no ECG_BEAT_* parameters: generate it again with this version of ecg-export firmware"
#endif
#if ECG_BEAT_FS != ECG_SAMPLE_RATE_HZ
#error "the beat detector's parameters are in samples at ECG_BEAT_FS, which differs from the device rate ECG_SAMPLE_RATE_HZ"
#endif
#if ECG_BEAT_HISTORY < ECG_BEAT_REACH + ECG_BEAT_MWI_LEN + 1 || ECG_BEAT_HISTORY < 2 * ECG_BEAT_REACH + 1 || 2 * ECG_BEAT_REACH + 2 > 65535
#error "ECG_BEAT_HISTORY must cover reach + mwi_len + 1 and 2 reach + 1 samples (and the deque index with 16 bits)"
#endif
#if ECG_BEAT_HP_LEN % 2 != 1 || ECG_BEAT_LP_LEN < 1 || ECG_BEAT_MWI_LEN < 1 || ECG_BEAT_BUFFER > 255 || ECG_BEAT_LEARN_CANDIDATES > 65535
#error "unusable ECG_BEAT_* parameters (hp_len must be odd)"
#endif
/* Counts 0..65535: low-passed values up to lp_len^2 65535, the high-pass's terms up to hp_len times
 * that, |h| <= (hp_len - 1) lp_len^2 65535 and the slope's partial sums up to 6 |h|: all int32. */
#if (ECG_BEAT_HP_LEN + 0LL) * ECG_BEAT_LP_LEN * ECG_BEAT_LP_LEN * 65535LL * 6LL > 2147483647LL
#error "ECG_BEAT_HP_LEN and ECG_BEAT_LP_LEN are too long for the int32 filters"
#endif

/* Beats one ecg_beats_push() can make final: the learning span's replay decides every candidate it
 * holds at once; afterwards a sample makes at most one. */
#if (ECG_BEAT_HP_LEN - 1LL) * ECG_BEAT_LP_LEN * ECG_BEAT_LP_LEN * 65535LL * 6LL / (1LL << ECG_BEAT_E_SHIFT) * ECG_BEAT_MWI_LEN > 2147483647LL
#error "ECG_BEAT_MWI_LEN is too long (or ECG_BEAT_E_SHIFT too small) for the int32 integral"
#endif

#define ECG_BEATS_MAX_PER_PUSH ECG_BEAT_LEARN_CANDIDATES

/* Entries of the candidate deque: a window of 2 reach + 1 samples, and one to tell full from empty. */
#define ECG_BEATS_DEQUE (2 * ECG_BEAT_REACH + 2)
/* Samples of e and |h| kept: a candidate's [p - mwi_len, p] when it is found, reach samples later.
 * (BeatConfig.history is the larger of this and the window 2 reach + 1, which the deque covers.) */
#define ECG_BEATS_RING (ECG_BEAT_REACH + ECG_BEAT_MWI_LEN + 1)

typedef struct {
    int32_t m;      /* the integral at the candidate */
    uint32_t p;     /* its sample within the run */
    uint32_t where; /* its beat's sample within the run (largest |h| near it, moved back by the delay) */
    uint32_t slope; /* the largest |slope| over [p - mwi_len, p] */
} ecg_beat_candidate;

/* Members by size (64, 32, 16, 8 bits): no padding inside; export/ram.py counts them the same way. */
typedef struct {
    int64_t thr;                   /* the threshold of the buffers as they are */
    uint64_t search_at;            /* run sample from which the search-back takes the kept peak (all ones: never) */
    int32_t dq_m[ECG_BEATS_DEQUE]; /* deque over the last 2 reach + 1 samples: integrals, decreasing */
    int32_t m_now;                 /* the integral at the last sample (running sum) */
    int32_t top;                   /* largest integral of the learning span */
    int32_t qrs[ECG_BEAT_BUFFER], noise[ECG_BEAT_BUFFER]; /* the last integrals of beats and of noise peaks */
    ecg_beat_candidate learning[ECG_BEAT_LEARN_CANDIDATES]; /* candidates of the learning span */
    ecg_beat_candidate kept;       /* the largest noise peak since the last beat (have_kept) */
    uint32_t e[ECG_BEATS_RING];       /* |slope| per sample (ring, position k) */
    uint32_t h_abs[ECG_BEATS_RING];   /* |high-passed| per sample (ring, position k) */
    int32_t x[ECG_BEAT_LP_LEN], lp1[ECG_BEAT_LP_LEN]; /* last inputs and first moving sums (ring, i_lp) */
    int32_t lp[ECG_BEAT_HP_LEN];      /* last low-passed values (ring, i_hp) */
    int32_t lp1_sum, lp_sum, hp_sum;
    int32_t h1, h2, h3, h4;           /* h[n-1] .. h[n-4] */
    uint32_t rr[ECG_BEAT_BUFFER];
    uint32_t start;      /* absolute index of the run's first sample */
    uint32_t n;          /* samples of the run so far (0: the next good sample starts it) */
    uint32_t last;       /* the last beat's candidate sample (have_last) */
    uint32_t last_slope;
    uint32_t dropped;    /* beats that did not fit the caller's array (see ecg_beats_push) */
    uint32_t dq_front, dq_back; /* the deque's oldest entry and the next free one (equal: empty) */
    uint32_t k;          /* ring position of the next sample in e and h_abs */
    uint32_t i_lp, i_hp; /* positions in x/lp1 and lp */
    uint16_t dq_n[ECG_BEATS_DEQUE]; /* the deque's run samples, modulo 2^16 */
    uint16_t n_learning;
    uint8_t qrs_i, noise_i, rr_i;
    uint8_t live;        /* the learning span is over: candidates are decided as they come */
    uint8_t have_last, have_kept;
} ecg_beats;

/* A new detector; its first sample is absolute sample 0. */
void ecg_beats_init(ecg_beats *b);

/* A new run: forget everything; the next sample pushed is absolute sample `start`. */
void ecg_beats_reset(ecg_beats *b, uint32_t start);

/* One sample (ADC counts 0..65535) and its lead-off flag. Writes the beats this sample made final
 * (absolute sample indices, in the order the rule finds them) to beats_out and returns how many.
 * At most max_out are written: ECG_BEATS_MAX_PER_PUSH always suffices; beats that did not fit are
 * counted in b->dropped and lost. */
int ecg_beats_push(ecg_beats *b, int32_t x, int lead_off, uint32_t *beats_out, int max_out);

/* The rhythm figures of the window [first, first + window) (pipeline.signal.beats.window_rhythm): heart
 * rate in bpm x 10 from the lower median RR, and the RR irregularity in per mille, over the RR intervals
 * between consecutive beats inside the window among the n beats of the ring beat_log[ECG_BEAT_LOG] that start
 * at beat_log[head] (increasing; n <= ECG_BEAT_LOG). Both
 * unknown (ECG_BEAT_HR_UNKNOWN, ECG_BEAT_RR_IRREGULARITY_UNKNOWN) with fewer than 2 intervals or when
 * lead_off (the window's status is LEAD_OFF). Integers only: 64-bit sums, no floating point. */
void ecg_beats_rhythm(const uint32_t *beat_log, uint32_t head, uint32_t n, uint32_t first, uint32_t window, int lead_off,
                      uint16_t *hr_x10, uint16_t *rr_irregularity);

#endif /* ECG_BEATS_H */
