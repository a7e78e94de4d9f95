/* The integer helpers that Debian's gcc-xtensa-lx106 (12.2.0) leaves out of its libgcc.a.
 * GCC calls them for 32-bit division (lx106 has no DIV32) and 64-bit multiplication and division.
 * ESP8266 toolchains drop from libgcc what the ESP8266's mask ROM already holds (the SDK's
 * eagle.rom.addr.v6.ld gives their ROM addresses): __divsi3, __udivsi3, __umodsi3, __umulsidi3,
 * __muldi3, __divdi3, __udivdi3, __umoddi3 and the software floating point (__adddf3, __muldf3,
 * __divdf3, __floatsidf, ...). QEMU's sim machine has no such ROM: these are the integer ones
 * (softfloat.c has the floating point).
 * Results match C's operators: quotients truncate toward zero, remainders take the dividend's sign;
 * a division by zero traps (an illegal instruction, reported by startup.c). Checked against Python's
 * integers by xt_selftest --arith (tests/test_firmware_xtensa.py). Linked before libgcc.a, so a
 * libgcc that has them is never asked for them.
 */
#include <stdint.h>

unsigned int __udivsi3(unsigned int n, unsigned int d);
unsigned int __umodsi3(unsigned int n, unsigned int d);
int __divsi3(int n, int d);
unsigned long long __umulsidi3(unsigned int a, unsigned int b);
long long __muldi3(long long a, long long b);
unsigned long long __udivdi3(unsigned long long n, unsigned long long d);
unsigned long long __umoddi3(unsigned long long n, unsigned long long d);
long long __divdi3(long long n, long long d);
/* In Debian's libgcc.a: the 64-bit quotient with the remainder. */
unsigned long long __udivmoddi4(unsigned long long n, unsigned long long d, unsigned long long *r);

/* Restoring division, one quotient bit per step; *rem gets the remainder. */
static uint32_t udivmod32(uint32_t n, uint32_t d, uint32_t *rem)
{
    uint32_t q = 0;
    uint32_t r = 0;
    int i;
    if (d == 0u) {
        __builtin_trap();
    }
    for (i = 31; i >= 0; --i) {
        const uint32_t top = r >> 31; /* r << 1 would lose it: r + 2^32 >= d then */
        r = (r << 1) | ((n >> i) & 1u);
        if (top != 0u || r >= d) {
            r -= d;
            q |= 1u << i;
        }
    }
    *rem = r;
    return q;
}

unsigned int __udivsi3(unsigned int n, unsigned int d)
{
    uint32_t r;
    return udivmod32(n, d, &r);
}

unsigned int __umodsi3(unsigned int n, unsigned int d)
{
    uint32_t r;
    (void)udivmod32(n, d, &r);
    return r;
}

int __divsi3(int n, int d)
{
    const uint32_t un = n < 0 ? 0u - (uint32_t)n : (uint32_t)n;
    const uint32_t ud = d < 0 ? 0u - (uint32_t)d : (uint32_t)d;
    uint32_t r;
    const uint32_t q = udivmod32(un, ud, &r);
    /* Two's complement wrap: INT_MIN / -1 is undefined in C; it gives INT_MIN, as GCC's helper. */
    return (int)((n < 0) != (d < 0) ? 0u - q : q);
}

/* The 64-bit product of two 32-bit numbers from 16 x 16-bit products (lx106 has MULL, no
 * high-word multiply). */
unsigned long long __umulsidi3(unsigned int a, unsigned int b)
{
    const uint32_t p00 = (a & 0xFFFFu) * (b & 0xFFFFu);
    const uint32_t p01 = (a & 0xFFFFu) * (b >> 16);
    const uint32_t p10 = (a >> 16) * (b & 0xFFFFu);
    const uint32_t p11 = (a >> 16) * (b >> 16);
    const uint32_t mid = p01 + p10;
    const uint32_t mid_carry = mid < p01 ? 0x10000u : 0u;
    const uint32_t lo = p00 + (mid << 16);
    const uint32_t hi = p11 + (mid >> 16) + mid_carry + (lo < p00 ? 1u : 0u);
    return ((unsigned long long)hi << 32) | lo;
}

/* The low 64 bits of a * b. */
long long __muldi3(long long a, long long b)
{
    const unsigned long long ua = (unsigned long long)a, ub = (unsigned long long)b;
    const uint32_t al = (uint32_t)ua, ah = (uint32_t)(ua >> 32);
    const uint32_t bl = (uint32_t)ub, bh = (uint32_t)(ub >> 32);
    const unsigned long long low = __umulsidi3(al, bl);
    return (long long)(low + ((unsigned long long)(al * bh + ah * bl) << 32));
}

unsigned long long __udivdi3(unsigned long long n, unsigned long long d)
{
    unsigned long long r;
    if (d == 0u) {
        __builtin_trap();
    }
    return __udivmoddi4(n, d, &r);
}

unsigned long long __umoddi3(unsigned long long n, unsigned long long d)
{
    unsigned long long r;
    if (d == 0u) {
        __builtin_trap();
    }
    (void)__udivmoddi4(n, d, &r);
    return r;
}

long long __divdi3(long long n, long long d)
{
    const unsigned long long un = n < 0 ? 0u - (unsigned long long)n : (unsigned long long)n;
    const unsigned long long ud = d < 0 ? 0u - (unsigned long long)d : (unsigned long long)d;
    const unsigned long long q = __udivdi3(un, ud);
    return (long long)((n < 0) != (d < 0) ? 0u - q : q);
}
