/* Arm-compatible semihosting as QEMU implements it with -semihosting-config enable=on: the console,
 * the command line, host files (rt_io_semihost.c) and the exit status. Shared by the bare-metal
 * platforms under QEMU (platform/m4, platform/rv32); each provides "sh_arch.h" with
 *   static inline uint32_t sh_call(uint32_t op, uintptr_t arg)  the trap: operation and argument in,
 *                                                               result out (r0/r1 on Arm, a0/a1 on RISC-V)
 *   SH_PLATFORM_NAME                                            the console's fatal-line prefix ("m4")
 */
#ifndef SEMIHOST_H
#define SEMIHOST_H

#include <stddef.h>
#include <stdint.h>

#include "sh_arch.h"

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

/* Exit status of a program that took an unexpected exception, after a "<platform> fatal:" console
 * line (export/qemu.py's FAULT_STATUS and fatal markers). */
#define SH_FAULT_STATUS 250

/* The first words of a fatal console line. */
#define SH_FATAL SH_PLATFORM_NAME " fatal: "

/* The console: QEMU prints it on stdout with `-serial stdio`, on stderr otherwise. */
void sh_write0(const char *text);
/* An unsigned number in `base` (no printf on the fault path). */
void sh_write_uint(uint32_t value, unsigned base);

/* argc and argv from SYS_GET_CMDLINE (static storage); a fatal exit when it is too long. */
int sh_args(char ***argv);

/* Ends the program; QEMU exits with `status` (SYS_EXIT_EXTENDED; 0..255, others read as 255). */
void sh_exit(int status) __attribute__((noreturn));

/* The word the start-up paints the free stack with (bytes differ, so no compiler turns the painting
 * into memset); sh_stack_high_water gives the bytes of [base, top) written since. */
#define SH_STACK_PAINT 0x5AFE57ACu
size_t sh_stack_high_water(const uint32_t *base, const uint32_t *top);

/* Runs harness_main with the command line's arguments and exits with its status, or with
 * SH_FAULT_STATUS after SH_FATAL `overflow` when the paint shows the stack used to its end. */
void sh_run_main(const uint32_t *stack_base, const uint32_t *stack_top, const char *overflow) __attribute__((noreturn));

#endif /* SEMIHOST_H */
