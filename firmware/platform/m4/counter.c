/* rt_instructions() from SysTick under QEMU -icount: 24-bit hardware count + wrap interrupt. */
#include "m4_internal.h"
#include "m4_platform.h"
#include "rt_icount.h"
#include "rt_io.h"

#define SYST_CSR 0xE000E010u
#define SYST_RVR 0xE000E014u
#define SYST_CVR 0xE000E018u
#define SYST_PERIOD 0x01000000u /* reload 0xFFFFFF + 1 */
#define SCB_ICSR 0xE000ED04u
#define ICSR_PENDSTSET (1u << 26)

static volatile uint32_t systick_wraps;
static int icount_shift;

void SysTick_Handler(void);

void SysTick_Handler(void)
{
    systick_wraps = systick_wraps + 1u;
}

uint64_t m4_ticks(void)
{
    uint32_t wraps;
    uint32_t value;
    do {
        wraps = systick_wraps;
        value = M4_REG(SYST_CVR);
        if (M4_REG(SCB_ICSR) & ICSR_PENDSTSET) {
            /* Wrapped with interrupts masked: the handler has not counted it yet. */
            value = M4_REG(SYST_CVR);
            wraps += 1u;
            break;
        }
    } while (wraps != systick_wraps);
    /* The wrap interrupt is pended when the count reaches 0, and the counter shows 0 for one more tick
     * before it reloads: 0 is the last tick of the period that the wrap just counted (read as the
     * next period's last tick, it was a whole period, 2^24 ticks, too late). */
    if (value == 0u) {
        return wraps > 0u ? (uint64_t)wraps * SYST_PERIOD - 1u : 0u;
    }
    return (uint64_t)wraps * SYST_PERIOD + (SYST_PERIOD - 1u - value);
}

/* Exactly 2 * n instructions (n >= 1). */
static void spin(uint32_t n)
{
    __asm__ volatile("1:\n\t"
                     "subs %0, %0, #1\n\t"
                     "bne 1b\n\t"
                     : "+r"(n)
                     :
                     : "cc");
}

void m4_counter_start(void)
{
    uint64_t ns = UINT64_MAX;
    int s;

    M4_REG(SYST_RVR) = SYST_PERIOD - 1u;
    M4_REG(SYST_CVR) = 0u;
    M4_REG(SYST_CSR) = 7u; /* processor clock, wrap interrupt, enable */

    /* Virtual ns per instruction is 2^S: the shift that best explains a loop of known length.
     * The shortest of three runs: the first wrap after enabling SysTick may fall in one. */
    for (s = 0; s < 3; ++s) {
        uint64_t start = m4_ticks();
        uint64_t run;
        spin(RT_ICOUNT_CALIBRATION_LOOPS);
        run = (m4_ticks() - start) * M4_NS_PER_TICK;
        ns = run < ns ? run : ns;
    }
    icount_shift = rt_icount_shift_of(ns);
}

int m4_icount_shift(void)
{
    return icount_shift;
}

int rt_counter_available(void)
{
    return 1;
}

uint64_t rt_instructions(void)
{
    return (m4_ticks() * M4_NS_PER_TICK) >> icount_shift;
}
