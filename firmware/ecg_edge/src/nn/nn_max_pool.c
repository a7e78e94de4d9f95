/* MAX_POOL_2D, int8: TFLM's reference_integer_ops::MaxPool (the window clipped to the input, then
 * the fused activation's clamp). The portable kernel loops as the reference does; the optimized one
 * takes four channels at a time with byte-wise max/min (nn_dsp.h): a maximum does not depend on the
 * order it is taken in. */
#include "nn_kernels.h"

#include "nn_dsp.h"
#include "nn_fixedpoint.h"

static uint32_t nn_splat8(int32_t v)
{
    return 0x01010101u * (uint32_t)(uint8_t)(int8_t)v;
}

void nn_max_pool_s8_portable(const nn_pool_params *p, const int8_t *input, int8_t *output)
{
    int32_t b, oy, ox, c, fy, fx;
    for (b = 0; b < p->batches; ++b) {
        for (oy = 0; oy < p->out_h; ++oy) {
            const int32_t in_y0 = oy * p->stride_h - p->pad_h;
            const int32_t fy_start = nn_max32(0, -in_y0);
            const int32_t fy_end = nn_min32(p->filter_h, p->in_h - in_y0);
            for (ox = 0; ox < p->out_w; ++ox) {
                const int32_t in_x0 = ox * p->stride_w - p->pad_w;
                const int32_t fx_start = nn_max32(0, -in_x0);
                const int32_t fx_end = nn_min32(p->filter_w, p->in_w - in_x0);
                for (c = 0; c < p->channels; ++c) {
                    int32_t m = NN_INT8_MIN;
                    for (fy = fy_start; fy < fy_end; ++fy) {
                        for (fx = fx_start; fx < fx_end; ++fx) {
                            const size_t at = (((size_t)b * (size_t)p->in_h + (size_t)(in_y0 + fy)) * (size_t)p->in_w + (size_t)(in_x0 + fx)) *
                                                  (size_t)p->channels + (size_t)c;
                            m = nn_max32(m, input[at]);
                        }
                    }
                    output[(((size_t)b * (size_t)p->out_h + (size_t)oy) * (size_t)p->out_w + (size_t)ox) * (size_t)p->channels + (size_t)c] =
                        (int8_t)nn_clamp32(m, p->act_min, p->act_max);
                }
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

void nn_max_pool_s8_fast(const nn_pool_params *p, const int8_t *input, int8_t *output)
{
    const size_t ch = (size_t)p->channels;
    const size_t row = (size_t)p->in_w * ch;
    const uint32_t lo4 = nn_splat8(p->act_min), hi4 = nn_splat8(p->act_max);
    const int full = p->act_min == NN_INT8_MIN && p->act_max == NN_INT8_MAX;
    /* Whole groups of four channels, no clamp: positions ox_in <= ox < ox_out take nn_max_taps. */
    const int rows_of_one = full && (ch & 3u) == 0;
    const int32_t ox_in = (p->pad_w + p->stride_w - 1) / p->stride_w;
    const int32_t last_start = p->in_w + p->pad_w - p->filter_w; /* the last inside window starts at ox * stride <= this */
    const int32_t ox_out = last_start < 0 ? ox_in : nn_max32(ox_in, nn_min32(p->out_w, last_start / p->stride_w + 1));
    const size_t step = (size_t)p->stride_w * ch;
    int32_t b, oy, ox, fy, fx;
    size_t c;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *in_b = input + (size_t)b * (size_t)p->in_h * row;
        for (oy = 0; oy < p->out_h; ++oy) {
            const int32_t in_y0 = oy * p->stride_h - p->pad_h;
            const int32_t fy_start = nn_max32(0, -in_y0);
            const int32_t fy_end = nn_min32(p->filter_h, p->in_h - in_y0);
            int8_t *out = output + ((size_t)b * (size_t)p->out_h + (size_t)oy) * (size_t)p->out_w * ch;
            int32_t in_x0 = -p->pad_w;
            for (ox = 0; ox < p->out_w; ++ox, out += ch, in_x0 += p->stride_w) {
                if (ox == ox_in && rows_of_one && fy_end - fy_start == 1) {
                    /* the positions whose window lies inside in width, one after the other */
                    const int8_t *w = in_b + (size_t)(in_y0 + fy_start) * row + (size_t)in_x0 * ch;
                    for (; ox < ox_out; ++ox, out += ch, in_x0 += p->stride_w, w += step) {
                        nn_max_taps(w, ch, p->filter_w, out);
                    }
                    if (ox == p->out_w) {
                        break;
                    }
                }
                const int32_t fx_start = nn_max32(0, -in_x0);
                const int32_t fx_end = nn_min32(p->filter_w, p->in_w - in_x0);
                const int8_t *win; /* the first tap inside the input */
                if (fy_end <= fy_start || fx_end <= fx_start) {
                    for (c = 0; c < ch; ++c) { /* nothing inside: the maximum's start value */
                        out[c] = (int8_t)nn_clamp32(NN_INT8_MIN, p->act_min, p->act_max);
                    }
                    continue;
                }
                win = in_b + (size_t)(in_y0 + fy_start) * row + (size_t)(in_x0 + fx_start) * ch;
                c = 0;
                if (full && fy_end - fy_start == 1) {
                    nn_max_taps(win, ch, fx_end - fx_start, out);
                    c = ch & ~(size_t)3;
                }
                for (; c + 4u <= ch; c += 4u) {
                    const int8_t *py = win + c;
                    uint32_t m = nn_read_u32(py); /* the first tap inside */
                    for (fy = fy_start; fy < fy_end; ++fy, py += row) {
                        const int8_t *px = py;
                        const int8_t *const px_end = py + (size_t)(fx_end - fx_start) * ch;
                        for (; px < px_end; px += ch) {
                            m = nn_max_s8x4(m, nn_read_u32(px));
                        }
                    }
                    nn_write_u32(out + c, full ? m : nn_min_s8x4(nn_max_s8x4(m, lo4), hi4));
                }
                for (; c < ch; ++c) {
                    int32_t m = NN_INT8_MIN;
                    for (fy = fy_start; fy < fy_end; ++fy) {
                        for (fx = fx_start; fx < fx_end; ++fx) {
                            m = nn_max32(m, win[(size_t)(fy - fy_start) * row + (size_t)(fx - fx_start) * ch + c]);
                        }
                    }
                    out[c] = (int8_t)nn_clamp32(m, p->act_min, p->act_max);
                }
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
