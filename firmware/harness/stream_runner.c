/* Streams raw ADC samples through the device core and writes every window it emits.
 *
 *   stream_runner [-n] [-b BEATS.bin] SAMPLES.bin OUT.bin ADC_MAX HOP [STATS.bin]
 *   stream_runner -c LOGITS.bin OUT.bin
 *
 * -n: preprocessing only (status, z-scores, model inputs), no inference: the status is the one
 * before the model (OK, LEAD_OFF, SATURATED, FLAT, NOISY).
 * -b: also write the beat detector's beats (ecg_core_beats_push, fed every sample before the
 * preprocessing): one uint32 LE absolute sample index per beat, in the order they were made final.
 * The detector runs (and is counted in STATS.bin) with or without -b.
 * -c: the confidence test alone: LOGITS.bin holds rows of ECG_NUM_LABELS int8 model outputs; OUT.bin
 * gets one byte per row, 1 when ecg_low_confidence() says the row is LOW_CONFIDENCE.
 * SAMPLES.bin: one uint32 LE per sample, bits 0-15 the ADC count, bit 16 the lead-off flag.
 * OUT.bin, one record per window: the result (harness_result.h: index, first sample, status, label,
 * heart rate and RR irregularity, logits); float32 z-scores and int8 model inputs (ECG_WINDOW_SAMPLES each; zero unless OK).
 * STATS.bin (uint64 LE): samples, windows, windows with status OK, instructions in ecg_pre_push,
 * instructions per OK window (ecg_core_classify: z-score + quantize + inference; with -n
 * ecg_pre_window: z-score + quantize) in total and at most, instructions in ecg_core_beats_push,
 * beats, the counter's own cost (two reads back to back: every figure above includes it once per
 * sample or window), sizeof(ecg_beats) and the most instructions one sample took in ecg_core_beats_push;
 * instruction counts are 0 where the platform has no counter.
 */
#include <stdlib.h>
#include <string.h>

#include "ecg_config.h"
#include "ecg_core.h"
#include "ecg_infer.h"
#include "harness_result.h"
#include "rt_io.h"

#define CHUNK 1024

static ecg_core core;
static uint32_t samples[CHUNK];
static rt_file *beats_file;
static uint64_t beats_seen;
static int beats_bad;

/* 0 on success (or when there is no beats file). */
static int close_beats(void)
{
    rt_file *f = beats_file;
    beats_file = NULL;
    return f != NULL ? rt_close(f) : 0;
}

static void on_beat(void *ctx, const uint32_t *beats, int count)
{
    uint8_t le[4];
    int i;
    (void)ctx;
    for (i = 0; i < count; ++i) {
        beats_seen++;
        harness_le32(le, beats[i]);
        if (beats_file != NULL && rt_write(beats_file, le, sizeof le) != sizeof le) {
            beats_bad = 1;
        }
    }
}
static float z[ECG_WINDOW_SAMPLES];
static int8_t q[ECG_WINDOW_SAMPLES];

static int fail(const char *what, const char *detail)
{
    return harness_fail("stream_runner", what, detail);
}

static int write_window(rt_file *out, const ecg_result *r)
{
    uint8_t head[HARNESS_RESULT_BYTES];
    harness_result_record(head, r);
    if (r->status != ECG_STATUS_OK && r->status != ECG_STATUS_LOW_CONFIDENCE) {
        memset(q, 0, sizeof q);
        memset(z, 0, sizeof z);
    }
    return rt_write(out, head, sizeof head) == sizeof head && rt_write(out, z, sizeof z) == sizeof z &&
           rt_write(out, q, sizeof q) == sizeof q;
}

static int confidence_main(const char *in_path, const char *out_path)
{
    int8_t row[ECG_NUM_LABELS];
    rt_file *in = rt_open(in_path, 0), *out;
    size_t n;
    if (in == NULL) {
        return fail("cannot open ", in_path);
    }
    out = rt_open(out_path, 1);
    if (out == NULL) {
        rt_close(in);
        return fail("cannot create ", out_path);
    }
    while ((n = rt_read(in, row, sizeof row)) == sizeof row) {
        const uint8_t low = (uint8_t)ecg_low_confidence(row, ECG_NUM_LABELS);
        if (rt_write(out, &low, 1) != 1) {
            rt_close(in);
            rt_close(out);
            return fail("cannot write ", out_path);
        }
    }
    rt_close(in);
    if (rt_close(out) != 0) {
        return fail("cannot write ", out_path);
    }
    return n == 0 ? 0 : fail(in_path, ": size is not a whole number of logit rows");
}

int harness_main(int argc, char **argv)
{
    rt_file *in, *out;
    uint64_t stats[11] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    size_t n, i;
    long adc_max, hop;
    int infer = 1;
    const char *beats_path = NULL;

    if (argc == 4 && strcmp(argv[1], "-c") == 0) {
        return confidence_main(argv[2], argv[3]);
    }
    for (;;) {
        if (argc > 1 && strcmp(argv[1], "-n") == 0) {
            infer = 0;
            argc--;
            argv++;
        } else if (argc > 2 && strcmp(argv[1], "-b") == 0) {
            beats_path = argv[2];
            argc -= 2;
            argv += 2;
        } else {
            break;
        }
    }
    if (argc != 5 && argc != 6) {
        return fail("usage: stream_runner [-n] [-b BEATS.bin] SAMPLES.bin OUT.bin ADC_MAX HOP [STATS.bin] | -c LOGITS.bin OUT.bin", "");
    }
    adc_max = strtol(argv[3], 0, 10);
    hop = strtol(argv[4], 0, 10);
    if (adc_max < 1 || adc_max > 65535 || hop < 1) {
        return fail("ADC_MAX must be 1..65535 and HOP positive", "");
    }
    if (ecg_core_init(&core, (uint16_t)adc_max, (uint32_t)hop) != 0 && (infer || core.pre.bad_hop)) {
        return fail("the device core failed to initialise: ", ecg_core_error(&core));
    }
    ecg_core_on_beat(&core, on_beat, NULL);
    stats[8] = rt_instructions();
    stats[8] = rt_instructions() - stats[8];
    stats[9] = sizeof core.beats;
    in = rt_open(argv[1], 0);
    if (in == NULL) {
        return fail("cannot open ", argv[1]);
    }
    out = rt_open(argv[2], 1);
    if (out == NULL) {
        rt_close(in);
        return fail("cannot create ", argv[2]);
    }
    if (beats_path != NULL && (beats_file = rt_open(beats_path, 1)) == NULL) {
        rt_close(in);
        rt_close(out);
        return fail("cannot create ", beats_path);
    }
    while ((n = rt_read(in, samples, sizeof samples)) > 0) {
        if (n % sizeof samples[0] != 0) {
            rt_close(in);
            rt_close(out);
            close_beats();
            return fail(argv[1], ": size is not a whole number of uint32 samples");
        }
        for (i = 0; i < n / sizeof samples[0]; ++i) {
            const uint32_t s = samples[i];
            const uint16_t raw = (uint16_t)(s & 0xffffu);
            const int lead_off = (int)((s >> 16) & 1u);
            uint64_t t0 = rt_instructions(), t1;
            ecg_result r;
            int done;
            (void)ecg_core_beats_push(&core, raw, lead_off);
            t1 = rt_instructions();
            stats[6] += t1 - t0;
            stats[10] = t1 - t0 > stats[10] ? t1 - t0 : stats[10];
            t0 = t1;
            done = ecg_pre_push(&core.pre, raw, lead_off);
            t1 = rt_instructions();
            stats[0]++;
            stats[3] += t1 - t0;
            if (!done) {
                continue;
            }
            if (!infer) {
                ecg_core_window_result(&core, &r);
                if (r.status == ECG_STATUS_OK) {
                    ecg_pre_window(&core.pre, ECG_INPUT_SCALE, ECG_INPUT_ZERO_POINT, q, z);
                }
            } else if (ecg_core_classify(&core, &r) < 0) {
                rt_close(in);
                rt_close(out);
                close_beats();
                return fail("inference failed: ", ecg_infer_error());
            }
            t0 = rt_instructions() - t1;
            if (infer && r.label >= 0) {
                ecg_pre_window(&core.pre, ECG_INPUT_SCALE, ECG_INPUT_ZERO_POINT, q, z);
            }
            stats[1]++;
            if (r.status == ECG_STATUS_OK || r.status == ECG_STATUS_LOW_CONFIDENCE) {
                stats[2]++;
                stats[4] += t0;
                stats[5] = t0 > stats[5] ? t0 : stats[5];
            }
            if (!write_window(out, &r)) {
                rt_close(in);
                rt_close(out);
                close_beats();
                return fail("cannot write ", argv[2]);
            }
        }
    }
    rt_close(in);
    if (rt_close(out) != 0) {
        close_beats();
        return fail("cannot write ", argv[2]);
    }
    if (close_beats() != 0 || beats_bad) {
        return fail("cannot write the beats file", "");
    }
    if (core.beats.dropped != 0) {
        return fail("beats were dropped: more than ECG_BEATS_MAX_PER_PUSH in one sample", "");
    }
    stats[7] = beats_seen;
    if (argc == 6) {
        rt_file *st = rt_open(argv[5], 1);
        if (st == NULL || rt_write(st, stats, sizeof stats) != sizeof stats || rt_close(st) != 0) {
            return fail("cannot write ", argv[5]);
        }
    }
    return 0;
}
