/* The semihosting trap on the Cortex-M4 (semihost.h): `bkpt 0xab`, operation in r0, argument in r1. */
#ifndef SH_ARCH_H
#define SH_ARCH_H

#include <stdint.h>

#define SH_PLATFORM_NAME "m4"

static inline uint32_t sh_call(uint32_t op, uintptr_t arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register uintptr_t r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

#endif /* SH_ARCH_H */
