/* Self-test of the Xtensa platform layer under QEMU, with the checks of its own: the integer and
 * floating-point helpers (../libgcc_gaps.c, ../softfloat.c) and CCOUNT. (harness/m4_selftest.c is not
 * linked here: its abort() needs a signal layer that picolibc leaves to the platform.)
 *
 *   xt_selftest [--copy IN OUT] [--loop N] [--arith IN OUT] [--float IN OUT] [--stack BYTES]
 *               [--exit STATUS] [--fault] [WORD...]
 *
 * Echoes every argument as "arg I [TEXT]". --copy copies IN to OUT through rt_read/rt_write
 * ("copy bytes=N"). --loop runs exactly 2*N instructions between two rt_instructions() reads
 * ("loop expected=2N measured=M overhead=O cycles=C shift=S", O being two reads back to back).
 * --arith reads records of two little-endian uint64 (a, b) and writes for each, little-endian:
 * a*b, and when b != 0 a/b and a%b as uint64, then as int64, then the same for the low 32 bits
 * (unsigned, then signed), zeros where b is 0 ("arith records=N"). --float reads the same records as
 * the bits of two doubles (and of two floats in their low halves) and writes FLOAT_RESULTS uint64 per
 * record (float_record below; "float records=N"). --stack uses at least BYTES of
 * stack. --fault executes an illegal instruction. Ends with "stack used=U size=S"; returns STATUS.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rt_io.h"
#include "selftest_util.h"
#include "xt_platform.h"

static void say_u64(const char *key, uint64_t v)
{
    append(key);
    append_u64(v);
}

/* Exactly 2 * n instructions (n >= 1): addi + bnez per iteration. */
static void spin(uint32_t n)
{
    __asm__ volatile("1:\n\t"
                     "addi %0, %0, -1\n\t"
                     "bnez %0, 1b\n\t"
                     : "+r"(n));
}

static void run_loop(uint32_t n)
{
    uint64_t start = rt_instructions();
    uint64_t stop = rt_instructions();
    const uint64_t overhead = stop - start;
    uint64_t cycles = xt_cycles();
    start = rt_instructions();
    spin(n);
    stop = rt_instructions();
    cycles = xt_cycles() - cycles;
    line[0] = '\0';
    say_u64("loop expected=", 2u * (uint64_t)n);
    say_u64(" measured=", stop - start);
    say_u64(" overhead=", overhead);
    say_u64(" cycles=", cycles);
    say_u64(" shift=", (uint64_t)xt_icount_shift());
    rt_log(line);
}

static void put_u64(unsigned char *out, uint64_t v)
{
    int i;
    for (i = 0; i < 8; ++i) {
        out[i] = (unsigned char)(v >> (8 * i));
    }
}

static uint64_t get_u64(const unsigned char *in)
{
    uint64_t v = 0;
    int i;
    for (i = 7; i >= 0; --i) {
        v = (v << 8) | in[i];
    }
    return v;
}

/* C's operators on a and b, through the compiler's helpers (libgcc and ../libgcc_gaps.c). The
 * volatile operands keep the compiler from folding or specialising them. */
static void arith_record(const unsigned char *in, unsigned char *out)
{
    volatile uint64_t a = get_u64(in), b = get_u64(in + 8);
    volatile int64_t sa = (int64_t)a, sb = (int64_t)b;
    volatile uint32_t a32 = (uint32_t)a, b32 = (uint32_t)b;
    volatile int32_t sa32 = (int32_t)a32, sb32 = (int32_t)b32;
    const int wide_ok = b != 0u && !(sa == INT64_MIN && sb == -1);
    const int narrow_ok = b32 != 0u && !(sa32 == INT32_MIN && sb32 == -1);
    memset(out, 0, 72);
    put_u64(out, a * b);
    if (b != 0u) {
        put_u64(out + 8, a / b);
        put_u64(out + 16, a % b);
    }
    if (wide_ok) {
        put_u64(out + 24, (uint64_t)(sa / sb));
        put_u64(out + 32, (uint64_t)(sa % sb));
    }
    if (b32 != 0u) {
        put_u64(out + 40, a32 / b32);
        put_u64(out + 48, a32 % b32);
    }
    if (narrow_ok) {
        put_u64(out + 56, (uint64_t)(int64_t)(sa32 / sb32));
        put_u64(out + 64, (uint64_t)(int64_t)(sa32 % sb32));
    }
}

/* Binary64 and binary32 arithmetic, conversions and comparisons through the compiler's helpers
 * (../softfloat.c and Debian's libgcc). a, b: doubles; fa, fb: the floats in their low 32 bits. Out:
 * a+b, a-b, a*b, a/b, (float)a, (double)fa, (int)a and (unsigned)a where defined (else 0),
 * (double)(int32)b, (double)(uint32)b, fa+fb, fa-fb, fa*fb, fa/fb, (float)(int32)a,
 * (float)(uint32)a, (unsigned)fa where defined (else 0), and the comparison bits (< <= > >= == !=
 * of a, b in bits 0-5, of fa, fb in bits 8-13). Floats in the low 32 bits of their slot. */
#define FLOAT_RESULTS 18

static uint64_t dbits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static uint64_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static void float_record(const unsigned char *in, unsigned char *out)
{
    const uint64_t ua = get_u64(in), ub = get_u64(in + 8);
    const uint32_t la = (uint32_t)ua, lb = (uint32_t)ub;
    volatile double a, b;
    volatile float fa, fb;
    volatile int32_t ia = (int32_t)la, ib = (int32_t)lb;
    volatile uint32_t wa = la, wb = lb;
    uint64_t r[FLOAT_RESULTS];
    int i;
    double da, db;
    float ffa, ffb;
    memcpy(&da, &ua, sizeof da);
    memcpy(&db, &ub, sizeof db);
    memcpy(&ffa, &la, sizeof ffa);
    memcpy(&ffb, &lb, sizeof ffb);
    a = da;
    b = db;
    fa = ffa;
    fb = ffb;
    r[0] = dbits(a + b);
    r[1] = dbits(a - b);
    r[2] = dbits(a * b);
    r[3] = dbits(a / b);
    r[4] = fbits((float)a);
    r[5] = dbits((double)fa);
    r[6] = a > -2147483649.0 && a < 2147483648.0 ? (uint64_t)(uint32_t)(int32_t)a : 0u;
    r[7] = a > -1.0 && a < 4294967296.0 ? (uint64_t)(uint32_t)a : 0u;
    r[8] = dbits((double)ib);
    r[9] = dbits((double)wb);
    r[10] = fbits(fa + fb);
    r[11] = fbits(fa - fb);
    r[12] = fbits(fa * fb);
    r[13] = fbits(fa / fb);
    r[14] = fbits((float)ia);
    r[15] = fbits((float)wa);
    r[16] = fa > -1.0f && fa < 4294967296.0f ? (uint64_t)(uint32_t)fa : 0u;
    r[17] = (uint64_t)((a < b) | (a <= b) << 1 | (a > b) << 2 | (a >= b) << 3 | (a == b) << 4 | (a != b) << 5 |
                       (fa < fb) << 8 | (fa <= fb) << 9 | (fa > fb) << 10 | (fa >= fb) << 11 | (fa == fb) << 12 |
                       (fa != fb) << 13);
    for (i = 0; i < FLOAT_RESULTS; ++i) {
        put_u64(out + 8 * i, r[i]);
    }
}

/* Applies `op` to every 16-byte record of IN, writing `out_bytes` per record to OUT. */
static int records_file(const char *name, const char *in_path, const char *out_path,
                        void (*op)(const unsigned char *, unsigned char *), size_t out_bytes)
{
    rt_file *in = rt_open(in_path, 0);
    rt_file *out = in != NULL ? rt_open(out_path, 1) : NULL;
    unsigned char rec[16], res[8 * FLOAT_RESULTS];
    uint64_t records = 0;
    int ok = out != NULL;
    while (ok && rt_read(in, rec, sizeof rec) == sizeof rec) {
        op(rec, res);
        ok = rt_write(out, res, out_bytes) == out_bytes;
        ++records;
    }
    if (in != NULL) {
        ok = (rt_close(in) == 0) && ok;
    }
    if (out != NULL) {
        ok = (rt_close(out) == 0) && ok;
    }
    line[0] = '\0';
    append(name);
    say_u64(" records=", records);
    rt_log(ok ? line : "records: file error");
    return ok;
}

/* At least 256 bytes of stack per level (each level reads its caller's array, so every frame stays
 * alive; calls through a volatile pointer keep the compiler from inlining levels). */
static unsigned stack_user(unsigned depth, const volatile unsigned char *caller);
static unsigned (*volatile stack_call)(unsigned, const volatile unsigned char *) = stack_user;

static unsigned stack_user(unsigned depth, const volatile unsigned char *caller)
{
    volatile unsigned char pad[256];
    size_t i;
    for (i = 0; i < sizeof pad; ++i) {
        pad[i] = (unsigned char)(depth + i);
    }
    return caller[255] + (depth == 0u ? 0u : stack_call(depth - 1u, pad));
}

int harness_main(int argc, char **argv)
{
    int status = 0;
    int i;
    echo_args(argc, argv);
    for (i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--copy") == 0 && i + 2 < argc) {
            if (!copy_file(argv[i + 1], argv[i + 2])) {
                return 2;
            }
            i += 2;
        } else if (strcmp(argv[i], "--arith") == 0 && i + 2 < argc) {
            if (!records_file("arith", argv[i + 1], argv[i + 2], arith_record, 72)) {
                return 2;
            }
            i += 2;
        } else if (strcmp(argv[i], "--float") == 0 && i + 2 < argc) {
            if (!records_file("float", argv[i + 1], argv[i + 2], float_record, 8 * FLOAT_RESULTS)) {
                return 2;
            }
            i += 2;
        } else if (strcmp(argv[i], "--loop") == 0 && i + 1 < argc) {
            const unsigned long n = strtoul(argv[++i], NULL, 10);
            if (n == 0u || (unsigned long)(uint32_t)n != n) {
                rt_log("loop: N must be in 1..2^32-1");
                return 2;
            }
            run_loop((uint32_t)n);
        } else if (strcmp(argv[i], "--stack") == 0 && i + 1 < argc) {
            const unsigned depth = (unsigned)(strtoul(argv[++i], NULL, 10) / 256u);
            line[0] = '\0';
            say_u64("stack depth=", depth);
            say_u64(" sum=", stack_call(depth, (const volatile unsigned char *)copy_buf));
            rt_log(line);
        } else if (strcmp(argv[i], "--exit") == 0 && i + 1 < argc) {
            status = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--fault") == 0) {
            __asm__ volatile("ill");
        }
    }
    line[0] = '\0';
    say_u64("stack used=", xt_stack_high_water());
    say_u64(" size=", xt_stack_size());
    rt_log(line);
    return status;
}
