/* The matrix kernel of the optimized CONV_2D and FULLY_CONNECTED: int8 weight rows times up to four
 * int16 columns (the input, with its offset or with the offset folded into the bias) with SMLAD,
 * then requantization.
 *
 * On the Cortex-M4 (nn_mm4_asm): one weight row against four columns per pass. Per group of four
 * depth steps (16 MACs): half an LDRD of weights (eight at a time), two SXTB16, two LDM of four
 * column words and eight SMLAD, 12.5 instructions; the loop runs ten groups per iteration (the
 * first one entered part-way when the group count is not a multiple of ten). The whole row loop, requantization included, is one
 * assembly function, so that all fourteen usable registers hold the accumulators, columns and
 * weights (gcc's allocation spills in such a loop). Elsewhere the same arithmetic in C.
 *
 * Requantization of a row in the short form (right = -shift in 1..22, |acc| < 2^30): TFLM's
 *   RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc, m), right) + output_offset
 * equals (SMMLAR(2 acc, m, round) - [acc < 0]) >> right with round = 2^(right-1) + offset 2^right:
 * - SMMLAR(2 acc, m, 0) = floor((2 acc m + 2^31) / 2^32) = floor((acc m + 2^30) / 2^31) = y, the
 *   doubling high multiply (no saturation case: m >= 0; 2 acc fits: |acc| < 2^30);
 * - the rounding divide is floor((y + 2^(right-1) - [y < 0]) / 2^right), and [y < 0] may be
 *   replaced by [acc < 0]: m >= 0 gives y >= 0 for acc >= 0 and y <= 0 for acc < 0, and at y = 0
 *   subtracting 1 does not change the quotient (right >= 1);
 * - the offset times 2^right added before the shift adds the offset after it; |y| < 2^30 and
 *   right <= 22 keep every sum inside int32.
 */
#include "nn_kernels.h"

#include <stddef.h>

#include "nn_dsp.h"
#include "nn_fixedpoint.h"

static const int8_t nn_group_order[4] = {0, 2, 1, 3}; /* x0 x2 x1 x3 */

#define NN_SHORT_RIGHT_MAX 22

int32_t nn_column_index(int32_t k, int32_t depth, int32_t n_cols, int32_t c)
{
    const int32_t full = depth & ~3;
    return k < full ? 4 * n_cols * (k >> 2) + 4 * c + nn_group_order[k & 3] : n_cols * k + c;
}

void nn_column_put(int16_t *cols, int32_t depth, int32_t n_cols, int32_t c, int32_t k0, const int8_t *src, int32_t n, int32_t fill)
{
    int32_t i = 0;
    if ((k0 & 3) == 0) {
        const int32_t full = depth & ~3;
        const int32_t groups = (k0 + n <= full ? n : full - k0) >> 2;
        const int32_t step = 4 * n_cols;
        const uint32_t fill2 = nn_pack16(fill, fill);
        int16_t *dst = cols + n_cols * k0 + 4 * c;
        int32_t g;
        for (g = 0; g < groups; ++g, dst += step) {
            const uint32_t x = src != NULL ? nn_read_u32(src + 4 * g) : 0u;
            nn_write_u32(dst, src != NULL ? nn_sxtb16(x) : fill2);
            nn_write_u32(dst + 2, src != NULL ? nn_sxtb16_ror8(x) : fill2);
        }
        i = 4 * groups;
    }
    for (; i < n; ++i) {
        cols[nn_column_index(k0 + i, depth, n_cols, c)] = (int16_t)(src != NULL ? src[i] : fill);
    }
}

#if NN_DSP_ASM

/* Per group: four LDR (one per column), eight SXTB16, one STM of the group's eight words. */
__attribute__((naked, noinline)) static void nn_columns4_asm(int16_t *cols __attribute__((unused)), const int8_t *src __attribute__((unused)),
                                                             int32_t col_step __attribute__((unused)), int32_t groups __attribute__((unused)))
{
    __asm__ volatile("push {r4-r11, lr}\n\t"
                     "add r3, r1, r3, lsl #2\n\t"
                     "add r12, r2, r2\n\t"
                     "add lr, r12, r2\n\t"
                     "1:\n\t"
                     "ldr r7, [r1, r2]\n\t"
                     "ldr r9, [r1, r12]\n\t"
                     "ldr r11, [r1, lr]\n\t"
                     "ldr r5, [r1], #4\n\t"
                     "sxtb16 r4, r5\n\t"
                     "sxtb16 r5, r5, ror #8\n\t"
                     "sxtb16 r6, r7\n\t"
                     "sxtb16 r7, r7, ror #8\n\t"
                     "sxtb16 r8, r9\n\t"
                     "sxtb16 r9, r9, ror #8\n\t"
                     "sxtb16 r10, r11\n\t"
                     "sxtb16 r11, r11, ror #8\n\t"
                     "stm r0!, {r4-r11}\n\t"
                     "cmp r1, r3\n\t"
                     "bne 1b\n\t"
                     "pop {r4-r11, pc}\n\t");
}

void nn_columns4_put(int16_t *cols, const int8_t *src, int32_t col_step, int32_t groups)
{
    if (groups > 0) {
        nn_columns4_asm(cols, src, col_step, groups);
    }
}

#else

void nn_columns4_put(int16_t *cols, const int8_t *src, int32_t col_step, int32_t groups)
{
    int32_t g, c;
    for (g = 0; g < groups; ++g) {
        for (c = 0; c < 4; ++c) {
            const int8_t *x = src + c * col_step + 4 * g;
            int16_t *d = cols + 16 * g + 4 * c;
            d[0] = x[0]; /* x0 x2 x1 x3 */
            d[1] = x[2];
            d[2] = x[1];
            d[3] = x[3];
        }
    }
}

#endif /* NN_DSP_ASM */

/* The row loop keeps 36-byte records (nn_mm4_asm loads one with a single LDM). */
typedef char nn_row_requant_is_36_bytes[sizeof(nn_row_requant) == 36 ? 1 : -1];

/* sum_k w[k] (|sum| < 2^31: the accumulator bound covers it). With the DSP instructions halfword
 * lanes with SXTAB16, eight weights per step (a lane gains at most 4 * 128 per step, so 60 steps
 * stay inside int16); elsewhere a plain sum. */
static int32_t nn_row_sum(const int8_t *w, int32_t depth)
{
#if NN_DSP_ASM
    const int8_t *p = w;
    const int8_t *const end8 = w + (depth & ~7);
    int32_t s = 0, k;
    while (p < end8) {
        const int8_t *const stop = end8 - p > 60 * 8 ? p + 60 * 8 : end8;
        uint32_t lanes = 0;
        for (; p < stop; p += 8) {
            const uint32_t a = nn_read_u32(p), b = nn_read_u32(p + 4);
            lanes = nn_sxtab16_ror8(nn_sxtab16(nn_sxtab16_ror8(nn_sxtab16(lanes, a), a), b), b);
        }
        s += nn_lo16(lanes) + nn_hi16(lanes);
    }
    for (k = depth & ~7; k < depth; ++k) {
        s += w[k];
    }
    return s;
#else
    int32_t s = 0, k;
    for (k = 0; k < depth; ++k) {
        s += w[k];
    }
    return s;
#endif
}

void nn_row_requant_prepare(const int32_t *bias, nn_requant *rq, int32_t rows, nn_row_requant *table, const int8_t *weights, int32_t depth,
                            int32_t fold_offset)
{
    const int32_t short_ok = rq->bounded && !NN_SINGLE_ROUNDING && !NN_TEST_WRONG_ROUNDING;
    int32_t r, c, all = 1;
    for (r = 0; r < rows; ++r) {
        const int32_t i = rq->per_channel ? r : 0;
        const int32_t right = -rq->shift[i];
        nn_row_requant *t = &table[r];
        const uint32_t fold = fold_offset != 0 ? (uint32_t)fold_offset * (uint32_t)nn_row_sum(weights + (size_t)r * (size_t)depth, depth) : 0u;
        const uint32_t b = (bias != NULL ? (uint32_t)bias[r] : 0u) + fold;
        for (c = 0; c < 4; ++c) {
            t->bias[c] = nn_wrap32(b);
        }
        t->multiplier = rq->multiplier[i];
        t->right = short_ok && right >= 1 && right <= NN_SHORT_RIGHT_MAX ? right : 0;
        t->round = t->right > 0 ? (int32_t)((uint32_t)1 << (t->right - 1)) + rq->output_offset * (int32_t)((uint32_t)1 << t->right) : 0;
        t->last = r == rows - 1;
        t->cols = 0u;
        all = all && t->right > 0;
    }
    rq->fast4 = all && rq->act_min == NN_INT8_MIN && rq->act_max == NN_INT8_MAX;
}

/* The short form (see the top of this file), output offset included. */
static inline int32_t nn_requant_short(int32_t acc, const nn_row_requant *t)
{
    return nn_smmlar((int32_t)((uint32_t)acc << 1), t->multiplier, t->round - (int32_t)((uint32_t)acc >> 31)) >> t->right;
}

/* acc[c] += w . column c for c < n_cols (sums modulo 2^32: partial sums may wrap, the final one
 * is in range). With the DSP instructions two SMLAD per group and column; elsewhere plain
 * multiply-adds, which cost less than emulating them. */
static void nn_dot_row_cols(const int8_t *w, int32_t depth, const int16_t *cols, int32_t n_cols, int32_t *acc)
{
    const int32_t groups = depth >> 2;
    const int32_t full = depth & ~3;
    const int16_t *pc = cols;
    int32_t g, c, k;
#if NN_DSP_ASM
    for (g = 0; g < groups; ++g) {
        const uint32_t wv = nn_read_u32(w + 4 * g);
        const uint32_t w02 = nn_sxtb16(wv), w13 = nn_sxtb16_ror8(wv);
        for (c = 0; c < n_cols; ++c) {
            acc[c] = nn_smlad(w13, nn_read_u32(pc + 2), nn_smlad(w02, nn_read_u32(pc), acc[c]));
            pc += 4;
        }
    }
#else
    uint32_t sum[4];
    for (c = 0; c < n_cols; ++c) {
        sum[c] = (uint32_t)acc[c];
    }
    for (g = 0; g < groups; ++g) {
        const int32_t w0 = w[4 * g], w1 = w[4 * g + 1], w2 = w[4 * g + 2], w3 = w[4 * g + 3];
        for (c = 0; c < n_cols; ++c, pc += 4) { /* x0 x2 x1 x3 */
            sum[c] += (uint32_t)(w0 * pc[0]) + (uint32_t)(w2 * pc[1]) + (uint32_t)(w1 * pc[2]) + (uint32_t)(w3 * pc[3]);
        }
    }
    for (c = 0; c < n_cols; ++c) {
        acc[c] = nn_wrap32(sum[c]);
    }
#endif
    for (k = full; k < depth; ++k) {
        for (c = 0; c < n_cols; ++c) {
            acc[c] = nn_wrap32((uint32_t)acc[c] + (uint32_t)((int32_t)w[k] * cols[n_cols * k + c]));
        }
    }
}

/* Any row, any column count: the short form where the row has it, else the general one. */
static void nn_mat_mult_rows(const int8_t *weights, int32_t rows, int32_t depth, const int16_t *cols, int32_t n_cols, int32_t n_out,
                             const nn_row_requant *table, const nn_requant *rq, int8_t *out, int32_t out_stride)
{
    int32_t r, c;
    for (r = 0; r < rows; ++r) {
        const nn_row_requant *t = &table[r];
        int32_t acc[4];
        for (c = 0; c < n_cols; ++c) {
            acc[c] = t->bias[c];
        }
        nn_dot_row_cols(weights + (size_t)r * (size_t)depth, depth, cols, n_cols, acc);
        if (t->right > 0) {
            for (c = 0; c < n_cols; ++c) {
                out[nn_min32(c, n_out - 1) * out_stride + r] = (int8_t)nn_clamp32(nn_requant_short(acc[c], t), rq->act_min, rq->act_max);
            }
        } else {
            const int32_t i = rq->per_channel ? r : 0;
            const nn_quant_mult q = nn_quant_mult_make(rq->multiplier[i], rq->shift[i]);
            for (c = 0; c < n_cols; ++c) {
                out[nn_min32(c, n_out - 1) * out_stride + r] =
                    (int8_t)nn_clamp32(nn_quant_mult_apply(acc[c], &q) + rq->output_offset, rq->act_min, rq->act_max);
            }
        }
    }
}

#if NN_DSP_ASM

#define NN_STR2(x) #x
#define NN_STR(x) NN_STR2(x)

typedef char nn_mat_plan_layout[offsetof(nn_mat_plan, out) == 12 && offsetof(nn_mat_plan, table) == 16 && offsetof(nn_mat_plan, cols) == 20 &&
                                        offsetof(nn_mat_plan, table_end) == 24 && offsetof(nn_mat_plan, weights) == 28 &&
                                        offsetof(nn_mat_plan, col_bytes) == 32 && offsetof(nn_mat_plan, skip) == 36
                                    ? 1
                                    : -1];

/* Two groups of four depth steps: eight weights (LDRD), four column words per LDM. Every one of
 * these instructions has only a 32-bit encoding (r12 as the LDM base included): 100 bytes. */
#define NN_MM4_CHUNK_BYTES 100
#define NN_MM4_CHUNKS 5 /* per loop iteration: ten groups */
#define NN_MM4_TWO_GROUPS                                                                                                  \
    "ldrd r8, r9, [r11], #8\n\t"                                                                                          \
    "sxtb16 r10, r8\n\t"                                                                                                  \
    "sxtb16 r8, r8, ror #8\n\t"                                                                                           \
    "ldm r12!, {r4-r7}\n\t"                                                                                               \
    "smlad r0, r10, r4, r0\n\t"                                                                                           \
    "smlad r0, r8, r5, r0\n\t"                                                                                            \
    "smlad r1, r10, r6, r1\n\t"                                                                                           \
    "smlad r1, r8, r7, r1\n\t"                                                                                            \
    "ldm r12!, {r4-r7}\n\t"                                                                                               \
    "smlad r2, r10, r4, r2\n\t"                                                                                           \
    "smlad r2, r8, r5, r2\n\t"                                                                                            \
    "smlad r3, r10, r6, r3\n\t"                                                                                           \
    "smlad r3, r8, r7, r3\n\t"                                                                                            \
    "sxtb16 r10, r9\n\t"                                                                                                  \
    "sxtb16 r9, r9, ror #8\n\t"                                                                                           \
    "ldm r12!, {r4-r7}\n\t"                                                                                               \
    "smlad r0, r10, r4, r0\n\t"                                                                                           \
    "smlad r0, r9, r5, r0\n\t"                                                                                            \
    "smlad r1, r10, r6, r1\n\t"                                                                                           \
    "smlad r1, r9, r7, r1\n\t"                                                                                            \
    "ldm r12!, {r4-r7}\n\t"                                                                                               \
    "smlad r2, r10, r4, r2\n\t"                                                                                           \
    "smlad r2, r9, r5, r2\n\t"                                                                                            \
    "smlad r3, r10, r6, r3\n\t"                                                                                           \
    "smlad r3, r9, r7, r3\n\t"

/* Accumulator `a` in the short form (m r4, round r5, right r6), stored at `dst`; r12 is free. None
 * of these instructions sets the flags (the row loop's end test lives across them). */
#define NN_MM4_REQUANT(a, dst)                                                                                             \
    "lsl " a ", " a ", #1\n\t"                                                                                            \
    "smmlar r12, " a ", r4, r5\n\t"                                                                                       \
    "add r12, r12, " a ", asr #31\n\t"                                                                                    \
    "asr r12, r12, r6\n\t"                                                                                                \
    "ssat r12, #8, r12\n\t"                                                                                               \
    "strb r12, " dst "\n\t"

/* Every row of the table against four columns, requantized (fast4 rows, depth a multiple of 8).
 * Registers in the dot loop: r0-r3 accumulators, r4-r7 column words, r8-r10 weights, r11 weight
 * pointer, r12 column pointer, lr the columns' end. A row starts with one LDM of its record (bias
 * four times, m, round, right, last, the columns) and saves what the loop overwrites (the record's
 * second half, the output pointer r9, the table pointer r10) with one PUSH. Stack frame (16 bytes):
 * the three output strides and the loop entry. */
__attribute__((naked, noinline)) static void nn_mm4_asm(const nn_mat_plan *plan __attribute__((unused)))
{
    __asm__ volatile("push {r4-r11, lr}\n\t"
                     "sub sp, sp, #16\n\t"
                     "ldm r0, {r1-r3}\n\t"
                     "stm sp, {r1-r3}\n\t"
                     "ldr r9, [r0, #12]\n\t"
                     "ldr r10, [r0, #16]\n\t"
                     "ldr r1, [r0, #20]\n\t"
                     "ldr r11, [r0, #28]\n\t"
                     "ldr r2, [r0, #32]\n\t"
                     "add lr, r1, r2\n\t"
                     "ldr r2, [r0, #36]\n\t"
                     "adr r3, 2f\n\t"
                     "add r3, r3, r2\n\t"
                     "orr r3, r3, #1\n\t"
                     "str r3, [sp, #12]\n\t"
                     "1:\n\t"
                     "ldm r10!, {r0-r7, r12}\n\t"
                     "push {r4-r7, r9, r10}\n\t"
                     "ldr pc, [sp, #36]\n\t"
                     ".p2align 2\n"
                     "2:\n\t"
                     NN_MM4_TWO_GROUPS
                     NN_MM4_TWO_GROUPS
                     NN_MM4_TWO_GROUPS
                     NN_MM4_TWO_GROUPS
                     NN_MM4_TWO_GROUPS
                     "3:\n\t"
                     ".if 3b - 2b != " NN_STR(NN_MM4_CHUNKS * NN_MM4_CHUNK_BYTES) "\n\t"
                     ".error \"nn_mm4_asm: the loop body is not NN_MM4_CHUNKS chunks of NN_MM4_CHUNK_BYTES\"\n\t"
                     ".endif\n\t"
                     "cmp r12, lr\n\t"
                     "bne 2b\n\t"
                     "pop {r4-r7, r9, r10}\n\t"
                     "cmp r7, #0\n\t"
                     "ldrd r7, r8, [sp]\n\t"
                     NN_MM4_REQUANT("r0", "[r9]")
                     "ldr r0, [sp, #8]\n\t"
                     NN_MM4_REQUANT("r1", "[r9, r7]")
                     NN_MM4_REQUANT("r2", "[r9, r8]")
                     NN_MM4_REQUANT("r3", "[r9, r0]")
                     "add r9, r9, #1\n\t"
                     "beq 1b\n\t"
                     "add sp, sp, #16\n\t"
                     "pop {r4-r11, pc}\n\t");
}

#endif /* NN_DSP_ASM */

static void nn_mat_plan_strides(nn_mat_plan *pl, int32_t n_out)
{
    int32_t c;
    for (c = 0; c < 3; ++c) {
        pl->stride[c] = nn_min32(c + 1, n_out - 1) * pl->out_stride;
    }
}

void nn_mat_plan_init(nn_mat_plan *pl, const int8_t *weights, int32_t rows, int32_t depth, const int16_t *cols, nn_row_requant *table,
                      const nn_requant *rq, int32_t out_stride)
{
    pl->out_stride = out_stride;
    nn_mat_plan_strides(pl, NN_MATMUL_COLS);
    pl->out = NULL;
    pl->table = table;
    pl->cols = cols;
    pl->table_end = table + rows;
    pl->weights = weights;
    pl->col_bytes = 8u * (uint32_t)depth;
#if NN_DSP_ASM
    pl->skip = (uint32_t)((NN_MM4_CHUNKS - (depth >> 3) % NN_MM4_CHUNKS) % NN_MM4_CHUNKS) * NN_MM4_CHUNK_BYTES;
    pl->use_asm = (depth & 7) == 0 && rq->fast4 && rows > 0;
    if (pl->use_asm) {
        int32_t r;
        for (r = 0; r < rows; ++r) {
            table[r].cols = (uint32_t)(uintptr_t)cols;
        }
    }
#else
    pl->skip = 0;
    pl->use_asm = 0;
#endif
    pl->rows = rows;
    pl->depth = depth;
    pl->rq = rq;
}

void nn_mat_plan_run(nn_mat_plan *pl, int8_t *out, int32_t n_out)
{
    if (n_out != NN_MATMUL_COLS) {
        nn_mat_plan_strides(pl, n_out);
    }
    pl->out = out;
#if NN_DSP_ASM
    if (pl->use_asm) {
        nn_mm4_asm(pl);
    } else
#endif
    {
        nn_mat_mult_rows(pl->weights, pl->rows, pl->depth, pl->cols, NN_MATMUL_COLS, n_out, pl->table, pl->rq, out, pl->out_stride);
    }
    if (n_out != NN_MATMUL_COLS) {
        nn_mat_plan_strides(pl, NN_MATMUL_COLS);
    }
}

void nn_mat_mult_s8_s16(const int8_t *weights, int32_t rows, int32_t depth, const int16_t *cols, int32_t n_cols, int32_t n_out,
                        nn_row_requant *table, const nn_requant *rq, int8_t *out, int32_t out_stride)
{
    if (n_cols == NN_MATMUL_COLS) {
        nn_mat_plan pl;
        nn_mat_plan_init(&pl, weights, rows, depth, cols, table, rq, out_stride);
        nn_mat_plan_run(&pl, out, n_out);
    } else {
        nn_mat_mult_rows(weights, rows, depth, cols, n_cols, n_out, table, rq, out, out_stride);
    }
}
