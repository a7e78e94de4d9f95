/* rt_device's shared part on the emulated boards (emu_device.h). */
#include "emu_device.h"

#include "rt_io.h"

#define RX_RING 128u /* power of two, at most 128 (one-byte indices) */

static volatile uint8_t rx_ring[RX_RING];
static volatile uint8_t rx_head; /* written by the interrupt */
static volatile uint8_t rx_tail; /* written by the main loop */

static volatile rt_device_tick_fn tick_fn;
static volatile uint32_t ticks;

static const char *error_text = "";

const char *rt_device_error(void)
{
    return error_text;
}

void emu_set_error(const char *text)
{
    error_text = text;
}

/* ---- serial ------------------------------------------------------------------------------------ */

int emu_rx_drain(void)
{
    while (emu_board_rx_ready()) {
        const uint8_t h = rx_head;
        if ((uint8_t)(h - rx_tail) >= RX_RING) {
            return 1; /* full: the byte waits in the UART for the main loop */
        }
        rx_ring[h & (RX_RING - 1u)] = emu_board_rx_byte();
        rx_head = (uint8_t)(h + 1u);
    }
    return 0;
}

int emu_rx_pending(void)
{
    return rx_tail != rx_head || emu_board_rx_ready();
}

size_t rt_device_serial_read(uint8_t *buf, size_t n)
{
    size_t got = 0;
    emu_board_irq_off();
    while (got < n && rx_tail != rx_head) {
        buf[got++] = rx_ring[rx_tail & (RX_RING - 1u)];
        rx_tail = (uint8_t)(rx_tail + 1u);
    }
    /* A byte left in the UART by a full ring (it came after the ones in the ring). */
    while (got < n && emu_board_rx_ready()) {
        buf[got++] = emu_board_rx_byte();
    }
    emu_board_rx_resume();
    emu_board_irq_on();
    return got;
}

/* QEMU holds the transmitter full while the pty's reader lets its buffer fill up. A UART does not
 * wait for its listener: after TX_WAIT_MS the rest of the write is dropped (and counted), so a host
 * that writes without reading cannot deadlock the firmware (rt_device.h). */
#define TX_WAIT_MS 50u
static uint32_t tx_dropped;
static int tx_stuck; /* the last wait timed out: drop at once until the line moves again */

void rt_device_serial_write(const uint8_t *data, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (emu_board_tx_full()) {
            const uint32_t t0 = rt_device_millis();
            while (emu_board_tx_full()) {
                if (tx_stuck || rt_device_millis() - t0 >= TX_WAIT_MS) {
                    tx_stuck = 1;
                    tx_dropped += (uint32_t)(n - i);
                    return;
                }
            }
        }
        tx_stuck = 0;
        emu_board_tx_byte(data[i]);
    }
}

uint32_t rt_device_serial_dropped(void)
{
    return tx_dropped;
}

/* ---- ticks and clocks -------------------------------------------------------------------------- */

void emu_tick(void)
{
    const rt_device_tick_fn fn = tick_fn;
    ticks = ticks + 1u;
    if (fn != 0) {
        fn();
    }
}

void emu_set_tick_fn(rt_device_tick_fn fn)
{
    tick_fn = fn;
}

uint32_t rt_device_ticks(void)
{
    return ticks;
}

int rt_device_set_speed(uint32_t num, uint32_t den)
{
    if (num == 0u || num != den) {
        error_text = "the emulated clock is QEMU's virtual time: it runs at one speed";
        return -1;
    }
    return 0;
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
