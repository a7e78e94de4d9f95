/* The Cortex-M4 DSP instructions the optimized kernels use, as inline functions: real instructions
 * (inline asm) where the compiler targets the DSP extension (__ARM_FEATURE_DSP), plain C that
 * computes the same bits everywhere else, so that the optimized path also runs, and is tested, on
 * the host.
 *
 * Packed values: a uint32_t holding two int16 halves (bits 0-15 and 16-31) or four int8 bytes.
 */
#ifndef NN_DSP_H
#define NN_DSP_H

#include <stdint.h>
#include <string.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && (defined(__GNUC__) || defined(__clang__))
#define NN_DSP_ASM 1
#else
#define NN_DSP_ASM 0
#endif

/* Unaligned-safe little-endian loads and stores: memcpy compiles to one LDR/STR on the M4. */
static inline uint32_t nn_read_u32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void nn_write_u32(void *p, uint32_t v)
{
    memcpy(p, &v, sizeof v);
}

/* The int32 with the bits of `u` (two's complement wrap-around, without implementation-defined conversions). */
static inline int32_t nn_wrap32(uint32_t u)
{
    return u <= (uint32_t)INT32_MAX ? (int32_t)u : -(int32_t)(~u) - 1;
}

/* Sign-extend two int16 halves of a packed word. */
static inline int32_t nn_lo16(uint32_t x)
{
    return (int32_t)(int16_t)(uint16_t)(x & 0xFFFFu);
}

static inline int32_t nn_hi16(uint32_t x)
{
    return (int32_t)(int16_t)(uint16_t)(x >> 16);
}

static inline uint32_t nn_pack16(int32_t lo, int32_t hi)
{
    return ((uint32_t)(uint16_t)lo) | ((uint32_t)(uint16_t)hi << 16);
}

#if NN_DSP_ASM

/* SXTB16: bytes 0 and 2 sign-extended to the two int16 halves. */
static inline uint32_t nn_sxtb16(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1" : "=r"(r) : "r"(x));
    return r;
}

/* SXTB16 with ROR #8: bytes 1 and 3 sign-extended to the two int16 halves. */
static inline uint32_t nn_sxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

/* SXTAB16 (with ROR #8): acc + bytes 0 and 2 (1 and 3) of x, sign-extended, halfword-wise. */
static inline uint32_t nn_sxtab16(uint32_t acc, uint32_t x)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2" : "=r"(r) : "r"(acc), "r"(x));
    return r;
}

static inline uint32_t nn_sxtab16_ror8(uint32_t acc, uint32_t x)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(acc), "r"(x));
    return r;
}

/* SADD16: halfword-wise addition (no saturation). */
static inline uint32_t nn_sadd16(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("sadd16 %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

/* SMLAD: acc + lo(x) * lo(y) + hi(x) * hi(y). */
static inline int32_t nn_smlad(uint32_t x, uint32_t y, int32_t acc)
{
    int32_t r;
    __asm__("smlad %0, %1, %2, %3" : "=r"(r) : "r"(x), "r"(y), "r"(acc));
    return r;
}

/* Byte-wise signed maximum / minimum of four int8 lanes: SSUB8 sets the GE flags, SEL picks. */
static inline uint32_t nn_max_s8x4(uint32_t a, uint32_t b)
{
    uint32_t r, t;
    __asm__("ssub8 %1, %2, %3\n\tsel %0, %2, %3" : "=r"(r), "=&r"(t) : "r"(a), "r"(b) : "cc");
    return r;
}

static inline uint32_t nn_min_s8x4(uint32_t a, uint32_t b)
{
    uint32_t r, t;
    __asm__("ssub8 %1, %2, %3\n\tsel %0, %3, %2" : "=r"(r), "=&r"(t) : "r"(a), "r"(b) : "cc");
    return r;
}

#else

static inline uint32_t nn_max_s8x4(uint32_t a, uint32_t b)
{
    uint32_t r = 0;
    int i;
    for (i = 0; i < 32; i += 8) {
        const int8_t x = (int8_t)(uint8_t)(a >> i), y = (int8_t)(uint8_t)(b >> i);
        r |= (uint32_t)(uint8_t)(x > y ? x : y) << i;
    }
    return r;
}

static inline uint32_t nn_min_s8x4(uint32_t a, uint32_t b)
{
    uint32_t r = 0;
    int i;
    for (i = 0; i < 32; i += 8) {
        const int8_t x = (int8_t)(uint8_t)(a >> i), y = (int8_t)(uint8_t)(b >> i);
        r |= (uint32_t)(uint8_t)(x < y ? x : y) << i;
    }
    return r;
}

static inline uint32_t nn_sxtb16(uint32_t x)
{
    return nn_pack16((int32_t)(int8_t)(uint8_t)(x & 0xFFu), (int32_t)(int8_t)(uint8_t)((x >> 16) & 0xFFu));
}

static inline uint32_t nn_sxtb16_ror8(uint32_t x)
{
    return nn_sxtb16((x >> 8) | (x << 24));
}

static inline uint32_t nn_sadd16(uint32_t a, uint32_t b)
{
    return nn_pack16(nn_lo16(a) + nn_lo16(b), nn_hi16(a) + nn_hi16(b));
}

static inline uint32_t nn_sxtab16(uint32_t acc, uint32_t x)
{
    return nn_sadd16(acc, nn_sxtb16(x));
}

static inline uint32_t nn_sxtab16_ror8(uint32_t acc, uint32_t x)
{
    return nn_sadd16(acc, nn_sxtb16_ror8(x));
}

/* Modulo 2^32 like the instruction (partial sums may wrap; the final sum is in range). */
static inline int32_t nn_smlad(uint32_t x, uint32_t y, int32_t acc)
{
    return nn_wrap32((uint32_t)acc + (uint32_t)(nn_lo16(x) * nn_lo16(y)) + (uint32_t)(nn_hi16(x) * nn_hi16(y)));
}

#endif /* NN_DSP_ASM */

/* SMMLAR: a + round(x * y / 2^32), the product rounded by adding 2^31 (modulo 2^32 like the
 * instruction; callers keep the sum in range). */
#if NN_DSP_ASM

static inline int32_t nn_smmlar(int32_t x, int32_t y, int32_t a)
{
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(x), "r"(y), "r"(a));
    return r;
}

/* SSAT #8: clamp to [-128, 127]. */
static inline int32_t nn_ssat8(int32_t x)
{
    int32_t r;
    __asm__("ssat %0, #8, %1" : "=r"(r) : "r"(x) : "cc");
    return r;
}

#else

static inline int32_t nn_smmlar(int32_t x, int32_t y, int32_t a)
{
    const int64_t p = ((int64_t)x * (int64_t)y + ((int64_t)1 << 31)) >> 32; /* |p| < 2^31 */
    return nn_wrap32((uint32_t)a + (uint32_t)(int32_t)p);
}

static inline int32_t nn_ssat8(int32_t x)
{
    return x < -128 ? -128 : (x > 127 ? 127 : x);
}

#endif /* NN_DSP_ASM */

#endif /* NN_DSP_H */
