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
 * its RAM (the linker drops the unreferenced ring).
 */
#include "rt_device.h"
#include "rt_io.h"
#include "m4_internal.h"
#include "m4_platform.h"

#define UART0_BASE 0x40004000u
#define UART_DATA (UART0_BASE + 0x00u)
#define UART_STATE (UART0_BASE + 0x04u)
#define UART_CTRL (UART0_BASE + 0x08u)
#define UART_INTCLEAR (UART0_BASE + 0x0Cu)
#define UART_BAUDDIV (UART0_BASE + 0x10u)
#define STATE_TX_FULL 0x1u
#define STATE_RX_FULL 0x2u
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

#define RX_RING 128u /* power of two, at most 128 (one-byte indices) */

void UART0RX_IRQHandler(void);
void TIMER0_IRQHandler(void);

static void (*volatile uart_rx_hook)(void);
static volatile uint8_t rx_ring[RX_RING];
static volatile uint8_t rx_head; /* written by the interrupt */
static volatile uint8_t rx_tail; /* written by the main loop */

static volatile rt_device_tick_fn tick_fn;
static volatile uint32_t ticks;

static inline void irq_off(void)
{
    __asm__ volatile("cpsid i" ::: "memory");
}

static inline void irq_on(void)
{
    __asm__ volatile("cpsie i" ::: "memory");
}

static const char *error_text = "";

const char *rt_device_error(void)
{
    return error_text;
}

/* ---- serial ------------------------------------------------------------------------------------ */

static void uart_rx_isr(void)
{
    M4_REG(UART_INTCLEAR) = INT_RX;
    while (M4_REG(UART_STATE) & STATE_RX_FULL) {
        const uint8_t h = rx_head;
        if ((uint8_t)(h - rx_tail) >= RX_RING) {
            break; /* full: the byte waits in the UART for the main loop */
        }
        rx_ring[h & (RX_RING - 1u)] = (uint8_t)M4_REG(UART_DATA);
        rx_head = (uint8_t)(h + 1u);
    }
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

size_t rt_device_serial_read(uint8_t *buf, size_t n)
{
    size_t got = 0;
    irq_off();
    while (got < n && rx_tail != rx_head) {
        buf[got++] = rx_ring[rx_tail & (RX_RING - 1u)];
        rx_tail = (uint8_t)(rx_tail + 1u);
    }
    /* A byte left in the UART by a full ring (it came after the ones in the ring). */
    while (got < n && (M4_REG(UART_STATE) & STATE_RX_FULL)) {
        buf[got++] = (uint8_t)M4_REG(UART_DATA);
    }
    irq_on();
    return got;
}

/* QEMU holds the transmitter full while the pty's reader lets its buffer fill up. A UART does not
 * wait for its listener: after TX_WAIT_MS the rest of the write is dropped (and counted), so a host
 * that writes without reading cannot deadlock the firmware. */
#define TX_WAIT_MS 50u
static uint32_t tx_dropped;
static int tx_stuck; /* the last wait timed out: drop at once until the line moves again */

void rt_device_serial_write(const uint8_t *data, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (M4_REG(UART_STATE) & STATE_TX_FULL) {
            const uint32_t t0 = rt_device_millis();
            while (M4_REG(UART_STATE) & STATE_TX_FULL) {
                if (tx_stuck || rt_device_millis() - t0 >= TX_WAIT_MS) {
                    tx_stuck = 1;
                    tx_dropped += (uint32_t)(n - i);
                    return;
                }
            }
        }
        tx_stuck = 0;
        M4_REG(UART_DATA) = data[i];
    }
}

uint32_t rt_device_serial_dropped(void)
{
    return tx_dropped;
}

/* ---- timer ------------------------------------------------------------------------------------- */

void TIMER0_IRQHandler(void)
{
    rt_device_tick_fn fn = tick_fn;
    M4_REG(TIMER_INTCLEAR) = 1u;
    ticks = ticks + 1u;
    if (fn != 0) {
        fn();
    }
}

int rt_device_timer_start(uint32_t hz, rt_device_tick_fn fn)
{
    const uint32_t reload = hz > 0 ? PERIPHERAL_HZ / hz - 1u : 0u;
    M4_REG(TIMER_CTRL) = 0u;
    M4_REG(TIMER_RELOAD) = reload;
    M4_REG(TIMER_VALUE) = reload;
    M4_REG(TIMER_INTCLEAR) = 1u;
    tick_fn = fn;
    M4_REG(TIMER_CTRL) = TIMER_CTRL_ENABLE | TIMER_CTRL_IRQ;
    M4_REG(NVIC_ISER0) = 1u << IRQ_TIMER0;
    return hz > 0 ? 0 : -1;
}

void rt_device_timer_stop(void)
{
    M4_REG(TIMER_CTRL) = 0u;
}

int rt_device_set_speed(uint32_t num, uint32_t den)
{
    if (num == 0u || num != den) {
        error_text = "the emulated clock is QEMU's virtual time: it runs at one speed";
        return -1;
    }
    return 0;
}

uint32_t rt_device_ticks(void)
{
    return ticks;
}

/* ---- idle and clocks ----------------------------------------------------------------------------- */

void rt_device_idle(uint32_t ticks_seen)
{
    /* With interrupts masked, wfi still wakes on a pending one, which then runs after cpsie. */
    irq_off();
    if (ticks == ticks_seen && rx_tail == rx_head && !(M4_REG(UART_STATE) & STATE_RX_FULL)) {
        __asm__ volatile("dsb\n\twfi" ::: "memory");
    }
    irq_on();
}

uint32_t rt_device_millis(void)
{
    return (uint32_t)(m4_ticks() / (1000000u / M4_NS_PER_TICK));
}

uint32_t rt_device_clock(void)
{
    return (uint32_t)rt_instructions();
}

uint8_t rt_device_clock_unit(void)
{
    return 1; /* instructions (exact under -icount) */
}

int rt_device_stop_requested(void)
{
    return 0;
}

size_t rt_device_stack_used(void)
{
    return m4_stack_high_water();
}
