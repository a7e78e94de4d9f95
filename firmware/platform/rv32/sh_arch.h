/* The semihosting trap on RISC-V (semihost.h): operation in a0, argument in a1, result in a0. */
#ifndef SH_ARCH_H
#define SH_ARCH_H

#include <stdint.h>

#define SH_PLATFORM_NAME "rv32"

/* `slli x0,x0,0x1f; ebreak; srai x0,x0,7`, uncompressed and on one page (startup.c). */
uint32_t rv32_semihost_trap(uint32_t op, uintptr_t arg);

static inline uint32_t sh_call(uint32_t op, uintptr_t arg)
{
    return rv32_semihost_trap(op, arg);
}

#endif /* SH_ARCH_H */
