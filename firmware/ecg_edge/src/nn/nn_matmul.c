/* The matrix kernel of the optimized CONV_2D and FULLY_CONNECTED: int8 weight rows times up to four
 * int16 columns (input + input offset) with SMLAD, then requantization.
 *
 * One weight row against four columns per pass (nn_dot_1x4_groups in nn_dsp.h): each weight word is
 * loaded and sign-extended once for 16 multiply-accumulates and the columns come in with LDRD, 17
 * instructions per 16 MACs in eleven registers. CMSIS-NN's 2 channels x 2 positions needs 13 to 14
 * live registers; gcc then spilled in the inner loop (measured on the M4 under QEMU: 25
 * instructions per 16 MACs), so this kernel takes the other square of the same trade.
 */
#include "nn_kernels.h"

#include "nn_dsp.h"
#include "nn_fixedpoint.h"

static const int8_t nn_group_order[4] = {0, 2, 1, 3}; /* x0 x2 x1 x3 */

int32_t nn_column_index(int32_t k, int32_t depth, int32_t n_cols, int32_t c)
{
    const int32_t full = depth & ~3;
    return k < full ? 4 * n_cols * (k >> 2) + 4 * c + nn_group_order[k & 3] : n_cols * k + c;
}

void nn_column_put(int16_t *cols, int32_t depth, int32_t n_cols, int32_t c, int32_t k0, const int8_t *src, int32_t n, int32_t offset)
{
    int32_t i = 0;
    if ((k0 & 3) == 0) {
        const int32_t full = depth & ~3;
        const int32_t groups = (k0 + n <= full ? n : full - k0) >> 2;
        const int32_t step = 4 * n_cols;
        int16_t *dst = cols + n_cols * k0 + 4 * c;
        int32_t g;
        if (src != NULL) {
            const uint32_t offset2 = nn_pack16(offset, offset);
            for (g = 0; g < groups; ++g) {
                const uint32_t x = nn_read_u32(src + 4 * g);
                nn_write_u32(dst, nn_sadd16(nn_sxtb16(x), offset2));
                nn_write_u32(dst + 2, nn_sadd16(nn_sxtb16_ror8(x), offset2));
                dst += step;
            }
        } else {
            for (g = 0; g < groups; ++g) {
                nn_write_u32(dst, 0u);
                nn_write_u32(dst + 2, 0u);
                dst += step;
            }
        }
        i = 4 * groups;
    }
    for (; i < n; ++i) {
        cols[nn_column_index(k0 + i, depth, n_cols, c)] = (int16_t)(src != NULL ? src[i] + offset : 0);
    }
}

/* acc[c] += w . column c for c < n_cols (fewer than four columns: the plain-C path). */
static void nn_dot_row_cols(const int8_t *w, int32_t depth, const int16_t *cols, int32_t n_cols, int32_t *acc)
{
    const int32_t groups = depth >> 2;
    const int32_t full = depth & ~3;
    int32_t g, c, k;
    if (n_cols == 4) {
        const int8_t *pw = w;
        const int16_t *pc = cols;
        nn_dot_1x4_groups(&pw, &pc, groups, acc);
    } else {
        const int16_t *pc = cols;
        for (g = 0; g < groups; ++g) {
            const uint32_t wv = nn_read_u32(w + 4 * g);
            const uint32_t w02 = nn_sxtb16(wv), w13 = nn_sxtb16_ror8(wv);
            for (c = 0; c < n_cols; ++c) {
                acc[c] = nn_smlad(w13, nn_read_u32(pc + 2), nn_smlad(w02, nn_read_u32(pc), acc[c]));
                pc += 4;
            }
        }
    }
    for (k = full; k < depth; ++k) {
        for (c = 0; c < n_cols; ++c) {
            acc[c] += (int32_t)w[k] * cols[n_cols * k + c];
        }
    }
}

/* The 16-byte rows the exporter's scratch size assumes. */
typedef char nn_row_requant_is_16_bytes[sizeof(nn_row_requant) == 16 ? 1 : -1];

void nn_row_requant_prepare(const int32_t *bias, const nn_requant *rq, int32_t rows, nn_row_requant *table)
{
    const int32_t fast = rq->bounded && !NN_SINGLE_ROUNDING;
    int32_t r;
    for (r = 0; r < rows; ++r) {
        const int32_t i = rq->per_channel ? r : 0;
        const int32_t shift = rq->shift[i];
        table[r].bias = bias != NULL ? bias[r] : 0;
        table[r].multiplier = rq->multiplier[i];
        table[r].right = fast && shift <= -1 ? -shift : 0;
        table[r].round = table[r].right > 0 ? (int32_t)((uint32_t)1 << (table[r].right - 1)) : 0;
    }
}

#if defined(__GNUC__) || defined(__clang__)
#define NN_ALWAYS_INLINE __attribute__((always_inline)) inline
#define NN_NOINLINE __attribute__((noinline))
#else
#define NN_ALWAYS_INLINE inline
#define NN_NOINLINE
#endif

static inline int32_t nn_out8(int32_t v, int32_t lo, int32_t hi, int32_t full_range)
{
    return full_range ? nn_ssat8(v) : nn_clamp32(v, lo, hi);
}

/* Requantization in the general form (what the fast rounding does not cover), n results. */
static NN_NOINLINE void nn_requant_row(const int32_t *acc, int32_t n, int32_t r, const nn_requant *rq, int8_t *o, int32_t s)
{
    const int32_t i = rq->per_channel ? r : 0;
    const nn_quant_mult q = nn_quant_mult_make(rq->multiplier[i], rq->shift[i]);
    int32_t c;
    for (c = 0; c < n; ++c) {
        o[c * s] = (int8_t)nn_clamp32(nn_quant_mult_apply(acc[c], &q) + rq->output_offset, rq->act_min, rq->act_max);
    }
}

/* The common case: four columns and a depth that is a multiple of four. A row prepared for the fast
 * rounding (right > 0) requantizes with the three-instruction rounding divide; SSAT clamps when the
 * output range is all of int8 (no fused activation, or a RELU whose zero point is -128).
 * Everything the loop needs is in locals (stores through int8_t * may alias any memory); the weight
 * pointer runs through the contiguous rows. `full_range` is a constant at both call sites, so each
 * gets its own loop. */
static NN_ALWAYS_INLINE void nn_rows_4cols(const int8_t *weights, int32_t rows, int32_t depth, const int16_t *cols, const nn_row_requant *t,
                                           const nn_requant *rq, int8_t *out, int32_t out_stride, const int32_t full_range)
{
    const int32_t groups = depth >> 2;
    const int32_t offset = rq->output_offset, lo = rq->act_min, hi = rq->act_max;
    const int32_t s = out_stride;
    const int8_t *w = weights;
    const nn_row_requant *const t_end = t + rows;
    int8_t *o = out;
    for (; t < t_end; ++t, ++o) {
        const int16_t *pc = cols;
        int32_t acc[4];
        acc[0] = t->bias;
        acc[1] = t->bias;
        acc[2] = t->bias;
        acc[3] = t->bias;
        nn_dot_1x4_groups(&w, &pc, groups, acc);
        if (t->right > 0) {
            const int32_t m = t->multiplier, right = t->right, round = t->round;
            o[0] = (int8_t)nn_out8(nn_rounding_divide_by_pot_bounded(nn_srdhm_floor(acc[0], m), right, round) + offset, lo, hi, full_range);
            o[s] = (int8_t)nn_out8(nn_rounding_divide_by_pot_bounded(nn_srdhm_floor(acc[1], m), right, round) + offset, lo, hi, full_range);
            o[2 * s] = (int8_t)nn_out8(nn_rounding_divide_by_pot_bounded(nn_srdhm_floor(acc[2], m), right, round) + offset, lo, hi, full_range);
            o[3 * s] = (int8_t)nn_out8(nn_rounding_divide_by_pot_bounded(nn_srdhm_floor(acc[3], m), right, round) + offset, lo, hi, full_range);
        } else {
            int32_t copy[4]; /* keeps `acc` out of memory on the fast path */
            copy[0] = acc[0];
            copy[1] = acc[1];
            copy[2] = acc[2];
            copy[3] = acc[3];
            nn_requant_row(copy, 4, (int32_t)(o - out), rq, o, s);
        }
    }
}

static void nn_mat_mult_4cols(const int8_t *weights, int32_t rows, int32_t depth, const int16_t *cols, const nn_row_requant *table,
                              const nn_requant *rq, int8_t *out, int32_t out_stride)
{
    if (rq->act_min == NN_INT8_MIN && rq->act_max == NN_INT8_MAX) {
        nn_rows_4cols(weights, rows, depth, cols, table, rq, out, out_stride, 1);
    } else {
        nn_rows_4cols(weights, rows, depth, cols, table, rq, out, out_stride, 0);
    }
}

void nn_mat_mult_s8_s16(const int8_t *weights, int32_t rows, int32_t depth, const int16_t *cols, int32_t n_cols, const nn_row_requant *table,
                        const nn_requant *rq, int8_t *out, int32_t out_stride)
{
    int32_t r;
    if (n_cols == 4 && (depth & 3) == 0) {
        nn_mat_mult_4cols(weights, rows, depth, cols, table, rq, out, out_stride);
        return;
    }
    for (r = 0; r < rows; ++r) {
        int32_t acc[4];
        acc[0] = table[r].bias;
        acc[1] = table[r].bias;
        acc[2] = table[r].bias;
        acc[3] = table[r].bias;
        nn_dot_row_cols(weights + (size_t)r * (size_t)depth, depth, cols, n_cols, acc);
        nn_requant_row(acc, n_cols, r, rq, out + r, out_stride);
    }
}
