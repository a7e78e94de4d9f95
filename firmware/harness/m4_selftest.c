/* Self-test of the platform layer (rt_io.h), on every target.
 *
 *   m4_selftest [--copy IN OUT] [--loop N] [--stack BYTES] [--sqrt X] [--exit STATUS] [--fault]
 *               [--hang] [WORD...]
 *
 * Echoes every argument as "arg I [TEXT]". --copy copies IN to OUT through rt_read/rt_write
 * ("copy bytes=N"). --loop runs a loop of exactly 2*N instructions between two rt_instructions()
 * reads ("loop expected=2N measured=M overhead=O", O being two reads back to back; on the M4 also
 * "ticks=T shift=S", SysTick ticks, on RISC-V "ticks=T shift=S", minstret counts; or "loop counter
 * unavailable"). --stack uses at least BYTES of stack ("stack depth=D sum=S"). --sqrt prints
 * round(1e6 * sqrtf(X)) ("sqrt micro=V"; on the M4 the FPU at work, on RV32IMC soft float).
 * --fault takes an undefined instruction (abort() on the host); --hang never returns. On the
 * Cortex-M4 and RISC-V it ends with "stack used=U size=S". Returns STATUS (default 0).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rt_io.h"
#include "selftest_util.h"

#if defined(__arm__)
#include "m4_platform.h"
#define SELFTEST_TICKS() m4_ticks()
#define SELFTEST_SHIFT() m4_icount_shift()
#define SELFTEST_STACK_USED() m4_stack_high_water()
#define SELFTEST_STACK_SIZE() m4_stack_size()
#elif defined(RT_PLATFORM_RV32)
#include "rv32_platform.h"
#define SELFTEST_TICKS() rv32_instret()
#define SELFTEST_SHIFT() rv32_icount_shift()
#define SELFTEST_STACK_USED() rv32_stack_high_water()
#define SELFTEST_STACK_SIZE() rv32_stack_size()
#endif

/* Exactly 2 * n instructions (n >= 1) on the Cortex-M4 (subs + bne per iteration) and RISC-V (addi + bnez). */
static void spin(uint32_t n)
{
#if defined(__arm__)
    __asm__ volatile("1:\n\t"
                     "subs %0, %0, #1\n\t"
                     "bne 1b\n\t"
                     : "+r"(n)
                     :
                     : "cc");
#elif defined(RT_PLATFORM_RV32)
    __asm__ volatile("1:\n\t"
                     "addi %0, %0, -1\n\t"
                     "bnez %0, 1b\n\t"
                     : "+r"(n));
#else
    volatile uint32_t i = n;
    while (i != 0u) {
        i = i - 1u;
    }
#endif
}

static void run_loop(uint32_t n)
{
    uint64_t start;
    uint64_t stop;
    uint64_t overhead;
#if defined(SELFTEST_TICKS)
    uint64_t ticks = SELFTEST_TICKS();
#endif

    if (!rt_counter_available()) {
        spin(n);
        rt_log("loop counter unavailable");
        return;
    }
    start = rt_instructions();
    stop = rt_instructions();
    overhead = stop - start;
    start = rt_instructions();
    spin(n);
    stop = rt_instructions();
    line[0] = '\0';
    append("loop expected=");
    append_u64(2u * (uint64_t)n);
    append(" measured=");
    append_u64(stop - start);
    append(" overhead=");
    append_u64(overhead);
#if defined(SELFTEST_TICKS)
    ticks = SELFTEST_TICKS() - ticks;
    append(" ticks=");
    append_u64(ticks);
    append(" shift=");
    append_u64((uint64_t)SELFTEST_SHIFT());
#endif
    rt_log(line);
}

/* At least 256 bytes of stack per level: each level reads its caller's array, so every frame
 * stays alive, and calls through a volatile pointer keep the compiler from inlining levels. */
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

static void fault(void)
{
#if defined(__arm__)
    __asm__ volatile("udf #0");
#elif defined(RT_PLATFORM_RV32)
    __asm__ volatile("unimp");
#endif
    abort();
}

static void hang(void)
{
    for (;;) {
        __asm__ volatile("" ::: "memory");
    }
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
        } else if (strcmp(argv[i], "--loop") == 0 && i + 1 < argc) {
            unsigned long n = strtoul(argv[++i], NULL, 10);
            if (n == 0u || (unsigned long)(uint32_t)n != n) {
                rt_log("loop: N must be in 1..2^32-1");
                return 2;
            }
            run_loop((uint32_t)n);
        } else if (strcmp(argv[i], "--stack") == 0 && i + 1 < argc) {
            unsigned depth = (unsigned)(strtoul(argv[++i], NULL, 10) / 256u);
            line[0] = '\0';
            append("stack depth=");
            append_u64(depth);
            append(" sum=");
            append_u64(stack_call(depth, (const volatile unsigned char *)copy_buf));
            rt_log(line);
        } else if (strcmp(argv[i], "--sqrt") == 0 && i + 1 < argc) {
            volatile float x = (float)atof(argv[++i]);
            float r = sqrtf(x) * 1e6f + 0.5f;
            line[0] = '\0';
            append("sqrt micro=");
            append_u64(r > 0.0f ? (uint64_t)r : 0u);
            rt_log(line);
        } else if (strcmp(argv[i], "--exit") == 0 && i + 1 < argc) {
            status = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--fault") == 0) {
            fault();
        } else if (strcmp(argv[i], "--hang") == 0) {
            hang();
        }
    }
#if defined(SELFTEST_STACK_USED)
    line[0] = '\0';
    append("stack used=");
    append_u64(SELFTEST_STACK_USED());
    append(" size=");
    append_u64(SELFTEST_STACK_SIZE());
    rt_log(line);
#endif
    return status;
}
