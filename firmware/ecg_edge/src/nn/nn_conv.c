/* CONV_2D, int8 with per-channel requantization: TFLM's reference_integer_ops::ConvPerChannel.
 * Taps that fall into the padding are skipped (they contribute 0), as in the reference. */
#include "nn_kernels.h"

#include "nn_fixedpoint.h"

void nn_conv_s8_portable(const nn_conv_params *p, const int8_t *input, int8_t *output)
{
    int32_t b, oy, ox, oc, ky, kx, ic;
    for (b = 0; b < p->batches; ++b) {
        for (oy = 0; oy < p->out_h; ++oy) {
            const int32_t in_y0 = oy * p->stride_h - p->pad_h;
            for (ox = 0; ox < p->out_w; ++ox) {
                const int32_t in_x0 = ox * p->stride_w - p->pad_w;
                for (oc = 0; oc < p->out_c; ++oc) {
                    int32_t acc = 0;
                    for (ky = 0; ky < p->k_h; ++ky) {
                        const int32_t iy = in_y0 + p->dil_h * ky;
                        if (iy < 0 || iy >= p->in_h) {
                            continue;
                        }
                        for (kx = 0; kx < p->k_w; ++kx) {
                            const int32_t ix = in_x0 + p->dil_w * kx;
                            const int8_t *in_px;
                            const int8_t *w;
                            if (ix < 0 || ix >= p->in_w) {
                                continue;
                            }
                            in_px = input + (((size_t)b * (size_t)p->in_h + (size_t)iy) * (size_t)p->in_w + (size_t)ix) * (size_t)p->in_c;
                            w = p->filter + (((size_t)oc * (size_t)p->k_h + (size_t)ky) * (size_t)p->k_w + (size_t)kx) * (size_t)p->in_c;
                            for (ic = 0; ic < p->in_c; ++ic) {
                                acc += (int32_t)w[ic] * ((int32_t)in_px[ic] + p->input_offset);
                            }
                        }
                    }
                    if (p->bias != NULL) {
                        acc += p->bias[oc];
                    }
                    acc = nn_multiply_by_quantized_multiplier(acc, p->multiplier[oc], p->shift[oc]);
                    acc += p->output_offset;
                    output[(((size_t)b * (size_t)p->out_h + (size_t)oy) * (size_t)p->out_w + (size_t)ox) * (size_t)p->out_c + (size_t)oc] =
                        (int8_t)nn_clamp32(acc, p->act_min, p->act_max);
                }
            }
        }
    }
}

static int32_t nn_conv_depth(const nn_conv_params *p)
{
    return p->k_h * p->k_w * p->in_c;
}

size_t nn_conv_s8_scratch_bytes(const nn_conv_params *p)
{
    return NN_MATMUL_SCRATCH_BYTES(nn_conv_depth(p), p->out_c);
}

/* Kernel taps t0 <= kx < t1 of every kernel row of the receptive field of output (oy, ox), as
 * column c of `cols`: the input without its offset (the offset is folded into the bias), the zero
 * point (-input_offset) in the padding. With dilation 1 in width, each kernel row is one contiguous
 * run of the input. */
static void nn_im2col(const nn_conv_params *p, const int8_t *in_b, int32_t oy, int32_t ox, int16_t *cols, int32_t n_cols, int32_t c, int32_t t0,
                      int32_t t1)
{
    const int32_t depth = nn_conv_depth(p);
    const int32_t in_y0 = oy * p->stride_h - p->pad_h;
    const int32_t in_x0 = ox * p->stride_w - p->pad_w;
    const int32_t row_len = p->k_w * p->in_c;
    const int32_t zp = -p->input_offset;
    int32_t ky, kx, k0 = 0;
    for (ky = 0; ky < p->k_h; ++ky, k0 += row_len) {
        const int32_t iy = in_y0 + p->dil_h * ky;
        const int8_t *in_row;
        if (iy < 0 || iy >= p->in_h) {
            nn_column_put(cols, depth, n_cols, c, k0 + t0 * p->in_c, NULL, (t1 - t0) * p->in_c, zp);
            continue;
        }
        in_row = in_b + (size_t)iy * (size_t)p->in_w * (size_t)p->in_c;
        if (p->dil_w == 1) {
            /* taps [t0, lo) and [hi, t1) in the padding, [lo, hi) inside */
            const int32_t lo = nn_min32(nn_max32(t0, -in_x0), t1);
            const int32_t hi = nn_max32(nn_min32(t1, p->in_w - in_x0), lo);
            if (lo > t0) {
                nn_column_put(cols, depth, n_cols, c, k0 + t0 * p->in_c, NULL, (lo - t0) * p->in_c, zp);
            }
            if (hi > lo) {
                nn_column_put(cols, depth, n_cols, c, k0 + lo * p->in_c, in_row + (size_t)(in_x0 + lo) * (size_t)p->in_c, (hi - lo) * p->in_c, zp);
            }
            if (hi < t1) {
                nn_column_put(cols, depth, n_cols, c, k0 + hi * p->in_c, NULL, (t1 - hi) * p->in_c, zp);
            }
        } else {
            for (kx = t0; kx < t1; ++kx) {
                const int32_t ix = in_x0 + p->dil_w * kx;
                const int8_t *src = ix >= 0 && ix < p->in_w ? in_row + (size_t)ix * (size_t)p->in_c : NULL;
                nn_column_put(cols, depth, n_cols, c, k0 + kx * p->in_c, src, p->in_c, zp);
            }
        }
    }
}

/* Four output positions ox .. ox + 3 in one output row of a convolution with one kernel row
 * (k_h = 1, dilation 1 in width): the taps inside the input for all four columns (taps lo .. hi - 1,
 * whole groups) in one nn_columns4_put, the rest column by column. 0 if the block does not qualify. */
static int nn_im2col_row4(const nn_conv_params *p, const int8_t *in_b, int32_t oy, int32_t ox, int16_t *cols)
{
    const int32_t iy = oy * p->stride_h - p->pad_h;
    const int32_t x0 = ox * p->stride_w - p->pad_w; /* column 0: the most leading padding */
    const int32_t x3 = x0 + (NN_MATMUL_COLS - 1) * p->stride_w; /* column 3: the most trailing */
    const int32_t lo = nn_min32(nn_max32(0, -x0), p->k_w);
    const int32_t hi = nn_max32(nn_min32(p->k_w, p->in_w - x3), lo);
    int32_t c;
    if (p->k_h != 1 || p->dil_w != 1 || ox + NN_MATMUL_COLS > p->out_w || iy < 0 || iy >= p->in_h || hi == lo || ((lo * p->in_c) & 3) != 0 ||
        (((hi - lo) * p->in_c) & 3) != 0) {
        return 0;
    }
    nn_columns4_put(cols + NN_MATMUL_COLS * lo * p->in_c, in_b + ((size_t)iy * (size_t)p->in_w + (size_t)(x0 + lo)) * (size_t)p->in_c,
                    p->stride_w * p->in_c, ((hi - lo) * p->in_c) >> 2);
    if (lo > 0 || hi < p->k_w) {
        for (c = 0; c < NN_MATMUL_COLS; ++c) {
            if (lo > 0) {
                nn_im2col(p, in_b, oy, ox + c, cols, NN_MATMUL_COLS, c, 0, lo);
            }
            if (hi < p->k_w) {
                nn_im2col(p, in_b, oy, ox + c, cols, NN_MATMUL_COLS, c, hi, p->k_w);
            }
        }
    }
    return 1;
}

void nn_conv_s8_fast(const nn_conv_params *p, const int8_t *input, int8_t *output, int16_t *scratch)
{
    const int32_t depth = nn_conv_depth(p);
    const int32_t positions = p->out_h * p->out_w;
    const int32_t row_len = p->k_w * p->in_c;
    nn_row_requant *table = (nn_row_requant *)(void *)(scratch + NN_MATMUL_COLS * depth); /* 4-byte aligned */
    /* Blocks of four in one output row inside the input in width (ox from ox_lo to ox_hi), one kernel
     * row of whole groups: one nn_columns4_put; other blocks of one kernel row: nn_im2col_row4; else
     * column by column. */
    const int32_t runs = p->dil_w == 1 && (row_len & 3) == 0;
    const int32_t ox_lo = (p->pad_w + p->stride_w - 1) / p->stride_w;
    const int32_t ox_hi = p->in_w + p->pad_w - p->k_w < 0 ? -1 : (p->in_w + p->pad_w - p->k_w) / p->stride_w - (NN_MATMUL_COLS - 1);
    nn_requant rq;
    nn_mat_plan plan;
    int32_t b;
    rq.multiplier = p->multiplier;
    rq.shift = p->shift;
    rq.per_channel = 1;
    rq.output_offset = p->output_offset;
    rq.act_min = p->act_min;
    rq.act_max = p->act_max;
    rq.bounded = p->bounded;
    rq.fast4 = 0;
    nn_row_requant_prepare(p->bias, &rq, p->out_c, table, p->filter, depth, p->input_offset);
    nn_mat_plan_init(&plan, p->filter, p->out_c, depth, scratch, table, &rq, p->out_c);
    for (b = 0; b < p->batches; ++b) {
        const int8_t *in_b = input + (size_t)b * (size_t)p->in_h * (size_t)p->in_w * (size_t)p->in_c;
        int8_t *out = output + (size_t)b * (size_t)positions * (size_t)p->out_c;
        int32_t oy = 0, ox = 0; /* the coordinates of output position `pos` */
        int32_t pos;
        for (pos = 0; pos < positions; pos += NN_MATMUL_COLS, out += NN_MATMUL_COLS * p->out_c) {
            const int32_t n = nn_min32(NN_MATMUL_COLS, positions - pos);
            const int32_t iy = oy * p->stride_h - p->pad_h;
            int32_t c;
            if (n == NN_MATMUL_COLS && runs && ox >= ox_lo && ox <= ox_hi && ox + NN_MATMUL_COLS <= p->out_w && p->k_h == 1 && iy >= 0 && iy < p->in_h) {
                nn_columns4_put(scratch, in_b + ((size_t)iy * (size_t)p->in_w + (size_t)(ox * p->stride_w - p->pad_w)) * (size_t)p->in_c,
                                p->stride_w * p->in_c, row_len >> 2);
            } else if (n < NN_MATMUL_COLS || !nn_im2col_row4(p, in_b, oy, ox, scratch)) {
                for (c = 0; c < NN_MATMUL_COLS; ++c) { /* a short block repeats its last column */
                    const int32_t q = pos + nn_min32(c, n - 1);
                    nn_im2col(p, in_b, q / p->out_w, q % p->out_w, scratch, NN_MATMUL_COLS, c, 0, p->k_w);
                }
            }
            nn_mat_plan_run(&plan, out, n);
            ox += n;
            while (ox >= p->out_w) {
                ox -= p->out_w;
                ++oy;
            }
        }
    }
}

void nn_conv_s8(const nn_conv_params *p, const int8_t *input, int8_t *output, int16_t *scratch)
{
#if NN_FORCE_PORTABLE
    (void)scratch;
    nn_conv_s8_portable(p, input, output);
#else
    nn_conv_s8_fast(p, input, output, scratch); /* nn_model_init requires the scratch */
#endif
}
