/* The device pipeline: raw ADC sample + lead-off flag in, a result every hop out.
 * Preprocessing (ecg_preprocess.h) writes the quantized window straight into the model's input;
 * the inference backend (ecg_infer.h) classifies windows whose status is ECG_STATUS_OK. A classified
 * window whose top softmax probability is below ECG_CONFIDENCE_THRESHOLD becomes
 * ECG_STATUS_LOW_CONFIDENCE and keeps its logits and label ("uncertain, leaning to label").
 * The beat detector (ecg_beats.h) sees the same samples and lead-off flags (ecg_core_beats_push,
 * which ecg_core_push calls), reports each beat it makes final to a callback and keeps the last
 * ECG_BEAT_LOG of them, from which every result gets its window's heart rate and RR irregularity
 * (pipeline.signal.beats.window_rhythms). ECG_BEATS 0 (ecg_board.h) builds the core without the
 * detector: no beats, both figures unknown.
 */
#ifndef ECG_CORE_H
#define ECG_CORE_H

#include <stdint.h>

#include "ecg_board.h"
#include "ecg_generated.h"
#if ECG_BEATS
#include "ecg_beats.h"
#endif
#include "ecg_preprocess.h"

typedef struct {
    uint32_t window_index;
    uint32_t first_sample;
    int32_t status;                 /* ECG_STATUS_* */
    int32_t label;                  /* argmax of logits (first on ties), -1 when not classified */
    int8_t logits[ECG_NUM_LABELS];  /* int8 model outputs; zero when not classified (status OK or LOW_CONFIDENCE: classified) */
    uint16_t hr_x10;                /* the window's heart rate, bpm x 10; ECG_BEAT_HR_UNKNOWN */
    uint16_t rr_irregularity;       /* its RR irregularity, per mille; ECG_BEAT_RR_IRREGULARITY_UNKNOWN */
} ecg_result;

/* The beats one sample made final (1 .. ECG_BEATS_MAX_PER_PUSH, increasing): absolute sample indices
 * (samples pushed since init or the last ecg_core_beats_restart). */
typedef void (*ecg_beat_fn)(void *ctx, const uint32_t *samples, int count);

typedef struct {
    ecg_pre pre;
#if ECG_BEATS
    ecg_beats beats;
    uint32_t beat_log[ECG_BEAT_LOG]; /* the last decided beats, oldest first from beat_log_head */
    uint32_t beat_log_n, beat_log_head;
    ecg_beat_fn on_beat; /* NULL: beats are found but not reported */
    void *beat_ctx;
#endif
    int ready;
} ecg_core;

/* 0 on success (the inference backend loaded its model); see ecg_core_error() otherwise. */
int ecg_core_init(ecg_core *c, uint16_t adc_max, uint32_t hop);

/* Why ecg_core_init() failed: the hop (too small for the quality checks) or ecg_infer_error(). */
const char *ecg_core_error(const ecg_core *c);

/* Push one sample (beat detector, then preprocessing); returns 1 and fills *r when a window completed
 * (classified or not), 0 otherwise, -1 when inference failed. */
int ecg_core_push(ecg_core *c, uint16_t raw, int lead_off, ecg_result *r);

/* Report beats to fn(ctx, samples, count) from now on, once per sample that made any final (NULL:
 * stop). ecg_core_init() sets none. */
void ecg_core_on_beat(ecg_core *c, ecg_beat_fn fn, void *ctx);

/* The beat detector's part of ecg_core_push(), for a caller that pushes with ecg_pre_push() itself:
 * feed it every sample with its lead-off flag (a lost sample counts as lead-off, as for the
 * preprocessing). Calls the beat callback for each beat this sample made final; returns their number. */
int ecg_core_beats_push(ecg_core *c, uint16_t raw, int lead_off);

/* The sample counter starts again at 0 (with ecg_pre_init() when the pipeline restarts). */
void ecg_core_beats_restart(ecg_core *c);

/* The second half of ecg_core_push(), for a caller that pushed with ecg_pre_push() itself and got 1:
 * status, quantized window into the model input, inference. Same return values. */
int ecg_core_classify(ecg_core *c, ecg_result *r);

/* Fill index, first sample, status and rhythm of the window just completed; no logits, label -1. */
void ecg_core_window_result(const ecg_core *c, ecg_result *r);

/* Index of the largest logit, the first one on ties (numpy.argmax). */
int32_t ecg_argmax(const int8_t *logits, int n);

/* 1 when the top softmax probability of these int8 outputs is below ECG_CONFIDENCE_THRESHOLD
 * (never with a threshold of 0): pipeline.signal.quality.low_confidence_int8, the same integer test. */
int ecg_low_confidence(const int8_t *logits, int n);

#endif /* ECG_CORE_H */
