/* MEAN of int8 over a contiguous block of axes, as TFLM's EvalIntegerMean computes it: with equal
 * input and output scale and zero point, reference_ops::Mean (int32 sum / count, truncating);
 * otherwise reference_ops::QuantizedMeanOrSum (the sum minus zp_in * count, requantized with the
 * multiplier into which 1/count is folded). */
#include "nn_kernels.h"

#include "nn_fixedpoint.h"

void nn_mean_s8(const nn_mean_params *p, const int8_t *input, int8_t *output)
{
    int32_t o, i, c;
    for (o = 0; o < p->outer; ++o) {
        const int8_t *in_o = input + (size_t)o * (size_t)p->count * (size_t)p->inner;
        for (i = 0; i < p->inner; ++i) {
            int32_t sum = 0;
            int32_t v;
            for (c = 0; c < p->count; ++c) {
                sum += in_o[(size_t)c * (size_t)p->inner + (size_t)i];
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
