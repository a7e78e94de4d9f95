/* Inside the platform: semihosting (platform/semihost, the trap in sh_arch.h) and the start-up steps. */
#ifndef M4_INTERNAL_H
#define M4_INTERNAL_H

#include <stdint.h>

#include "semihost.h"

#define M4_REG(addr) (*(volatile uint32_t *)(addr))

/* Starts SysTick and finds the -icount shift (counter.c). */
void m4_counter_start(void);

#endif /* M4_INTERNAL_H */
