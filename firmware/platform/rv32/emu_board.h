/* The virt board's side of platform/semihost/emu_device.c: its NS16550A UART0 registers and the
 * interrupt mask, inline so that the shared serial code costs no calls. */
#ifndef EMU_BOARD_H
#define EMU_BOARD_H

#include <stdint.h>

#define UART0_BASE 0x10000000u
#define UART_RBR (UART0_BASE + 0u) /* read */
#define UART_THR (UART0_BASE + 0u) /* write */
#define UART_IER (UART0_BASE + 1u)
#define UART_LSR (UART0_BASE + 5u)
#define IER_RX 0x01u
#define LSR_DR 0x01u
#define LSR_THRE 0x20u
#define MSTATUS_MIE 0x8u

#define REG8(addr) (*(volatile uint8_t *)(addr))

static inline void emu_board_irq_off(void)
{
    __asm__ volatile("csrci mstatus, %0" ::"i"(MSTATUS_MIE) : "memory");
}

static inline void emu_board_irq_on(void)
{
    __asm__ volatile("csrsi mstatus, %0" ::"i"(MSTATUS_MIE) : "memory");
}

static inline int emu_board_rx_ready(void)
{
    return (REG8(UART_LSR) & LSR_DR) != 0u;
}

static inline uint8_t emu_board_rx_byte(void)
{
    return REG8(UART_RBR);
}

static inline int emu_board_tx_full(void)
{
    return !(REG8(UART_LSR) & LSR_THRE);
}

static inline void emu_board_tx_byte(uint8_t b)
{
    REG8(UART_THR) = b;
}

/* The receive interrupt, masked by a full ring (it is level-triggered), on again. Before
 * rt_device_serial_open() the PLIC does not pass it on, so this is harmless then. */
static inline void emu_board_rx_resume(void)
{
    REG8(UART_IER) = IER_RX;
}

#endif
