/* Reset, traps and fault reporting for RV32 under QEMU `-machine virt -bios none` (machine mode only). */
#include <string.h>

#include "rt_io.h"
#include "rv32_platform.h"
#include "semihost.h"

/* Linker script symbols (virt.ld). */
extern uint32_t rv32_stack_base[], rv32_stack_top[];
extern uint32_t rv32_data_start[], rv32_data_end[], rv32_data_load[];
extern uint32_t rv32_bss_start[], rv32_bss_end[];
extern uint32_t rv32_guard_start[], rv32_guard_bytes[];

/* counter.c */
void rv32_counter_start(void);

#define MCAUSE_INTERRUPT 0x80000000u
#define IRQ_MACHINE_TIMER 7u
#define IRQ_MACHINE_EXTERNAL 11u
#define EXC_LOAD_ACCESS 5u
#define EXC_STORE_ACCESS 7u
#define PMP_NAPOT_LOCKED_NO_ACCESS 0x98u /* L=1, A=NAPOT, R=W=X=0: machine mode too */
/* QEMU virt's SiFive test device: (status << 16) | 0x3333 ends QEMU with that status. */
#define SIFIVE_TEST 0x00100000u
#define SIFIVE_TEST_FAIL 0x3333u

void rv32_entry(void) __attribute__((naked, noreturn, section(".text.rv32_entry")));
void rv32_trap_entry(void) __attribute__((naked, aligned(4)));
void rv32_start(void) __attribute__((noreturn, used));
void rv32_fault(uint32_t mcause, uint32_t mepc, uint32_t mtval, uint32_t sp) __attribute__((noreturn, used));
void rv32_interrupt(uint32_t mcause) __attribute__((used));

/* Bytes between two linker symbols (distinct objects to C, hence the integer arithmetic). */
static size_t span(const void *start, const void *end)
{
    return (size_t)((uintptr_t)end - (uintptr_t)start);
}

/* gp for linker relaxation, tp for picolibc's thread-local errno (the one thread's block is .tdata
 * followed by .tbss), the stack and the trap vector before any C. */
void rv32_entry(void)
{
    __asm__ volatile(".option push\n\t"
                     ".option norelax\n\t"
                     "la gp, __global_pointer$\n\t"
                     ".option pop\n\t"
                     "la tp, rv32_tls_start\n\t"
                     "la sp, rv32_stack_top\n\t"
                     "la t0, rv32_trap_entry\n\t"
                     "csrw mtvec, t0\n\t"
                     "j rv32_start\n\t");
}

/* 16-byte aligned, so the three instructions QEMU looks for are on one page. */
uint32_t rv32_semihost_trap(uint32_t op, uintptr_t arg) __attribute__((naked, aligned(16)));
uint32_t rv32_semihost_trap(uint32_t op, uintptr_t arg)
{
    (void)op;
    (void)arg;
    __asm__ volatile(".option push\n\t"
                     ".option norvc\n\t"
                     "slli x0, x0, 0x1f\n\t"
                     "ebreak\n\t"
                     "srai x0, x0, 7\n\t"
                     ".option pop\n\t"
                     "ret\n\t");
}

/* An exception goes to rv32_fault on a fresh stack (after a stack overflow the old one is not
 * usable; t0 is kept in mscratch until it is known which). An interrupt saves the caller-saved
 * registers and calls rv32_interrupt. */
void rv32_trap_entry(void)
{
    __asm__ volatile("csrw mscratch, t0\n\t"
                     "csrr t0, mcause\n\t"
                     "bltz t0, 1f\n\t"
                     "mv a3, sp\n\t"
                     "csrr a0, mcause\n\t"
                     "csrr a1, mepc\n\t"
                     "csrr a2, mtval\n\t"
                     "la sp, rv32_stack_top\n\t"
                     "j rv32_fault\n"
                     "1:\n\t"
                     "csrr t0, mscratch\n\t"
                     "addi sp, sp, -64\n\t"
                     "sw ra, 0(sp)\n\tsw t0, 4(sp)\n\tsw t1, 8(sp)\n\tsw t2, 12(sp)\n\t"
                     "sw a0, 16(sp)\n\tsw a1, 20(sp)\n\tsw a2, 24(sp)\n\tsw a3, 28(sp)\n\t"
                     "sw a4, 32(sp)\n\tsw a5, 36(sp)\n\tsw a6, 40(sp)\n\tsw a7, 44(sp)\n\t"
                     "sw t3, 48(sp)\n\tsw t4, 52(sp)\n\tsw t5, 56(sp)\n\tsw t6, 60(sp)\n\t"
                     "csrr a0, mcause\n\t"
                     "call rv32_interrupt\n\t"
                     "lw ra, 0(sp)\n\tlw t0, 4(sp)\n\tlw t1, 8(sp)\n\tlw t2, 12(sp)\n\t"
                     "lw a0, 16(sp)\n\tlw a1, 20(sp)\n\tlw a2, 24(sp)\n\tlw a3, 28(sp)\n\t"
                     "lw a4, 32(sp)\n\tlw a5, 36(sp)\n\tlw a6, 40(sp)\n\tlw a7, 44(sp)\n\t"
                     "lw t3, 48(sp)\n\tlw t4, 52(sp)\n\tlw t5, 56(sp)\n\tlw t6, 60(sp)\n\t"
                     "addi sp, sp, 64\n\t"
                     "mret\n\t");
}

/* A locked NAPOT region without access below the stack: machine-mode loads and stores there fault. */
static void guard_stack(void)
{
    const uint32_t base = (uint32_t)(uintptr_t)rv32_guard_start;
    const uint32_t bytes = (uint32_t)(uintptr_t)rv32_guard_bytes;
    const uint32_t napot = (base >> 2) | ((bytes >> 3) - 1u);
    __asm__ volatile("csrw pmpaddr0, %0\n\t"
                     "csrw pmpcfg0, %1\n\t"
                     :
                     : "r"(napot), "r"(PMP_NAPOT_LOCKED_NO_ACCESS)
                     : "memory");
}

void rv32_start(void)
{
    uint32_t *p;
    uint32_t *sp;

    memcpy(rv32_data_start, rv32_data_load, span(rv32_data_start, rv32_data_end));
    memset(rv32_bss_start, 0, span(rv32_bss_start, rv32_bss_end));

    /* Paint the free part of the stack (below this frame) for rv32_stack_high_water(). */
    __asm__ volatile("mv %0, sp" : "=r"(sp));
    for (p = rv32_stack_base; p < sp; ++p) {
        *(volatile uint32_t *)p = SH_STACK_PAINT;
    }
    guard_stack();
    rv32_counter_start();

    sh_run_main(rv32_stack_base, rv32_stack_top, "stack overflow (raise RV32_STACK_BYTES)\n");
}

size_t rv32_stack_size(void)
{
    return span(rv32_stack_base, rv32_stack_top);
}

size_t rv32_stack_high_water(void)
{
    return sh_stack_high_water(rv32_stack_base, rv32_stack_top);
}

static int in_guard(uint32_t addr)
{
    const uint32_t base = (uint32_t)(uintptr_t)rv32_guard_start;
    return addr >= base && addr - base < (uint32_t)(uintptr_t)rv32_guard_bytes;
}

void rv32_fault(uint32_t mcause, uint32_t mepc, uint32_t mtval, uint32_t sp)
{
    static volatile int faulted;
    if (faulted) {
        /* A fault while reporting one (e.g. semihosting off, its ebreak traps): end without words. */
        RV32_REG(SIFIVE_TEST) = ((uint32_t)SH_FAULT_STATUS << 16) | SIFIVE_TEST_FAIL;
        for (;;) {
        }
    }
    faulted = 1;
    sh_write0(SH_FATAL "exception ");
    sh_write_uint(mcause, 10);
    sh_write0(" mepc=0x");
    sh_write_uint(mepc, 16);
    sh_write0(" mtval=0x");
    sh_write_uint(mtval, 16);
    sh_write0(" sp=0x");
    sh_write_uint(sp, 16);
    sh_write0(((mcause == EXC_LOAD_ACCESS || mcause == EXC_STORE_ACCESS) && in_guard(mtval)) || sp < (uint32_t)(uintptr_t)rv32_stack_base
                  ? " (stack overflow: raise RV32_STACK_BYTES)\n"
                  : "\n");
    sh_exit(SH_FAULT_STATUS);
}

static void unexpected_irq(void)
{
    uint32_t mcause;
    __asm__ volatile("csrr %0, mcause" : "=r"(mcause));
    sh_write0(SH_FATAL "unexpected interrupt ");
    sh_write_uint(mcause & ~MCAUSE_INTERRUPT, 10);
    sh_write0("\n");
    sh_exit(SH_FAULT_STATUS);
}

void rv32_machine_timer_irq(void) __attribute__((weak, alias("rv32_default_irq")));
void rv32_machine_external_irq(void) __attribute__((weak, alias("rv32_default_irq")));
void rv32_default_irq(void);
void rv32_default_irq(void)
{
    unexpected_irq();
}

void rv32_interrupt(uint32_t mcause)
{
    switch (mcause & ~MCAUSE_INTERRUPT) {
    case IRQ_MACHINE_TIMER:
        rv32_machine_timer_irq();
        break;
    case IRQ_MACHINE_EXTERNAL:
        rv32_machine_external_irq();
        break;
    default:
        unexpected_irq();
    }
}
