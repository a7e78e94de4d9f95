/* rt_device on QEMU mps2-an386 (see rt_device.h): UART0 and CMSDK timer 0 of the board.
 *
 * UART0 (0x40004000, receive IRQ 0): QEMU's model holds one received byte and takes the next from
 * the pty only once that one is read, so nothing is lost here: the receive interrupt moves bytes into
 * a ring and, when the ring is full, leaves the byte in the UART (the main loop collects it, and QEMU
 * holds the rest back). Transmission polls the TX-full flag (and gives up after 50 ms, see below).
 * Timer 0 (0x40000000, IRQ 8) runs from the 25 MHz peripheral clock: RELOAD = 25e6 / hz - 1.
 *
 * This file is linked into every Cortex-M4 program: its interrupt handlers only reach the ring
 * through a hook set by rt_device_serial_open(), so a program that never opens the link keeps
 * its RAM (the linker drops the unreferenced ring). The ring, the serial read and write and the tick
 * count are shared with the RV32 board (platform/semihost/emu_device.h).
 */
#include "emu_device.h"
#include "rt_device.h"
#include "rt_io.h"
#include "m4_internal.h"
#include "m4_platform.h"

#define UART_CTRL (UART0_BASE + 0x08u)
#define UART_INTCLEAR (UART0_BASE + 0x0Cu)
#define UART_BAUDDIV (UART0_BASE + 0x10u)
#define CTRL_TX_EN 0x1u
#define CTRL_RX_EN 0x2u
#define CTRL_RX_INTEN 0x8u
#define INT_RX 0x2u
#define UART_MIN_BAUDDIV 16u

#define TIMER0_BASE 0x40000000u
#define TIMER_CTRL (TIMER0_BASE + 0x00u)
#define TIMER_VALUE (TIMER0_BASE + 0x04u)
#define TIMER_RELOAD (TIMER0_BASE + 0x08u)
#define TIMER_INTCLEAR (TIMER0_BASE + 0x0Cu)
#define TIMER_CTRL_ENABLE 0x1u
#define TIMER_CTRL_IRQ 0x8u
#define PERIPHERAL_HZ 25000000u

#define NVIC_ISER0 0xE000E100u
#define IRQ_UART0RX 0u
#define IRQ_TIMER0 8u

void UART0RX_IRQHandler(void);
void TIMER0_IRQHandler(void);

static void (*volatile uart_rx_hook)(void);

/* ---- serial ------------------------------------------------------------------------------------ */

static void uart_rx_isr(void)
{
    M4_REG(UART_INTCLEAR) = INT_RX;
    (void)emu_rx_drain();
}

void UART0RX_IRQHandler(void)
{
    void (*hook)(void) = uart_rx_hook;
    if (hook != 0) {
        hook();
    }
}

int rt_device_serial_open(const char *spec)
{
    (void)spec;
    uart_rx_hook = uart_rx_isr;
    M4_REG(UART_BAUDDIV) = UART_MIN_BAUDDIV; /* QEMU ignores the rate but checks the divider */
    M4_REG(UART_INTCLEAR) = 0xFu;
    M4_REG(UART_CTRL) = CTRL_TX_EN | CTRL_RX_EN | CTRL_RX_INTEN;
    M4_REG(NVIC_ISER0) = 1u << IRQ_UART0RX;
    return 0;
}

/* ---- timer ------------------------------------------------------------------------------------- */

void TIMER0_IRQHandler(void)
{
    M4_REG(TIMER_INTCLEAR) = 1u;
    emu_tick();
}

int rt_device_timer_start(uint32_t hz, rt_device_tick_fn fn)
{
    const uint32_t reload = hz > 0 ? PERIPHERAL_HZ / hz - 1u : 0u;
    M4_REG(TIMER_CTRL) = 0u;
    M4_REG(TIMER_RELOAD) = reload;
    M4_REG(TIMER_VALUE) = reload;
    M4_REG(TIMER_INTCLEAR) = 1u;
    emu_set_tick_fn(fn);
    M4_REG(TIMER_CTRL) = TIMER_CTRL_ENABLE | TIMER_CTRL_IRQ;
    M4_REG(NVIC_ISER0) = 1u << IRQ_TIMER0;
    return hz > 0 ? 0 : -1;
}

void rt_device_timer_stop(void)
{
    M4_REG(TIMER_CTRL) = 0u;
}

/* ---- idle and clocks ----------------------------------------------------------------------------- */

void rt_device_idle(uint32_t ticks_seen)
{
    /* With interrupts masked, wfi still wakes on a pending one, which then runs after cpsie. */
    emu_board_irq_off();
    if (rt_device_ticks() == ticks_seen && !emu_rx_pending()) {
        __asm__ volatile("dsb\n\twfi" ::: "memory");
    }
    emu_board_irq_on();
}

uint32_t rt_device_millis(void)
{
    return (uint32_t)(m4_ticks() / (1000000u / M4_NS_PER_TICK));
}

size_t rt_device_stack_used(void)
{
    return m4_stack_high_water();
}
