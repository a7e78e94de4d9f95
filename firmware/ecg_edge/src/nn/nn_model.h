/* The native int8 model interpreter: runs a model blob written by export/native_model.py (format: export/native_blob.py) with the
 * kernels of nn_kernels.h, bit-exact with TensorFlow Lite Micro's reference kernels.
 *
 * No heap: the caller owns the nn_model (a few kB; sized by NN_MAX_OPS and NN_MAX_TENSORS), the
 * blob (read in place, e.g. from flash: weights, biases, multipliers and shifts are never copied)
 * and the arena (activations and scratch, as planned by the exporter; nn_model_arena_bytes()).
 * The input tensor lives in the arena: write the quantized window to nn_model_input(), call
 * nn_model_invoke(), read nn_model_output(). The arena is reused, so the input is overwritten.
 *
 * Blob format, version 1 (all fields little-endian uint32/int32; every section 4-byte aligned):
 *
 *   header, 16 words:
 *     0 magic "ECNN"   1 version (1)        2 header bytes (64)   3 blob bytes (total)
 *     4 CRC-32 (zlib) of bytes [20, blob bytes)                    5 arena bytes
 *     6 tensors        7 ops                8 input tensor        9 output tensor
 *    10 tensor table offset                11 op table offset    12 op table bytes
 *    13 data offset    14 data bytes       15 MACs per inference
 *   tensor table, 4 words per tensor: location (0 arena, 1 blob data), offset (from the arena
 *     start, or from the blob start), bytes, reserved (0). Arena offsets are 4-byte aligned.
 *   op table, one record per op in execution order: word 0 = op type | (record words << 16)
 *     (the count includes word 0), then the op's int32 parameters (NN_OP_* below gives the order;
 *     blob offsets of weights, biases, multipliers and shifts; 0xFFFFFFFF for "none"). "scratch"
 *     is an arena offset: NN_MATMUL_SCRATCH_BYTES for CONV_2D / FULLY_CONNECTED (required
 *     unless the build is NN_FORCE_PORTABLE), NN_ADD_SCRATCH_BYTES for ADD, or none (then ADD
 *     runs its portable kernel).
 *   data: int8 weights and constant tensors, int32 biases, multipliers and shifts.
 *
 * nn_model_init checks everything before anything runs: magic, version, lengths, CRC, table
 * bounds, op types and record sizes, tensor indices, every offset inside the blob or the arena,
 * shapes consistent with tensor sizes, parameter ranges (shifts, zero points, activation limits)
 * and that no CONV_2D / FULLY_CONNECTED accumulator can overflow int32. A bad blob gives a status,
 * never an out-of-bounds access.
 */
#ifndef NN_MODEL_H
#define NN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "nn_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifndef NN_MAX_OPS
#define NN_MAX_OPS 48
#endif
#ifndef NN_MAX_TENSORS
#define NN_MAX_TENSORS 96
#endif

#define NN_BLOB_MAGIC "ECNN"
#define NN_BLOB_VERSION 1u
#define NN_BLOB_HEADER_BYTES 64u
#define NN_NONE 0xFFFFFFFFu

/* Op types in the blob. */
enum {
    NN_OP_PAD = 1,             /* in, out, in_dims[4], before[4], after[4], pad_value */
    NN_OP_RESHAPE = 2,         /* in, out */
    NN_OP_CONV_2D = 3,         /* in, out, scratch, batches, in_h, in_w, in_c, out_h, out_w, out_c, k_h, k_w,
                                  stride_h, stride_w, dil_h, dil_w, pad_h, pad_w, input_offset, output_offset,
                                  act_min, act_max, filter, bias, multipliers, shifts */
    NN_OP_FULLY_CONNECTED = 4, /* in, out, scratch, batches, accum_depth, out_depth, input_offset, output_offset,
                                  multiplier, shift, act_min, act_max, filter, bias */
    NN_OP_ADD = 5,             /* in1, in2, out, scratch, size, input1_offset, input2_offset, output_offset, left_shift,
                                  input1_multiplier, input1_shift, input2_multiplier, input2_shift,
                                  output_multiplier, output_shift, act_min, act_max */
    NN_OP_MAX_POOL_2D = 6,     /* in, out, batches, in_h, in_w, channels, out_h, out_w, filter_h, filter_w,
                                  stride_h, stride_w, pad_h, pad_w, act_min, act_max */
    NN_OP_MEAN = 7             /* in, out, outer, count, inner, requantize, input_zero_point, output_zero_point,
                                  multiplier, shift */
};

typedef enum {
    NN_OK = 0,
    NN_ERR_ARG,       /* a NULL pointer or an index out of range */
    NN_ERR_ALIGN,     /* blob or arena not 4-byte aligned */
    NN_ERR_ENDIAN,    /* this target is not little-endian */
    NN_ERR_MAGIC,     /* not a model blob */
    NN_ERR_VERSION,   /* a blob version this code does not read */
    NN_ERR_SIZE,      /* blob length differs from the header, or a section lies outside the blob */
    NN_ERR_CRC,       /* blob corrupted */
    NN_ERR_LIMITS,    /* more ops or tensors than NN_MAX_OPS / NN_MAX_TENSORS */
    NN_ERR_TENSOR,    /* a tensor entry outside the blob data or the planned arena */
    NN_ERR_OP,        /* unknown op type or wrong record length */
    NN_ERR_PARAM,     /* op parameters inconsistent with the tensors or out of range */
    NN_ERR_OVERFLOW,  /* an accumulator could overflow int32 */
    NN_ERR_ARENA,     /* arena smaller than the plan needs */
    NN_ERR_NOT_READY  /* no successfully initialised model */
} nn_status;

const char *nn_status_str(nn_status s);

typedef struct {
    const int8_t *data;
    int8_t *writable; /* NULL for constants in the blob */
    uint32_t bytes;
} nn_tensor;

typedef struct {
    uint32_t type;
    uint32_t in0, in1, out; /* tensor indices (in1 only for ADD) */
    void *scratch;          /* arena scratch (CONV_2D / FULLY_CONNECTED im2col, ADD tables), or NULL */
    union {
        nn_conv_params conv;
        nn_fc_params fc;
        nn_add_params add;
        nn_pool_params pool;
        nn_mean_params mean;
        nn_pad_params pad;
    } p;
} nn_op;

typedef struct {
    const uint8_t *blob;
    size_t blob_len;
    int8_t *arena;
    uint32_t arena_bytes;
    uint32_t n_tensors, n_ops, input, output, macs;
    int32_t error_op; /* the op whose record was refused by the last nn_model_init, or -1 */
    int ready;
    nn_tensor tensors[NN_MAX_TENSORS];
    nn_op ops[NN_MAX_OPS];
} nn_model;

/* Validate `blob` and bind it to `arena` (4-byte aligned, at least the plan's arena bytes). */
nn_status nn_model_init(nn_model *m, const uint8_t *blob, size_t blob_len, int8_t *arena, size_t arena_len);
/* The input tensor inside the arena: the caller writes the quantized window there. NULL if not ready. */
int8_t *nn_model_input(nn_model *m);
const int8_t *nn_model_output(const nn_model *m);
size_t nn_model_input_bytes(const nn_model *m);
size_t nn_model_output_bytes(const nn_model *m);
/* What the blob's plan needs (activations and scratch); 0 if not ready. */
size_t nn_model_arena_bytes(const nn_model *m);
/* Multiply-accumulates per inference, as the exporter counted them. */
uint32_t nn_model_macs(const nn_model *m);
nn_status nn_model_invoke(nn_model *m);

/* Op-level access (per-op timing, debugging). */
size_t nn_model_op_count(const nn_model *m);
/* Runs op `i` only; ops must run in order for the result to mean anything. */
nn_status nn_model_invoke_op(nn_model *m, size_t i);
/* "CONV_2D", ...; "?" for an index out of range. */
const char *nn_model_op_name(const nn_model *m, size_t i);
/* Index of the op whose record nn_model_init refused, or -1. */
int32_t nn_model_error_op(const nn_model *m);

#ifdef __cplusplus
}
#endif

#endif /* NN_MODEL_H */
