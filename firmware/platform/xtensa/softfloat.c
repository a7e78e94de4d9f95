/* IEEE 754 software floating point for the lx106 under QEMU: the arithmetic that the ESP8266's mask
 * ROM provides and Debian's lx106 libgcc.a therefore leaves out (libgcc_gaps.c has the integer part).
 * Binary64: add, subtract, multiply, divide, int32/uint32 to double, double to int32/uint32
 * (truncating; out of range saturates), float to double and back. Binary32 add, subtract, multiply
 * and int32/uint32 conversions go through binary64 and one final rounding, which is exact for these
 * operations (53 >= 2 x 24 + 2 bits). Round to nearest, ties to even, subnormals included; no
 * exception flags; an invalid operation gives the default quiet NaN. libgcc's own comparisons and
 * float division (present in Debian's libgcc.a) are used as they are. Checked bit for bit against
 * the host's IEEE arithmetic by xt_selftest --float (tests/test_firmware_xtensa.py).
 */
#include <stdint.h>
#include <string.h>

double __adddf3(double a, double b);
double __subdf3(double a, double b);
double __muldf3(double a, double b);
double __divdf3(double a, double b);
double __floatsidf(int i);
double __floatunsidf(unsigned int u);
int __fixdfsi(double a);
unsigned int __fixunsdfsi(double a);
double __extendsfdf2(float a);
float __truncdfsf2(double a);
float __addsf3(float a, float b);
float __subsf3(float a, float b);
float __mulsf3(float a, float b);
float __floatsisf(int i);
float __floatunsisf(unsigned int u);
unsigned int __fixunssfsi(float a);

#define SIGN64 ((uint64_t)1 << 63)
#define EXP_MASK64 0x7FFu
#define FRAC_MASK64 (((uint64_t)1 << 52) - 1u)
#define INF64 ((uint64_t)0x7FF << 52)
#define NAN64 (INF64 | ((uint64_t)1 << 51))
#define TOP62 ((uint64_t)1 << 62)

static uint64_t bits64(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double from64(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static uint32_t bits32(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float from32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static int is_nan64(uint64_t a)
{
    return (a & ~SIGN64) > INF64;
}

static int is_inf64(uint64_t a)
{
    return (a & ~SIGN64) == INF64;
}

static int is_zero64(uint64_t a)
{
    return (a & ~SIGN64) == 0u;
}

/* Leading zeros of a non-zero 64-bit value (libgcc's __clzdi2: lx106 has no NSAU). */
static int clz64(uint64_t v)
{
    return __builtin_clzll(v);
}

/* v >> n, with any 1 shifted out kept in bit 0 (the sticky bit). */
static uint64_t shift_right_jam(uint64_t v, int n)
{
    if (n <= 0) {
        return v;
    }
    if (n >= 63) {
        return v != 0u ? 1u : 0u;
    }
    return (v >> n) | ((v & (((uint64_t)1 << n) - 1u)) != 0u ? 1u : 0u);
}

/* A finite non-zero binary64 as sig * 2^(exp - 1084) with bit 62 of sig set. */
static void unpack64(uint64_t a, int *exp, uint64_t *sig)
{
    const int field = (int)((a >> 52) & EXP_MASK64);
    const uint64_t frac = a & FRAC_MASK64;
    if (field == 0) { /* subnormal: frac * 2^-1074 */
        const int s = clz64(frac) - 1;
        *sig = frac << s;
        *exp = 10 - s;
    } else {
        *sig = (frac | ((uint64_t)1 << 52)) << 10;
        *exp = field - 1;
    }
}

/* sign, and sig * 2^(exp - 1084) with sig < 2^63 and bit 62 set unless the value is below the
 * normal range, rounded to binary64 (ties to even). */
static uint64_t round_pack64(uint64_t sign, int exp, uint64_t sig)
{
    uint64_t round_bits;
    if (exp >= 0x7FE) {
        return sign | INF64;
    }
    if (exp < 0) {
        sig = shift_right_jam(sig, -exp);
        exp = 0;
    }
    round_bits = sig & 0x3FFu;
    sig = (sig + 0x200u) >> 10;
    if (round_bits == 0x200u) {
        sig &= ~(uint64_t)1;
    }
    if (sig == 0u) {
        exp = 0;
    }
    /* Adding sig (its integer bit at bit 52) into the exponent field makes it exp + 1 for a normal
     * result, leaves 0 for a subnormal one, and carries to infinity on overflow. */
    return sign | (((uint64_t)exp << 52) + sig);
}

/* sign, and sig * 2^(exp - 156) with sig < 2^31 and bit 30 set unless below the normal range,
 * rounded to binary32 (ties to even). */
static uint32_t round_pack32(uint32_t sign, int exp, uint32_t sig)
{
    uint32_t round_bits;
    if (exp >= 0xFE) {
        return sign | 0x7F800000u;
    }
    if (exp < 0) {
        sig = (uint32_t)shift_right_jam(sig, -exp);
        exp = 0;
    }
    round_bits = sig & 0x7Fu;
    sig = (sig + 0x40u) >> 7;
    if (round_bits == 0x40u) {
        sig &= ~1u;
    }
    if (sig == 0u) {
        exp = 0;
    }
    return sign | (((uint32_t)exp << 23) + sig);
}

static uint64_t add64(uint64_t a, uint64_t b)
{
    uint64_t sign_a = a & SIGN64, sign_b = b & SIGN64;
    int exp_a, exp_b;
    uint64_t sig_a, sig_b;
    if (is_nan64(a) || is_nan64(b)) {
        return NAN64;
    }
    if (is_inf64(a) || is_inf64(b)) {
        if (is_inf64(a) && is_inf64(b) && sign_a != sign_b) {
            return NAN64 | SIGN64; /* inf - inf: the default NaN, as x86 gives it */
        }
        return is_inf64(a) ? a : b;
    }
    if (is_zero64(a) || is_zero64(b)) {
        if (is_zero64(a) && is_zero64(b)) {
            return sign_a & sign_b; /* -0 only for -0 + -0 */
        }
        return is_zero64(a) ? b : a;
    }
    unpack64(a, &exp_a, &sig_a);
    unpack64(b, &exp_b, &sig_b);
    if (exp_a < exp_b || (exp_a == exp_b && sig_a < sig_b)) { /* |a| >= |b| from here */
        uint64_t t = sig_a;
        int e = exp_a;
        sig_a = sig_b;
        sig_b = t;
        exp_a = exp_b;
        exp_b = e;
        t = sign_a;
        sign_a = sign_b;
        sign_b = t;
    }
    sig_b = shift_right_jam(sig_b, exp_a - exp_b);
    if (sign_a == sign_b) {
        uint64_t sum = sig_a + sig_b; /* < 2^64 */
        if (sum & SIGN64) {
            sum = shift_right_jam(sum, 1);
            ++exp_a;
        }
        return round_pack64(sign_a, exp_a, sum);
    }
    sig_a -= sig_b;
    if (sig_a == 0u) {
        return 0u; /* x - x is +0 when rounding to nearest */
    }
    {
        const int s = clz64(sig_a) - 1;
        return round_pack64(sign_a, exp_a - s, sig_a << s);
    }
}

double __adddf3(double a, double b)
{
    return from64(add64(bits64(a), bits64(b)));
}

double __subdf3(double a, double b)
{
    return from64(add64(bits64(a), bits64(b) ^ SIGN64));
}

/* The 128-bit product a * b as hi:lo. */
static void mul64x64(uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo)
{
    const uint32_t al = (uint32_t)a, ah = (uint32_t)(a >> 32), bl = (uint32_t)b, bh = (uint32_t)(b >> 32);
    const uint64_t ll = (uint64_t)al * bl, lh = (uint64_t)al * bh, hl = (uint64_t)ah * bl, hh = (uint64_t)ah * bh;
    const uint64_t mid = lh + hl;
    const uint64_t mid_carry = mid < lh ? (uint64_t)1 << 32 : 0u;
    *lo = ll + (mid << 32);
    *hi = hh + (mid >> 32) + mid_carry + (*lo < ll ? 1u : 0u);
}

double __muldf3(double x, double y)
{
    const uint64_t a = bits64(x), b = bits64(y);
    const uint64_t sign = (a ^ b) & SIGN64;
    int exp_a, exp_b, exp;
    uint64_t sig_a, sig_b, hi, lo, sig;
    if (is_nan64(a) || is_nan64(b)) {
        return from64(NAN64);
    }
    if (is_inf64(a) || is_inf64(b)) {
        return from64(is_zero64(a) || is_zero64(b) ? NAN64 | SIGN64 : sign | INF64);
    }
    if (is_zero64(a) || is_zero64(b)) {
        return from64(sign);
    }
    unpack64(a, &exp_a, &sig_a);
    unpack64(b, &exp_b, &sig_b);
    mul64x64(sig_a, sig_b, &hi, &lo); /* in [2^124, 2^126) */
    sig = (hi << 2) | (lo >> 62) | ((lo & (TOP62 - 1u)) != 0u ? 1u : 0u);
    exp = exp_a + exp_b - 1022;
    if (sig & SIGN64) {
        sig = shift_right_jam(sig, 1);
        ++exp;
    }
    return from64(round_pack64(sign, exp, sig));
}

double __divdf3(double x, double y)
{
    const uint64_t a = bits64(x), b = bits64(y);
    const uint64_t sign = (a ^ b) & SIGN64;
    int exp_a, exp_b, i;
    uint64_t sig_a, sig_b, q = 0;
    if (is_nan64(a) || is_nan64(b)) {
        return from64(NAN64);
    }
    if (is_inf64(a)) {
        return from64(is_inf64(b) ? NAN64 | SIGN64 : sign | INF64);
    }
    if (is_inf64(b)) {
        return from64(sign);
    }
    if (is_zero64(b)) {
        return from64(is_zero64(a) ? NAN64 | SIGN64 : sign | INF64);
    }
    if (is_zero64(a)) {
        return from64(sign);
    }
    unpack64(a, &exp_a, &sig_a);
    unpack64(b, &exp_b, &sig_b);
    if (sig_a < sig_b) { /* sig_b <= sig_a < 2 sig_b: the quotient's bit 62 is set */
        sig_a <<= 1;
        --exp_a;
    }
    for (i = 62; i >= 0; --i) { /* restoring division: sig_a < 2 sig_b < 2^64 throughout */
        if (sig_a >= sig_b) {
            sig_a -= sig_b;
            q |= (uint64_t)1 << i;
        }
        sig_a <<= 1;
    }
    return from64(round_pack64(sign, exp_a - exp_b + 1022, q | (sig_a != 0u ? 1u : 0u)));
}

static uint64_t from_u32(uint64_t sign, uint32_t m)
{
    int s;
    if (m == 0u) {
        return sign;
    }
    s = clz64(m) - 1;
    return round_pack64(sign, 1084 - s, (uint64_t)m << s); /* exact */
}

double __floatsidf(int i)
{
    return from64(i < 0 ? from_u32(SIGN64, 0u - (uint32_t)i) : from_u32(0u, (uint32_t)i));
}

double __floatunsidf(unsigned int u)
{
    return from64(from_u32(0u, u));
}

/* |a| truncated to an integer, saturated at `limit`; *negative gets the sign. */
static uint32_t trunc_magnitude(uint64_t a, uint32_t limit, int *negative)
{
    int exp;
    uint64_t sig;
    *negative = (a & SIGN64) != 0u;
    if (is_nan64(a)) {
        return limit;
    }
    if (is_zero64(a) || ((a >> 52) & EXP_MASK64) < 1023u) { /* |a| < 1 */
        return 0u;
    }
    if (is_inf64(a)) {
        return limit;
    }
    unpack64(a, &exp, &sig);
    if (exp >= 1022 + 32) { /* |a| >= 2^32 */
        return limit;
    }
    sig >>= 1084 - exp; /* 1084 - exp >= 30 here */
    return sig > limit ? limit : (uint32_t)sig;
}

int __fixdfsi(double x)
{
    int negative;
    const uint64_t a = bits64(x);
    const uint32_t m = trunc_magnitude(a, (a & SIGN64) ? 0x80000000u : 0x7FFFFFFFu, &negative);
    return negative ? (int)(0u - m) : (int)m;
}

unsigned int __fixunsdfsi(double x)
{
    int negative;
    const uint32_t m = trunc_magnitude(bits64(x), 0xFFFFFFFFu, &negative);
    return negative ? 0u : m;
}

double __extendsfdf2(float f)
{
    const uint32_t a = bits32(f);
    const uint64_t sign = (uint64_t)(a >> 31) << 63;
    const uint32_t field = (a >> 23) & 0xFFu, frac = a & 0x7FFFFFu;
    if (field == 0xFFu) { /* infinity, or a NaN made quiet with its payload */
        return from64(sign | INF64 | (frac != 0u ? ((uint64_t)frac << 29) | ((uint64_t)1 << 51) : 0u));
    }
    if (field == 0u) {
        if (frac == 0u) {
            return from64(sign);
        }
        {
            const int s = clz64(frac) - 1; /* frac * 2^-149 */
            return from64(round_pack64(sign, 935 - s, (uint64_t)frac << s));
        }
    }
    return from64(round_pack64(sign, (int)field + 895, (uint64_t)(frac | 0x800000u) << 39));
}

float __truncdfsf2(double x)
{
    const uint64_t a = bits64(x);
    const uint32_t sign = (uint32_t)(a >> 63) << 31;
    int exp;
    uint64_t sig;
    if (is_nan64(a)) {
        return from32(sign | 0x7FC00000u | (uint32_t)((a & FRAC_MASK64) >> 29));
    }
    if (is_inf64(a)) {
        return from32(sign | 0x7F800000u);
    }
    if (is_zero64(a)) {
        return from32(sign);
    }
    unpack64(a, &exp, &sig);
    if (exp < 896 - 64) { /* far below the smallest subnormal: rounds to zero */
        return from32(sign);
    }
    return from32(round_pack32(sign, exp - 896, (uint32_t)shift_right_jam(sig, 32)));
}

float __addsf3(float a, float b)
{
    return __truncdfsf2(from64(add64(bits64(__extendsfdf2(a)), bits64(__extendsfdf2(b)))));
}

float __subsf3(float a, float b)
{
    return __truncdfsf2(from64(add64(bits64(__extendsfdf2(a)), bits64(__extendsfdf2(b)) ^ SIGN64)));
}

float __mulsf3(float a, float b)
{
    return __truncdfsf2(__muldf3(__extendsfdf2(a), __extendsfdf2(b)));
}

float __floatsisf(int i)
{
    return __truncdfsf2(__floatsidf(i));
}

float __floatunsisf(unsigned int u)
{
    return __truncdfsf2(__floatunsidf(u));
}

unsigned int __fixunssfsi(float a)
{
    return __fixunsdfsi(__extendsfdf2(a));
}
