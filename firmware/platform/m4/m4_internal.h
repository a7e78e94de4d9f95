/* Inside the platform: Arm semihosting (bkpt 0xab) as QEMU implements it with
 * -semihosting-config enable=on, and the start-up steps. */
#ifndef M4_INTERNAL_H
#define M4_INTERNAL_H

#include <stdint.h>

#define M4_REG(addr) (*(volatile uint32_t *)(addr))

enum {
    SH_SYS_OPEN = 0x01,
    SH_SYS_CLOSE = 0x02,
    SH_SYS_WRITE0 = 0x04,
    SH_SYS_WRITE = 0x05,
    SH_SYS_READ = 0x06,
    SH_SYS_GET_CMDLINE = 0x15,
    SH_SYS_EXIT = 0x18,
    SH_SYS_EXIT_EXTENDED = 0x20
};

/* SYS_OPEN modes (ISO C fopen modes by index). */
#define SH_MODE_RB 1u
#define SH_MODE_WB 5u

/* Operation `op` with `arg` in r1 (a pointer to a parameter block, or a value); returns r0. */
static inline uint32_t sh_call(uint32_t op, uintptr_t arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register uintptr_t r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

/* The console: QEMU prints it on its stderr. */
void sh_write0(const char *text);
/* An unsigned number in decimal (no printf on the fault path). */
void sh_write_uint(uint32_t value, unsigned base);

/* argc and argv from SYS_GET_CMDLINE (static storage). */
int m4_args(char ***argv);
/* Starts SysTick and finds the -icount shift (counter.c). */
void m4_counter_start(void);

#endif /* M4_INTERNAL_H */
