/* MAX_POOL_2D, int8: TFLM's reference_integer_ops::MaxPool (the window clipped to the input, then
 * the fused activation's clamp). The portable kernel loops as the reference does; the optimized one
 * takes four channels at a time with byte-wise max (nn_dsp.h) where it can: a maximum does not
 * depend on the order it is taken in. */
#include "nn_kernels.h"

#include "nn_dsp.h"
#include "nn_fixedpoint.h"

/* Output position (b, oy, ox), every channel, as the reference computes it. */
static void nn_max_pool_position(const nn_pool_params *p, const int8_t *input, int8_t *output, int32_t b, int32_t oy, int32_t ox)
{
    const int32_t in_y0 = oy * p->stride_h - p->pad_h;
    const int32_t in_x0 = ox * p->stride_w - p->pad_w;
    const int32_t fy_start = nn_max32(0, -in_y0), fy_end = nn_min32(p->filter_h, p->in_h - in_y0);
    const int32_t fx_start = nn_max32(0, -in_x0), fx_end = nn_min32(p->filter_w, p->in_w - in_x0);
    int32_t c, fy, fx;
    for (c = 0; c < p->channels; ++c) {
        int32_t m = NN_INT8_MIN;
        for (fy = fy_start; fy < fy_end; ++fy) {
            for (fx = fx_start; fx < fx_end; ++fx) {
                const size_t at =
                    (((size_t)b * (size_t)p->in_h + (size_t)(in_y0 + fy)) * (size_t)p->in_w + (size_t)(in_x0 + fx)) * (size_t)p->channels + (size_t)c;
                m = nn_max32(m, input[at]);
            }
        }
        output[(((size_t)b * (size_t)p->out_h + (size_t)oy) * (size_t)p->out_w + (size_t)ox) * (size_t)p->channels + (size_t)c] =
            (int8_t)nn_clamp32(m, p->act_min, p->act_max);
    }
}

void nn_max_pool_s8_portable(const nn_pool_params *p, const int8_t *input, int8_t *output)
{
    int32_t b, oy, ox;
    for (b = 0; b < p->batches; ++b) {
        for (oy = 0; oy < p->out_h; ++oy) {
            for (ox = 0; ox < p->out_w; ++ox) {
                nn_max_pool_position(p, input, output, b, oy, ox);
            }
        }
    }
}

/* out[c] = the maximum of `taps` taps `ch` apart from win[c], four channels at a time (c < ch & ~3). */
static void nn_max_taps(const int8_t *win, size_t ch, int32_t taps, int8_t *out)
{
    const int8_t *const end = win + (ch & ~(size_t)3);
    const size_t span = (size_t)(taps - 1) * ch;
    for (; win < end; win += 4, out += 4) {
        const int8_t *px = win;
        const int8_t *const last = win + span;
        uint32_t m = nn_read_u32(px);
        while (px < last) {
            px += ch;
            m = nn_max_s8x4(m, nn_read_u32(px));
        }
        nn_write_u32(out, m);
    }
}

/* With no clamp (the activation's range is all of int8) and whole groups of four channels, the
 * positions whose window lies inside the input in width and covers one input row run four channels
 * per SSUB8/SEL (nn_max_taps), one after the other; every other position as the reference. */
void nn_max_pool_s8_fast(const nn_pool_params *p, const int8_t *input, int8_t *output)
{
    const size_t ch = (size_t)p->channels;
    const size_t row = (size_t)p->in_w * ch;
    const int runs = p->act_min == NN_INT8_MIN && p->act_max == NN_INT8_MAX && (ch & 3u) == 0;
    const int32_t ox_in = (p->pad_w + p->stride_w - 1) / p->stride_w;
    const int32_t last_start = p->in_w + p->pad_w - p->filter_w; /* the last inside window starts at ox * stride <= this */
    const int32_t ox_out = last_start < 0 ? ox_in : nn_max32(ox_in, nn_min32(p->out_w, last_start / p->stride_w + 1));
    const size_t step = (size_t)p->stride_w * ch;
    int32_t b, oy, ox;
    for (b = 0; b < p->batches; ++b) {
        for (oy = 0; oy < p->out_h; ++oy) {
            const int32_t in_y0 = oy * p->stride_h - p->pad_h;
            const int32_t fy_start = nn_max32(0, -in_y0);
            const int one_row = runs && nn_min32(p->filter_h, p->in_h - in_y0) - fy_start == 1;
            for (ox = 0; ox < p->out_w; ++ox) {
                if (one_row && ox == ox_in) {
                    const int8_t *w = input + (size_t)b * (size_t)p->in_h * row + (size_t)(in_y0 + fy_start) * row + (size_t)(ox * p->stride_w - p->pad_w) * ch;
                    int8_t *out = output + (((size_t)b * (size_t)p->out_h + (size_t)oy) * (size_t)p->out_w + (size_t)ox) * ch;
                    for (; ox < ox_out; ++ox, out += ch, w += step) {
                        nn_max_taps(w, ch, p->filter_w, out);
                    }
                    if (ox == p->out_w) {
                        break;
                    }
                }
                nn_max_pool_position(p, input, output, b, oy, ox);
            }
        }
    }
}

void nn_max_pool_s8(const nn_pool_params *p, const int8_t *input, int8_t *output)
{
    if (NN_FORCE_PORTABLE) {
        nn_max_pool_s8_portable(p, input, output);
    } else {
        nn_max_pool_s8_fast(p, input, output);
    }
}
