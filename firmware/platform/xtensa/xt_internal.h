/* Inside the Xtensa lx106 platform (QEMU -M sim -cpu lx106 -semihosting): the simulator calls
 * (SIMCALL, target/xtensa/xtensa-semi.c in QEMU) and the start-up steps.
 *
 * SIMCALL takes the call number in a2 and its arguments in a3..a5; it returns the result in a2 and
 * an errno in a3. Files are the host's own descriptors: QEMU hands open() its flags unchanged,
 * so the flags below are Linux's (the host these tests run on). Exit ends QEMU with exit(a3).
 */
#ifndef XT_INTERNAL_H
#define XT_INTERNAL_H

#include <stdint.h>

enum {
    XT_SYS_EXIT = 1,
    XT_SYS_READ = 3,
    XT_SYS_WRITE = 4,
    XT_SYS_OPEN = 5,
    XT_SYS_CLOSE = 6,
    XT_SYS_ARGC = 1000,
    XT_SYS_ARGV_SZ = 1001,
    XT_SYS_ARGV = 1002
};

/* Linux open(2) flags and the mode of created files. */
#define XT_O_RDONLY 0x0u
#define XT_O_WRONLY_CREAT_TRUNC (0x1u | 0x40u | 0x200u)
#define XT_FILE_MODE 0644u

/* The console: QEMU's own stderr (descriptor 2, no semihosting chardev). */
#define XT_CONSOLE_FD 2u

/* Exit status of a program that took an exception (after a "xt fatal:" console line). */
#define XT_FAULT_STATUS 250

/* SIMCALL `op` with up to three arguments; returns a2 (-1 as 0xFFFFFFFF on failure). */
static inline uint32_t xt_simcall(uint32_t op, uint32_t a, uint32_t b, uint32_t c)
{
    register uint32_t a2 __asm__("a2") = op;
    register uint32_t a3 __asm__("a3") = a;
    register uint32_t a4 __asm__("a4") = b;
    register uint32_t a5 __asm__("a5") = c;
    __asm__ volatile("simcall" : "+r"(a2), "+r"(a3) : "r"(a4), "r"(a5) : "memory");
    return a2;
}

/* Console output (no printf on the fault path). */
void xt_write(const char *text);
void xt_write_hex(uint32_t value);

/* argc and argv from the simulator (static storage); ends the program if they do not fit. */
int xt_args(char ***argv);
/* Measures the -icount shift with a loop of known length (counter.c). */
void xt_counter_start(void);

/* Ends the program; QEMU exits with `status` (0..255; anything else reads as 255). */
void xt_exit(int status) __attribute__((noreturn));

#endif /* XT_INTERNAL_H */
