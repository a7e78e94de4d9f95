/* ADD of two int8 tensors of the same shape: TFLM's reference_integer_ops::AddFunc. Both inputs
 * are shifted left by left_shift, rescaled to twice the larger input scale, summed and requantized.
 *
 * The optimized path computes each input's rescaled value once per possible int8 value (two
 * 256-entry tables in the scratch) instead of once per element, and requantizes through
 * nn_quant_mult (nn_fixedpoint.h). Same functions, same values. */
#include "nn_kernels.h"

#include "nn_dsp.h"
#include "nn_fixedpoint.h"

static inline int32_t nn_add_scale(int32_t x, int32_t offset, int32_t left_shift, int32_t multiplier, int32_t shift)
{
    return nn_multiply_by_quantized_multiplier_smaller_than_one((offset + x) * ((int32_t)1 << left_shift), multiplier, shift);
}


static void nn_add_s8_portable(const nn_add_params *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    int32_t i;
    for (i = 0; i < p->size; ++i) {
        const int32_t scaled1 = nn_add_scale(input1[i], p->input1_offset, p->left_shift, p->input1_multiplier, p->input1_shift);
        const int32_t scaled2 = nn_add_scale(input2[i], p->input2_offset, p->left_shift, p->input2_multiplier, p->input2_shift);
        const int32_t raw =
            nn_multiply_by_quantized_multiplier_smaller_than_one(scaled1 + scaled2, p->output_multiplier, p->output_shift) + p->output_offset;
        output[i] = (int8_t)nn_clamp32(raw, p->act_min, p->act_max);
    }
}

static void nn_add_s8_table(const nn_add_params *p, const int8_t *input1, const int8_t *input2, int8_t *output, int32_t *tables)
{
    int32_t *t1 = tables + 128; /* t1[v] for v in [-128, 127] */
    int32_t *t2 = tables + 256 + 128;
    const nn_quant_mult q1 = nn_quant_mult_make(p->input1_multiplier, p->input1_shift);
    const nn_quant_mult q2 = nn_quant_mult_make(p->input2_multiplier, p->input2_shift);
    const int32_t offset = p->output_offset, lo = p->act_min, hi = p->act_max;
    int32_t v, i;
    for (v = NN_INT8_MIN; v <= NN_INT8_MAX; ++v) {
        t1[v] = nn_quant_mult_apply((p->input1_offset + v) * ((int32_t)1 << p->left_shift), &q1);
        t2[v] = nn_quant_mult_apply((p->input2_offset + v) * ((int32_t)1 << p->left_shift), &q2);
    }
    if (p->output_shift < 0 && !NN_SINGLE_ROUNDING) {
        /* |t1 + t2| < 2^30 (inputs below 2^28 each, multipliers below 1), so the three-instruction
         * rounding divide applies. Locals only: stores through int8_t * may alias anything. */
        const int32_t m = p->output_multiplier, right = -p->output_shift;
        const int32_t round = (int32_t)((uint32_t)1 << (right - 1));
        const int8_t *a = input1, *b = input2;
        int8_t *o = output;
        int8_t *const end = output + p->size;
        if (lo == NN_INT8_MIN && hi == NN_INT8_MAX) {
            while (o < end) {
                const int32_t y = nn_srdhm_floor(t1[*a++] + t2[*b++], m);
                *o++ = (int8_t)nn_ssat8(nn_rounding_divide_by_pot_bounded(y, right, round) + offset);
            }
        } else {
            while (o < end) {
                const int32_t y = nn_srdhm_floor(t1[*a++] + t2[*b++], m);
                *o++ = (int8_t)nn_clamp32(nn_rounding_divide_by_pot_bounded(y, right, round) + offset, lo, hi);
            }
        }
    } else {
        const nn_quant_mult qo = nn_quant_mult_make(p->output_multiplier, p->output_shift);
        for (i = 0; i < p->size; ++i) {
            output[i] = (int8_t)nn_clamp32(nn_quant_mult_apply(t1[input1[i]] + t2[input2[i]], &qo) + offset, lo, hi);
        }
    }
}

void nn_add_s8(const nn_add_params *p, const int8_t *input1, const int8_t *input2, int8_t *output, int32_t *scratch)
{
    if (NN_FORCE_PORTABLE || scratch == NULL) {
        nn_add_s8_portable(p, input1, input2, output);
    } else {
        nn_add_s8_table(p, input1, input2, output, scratch);
    }
}
