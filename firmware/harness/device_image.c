/* The firmware's device path as one image, sized as a board would hold it: raw samples in,
 * results out, nothing else kept (the serial link and the timer come with the sketch). Its
 * Cortex-M4 build gives the flash and RAM figures of a complete image with the bundle's model.
 *
 *   device_image SAMPLES.bin RESULTS.bin ADC_MAX HOP
 *
 * SAMPLES.bin as stream_runner's; RESULTS.bin one result record per window (harness_result.h).
 */
#include <stdlib.h>
#include <string.h>

#include "ecg_config.h"
#include "ecg_core.h"
#include "ecg_infer.h"
#include "harness_result.h"
#include "rt_io.h"

#define CHUNK 64

static ecg_core core;

static int fail(const char *what, const char *detail)
{
    return harness_fail("device_image", what, detail);
}

int harness_main(int argc, char **argv)
{
    uint32_t samples[CHUNK];
    uint8_t rec[HARNESS_RESULT_BYTES];
    rt_file *in, *out;
    size_t n, i;
    long adc_max, hop;
    int bad = 0;

    if (argc != 5) {
        return fail("usage: device_image SAMPLES.bin RESULTS.bin ADC_MAX HOP", "");
    }
    adc_max = strtol(argv[3], 0, 10);
    hop = strtol(argv[4], 0, 10);
    if (adc_max < 1 || adc_max > 65535 || hop < 1) {
        return fail("ADC_MAX must be 1..65535 and HOP positive", "");
    }
    if (ecg_core_init(&core, (uint16_t)adc_max, (uint32_t)hop) != 0) {
        return fail("the device core failed to initialise: ", ecg_core_error(&core));
    }
    in = rt_open(argv[1], 0);
    out = in != NULL ? rt_open(argv[2], 1) : NULL;
    if (out == NULL) {
        if (in != NULL) {
            rt_close(in);
        }
        return fail("cannot open the sample or result file: ", in != NULL ? argv[2] : argv[1]);
    }
    while (!bad && (n = rt_read(in, samples, sizeof samples)) > 0) {
        for (i = 0; i < n / sizeof samples[0]; ++i) {
            ecg_result r;
            const int got = ecg_core_push(&core, (uint16_t)(samples[i] & 0xffffu), (int)((samples[i] >> 16) & 1u), &r);
            if (got < 0) {
                bad = 1;
                break;
            }
            if (got == 1) {
                harness_result_record(rec, &r);
                bad = rt_write(out, rec, sizeof rec) != sizeof rec;
            }
        }
    }
    rt_close(in);
    if (rt_close(out) != 0 || bad) {
        return fail("failed: ", bad ? ecg_infer_error() : argv[2]);
    }
    return 0;
}
