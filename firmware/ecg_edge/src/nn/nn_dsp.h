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

/* Callers keep the sum in range (the exporter bounds every accumulator), so no overflow here. */
static inline int32_t nn_smlad(uint32_t x, uint32_t y, int32_t acc)
{
    return acc + nn_lo16(x) * nn_lo16(y) + nn_hi16(x) * nn_hi16(y);
}

#endif /* NN_DSP_ASM */

/* The inner loop of the matrix kernel (nn_matmul.c): one int8 weight row against four int16
 * columns stored interleaved per group of four depth steps as
 *   C0(x0,x2) C0(x1,x3) C1(x0,x2) C1(x1,x3) C2(..) C2(..) C3(..) C3(..)
 * (so that SXTB16 / SXTB16 ROR #8 of four weights line up with the pairs):
 *   acc[c] += sum over `groups` groups of w . column c.
 * The weight and column pointers advance past the groups. Per group (16 MACs): one weight load,
 * two SXTB16, four LDRD and eight SMLAD; the loop runs two groups per iteration. Eleven registers,
 * so it also builds without optimization or with a frame pointer. */
#if NN_DSP_ASM

#define NN_DOT_1X4_GROUP_ASM                                                                                               \
    "ldr %[w], [%[pw]], #4\n\t"                                                                                           \
    "sxtb16 %[w02], %[w]\n\t"                                                                                             \
    "sxtb16 %[w], %[w], ror #8\n\t"                                                                                       \
    "ldrd %[x0], %[x1], [%[pc]], #8\n\t"                                                                                  \
    "smlad %[a0], %[w02], %[x0], %[a0]\n\t"                                                                               \
    "smlad %[a0], %[w], %[x1], %[a0]\n\t"                                                                                 \
    "ldrd %[x0], %[x1], [%[pc]], #8\n\t"                                                                                  \
    "smlad %[a1], %[w02], %[x0], %[a1]\n\t"                                                                               \
    "smlad %[a1], %[w], %[x1], %[a1]\n\t"                                                                                 \
    "ldrd %[x0], %[x1], [%[pc]], #8\n\t"                                                                                  \
    "smlad %[a2], %[w02], %[x0], %[a2]\n\t"                                                                               \
    "smlad %[a2], %[w], %[x1], %[a2]\n\t"                                                                                 \
    "ldrd %[x0], %[x1], [%[pc]], #8\n\t"                                                                                  \
    "smlad %[a3], %[w02], %[x0], %[a3]\n\t"                                                                               \
    "smlad %[a3], %[w], %[x1], %[a3]\n\t"

static inline void nn_dot_1x4_groups(const int8_t **w, const int16_t **cols, int32_t groups, int32_t *acc)
{
    const int8_t *pw = *w;
    const int16_t *pc = *cols;
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    int32_t pairs = groups >> 1;
    uint32_t wv, w02, x0, x1;
    if (pairs > 0) {
        __asm__ volatile("1:\n\t" NN_DOT_1X4_GROUP_ASM NN_DOT_1X4_GROUP_ASM "subs %[n], %[n], #1\n\t"
                         "bne 1b\n\t"
                         : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [pw] "+r"(pw), [pc] "+r"(pc), [n] "+r"(pairs),
                           [w] "=&r"(wv), [w02] "=&r"(w02), [x0] "=&r"(x0), [x1] "=&r"(x1)
                         :
                         : "cc", "memory");
    }
    if (groups & 1) {
        __asm__ volatile(NN_DOT_1X4_GROUP_ASM
                         : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [pw] "+r"(pw), [pc] "+r"(pc), [w] "=&r"(wv),
                           [w02] "=&r"(w02), [x0] "=&r"(x0), [x1] "=&r"(x1)
                         :
                         : "memory");
    }
    *w = pw;
    *cols = pc;
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* SSAT #8: clamp to [-128, 127]. */
static inline int32_t nn_ssat8(int32_t x)
{
    int32_t r;
    __asm__("ssat %0, #8, %1" : "=r"(r) : "r"(x) : "cc");
    return r;
}

#else

static inline void nn_dot_1x4_groups(const int8_t **w, const int16_t **cols, int32_t groups, int32_t *acc)
{
    const int8_t *pw = *w;
    const int16_t *pc = *cols;
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    int32_t g;
    for (g = 0; g < groups; ++g) {
        const uint32_t wv = nn_read_u32(pw);
        const uint32_t w02 = nn_sxtb16(wv), w13 = nn_sxtb16_ror8(wv);
        a0 = nn_smlad(w13, nn_read_u32(pc + 2), nn_smlad(w02, nn_read_u32(pc), a0));
        a1 = nn_smlad(w13, nn_read_u32(pc + 6), nn_smlad(w02, nn_read_u32(pc + 4), a1));
        a2 = nn_smlad(w13, nn_read_u32(pc + 10), nn_smlad(w02, nn_read_u32(pc + 8), a2));
        a3 = nn_smlad(w13, nn_read_u32(pc + 14), nn_smlad(w02, nn_read_u32(pc + 12), a3));
        pw += 4;
        pc += 16;
    }
    *w = pw;
    *cols = pc;
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

static inline int32_t nn_ssat8(int32_t x)
{
    return x < -128 ? -128 : (x > 127 ? 127 : x);
}

#endif /* NN_DSP_ASM */

#endif /* NN_DSP_H */
