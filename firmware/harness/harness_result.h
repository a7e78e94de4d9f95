/* One window's result as stream_runner and device_image write it (export/crosscheck.py's
 * result_dtype reads it): int32 index, first sample, status, label; uint16 hr_x10, rr_irregularity;
 * the int8 logits padded to 4 bytes; all little-endian. */
#ifndef HARNESS_RESULT_H
#define HARNESS_RESULT_H

#include "ecg_core.h"
#include "harness_util.h"

#define HARNESS_LOGIT_BYTES ((ECG_NUM_LABELS + 3) / 4 * 4)
#define HARNESS_RESULT_BYTES (20 + HARNESS_LOGIT_BYTES)

static inline void harness_result_record(uint8_t *out, const ecg_result *r)
{
    memset(out, 0, HARNESS_RESULT_BYTES);
    harness_le32(out, r->window_index);
    harness_le32(out + 4, r->first_sample);
    harness_le32(out + 8, (uint32_t)r->status);
    harness_le32(out + 12, (uint32_t)r->label);
    harness_le32(out + 16, (uint32_t)r->hr_x10 | ((uint32_t)r->rr_irregularity << 16));
    memcpy(out + 20, r->logits, ECG_NUM_LABELS);
}

#endif /* HARNESS_RESULT_H */
