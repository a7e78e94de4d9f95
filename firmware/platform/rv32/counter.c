/* rt_instructions() from minstret under QEMU -icount (see rv32_platform.h for why it is exact). */
#include "rt_icount.h"
#include "rt_io.h"
#include "rv32_platform.h"


void rv32_counter_start(void);

static int icount_shift;

static inline uint32_t minstret_lo(void)
{
    uint32_t v = 0u;
    __asm__ volatile("csrr %0, minstret" : "=r"(v));
    return v;
}

static inline uint32_t minstret_hi(void)
{
    uint32_t v = 0u;
    __asm__ volatile("csrr %0, minstreth" : "=r"(v));
    return v;
}

uint64_t rv32_instret(void)
{
    uint32_t hi;
    uint32_t lo;
    do {
        hi = minstret_hi();
        lo = minstret_lo();
    } while (hi != minstret_hi());
    return ((uint64_t)hi << 32) | lo;
}

/* Exactly 2 * n instructions (n >= 1). */
static void spin(uint32_t n)
{
    __asm__ volatile("1:\n\t"
                     "addi %0, %0, -1\n\t"
                     "bnez %0, 1b\n\t"
                     : "+r"(n));
}

/* The shift that best explains a loop of known length (minstret counts 2^S per instruction). */
void rv32_counter_start(void)
{
    uint64_t start = rv32_instret();
    uint64_t run;

    spin(RT_ICOUNT_CALIBRATION_LOOPS);
    run = rv32_instret() - start;
    icount_shift = rt_icount_shift_of(run);
}

int rv32_icount_shift(void)
{
    return icount_shift;
}

int rt_counter_available(void)
{
    return 1;
}

uint64_t rt_instructions(void)
{
    return rv32_instret() >> icount_shift;
}
