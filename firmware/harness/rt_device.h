/* Platform services of the device program (harness/device_firmware.c), beyond rt_io.h: the serial
 * link, the sample timer, idling and clocks. The program's main loop is the same everywhere:
 *
 *   platform/host/rt_device_host.c  POSIX: a tty or pseudo-terminal (raw, non-blocking), the timer a
 *                                   POSIX interval timer on CLOCK_MONOTONIC whose signal handler plays
 *                                   the interrupt (absolute expiries: no drift; overruns are caught
 *                                   up), idle in pselect(); clock in microseconds.
 *   platform/m4/rt_device_m4.c      QEMU mps2-an386: UART0 (receive interrupt into a ring, polled
 *                                   transmit), CMSDK timer 0 interrupt, idle in `wfi`; clock in
 *                                   instructions (rt_instructions(), exact under -icount).
 *   platform/rv32/rt_device_rv32.c  QEMU virt (RV32): NS16550A UART0 (receive interrupt through the
 *                                   PLIC into a ring, polled transmit), CLINT machine timer, idle in
 *                                   `wfi`; clock in instructions (minstret, exact under -icount).
 *
 * The tick function runs in interrupt context (a signal handler on the host): it may only touch
 * data shared with the main loop the single-producer/single-consumer way.
 */
#ifndef RT_DEVICE_H
#define RT_DEVICE_H

#include <stddef.h>
#include <stdint.h>

typedef void (*rt_device_tick_fn)(void);

/* Open the serial link. Host: `spec` is a tty path (e.g. /dev/ttyUSB0, a socat pty) or "fd:N", an
 * inherited descriptor such as a pseudo-terminal's master side; it is put in raw mode. M4: UART0,
 * `spec` ignored. 0 on success, -1 with rt_device_error() set. */
int rt_device_serial_open(const char *spec);
/* Up to n received bytes; never blocks (0 when nothing is waiting). */
size_t rt_device_serial_read(uint8_t *buf, size_t n);
/* Send n bytes, waiting while the line is busy. Bytes nobody takes are dropped, as a UART with
 * nothing attached would: when the line stayed blocked for 50 ms (a client that does not read; then
 * at once until it moves again), and on the host when the other side of the pty is closed. Under
 * QEMU the pty backend drops while no client is connected and, with a client that does not read,
 * blocks inside the UART write: the emulated board (and its virtual time) stands still until read. */
void rt_device_serial_write(const uint8_t *data, size_t n);
/* Bytes dropped by rt_device_serial_write. */
uint32_t rt_device_serial_dropped(void);

/* Run the device's clocks (the sample timer, rt_device_millis, rt_device_clock) num/den times faster
 * than real time; call it before rt_device_timer_start. 0 on success, -1 with rt_device_error() where
 * the platform cannot (the M4: its clock is QEMU's virtual time) or num/den is 0. */
int rt_device_set_speed(uint32_t num, uint32_t den);

/* Call `fn` from the timer interrupt `hz` times per second (of the device's clock). 0 on success, -1 with rt_device_error(). */
int rt_device_timer_start(uint32_t hz, rt_device_tick_fn fn);
void rt_device_timer_stop(void);
/* Timer interrupts so far (wraps). */
uint32_t rt_device_ticks(void);

/* The main loop's idle: sleep until an interrupt or received bytes, unless a tick came since
 * rt_device_ticks() returned `ticks_seen` or bytes are already waiting (no lost wake-up). */
void rt_device_idle(uint32_t ticks_seen);

/* Milliseconds, free-running (the protocol reader's idle flush). */
uint32_t rt_device_millis(void);
/* Clock for inference times, free-running 32 bits, and its unit (ECG_PROTO_TIME_*). */
uint32_t rt_device_clock(void);
uint8_t rt_device_clock_unit(void);

/* Non-zero once the program was asked to end (host: SIGINT, SIGTERM; M4: never). */
int rt_device_stop_requested(void);
/* The most stack the program used so far, in bytes (M4: from the painted stack; host: 0). */
size_t rt_device_stack_used(void);
/* What the last failing call could not do. */
const char *rt_device_error(void);

#endif /* RT_DEVICE_H */
