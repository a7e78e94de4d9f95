/* rt_instructions() from CCOUNT under QEMU -icount: the 32-bit cycle counter, extended by polling. */
#include "rt_icount.h"
#include "rt_io.h"
#include "xt_internal.h"
#include "xt_platform.h"


static uint32_t last_count;
static uint64_t wrapped; /* 2^32 per wrap seen */
static int icount_shift;

uint64_t xt_cycles(void)
{
    uint32_t now;
    __asm__ volatile("rsr %0, ccount" : "=r"(now));
    if (now < last_count) {
        wrapped += (uint64_t)1u << 32;
    }
    last_count = now;
    return wrapped + now;
}

/* Exactly 2 * n instructions (n >= 1): addi + bnez per iteration. */
static void spin(uint32_t n)
{
    __asm__ volatile("1:\n\t"
                     "addi %0, %0, -1\n\t"
                     "bnez %0, 1b\n\t"
                     : "+r"(n));
}

void xt_counter_start(void)
{
    uint64_t ns = UINT64_MAX;
    int s;

    /* Virtual ns per instruction is 2^S: the shift that best explains a loop of known length
     * (the shortest of three runs). */
    for (s = 0; s < 3; ++s) {
        const uint64_t start = xt_cycles();
        uint64_t run;
        spin(RT_ICOUNT_CALIBRATION_LOOPS);
        run = (xt_cycles() - start) * XT_NS_PER_CYCLE;
        ns = run < ns ? run : ns;
    }
    icount_shift = rt_icount_shift_of(ns);
}

int xt_icount_shift(void)
{
    return icount_shift;
}

int rt_counter_available(void)
{
    return 1;
}

uint64_t rt_instructions(void)
{
    return (xt_cycles() * XT_NS_PER_CYCLE) >> icount_shift;
}
