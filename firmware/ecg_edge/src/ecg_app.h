/* The firmware application, shared by every build (Arduino sketch, Cortex-M4 image, host virtual
 * device): a lock-free ring between the 250 Hz sample interrupt and the main loop, the device
 * pipeline (ecg_core), and the serial protocol (ecg_protocol, firmware/PROTOCOL.md).
 *
 * A platform provides a serial writer, a clock for inference times and its ADC resolution, calls
 * ecg_app_on_sample() from its sample timer interrupt, hands received bytes to ecg_app_on_rx()
 * and calls ecg_app_poll() from its main loop. Nothing here blocks except the serial writer.
 *
 * Builds without a model (ECG_APP_NO_MODEL=1, e.g. the Arduino Uno's 2 KB of RAM) only stream
 * SAMPLES; INFO says so (capabilities 0, backend "none").
 */
#ifndef ECG_APP_H
#define ECG_APP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ECG_FIRMWARE_VERSION "ecg-edge 0.2.0"

typedef struct {
    /* Send bytes over the serial link (may block until they are queued). */
    void (*write)(void *ctx, const uint8_t *data, size_t n);
    /* A free-running 32-bit clock for RESULT times, in microseconds or instructions (time_unit). */
    uint32_t (*clock)(void *ctx);
    /* Milliseconds, for the protocol reader's idle flush (ECG_PROTO_IDLE_FLUSH_MS). */
    uint32_t (*millis)(void *ctx);
    void *ctx;
    uint8_t time_unit; /* ECG_PROTO_TIME_MICROSECONDS or ECG_PROTO_TIME_INSTRUCTIONS */
    uint8_t adc_bits;  /* ADC resolution: adc_max = 2^adc_bits - 1 */
    uint32_t hop;      /* added: samples between windows, 1..65535; 0 (zeroed struct): ECG_DEVICE_HOP_SAMPLES */
} ecg_app_platform;

typedef struct ecg_app ecg_app; /* defined in ecg_app.c; the one instance is ecg_app_instance() */

/* The application's single static instance (no heap). */
ecg_app *ecg_app_instance(void);

/* Initialise (model, pipeline, ring, protocol) and send INFO. 0 on success, -1 when the model did
 * not load (the app still streams SAMPLES and answers commands, with an ERROR for replays). */
int ecg_app_init(ecg_app *app, const ecg_app_platform *platform);

/* From the sample timer interrupt at ECG_SAMPLE_RATE_HZ: one ADC reading and the LO+/LO- state.
 * Single producer; when the ring is full the sample is counted as lost (the SAMPLES counter still
 * advances, so the host sees the gap). Ignored while the source is REPLAY. */
void ecg_app_on_sample(ecg_app *app, uint16_t raw, int lead_off);

/* Timer ticks for a platform whose timer interrupt wakes a sampling task that reads the ADC (an
 * ESP32 FreeRTOS task, an mbed thread: their analogRead() may not run in an interrupt). The interrupt
 * raises the count, the task takes how many ticks came since it last took; a late task thus sees
 * every tick it missed, where a binary flag (mbed thread flags) would merge them. One writer per
 * field: no lock; for 32-bit CPUs, where reading a 32-bit word is atomic. */
typedef struct {
    volatile uint32_t raised; /* written by the timer interrupt only */
    uint32_t taken;           /* the sampling task's own */
} ecg_app_ticks;

/* The timer interrupt: one more tick. */
void ecg_app_ticks_raise(ecg_app_ticks *t);

/* The sampling task: ticks since its previous call (0: none came, e.g. a wake-up by an older tick). */
uint32_t ecg_app_ticks_take(ecg_app_ticks *t);

/* From the sampling task, instead of ecg_app_on_sample(): `ticks` timer periods passed since its
 * previous sample (ecg_app_ticks_take(), or a count the RTOS kept: ulTaskNotifyTake's return value).
 * The reading taken now is the last of them; the ticks - 1 before it were never sampled and count as
 * lost samples, exactly as samples lost to a full ring (the SAMPLES counter jumps by them, the
 * pipeline sees lead-off). ticks 0 does nothing. */
void ecg_app_on_ticks(ecg_app *app, uint32_t ticks, uint16_t raw, int lead_off);

/* Bytes received from the host, in main-loop context. */
void ecg_app_on_rx(ecg_app *app, const uint8_t *data, size_t n);

/* Main loop work: drain the ring through the pipeline, send SAMPLES and RESULT frames, run
 * replayed samples and windows, answer commands. Returns when there is nothing left to do. */
void ecg_app_poll(ecg_app *app);

/* Samples lost to a full ring since init (a board too slow for its model shows it here). */
uint32_t ecg_app_lost_samples(const ecg_app *app);

/* ---- additions (device program, tests) ---------------------------------------------------------- */

/* Build-time settings: define them for every file (-DECG_APP_RING_SAMPLES=128), or in an optional
 * "ecg_app_config.h" next to this header (for IDEs without per-project compiler flags; the sketch's
 * ecg_board.h, included after it when present, sets per-board defaults):
 *   ECG_APP_NO_MODEL      1: no ecg_core, no inference (SAMPLES only; INFO capabilities 0, backend
 *                         "none"; REPLAY frames answered with ERROR NO_MODEL).
 *   ECG_APP_RING_SAMPLES  ring between the sample interrupt and the main loop, a power of two
 *                         (default 256 = 1 s at 250 Hz, five times an M4 inference at 64 MHz; 8-bit CPUs: at most 128). With SOURCE = replay
 *                         the same ring queues the replayed samples: the credits are its free entries.
 *   ECG_APP_TX_BYTES      frame buffer for what the device sends (default 160, 128 without a model):
 *                         INFO is the longest frame; RESULT, SAMPLES, ACK and ERROR are shorter.
 *   ECG_APP_RX_BYTES      without a model only: bytes of a host frame kept (default 16; a COMMAND
 *                         frame is 15). Longer frames are checked (CRC) and answered but not kept.
 *   ECG_APP_TEXT          1: start in text mode (the Arduino IDE's Serial Plotter draws the samples;
 *                         PROTOCOL.md, Text mode); COMMAND TEXT switches at run time. Default 0: frames.
 *   ECG_APP_WINDOW_WAIT_MS  with a model: how long a live window due for inference waits for a
 *                         REPLAY_WINDOW being assembled in the model input (default 1000 ms);
 *                         the unfinished replayed window is dropped after that. */
#if defined(__has_include)
#if __has_include("ecg_app_config.h")
#include "ecg_app_config.h"
#endif
#if __has_include("ecg_board.h")
#include "ecg_board.h" /* the sketch's per-board defaults (after ecg_app_config.h: both use #ifndef) */
#endif
#endif
#ifndef ECG_APP_NO_MODEL
#define ECG_APP_NO_MODEL 0
#endif
#ifndef ECG_APP_RING_SAMPLES
#define ECG_APP_RING_SAMPLES 256
#endif

typedef struct {
    uint32_t samples;        /* samples consumed by the pipeline since the last RESET (the counter) */
    uint32_t lost_samples;   /* samples lost to a full ring since init */
    uint32_t windows;        /* RESULT frames of the pipeline (live or replayed samples) since init */
    uint32_t replay_windows; /* REPLAY_WINDOW windows run since init */
    uint32_t rx_frames;      /* host frames received intact */
    uint32_t rx_dropped_bytes, rx_crc_errors, rx_header_errors; /* the reader's counters */
    uint32_t errors_sent;    /* ERROR frames sent */
    uint32_t tx_frames;      /* frames sent */
    uint32_t tx_lines;       /* text-mode lines sent */
    uint8_t source;          /* ECG_PROTO_SOURCE_* */
    uint8_t streaming;       /* SAMPLES frames on */
    uint8_t model_ready;     /* the model loaded */
} ecg_app_stats;

/* Counters and state, for a device's console and for tests (main-loop context). */
void ecg_app_get_stats(const ecg_app *app, ecg_app_stats *out);

/* Text mode on (1: lines for the Arduino IDE's Serial Plotter, starting with a hello line) or off (0:
 * frames), as COMMAND TEXT does; main-loop context (a sketch's button, a test). */
void ecg_app_set_text(ecg_app *app, int on);

#ifdef __cplusplus
}
#endif

#endif /* ECG_APP_H */
