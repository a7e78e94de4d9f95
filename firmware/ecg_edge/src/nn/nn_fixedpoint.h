/* Fixed-point helpers of the int8 kernels: gemmlowp's saturating rounding doubling high multiply,
 * rounding divide by a power of two, and TFLite's MultiplyByQuantizedMultiplier.
 *
 * Rounding mode: TensorFlow Lite Micro can be built with TFLITE_SINGLE_ROUNDING (one rounding of
 * x * m / 2^(31 - shift)) or, by default, with two roundings (SaturatingRoundingDoublingHighMul,
 * then RoundingDivideByPOT). The `tflite-micro` Python wheel this project tests against uses the
 * default double rounding: on a crafted CONV_2D where the two modes differ, TFLM's outputs equal the
 * double-rounding results (tests/test_firmware_nn.py keeps that check: the NN_SINGLE_ROUNDING=1
 * build must disagree with TFLM there). NN_SINGLE_ROUNDING=1 selects the other mode for TFLM builds
 * that define TFLITE_SINGLE_ROUNDING.
 *
 * NN_TEST_WRONG_ROUNDING=1 makes the rounding divide truncate; it exists only so that the tests can
 * show that they catch a wrong rounding.
 */
#ifndef NN_FIXEDPOINT_H
#define NN_FIXEDPOINT_H

#include <stdint.h>

#ifndef NN_SINGLE_ROUNDING
#define NN_SINGLE_ROUNDING 0
#endif
#ifndef NN_TEST_WRONG_ROUNDING
#define NN_TEST_WRONG_ROUNDING 0
#endif

/* Right shifts of negative values are implementation-defined in C (not undefined); every compiler
 * this code targets (gcc, clang, armcc, xtensa-gcc) shifts arithmetically, as TFLite assumes too.
 * This refuses to compile where that does not hold. */
typedef char nn_arithmetic_right_shift_required[((-1) >> 1) == -1 ? 1 : -1];

#define NN_INT8_MIN (-128)
#define NN_INT8_MAX 127

static inline int32_t nn_min32(int32_t a, int32_t b)
{
    return a < b ? a : b;
}

static inline int32_t nn_max32(int32_t a, int32_t b)
{
    return a > b ? a : b;
}

static inline int32_t nn_clamp32(int32_t x, int32_t lo, int32_t hi)
{
    return nn_min32(nn_max32(x, lo), hi);
}

/* x * 2^n with int32 wrap-around, what the reference's `x * (1 << n)` does on every target
 * (there it is formally undefined on overflow; here it is well defined). 0 <= n <= 31. */
static inline int32_t nn_shl_wrap(int32_t x, int32_t n)
{
    const uint32_t u = (uint32_t)x << n;
    return u <= (uint32_t)INT32_MAX ? (int32_t)u : -(int32_t)(~u) - 1;
}

/* gemmlowp SaturatingRoundingDoublingHighMul: round(a * b / 2^31) with ties away from zero,
 * saturating the single overflow case a == b == INT32_MIN. The reference's shape. */
static inline int32_t nn_srdhm(int32_t a, int32_t b)
{
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31)); /* C division truncates toward zero */
}

/* The same value as floor((a * b + 2^30) / 2^31): one multiply-accumulate (SMLAL on the M4), as
 * CMSIS-NN computes it. Equal to nn_srdhm for every input except a == b == INT32_MIN; callers pass
 * a multiplier b >= 0 (nn_model_init checks), so that case cannot occur. */
static inline int32_t nn_srdhm_floor(int32_t a, int32_t b)
{
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
}

/* gemmlowp RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away from zero.
 * 0 <= exponent <= 31. */
static inline int32_t nn_rounding_divide_by_pot(int32_t x, int32_t exponent)
{
#if NN_TEST_WRONG_ROUNDING
    return (int32_t)((int64_t)x / ((int64_t)1 << exponent));
#else
    const int32_t mask = (int32_t)(((uint32_t)1 << exponent) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
#endif
}

/* TFLite MultiplyByQuantizedMultiplier(x, multiplier, shift): x * multiplier * 2^(shift - 31),
 * rounded as TFLM rounds it (see the top of this file). multiplier >= 0, -31 <= shift <= 30. */
static inline int32_t nn_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int32_t shift)
{
#if NN_SINGLE_ROUNDING
    const int32_t total_shift = 31 - shift;
#if NN_TEST_WRONG_ROUNDING
    return (int32_t)(((int64_t)x * (int64_t)multiplier) / ((int64_t)1 << total_shift));
#else
    const int64_t round = (int64_t)1 << (total_shift - 1);
    return (int32_t)(((int64_t)x * (int64_t)multiplier + round) >> total_shift);
#endif
#else
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    return nn_rounding_divide_by_pot(nn_srdhm(nn_shl_wrap(x, left), multiplier), right);
#endif
}

/* TFLite MultiplyByQuantizedMultiplierSmallerThanOneExp (shift <= 0), used by ADD. With single
 * rounding TFLite defines it as MultiplyByQuantizedMultiplier. */
static inline int32_t nn_multiply_by_quantized_multiplier_smaller_than_one(int32_t x, int32_t multiplier, int32_t shift)
{
#if NN_SINGLE_ROUNDING
    return nn_multiply_by_quantized_multiplier(x, multiplier, shift);
#else
    return nn_rounding_divide_by_pot(nn_srdhm(x, multiplier), -shift);
#endif
}

/* MultiplyByQuantizedMultiplier (or ...SmallerThanOneExp, the same function for shift <= 0) with
 * the shift taken apart once, for the optimized kernels that requantize many values with one
 * multiplier: same results as nn_multiply_by_quantized_multiplier, computed with nn_srdhm_floor
 * (one SMLAL) and a branch-free rounding divide. Needs multiplier >= 0. */
typedef struct {
    int32_t multiplier;
    int32_t shift;
    int32_t left;  /* max(shift, 0) */
    int32_t right; /* max(-shift, 0) */
    int32_t mask;  /* 2^right - 1 */
    int32_t half;  /* mask / 2 */
} nn_quant_mult;

static inline nn_quant_mult nn_quant_mult_make(int32_t multiplier, int32_t shift)
{
    nn_quant_mult q;
    q.multiplier = multiplier;
    q.shift = shift;
    q.left = shift > 0 ? shift : 0;
    q.right = shift > 0 ? 0 : -shift;
    q.mask = (int32_t)(((uint32_t)1 << q.right) - 1u);
    q.half = q.mask >> 1;
    return q;
}

static inline int32_t nn_quant_mult_apply(int32_t x, const nn_quant_mult *q)
{
#if NN_SINGLE_ROUNDING
    return nn_multiply_by_quantized_multiplier(x, q->multiplier, q->shift);
#else
    const int32_t y = nn_srdhm_floor(nn_shl_wrap(x, q->left), q->multiplier);
#if NN_TEST_WRONG_ROUNDING
    return (int32_t)((int64_t)y / ((int64_t)1 << q->right));
#else
    return (y >> q->right) + ((y & q->mask) > q->half + (int32_t)((uint32_t)y >> 31) ? 1 : 0);
#endif
#endif
}

/* nn_rounding_divide_by_pot(y, e) for 1 <= e <= 31 with round = 2^(e - 1), in three instructions:
 * floor((y + 2^(e-1) - [y < 0]) / 2^e) is round half away from zero. Only for |y| + 2^(e-1) < 2^31
 * (the caller guarantees it; ADD's rescaled sums stay below 2^30). */
static inline int32_t nn_rounding_divide_by_pot_bounded(int32_t y, int32_t e, int32_t round)
{
#if NN_TEST_WRONG_ROUNDING || NN_SINGLE_ROUNDING
    (void)round;
    return nn_rounding_divide_by_pot(y, e);
#else
    return (y + round - (int32_t)((uint32_t)y >> 31)) >> e;
#endif
}

#endif /* NN_FIXEDPOINT_H */
