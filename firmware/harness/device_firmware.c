/* The device: the firmware application (ecg_app) on a serial link, its ADC fed at ECG_SAMPLE_RATE_HZ
 * by the built-in AD8232 signal model or by a samples file. The same main loop runs on the host
 * (the virtual device of `ecg-host simulate`) and on the Cortex-M4 under QEMU (`ecg-host emulate`);
 * rt_device.h gives it the serial link, the sample timer and idling.
 *
 *   device_firmware [--serial PATH|fd:N] [--samples FILE [--loop]] [--heart-rate BPM] [--seed N]
 *                   [--lead-off EVERY_S,FOR_S] [--adc-bits N] [--seconds S] [--report S]
 *                   [--stall AT_S,MS] [--busy-after-rx MS] [--late-sampler AT_S,MS] [--speed N]
 *
 * --serial      host: the tty or pty to talk on ("fd:N": an inherited descriptor); the M4 uses UART0
 * --samples     raw ADC readings instead of the signal model: one uint32 LE per sample, bits 0-15 the
 *               ADC count, bit 16 the lead-off flag (export.crosscheck.write_samples). Read in
 *               chunks by the main loop into a ring the timer interrupt takes from. At its end the
 *               electrodes are off (ADC at the high rail, lead-off set) unless --loop starts it over.
 * --heart-rate, --seed, --lead-off   the signal model (ecg_signal_model.h; lead-off: a stretch of
 *               FOR_S seconds at the end of every EVERY_S seconds)
 * --adc-bits    ADC resolution (12)
 * --seconds     stop after this many seconds of samples (0: run until SIGINT/SIGTERM on the host,
 *               for ever on the M4) and print the counters
 * --report      also print the counters every S seconds of samples (QEMU ends without a last word)
 * --stall       after AT_S seconds of samples the main loop stops for MS milliseconds, once: a board
 *               too slow for a moment (longer than the ring, 256 samples or about 1 s, loses samples; tests use it)
 * --busy-after-rx  the main loop stays busy MS milliseconds after handing bytes to the app (an
 *               inference in the middle of a read on a slow board: the app must not take that for an
 *               idle line; tests use it)
 * --late-sampler  sample as the ESP32 and mbed sketches do: the timer interrupt only counts the tick
 *               (ecg_app_ticks_raise) and a sampler (here the main loop) takes the count and reads
 *               one sample (ecg_app_on_ticks); after AT_S seconds of samples the sampler is late by MS
 *               milliseconds, once: the ticks it missed must become lost samples (tests use it)
 * --speed       host: the device's clocks (sample timer, milliseconds, inference clock) run N times
 *               faster than real time (a decimal, e.g. 100 or 2.5; at most 6 decimals); the M4 refuses
 *               any N but 1 (QEMU's virtual time is its clock)
 *
 * The console (stderr on the host, semihosting on the M4) gets "device: ..." lines: start-up, errors,
 * and the counters at the end.
 */
#include <string.h>

#include "ecg_app.h"
#include "ecg_config.h"
#include "ecg_signal_model.h"
#include "rt_device.h"
#include "rt_io.h"

#if defined(__arm__) || defined(RT_PLATFORM_RV32)
#define FILE_RING 256u  /* samples read ahead from the samples file (power of two; ~1 s) */
#else
#define FILE_RING 8192u /* host: ~33 s, so a --speed clock stays fed between the main loop's refills */
#endif
#define FILE_CHUNK 64u  /* samples per read */
#define RX_CHUNK 64u

/* ---- the ADC ----------------------------------------------------------------------------------- */

static ecg_signal signal_model;
static int use_file;
static rt_file *samples_file;
static const char *samples_path;
static int loop_file;
static uint16_t adc_max = 4095;

/* Samples file ring: the main loop writes (head), the timer interrupt reads (tail). Entries are
 * packed as on the wire: bit 15 lead-off, bits 0..14 ADC. */
static volatile uint16_t file_ring[FILE_RING];
static volatile uint16_t file_head, file_tail;
static volatile uint8_t file_ended;
static volatile uint32_t file_underruns; /* ticks that found the ring empty before the end */

static volatile uint32_t produced;
static uint32_t report_every; /* samples between counter lines; 0: at the end only */
static uint32_t stall_at, stall_ms; /* --stall */
static uint32_t busy_after_rx_ms;   /* --busy-after-rx */
static uint32_t produce_limit; /* 0: no limit */
static volatile uint8_t done;

static ecg_app *app;
static ecg_app_ticks sampler_ticks; /* --late-sampler */
static int late_sampler;
static uint32_t late_at, late_ms;

/* One reading of the ADC: the signal model or the samples file. */
static void read_adc(uint16_t *raw_out, int *lead_off_out)
{
    uint16_t raw;
    int lead_off;
    if (!use_file) {
        raw = ecg_signal_next(&signal_model, &lead_off);
    } else {
        const uint16_t t = file_tail;
        if (t != file_head) {
            const uint16_t p = file_ring[t & (FILE_RING - 1u)];
            file_tail = (uint16_t)(t + 1u);
            raw = (uint16_t)(p & 0x7FFFu);
            lead_off = (p & 0x8000u) != 0;
        } else {
            if (!file_ended) {
                file_underruns = file_underruns + 1u;
            }
            raw = adc_max; /* electrodes off */
            lead_off = 1;
        }
    }
    *raw_out = raw;
    *lead_off_out = lead_off;
}

static void count_produced(uint32_t n)
{
    produced = produced + n;
    if (produce_limit != 0 && produced >= produce_limit) {
        done = 1;
    }
}

static void on_tick(void)
{
    uint16_t raw;
    int lead_off;
    if (done) {
        return;
    }
    if (late_sampler) {
        ecg_app_ticks_raise(&sampler_ticks); /* the sampler task reads the ADC */
        return;
    }
    read_adc(&raw, &lead_off);
    ecg_app_on_sample(app, raw, lead_off);
    count_produced(1);
}

/* --late-sampler: the sampling task's turn (main loop), as in the ESP32 and mbed sketches. */
static void run_sampler(void)
{
    uint32_t n;
    uint16_t raw;
    int lead_off;
    if (late_at != 0 && produced >= late_at) {
        const uint32_t t0 = rt_device_millis();
        late_at = 0;
        while (rt_device_millis() - t0 < late_ms) { /* late: the ticks keep coming */
        }
    }
    n = ecg_app_ticks_take(&sampler_ticks);
    if (n == 0 || done) {
        return;
    }
    read_adc(&raw, &lead_off);
    ecg_app_on_ticks(app, n, raw, lead_off);
    count_produced(n);
}

/* Keep the samples ring full (main loop). */
static void refill(void)
{
    uint8_t bytes[FILE_CHUNK * 4u];
    while (samples_file != NULL && (uint16_t)(FILE_RING - (uint16_t)(file_head - file_tail)) >= FILE_CHUNK) {
        const size_t got = rt_read(samples_file, bytes, sizeof bytes) / 4u;
        uint16_t h = file_head;
        size_t i;
        for (i = 0; i < got; i++) {
            const uint8_t *b = bytes + 4u * i;
            const uint16_t adc = (uint16_t)(b[0] | (b[1] << 8));
            file_ring[h & (FILE_RING - 1u)] = (uint16_t)((adc > 0x7FFFu ? 0x7FFFu : adc) | ((b[2] & 1u) ? 0x8000u : 0u));
            h++;
        }
        file_head = h;
        if (got < FILE_CHUNK) { /* the end (a partial trailing sample is ignored) */
            rt_close(samples_file);
            samples_file = NULL;
            if (loop_file && got + (size_t)(uint16_t)(file_head - file_tail) > 0) {
                samples_file = rt_open(samples_path, 0);
            }
            if (samples_file == NULL) {
                file_ended = 1;
            }
        }
    }
}

/* ---- the platform for ecg_app ------------------------------------------------------------------- */

static void platform_write(void *ctx, const uint8_t *data, size_t n)
{
    (void)ctx;
    rt_device_serial_write(data, n);
}

static uint32_t platform_clock(void *ctx)
{
    (void)ctx;
    return rt_device_clock();
}

static uint32_t platform_millis(void *ctx)
{
    (void)ctx;
    return rt_device_millis();
}

/* ---- console ----------------------------------------------------------------------------------- */

static void say(const char *a, const char *b)
{
    char line[240] = "device: ";
    strncat(line, a, sizeof line - strlen(line) - 1);
    if (b != NULL) {
        strncat(line, b, sizeof line - strlen(line) - 1);
    }
    rt_log(line);
}

/* "name=value " appended to line (no printf: it would cost the M4 image flash). */
static void add_counter(char *line, size_t size, const char *name, uint32_t value)
{
    char digits[12];
    char *p = digits + sizeof digits - 1;
    *p = '\0';
    do {
        *--p = (char)('0' + value % 10u);
        value /= 10u;
    } while (value != 0u);
    strncat(line, " ", size - strlen(line) - 1);
    strncat(line, name, size - strlen(line) - 1);
    strncat(line, "=", size - strlen(line) - 1);
    strncat(line, p, size - strlen(line) - 1);
}

static void say_counters(void)
{
    ecg_app_stats st;
    char line[360] = "device: counters";
    ecg_app_get_stats(app, &st);
    add_counter(line, sizeof line, "samples", st.samples);
    add_counter(line, sizeof line, "lost", st.lost_samples);
    add_counter(line, sizeof line, "windows", st.windows);
    add_counter(line, sizeof line, "replay_windows", st.replay_windows);
    add_counter(line, sizeof line, "rx_frames", st.rx_frames);
    add_counter(line, sizeof line, "rx_dropped_bytes", st.rx_dropped_bytes);
    add_counter(line, sizeof line, "rx_crc_errors", st.rx_crc_errors);
    add_counter(line, sizeof line, "rx_header_errors", st.rx_header_errors);
    add_counter(line, sizeof line, "errors_sent", st.errors_sent);
    add_counter(line, sizeof line, "tx_frames", st.tx_frames);
    add_counter(line, sizeof line, "tx_dropped_bytes", rt_device_serial_dropped());
    add_counter(line, sizeof line, "file_underruns", file_underruns);
    add_counter(line, sizeof line, "produced", produced);
    add_counter(line, sizeof line, "stack_bytes", (uint32_t)rt_device_stack_used());
    rt_log(line);
}

static int usage(const char *why)
{
    say(why, NULL);
    rt_log("usage: device_firmware [--serial PATH|fd:N] [--samples FILE [--loop]] [--heart-rate BPM] [--seed N] "
           "[--lead-off EVERY_S,FOR_S] [--adc-bits N] [--seconds S] [--report S] [--stall AT_S,MS] [--busy-after-rx MS] "
           "[--late-sampler AT_S,MS] [--speed N]");
    return 2;
}

/* A decimal number in [lo, hi] (no strtol: it would pull newlib's reentrancy data into the M4 image). */
static int number(const char *s, long lo, long hi, long *out)
{
    long v = 0;
    if (*s == '\0') {
        return -1;
    }
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9' || v > (hi - (*s - '0')) / 10) {
            return -1;
        }
        v = v * 10 + (*s - '0');
    }
    if (v < lo) {
        return -1;
    }
    *out = v;
    return 0;
}

/* A decimal "D[.D]" (at most 6 decimals) as num/den, num > 0 and below 2^32. */
static int decimal(const char *s, uint32_t *num, uint32_t *den)
{
    uint32_t n = 0, d = 1;
    int digits = 0, fraction = -1;
    for (; *s != '\0'; s++) {
        if (*s == '.' && fraction < 0) {
            fraction = 0;
            continue;
        }
        if (*s < '0' || *s > '9' || n > (0xFFFFFFFFu - 9u) / 10u || fraction >= 6) {
            return -1;
        }
        n = n * 10u + (uint32_t)(*s - '0');
        digits++;
        if (fraction >= 0) {
            fraction++;
            d *= 10u;
        }
    }
    if (digits == 0 || n == 0) {
        return -1;
    }
    *num = n;
    *den = d;
    return 0;
}

/* The main loop busy for `ms` (the sample interrupt keeps filling the ring). */
static void busy_wait(uint32_t ms)
{
    const uint32_t t0 = rt_device_millis();
    while (ms != 0 && rt_device_millis() - t0 < ms) {
    }
}

/* "A,B" as two numbers in their ranges. */
static int pair(const char *s, long *a, long a_lo, long a_hi, long *b, long b_lo, long b_hi)
{
    char buf[32];
    char *comma;
    strncpy(buf, s, sizeof buf - 1);
    buf[sizeof buf - 1] = '\0';
    comma = strchr(buf, ',');
    if (comma == NULL) {
        return -1;
    }
    *comma = '\0';
    return number(buf, a_lo, a_hi, a) == 0 && number(comma + 1, b_lo, b_hi, b) == 0 ? 0 : -1;
}

int harness_main(int argc, char **argv)
{
    ecg_signal_config sc;
    ecg_app_platform pf;
    const char *serial = NULL;
    uint8_t rx[RX_CHUNK];
    long v, seconds = 0, adc_bits = 12;
    uint32_t next_report = 0;
    int i, plotter = 0;

    ecg_signal_default_config(&sc, ECG_SAMPLE_RATE_HZ);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--loop") == 0) {
            loop_file = 1;
            continue;
        }
        if (strcmp(a, "--plotter") == 0) {
            plotter = 1;
            continue;
        }
        if (next == NULL) {
            return usage("missing value after an option, or unknown option");
        }
        i++;
        if (strcmp(a, "--serial") == 0) {
            serial = next;
        } else if (strcmp(a, "--samples") == 0) {
            samples_path = next;
        } else if (strcmp(a, "--heart-rate") == 0 && number(next, 20, 250, &v) == 0) {
            sc.heart_rate_bpm = (uint16_t)v;
        } else if (strcmp(a, "--seed") == 0 && number(next, 0, 2147483647L, &v) == 0) {
            sc.seed = (uint32_t)v;
        } else if (strcmp(a, "--adc-bits") == 0 && number(next, 8, 15, &v) == 0) {
            adc_bits = v;
        } else if (strcmp(a, "--seconds") == 0 && number(next, 0, 16000000L, &v) == 0) {
            seconds = v;
        } else if (strcmp(a, "--report") == 0 && number(next, 0, 16000000L, &v) == 0) {
            report_every = (uint32_t)v * ECG_SAMPLE_RATE_HZ;
        } else if (strcmp(a, "--lead-off") == 0) {
            long every, len;
            if (pair(next, &every, 1, 65535, &len, 1, 65534) != 0 || len >= every) {
                return usage("--lead-off takes EVERY_S,FOR_S with 0 < FOR_S < EVERY_S");
            }
            sc.lead_off_every_s = (uint16_t)every;
            sc.lead_off_for_s = (uint16_t)len;
        } else if (strcmp(a, "--busy-after-rx") == 0 && number(next, 0, 60000L, &v) == 0) {
            busy_after_rx_ms = (uint32_t)v;
        } else if (strcmp(a, "--late-sampler") == 0) {
            long at, ms;
            if (pair(next, &at, 1, 16000000L, &ms, 1, 600000L) != 0) {
                return usage("--late-sampler takes AT_S,MS");
            }
            late_sampler = 1;
            late_at = (uint32_t)at * ECG_SAMPLE_RATE_HZ;
            late_ms = (uint32_t)ms;
        } else if (strcmp(a, "--speed") == 0) {
            uint32_t num, den;
            if (decimal(next, &num, &den) != 0) {
                return usage("--speed takes a decimal number above 0 (e.g. 100 or 2.5)");
            }
            if (rt_device_set_speed(num, den) != 0) {
                say("--speed: ", rt_device_error());
                return 2;
            }
        } else if (strcmp(a, "--stall") == 0) {
            long at, ms;
            if (pair(next, &at, 1, 16000000L, &ms, 1, 600000L) != 0) {
                return usage("--stall takes AT_S,MS");
            }
            stall_at = (uint32_t)at * ECG_SAMPLE_RATE_HZ;
            stall_ms = (uint32_t)ms;
        } else {
            return usage(a);
        }
    }
    sc.adc_bits = (uint8_t)adc_bits;
    adc_max = (uint16_t)((1u << adc_bits) - 1u);
    produce_limit = (uint32_t)seconds * ECG_SAMPLE_RATE_HZ;

    if (rt_device_serial_open(serial) != 0) {
        say("cannot open the serial link: ", rt_device_error());
        return 1;
    }
    if (samples_path != NULL) {
        samples_file = rt_open(samples_path, 0);
        if (samples_file == NULL) {
            say("cannot open the samples file ", samples_path);
            return 1;
        }
        use_file = 1;
        refill();
    } else {
        ecg_signal_init(&signal_model, &sc);
    }

    memset(&pf, 0, sizeof pf); /* hop 0: the bundle's */
    pf.write = platform_write;
    pf.clock = platform_clock;
    pf.millis = platform_millis;
    pf.ctx = NULL;
    pf.time_unit = rt_device_clock_unit();
    pf.adc_bits = (uint8_t)adc_bits;
    app = ecg_app_instance();
    if (ecg_app_init(app, &pf) != 0) {
        say("the model did not load: SAMPLES only, REPLAY_WINDOW answered with NO_MODEL", NULL);
    }
    if (plotter) {
        ecg_app_set_text(app, 1);
    }
    if (rt_device_timer_start(ECG_SAMPLE_RATE_HZ, on_tick) != 0) {
        say("cannot start the sample timer: ", rt_device_error());
        return 1;
    }
    say("running ", samples_path != NULL ? samples_path : "(signal model)");

    for (;;) {
        const uint32_t seen = rt_device_ticks();
        const size_t n = rt_device_serial_read(rx, sizeof rx);
        if (late_sampler) {
            run_sampler();
        }
        if (n > 0) {
            ecg_app_on_rx(app, rx, n);
            busy_wait(busy_after_rx_ms);
        }
        ecg_app_poll(app);
        refill();
        if (stall_at != 0 && produced >= stall_at) {
            stall_at = 0;
            busy_wait(stall_ms);
        }
        if (report_every != 0 && produced >= next_report + report_every) {
            next_report += report_every;
            say_counters();
        }
        if (rt_device_stop_requested() || done) {
            break;
        }
        if (n == 0) {
            rt_device_idle(seen);
        }
    }
    rt_device_timer_stop();
    ecg_app_poll(app); /* what the ring still holds */
    if (samples_file != NULL) {
        rt_close(samples_file);
    }
    say_counters();
    return 0;
}
