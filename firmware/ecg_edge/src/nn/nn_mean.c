/* MEAN of int8 over a contiguous block of axes, as TFLM's EvalIntegerMean computes it: with equal
 * input and output scale and zero point, reference_ops::Mean (int32 sum / count, truncating);
 * otherwise reference_ops::QuantizedMeanOrSum (the sum minus zp_in * count, requantized with the
 * multiplier into which 1/count is folded). With the DSP instructions (and not NN_FORCE_PORTABLE)
 * four channels are summed at once (the same integer sums). */
#include "nn_kernels.h"

#include "nn_dsp.h"
#include "nn_fixedpoint.h"

/* The sums of channels i .. i + 3 over `count` rows `inner` apart, four lanes at a time (SXTAB16 on
 * halfword lanes; a lane gains at most 128 per row, so a run of 255 rows stays inside int16). */
static void nn_sum4(const int8_t *in, int32_t count, int32_t inner, int32_t *sum)
{
    int32_t c = 0, k;
    for (k = 0; k < 4; ++k) {
        sum[k] = 0;
    }
    while (c < count) {
        const int32_t stop = nn_min32(count, c + 255);
        uint32_t even = 0, odd = 0; /* lanes: channels (i, i + 2) and (i + 1, i + 3) */
        for (; c < stop; ++c) {
            const uint32_t v = nn_read_u32(in + (size_t)c * (size_t)inner);
            even = nn_sxtab16(even, v);
            odd = nn_sxtab16_ror8(odd, v);
        }
        sum[0] += nn_lo16(even);
        sum[1] += nn_lo16(odd);
        sum[2] += nn_hi16(even);
        sum[3] += nn_hi16(odd);
    }
}

void nn_mean_s8(const nn_mean_params *p, const int8_t *input, int8_t *output)
{
    int32_t o, i, c;
    for (o = 0; o < p->outer; ++o) {
        const int8_t *in_o = input + (size_t)o * (size_t)p->count * (size_t)p->inner;
        int32_t sums[4];
        for (i = 0; i < p->inner; ++i) {
            int32_t sum = 0;
            int32_t v;
            if (NN_DSP_ASM && !NN_FORCE_PORTABLE && (i & 3) == 0 && i + 4 <= p->inner) {
                nn_sum4(in_o + i, p->count, p->inner, sums);
            }
            if (NN_DSP_ASM && !NN_FORCE_PORTABLE && i < (p->inner & ~3)) {
                sum = sums[i & 3];
            } else {
                for (c = 0; c < p->count; ++c) {
                    sum += in_o[(size_t)c * (size_t)p->inner + (size_t)i];
                }
            }
            if (p->requantize) {
                v = nn_multiply_by_quantized_multiplier(sum - p->input_zero_point * p->count, p->multiplier, p->shift) + p->output_zero_point;
                v = nn_clamp32(v, NN_INT8_MIN, NN_INT8_MAX);
            } else {
                v = sum / p->count;
            }
            output[(size_t)o * (size_t)p->inner + (size_t)i] = (int8_t)v;
        }
    }
}
