/* The mps2-an386 board's side of platform/semihost/emu_device.c: its UART0 registers and the
 * interrupt mask, inline so that the shared serial code costs no calls. */
#ifndef EMU_BOARD_H
#define EMU_BOARD_H

#include <stdint.h>

#include "m4_internal.h"

#define UART0_BASE 0x40004000u
#define UART_DATA (UART0_BASE + 0x00u)
#define UART_STATE (UART0_BASE + 0x04u)
#define STATE_TX_FULL 0x1u
#define STATE_RX_FULL 0x2u

static inline void emu_board_irq_off(void)
{
    __asm__ volatile("cpsid i" ::: "memory");
}

static inline void emu_board_irq_on(void)
{
    __asm__ volatile("cpsie i" ::: "memory");
}

static inline int emu_board_rx_ready(void)
{
    return (M4_REG(UART_STATE) & STATE_RX_FULL) != 0u;
}

static inline uint8_t emu_board_rx_byte(void)
{
    return (uint8_t)M4_REG(UART_DATA);
}

static inline int emu_board_tx_full(void)
{
    return (M4_REG(UART_STATE) & STATE_TX_FULL) != 0u;
}

static inline void emu_board_tx_byte(uint8_t b)
{
    M4_REG(UART_DATA) = b;
}

/* Nothing to do: the receive interrupt stays on; a full ring leaves the byte in the UART. */
static inline void emu_board_rx_resume(void)
{
}

#endif
