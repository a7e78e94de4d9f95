/* Model blob validation and the op loop (format: nn_model.h). */
#include "nn_model.h"

#include <string.h>

#include "nn_fixedpoint.h"

#define NN_MAX_DIM 65535     /* any one tensor dimension */
#define NN_MAX_WINDOW 1023   /* kernel and pool sizes, strides, dilations, paddings */
#define NN_MAX_MEAN_COUNT ((int32_t)1 << 23) /* keeps the int32 sum of a MEAN and its zero-point term exact */

/* ------------------------------------------------------------------------------ small helpers */

static uint32_t nn_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* Two's complement reinterpretation without implementation-defined conversion. */
static int32_t nn_as_i32(uint32_t u)
{
    return u <= (uint32_t)INT32_MAX ? (int32_t)u : -(int32_t)(~u) - 1;
}

static int nn_in_range(int32_t v, int32_t lo, int32_t hi)
{
    return v >= lo && v <= hi;
}

static int nn_is_little_endian(void)
{
    const uint32_t one = 1u;
    uint8_t first;
    memcpy(&first, &one, 1);
    return first == 1u;
}

/* CRC-32 (zlib's: reflected polynomial 0xEDB88320), four bits at a time. */
static uint32_t nn_crc32(const uint8_t *p, size_t n)
{
    static const uint32_t table[16] = {
        0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u, 0x4DB26158u, 0x5005713Cu,
        0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu, 0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
    };
    uint32_t crc = 0xFFFFFFFFu;
    size_t i;
    for (i = 0; i < n; ++i) {
        crc ^= p[i];
        crc = (crc >> 4) ^ table[crc & 15u];
        crc = (crc >> 4) ^ table[crc & 15u];
    }
    return ~crc;
}

/* Reads an op record's parameter words in order (the length was checked before). */
typedef struct {
    const uint8_t *p;
} nn_reader;

static uint32_t nn_u32(nn_reader *r)
{
    const uint32_t v = nn_rd32(r->p);
    r->p += 4;
    return v;
}

static int32_t nn_i32(nn_reader *r)
{
    return nn_as_i32(nn_u32(r));
}

/* ------------------------------------------------------------------------- blob and arena views */

/* A region of the blob's data section; NULL if it is not entirely inside or misaligned. */
static const uint8_t *nn_blob_region(const nn_model *m, uint32_t offset, uint64_t bytes, uint32_t align)
{
    const uint32_t data_off = nn_rd32(m->blob + 52);
    const uint32_t data_bytes = nn_rd32(m->blob + 56);
    if (offset == NN_NONE || offset % align != 0u || offset < data_off ||
        (uint64_t)offset + bytes > (uint64_t)data_off + data_bytes) {
        return NULL;
    }
    return m->blob + offset;
}

static const int32_t *nn_blob_i32(const nn_model *m, uint32_t offset, uint64_t count)
{
    const uint8_t *p = nn_blob_region(m, offset, count * 4u, 4u);
    return p != NULL ? (const int32_t *)(const void *)p : NULL; /* 4-byte aligned: checked */
}

static int nn_tensor_is(const nn_model *m, uint32_t index, uint64_t bytes)
{
    return index < m->n_tensors && (uint64_t)m->tensors[index].bytes == bytes;
}

static int nn_output_is(const nn_model *m, uint32_t index, uint64_t bytes)
{
    return nn_tensor_is(m, index, bytes) && m->tensors[index].writable != NULL;
}

static int nn_disjoint(const int8_t *a, uint64_t a_bytes, const int8_t *b, uint64_t b_bytes)
{
    const uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;
    return (uint64_t)pa + a_bytes <= (uint64_t)pb || (uint64_t)pb + b_bytes <= (uint64_t)pa;
}

static int nn_tensors_disjoint(const nn_model *m, uint32_t a, uint32_t b)
{
    return nn_disjoint(m->tensors[a].data, m->tensors[a].bytes, m->tensors[b].data, m->tensors[b].bytes);
}

/* The matrix kernels' scratch (CONV_2D, FULLY_CONNECTED): required unless the build runs the
 * portable kernels only, so that an optimized build never falls back to them unnoticed. */
static nn_status nn_bind_matmul_scratch(const nn_model *m, nn_op *op, uint32_t offset, size_t bytes);

/* Scratch in the arena at `offset` (4-byte aligned), disjoint from the op's tensors. */
static nn_status nn_bind_scratch(const nn_model *m, nn_op *op, uint32_t offset, size_t bytes)
{
    int8_t *s;
    if (offset == NN_NONE) {
        op->scratch = NULL;
        return NN_OK;
    }
    if (offset % 4u != 0u || (uint64_t)offset + bytes > m->arena_bytes) {
        return NN_ERR_PARAM;
    }
    s = m->arena + offset;
    if (!nn_disjoint(s, bytes, m->tensors[op->in0].data, m->tensors[op->in0].bytes) ||
        !nn_disjoint(s, bytes, m->tensors[op->out].data, m->tensors[op->out].bytes) ||
        (op->type == NN_OP_ADD && !nn_disjoint(s, bytes, m->tensors[op->in1].data, m->tensors[op->in1].bytes))) {
        return NN_ERR_PARAM;
    }
    op->scratch = s; /* 4-byte aligned: checked */
    return NN_OK;
}

static nn_status nn_bind_matmul_scratch(const nn_model *m, nn_op *op, uint32_t offset, size_t bytes)
{
    if (!NN_FORCE_PORTABLE && offset == NN_NONE) {
        return NN_ERR_PARAM;
    }
    return nn_bind_scratch(m, op, offset, bytes);
}

static int nn_dim_ok(int32_t v)
{
    return nn_in_range(v, 1, NN_MAX_DIM);
}

static int nn_window_ok(int32_t v)
{
    return nn_in_range(v, 1, NN_MAX_WINDOW);
}

static int nn_activation_ok(int32_t lo, int32_t hi)
{
    return nn_in_range(lo, NN_INT8_MIN, NN_INT8_MAX) && nn_in_range(hi, lo, NN_INT8_MAX);
}

/* Zero points are int8, so input offsets (-zero point) lie in [-127, 128]. */
static int nn_offsets_ok(int32_t input_offset, int32_t output_offset)
{
    return nn_in_range(input_offset, -NN_INT8_MAX, -NN_INT8_MIN) && nn_in_range(output_offset, NN_INT8_MIN, NN_INT8_MAX);
}

static int nn_requant_ok(int32_t multiplier, int32_t shift)
{
    return multiplier >= 0 && nn_in_range(shift, -31, 30);
}

/* Largest |x + input_offset| over int8 x. */
static int64_t nn_max_input_magnitude(int32_t input_offset)
{
    const int64_t lo = (int64_t)NN_INT8_MIN + input_offset, hi = (int64_t)NN_INT8_MAX + input_offset;
    const int64_t a = lo < 0 ? -lo : lo, b = hi < 0 ? -hi : hi;
    return a > b ? a : b;
}

/* The largest worst-case |accumulator| over the rows of `rows` x `depth` weights (plus bias). When
 * it fits int32, every partial sum in any order does too: the portable and the optimized path then
 * agree exactly. */
static int64_t nn_accumulator_bound(const int8_t *w, const int32_t *bias, int32_t rows, int32_t depth, int32_t input_offset)
{
    const int64_t x_max = nn_max_input_magnitude(input_offset);
    int64_t worst = 0;
    int32_t r, k;
    for (r = 0; r < rows; ++r) {
        int64_t s = 0;
        const int8_t *row = w + (size_t)r * (size_t)depth;
        for (k = 0; k < depth; ++k) {
            s += (row[k] < 0 ? -(int64_t)row[k] : (int64_t)row[k]);
        }
        s *= x_max;
        if (bias != NULL) {
            s += bias[r] < 0 ? -(int64_t)bias[r] : (int64_t)bias[r];
        }
        worst = s > worst ? s : worst;
    }
    return worst;
}

/* nn_conv_params.bounded: accumulators below 2^30, so that for a shift <= -1 (a multiplier below
 * one half) |srdhm(acc, m)| + 2^(-shift - 1) stays below 2^31, as nn_rounding_divide_by_pot_bounded
 * needs. */
static int32_t nn_requant_bounded(int64_t bound)
{
    return bound < ((int64_t)1 << 30);
}

/* ----------------------------------------------------------------------------- op parsers */

static nn_status nn_parse_conv(nn_model *m, nn_op *op, nn_reader *r)
{
    nn_conv_params *c = &op->p.conv;
    uint32_t scratch_off, filter_off, bias_off, mult_off, shift_off;
    uint64_t weights;
    int64_t bound;
    int32_t i;
    op->in0 = nn_u32(r);
    op->out = nn_u32(r);
    scratch_off = nn_u32(r);
    c->batches = nn_i32(r);
    c->in_h = nn_i32(r);
    c->in_w = nn_i32(r);
    c->in_c = nn_i32(r);
    c->out_h = nn_i32(r);
    c->out_w = nn_i32(r);
    c->out_c = nn_i32(r);
    c->k_h = nn_i32(r);
    c->k_w = nn_i32(r);
    c->stride_h = nn_i32(r);
    c->stride_w = nn_i32(r);
    c->dil_h = nn_i32(r);
    c->dil_w = nn_i32(r);
    c->pad_h = nn_i32(r);
    c->pad_w = nn_i32(r);
    c->input_offset = nn_i32(r);
    c->output_offset = nn_i32(r);
    c->act_min = nn_i32(r);
    c->act_max = nn_i32(r);
    filter_off = nn_u32(r);
    bias_off = nn_u32(r);
    mult_off = nn_u32(r);
    shift_off = nn_u32(r);
    if (!nn_dim_ok(c->batches) || !nn_dim_ok(c->in_h) || !nn_dim_ok(c->in_w) || !nn_dim_ok(c->in_c) || !nn_dim_ok(c->out_h) ||
        !nn_dim_ok(c->out_w) || !nn_dim_ok(c->out_c) || !nn_window_ok(c->k_h) || !nn_window_ok(c->k_w) ||
        !nn_window_ok(c->stride_h) || !nn_window_ok(c->stride_w) || !nn_window_ok(c->dil_h) || !nn_window_ok(c->dil_w) ||
        !nn_in_range(c->pad_h, 0, NN_MAX_WINDOW) || !nn_in_range(c->pad_w, 0, NN_MAX_WINDOW) ||
        !nn_offsets_ok(c->input_offset, c->output_offset) || !nn_activation_ok(c->act_min, c->act_max)) {
        return NN_ERR_PARAM;
    }
    weights = (uint64_t)c->out_c * (uint64_t)c->k_h * (uint64_t)c->k_w * (uint64_t)c->in_c;
    if (weights > (uint64_t)INT32_MAX ||
        !nn_tensor_is(m, op->in0, (uint64_t)c->batches * (uint64_t)c->in_h * (uint64_t)c->in_w * (uint64_t)c->in_c) ||
        !nn_output_is(m, op->out, (uint64_t)c->batches * (uint64_t)c->out_h * (uint64_t)c->out_w * (uint64_t)c->out_c) ||
        !nn_tensors_disjoint(m, op->in0, op->out)) {
        return NN_ERR_PARAM;
    }
    c->filter = (const int8_t *)nn_blob_region(m, filter_off, weights, 1u);
    c->bias = bias_off == NN_NONE ? NULL : nn_blob_i32(m, bias_off, (uint64_t)c->out_c);
    c->multiplier = nn_blob_i32(m, mult_off, (uint64_t)c->out_c);
    c->shift = nn_blob_i32(m, shift_off, (uint64_t)c->out_c);
    if (c->filter == NULL || (bias_off != NN_NONE && c->bias == NULL) || c->multiplier == NULL || c->shift == NULL) {
        return NN_ERR_PARAM;
    }
    for (i = 0; i < c->out_c; ++i) {
        if (!nn_requant_ok(c->multiplier[i], c->shift[i])) {
            return NN_ERR_PARAM;
        }
    }
    bound = nn_accumulator_bound(c->filter, c->bias, c->out_c, c->k_h * c->k_w * c->in_c, c->input_offset);
    if (bound > (int64_t)INT32_MAX) {
        return NN_ERR_OVERFLOW;
    }
    c->bounded = nn_requant_bounded(bound);
    return nn_bind_matmul_scratch(m, op, scratch_off, nn_conv_s8_scratch_bytes(c));
}

static nn_status nn_parse_fc(nn_model *m, nn_op *op, nn_reader *r)
{
    nn_fc_params *f = &op->p.fc;
    uint32_t scratch_off, filter_off, bias_off;
    int64_t bound;
    op->in0 = nn_u32(r);
    op->out = nn_u32(r);
    scratch_off = nn_u32(r);
    f->batches = nn_i32(r);
    f->accum_depth = nn_i32(r);
    f->out_depth = nn_i32(r);
    f->input_offset = nn_i32(r);
    f->output_offset = nn_i32(r);
    f->multiplier = nn_i32(r);
    f->shift = nn_i32(r);
    f->act_min = nn_i32(r);
    f->act_max = nn_i32(r);
    filter_off = nn_u32(r);
    bias_off = nn_u32(r);
    if (!nn_dim_ok(f->batches) || !nn_dim_ok(f->accum_depth) || !nn_dim_ok(f->out_depth) ||
        !nn_offsets_ok(f->input_offset, f->output_offset) || !nn_requant_ok(f->multiplier, f->shift) ||
        !nn_activation_ok(f->act_min, f->act_max) ||
        !nn_tensor_is(m, op->in0, (uint64_t)f->batches * (uint64_t)f->accum_depth) ||
        !nn_output_is(m, op->out, (uint64_t)f->batches * (uint64_t)f->out_depth) || !nn_tensors_disjoint(m, op->in0, op->out)) {
        return NN_ERR_PARAM;
    }
    f->filter = (const int8_t *)nn_blob_region(m, filter_off, (uint64_t)f->out_depth * (uint64_t)f->accum_depth, 1u);
    f->bias = bias_off == NN_NONE ? NULL : nn_blob_i32(m, bias_off, (uint64_t)f->out_depth);
    if (f->filter == NULL || (bias_off != NN_NONE && f->bias == NULL)) {
        return NN_ERR_PARAM;
    }
    bound = nn_accumulator_bound(f->filter, f->bias, f->out_depth, f->accum_depth, f->input_offset);
    if (bound > (int64_t)INT32_MAX) {
        return NN_ERR_OVERFLOW;
    }
    f->bounded = nn_requant_bounded(bound);
    return nn_bind_matmul_scratch(m, op, scratch_off, nn_fully_connected_s8_scratch_bytes(f));
}

static nn_status nn_parse_add(nn_model *m, nn_op *op, nn_reader *r)
{
    nn_add_params *a = &op->p.add;
    uint32_t scratch_off;
    op->in0 = nn_u32(r);
    op->in1 = nn_u32(r);
    op->out = nn_u32(r);
    scratch_off = nn_u32(r);
    a->size = nn_i32(r);
    a->input1_offset = nn_i32(r);
    a->input2_offset = nn_i32(r);
    a->output_offset = nn_i32(r);
    a->left_shift = nn_i32(r);
    a->input1_multiplier = nn_i32(r);
    a->input1_shift = nn_i32(r);
    a->input2_multiplier = nn_i32(r);
    a->input2_shift = nn_i32(r);
    a->output_multiplier = nn_i32(r);
    a->output_shift = nn_i32(r);
    a->act_min = nn_i32(r);
    a->act_max = nn_i32(r);
    /* left_shift <= 20 keeps (x + offset) << left_shift and the sum of both scaled inputs in int32. */
    if (a->size < 1 || !nn_offsets_ok(a->input1_offset, a->output_offset) || !nn_offsets_ok(a->input2_offset, 0) ||
        !nn_in_range(a->left_shift, 0, 20) || a->input1_multiplier < 0 || a->input2_multiplier < 0 || a->output_multiplier < 0 ||
        !nn_in_range(a->input1_shift, -31, 0) || !nn_in_range(a->input2_shift, -31, 0) || !nn_in_range(a->output_shift, -31, 0) ||
        !nn_activation_ok(a->act_min, a->act_max) || !nn_tensor_is(m, op->in0, (uint64_t)a->size) ||
        !nn_tensor_is(m, op->in1, (uint64_t)a->size) || !nn_output_is(m, op->out, (uint64_t)a->size) ||
        !nn_tensors_disjoint(m, op->in0, op->out) || !nn_tensors_disjoint(m, op->in1, op->out)) {
        return NN_ERR_PARAM;
    }
    return nn_bind_scratch(m, op, scratch_off, NN_ADD_SCRATCH_BYTES);
}

static nn_status nn_parse_pool(nn_model *m, nn_op *op, nn_reader *r)
{
    nn_pool_params *p = &op->p.pool;
    op->in0 = nn_u32(r);
    op->out = nn_u32(r);
    p->batches = nn_i32(r);
    p->in_h = nn_i32(r);
    p->in_w = nn_i32(r);
    p->channels = nn_i32(r);
    p->out_h = nn_i32(r);
    p->out_w = nn_i32(r);
    p->filter_h = nn_i32(r);
    p->filter_w = nn_i32(r);
    p->stride_h = nn_i32(r);
    p->stride_w = nn_i32(r);
    p->pad_h = nn_i32(r);
    p->pad_w = nn_i32(r);
    p->act_min = nn_i32(r);
    p->act_max = nn_i32(r);
    if (!nn_dim_ok(p->batches) || !nn_dim_ok(p->in_h) || !nn_dim_ok(p->in_w) || !nn_dim_ok(p->channels) ||
        !nn_dim_ok(p->out_h) || !nn_dim_ok(p->out_w) || !nn_window_ok(p->filter_h) || !nn_window_ok(p->filter_w) ||
        !nn_window_ok(p->stride_h) || !nn_window_ok(p->stride_w) || !nn_in_range(p->pad_h, 0, NN_MAX_WINDOW) ||
        !nn_in_range(p->pad_w, 0, NN_MAX_WINDOW) || !nn_activation_ok(p->act_min, p->act_max) ||
        !nn_tensor_is(m, op->in0, (uint64_t)p->batches * (uint64_t)p->in_h * (uint64_t)p->in_w * (uint64_t)p->channels) ||
        !nn_output_is(m, op->out, (uint64_t)p->batches * (uint64_t)p->out_h * (uint64_t)p->out_w * (uint64_t)p->channels) ||
        !nn_tensors_disjoint(m, op->in0, op->out)) {
        return NN_ERR_PARAM;
    }
    return NN_OK;
}

static nn_status nn_parse_mean(nn_model *m, nn_op *op, nn_reader *r)
{
    nn_mean_params *p = &op->p.mean;
    op->in0 = nn_u32(r);
    op->out = nn_u32(r);
    p->outer = nn_i32(r);
    p->count = nn_i32(r);
    p->inner = nn_i32(r);
    p->requantize = nn_i32(r);
    p->input_zero_point = nn_i32(r);
    p->output_zero_point = nn_i32(r);
    p->multiplier = nn_i32(r);
    p->shift = nn_i32(r);
    if (!nn_in_range(p->outer, 1, NN_MAX_MEAN_COUNT) || !nn_in_range(p->count, 1, NN_MAX_MEAN_COUNT) ||
        !nn_in_range(p->inner, 1, NN_MAX_MEAN_COUNT) || !nn_in_range(p->requantize, 0, 1) ||
        !nn_in_range(p->input_zero_point, NN_INT8_MIN, NN_INT8_MAX) || !nn_in_range(p->output_zero_point, NN_INT8_MIN, NN_INT8_MAX) ||
        !nn_requant_ok(p->multiplier, p->shift) ||
        !nn_tensor_is(m, op->in0, (uint64_t)p->outer * (uint64_t)p->count * (uint64_t)p->inner) ||
        !nn_output_is(m, op->out, (uint64_t)p->outer * (uint64_t)p->inner) || !nn_tensors_disjoint(m, op->in0, op->out)) {
        return NN_ERR_PARAM;
    }
    return NN_OK;
}

static nn_status nn_parse_pad(nn_model *m, nn_op *op, nn_reader *r)
{
    nn_pad_params *p = &op->p.pad;
    uint64_t in_bytes = 1, out_bytes = 1;
    int32_t i;
    op->in0 = nn_u32(r);
    op->out = nn_u32(r);
    for (i = 0; i < NN_PAD_DIMS; ++i) {
        p->in_dims[i] = nn_i32(r);
    }
    for (i = 0; i < NN_PAD_DIMS; ++i) {
        p->before[i] = nn_i32(r);
    }
    for (i = 0; i < NN_PAD_DIMS; ++i) {
        p->after[i] = nn_i32(r);
    }
    p->pad_value = nn_i32(r);
    /* Dimensions up to INT32_MAX (the exporter folds unpadded axes together); the running products
     * stay below 2^62 because each is checked against INT32_MAX before the next factor. */
    for (i = 0; i < NN_PAD_DIMS; ++i) {
        const uint64_t out_dim = (uint64_t)p->in_dims[i] + (uint64_t)p->before[i] + (uint64_t)p->after[i];
        if (p->in_dims[i] < 1 || p->before[i] < 0 || p->after[i] < 0 || out_dim > (uint64_t)INT32_MAX) {
            return NN_ERR_PARAM;
        }
        in_bytes *= (uint64_t)p->in_dims[i];
        out_bytes *= out_dim;
        if (out_bytes > (uint64_t)INT32_MAX) {
            return NN_ERR_PARAM;
        }
    }
    if (!nn_in_range(p->pad_value, NN_INT8_MIN, NN_INT8_MAX) || !nn_tensor_is(m, op->in0, in_bytes) || !nn_output_is(m, op->out, out_bytes) ||
        !nn_tensors_disjoint(m, op->in0, op->out)) {
        return NN_ERR_PARAM;
    }
    return NN_OK;
}

static nn_status nn_parse_reshape(nn_model *m, nn_op *op, nn_reader *r)
{
    op->in0 = nn_u32(r);
    op->out = nn_u32(r);
    if (op->in0 >= m->n_tensors || !nn_output_is(m, op->out, m->tensors[op->in0].bytes)) {
        return NN_ERR_PARAM;
    }
    /* Either the same storage (aliased by the planner) or none shared. */
    if (m->tensors[op->in0].data != m->tensors[op->out].data && !nn_tensors_disjoint(m, op->in0, op->out)) {
        return NN_ERR_PARAM;
    }
    return NN_OK;
}

typedef nn_status (*nn_parser)(nn_model *, nn_op *, nn_reader *);

typedef struct {
    const char *name;
    uint32_t words; /* record words, including the type word */
    nn_parser parse;
} nn_op_info;

static const nn_op_info nn_ops[] = {
    {"?", 0u, NULL},
    {"PAD", 16u, nn_parse_pad},
    {"RESHAPE", 3u, nn_parse_reshape},
    {"CONV_2D", 27u, nn_parse_conv},
    {"FULLY_CONNECTED", 15u, nn_parse_fc},
    {"ADD", 18u, nn_parse_add},
    {"MAX_POOL_2D", 17u, nn_parse_pool},
    {"MEAN", 11u, nn_parse_mean},
};
#define NN_OP_TYPES (sizeof nn_ops / sizeof nn_ops[0])

/* ----------------------------------------------------------------------------------- loading */

static nn_status nn_load_tensors(nn_model *m, uint32_t table_off)
{
    const uint32_t data_off = nn_rd32(m->blob + 52);
    const uint32_t data_bytes = nn_rd32(m->blob + 56);
    uint32_t i;
    for (i = 0; i < m->n_tensors; ++i) {
        const uint8_t *e = m->blob + table_off + 16u * i;
        const uint32_t where = nn_rd32(e), offset = nn_rd32(e + 4), bytes = nn_rd32(e + 8);
        nn_tensor *t = &m->tensors[i];
        if (bytes == 0u || bytes > (uint32_t)INT32_MAX || nn_rd32(e + 12) != 0u) {
            return NN_ERR_TENSOR;
        }
        if (where == 0u) {
            if (offset % 4u != 0u || (uint64_t)offset + bytes > m->arena_bytes) {
                return NN_ERR_TENSOR;
            }
            t->writable = m->arena + offset;
            t->data = t->writable;
        } else if (where == 1u) {
            if (offset < data_off || (uint64_t)offset + bytes > (uint64_t)data_off + data_bytes) {
                return NN_ERR_TENSOR;
            }
            t->writable = NULL;
            t->data = (const int8_t *)(const void *)(m->blob + offset);
        } else {
            return NN_ERR_TENSOR;
        }
        t->bytes = bytes;
    }
    return NN_OK;
}

static nn_status nn_load_ops(nn_model *m, uint32_t table_off, uint32_t table_bytes)
{
    uint32_t at = 0, i;
    for (i = 0; i < m->n_ops; ++i) {
        uint32_t word0, type, words;
        nn_reader r;
        nn_status s;
        m->error_op = (int32_t)i;
        if (table_bytes - at < 4u) {
            return NN_ERR_OP;
        }
        word0 = nn_rd32(m->blob + table_off + at);
        type = word0 & 0xFFFFu;
        words = word0 >> 16;
        if (type == 0u || type >= NN_OP_TYPES || words != nn_ops[type].words || (uint64_t)words * 4u > (uint64_t)(table_bytes - at)) {
            return NN_ERR_OP;
        }
        memset(&m->ops[i], 0, sizeof m->ops[i]);
        m->ops[i].type = type;
        r.p = m->blob + table_off + at + 4u;
        s = nn_ops[type].parse(m, &m->ops[i], &r);
        if (s != NN_OK) {
            return s;
        }
        at += words * 4u;
    }
    if (at != table_bytes) {
        m->error_op = (int32_t)m->n_ops;
        return NN_ERR_OP;
    }
    m->error_op = -1;
    return NN_OK;
}

/* Header fields and section bounds. */
static nn_status nn_check_header(const nn_model *m, size_t blob_len)
{
    const uint8_t *b = m->blob;
    uint32_t tensors_off, ops_off, ops_bytes, data_off, data_bytes;
    if (blob_len < 4u || memcmp(b, NN_BLOB_MAGIC, 4) != 0) {
        return NN_ERR_MAGIC;
    }
    if (blob_len < NN_BLOB_HEADER_BYTES) {
        return NN_ERR_SIZE;
    }
    if (nn_rd32(b + 4) != NN_BLOB_VERSION) {
        return NN_ERR_VERSION;
    }
    if (nn_rd32(b + 8) != NN_BLOB_HEADER_BYTES || (uint64_t)nn_rd32(b + 12) != (uint64_t)blob_len) {
        return NN_ERR_SIZE;
    }
    if (nn_crc32(b + 20, blob_len - 20u) != nn_rd32(b + 16)) {
        return NN_ERR_CRC;
    }
    if (m->n_tensors > NN_MAX_TENSORS || m->n_ops > NN_MAX_OPS) {
        return NN_ERR_LIMITS;
    }
    tensors_off = nn_rd32(b + 40);
    ops_off = nn_rd32(b + 44);
    ops_bytes = nn_rd32(b + 48);
    data_off = nn_rd32(b + 52);
    data_bytes = nn_rd32(b + 56);
    if (tensors_off % 4u != 0u || ops_off % 4u != 0u || ops_bytes % 4u != 0u || data_off % 4u != 0u ||
        tensors_off < NN_BLOB_HEADER_BYTES || ops_off < NN_BLOB_HEADER_BYTES || data_off < NN_BLOB_HEADER_BYTES ||
        (uint64_t)tensors_off + 16u * (uint64_t)m->n_tensors > blob_len || (uint64_t)ops_off + ops_bytes > blob_len ||
        (uint64_t)data_off + data_bytes > blob_len) {
        return NN_ERR_SIZE;
    }
    if (m->n_ops == 0u || m->input >= m->n_tensors || m->output >= m->n_tensors) {
        return NN_ERR_PARAM;
    }
    return NN_OK;
}

static nn_status nn_init(nn_model *m, const uint8_t *blob, size_t blob_len, int8_t *arena, size_t arena_len)
{
    nn_status s;
    if (((uintptr_t)blob % 4u) != 0u || ((uintptr_t)arena % 4u) != 0u) {
        return NN_ERR_ALIGN;
    }
    if (!nn_is_little_endian()) {
        return NN_ERR_ENDIAN;
    }
    m->blob = blob;
    m->blob_len = blob_len;
    if (blob_len >= NN_BLOB_HEADER_BYTES) {
        m->arena_bytes = nn_rd32(blob + 20);
        m->n_tensors = nn_rd32(blob + 24);
        m->n_ops = nn_rd32(blob + 28);
        m->input = nn_rd32(blob + 32);
        m->output = nn_rd32(blob + 36);
        m->macs = nn_rd32(blob + 60);
    }
    s = nn_check_header(m, blob_len);
    if (s != NN_OK) {
        return s;
    }
    if (arena_len < m->arena_bytes) {
        return NN_ERR_ARENA;
    }
    m->arena = arena;
    s = nn_load_tensors(m, nn_rd32(blob + 40));
    if (s != NN_OK) {
        return s;
    }
    if (m->tensors[m->input].writable == NULL) {
        return NN_ERR_PARAM;
    }
    return nn_load_ops(m, nn_rd32(blob + 44), nn_rd32(blob + 48));
}

nn_status nn_model_init(nn_model *m, const uint8_t *blob, size_t blob_len, int8_t *arena, size_t arena_len)
{
    nn_status s;
    if (m == NULL) {
        return NN_ERR_ARG;
    }
    memset(m, 0, sizeof *m);
    m->error_op = -1;
    if (blob == NULL || arena == NULL) {
        return NN_ERR_ARG;
    }
    s = nn_init(m, blob, blob_len, arena, arena_len);
    m->ready = s == NN_OK;
    return s;
}

/* -------------------------------------------------------------------------------- running */

nn_status nn_model_invoke_op(nn_model *m, size_t i)
{
    const nn_op *op;
    const int8_t *in;
    int8_t *out;
    if (m == NULL || !m->ready) {
        return NN_ERR_NOT_READY;
    }
    if (i >= m->n_ops) {
        return NN_ERR_ARG;
    }
    op = &m->ops[i];
    in = m->tensors[op->in0].data;
    out = m->tensors[op->out].writable;
    switch (op->type) {
    case NN_OP_PAD:
        nn_pad_s8(&op->p.pad, in, out);
        break;
    case NN_OP_RESHAPE:
        nn_reshape_s8(m->tensors[op->out].bytes, in, out);
        break;
    case NN_OP_CONV_2D:
        nn_conv_s8(&op->p.conv, in, out, (int16_t *)op->scratch);
        break;
    case NN_OP_FULLY_CONNECTED:
        nn_fully_connected_s8(&op->p.fc, in, out, (int16_t *)op->scratch);
        break;
    case NN_OP_ADD:
        nn_add_s8(&op->p.add, in, m->tensors[op->in1].data, out, (int32_t *)op->scratch);
        break;
    case NN_OP_MAX_POOL_2D:
        nn_max_pool_s8(&op->p.pool, in, out);
        break;
    case NN_OP_MEAN:
        nn_mean_s8(&op->p.mean, in, out);
        break;
    default:
        return NN_ERR_OP; /* unreachable: init accepts known types only */
    }
    return NN_OK;
}

nn_status nn_model_invoke(nn_model *m)
{
    size_t i;
    if (m == NULL || !m->ready) {
        return NN_ERR_NOT_READY;
    }
    for (i = 0; i < m->n_ops; ++i) {
        const nn_status s = nn_model_invoke_op(m, i);
        if (s != NN_OK) {
            return s;
        }
    }
    return NN_OK;
}

int8_t *nn_model_input(nn_model *m)
{
    return m != NULL && m->ready ? m->tensors[m->input].writable : NULL;
}

const int8_t *nn_model_output(const nn_model *m)
{
    return m != NULL && m->ready ? m->tensors[m->output].data : NULL;
}

size_t nn_model_input_bytes(const nn_model *m)
{
    return m != NULL && m->ready ? m->tensors[m->input].bytes : 0u;
}

size_t nn_model_output_bytes(const nn_model *m)
{
    return m != NULL && m->ready ? m->tensors[m->output].bytes : 0u;
}

size_t nn_model_arena_bytes(const nn_model *m)
{
    return m != NULL && m->ready ? m->arena_bytes : 0u;
}

uint32_t nn_model_macs(const nn_model *m)
{
    return m != NULL && m->ready ? m->macs : 0u;
}

size_t nn_model_op_count(const nn_model *m)
{
    return m != NULL && m->ready ? m->n_ops : 0u;
}

const char *nn_model_op_name(const nn_model *m, size_t i)
{
    if (m == NULL || !m->ready || i >= m->n_ops) {
        return nn_ops[0].name;
    }
    return nn_ops[m->ops[i].type].name;
}

int32_t nn_model_error_op(const nn_model *m)
{
    return m != NULL ? m->error_op : -1;
}

const char *nn_status_str(nn_status s)
{
    switch (s) {
    case NN_OK:
        return "ok";
    case NN_ERR_ARG:
        return "invalid argument";
    case NN_ERR_ALIGN:
        return "blob or arena not 4-byte aligned";
    case NN_ERR_ENDIAN:
        return "target is not little-endian";
    case NN_ERR_MAGIC:
        return "not a native model blob (bad magic)";
    case NN_ERR_VERSION:
        return "unsupported blob version";
    case NN_ERR_SIZE:
        return "blob length or section bounds wrong (truncated or padded blob?)";
    case NN_ERR_CRC:
        return "blob checksum mismatch (corrupted blob)";
    case NN_ERR_LIMITS:
        return "more ops or tensors than NN_MAX_OPS / NN_MAX_TENSORS";
    case NN_ERR_TENSOR:
        return "tensor outside the blob data or the planned arena";
    case NN_ERR_OP:
        return "unknown op type or bad op record length";
    case NN_ERR_PARAM:
        return "op parameters inconsistent or out of range";
    case NN_ERR_OVERFLOW:
        return "an accumulator could overflow int32";
    case NN_ERR_ARENA:
        return "arena smaller than the model needs";
    case NN_ERR_NOT_READY:
        return "model not initialised";
    }
    return "unknown status";
}
