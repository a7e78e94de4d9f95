/* Xtensa lx106 (QEMU -M sim -cpu lx106) platform services beyond rt_io.h. */
#ifndef XT_PLATFORM_H
#define XT_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

/* QEMU's lx106 configuration clocks CCOUNT at 40 MHz of virtual time: one cycle is 25 ns, and with
 * `-icount shift=S` one instruction takes 2^S ns, so instructions = cycles * 25 / 2^S: a cycle is
 * 25 instructions at shift 0, 0.78 at shift 5. Without -icount CCOUNT follows host time. */
#define XT_NS_PER_CYCLE 25u

/* CCOUNT cycles since reset, 64-bit: the 32-bit register extended in software on every read,
 * which is exact while reads come less than 2^32 cycles apart (107 s of virtual time). */
uint64_t xt_cycles(void);
/* The -icount shift S, measured at reset with a loop of known length; rt_instructions() uses it. */
int xt_icount_shift(void);

/* Size of the fixed stack and the most of it ever used (the reset code paints it). */
size_t xt_stack_size(void);
size_t xt_stack_high_water(void);

#endif /* XT_PLATFORM_H */
