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
 * neither keeps its RAM (the linker drops what nothing references).
 */
#include "rt_device.h"
#include "rt_io.h"
#include "rv32_platform.h"

#define UART0_BASE 0x10000000u
#define UART_RBR (UART0_BASE + 0u) /* read */
#define UART_THR (UART0_BASE + 0u) /* write */
#define UART_IER (UART0_BASE + 1u)
#define UART_FCR (UART0_BASE + 2u)
#define UART_LCR (UART0_BASE + 3u)
#define UART_LSR (UART0_BASE + 5u)
#define IER_RX 0x01u
#define LCR_8N1 0x03u
#define LSR_DR 0x01u
#define LSR_THRE 0x20u
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

#define MSTATUS_MIE 0x8u
#define MIE_MTIE 0x80u
#define MIE_MEIE 0x800u

#define RX_RING 128u /* power of two, at most 128 (one-byte indices) */

#define REG8(addr) (*(volatile uint8_t *)(addr))

static void (*volatile uart_rx_hook)(void);
static void (*volatile timer_hook)(void);
static volatile uint8_t rx_ring[RX_RING];
static volatile uint8_t rx_head; /* written by the interrupt */
static volatile uint8_t rx_tail; /* written by the main loop */

static volatile rt_device_tick_fn tick_fn;
static volatile uint32_t ticks;
static uint64_t timer_next;
static uint32_t timer_period;

static const char *error_text = "";

static inline void irq_off(void)
{
    __asm__ volatile("csrci mstatus, %0" ::"i"(MSTATUS_MIE) : "memory");
}

static inline void irq_on(void)
{
    __asm__ volatile("csrsi mstatus, %0" ::"i"(MSTATUS_MIE) : "memory");
}

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

const char *rt_device_error(void)
{
    return error_text;
}

/* ---- serial ------------------------------------------------------------------------------------ */

static void uart_rx_isr(void)
{
    while (REG8(UART_LSR) & LSR_DR) {
        const uint8_t h = rx_head;
        if ((uint8_t)(h - rx_tail) >= RX_RING) {
            REG8(UART_IER) = 0u; /* full: the byte waits in the UART for the main loop */
            return;
        }
        rx_ring[h & (RX_RING - 1u)] = REG8(UART_RBR);
        rx_head = (uint8_t)(h + 1u);
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
    irq_on();
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
    while (got < n && (REG8(UART_LSR) & LSR_DR)) {
        buf[got++] = REG8(UART_RBR);
    }
    if (uart_rx_hook != 0) {
        REG8(UART_IER) = IER_RX;
    }
    irq_on();
    return got;
}

#define TX_WAIT_MS 50u /* see rt_device.h */
static uint32_t tx_dropped;
static int tx_stuck; /* the last wait timed out: drop at once until the line moves again */

void rt_device_serial_write(const uint8_t *data, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (!(REG8(UART_LSR) & LSR_THRE)) {
            const uint32_t t0 = rt_device_millis();
            while (!(REG8(UART_LSR) & LSR_THRE)) {
                if (tx_stuck || rt_device_millis() - t0 >= TX_WAIT_MS) {
                    tx_stuck = 1;
                    tx_dropped += (uint32_t)(n - i);
                    return;
                }
            }
        }
        tx_stuck = 0;
        REG8(UART_THR) = data[i];
    }
}

uint32_t rt_device_serial_dropped(void)
{
    return tx_dropped;
}

/* ---- timer ------------------------------------------------------------------------------------- */

static void timer_isr(void)
{
    rt_device_tick_fn fn = tick_fn;
    timer_next += timer_period;
    set_mtimecmp(timer_next);
    ticks = ticks + 1u;
    if (fn != 0) {
        fn();
    }
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
        error_text = "the sample rate must be in 1..10000000 Hz";
        return -1;
    }
    mie_clear(MIE_MTIE);
    tick_fn = fn;
    timer_hook = timer_isr;
    timer_period = MTIME_HZ / hz;
    timer_next = mtime() + timer_period;
    set_mtimecmp(timer_next);
    mie_set(MIE_MTIE);
    irq_on();
    return 0;
}

void rt_device_timer_stop(void)
{
    mie_clear(MIE_MTIE);
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
    /* With MIE clear, wfi still wakes on an enabled pending interrupt, which then runs after csrsi. */
    irq_off();
    if (ticks == ticks_seen && rx_tail == rx_head && !(REG8(UART_LSR) & LSR_DR)) {
        __asm__ volatile("wfi" ::: "memory");
    }
    irq_on();
}

uint32_t rt_device_millis(void)
{
    return (uint32_t)(mtime() / (MTIME_HZ / 1000u));
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
    return rv32_stack_high_water();
}
