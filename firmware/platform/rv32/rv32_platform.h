/* RV32IMC (QEMU `-machine virt -bios none`) platform services beyond rt_io.h.
 *
 * Instruction counter: the minstret CSR. Under `-icount shift=S` QEMU returns its virtual clock in
 * nanoseconds for minstret (and mcycle), and one instruction takes 2^S ns of it, so
 * instructions = minstret >> S: exact at every shift (1 count per instruction at shift 0). Without
 * -icount it follows the host's cycle counter and means nothing. The start-up finds S with a loop of
 * known length (counter.c); m4_selftest --loop checks the count against such a loop.
 */
#ifndef RV32_PLATFORM_H
#define RV32_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

/* The raw 64-bit minstret. */
uint64_t rv32_instret(void);
/* The -icount shift S, measured at reset; rt_instructions() = rv32_instret() >> S. */
int rv32_icount_shift(void);

/* Size of the fixed stack and the most of it ever used (the start-up paints it). */
size_t rv32_stack_size(void);
size_t rv32_stack_high_water(void);

/* Interrupt handlers, called by the trap entry with interrupts off (weak: a program or the device
 * layer overrides one by defining it). An unexpected interrupt is fatal. */
void rv32_machine_timer_irq(void);
void rv32_machine_external_irq(void);

#define RV32_REG(addr) (*(volatile uint32_t *)(addr))

#endif /* RV32_PLATFORM_H */
