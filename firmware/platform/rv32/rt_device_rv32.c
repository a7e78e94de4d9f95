/* rt_device on QEMU `-machine virt` (RV32, see rt_device.h): the NS16550A UART0 through the PLIC
 * and the CLINT machine timer.
 *
 * UART0 (0x10000000, PLIC source 10), FIFO off: QEMU's model then holds one received byte and takes
 * the next from the pty only once that one is read, so nothing is lost. The receive interrupt moves
 * bytes into a ring; when the ring is full it masks itself (the interrupt is level-triggered) and
 * leaves the byte in the UART: the main loop collects it and unmasks. Transmission polls THRE and
 * gives up after 50 ms as on the M4 (rt_device.h).
 * Timer: mtime runs at 10 MHz of virtual time; the machine timer interrupt re-arms mtimecmp by one
 * period (10e6 / hz ticks), so the sample clock has no drift.
 *
 * Linked into every RV32 program: the interrupt handlers reach the ring and the timer's state only
 * through hooks that rt_device_serial_open() and rt_device_timer_start() set, so a program that uses
 * neither keeps its RAM (the linker drops what nothing references). The ring, the serial read and
 * write and the tick count are shared with the Cortex-M4 board (platform/semihost/emu_device.h).
 */
#include "emu_device.h"
#include "rt_device.h"
#include "rt_io.h"
#include "rv32_platform.h"

#define UART_FCR (UART0_BASE + 2u)
#define UART_LCR (UART0_BASE + 3u)
#define LCR_8N1 0x03u
#define UART0_IRQ 10u

#define PLIC_BASE 0x0C000000u
#define PLIC_PRIORITY(irq) (PLIC_BASE + 4u * (irq))
#define PLIC_ENABLE0 (PLIC_BASE + 0x2000u)    /* context 0: hart 0, machine mode */
#define PLIC_THRESHOLD0 (PLIC_BASE + 0x200000u)
#define PLIC_CLAIM0 (PLIC_BASE + 0x200004u)

#define CLINT_MTIMECMP_LO 0x02004000u
#define CLINT_MTIMECMP_HI 0x02004004u
#define CLINT_MTIME_LO 0x0200BFF8u
#define CLINT_MTIME_HI 0x0200BFFCu
#define MTIME_HZ 10000000u

#define MIE_MTIE 0x80u
#define MIE_MEIE 0x800u

static void (*volatile uart_rx_hook)(void);
static void (*volatile timer_hook)(void);
static uint64_t timer_next;
static uint32_t timer_period;

static void mie_set(uint32_t bits)
{
    __asm__ volatile("csrs mie, %0" ::"r"(bits) : "memory");
}

static void mie_clear(uint32_t bits)
{
    __asm__ volatile("csrc mie, %0" ::"r"(bits) : "memory");
}

static uint64_t mtime(void)
{
    uint32_t hi;
    uint32_t lo;
    do {
        hi = RV32_REG(CLINT_MTIME_HI);
        lo = RV32_REG(CLINT_MTIME_LO);
    } while (hi != RV32_REG(CLINT_MTIME_HI));
    return ((uint64_t)hi << 32) | lo;
}

/* No moment with a compare value below the time: the high word is parked at its maximum first. */
static void set_mtimecmp(uint64_t when)
{
    RV32_REG(CLINT_MTIMECMP_HI) = UINT32_MAX;
    RV32_REG(CLINT_MTIMECMP_LO) = (uint32_t)when;
    RV32_REG(CLINT_MTIMECMP_HI) = (uint32_t)(when >> 32);
}

/* ---- serial ------------------------------------------------------------------------------------ */

static void uart_rx_isr(void)
{
    if (emu_rx_drain()) {
        REG8(UART_IER) = 0u; /* full (the interrupt is level-triggered): the byte waits in the UART */
    }
}

void rv32_machine_external_irq(void)
{
    const uint32_t source = RV32_REG(PLIC_CLAIM0);
    void (*hook)(void) = uart_rx_hook;
    if (source == UART0_IRQ && hook != 0) {
        hook();
    }
    if (source != 0u) {
        RV32_REG(PLIC_CLAIM0) = source; /* complete */
    }
}

int rt_device_serial_open(const char *spec)
{
    (void)spec;
    REG8(UART_LCR) = LCR_8N1;
    REG8(UART_FCR) = 0u;
    uart_rx_hook = uart_rx_isr;
    RV32_REG(PLIC_PRIORITY(UART0_IRQ)) = 1u;
    RV32_REG(PLIC_THRESHOLD0) = 0u;
    RV32_REG(PLIC_ENABLE0) = 1u << UART0_IRQ;
    REG8(UART_IER) = IER_RX;
    mie_set(MIE_MEIE);
    emu_board_irq_on();
    return 0;
}

/* ---- timer ------------------------------------------------------------------------------------- */

static void timer_isr(void)
{
    timer_next += timer_period;
    set_mtimecmp(timer_next);
    emu_tick();
}

void rv32_machine_timer_irq(void)
{
    void (*hook)(void) = timer_hook;
    if (hook != 0) {
        hook();
    } else {
        set_mtimecmp(UINT64_MAX); /* not armed by timer_start: never again */
    }
}

int rt_device_timer_start(uint32_t hz, rt_device_tick_fn fn)
{
    if (hz == 0u || hz > MTIME_HZ) {
        emu_set_error("the sample rate must be in 1..10000000 Hz");
        return -1;
    }
    mie_clear(MIE_MTIE);
    emu_set_tick_fn(fn);
    timer_hook = timer_isr;
    timer_period = MTIME_HZ / hz;
    timer_next = mtime() + timer_period;
    set_mtimecmp(timer_next);
    mie_set(MIE_MTIE);
    emu_board_irq_on();
    return 0;
}

void rt_device_timer_stop(void)
{
    mie_clear(MIE_MTIE);
}

/* ---- idle and clocks ----------------------------------------------------------------------------- */

void rt_device_idle(uint32_t ticks_seen)
{
    /* With MIE clear, wfi still wakes on an enabled pending interrupt, which then runs after csrsi. */
    emu_board_irq_off();
    if (rt_device_ticks() == ticks_seen && !emu_rx_pending()) {
        __asm__ volatile("wfi" ::: "memory");
    }
    emu_board_irq_on();
}

uint32_t rt_device_millis(void)
{
    return (uint32_t)(mtime() / (MTIME_HZ / 1000u));
}

size_t rt_device_stack_used(void)
{
    return rv32_stack_high_water();
}
