/* Cortex-M4F (QEMU mps2-an386) platform services beyond rt_io.h. */
#ifndef M4_PLATFORM_H
#define M4_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

/* SysTick runs from the 25 MHz processor clock: one tick is 40 ns of virtual time, and with
 * `-icount shift=S` one instruction takes 2^S ns, so instructions = ticks * 40 / 2^S: a tick is
 * 40 instructions at shift 0, 1.25 at shift 5. Without -icount the timers follow host time. */
#define M4_NS_PER_TICK 40u

/* SysTick ticks since reset (64-bit, 24-bit hardware counter extended by its wrap interrupt).
 * SysTick and its interrupt belong to the platform: use a CMSDK timer for periodic work. */
uint64_t m4_ticks(void);
/* The -icount shift S, measured at reset with a loop of known length; rt_instructions() uses it. */
int m4_icount_shift(void);

/* Size of the fixed stack and the most of it ever used (the reset handler paints it). */
size_t m4_stack_size(void);
size_t m4_stack_high_water(void);

#endif /* M4_PLATFORM_H */
