/* The part of rt_device (rt_device.h) that the emulated boards share (platform/m4: mps2-an386's
 * CMSDK UART and timer; platform/rv32: virt's NS16550A, PLIC and CLINT): the receive ring, the
 * serial read and write, the tick count and the clocks. Each board's emu_board.h (on its include
 * path) gives its UART and interrupt mask as static inline functions: emu_board_rx_ready,
 * emu_board_rx_byte, emu_board_tx_full, emu_board_tx_byte, emu_board_rx_resume (receive interrupts
 * on again after the main loop read), emu_board_irq_off and emu_board_irq_on. The board calls
 * emu_rx_drain() from its receive interrupt and emu_tick() from its timer interrupt.
 *
 * QEMU's UART models hold one received byte and take the next from the pty only once that one is
 * read, so nothing is lost: the receive interrupt moves bytes into the ring, and when the ring is
 * full it leaves the byte in the UART for the main loop (which then takes it after the ring's).
 */
#ifndef EMU_DEVICE_H
#define EMU_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "emu_board.h"
#include "rt_device.h"

/* Move received bytes into the ring; 1 when it stopped because the ring is full. */
int emu_rx_drain(void);
/* Bytes wait in the ring or in the UART. */
int emu_rx_pending(void);
/* The timer interrupt's work: count the tick, then call the program's tick function. */
void emu_tick(void);
/* The tick function rt_device_timer_start() was given. */
void emu_set_tick_fn(rt_device_tick_fn fn);
/* What rt_device_error() says next. */
void emu_set_error(const char *text);

#endif
