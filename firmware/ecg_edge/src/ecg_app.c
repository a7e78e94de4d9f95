/* The firmware application: see ecg_app.h and firmware/PROTOCOL.md.
 *
 * Ring between the sample interrupt and the main loop (single producer, single consumer):
 * - entries are packed samples (bit 15 lead-off, bits 0..14 ADC, as on the wire); `head` is written
 *   by the producer only, `tail` by the main loop only; an entry is written before `head` moves past it;
 * - a sample that finds the ring full is lost: the interrupt counts it and, once there is room again,
 *   writes a gap record (ECG_APP_GAP_MARK, count) before the next sample, so the main loop advances
 *   the sample counter by the gap (SAMPLES frames show the jump) and feeds the pipeline the same
 *   number of lead-off samples (every window over a gap is LEAD_OFF, and window k keeps covering
 *   samples [k * hop, k * hop + window) of the counter);
 * - with SOURCE = replay the interrupt leaves the ring alone and the main loop queues REPLAY_SAMPLES
 *   in it (it is then both producer and consumer); a source change empties the ring.
 * On 8-bit CPUs an index is one byte (ECG_APP_RING_SAMPLES <= 128), so reading it is atomic. Where
 * the interrupt may run on another core (an ESP32 sampler task), fences order entries and indices,
 * and a reset or source change waits for an interrupt in progress (`isr_busy`) before it empties
 * the ring, so no ADC sample slips into a replay.
 */
#include <string.h>

#include "ecg_app.h"
#include "ecg_protocol.h"

#if ECG_APP_NO_MODEL
#include "ecg_generated.h" /* only the bundle's configuration is used: rate, window, hop, labels, fingerprint */
#else
#include "ecg_core.h"
#include "ecg_infer.h"
#endif

#if ECG_APP_RING_SAMPLES < 8 || ECG_APP_RING_SAMPLES > 32768 || (ECG_APP_RING_SAMPLES & (ECG_APP_RING_SAMPLES - 1)) != 0
#error "ECG_APP_RING_SAMPLES must be a power of two in 8..32768"
#endif
#if defined(__AVR__) && ECG_APP_RING_SAMPLES > 128
#error "on 8-bit AVR ECG_APP_RING_SAMPLES must be at most 128 (one-byte ring indices)"
#endif
#if ECG_APP_RING_SAMPLES <= 128
typedef uint8_t ring_index;
#else
typedef uint16_t ring_index;
#endif
#define RING_MASK ((ring_index)(ECG_APP_RING_SAMPLES - 1))

#ifndef ECG_APP_TX_BYTES
#if ECG_APP_NO_MODEL
#define ECG_APP_TX_BYTES 128
#else
#define ECG_APP_TX_BYTES 160
#endif
#endif
#ifndef ECG_APP_RX_BYTES
#define ECG_APP_RX_BYTES 16
#endif
#ifndef ECG_APP_WINDOW_WAIT_MS
#define ECG_APP_WINDOW_WAIT_MS 1000u
#endif
#ifndef ECG_APP_TEXT
#define ECG_APP_TEXT 0
#endif

/* Frames other than INFO: RESULT with every logit, a full batch of SAMPLES, ACK, ERROR. */
#define FRAME_OVERHEAD (ECG_PROTO_HEADER_BYTES + ECG_PROTO_CRC_BYTES)
#if !ECG_APP_NO_MODEL && ECG_BEATS
#define APP_BEATS 1 /* the core's beat detector runs: BEATS frames, RESULTs with the rhythm figures */
#define RESULT_FRAME_BYTES (FRAME_OVERHEAD + 17 + ECG_NUM_LABELS + ECG_PROTO_RESULT_RHYTHM_BYTES)
#define BEATS_FRAME_BYTES (FRAME_OVERHEAD + ECG_PROTO_BEATS_FIXED_BYTES + ECG_PROTO_BEAT_BYTES * ECG_BEATS_MAX_PER_PUSH)
#else
#define APP_BEATS 0
#define RESULT_FRAME_BYTES (FRAME_OVERHEAD + 17 + ECG_NUM_LABELS)
#define BEATS_FRAME_BYTES 0
#endif
#define SAMPLES_FRAME_BYTES (FRAME_OVERHEAD + 5 + 2 * ECG_PROTO_SAMPLE_BATCH)
#define ERROR_MESSAGE_MAX 40
#define ERROR_FRAME_BYTES (FRAME_OVERHEAD + 4 + ERROR_MESSAGE_MAX)
#if ECG_APP_TX_BYTES > ECG_PROTO_MAX_FRAME || ECG_APP_TX_BYTES < RESULT_FRAME_BYTES || \
    ECG_APP_TX_BYTES < SAMPLES_FRAME_BYTES || ECG_APP_TX_BYTES < ERROR_FRAME_BYTES || ECG_APP_TX_BYTES < BEATS_FRAME_BYTES
#error "ECG_APP_TX_BYTES cannot hold a RESULT, a batch of SAMPLES, an ERROR or a BEATS frame"
#endif
#if APP_BEATS && ECG_BEATS_MAX_PER_PUSH > ECG_PROTO_MAX_BEATS
#error "one sample can make more beats final than a BEATS frame carries"
#endif
#if ECG_APP_NO_MODEL && (ECG_APP_RX_BYTES < FRAME_OVERHEAD + 5 || ECG_APP_RX_BYTES > 255)
#error "ECG_APP_RX_BYTES must hold a COMMAND frame (15 bytes) and stay below 256"
#endif
#if ECG_NUM_LABELS > ECG_PROTO_MAX_LABELS
#error "more labels than the protocol carries"
#endif

/* Orders the ring's entry and index accesses between the sample interrupt and the main loop when
 * they run on different cores (an ESP32 app task); one core needs only the volatile accesses. */
#if defined(__GNUC__) && !defined(__AVR__)
#define ECG_APP_FENCE() __sync_synchronize()
#else
#define ECG_APP_FENCE() ((void)0)
#endif

/* A ring entry that announces lost samples; the next entry holds their number (1..65535). A sample
 * that packs to the same value (ADC 0x7FFF with lead-off) is stored as 0xFFFE. */
#define ECG_APP_GAP_MARK 0xFFFFu

#if !ECG_APP_NO_MODEL
/* The compact reader of the no-model build is below; this build uses the protocol's reader. */
typedef ecg_proto_reader app_reader;
#else
/* The no-model build's reader: ecg_proto_reader's state machine over a small buffer. A candidate
 * longer than the buffer is not kept: its CRC is computed on the fly and, when it matches, the frame
 * is delivered without payload (answered from its type alone). Unlike ecg_proto_reader, a long
 * candidate whose CRC fails is dropped whole (the bytes behind its false header are not rescanned). */
typedef struct {
    uint8_t buf[ECG_APP_RX_BYTES];
    uint8_t len;        /* buffered bytes buf[0 .. len) */
    uint16_t skip_size; /* > 0: streaming a long candidate of this many bytes */
    uint16_t skip_pos;  /* its bytes seen */
    uint16_t skip_crc;
    uint8_t skip_crc_lo;
    uint8_t skip_type;
    uint16_t skip_seq, skip_len;
    uint32_t frames, dropped_bytes, crc_errors, header_errors;
} app_reader;
#endif

struct ecg_app {
    ecg_app_platform pf;
    uint16_t adc_max;
    uint16_t hop;

    /* Shared with the sample interrupt. */
    volatile uint16_t ring[ECG_APP_RING_SAMPLES];
    volatile ring_index head;  /* producer: the interrupt (ADC) or the main loop (replay) */
    volatile ring_index tail;  /* consumer: the main loop */
    volatile uint8_t source;   /* written by the main loop */
    volatile uint8_t reset_gen; /* written by the main loop: the interrupt forgets older losses */
    volatile uint8_t running;  /* written by the main loop: init done */
    volatile uint8_t isr_busy; /* written by the interrupt: inside ecg_app_on_sample */
    volatile uint32_t lost;    /* written by the interrupt */
    /* The interrupt's own. */
    uint8_t isr_gen;
    uint32_t isr_gap; /* lost samples not yet recorded in the ring */

    /* The main loop's. */
    uint32_t next_sample; /* counter of the next sample the pipeline consumes */
    uint16_t batch[ECG_PROTO_SAMPLE_BATCH];
    uint8_t batch_n;
    uint32_t batch_first;
    uint8_t streaming;
    uint8_t text;         /* lines for the Serial Plotter instead of SAMPLES, RESULT and BEATS frames */
#if APP_BEATS
    uint16_t text_hr_x10; /* the last window's heart rate, for the sample lines */
#endif
    uint8_t tx[ECG_APP_TX_BYTES];
    ecg_proto_tx txs;
    app_reader rd;
    uint8_t rx_seen;      /* bytes came since the last poll */
    uint32_t quiet_since; /* the poll that last saw bytes: the line is idle from then on */
    /* The host frame accepted last (retransmissions are ACKed again, not applied). */
    uint8_t have_last;
    uint8_t last_type;
    uint16_t last_seq, last_crc;
    ecg_app_stats st;
#if !ECG_APP_NO_MODEL
    ecg_core core;
    int model_ready;
    ecg_proto_window_rx wrx;
    uint32_t wrx_ms;      /* when the last chunk arrived */
    uint8_t live_pending; /* a window of the pipeline waits for inference (wrx owns the model input) */
#endif
};

static ecg_app the_app;

/* The RAM budget of the generated ecg_config.h (export/ram.py) counts this struct with a figure of
 * its own: on a 32-bit target with the ring it assumes, the struct must not be larger (C99: a
 * negative array size stops the build). Fails after a change here: update export/ram.py. */
#if !ECG_APP_NO_MODEL && defined(ECG_RAM_APP_STATE_BYTES) && defined(UINTPTR_MAX) && UINTPTR_MAX == 0xFFFFFFFFu && \
    ECG_APP_RING_SAMPLES == ECG_RAM_RING_SAMPLES
typedef char ecg_app_fits_the_generated_ram_budget[sizeof(struct ecg_app) <= ECG_RAM_APP_STATE_BYTES ? 1 : -1];
#endif

ecg_app *ecg_app_instance(void)
{
    return &the_app;
}

/* ---- sending ---------------------------------------------------------------------------------- */

static void send(ecg_app *app, size_t n)
{
    if (n > 0) {
        app->pf.write(app->pf.ctx, app->tx, n);
        app->st.tx_frames++;
    }
}

static uint16_t replay_credits(const ecg_app *app)
{
    if (app->source != ECG_PROTO_SOURCE_REPLAY) {
        return 0;
    }
    return (uint16_t)(ECG_APP_RING_SAMPLES - (ring_index)(app->head - app->tail));
}

static void send_ack(ecg_app *app, const ecg_proto_frame *f)
{
    ecg_proto_ack m;
    m.seq = f->seq;
    m.type = f->type;
    m.credits = replay_credits(app);
    send(app, ecg_proto_encode_ack(&app->txs, app->tx, &m));
}

static void send_error(ecg_app *app, uint8_t code, uint16_t about, const char *message)
{
    ecg_proto_error m;
    m.code = code;
    m.about_seq = about;
    m.message = ecg_proto_cstr(message);
    if (m.message.len > ERROR_MESSAGE_MAX) {
        m.message.len = ERROR_MESSAGE_MAX;
    }
    app->st.errors_sent++;
    send(app, ecg_proto_encode_error(&app->txs, app->tx, &m));
}

static const char *const labels[ECG_NUM_LABELS] = ECG_LABELS;

/* Payload bytes of INFO with these strings (the encoder's layout, PROTOCOL.md). */
static size_t info_payload_bytes(const ecg_proto_info *m)
{
    size_t n = 1 + m->firmware.len + 1 + m->backend.len + ECG_PROTO_SHA256_BYTES + ECG_PROTO_FINGERPRINT_BYTES + 9 + 11;
    unsigned i;
    for (i = 0; i < m->num_labels; i++) {
        n += 1 + m->labels[i].len;
    }
    return n;
}

static void send_info(ecg_app *app)
{
    ecg_proto_info m;
    unsigned i;
    memset(&m, 0, sizeof m);
    m.firmware = ecg_proto_cstr(ECG_FIRMWARE_VERSION);
#if ECG_APP_NO_MODEL
    m.backend = ecg_proto_cstr("none");
    m.capabilities = 0;
#else
    m.backend = ecg_proto_cstr(ecg_infer_backend());
    m.capabilities = ECG_PROTO_CAP_REPLAY_SAMPLES;
#if APP_BEATS
    m.capabilities |= ECG_PROTO_CAP_BEATS;
#endif
    if (app->model_ready) {
        m.capabilities |= ECG_PROTO_CAP_MODEL | ECG_PROTO_CAP_REPLAY_WINDOW;
        (void)ecg_proto_hex_bytes(ECG_MODEL_SHA256, m.model_sha256, sizeof m.model_sha256);
        m.input_scale = ECG_INPUT_SCALE;
        m.input_zero_point = (int8_t)ECG_INPUT_ZERO_POINT;
        m.output_scale = ECG_OUTPUT_SCALE;
        m.output_zero_point = (int8_t)ECG_OUTPUT_ZERO_POINT;
    }
#endif
    (void)ecg_proto_hex_bytes(ECG_SPEC_FINGERPRINT, m.spec_fingerprint, sizeof m.spec_fingerprint);
    m.rate_hz = ECG_SAMPLE_RATE_HZ;
    m.window = ECG_WINDOW_SAMPLES;
    m.hop = app->hop;
    m.adc_bits = app->pf.adc_bits;
    m.num_labels = ECG_NUM_LABELS;
    for (i = 0; i < ECG_NUM_LABELS; i++) {
        m.labels[i] = ecg_proto_cstr(labels[i]);
    }
    m.time_unit = app->pf.time_unit;
    /* The encoders write exactly the frame's bytes: check that INFO fits the (small) buffer. */
    if (FRAME_OVERHEAD + info_payload_bytes(&m) > sizeof app->tx) {
        send_error(app, ECG_PROTO_ERR_BAD_VALUE, 0, "INFO longer than ECG_APP_TX_BYTES");
        return;
    }
    send(app, ecg_proto_encode_info(&app->txs, app->tx, &m));
}

static void send_batch(ecg_app *app)
{
    if (app->batch_n > 0) {
        send(app, ecg_proto_encode_samples(&app->txs, app->tx, app->batch_first, app->batch, app->batch_n));
        app->batch_n = 0;
    }
}

/* ---- text mode: lines the Arduino IDE's Serial Plotter draws or ignores (PROTOCOL.md, Text mode) --- */

typedef struct {
    uint8_t *buf;
    size_t n;
} text_line;

static text_line line_start(ecg_app *app)
{
    text_line t;
    t.buf = app->tx;
    t.n = 0;
    return t;
}

static void put_text(text_line *t, const char *s)
{
    while (*s != '\0' && t->n < ECG_APP_TX_BYTES - 2u) { /* room for the line end */
        t->buf[t->n++] = (uint8_t)*s++;
    }
}

static void put_u32(text_line *t, uint32_t v)
{
    char digits[11];
    unsigned k = sizeof digits - 1u;
    digits[k] = '\0';
    do {
        digits[--k] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0u);
    put_text(t, digits + k);
}

#if APP_BEATS
/* bpm x 10 as "72.5" */
static void put_x10(text_line *t, uint16_t v)
{
    put_u32(t, v / 10u);
    put_text(t, ".");
    put_u32(t, v % 10u);
}
#endif

static void send_line(ecg_app *app, text_line *t)
{
    t->buf[t->n++] = '\r';
    t->buf[t->n++] = '\n';
    app->pf.write(app->pf.ctx, t->buf, t->n);
    app->st.tx_lines++;
}

/* The first line of text mode: what the board is, for people (the Plotter ignores it). */
static void send_hello(ecg_app *app)
{
    text_line t = line_start(app);
    put_text(&t, ECG_PROTO_TEXT_HELLO ": " ECG_FIRMWARE_VERSION " text mode, ");
    put_u32(&t, ECG_SAMPLE_RATE_HZ);
    put_text(&t, " Hz, ");
    put_u32(&t, app->pf.adc_bits);
    put_text(&t, "-bit ADC; research tool, not a medical device");
    send_line(app, &t);
}

/* ecg:<counts>,hr:<bpm>,lead_off:<0|1> */
static void send_sample_line(ecg_app *app, uint16_t packed)
{
    text_line t = line_start(app);
    put_text(&t, ECG_PROTO_TEXT_SAMPLE ":");
    put_u32(&t, packed & ECG_PROTO_ADC_MASK);
#if APP_BEATS
    put_text(&t, "," ECG_PROTO_TEXT_HR ":");
    put_x10(&t, app->text_hr_x10);
#endif
    put_text(&t, "," ECG_PROTO_TEXT_LEAD_OFF ":");
    put_text(&t, (packed & ECG_PROTO_LEAD_OFF_BIT) != 0 ? "1" : "0");
    send_line(app, &t);
}

/* lost: <n> samples */
static void send_lost_line(ecg_app *app, uint16_t n)
{
    text_line t = line_start(app);
    put_text(&t, ECG_PROTO_TEXT_LOST ": ");
    put_u32(&t, n);
    put_text(&t, " samples");
    send_line(app, &t);
}

/* ---- the pipeline ----------------------------------------------------------------------------- */

#if !ECG_APP_NO_MODEL
static const char *const status_names[] = ECG_PROTO_STATUS_NAMES;

/* result: window <index> <STATUS> <LABEL or -> hr <bpm or --> rr <per mille or --> */
static void send_result_line(ecg_app *app, const ecg_result *r)
{
    text_line t = line_start(app);
    put_text(&t, ECG_PROTO_TEXT_RESULT ": window ");
    put_u32(&t, r->window_index);
    put_text(&t, " ");
    put_text(&t, (uint32_t)r->status < sizeof status_names / sizeof status_names[0] ? status_names[r->status] : "?");
    put_text(&t, " ");
    put_text(&t, r->label >= 0 && r->label < ECG_NUM_LABELS ? labels[r->label] : "-");
#if APP_BEATS
    put_text(&t, " " ECG_PROTO_TEXT_HR " ");
    if (r->hr_x10 != ECG_BEAT_HR_UNKNOWN) {
        put_x10(&t, r->hr_x10);
        put_text(&t, " bpm rr ");
        put_u32(&t, r->rr_irregularity);
    } else {
        put_text(&t, "-- rr --");
    }
#endif
    send_line(app, &t);
}

static void send_result(ecg_app *app, const ecg_result *r, uint32_t time, uint8_t source)
{
    ecg_proto_result m;
#if APP_BEATS
    if (source != ECG_PROTO_FROM_REPLAY_WINDOW) {
        app->text_hr_x10 = r->hr_x10;
    }
#endif
    if (app->text) {
        send_result_line(app, r);
        return;
    }
    m.window_index = r->window_index;
    m.first_sample = r->first_sample;
    m.status = (uint8_t)r->status;
    m.label = (int8_t)r->label;
    m.num_logits = r->label >= 0 ? (uint8_t)ECG_NUM_LABELS : 0;
    m.logits = r->logits;
    m.time = r->label >= 0 ? time : 0;
    m.time_unit = app->pf.time_unit;
    m.source = source;
#if APP_BEATS
    m.hr_x10 = r->hr_x10;
    m.rr_irregularity = r->rr_irregularity;
    send(app, ecg_proto_encode_result_beats(&app->txs, app->tx, &m));
#else
    send(app, ecg_proto_encode_result(&app->txs, app->tx, &m));
#endif
}

#if APP_BEATS
/* The core's beat callback: the beats one sample made final, in one BEATS frame. */
static void send_beats(void *ctx, const uint32_t *samples, int count)
{
    ecg_app *app = (ecg_app *)ctx;
    if (!app->text) { /* text mode: the sample lines carry the heart rate instead */
        send(app, ecg_proto_encode_beats(&app->txs, app->tx, samples, (unsigned)count));
    }
}
#endif

/* The window the pipeline just completed: status, and inference when it is OK. */
static void classify(ecg_app *app)
{
    ecg_result r;
    uint32_t t0 = app->pf.clock(app->pf.ctx);
    uint32_t t1;
    (void)ecg_core_classify(&app->core, &r); /* -1 (inference failed): sent unclassified */
    t1 = app->pf.clock(app->pf.ctx);
    app->live_pending = 0;
    app->st.windows++;
    send_result(app, &r, t1 - t0,
                app->source == ECG_PROTO_SOURCE_REPLAY ? (uint8_t)ECG_PROTO_FROM_REPLAY_SAMPLES : (uint8_t)ECG_PROTO_FROM_LIVE);
}

static void pipeline_push(ecg_app *app, uint16_t packed)
{
    const uint16_t raw = (uint16_t)(packed & ECG_PROTO_ADC_MASK);
    const int lead_off = (packed & ECG_PROTO_LEAD_OFF_BIT) != 0;
    (void)ecg_core_beats_push(&app->core, raw, lead_off); /* beats go out through send_beats */
    if (ecg_pre_push(&app->core.pre, raw, lead_off)) {
        /* The quantized window goes into the model input, which a REPLAY_WINDOW being assembled
         * owns: an OK window waits for it (the ring keeps filling meanwhile). */
        if (app->wrx.active && ecg_pre_status(&app->core.pre) == ECG_STATUS_OK) {
            app->live_pending = 1;
        } else {
            classify(app);
        }
    }
}
#endif

/* One sample for the pipeline: the counter, the SAMPLES batch, the device path. */
static void consume(ecg_app *app, uint16_t packed)
{
    if (app->streaming && app->text) {
        send_sample_line(app, packed);
    } else if (app->streaming) {
        if (app->batch_n == 0) {
            app->batch_first = app->next_sample;
        }
        app->batch[app->batch_n++] = packed;
        if (app->batch_n == ECG_PROTO_SAMPLE_BATCH) {
            send_batch(app);
        }
    }
    app->next_sample++;
#if !ECG_APP_NO_MODEL
    pipeline_push(app, packed);
#endif
}

/* `n` samples were lost: the batch ends, the counter jumps, the pipeline sees lead-off. */
static void consume_gap(ecg_app *app, uint16_t n)
{
    send_batch(app);
    if (app->text) {
        send_lost_line(app, n);
    }
#if ECG_APP_NO_MODEL
    app->next_sample += n;
#else
    while (n-- > 0) {
        app->next_sample++;
        pipeline_push(app, (uint16_t)(ECG_PROTO_LEAD_OFF_BIT | app->adc_max));
    }
#endif
}

/* Wait until a sample interrupt running on another core is done (never waits on one core). */
static void wait_isr_done(const ecg_app *app)
{
    ECG_APP_FENCE();
    while (app->isr_busy) {
    }
    ECG_APP_FENCE();
}

static void reset_pipeline(ecg_app *app)
{
    app->reset_gen = (uint8_t)(app->reset_gen + 1u);
    wait_isr_done(app); /* later interrupts see the new generation */
    app->tail = app->head; /* the consumer empties the ring */
    app->next_sample = 0;
    app->batch_n = 0;
#if !ECG_APP_NO_MODEL
    (void)ecg_pre_init(&app->core.pre, app->adc_max, app->hop); /* a bad hop failed ecg_core_init already */
    ecg_core_beats_restart(&app->core);
    app->live_pending = 0;
    app->wrx.active = 0;
#endif
}

static void set_source(ecg_app *app, uint8_t source)
{
    if (source == ECG_PROTO_SOURCE_REPLAY) {
        app->source = source; /* the interrupt stops writing first (reset_pipeline waits for one */
        reset_pipeline(app);  /* in progress), then the ring is emptied */
    } else {
        reset_pipeline(app);
        app->source = source;
    }
}

/* ---- host frames ------------------------------------------------------------------------------ */

static void accept(ecg_app *app, const ecg_proto_frame *f, uint16_t crc)
{
    app->have_last = 1;
    app->last_seq = f->seq;
    app->last_type = f->type;
    app->last_crc = crc;
    send_ack(app, f);
}

static void on_command(ecg_app *app, const ecg_proto_frame *f, uint16_t crc)
{
    ecg_proto_command c;
    int err = ecg_proto_decode_command(f->payload, f->len, &c);
    if (err != 0) {
        send_error(app, (uint8_t)err, f->seq, err == ECG_PROTO_ERR_BAD_LENGTH ? "COMMAND payload is 5 bytes" : "unknown command or argument");
        return;
    }
    switch (c.code) {
    case ECG_PROTO_CMD_RESET:
        reset_pipeline(app);
        break;
    case ECG_PROTO_CMD_SOURCE:
        set_source(app, (uint8_t)c.arg);
        break;
    case ECG_PROTO_CMD_STREAM:
        /* The batch in progress goes out first: STREAM 1 while streaming (a new client's first
         * command) must not drop the samples batched so far, which no counter would show. */
        send_batch(app);
        app->streaming = (uint8_t)c.arg;
        break;
    default: /* GET_INFO */
        break;
    }
    accept(app, f, crc);
    if (c.code == ECG_PROTO_CMD_GET_INFO) {
        send_info(app);
    } else if (c.code == ECG_PROTO_CMD_TEXT) {
        ecg_app_set_text(app, (int)c.arg); /* after the ACK: the host reads frames up to it */
    }
}

#if !ECG_APP_NO_MODEL
static void on_replay_samples(ecg_app *app, const ecg_proto_frame *f, uint16_t crc)
{
    ecg_proto_samples s;
    unsigned i;
    ring_index h;
    int err = ecg_proto_decode_replay_samples(f->payload, f->len, &s);
    if (err != 0) {
        send_error(app, (uint8_t)err, f->seq, "bad REPLAY_SAMPLES payload");
        return;
    }
    if (app->source != ECG_PROTO_SOURCE_REPLAY) {
        send_error(app, ECG_PROTO_ERR_NOT_REPLAYING, f->seq, "SOURCE is the ADC");
        return;
    }
    if (s.count > replay_credits(app)) {
        send_error(app, ECG_PROTO_ERR_REPLAY_OVERFLOW, f->seq, "more samples than the credits");
        return;
    }
    h = app->head;
    for (i = 0; i < s.count; i++) {
        app->ring[h & RING_MASK] = ecg_proto_sample_at(&s, i);
        h++;
    }
    ECG_APP_FENCE();
    app->head = h;
    accept(app, f, crc);
}

static void run_replayed_window(ecg_app *app, uint16_t seq)
{
    ecg_result r;
    uint32_t t0 = app->pf.clock(app->pf.ctx);
    uint32_t t1;
    int rc = ecg_infer_run(r.logits);
    t1 = app->pf.clock(app->pf.ctx);
    if (rc != 0) {
        send_error(app, ECG_PROTO_ERR_INFERENCE_FAILED, seq, ecg_infer_error());
        return;
    }
    r.window_index = app->wrx.window_id;
    r.first_sample = 0;
    r.hr_x10 = ECG_BEAT_HR_UNKNOWN; /* a window on its own: no beats */
    r.rr_irregularity = ECG_BEAT_RR_IRREGULARITY_UNKNOWN;
    r.label = ecg_argmax(r.logits, ECG_NUM_LABELS);
    r.status = ecg_low_confidence(r.logits, ECG_NUM_LABELS) ? ECG_STATUS_LOW_CONFIDENCE : ECG_STATUS_OK;
    app->st.replay_windows++;
    send_result(app, &r, t1 - t0, ECG_PROTO_FROM_REPLAY_WINDOW);
}

static void on_replay_window(ecg_app *app, const ecg_proto_frame *f, uint16_t crc)
{
    ecg_proto_window_chunk c;
    int got;
    int err;
    if (!app->model_ready) {
        send_error(app, ECG_PROTO_ERR_NO_MODEL, f->seq, "the model did not load");
        return;
    }
    err = ecg_proto_decode_replay_window(f->payload, f->len, &c);
    if (err != 0) {
        send_error(app, (uint8_t)err, f->seq, "bad REPLAY_WINDOW payload");
        return;
    }
    if (c.offset == 0 && app->live_pending) {
        classify(app); /* a live window waited for the previous replayed window: its turn first */
    }
    got = ecg_proto_window_rx_chunk(&app->wrx, &c);
    if (got < 0) {
        send_error(app, ECG_PROTO_ERR_WINDOW_CHUNK, f->seq, "chunk does not continue the window");
        return;
    }
    app->wrx_ms = app->pf.millis(app->pf.ctx);
    accept(app, f, crc);
    if (got == 1) {
        run_replayed_window(app, f->seq);
    }
}
#endif

static void on_frame(void *ctx, const ecg_proto_frame *f)
{
    ecg_app *app = (ecg_app *)ctx;
    /* A frame the compact reader did not keep has no payload: its CRC is not compared. */
    uint16_t crc = f->payload != NULL ? ecg_proto_crc16(ECG_PROTO_CRC_INIT, f->payload, f->len) : 0;
    app->st.rx_frames++;
    if (app->have_last && f->seq == app->last_seq && f->type == app->last_type && crc == app->last_crc && f->payload != NULL) {
        send_ack(app, f); /* a retransmission: its ACK was lost */
        return;
    }
    switch (f->type) {
    case ECG_PROTO_TYPE_COMMAND:
        if (f->payload == NULL) {
            send_error(app, ECG_PROTO_ERR_BAD_LENGTH, f->seq, "COMMAND payload is 5 bytes");
        } else {
            on_command(app, f, crc);
        }
        break;
#if ECG_APP_NO_MODEL
    case ECG_PROTO_TYPE_REPLAY_SAMPLES:
    case ECG_PROTO_TYPE_REPLAY_WINDOW:
        send_error(app, ECG_PROTO_ERR_NO_MODEL, f->seq, "no model in this build");
        break;
#else
    case ECG_PROTO_TYPE_REPLAY_SAMPLES:
        on_replay_samples(app, f, crc);
        break;
    case ECG_PROTO_TYPE_REPLAY_WINDOW:
        on_replay_window(app, f, crc);
        break;
#endif
    default:
        send_error(app, ECG_PROTO_ERR_UNKNOWN_TYPE, f->seq, "frame type not taken");
        break;
    }
}

/* ---- the no-model build's compact reader -------------------------------------------------------- */

#if ECG_APP_NO_MODEL
static void rd_init(app_reader *r)
{
    memset(r, 0, sizeof *r);
}

static void rd_consume(app_reader *r, uint8_t n)
{
    memmove(r->buf, r->buf + n, (size_t)(r->len - n));
    r->len = (uint8_t)(r->len - n);
}

/* Drop the candidate's first byte and the bytes up to the next possible sync. */
static void rd_reject(app_reader *r)
{
    uint8_t n = 1;
    while (n < r->len && r->buf[n] != ECG_PROTO_SYNC0) {
        n++;
    }
    r->dropped_bytes += n;
    rd_consume(r, n);
}

/* One byte of a long candidate (position skip_pos of skip_size). */
static void rd_skip_byte(app_reader *r, uint8_t b, ecg_proto_frame_fn on_frame_fn, void *ctx)
{
    const uint16_t pos = r->skip_pos++;
    if (pos < 2u) {
        return; /* sync bytes: not in the CRC */
    }
    if (pos + 2u < r->skip_size) {
        r->skip_crc = ecg_proto_crc16(r->skip_crc, &b, 1);
    } else if (pos + 2u == r->skip_size) {
        r->skip_crc_lo = b;
    } else {
        const uint16_t sent = (uint16_t)(r->skip_crc_lo | ((unsigned)b << 8));
        if (sent == r->skip_crc) {
            ecg_proto_frame f;
            f.type = r->skip_type;
            f.seq = r->skip_seq;
            f.len = r->skip_len;
            f.payload = NULL;
            r->frames++;
            on_frame_fn(ctx, &f);
        } else {
            r->crc_errors++;
            r->dropped_bytes += r->skip_size;
        }
        r->skip_size = 0;
    }
}

/* Deliver what the buffer holds, as ecg_proto_reader does; a candidate too long for the buffer
 * continues as a stream. */
static void rd_scan(app_reader *r, ecg_proto_frame_fn on_frame_fn, void *ctx)
{
    while (r->len > 0 && r->skip_size == 0) {
        const uint8_t *b = r->buf;
        uint16_t n, size;
        if (b[0] != ECG_PROTO_SYNC0) {
            rd_reject(r);
            continue;
        }
        if (r->len < 2) {
            return;
        }
        if (b[1] != ECG_PROTO_SYNC1) {
            rd_reject(r);
            continue;
        }
        if (r->len < 3) {
            return;
        }
        if (b[2] != ECG_PROTO_VERSION) {
            r->header_errors++;
            rd_reject(r);
            continue;
        }
        if (r->len < ECG_PROTO_HEADER_BYTES) {
            return;
        }
        n = (uint16_t)((unsigned)b[6] | ((unsigned)b[7] << 8));
        if (n > ECG_PROTO_MAX_PAYLOAD) {
            r->header_errors++;
            rd_reject(r);
            continue;
        }
        size = (uint16_t)(FRAME_OVERHEAD + n);
        if (size > sizeof r->buf) {
            /* Stream it: the buffered bytes (fewer than size) are its first ones. */
            uint8_t i, had = r->len;
            r->skip_size = size;
            r->skip_pos = 0;
            r->skip_crc = ECG_PROTO_CRC_INIT;
            r->skip_type = b[3];
            r->skip_seq = (uint16_t)((unsigned)b[4] | ((unsigned)b[5] << 8));
            r->skip_len = n;
            r->len = 0;
            for (i = 0; i < had; i++) {
                rd_skip_byte(r, r->buf[i], on_frame_fn, ctx);
            }
            return;
        }
        if (r->len < size) {
            return;
        }
        if (ecg_proto_crc16(ECG_PROTO_CRC_INIT, b + 2, size - 4u) !=
            (uint16_t)((unsigned)b[size - 2] | ((unsigned)b[size - 1] << 8))) {
            r->crc_errors++;
            rd_reject(r);
            continue;
        }
        {
            ecg_proto_frame f;
            f.type = b[3];
            f.seq = (uint16_t)((unsigned)b[4] | ((unsigned)b[5] << 8));
            f.len = n;
            f.payload = b + ECG_PROTO_HEADER_BYTES;
            r->frames++;
            on_frame_fn(ctx, &f);
        }
        rd_consume(r, (uint8_t)size);
    }
}

static void rd_push(app_reader *r, uint8_t byte, ecg_proto_frame_fn on_frame_fn, void *ctx)
{
    if (r->skip_size != 0) {
        rd_skip_byte(r, byte, on_frame_fn, ctx);
        return;
    }
    r->buf[r->len++] = byte; /* rd_scan leaves at most sizeof buf - 1 bytes */
    rd_scan(r, on_frame_fn, ctx);
}

static int rd_pending(const app_reader *r)
{
    return r->len > 0 || r->skip_size != 0;
}

static void rd_flush(app_reader *r, ecg_proto_frame_fn on_frame_fn, void *ctx)
{
    if (r->skip_size != 0) {
        r->dropped_bytes += r->skip_pos;
        r->skip_size = 0;
    }
    while (r->len > 0) {
        rd_reject(r);
        rd_scan(r, on_frame_fn, ctx);
        if (r->skip_size != 0) { /* a long candidate behind: given up as well */
            r->dropped_bytes += r->skip_pos;
            r->skip_size = 0;
        }
    }
}
#else
static void rd_init(app_reader *r)
{
    ecg_proto_reader_init(r);
}

static void rd_push(app_reader *r, uint8_t byte, ecg_proto_frame_fn on_frame_fn, void *ctx)
{
    ecg_proto_reader_push(r, byte, on_frame_fn, ctx);
}

static int rd_pending(const app_reader *r)
{
    return r->len > 0;
}

static void rd_flush(app_reader *r, ecg_proto_frame_fn on_frame_fn, void *ctx)
{
    ecg_proto_reader_flush(r, on_frame_fn, ctx);
}
#endif

/* ---- the API ---------------------------------------------------------------------------------- */

int ecg_app_init(ecg_app *app, const ecg_app_platform *platform)
{
    int rc = 0;
    app->running = 0;
    memset(app, 0, sizeof *app);
    app->pf = *platform;
    app->adc_max = (uint16_t)((1ul << (app->pf.adc_bits > 15 ? 15 : app->pf.adc_bits)) - 1ul);
    app->hop = (uint16_t)(app->pf.hop == 0 || app->pf.hop > 0xFFFFu ? ECG_DEVICE_HOP_SAMPLES : app->pf.hop);
    app->source = ECG_PROTO_SOURCE_ADC;
    app->streaming = 1;
    ecg_proto_tx_init(&app->txs);
    rd_init(&app->rd);
    app->quiet_since = app->pf.millis(app->pf.ctx);
#if !ECG_APP_NO_MODEL
    app->model_ready = ecg_core_init(&app->core, app->adc_max, app->hop) == 0;
#if APP_BEATS
    ecg_core_on_beat(&app->core, send_beats, app);
#endif
    if (app->model_ready) {
        ecg_proto_window_rx_init(&app->wrx, ecg_infer_input(), (uint16_t)(ECG_WINDOW_SAMPLES * ECG_IN_LEADS));
    } else {
        rc = -1;
    }
#endif
    if (ECG_APP_TEXT) {
        ecg_app_set_text(app, 1);
    } else {
        send_info(app);
    }
    app->running = 1;
    return rc;
}

void ecg_app_set_text(ecg_app *app, int on)
{
    send_batch(app); /* the samples so far go out as a frame */
    app->text = (uint8_t)(on != 0);
    if (app->text) {
        send_hello(app);
    }
}

/* One reading into the ring, after `missed` ticks nobody sampled (lost like samples of a full ring). */
static void sample_in(ecg_app *app, uint32_t missed, uint16_t raw, int lead_off)
{
    ring_index h, room;
    uint16_t packed;
    if (!app->running) {
        return;
    }
    app->isr_busy = 1;
    ECG_APP_FENCE();
    if (app->isr_gen != app->reset_gen) {
        app->isr_gen = app->reset_gen;
        app->isr_gap = 0;
    }
    if (app->source == ECG_PROTO_SOURCE_ADC) {
        app->isr_gap += missed;
        app->lost += missed;
        packed = ecg_proto_pack_sample(raw, lead_off);
        if (packed == ECG_APP_GAP_MARK) {
            packed = ECG_APP_GAP_MARK - 1u;
        }
        h = app->head;
        room = (ring_index)(ECG_APP_RING_SAMPLES - (ring_index)(h - app->tail));
        while (app->isr_gap > 0 && room >= 3) {
            const uint16_t n = app->isr_gap > 0xFFFFu ? (uint16_t)0xFFFFu : (uint16_t)app->isr_gap;
            app->ring[h & RING_MASK] = ECG_APP_GAP_MARK;
            h++;
            app->ring[h & RING_MASK] = n;
            h++;
            app->isr_gap -= n;
            room = (ring_index)(room - 2);
        }
        if (app->isr_gap == 0 && room >= 1) {
            app->ring[h & RING_MASK] = packed;
            h++;
        } else {
            app->isr_gap++;
            app->lost++;
        }
        ECG_APP_FENCE(); /* the entries before the index that publishes them */
        app->head = h;
    }
    ECG_APP_FENCE();
    app->isr_busy = 0;
}

void ecg_app_on_sample(ecg_app *app, uint16_t raw, int lead_off)
{
    sample_in(app, 0, raw, lead_off);
}

void ecg_app_ticks_raise(ecg_app_ticks *t)
{
    t->raised = t->raised + 1u;
}

uint32_t ecg_app_ticks_take(ecg_app_ticks *t)
{
    const uint32_t raised = t->raised;
    const uint32_t n = raised - t->taken; /* modulo 2^32 */
    t->taken = raised;
    return n;
}

void ecg_app_on_ticks(ecg_app *app, uint32_t ticks, uint16_t raw, int lead_off)
{
    if (ticks > 0) {
        sample_in(app, ticks - 1u, raw, lead_off);
    }
}

void ecg_app_on_rx(ecg_app *app, const uint8_t *data, size_t n)
{
    size_t i;
    if (n == 0) {
        return;
    }
    app->rx_seen = 1;
    for (i = 0; i < n; i++) {
        rd_push(&app->rd, data[i], on_frame, app);
    }
}

void ecg_app_poll(ecg_app *app)
{
    const uint32_t now = app->pf.millis(app->pf.ctx);
    /* Idle flush: the line counts as silent from the first poll that saw no new bytes, not from the
     * last byte: time the device itself was busy (an inference in the middle of a read) is not
     * silence, and the bytes that came meanwhile are read before this poll. */
    if (app->rx_seen) {
        app->rx_seen = 0;
        app->quiet_since = now;
    } else if (rd_pending(&app->rd) && now - app->quiet_since >= ECG_PROTO_IDLE_FLUSH_MS) {
        rd_flush(&app->rd, on_frame, app);
    }
#if !ECG_APP_NO_MODEL
    if (app->live_pending) {
        if (app->wrx.active && now - app->wrx_ms < ECG_APP_WINDOW_WAIT_MS) {
            return; /* the replayed window is still arriving */
        }
        app->wrx.active = 0; /* abandoned by the host: dropped (its next chunk gets WINDOW_CHUNK) */
        classify(app);
    }
    while (!app->live_pending) {
#else
    for (;;) {
#endif
        ring_index t = app->tail;
        uint16_t e;
        if (t == app->head) {
            break;
        }
        ECG_APP_FENCE(); /* the entries after the index that published them */
        e = app->ring[t & RING_MASK];
        if (e == ECG_APP_GAP_MARK && app->source == ECG_PROTO_SOURCE_ADC) {
            const uint16_t gap = app->ring[(ring_index)(t + 1) & RING_MASK];
            ECG_APP_FENCE(); /* read before the producer may reuse the slots */
            app->tail = (ring_index)(t + 2);
            consume_gap(app, gap);
        } else {
            ECG_APP_FENCE();
            app->tail = (ring_index)(t + 1);
            consume(app, e);
        }
    }
}

uint32_t ecg_app_lost_samples(const ecg_app *app)
{
    uint32_t a, b;
    do { /* written by the interrupt: read until two reads agree (8- and 16-bit CPUs) */
        a = app->lost;
        b = app->lost;
    } while (a != b);
    return a;
}

void ecg_app_get_stats(const ecg_app *app, ecg_app_stats *out)
{
    *out = app->st;
    out->samples = app->next_sample;
    out->lost_samples = ecg_app_lost_samples(app);
    out->rx_dropped_bytes = app->rd.dropped_bytes;
    out->rx_crc_errors = app->rd.crc_errors;
    out->rx_header_errors = app->rd.header_errors;
    out->source = app->source;
    out->streaming = app->streaming;
#if ECG_APP_NO_MODEL
    out->model_ready = 0;
#else
    out->model_ready = (uint8_t)app->model_ready;
#endif
}
