/* Reset, exception vectors and fault reporting for an lx106 core under QEMU -M sim (CALL0 ABI,
 * no windowed registers, no interrupts: the instruction counter is polled, counter.c). */
#include <stddef.h>
#include <string.h>

#include "rt_io.h"
#include "xt_internal.h"
#include "xt_platform.h"

/* Linker script symbols (lx106_sim.ld). */
extern uint32_t xt_stack_base[], xt_stack_top[];
extern uint32_t xt_bss_start[], xt_bss_end[];

#define STACK_PAINT 0x5AFE57ACu /* bytes differ, so no compiler turns painting into memset */

void xt_start(void) __attribute__((noreturn, used));
void xt_fault(uint32_t kind, uint32_t cause, uint32_t pc, uint32_t vaddr, uint32_t sp)
    __attribute__((noreturn, used));

/* Bytes between two linker symbols (distinct objects to C, hence the integer arithmetic). */
static size_t span(const void *start, const void *end)
{
    return (size_t)((uintptr_t)end - (uintptr_t)start);
}

/* The lx106 reset vector (0x50000000) jumps to xt_reset, which is also the ELF entry. xt_reset
 * masks interrupts (PS.INTLEVEL 15), leaves exception mode (PS.EXCM 0, PS.UM 1: exceptions go to
 * the user vector), points VECBASE at the table below and calls xt_start on the fresh stack.
 * Each vector hands its kind (1 debug, 2 NMI, 3 kernel, 4 user, 5 double) to xt_fault with
 * EXCCAUSE, the faulting PC (EPC1, or DEPC for a double exception), EXCVADDR and the old stack
 * pointer, on a fresh stack: the program ends anyway, and after an overflow the old one is lost. */
__asm__(".section .reset_vector, \"ax\"\n"
        ".begin no-transform\n"
        "    j 1f\n"
        "    .align 4\n"
        "2:  .word xt_reset\n"
        "1:  l32r a0, 2b\n"
        "    jx a0\n"
        ".end no-transform\n"

        ".section .exception_vectors, \"ax\"\n"
        ".begin no-transform\n"
        "xt_vectors:\n"
        "    .org 0x10\n" /* debug */
        "    movi a2, 1\n"
        "    j xt_exception\n"
        "    .org 0x20\n" /* NMI */
        "    movi a2, 2\n"
        "    j xt_exception\n"
        "    .org 0x30\n" /* kernel */
        "    movi a2, 3\n"
        "    j xt_exception\n"
        "    .org 0x50\n" /* user */
        "    movi a2, 4\n"
        "    j xt_exception\n"
        "    .org 0x70\n" /* double */
        "    movi a2, 5\n"
        "    j xt_exception\n"
        ".end no-transform\n"

        ".section .text.xt_reset, \"ax\"\n"
        ".literal_position\n"
        ".global xt_reset\n"
        ".type xt_reset, @function\n"
        ".align 4\n"
        "xt_reset:\n"
        "    movi a0, 0x2f\n"
        "    wsr a0, ps\n"
        "    rsync\n"
        "    movi a0, xt_vectors\n"
        "    wsr a0, vecbase\n"
        "    rsync\n"
        "    movi a1, xt_stack_top\n"
        "    movi a0, 0\n"
        "    call0 xt_start\n"
        ".size xt_reset, . - xt_reset\n"

        ".literal_position\n"
        ".align 4\n"
        "xt_exception:\n"
        "    rsr a3, exccause\n"
        "    rsr a4, epc1\n"
        "    movi a5, 5\n"
        "    bne a2, a5, 1f\n"
        "    rsr a4, depc\n"
        "1:  rsr a5, excvaddr\n"
        "    mov a6, a1\n"
        "    movi a1, xt_stack_top\n"
        "    call0 xt_fault\n"
        ".text\n");

void xt_start(void)
{
    uint32_t *p;
    uint32_t *sp;
    char **argv;
    int argc;
    int status;

    /* .data and .rodata are loaded at their run addresses; .bss is not loaded. */
    memset(xt_bss_start, 0, span(xt_bss_start, xt_bss_end));

    /* Paint the free part of the stack (below this frame) for xt_stack_high_water(). */
    __asm__ volatile("mov %0, a1" : "=r"(sp));
    for (p = xt_stack_base; p < sp; ++p) {
        *(volatile uint32_t *)p = STACK_PAINT;
    }

    xt_counter_start();

    argc = xt_args(&argv);
    status = harness_main(argc, argv);
    /* The paint reached down to the lowest word: the stack overflowed out of its region. */
    if (xt_stack_high_water() >= xt_stack_size()) {
        xt_write("xt fatal: stack overflow (raise XT_STACK_BYTES)\n");
        xt_exit(XT_FAULT_STATUS);
    }
    xt_exit(status);
}

size_t xt_stack_size(void)
{
    return span(xt_stack_base, xt_stack_top);
}

size_t xt_stack_high_water(void)
{
    uintptr_t p = (uintptr_t)xt_stack_base;
    while (p < (uintptr_t)xt_stack_top && *(const volatile uint32_t *)p == STACK_PAINT) {
        p += sizeof(uint32_t);
    }
    return (size_t)((uintptr_t)xt_stack_top - p);
}

void xt_fault(uint32_t kind, uint32_t cause, uint32_t pc, uint32_t vaddr, uint32_t sp)
{
    static const char *const kinds[] = {"?", "debug", "NMI", "kernel", "user", "double"};
    xt_write("xt fatal: ");
    xt_write(kinds[kind < 6u ? kind : 0u]);
    xt_write(" exception cause=0x");
    xt_write_hex(cause);
    xt_write(" pc=0x");
    xt_write_hex(pc);
    xt_write(" vaddr=0x");
    xt_write_hex(vaddr);
    xt_write(sp < (uint32_t)(uintptr_t)xt_stack_base ? " (stack overflow: raise XT_STACK_BYTES)\n" : "\n");
    xt_exit(XT_FAULT_STATUS);
}
