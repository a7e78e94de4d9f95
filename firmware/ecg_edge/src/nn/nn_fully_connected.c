/* FULLY_CONNECTED, int8 with per-tensor requantization: TFLM's reference_integer_ops::FullyConnected
 * (weights with zero point 0). */
#include "nn_kernels.h"

#include "nn_fixedpoint.h"

void nn_fully_connected_s8_portable(const nn_fc_params *p, const int8_t *input, int8_t *output)
{
    int32_t b, o, d;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *x = input + (size_t)b * (size_t)p->accum_depth;
        for (o = 0; o < p->out_depth; ++o) {
            const int8_t *w = p->filter + (size_t)o * (size_t)p->accum_depth;
            int32_t acc = 0;
            for (d = 0; d < p->accum_depth; ++d) {
                acc += (int32_t)w[d] * ((int32_t)x[d] + p->input_offset);
            }
            if (p->bias != NULL) {
                acc += p->bias[o];
            }
            acc = nn_multiply_by_quantized_multiplier(acc, p->multiplier, p->shift);
            acc += p->output_offset;
            output[(size_t)b * (size_t)p->out_depth + (size_t)o] = (int8_t)nn_clamp32(acc, p->act_min, p->act_max);
        }
    }
}

size_t nn_fully_connected_s8_scratch_bytes(const nn_fc_params *p)
{
    return NN_MATMUL_SCRATCH_BYTES(p->accum_depth, p->out_depth);
}

/* Up to four batches at a time are the columns of the matrix kernel (the input offset folded into the bias). */
void nn_fully_connected_s8_fast(const nn_fc_params *p, const int8_t *input, int8_t *output, int16_t *scratch)
{
    nn_row_requant *table = (nn_row_requant *)(void *)(scratch + NN_MATMUL_COLS * p->accum_depth); /* 4-byte aligned */
    nn_requant rq;
    int32_t b;
    rq.multiplier = &p->multiplier;
    rq.shift = &p->shift;
    rq.per_channel = 0;
    rq.output_offset = p->output_offset;
    rq.act_min = p->act_min;
    rq.act_max = p->act_max;
    rq.bounded = p->bounded;
    rq.fast4 = 0;
    nn_row_requant_prepare(p->bias, &rq, p->out_depth, table, p->filter, p->accum_depth, p->input_offset);
    for (b = 0; b < p->batches; b += NN_MATMUL_COLS) {
        const int32_t n = nn_min32(NN_MATMUL_COLS, p->batches - b);
        int32_t c;
        for (c = 0; c < n; ++c) {
            nn_column_put(scratch, p->accum_depth, n, c, 0, input + (size_t)(b + c) * (size_t)p->accum_depth, p->accum_depth, 0);
        }
        nn_mat_mult_s8_s16(p->filter, p->out_depth, p->accum_depth, scratch, n, n, table, &rq, output + (size_t)b * (size_t)p->out_depth,
                           p->out_depth);
    }
}

void nn_fully_connected_s8(const nn_fc_params *p, const int8_t *input, int8_t *output, int16_t *scratch)
{
#if NN_FORCE_PORTABLE
    (void)scratch;
    nn_fully_connected_s8_portable(p, input, output);
#else
    nn_fully_connected_s8_fast(p, input, output, scratch); /* nn_model_init requires the scratch */
#endif
}
