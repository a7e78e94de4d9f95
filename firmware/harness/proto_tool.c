/* The serial protocol's C side for tests (tests/test_protocol.py checks it against host/protocol.py).
 *
 *   proto_tool encode OUT.bin              one or more frames of every type, fixed edge values
 *   proto_tool decode IN.bin OUT.txt [N]   read a byte stream one byte at a time; one line per frame,
 *                                          the reader's counters, then the frames and counters after
 *                                          a flush (the line going idle); with N, REPLAY_WINDOW chunks
 *                                          also go through a window assembler of N bytes. RESULTs are
 *                                          decoded with the capabilities of the last INFO (as a host
 *                                          does; either layout before the first one)
 *   proto_tool limits OUT.txt              "name frame-length" for encodes at and past every limit
 *
 * Strings and int8 data print as hex, floats as their binary32 bits, so the lines compare exactly.
 */
#include <float.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ecg_protocol.h"
#include "rt_io.h"

#define MAX_WINDOW 4096

static uint8_t frame[ECG_PROTO_MAX_FRAME];
static char line[4096];
static size_t line_len;
static int line_overflow;

static void add(const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(line + line_len, sizeof line - line_len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line - line_len) {
        line_overflow = 1;
        return;
    }
    line_len += (size_t)n;
}

static void add_hex(const void *data, size_t n)
{
    const uint8_t *p = (const uint8_t *)data;
    size_t i;
    for (i = 0; i < n; i++) {
        add("%02x", p[i]);
    }
}

static int flush_line(rt_file *out)
{
    int ok;
    add("\n");
    ok = !line_overflow && rt_write(out, line, line_len) == line_len;
    line_len = 0;
    line_overflow = 0;
    return ok;
}

static int fail(const char *what)
{
    char msg[160] = "proto_tool: ";
    strncat(msg, what, sizeof msg - strlen(msg) - 1);
    rt_log(msg);
    return 1;
}

static uint32_t f32_bits(float x)
{
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    return bits;
}

/* ---- encode ------------------------------------------------------------------------------------ */

typedef struct {
    rt_file *out;
    ecg_proto_tx tx;
    int ok;
} encoder;

static void emit(encoder *e, size_t n)
{
    if (n == 0 || rt_write(e->out, frame, n) != n) {
        e->ok = 0;
    }
}

/* A board with a model and every capability (RESULTs after it carry the rhythm fields). */
static void encode_board_info(encoder *e, const char *firmware)
{
    static const char *const labels[] = {"NORMAL", "MI", "ARRHYTHMIA"};
    ecg_proto_info m;
    unsigned i;
    memset(&m, 0, sizeof m);
    m.firmware = ecg_proto_cstr(firmware);
    m.backend = ecg_proto_cstr("native");
    if (ecg_proto_hex_bytes("000102030405060708090a0b0c0d0e0f101112131415161718191A1B1C1D1E1F", m.model_sha256, sizeof m.model_sha256) != 0 ||
        ecg_proto_hex_bytes("0123456789abcdef", m.spec_fingerprint, sizeof m.spec_fingerprint) != 0) {
        e->ok = 0;
    }
    m.rate_hz = 250;
    m.window = 2500;
    m.hop = 625;
    m.adc_bits = 12;
    m.capabilities = ECG_PROTO_CAP_ALL;
    m.num_labels = 3;
    for (i = 0; i < 3; i++) {
        m.labels[i] = ecg_proto_cstr(labels[i]);
    }
    m.input_scale = 0.0431372523f;
    m.input_zero_point = -128;
    m.output_scale = 0.00390625f;
    m.output_zero_point = 127;
    m.time_unit = ECG_PROTO_TIME_INSTRUCTIONS;
    emit(e, ecg_proto_encode_info(&e->tx, frame, &m));
}

static void encode_info(encoder *e)
{
    ecg_proto_info m;
    encode_board_info(e, "ecg-edge 0.1.0");
    memset(&m, 0, sizeof m); /* no model, no capabilities: empty strings, zero hash, no labels */
    m.firmware = ecg_proto_cstr("");
    m.backend = ecg_proto_cstr("none");
    m.rate_hz = 65535;
    m.adc_bits = 255;
    m.time_unit = ECG_PROTO_TIME_MICROSECONDS;
    emit(e, ecg_proto_encode_info(&e->tx, frame, &m));
}

static void encode_samples(encoder *e)
{
    static const uint16_t adc[10] = {0, 0x7FFF, 0, 0x7FFF, 2048, 1, 4095, 1023, 16384, 0x7FFE};
    uint16_t packed[ECG_PROTO_MAX_BATCH];
    unsigned i;
    for (i = 0; i < 10; i++) {
        packed[i] = ecg_proto_pack_sample(adc[i], i == 2 || i == 3 || i == 9);
    }
    emit(e, ecg_proto_encode_samples(&e->tx, frame, 0xFFFFFFFFu, packed, 10));
    emit(e, ecg_proto_encode_samples(&e->tx, frame, 0, packed, 0));
    for (i = 0; i < ECG_PROTO_MAX_BATCH; i++) {
        packed[i] = ecg_proto_pack_sample((uint16_t)((i * 129u) & 0x7FFFu), i % 7 == 0);
    }
    emit(e, ecg_proto_encode_samples(&e->tx, frame, 123456789u, packed, ECG_PROTO_MAX_BATCH));
}

/* One RESULT vector; `logits` names one of the arrays in encode_results; rhythm 1: a device with
 * ECG_PROTO_CAP_BEATS (ecg_proto_encode_result_beats). */
typedef struct {
    uint32_t window_index;
    uint32_t first_sample;
    uint8_t status;
    int8_t label;
    uint8_t num_logits;
    uint8_t logits; /* 0 none, 1 three, 2 many, 3 leaning */
    uint32_t time;
    uint8_t time_unit;
    uint8_t source;
    uint8_t rhythm;
    uint16_t hr_x10;
    uint16_t rr_irregularity;
} result_vector;

static void encode_results(encoder *e)
{
    static const int8_t three[3] = {-128, 127, 0};
    static const int8_t leaning[3] = {3, 4, -2};
    static const result_vector vectors[] = {
        {0xFFFFFFFFu, 0xFFFFFFFFu, ECG_PROTO_STATUS_OK, 2, 3, 1, 0xFFFFFFFFu, ECG_PROTO_TIME_INSTRUCTIONS, ECG_PROTO_FROM_REPLAY_WINDOW, 0, 0, 0},
        {0, 0, ECG_PROTO_STATUS_LEAD_OFF, -1, 0, 0, 0, ECG_PROTO_TIME_MICROSECONDS, ECG_PROTO_FROM_LIVE, 0, 0, 0},
        {7, 4375, ECG_PROTO_STATUS_SATURATED, 127, 255, 2, 1234567, ECG_PROTO_TIME_MICROSECONDS, ECG_PROTO_FROM_REPLAY_SAMPLES, 0, 0, 0},
        /* the statuses of the quality rule and the confidence threshold */
        {8, 5000, ECG_PROTO_STATUS_FLAT, -1, 0, 0, 0, ECG_PROTO_TIME_MICROSECONDS, ECG_PROTO_FROM_LIVE, 0, 0, 0},
        {9, 5625, ECG_PROTO_STATUS_NOISY, -1, 0, 0, 0, ECG_PROTO_TIME_MICROSECONDS, ECG_PROTO_FROM_REPLAY_SAMPLES, 0, 0, 0},
        {10, 6250, ECG_PROTO_STATUS_LOW_CONFIDENCE, 1, 3, 3, 812, ECG_PROTO_TIME_MICROSECONDS, ECG_PROTO_FROM_LIVE, 0, 0, 0},
        /* with the rhythm fields: known, unknown (a LEAD_OFF window), the largest values */
        {11, 6875, ECG_PROTO_STATUS_OK, 0, 3, 1, 900, ECG_PROTO_TIME_MICROSECONDS, ECG_PROTO_FROM_LIVE, 1, 723, 41},
        {12, 7500, ECG_PROTO_STATUS_LEAD_OFF, -1, 0, 0, 0, ECG_PROTO_TIME_MICROSECONDS, ECG_PROTO_FROM_LIVE, 1, ECG_PROTO_HR_UNKNOWN,
         ECG_PROTO_RR_IRREGULARITY_UNKNOWN},
        {0xFFFFFFFFu, 0xFFFFFFFFu, ECG_PROTO_STATUS_NOISY, -1, 0, 0, 0, ECG_PROTO_TIME_INSTRUCTIONS, ECG_PROTO_FROM_REPLAY_SAMPLES, 1,
         0xFFFF, 0xFFFE},
    };
    int8_t many[255];
    const int8_t *arrays[4];
    ecg_proto_result m;
    unsigned i;
    for (i = 0; i < 255; i++) {
        many[i] = (int8_t)((int)i - 128);
    }
    arrays[0] = NULL;
    arrays[1] = three;
    arrays[2] = many;
    arrays[3] = leaning;
    for (i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        const result_vector *v = &vectors[i];
        if (v->rhythm && !vectors[i - 1].rhythm) { /* from here on a device with ECG_PROTO_CAP_BEATS */
            encode_board_info(e, "ecg-edge 0.2.0");
        }
        m.window_index = v->window_index;
        m.first_sample = v->first_sample;
        m.status = v->status;
        m.label = v->label;
        m.num_logits = v->num_logits;
        m.logits = arrays[v->logits];
        m.time = v->time;
        m.time_unit = v->time_unit;
        m.source = v->source;
        m.has_rhythm = 0; /* not read by the encoders */
        m.hr_x10 = v->hr_x10;
        m.rr_irregularity = v->rr_irregularity;
        emit(e, v->rhythm ? ecg_proto_encode_result_beats(&e->tx, frame, &m) : ecg_proto_encode_result(&e->tx, frame, &m));
    }
}

static void encode_beats(encoder *e)
{
    static const uint32_t one[1] = {0};
    static const uint32_t last[2] = {0xFFFFFFFEu, 0xFFFFFFFFu};
    uint32_t many[ECG_PROTO_MAX_BEATS];
    unsigned i;
    for (i = 0; i < ECG_PROTO_MAX_BEATS; i++) {
        many[i] = 1000u + 187u * i;
    }
    emit(e, ecg_proto_encode_beats(&e->tx, frame, one, 1));
    emit(e, ecg_proto_encode_beats(&e->tx, frame, many, ECG_PROTO_MAX_BEATS));
    emit(e, ecg_proto_encode_beats(&e->tx, frame, last, 2));
}

static void encode_replies(encoder *e)
{
    ecg_proto_ack ack;
    ecg_proto_error err;
    ack.seq = 0xFFFF;
    ack.type = ECG_PROTO_TYPE_REPLAY_SAMPLES;
    ack.credits = 0xFFFF;
    emit(e, ecg_proto_encode_ack(&e->tx, frame, &ack));
    ack.seq = 0;
    ack.type = ECG_PROTO_TYPE_COMMAND;
    ack.credits = 0;
    emit(e, ecg_proto_encode_ack(&e->tx, frame, &ack));
    err.code = ECG_PROTO_ERR_WINDOW_CHUNK;
    err.about_seq = 0xFFFF;
    err.message = ecg_proto_cstr("chunk at 1512 of window 9, expected 1008");
    emit(e, ecg_proto_encode_error(&e->tx, frame, &err));
    err.code = ECG_PROTO_ERR_INFERENCE_FAILED;
    err.about_seq = 0;
    err.message = ecg_proto_cstr("");
    emit(e, ecg_proto_encode_error(&e->tx, frame, &err));
}

static void encode_host_frames(encoder *e)
{
    static const uint8_t codes[4] = {ECG_PROTO_CMD_GET_INFO, ECG_PROTO_CMD_RESET, ECG_PROTO_CMD_SOURCE, ECG_PROTO_CMD_STREAM};
    static const uint32_t args[4] = {0, 0, ECG_PROTO_SOURCE_REPLAY, 1};
    static const int8_t tail[4] = {-128, 127, 0, -1};
    static const int8_t one[1] = {-7};
    uint16_t packed[ECG_PROTO_MAX_BATCH];
    int8_t chunk[ECG_PROTO_MAX_WINDOW_CHUNK];
    ecg_proto_command cmd;
    ecg_proto_window_chunk w;
    unsigned i;
    for (i = 0; i < 4; i++) {
        cmd.code = codes[i];
        cmd.arg = args[i];
        emit(e, ecg_proto_encode_command(&e->tx, frame, &cmd));
    }
    for (i = 0; i < ECG_PROTO_MAX_BATCH; i++) {
        packed[i] = ecg_proto_pack_sample((uint16_t)(0x7FFFu - i * 100u), i % 5 == 4);
    }
    emit(e, ecg_proto_encode_replay_samples(&e->tx, frame, packed, ECG_PROTO_MAX_BATCH));
    emit(e, ecg_proto_encode_replay_samples(&e->tx, frame, packed, 0));
    packed[0] = ecg_proto_pack_sample(0xFFFF, 1); /* saturates to 0x7FFF */
    emit(e, ecg_proto_encode_replay_samples(&e->tx, frame, packed, 1));
    for (i = 0; i < ECG_PROTO_MAX_WINDOW_CHUNK; i++) {
        chunk[i] = (int8_t)((int)((i * 37u) % 256u) - 128);
    }
    w.window_id = 0xFFFFFFFFu; /* a full-size frame: payload ECG_PROTO_MAX_PAYLOAD */
    w.offset = 0;
    w.total = 2500;
    w.len = ECG_PROTO_MAX_WINDOW_CHUNK;
    w.data = chunk;
    emit(e, ecg_proto_encode_replay_window(&e->tx, frame, &w));
    w.window_id = 5;
    w.offset = 2496;
    w.len = 4;
    w.data = tail;
    emit(e, ecg_proto_encode_replay_window(&e->tx, frame, &w));
    w.window_id = 0;
    w.offset = 0;
    w.total = 1;
    w.len = 1;
    w.data = one;
    emit(e, ecg_proto_encode_replay_window(&e->tx, frame, &w));
}

static int cmd_encode(const char *path)
{
    encoder e;
    e.out = rt_open(path, 1);
    if (e.out == NULL) {
        return fail("cannot write the output");
    }
    ecg_proto_tx_init(&e.tx);
    e.tx.seq = 0xFFFD; /* the sequence number wraps inside the set */
    e.ok = 1;
    encode_info(&e);
    encode_samples(&e);
    encode_results(&e);
    encode_beats(&e);
    encode_replies(&e);
    encode_host_frames(&e);
    if (rt_close(e.out) != 0 || !e.ok) {
        return fail("an encoder refused a valid message or the write failed");
    }
    return 0;
}

/* ---- decode ------------------------------------------------------------------------------------ */

typedef struct {
    rt_file *out;
    ecg_proto_window_rx window;
    int assemble;
    int ok;
    uint8_t capabilities; /* of the last INFO */
    int info_seen;
} decoder;

static int8_t window_buf[MAX_WINDOW];

static void add_str(const char *name, const ecg_proto_str *s)
{
    add(" %s=", name);
    add_hex(s->text, s->len);
}

static void add_samples(const ecg_proto_samples *s)
{
    unsigned i;
    add(" values=");
    for (i = 0; i < s->count; i++) {
        add(i ? ",%u" : "%u", ecg_proto_sample_at(s, i));
    }
}

static int describe_info(decoder *d, const ecg_proto_frame *f)
{
    ecg_proto_info m;
    unsigned i;
    int err = ecg_proto_decode_info(f->payload, f->len, &m);
    if (err == 0) {
        d->capabilities = m.capabilities;
        d->info_seen = 1;
        add("INFO seq=%u", f->seq);
        add_str("fw", &m.firmware);
        add_str("backend", &m.backend);
        add(" sha=");
        add_hex(m.model_sha256, sizeof m.model_sha256);
        add(" spec=");
        add_hex(m.spec_fingerprint, sizeof m.spec_fingerprint);
        add(" rate=%u window=%u hop=%u adc_bits=%u caps=%u labels=", m.rate_hz, m.window, m.hop, m.adc_bits, m.capabilities);
        for (i = 0; i < m.num_labels; i++) {
            add(i ? "," : "");
            add_hex(m.labels[i].text, m.labels[i].len);
        }
        add(" in=%08lx/%d out=%08lx/%d unit=%u", (unsigned long)f32_bits(m.input_scale), m.input_zero_point,
            (unsigned long)f32_bits(m.output_scale), m.output_zero_point, m.time_unit);
    }
    return err;
}

static int describe_result(const decoder *d, const ecg_proto_frame *f)
{
    ecg_proto_result m;
    unsigned i;
    int err = ecg_proto_decode_result(f->payload, f->len, d->info_seen ? &d->capabilities : NULL, &m);
    if (err == 0) {
        add("RESULT seq=%u window=%lu first=%lu status=%u label=%d logits=", f->seq, (unsigned long)m.window_index,
            (unsigned long)m.first_sample, m.status, m.label);
        for (i = 0; i < m.num_logits; i++) {
            add(i ? ",%d" : "%d", m.logits[i]);
        }
        add(" time=%lu unit=%u source=%u", (unsigned long)m.time, m.time_unit, m.source);
        if (m.has_rhythm) {
            add(" hr=%u irregularity=%u", m.hr_x10, m.rr_irregularity);
        }
    }
    return err;
}

static int describe_beats(const ecg_proto_frame *f)
{
    ecg_proto_beats m;
    unsigned i;
    int err = ecg_proto_decode_beats(f->payload, f->len, &m);
    if (err == 0) {
        add("BEATS seq=%u samples=", f->seq);
        for (i = 0; i < m.count; i++) {
            add(i ? ",%lu" : "%lu", (unsigned long)ecg_proto_beat_at(&m, i));
        }
    }
    return err;
}

static int describe_window(decoder *d, const ecg_proto_frame *f)
{
    ecg_proto_window_chunk m;
    int err = ecg_proto_decode_replay_window(f->payload, f->len, &m);
    if (err == 0) {
        add("REPLAY_WINDOW seq=%u id=%lu offset=%u total=%u data=", f->seq, (unsigned long)m.window_id, m.offset, m.total);
        add_hex(m.data, m.len);
        if (d->assemble) {
            int done = ecg_proto_window_rx_chunk(&d->window, &m);
            if (done == 1) {
                add("\nWINDOW id=%lu complete crc=%04x", (unsigned long)m.window_id,
                    ecg_proto_crc16(ECG_PROTO_CRC_INIT, (const uint8_t *)window_buf, d->window.size));
            } else if (done < 0) {
                add("\nWINDOW id=%lu error", (unsigned long)m.window_id);
            }
        }
    }
    return err;
}

static int describe(decoder *d, const ecg_proto_frame *f)
{
    ecg_proto_samples s;
    ecg_proto_ack ack;
    ecg_proto_error er;
    ecg_proto_command cmd;
    int err;
    switch (f->type) {
    case ECG_PROTO_TYPE_INFO:
        return describe_info(d, f);
    case ECG_PROTO_TYPE_SAMPLES:
        err = ecg_proto_decode_samples(f->payload, f->len, &s);
        if (err == 0) {
            add("SAMPLES seq=%u first=%lu", f->seq, (unsigned long)s.first_sample);
            add_samples(&s);
        }
        return err;
    case ECG_PROTO_TYPE_RESULT:
        return describe_result(d, f);
    case ECG_PROTO_TYPE_BEATS:
        return describe_beats(f);
    case ECG_PROTO_TYPE_ACK:
        err = ecg_proto_decode_ack(f->payload, f->len, &ack);
        if (err == 0) {
            add("ACK seq=%u acked=%u type=%u credits=%u", f->seq, ack.seq, ack.type, ack.credits);
        }
        return err;
    case ECG_PROTO_TYPE_ERROR:
        err = ecg_proto_decode_error(f->payload, f->len, &er);
        if (err == 0) {
            add("ERROR seq=%u code=%u about=%u", f->seq, er.code, er.about_seq);
            add_str("message", &er.message);
        }
        return err;
    case ECG_PROTO_TYPE_COMMAND:
        err = ecg_proto_decode_command(f->payload, f->len, &cmd);
        if (err == 0) {
            add("COMMAND seq=%u code=%u arg=%lu", f->seq, cmd.code, (unsigned long)cmd.arg);
        }
        return err;
    case ECG_PROTO_TYPE_REPLAY_SAMPLES:
        err = ecg_proto_decode_replay_samples(f->payload, f->len, &s);
        if (err == 0) {
            add("REPLAY_SAMPLES seq=%u", f->seq);
            add_samples(&s);
        }
        return err;
    case ECG_PROTO_TYPE_REPLAY_WINDOW:
        return describe_window(d, f);
    default:
        return ECG_PROTO_ERR_UNKNOWN_TYPE;
    }
}

static void on_frame(void *ctx, const ecg_proto_frame *f)
{
    decoder *d = (decoder *)ctx;
    int err = describe(d, f);
    if (err != 0) {
        line_len = 0;
        line_overflow = 0;
        add("FRAME seq=%u type=%u len=%u error=%d", f->seq, f->type, f->len, err);
    }
    if (!flush_line(d->out)) {
        d->ok = 0;
    }
}

static void counters(decoder *d, const ecg_proto_reader *r)
{
    add("COUNTERS frames=%lu dropped=%lu crc_errors=%lu header_errors=%lu pending=%u", (unsigned long)r->frames,
        (unsigned long)r->dropped_bytes, (unsigned long)r->crc_errors, (unsigned long)r->header_errors, r->len);
    if (!flush_line(d->out)) {
        d->ok = 0;
    }
}

static int cmd_decode(const char *in_path, const char *out_path, long window_size)
{
    static uint8_t chunk[4096];
    static ecg_proto_reader reader;
    decoder d;
    rt_file *in;
    size_t n, i;
    if (window_size < 0 || window_size > MAX_WINDOW) {
        return fail("window size out of range");
    }
    in = rt_open(in_path, 0);
    d.out = rt_open(out_path, 1);
    if (in == NULL || d.out == NULL) {
        return fail("cannot open the input or the output");
    }
    d.assemble = window_size > 0;
    d.ok = 1;
    d.capabilities = 0;
    d.info_seen = 0;
    ecg_proto_window_rx_init(&d.window, window_buf, (uint16_t)window_size);
    ecg_proto_reader_init(&reader);
    while ((n = rt_read(in, chunk, sizeof chunk)) > 0) {
        for (i = 0; i < n; i++) {
            ecg_proto_reader_push(&reader, chunk[i], on_frame, &d);
        }
    }
    counters(&d, &reader);
    ecg_proto_reader_flush(&reader, on_frame, &d); /* end of input: as if the line went idle */
    counters(&d, &reader);
    if (rt_close(in) != 0 || rt_close(d.out) != 0 || !d.ok) {
        return fail("writing the output failed");
    }
    return 0;
}

/* ---- limits ------------------------------------------------------------------------------------ */

static char long_text[300];

static ecg_proto_str text_of(size_t n)
{
    ecg_proto_str s;
    s.text = long_text;
    s.len = n;
    return s;
}

static void limit(rt_file *out, int *ok, const char *name, size_t n)
{
    add("%s %lu", name, (unsigned long)n);
    if (!flush_line(out)) {
        *ok = 0;
    }
}

static void info_limits(rt_file *out, int *ok, ecg_proto_tx *tx)
{
    ecg_proto_info m;
    unsigned i;
    memset(&m, 0, sizeof m);
    m.firmware = ecg_proto_cstr("fw");
    m.backend = ecg_proto_cstr("native");
    m.num_labels = ECG_PROTO_MAX_LABELS;
    for (i = 0; i < ECG_PROTO_MAX_LABELS; i++) {
        m.labels[i] = ecg_proto_cstr("L");
    }
    limit(out, ok, "info_max_labels", ecg_proto_encode_info(tx, frame, &m));
    m.num_labels = ECG_PROTO_MAX_LABELS + 1;
    limit(out, ok, "info_too_many_labels", ecg_proto_encode_info(tx, frame, &m));
    m.num_labels = 1;
    m.firmware = text_of(255);
    m.backend = text_of(193);
    limit(out, ok, "info_full", ecg_proto_encode_info(tx, frame, &m)); /* payload exactly 512 */
    m.backend = text_of(194);
    limit(out, ok, "info_too_long", ecg_proto_encode_info(tx, frame, &m));
    m.backend = ecg_proto_cstr("nat\x7f");
    limit(out, ok, "info_not_printable", ecg_proto_encode_info(tx, frame, &m));
    m.backend = ecg_proto_cstr("native");
    m.input_scale = -1.0f;
    limit(out, ok, "info_negative_scale", ecg_proto_encode_info(tx, frame, &m));
    m.input_scale = 0.0f;
    m.output_scale = FLT_MAX * 2.0f;
    limit(out, ok, "info_infinite_scale", ecg_proto_encode_info(tx, frame, &m));
    m.output_scale = 1.0f;
    m.capabilities = ECG_PROTO_CAP_BEATS;
    limit(out, ok, "info_beats", ecg_proto_encode_info(tx, frame, &m));
    m.capabilities = ECG_PROTO_CAP_BEATS << 1;
    limit(out, ok, "info_unknown_capability", ecg_proto_encode_info(tx, frame, &m));
    m.capabilities = 0;
    m.time_unit = 2;
    limit(out, ok, "info_bad_unit", ecg_proto_encode_info(tx, frame, &m));
}

static void other_limits(rt_file *out, int *ok, ecg_proto_tx *tx)
{
    static uint16_t packed[ECG_PROTO_MAX_BATCH + 1];
    static int8_t data[ECG_PROTO_MAX_WINDOW_CHUNK + 1];
    static const int8_t logits[3] = {1, 2, 3};
    static uint32_t beats[ECG_PROTO_MAX_BEATS + 1];
    ecg_proto_result r = {0, 0, ECG_PROTO_STATUS_OK, 2, 3, logits, 0, ECG_PROTO_TIME_MICROSECONDS, ECG_PROTO_FROM_LIVE, 0, 0, 0};
    ecg_proto_command c = {ECG_PROTO_CMD_SOURCE, 1};
    ecg_proto_ack a = {1, ECG_PROTO_TYPE_COMMAND, 5};
    ecg_proto_error er;
    ecg_proto_window_chunk w = {1, 0, 2500, ECG_PROTO_MAX_WINDOW_CHUNK, data};

    limit(out, ok, "samples_max", ecg_proto_encode_samples(tx, frame, 0, packed, ECG_PROTO_MAX_BATCH));
    limit(out, ok, "samples_over", ecg_proto_encode_samples(tx, frame, 0, packed, ECG_PROTO_MAX_BATCH + 1));
    limit(out, ok, "replay_samples_max", ecg_proto_encode_replay_samples(tx, frame, packed, ECG_PROTO_MAX_BATCH));
    limit(out, ok, "replay_samples_over", ecg_proto_encode_replay_samples(tx, frame, packed, ECG_PROTO_MAX_BATCH + 1));
    limit(out, ok, "result_ok", ecg_proto_encode_result(tx, frame, &r));
    r.label = 3;
    limit(out, ok, "result_label_past_logits", ecg_proto_encode_result(tx, frame, &r));
    r.label = -2;
    limit(out, ok, "result_label_negative", ecg_proto_encode_result(tx, frame, &r));
    r.label = -1;
    r.num_logits = 0;
    r.status = ECG_PROTO_STATUS_FLAT;
    limit(out, ok, "result_flat", ecg_proto_encode_result(tx, frame, &r));
    r.status = ECG_PROTO_STATUS_LOW_CONFIDENCE;
    r.label = 2;
    r.num_logits = 3;
    limit(out, ok, "result_low_confidence", ecg_proto_encode_result(tx, frame, &r));
    r.label = -1;
    r.status = ECG_PROTO_STATUS_LOW_CONFIDENCE + 1; /* past the last status */
    limit(out, ok, "result_bad_status", ecg_proto_encode_result(tx, frame, &r));
    r.status = ECG_PROTO_STATUS_OK;
    r.source = 3;
    limit(out, ok, "result_bad_source", ecg_proto_encode_result(tx, frame, &r));
    r.source = ECG_PROTO_FROM_LIVE;
    r.hr_x10 = ECG_PROTO_HR_UNKNOWN; /* not read without the rhythm fields */
    limit(out, ok, "result_rhythm_ignored", ecg_proto_encode_result(tx, frame, &r));
    r.rr_irregularity = ECG_PROTO_RR_IRREGULARITY_UNKNOWN;
    limit(out, ok, "result_rhythm_unknown", ecg_proto_encode_result_beats(tx, frame, &r));
    r.hr_x10 = 750;
    r.rr_irregularity = 0;
    limit(out, ok, "result_rhythm_ok", ecg_proto_encode_result_beats(tx, frame, &r));
    r.rr_irregularity = ECG_PROTO_RR_IRREGULARITY_UNKNOWN;
    limit(out, ok, "result_rhythm_half_unknown", ecg_proto_encode_result_beats(tx, frame, &r));
    r.hr_x10 = ECG_PROTO_HR_UNKNOWN;
    r.rr_irregularity = 12;
    limit(out, ok, "result_rhythm_other_half_unknown", ecg_proto_encode_result_beats(tx, frame, &r));
    r.status = ECG_PROTO_STATUS_LEAD_OFF;
    r.hr_x10 = 750;
    r.rr_irregularity = 0;
    limit(out, ok, "result_rhythm_lead_off", ecg_proto_encode_result_beats(tx, frame, &r));
    r.status = ECG_PROTO_STATUS_OK;
    limit(out, ok, "beats_max", ecg_proto_encode_beats(tx, frame, beats, ECG_PROTO_MAX_BEATS));
    limit(out, ok, "beats_over", ecg_proto_encode_beats(tx, frame, beats, ECG_PROTO_MAX_BEATS + 1));
    limit(out, ok, "beats_empty", ecg_proto_encode_beats(tx, frame, beats, 0));
    limit(out, ok, "command_ok", ecg_proto_encode_command(tx, frame, &c));
    c.arg = 2;
    limit(out, ok, "command_source_arg", ecg_proto_encode_command(tx, frame, &c));
    c.code = ECG_PROTO_CMD_GET_INFO;
    c.arg = 1;
    limit(out, ok, "command_get_info_arg", ecg_proto_encode_command(tx, frame, &c));
    c.code = 9;
    c.arg = 0;
    limit(out, ok, "command_unknown", ecg_proto_encode_command(tx, frame, &c));
    limit(out, ok, "ack_ok", ecg_proto_encode_ack(tx, frame, &a));
    a.type = ECG_PROTO_TYPE_BEATS + 1; /* no such type */
    limit(out, ok, "ack_unknown_type", ecg_proto_encode_ack(tx, frame, &a));
    er.code = ECG_PROTO_ERR_BAD_VALUE;
    er.about_seq = 3;
    er.message = text_of(255);
    limit(out, ok, "error_longest_message", ecg_proto_encode_error(tx, frame, &er));
    er.message = text_of(256);
    limit(out, ok, "error_message_too_long", ecg_proto_encode_error(tx, frame, &er));
    er.message = text_of(0);
    er.code = 0;
    limit(out, ok, "error_unknown_code", ecg_proto_encode_error(tx, frame, &er));
    limit(out, ok, "window_max_chunk", ecg_proto_encode_replay_window(tx, frame, &w));
    w.len = ECG_PROTO_MAX_WINDOW_CHUNK + 1;
    limit(out, ok, "window_chunk_over", ecg_proto_encode_replay_window(tx, frame, &w));
    w.len = 10;
    w.offset = 2491;
    limit(out, ok, "window_past_total", ecg_proto_encode_replay_window(tx, frame, &w));
    w.offset = 0;
    w.len = 0;
    limit(out, ok, "window_empty_chunk", ecg_proto_encode_replay_window(tx, frame, &w));
}

static int cmd_limits(const char *path)
{
    static const uint8_t check[] = "123456789";
    uint8_t bytes[4];
    ecg_proto_tx tx;
    int ok = 1;
    rt_file *out = rt_open(path, 1);
    if (out == NULL) {
        return fail("cannot write the output");
    }
    memset(long_text, 'x', sizeof long_text);
    ecg_proto_tx_init(&tx);
    info_limits(out, &ok, &tx);
    other_limits(out, &ok, &tx);
    limit(out, &ok, "next_seq", tx.seq); /* one per frame actually built */
    limit(out, &ok, "crc_check", ecg_proto_crc16(ECG_PROTO_CRC_INIT, check, 9));
    limit(out, &ok, "hex_ok", (size_t)(ecg_proto_hex_bytes("00fFa5", bytes, 3) == 0 && bytes[1] == 0xFF && bytes[2] == 0xA5));
    limit(out, &ok, "hex_bad_digit", (size_t)(ecg_proto_hex_bytes("0g", bytes, 1) == -1));
    limit(out, &ok, "hex_bad_length", (size_t)(ecg_proto_hex_bytes("abc", bytes, 2) == -1));
    limit(out, &ok, "pack_saturates", ecg_proto_pack_sample(40000, 0));
    if (rt_close(out) != 0 || !ok) {
        return fail("writing the output failed");
    }
    return 0;
}

int harness_main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "encode") == 0) {
        return cmd_encode(argv[2]);
    }
    if ((argc == 4 || argc == 5) && strcmp(argv[1], "decode") == 0) {
        long size = 0;
        if (argc == 5 && sscanf(argv[4], "%ld", &size) != 1) {
            return fail("the window size is not a number");
        }
        return cmd_decode(argv[2], argv[3], size);
    }
    if (argc == 3 && strcmp(argv[1], "limits") == 0) {
        return cmd_limits(argv[2]);
    }
    return fail("usage: proto_tool encode OUT.bin | decode IN.bin OUT.txt [WINDOW_BYTES] | limits OUT.txt");
}
