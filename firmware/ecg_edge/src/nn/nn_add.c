/* ADD of two int8 tensors of the same shape: TFLM's reference_integer_ops::AddFunc. Both inputs
 * are shifted left by left_shift, rescaled to twice the larger input scale, summed and requantized.
 *
 * The optimized path computes each input's rescaled value once per possible int8 value (two
 * 256-entry tables in the scratch) instead of once per element. Where the output shift allows it
 * (full int8 range, -22 <= shift <= -1) the tables hold twice the values and the output takes the
 * short requantization (below; an assembly loop of 10.5 instructions per element on the
 * Cortex-M4), elsewhere nn_quant_mult (nn_fixedpoint.h). Same functions, same values. */
#include "nn_kernels.h"

#include <stddef.h>

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

/* The tables and the short output requantization (nn_matmul.c derives it): each table holds twice
 * the rescaled input, indexed by the input byte as unsigned, so that the sum of two entries is 2 S
 * (|S| < 2^29: inputs below 2^28 each after rescaling by multipliers below one), and
 *   out = (SMMLAR(2 S, m, round) - [S < 0]) >> right,  round = 2^(right-1) + output_offset 2^right
 * for 1 <= right <= 22, which is RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(S, m), right)
 * + output_offset. */
typedef struct {
    const int8_t *in1, *in2;
    int8_t *out, *end; /* end - out: a multiple of 4 */
    const int32_t *t1, *t2;
    int32_t multiplier, round, right;
} nn_add_run;

#define NN_ADD_SHORT_RIGHT_MAX 22

#if NN_DSP_ASM

/* One element: two byte loads, two table loads, the sum, the short requantization, SSAT, a store. */
#define NN_ADD_ONE(x, y)                                                                                                   \
    "ldrb " x ", [r1], #1\n\t"                                                                                             \
    "ldrb " y ", [r2], #1\n\t"                                                                                             \
    "ldr " x ", [r5, " x ", lsl #2]\n\t"                                                                                   \
    "ldr " y ", [r6, " y ", lsl #2]\n\t"                                                                                   \
    "add " x ", " x ", " y "\n\t"                                                                                          \
    "smmlar " y ", " x ", r7, r8\n\t"                                                                                      \
    "add " y ", " y ", " x ", asr #31\n\t"                                                                                 \
    "asr " y ", " y ", r9\n\t"                                                                                             \
    "ssat " y ", #8, " y "\n\t"                                                                                            \
    "strb " y ", [r3], #1\n\t"

typedef char nn_add_run_layout[offsetof(nn_add_run, right) == 32 ? 1 : -1];

/* Four elements per iteration (out < end). */
__attribute__((naked, noinline)) static void nn_add_run_asm(const nn_add_run *run __attribute__((unused)))
{
    __asm__ volatile("push {r4-r11, lr}\n\t"
                     "ldm r0, {r1-r9}\n\t"
                     "1:\n\t"
                     NN_ADD_ONE("r10", "r11")
                     NN_ADD_ONE("r12", "lr")
                     NN_ADD_ONE("r10", "r11")
                     NN_ADD_ONE("r12", "lr")
                     "cmp r3, r4\n\t"
                     "bne 1b\n\t"
                     "pop {r4-r11, pc}\n\t");
}

#endif /* NN_DSP_ASM */

static void nn_add_run_short(const nn_add_run *r)
{
#if NN_DSP_ASM
    if (r->out < r->end) {
        nn_add_run_asm(r);
    }
#else
    const uint8_t *a = (const uint8_t *)r->in1, *b = (const uint8_t *)r->in2;
    int8_t *o = r->out;
    while (o < r->end) {
        const int32_t s2 = r->t1[*a++] + r->t2[*b++];
        *o++ = (int8_t)nn_ssat8((nn_smmlar(s2, r->multiplier, r->round) - (int32_t)((uint32_t)s2 >> 31)) >> r->right);
    }
#endif
}

/* t[(uint8_t)v] = 2 MultiplyByQuantizedMultiplierSmallerThanOneExp((offset + v) 2^left_shift, m,
 * -right) for every int8 v, in the short form: |x| < 2^29 (|offset + v| <= 255, left_shift <= 20),
 * so SMMLAR(2 x, m, 0) is the doubling high multiply and, for right >= 1, the rounding divide is
 * (SMMLAR(2 x, m, 2^(right-1)) - [x < 0]) >> right (nn_matmul.c has the argument; every sum stays
 * below 2^31 for right <= 31). */
static void nn_add_table_short(int32_t *t, int32_t offset, int32_t left_shift, int32_t m, int32_t right)
{
    const int32_t round = right > 0 ? (int32_t)((uint32_t)1 << (right - 1)) : 0;
    int32_t v;
    for (v = NN_INT8_MIN; v <= NN_INT8_MAX; ++v) {
        const int32_t x = (offset + v) * ((int32_t)1 << left_shift);
        const int32_t y = nn_smmlar(x * 2, m, round);
        t[(uint8_t)v] = 2 * (right > 0 ? (y - (int32_t)((uint32_t)x >> 31)) >> right : y);
    }
}

static void nn_add_s8_table(const nn_add_params *p, const int8_t *input1, const int8_t *input2, int8_t *output, int32_t *tables)
{
    int32_t *t1 = tables; /* t1[(uint8_t)v] */
    int32_t *t2 = tables + 256;
    const nn_quant_mult q1 = nn_quant_mult_make(p->input1_multiplier, p->input1_shift);
    const nn_quant_mult q2 = nn_quant_mult_make(p->input2_multiplier, p->input2_shift);
    const int32_t offset = p->output_offset, lo = p->act_min, hi = p->act_max;
    const int32_t right = -p->output_shift;
    const int32_t short_form = right >= 1 && right <= NN_ADD_SHORT_RIGHT_MAX && lo == NN_INT8_MIN && hi == NN_INT8_MAX && !NN_SINGLE_ROUNDING &&
                               !NN_TEST_WRONG_ROUNDING;
    const int32_t scale = short_form ? 2 : 1; /* the short form's tables hold twice the values */
    int32_t v, i;
    if (short_form) {
        nn_add_table_short(t1, p->input1_offset, p->left_shift, p->input1_multiplier, -p->input1_shift);
        nn_add_table_short(t2, p->input2_offset, p->left_shift, p->input2_multiplier, -p->input2_shift);
    } else {
        for (v = NN_INT8_MIN; v <= NN_INT8_MAX; ++v) {
            t1[(uint8_t)v] = nn_quant_mult_apply((p->input1_offset + v) * ((int32_t)1 << p->left_shift), &q1);
            t2[(uint8_t)v] = nn_quant_mult_apply((p->input2_offset + v) * ((int32_t)1 << p->left_shift), &q2);
        }
    }
    i = 0;
    if (short_form) {
        nn_add_run r;
        i = p->size & ~3;
        r.in1 = input1;
        r.in2 = input2;
        r.out = output;
        r.end = output + i;
        r.t1 = t1;
        r.t2 = t2;
        r.multiplier = p->output_multiplier;
        r.round = (int32_t)((uint32_t)1 << (right - 1)) + offset * (int32_t)((uint32_t)1 << right);
        r.right = right;
        nn_add_run_short(&r);
    }
    {
        const nn_quant_mult qo = nn_quant_mult_make(p->output_multiplier, p->output_shift);
        for (; i < p->size; ++i) {
            const int32_t sum = (t1[(uint8_t)input1[i]] + t2[(uint8_t)input2[i]]) / scale;
            output[i] = (int8_t)nn_clamp32(nn_quant_mult_apply(sum, &qo) + offset, lo, hi);
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
