/* Reset, vector table and fault reporting for QEMU mps2-an386 (Cortex-M4F, 32 CMSDK IRQs). */
#include <string.h>

#include "m4_platform.h"
#include "rt_io.h"
#include "m4_internal.h"

/* Linker script symbols (mps2_an386.ld). */
extern uint32_t m4_stack_base[], m4_stack_top[];
extern uint32_t m4_data_start[], m4_data_end[], m4_data_load[];
extern uint32_t m4_bss_start[], m4_bss_end[];

/* Bytes between two linker symbols (distinct objects to C, hence the integer arithmetic). */
static size_t span(const void *start, const void *end)
{
    return (size_t)((uintptr_t)end - (uintptr_t)start);
}

#define SCB_CFSR 0xE000ED28u
#define SCB_HFSR 0xE000ED2Cu

void m4_start(void) __attribute__((noreturn, used));
void m4_fault(const uint32_t *frame) __attribute__((noreturn, used));

/* Exception and IRQ handlers: weak, so a program overrides one by defining it. */
void Reset_Handler(void) __attribute__((naked, noreturn));
void Default_Handler(void) __attribute__((naked));
#define WEAK_HANDLER(name) void name(void) __attribute__((weak, alias("Default_Handler")))
WEAK_HANDLER(NMI_Handler);
WEAK_HANDLER(HardFault_Handler);
WEAK_HANDLER(MemManage_Handler);
WEAK_HANDLER(BusFault_Handler);
WEAK_HANDLER(UsageFault_Handler);
WEAK_HANDLER(SVC_Handler);
WEAK_HANDLER(DebugMon_Handler);
WEAK_HANDLER(PendSV_Handler);
WEAK_HANDLER(SysTick_Handler);
WEAK_HANDLER(UART0RX_IRQHandler);   /* IRQ 0  UART0 receive */
WEAK_HANDLER(UART0TX_IRQHandler);   /* IRQ 1  UART0 transmit */
WEAK_HANDLER(UART1RX_IRQHandler);   /* IRQ 2 */
WEAK_HANDLER(UART1TX_IRQHandler);   /* IRQ 3 */
WEAK_HANDLER(UART2RX_IRQHandler);   /* IRQ 4 */
WEAK_HANDLER(UART2TX_IRQHandler);   /* IRQ 5 */
WEAK_HANDLER(GPIO0_IRQHandler);     /* IRQ 6  GPIO0 combined */
WEAK_HANDLER(GPIO1_IRQHandler);     /* IRQ 7  GPIO1 combined */
WEAK_HANDLER(TIMER0_IRQHandler);    /* IRQ 8  CMSDK APB timer 0 at 0x40000000 */
WEAK_HANDLER(TIMER1_IRQHandler);    /* IRQ 9  CMSDK APB timer 1 at 0x40001000 */
WEAK_HANDLER(DUALTIMER_IRQHandler); /* IRQ 10 dual timer at 0x40002000 */
WEAK_HANDLER(SPI0_IRQHandler);      /* IRQ 11 APB and LCD SPI */
WEAK_HANDLER(UARTOVF_IRQHandler);   /* IRQ 12 UART0-2 overflow */
WEAK_HANDLER(ETHERNET_IRQHandler);  /* IRQ 13 */
WEAK_HANDLER(I2S_IRQHandler);       /* IRQ 14 */
WEAK_HANDLER(TOUCH_IRQHandler);     /* IRQ 15 */
WEAK_HANDLER(GPIO2_IRQHandler);     /* IRQ 16 */
WEAK_HANDLER(GPIO3_IRQHandler);     /* IRQ 17 */
WEAK_HANDLER(UART3RX_IRQHandler);   /* IRQ 18 */
WEAK_HANDLER(UART3TX_IRQHandler);   /* IRQ 19 */
WEAK_HANDLER(UART4RX_IRQHandler);   /* IRQ 20 */
WEAK_HANDLER(UART4TX_IRQHandler);   /* IRQ 21 */
WEAK_HANDLER(ADCSPI_IRQHandler);    /* IRQ 22 external ADC SPI */
WEAK_HANDLER(IRQ23_Handler);
WEAK_HANDLER(SHIELDSPI_IRQHandler); /* IRQ 24 shield SPI */
WEAK_HANDLER(IRQ25_Handler);
WEAK_HANDLER(IRQ26_Handler);
WEAK_HANDLER(IRQ27_Handler);
WEAK_HANDLER(IRQ28_Handler);
WEAK_HANDLER(IRQ29_Handler);
WEAK_HANDLER(IRQ30_Handler);
WEAK_HANDLER(IRQ31_Handler);

typedef void (*m4_vector)(void);

/* The initial stack pointer is data, the rest are code: a struct keeps both in ISO C. */
static const struct {
    uint32_t *initial_sp;
    m4_vector vectors[15 + 32];
} vector_table __attribute__((section(".isr_vector"), used)) = {
    m4_stack_top,
    {
        Reset_Handler, NMI_Handler, HardFault_Handler, MemManage_Handler, BusFault_Handler,
        UsageFault_Handler, 0, 0, 0, 0, SVC_Handler, DebugMon_Handler, 0, PendSV_Handler,
        SysTick_Handler,
        UART0RX_IRQHandler, UART0TX_IRQHandler, UART1RX_IRQHandler, UART1TX_IRQHandler,
        UART2RX_IRQHandler, UART2TX_IRQHandler, GPIO0_IRQHandler, GPIO1_IRQHandler,
        TIMER0_IRQHandler, TIMER1_IRQHandler, DUALTIMER_IRQHandler, SPI0_IRQHandler,
        UARTOVF_IRQHandler, ETHERNET_IRQHandler, I2S_IRQHandler, TOUCH_IRQHandler,
        GPIO2_IRQHandler, GPIO3_IRQHandler, UART3RX_IRQHandler, UART3TX_IRQHandler,
        UART4RX_IRQHandler, UART4TX_IRQHandler, ADCSPI_IRQHandler, IRQ23_Handler,
        SHIELDSPI_IRQHandler, IRQ25_Handler, IRQ26_Handler, IRQ27_Handler, IRQ28_Handler,
        IRQ29_Handler, IRQ30_Handler, IRQ31_Handler,
    },
};

/* The FPU must be on before the compiler's first floating-point instruction, so no C here. */
void Reset_Handler(void)
{
    __asm__ volatile("movw r0, #0xED88\n\t"
                     "movt r0, #0xE000\n\t" /* SCB_CPACR */
                     "ldr r1, [r0]\n\t"
                     "orr r1, r1, #(0xF << 20)\n\t" /* CP10, CP11: full access */
                     "str r1, [r0]\n\t"
                     "dsb\n\t"
                     "isb\n\t"
                     "b m4_start\n\t");
}

void m4_start(void)
{
    uint32_t *p;
    uint32_t *sp;

    memcpy(m4_data_start, m4_data_load, span(m4_data_start, m4_data_end));
    memset(m4_bss_start, 0, span(m4_bss_start, m4_bss_end));

    /* Paint the free part of the stack (below this frame) for m4_stack_high_water(). */
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (p = m4_stack_base; p < sp; ++p) {
        *(volatile uint32_t *)p = SH_STACK_PAINT;
    }

    m4_counter_start();

    sh_run_main(m4_stack_base, m4_stack_top, "stack overflow (raise M4_STACK_BYTES)\n");
}

size_t m4_stack_size(void)
{
    return span(m4_stack_base, m4_stack_top);
}

size_t m4_stack_high_water(void)
{
    return sh_stack_high_water(m4_stack_base, m4_stack_top);
}

/* Hands the stacked exception frame (r0-r3, r12, lr, pc, xpsr) to m4_fault on a fresh stack:
 * the program ends anyway, and after a stack overflow the old one is not usable. */
void Default_Handler(void)
{
    __asm__ volatile("tst lr, #4\n\t"
                     "ite eq\n\t"
                     "mrseq r0, msp\n\t"
                     "mrsne r0, psp\n\t"
                     "movw r1, #:lower16:m4_stack_top\n\t"
                     "movt r1, #:upper16:m4_stack_top\n\t"
                     "mov sp, r1\n\t"
                     "b m4_fault\n\t");
}

void m4_fault(const uint32_t *frame)
{
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    sh_write0("m4 fatal: exception ");
    sh_write_uint(ipsr & 0x1FFu, 10);
    sh_write0(" pc=0x");
    sh_write_uint(frame[6], 16);
    sh_write0(" lr=0x");
    sh_write_uint(frame[5], 16);
    sh_write0(" cfsr=0x");
    sh_write_uint(M4_REG(SCB_CFSR), 16);
    sh_write0(" hfsr=0x");
    sh_write_uint(M4_REG(SCB_HFSR), 16);
    sh_write0((uintptr_t)frame < (uintptr_t)m4_stack_base ? " (stack overflow: raise M4_STACK_BYTES)\n" : "\n");
    sh_exit(SH_FAULT_STATUS);
}
