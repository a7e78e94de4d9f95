/* int8 kernels, one op per source file, each with an explicit parameter struct (the shape of
 * TensorFlow Lite Micro's reference kernels and of CMSIS-NN). Every kernel computes exactly what
 * TFLM's reference kernel computes for the same quantized parameters; the exporter
 * (export/native_model.py) derives those parameters from the .tflite the way TFLM's Prepare does.
 *
 * Layout: NHWC, int8 activations; offsets are TFLite's: input_offset = -input zero point,
 * output_offset = output zero point. act_min/act_max: the fused activation's int8 range.
 *
 * CONV_2D and FULLY_CONNECTED have two implementations with bit-identical results: *_portable
 * (plain loops in the reference's order) and *_fast (im2col into int16, then SMLAD on pairs, one
 * output channel x 4 output positions per inner loop; see nn_matmul.c; the input offset folded into
 * the bias). Integer sums are exact in any order as long as the final one fits int32,
 * which the exporter and nn_model_init both check (partial sums wrap modulo 2^32 like SMLAD). ADD
 * (lookup tables) and MAX_POOL_2D (four channels per SEL) have a fast path too. The plain
 * nn_<op>_s8 entry points pick the fast one unless NN_FORCE_PORTABLE is non-zero; CONV_2D and
 * FULLY_CONNECTED then need their scratch (nn_model_init refuses a record without it), ADD runs
 * its portable loop without tables.
 */
#ifndef NN_KERNELS_H
#define NN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef NN_FORCE_PORTABLE
#define NN_FORCE_PORTABLE 0
#endif

/* ------------------------------------------------------------------------------------ CONV_2D */

typedef struct {
    int32_t batches, in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w, dil_h, dil_w;
    int32_t pad_h, pad_w;          /* leading padding (TFLite's ComputePaddingHeightWidth) */
    int32_t input_offset, output_offset, act_min, act_max;
    const int8_t *filter;          /* [out_c][k_h][k_w][in_c], zero point 0 */
    const int32_t *bias;           /* [out_c] or NULL */
    const int32_t *multiplier;     /* [out_c], >= 0 */
    const int32_t *shift;          /* [out_c], -31..30 */
    /* Non-zero only if every |accumulator| stays below 2^30 (nn_model_init works it out): the
     * optimized path may then use nn_rounding_divide_by_pot_bounded for channels with shift <= -1. */
    int32_t bounded;
} nn_conv_params;

void nn_conv_s8(const nn_conv_params *p, const int8_t *input, int8_t *output, int16_t *scratch);
void nn_conv_s8_portable(const nn_conv_params *p, const int8_t *input, int8_t *output);
void nn_conv_s8_fast(const nn_conv_params *p, const int8_t *input, int8_t *output, int16_t *scratch);
/* Bytes of int16 scratch (4-byte aligned) nn_conv_s8_fast needs: four im2col columns. */
size_t nn_conv_s8_scratch_bytes(const nn_conv_params *p);

/* ---------------------------------------------------------------------------- FULLY_CONNECTED */

typedef struct {
    int32_t batches, accum_depth, out_depth;
    int32_t input_offset, output_offset;
    int32_t multiplier, shift;     /* per tensor */
    int32_t act_min, act_max;
    const int8_t *filter;          /* [out_depth][accum_depth], zero point 0 */
    const int32_t *bias;           /* [out_depth] or NULL */
    int32_t bounded;               /* as nn_conv_params.bounded */
} nn_fc_params;

void nn_fully_connected_s8(const nn_fc_params *p, const int8_t *input, int8_t *output, int16_t *scratch);
void nn_fully_connected_s8_portable(const nn_fc_params *p, const int8_t *input, int8_t *output);
void nn_fully_connected_s8_fast(const nn_fc_params *p, const int8_t *input, int8_t *output, int16_t *scratch);
size_t nn_fully_connected_s8_scratch_bytes(const nn_fc_params *p);

/* ---------------------------------------------------------------------- shared matrix kernel */

/* Requantization of a matrix product: per row (per_channel != 0) or one multiplier/shift. */
typedef struct {
    const int32_t *multiplier;
    const int32_t *shift;
    int32_t per_channel;
    int32_t output_offset, act_min, act_max;
    int32_t bounded; /* see nn_conv_params.bounded */
    int32_t fast4;   /* set by nn_row_requant_prepare: every row fast and the output range all of int8 */
} nn_requant;

/* Columns of int16 values (the input) as nn_mat_mult_s8_s16 reads them: n_cols (1 to 4)
 * columns of depth d interleaved. With G = d / 4 full groups, group g of column c sits at
 * [4 n g + 4 c, 4 n g + 4 c + 4) in the order x0 x2 x1 x3 (what SXTB16 and SXTB16 ROR #8 give for
 * four int8 weights); tail value k >= 4G of column c sits at n k + c. n columns take n * d int16. */
int32_t nn_column_index(int32_t k, int32_t depth, int32_t n_cols, int32_t c);
/* Depth indices k0 .. k0 + n - 1 of column c := src[i] (`fill` when src is NULL): the input without
 * its offset, which the kernels fold into the bias (nn_row_requant_prepare). */
void nn_column_put(int16_t *cols, int32_t depth, int32_t n_cols, int32_t c, int32_t k0, const int8_t *src, int32_t n, int32_t fill);
/* Four columns of `groups` groups at once (nn_column_index's layout, n_cols = 4, from group 0 of
 * `cols`): column c is the int8 run src + c * col_step, sign-extended without an offset. */
void nn_columns4_put(int16_t *cols, const int8_t *src, int32_t col_step, int32_t groups);

/* Per-row requantization prepared once per op (in the scratch): the bias (0 if none) once per
 * column (the accumulators' start values, loaded at once), and when the row can take the short
 * form (nn_requant.bounded and -22 <= shift <= -1; see nn_matmul.c) its multiplier, right shift
 * and rounding constant with the output offset folded in; right = 0 sends the row to the general
 * form. */
typedef struct {
    int32_t bias[4];
    int32_t multiplier;
    int32_t round; /* 2^(right - 1) + output_offset * 2^right */
    int32_t right;
    int32_t last;  /* 1 in the table's last row */
    uint32_t cols; /* the Cortex-M4 kernel's column buffer address (nn_mat_plan_init), else 0 */
} nn_row_requant;

/* Fills `table` and rq->fast4. With fold_offset != 0 the row's bias becomes
 * bias + fold_offset * sum_k weights[r][k] (modulo 2^32), for columns that hold the input without its
 * offset (x instead of x + input_offset; padding then holds -input_offset, the zero point, and still
 * contributes nothing): the same sums, one addition fewer per column value. */
void nn_row_requant_prepare(const int32_t *bias, nn_requant *rq, int32_t rows, nn_row_requant *table, const int8_t *weights, int32_t depth,
                            int32_t fold_offset);

/* out[min(c, n_out - 1) * out_stride + r] = requant(bias[r] + sum_k weights[r][k] * column c [k]) for
 * r < rows and c < n_cols (1 to 4; `cols` 4-byte aligned; `table` from nn_row_requant_prepare):
 * columns from n_out on (1 <= n_out <= n_cols) repeat column n_out - 1, so that a short block can run
 * as four columns. Four columns, a depth that is a multiple of 8 and rq->fast4 take the assembly
 * kernel on the Cortex-M4. */
void nn_mat_mult_s8_s16(const int8_t *weights, int32_t rows, int32_t depth, const int16_t *cols, int32_t n_cols, int32_t n_out,
                        nn_row_requant *table, const nn_requant *rq, int8_t *out, int32_t out_stride);

/* The same product run block after block over the same weights, table and column buffer (CONV_2D):
 * what nn_mat_mult_s8_s16 works out on every call, worked out once. The first ten fields are what
 * the Cortex-M4 kernel reads (nn_matmul.c fixes their offsets). */
typedef struct {
    int32_t stride[3]; /* columns 1..3: their output offsets (out_stride times 1..3, capped for short blocks) */
    int8_t *out;
    const nn_row_requant *table;
    const int16_t *cols;
    const nn_row_requant *table_end;
    const int8_t *weights;
    uint32_t col_bytes, skip;
    int32_t rows, depth, out_stride, use_asm;
    const nn_requant *rq;
} nn_mat_plan;

/* `cols` holds four columns; `rq` and `table` stay valid while the plan runs. */
void nn_mat_plan_init(nn_mat_plan *pl, const int8_t *weights, int32_t rows, int32_t depth, const int16_t *cols, nn_row_requant *table,
                      const nn_requant *rq, int32_t out_stride);
/* nn_mat_mult_s8_s16 on the plan's four columns into `out`, columns from n_out on repeating column n_out - 1. */
void nn_mat_plan_run(nn_mat_plan *pl, int8_t *out, int32_t n_out);

#define NN_MATMUL_COLS 4
/* Scratch bytes of the optimized CONV_2D / FULLY_CONNECTED: NN_MATMUL_COLS columns of `depth` int16,
 * then one nn_row_requant per output channel. */
#define NN_MATMUL_SCRATCH_BYTES(depth, rows) \
    ((size_t)NN_MATMUL_COLS * (size_t)(depth) * sizeof(int16_t) + (size_t)(rows) * sizeof(nn_row_requant))

/* ---------------------------------------------------------------------------------------- ADD */

typedef struct {
    int32_t size;                  /* elements; both inputs and the output have this shape */
    int32_t input1_offset, input2_offset, output_offset;
    int32_t left_shift;            /* 20 for int8 */
    int32_t input1_multiplier, input1_shift, input2_multiplier, input2_shift;
    int32_t output_multiplier, output_shift;
    int32_t act_min, act_max;
} nn_add_params;

/* With `scratch` (NN_ADD_SCRATCH_BYTES, 4-byte aligned) and not NN_FORCE_PORTABLE, the rescaled
 * inputs come from two 256-entry tables computed first (the same function, so the same values). */
#define NN_ADD_SCRATCH_BYTES (2u * 256u * sizeof(int32_t))
void nn_add_s8(const nn_add_params *p, const int8_t *input1, const int8_t *input2, int8_t *output, int32_t *scratch);

/* -------------------------------------------------------------------------------- MAX_POOL_2D */

typedef struct {
    int32_t batches, in_h, in_w, channels;
    int32_t out_h, out_w;
    int32_t filter_h, filter_w, stride_h, stride_w, pad_h, pad_w;
    int32_t act_min, act_max;
} nn_pool_params;

void nn_max_pool_s8(const nn_pool_params *p, const int8_t *input, int8_t *output);
void nn_max_pool_s8_portable(const nn_pool_params *p, const int8_t *input, int8_t *output);
void nn_max_pool_s8_fast(const nn_pool_params *p, const int8_t *input, int8_t *output);

/* --------------------------------------------------------------------------------------- MEAN */

typedef struct {
    int32_t outer, count, inner;   /* input viewed as [outer][count][inner], output [outer][inner] */
    /* 1: TFLM's reference_ops::QuantizedMeanOrSum: (sum - zp_in * count) requantized with the
     *    multiplier and shift into which 1/count is already folded (the exporter folds it as TFLM
     *    does). What the tflite-micro runtime runs for every int8 MEAN.
     * 0: reference_ops::Mean, int32 sum / count (truncating), which older TFLM releases ran when
     *    input and output share scale and zero point (export: build_native_model(plain_mean=True)). */
    int32_t requantize;
    int32_t input_zero_point, output_zero_point;
    int32_t multiplier, shift;
} nn_mean_params;

void nn_mean_s8(const nn_mean_params *p, const int8_t *input, int8_t *output);

/* ---------------------------------------------------------------------------------------- PAD */

#define NN_PAD_DIMS 4

typedef struct {
    int32_t in_dims[NN_PAD_DIMS];  /* the input shape, extended to 4-D with leading 1s */
    int32_t before[NN_PAD_DIMS], after[NN_PAD_DIMS];
    int32_t pad_value;             /* the output zero point */
} nn_pad_params;

void nn_pad_s8(const nn_pad_params *p, const int8_t *input, int8_t *output);

/* ------------------------------------------------------------------------------------ RESHAPE */

/* A copy when the output does not share the input's storage (the exporter normally aliases them). */
void nn_reshape_s8(size_t bytes, const int8_t *input, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* NN_KERNELS_H */
