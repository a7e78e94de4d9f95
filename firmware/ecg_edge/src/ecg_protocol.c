/* The binary serial protocol, device side: see ecg_protocol.h and firmware/PROTOCOL.md. */
#include <float.h>
#include <string.h>

#include "ecg_protocol.h"

#if ECG_PROTO_HEADER_BYTES != 8 || ECG_PROTO_CRC_BYTES != 2
#error "ecg_protocol.c lays out the version 1 header: 2 sync bytes, version, type, seq u16, len u16; CRC u16"
#endif
#if ECG_PROTO_MAX_FRAME != ECG_PROTO_HEADER_BYTES + ECG_PROTO_MAX_PAYLOAD + ECG_PROTO_CRC_BYTES
#error "ECG_PROTO_MAX_FRAME does not match header, payload and CRC"
#endif
#if ECG_PROTO_RESULT_FIXED_BYTES != 17 || ECG_PROTO_RESULT_RHYTHM_BYTES != 4 || ECG_PROTO_BEATS_FIXED_BYTES != 1 || \
    ECG_PROTO_BEAT_BYTES != 4
#error "ecg_protocol.c lays out RESULT (17 bytes + logits, then hr_x10 u16 and rr_irregularity u16) and BEATS (count u8, u32 each)"
#endif
#if ECG_PROTO_BEATS_FIXED_BYTES + ECG_PROTO_BEAT_BYTES * ECG_PROTO_MAX_BEATS > ECG_PROTO_MAX_PAYLOAD || ECG_PROTO_MAX_BEATS > 255
#error "ECG_PROTO_MAX_BEATS beats do not fit a payload or a count byte"
#endif
#if ECG_PROTO_MAX_FRAME > 0xFFFF
#error "the reader indexes its buffer with uint16_t"
#endif

/* Floats travel as IEEE-754 binary32: the encoders copy a float's bits. */
typedef char ecg_proto_float_is_32_bits[sizeof(float) == 4 ? 1 : -1];

/* ---- helpers ---------------------------------------------------------------------------------- */

uint16_t ecg_proto_crc16(uint16_t crc, const uint8_t *data, size_t n)
{
    size_t i;
    int bit;
    for (i = 0; i < n; i++) {
        crc = (uint16_t)(crc ^ ((uint16_t)data[i] << 8));
        for (bit = 0; bit < 8; bit++) {
            crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ ECG_PROTO_CRC_POLY) : (uint16_t)(crc << 1);
        }
    }
    return crc;
}

ecg_proto_str ecg_proto_cstr(const char *s)
{
    ecg_proto_str out;
    out.text = s;
    out.len = s ? strlen(s) : 0;
    return out;
}

uint16_t ecg_proto_pack_sample(uint16_t adc, int lead_off)
{
    uint16_t v = adc > ECG_PROTO_ADC_MASK ? (uint16_t)ECG_PROTO_ADC_MASK : adc;
    return (uint16_t)(v | (lead_off ? ECG_PROTO_LEAD_OFF_BIT : 0));
}

uint16_t ecg_proto_sample_at(const ecg_proto_samples *s, unsigned i)
{
    return (uint16_t)(s->raw[2u * i] | ((uint16_t)s->raw[2u * i + 1u] << 8));
}

uint32_t ecg_proto_beat_at(const ecg_proto_beats *b, unsigned i)
{
    const uint8_t *p = b->raw + 4u * i;
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int ecg_proto_hex_bytes(const char *hex, uint8_t *out, size_t n)
{
    size_t i;
    if (hex == NULL || strlen(hex) != 2 * n) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return -1;
        }
        out[i] = (uint8_t)(hi * 16 + lo);
    }
    return 0;
}

/* ---- value checks, shared by encoders and decoders --------------------------------------------- */

static int valid_str(const ecg_proto_str *s)
{
    size_t i;
    if (s->len > ECG_PROTO_MAX_STRING || (s->len > 0 && s->text == NULL)) {
        return 0;
    }
    for (i = 0; i < s->len; i++) {
        if (s->text[i] < 0x20 || s->text[i] > 0x7E) {
            return 0;
        }
    }
    return 1;
}

/* A quantization scale: finite and >= 0 (NaN fails both comparisons). */
static int valid_scale(float x)
{
    return x >= 0.0f && x <= FLT_MAX;
}

static int valid_info(const ecg_proto_info *m)
{
    unsigned i;
    if (!valid_str(&m->firmware) || !valid_str(&m->backend) || (m->capabilities & ~ECG_PROTO_CAP_ALL) != 0 ||
        m->num_labels > ECG_PROTO_MAX_LABELS || !valid_scale(m->input_scale) || !valid_scale(m->output_scale) ||
        !ECG_PROTO_TIME_VALID(m->time_unit)) {
        return 0;
    }
    for (i = 0; i < m->num_labels; i++) {
        if (!valid_str(&m->labels[i])) {
            return 0;
        }
    }
    return 1;
}

static int valid_result(const ecg_proto_result *m)
{
    return ECG_PROTO_STATUS_VALID(m->status) && (m->label == -1 || (m->label >= 0 && m->label < m->num_logits)) &&
           (m->num_logits == 0 || m->logits != NULL) && ECG_PROTO_TIME_VALID(m->time_unit) && ECG_PROTO_FROM_VALID(m->source);
}

/* hr_x10 and rr_irregularity: both unknown or neither; unknown in a LEAD_OFF window. */
static int valid_rhythm(const ecg_proto_result *m)
{
    return (m->hr_x10 == ECG_PROTO_HR_UNKNOWN) == (m->rr_irregularity == ECG_PROTO_RR_IRREGULARITY_UNKNOWN) &&
           (m->status != ECG_PROTO_STATUS_LEAD_OFF || m->hr_x10 == ECG_PROTO_HR_UNKNOWN);
}

static int valid_command(const ecg_proto_command *m)
{
    switch (m->code) {
    case ECG_PROTO_CMD_GET_INFO:
        return m->arg < ECG_PROTO_CMD_GET_INFO_ARGS;
    case ECG_PROTO_CMD_RESET:
        return m->arg < ECG_PROTO_CMD_RESET_ARGS;
    case ECG_PROTO_CMD_SOURCE:
        return m->arg < ECG_PROTO_CMD_SOURCE_ARGS;
    case ECG_PROTO_CMD_STREAM:
        return m->arg < ECG_PROTO_CMD_STREAM_ARGS;
    case ECG_PROTO_CMD_TEXT:
        return m->arg < ECG_PROTO_CMD_TEXT_ARGS;
    default:
        return 0;
    }
}

static int valid_chunk(const ecg_proto_window_chunk *m)
{
    return m->len >= 1 && m->len <= ECG_PROTO_MAX_WINDOW_CHUNK && (uint32_t)m->offset + m->len <= m->total && m->data != NULL;
}

/* ---- encoders --------------------------------------------------------------------------------- */

/* Writes a payload at frame + ECG_PROTO_HEADER_BYTES; `bad` once a field did not fit or was invalid. */
typedef struct {
    uint8_t *p;
    size_t n;
    int bad;
} writer;

static writer writer_at(uint8_t *frame)
{
    writer w;
    w.p = frame + ECG_PROTO_HEADER_BYTES;
    w.n = 0;
    w.bad = 0;
    return w;
}

static void put_le(writer *w, uint32_t v, unsigned bytes)
{
    unsigned i;
    if (w->bad || w->n + bytes > ECG_PROTO_MAX_PAYLOAD) {
        w->bad = 1;
        return;
    }
    for (i = 0; i < bytes; i++) {
        w->p[w->n++] = (uint8_t)(v >> (8 * i));
    }
}

static void put_bytes(writer *w, const void *data, size_t n)
{
    if (w->bad || n > ECG_PROTO_MAX_PAYLOAD - w->n) {
        w->bad = 1;
        return;
    }
    if (n > 0) {
        memcpy(w->p + w->n, data, n);
    }
    w->n += n;
}

static void put_f32(writer *w, float x)
{
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    put_le(w, bits, 4);
}

static void put_str(writer *w, const ecg_proto_str *s)
{
    put_le(w, (uint32_t)s->len, 1);
    put_bytes(w, s->text, s->len);
}

static void put_samples(writer *w, const uint16_t *packed, unsigned count)
{
    unsigned i;
    put_le(w, count, 1);
    for (i = 0; i < count; i++) {
        put_le(w, packed[i], 2);
    }
}

static size_t finish(ecg_proto_tx *tx, uint8_t *frame, uint8_t type, const writer *w)
{
    return w->bad ? 0 : ecg_proto_finish(tx, frame, type, w->n);
}

void ecg_proto_tx_init(ecg_proto_tx *tx)
{
    tx->seq = 0;
}

size_t ecg_proto_finish(ecg_proto_tx *tx, uint8_t *frame, uint8_t type, size_t len)
{
    uint16_t crc;
    if (len > ECG_PROTO_MAX_PAYLOAD) {
        return 0;
    }
    frame[0] = ECG_PROTO_SYNC0;
    frame[1] = ECG_PROTO_SYNC1;
    frame[2] = ECG_PROTO_VERSION;
    frame[3] = type;
    frame[4] = (uint8_t)tx->seq;
    frame[5] = (uint8_t)(tx->seq >> 8);
    frame[6] = (uint8_t)len;
    frame[7] = (uint8_t)(len >> 8);
    crc = ecg_proto_crc16(ECG_PROTO_CRC_INIT, frame + 2, ECG_PROTO_HEADER_BYTES - 2 + len);
    frame[ECG_PROTO_HEADER_BYTES + len] = (uint8_t)crc;
    frame[ECG_PROTO_HEADER_BYTES + len + 1] = (uint8_t)(crc >> 8);
    tx->seq = (uint16_t)(tx->seq + 1u);
    return ECG_PROTO_HEADER_BYTES + len + ECG_PROTO_CRC_BYTES;
}

size_t ecg_proto_encode_info(ecg_proto_tx *tx, uint8_t *frame, const ecg_proto_info *m)
{
    writer w = writer_at(frame);
    unsigned i;
    w.bad = !valid_info(m);
    put_str(&w, &m->firmware);
    put_str(&w, &m->backend);
    put_bytes(&w, m->model_sha256, sizeof m->model_sha256);
    put_bytes(&w, m->spec_fingerprint, sizeof m->spec_fingerprint);
    put_le(&w, m->rate_hz, 2);
    put_le(&w, m->window, 2);
    put_le(&w, m->hop, 2);
    put_le(&w, m->adc_bits, 1);
    put_le(&w, m->capabilities, 1);
    put_le(&w, m->num_labels, 1);
    for (i = 0; i < m->num_labels && i < ECG_PROTO_MAX_LABELS; i++) {
        put_str(&w, &m->labels[i]);
    }
    put_f32(&w, m->input_scale);
    put_le(&w, (uint8_t)m->input_zero_point, 1);
    put_f32(&w, m->output_scale);
    put_le(&w, (uint8_t)m->output_zero_point, 1);
    put_le(&w, m->time_unit, 1);
    return finish(tx, frame, ECG_PROTO_TYPE_INFO, &w);
}

size_t ecg_proto_encode_samples(ecg_proto_tx *tx, uint8_t *frame, uint32_t first_sample, const uint16_t *packed, unsigned count)
{
    writer w = writer_at(frame);
    w.bad = count > ECG_PROTO_MAX_BATCH || (count > 0 && packed == NULL);
    put_le(&w, first_sample, 4);
    put_samples(&w, packed, w.bad ? 0 : count);
    return finish(tx, frame, ECG_PROTO_TYPE_SAMPLES, &w);
}

static size_t encode_result(ecg_proto_tx *tx, uint8_t *frame, const ecg_proto_result *m, int rhythm)
{
    writer w = writer_at(frame);
    w.bad = !valid_result(m) || (rhythm && !valid_rhythm(m));
    put_le(&w, m->window_index, 4);
    put_le(&w, m->first_sample, 4);
    put_le(&w, m->status, 1);
    put_le(&w, (uint8_t)m->label, 1);
    put_le(&w, m->num_logits, 1);
    put_bytes(&w, m->logits, w.bad ? 0 : m->num_logits);
    put_le(&w, m->time, 4);
    put_le(&w, m->time_unit, 1);
    put_le(&w, m->source, 1);
    if (rhythm) {
        put_le(&w, m->hr_x10, 2);
        put_le(&w, m->rr_irregularity, 2);
    }
    return finish(tx, frame, ECG_PROTO_TYPE_RESULT, &w);
}

size_t ecg_proto_encode_result(ecg_proto_tx *tx, uint8_t *frame, const ecg_proto_result *m)
{
    return encode_result(tx, frame, m, 0);
}

size_t ecg_proto_encode_result_beats(ecg_proto_tx *tx, uint8_t *frame, const ecg_proto_result *m)
{
    return encode_result(tx, frame, m, 1);
}

size_t ecg_proto_encode_beats(ecg_proto_tx *tx, uint8_t *frame, const uint32_t *samples, unsigned count)
{
    writer w = writer_at(frame);
    unsigned i;
    w.bad = count < 1 || count > ECG_PROTO_MAX_BEATS || samples == NULL;
    put_le(&w, count, 1);
    for (i = 0; !w.bad && i < count; i++) {
        put_le(&w, samples[i], 4);
    }
    return finish(tx, frame, ECG_PROTO_TYPE_BEATS, &w);
}

size_t ecg_proto_encode_ack(ecg_proto_tx *tx, uint8_t *frame, const ecg_proto_ack *m)
{
    writer w = writer_at(frame);
    w.bad = !ECG_PROTO_TYPE_VALID(m->type);
    put_le(&w, m->seq, 2);
    put_le(&w, m->type, 1);
    put_le(&w, m->credits, 2);
    return finish(tx, frame, ECG_PROTO_TYPE_ACK, &w);
}

size_t ecg_proto_encode_error(ecg_proto_tx *tx, uint8_t *frame, const ecg_proto_error *m)
{
    writer w = writer_at(frame);
    w.bad = !ECG_PROTO_ERR_VALID(m->code) || !valid_str(&m->message);
    put_le(&w, m->code, 1);
    put_le(&w, m->about_seq, 2);
    put_str(&w, &m->message);
    return finish(tx, frame, ECG_PROTO_TYPE_ERROR, &w);
}

size_t ecg_proto_encode_command(ecg_proto_tx *tx, uint8_t *frame, const ecg_proto_command *m)
{
    writer w = writer_at(frame);
    w.bad = !valid_command(m);
    put_le(&w, m->code, 1);
    put_le(&w, m->arg, 4);
    return finish(tx, frame, ECG_PROTO_TYPE_COMMAND, &w);
}

size_t ecg_proto_encode_replay_samples(ecg_proto_tx *tx, uint8_t *frame, const uint16_t *packed, unsigned count)
{
    writer w = writer_at(frame);
    w.bad = count > ECG_PROTO_MAX_BATCH || (count > 0 && packed == NULL);
    put_samples(&w, packed, w.bad ? 0 : count);
    return finish(tx, frame, ECG_PROTO_TYPE_REPLAY_SAMPLES, &w);
}

size_t ecg_proto_encode_replay_window(ecg_proto_tx *tx, uint8_t *frame, const ecg_proto_window_chunk *m)
{
    writer w = writer_at(frame);
    w.bad = !valid_chunk(m);
    put_le(&w, m->window_id, 4);
    put_le(&w, m->offset, 2);
    put_le(&w, m->total, 2);
    put_bytes(&w, m->data, w.bad ? 0 : m->len);
    return finish(tx, frame, ECG_PROTO_TYPE_REPLAY_WINDOW, &w);
}

/* ---- decoders --------------------------------------------------------------------------------- */

/* Reads a payload front to back; `bad` once a field ran past its end (then fields read as 0). */
typedef struct {
    const uint8_t *p;
    size_t len, pos;
    int bad;
} reader;

static reader reader_of(const uint8_t *payload, size_t len)
{
    reader r;
    r.p = payload;
    r.len = payload ? len : 0;
    r.pos = 0;
    r.bad = payload == NULL && len > 0;
    return r;
}

static const uint8_t *get_bytes(reader *r, size_t n)
{
    const uint8_t *at;
    if (r->bad || n > r->len - r->pos) {
        r->bad = 1;
        return NULL;
    }
    at = r->p + r->pos;
    r->pos += n;
    return at;
}

static uint32_t get_le(reader *r, unsigned bytes)
{
    const uint8_t *at = get_bytes(r, bytes);
    uint32_t v = 0;
    unsigned i;
    for (i = 0; at != NULL && i < bytes; i++) {
        v |= (uint32_t)at[i] << (8 * i);
    }
    return v;
}

static float get_f32(reader *r)
{
    uint32_t bits = get_le(r, 4);
    float x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

static ecg_proto_str get_str(reader *r)
{
    ecg_proto_str s;
    s.len = get_le(r, 1);
    s.text = (const char *)get_bytes(r, s.len);
    if (s.text == NULL) {
        s.len = 0;
    }
    return s;
}

/* BAD_LENGTH unless the fields filled the payload exactly; then BAD_VALUE unless `valid`. */
static int verdict(const reader *r, int valid)
{
    if (r->bad || r->pos != r->len) {
        return ECG_PROTO_ERR_BAD_LENGTH;
    }
    return valid ? 0 : ECG_PROTO_ERR_BAD_VALUE;
}

int ecg_proto_decode_info(const uint8_t *payload, size_t len, ecg_proto_info *out)
{
    reader r = reader_of(payload, len);
    const uint8_t *sha, *fingerprint;
    unsigned i, n;
    memset(out, 0, sizeof *out);
    out->firmware = get_str(&r);
    out->backend = get_str(&r);
    sha = get_bytes(&r, ECG_PROTO_SHA256_BYTES);
    fingerprint = get_bytes(&r, ECG_PROTO_FINGERPRINT_BYTES);
    if (sha != NULL && fingerprint != NULL) {
        memcpy(out->model_sha256, sha, ECG_PROTO_SHA256_BYTES);
        memcpy(out->spec_fingerprint, fingerprint, ECG_PROTO_FINGERPRINT_BYTES);
    }
    out->rate_hz = (uint16_t)get_le(&r, 2);
    out->window = (uint16_t)get_le(&r, 2);
    out->hop = (uint16_t)get_le(&r, 2);
    out->adc_bits = (uint8_t)get_le(&r, 1);
    out->capabilities = (uint8_t)get_le(&r, 1);
    n = get_le(&r, 1);
    for (i = 0; i < n; i++) { /* labels past ECG_PROTO_MAX_LABELS are read over, then refused */
        ecg_proto_str label = get_str(&r);
        if (i < ECG_PROTO_MAX_LABELS) {
            out->labels[i] = label;
        }
    }
    out->num_labels = (uint8_t)n;
    out->input_scale = get_f32(&r);
    out->input_zero_point = (int8_t)get_le(&r, 1);
    out->output_scale = get_f32(&r);
    out->output_zero_point = (int8_t)get_le(&r, 1);
    out->time_unit = (uint8_t)get_le(&r, 1);
    return verdict(&r, valid_info(out));
}

static void get_samples(reader *r, ecg_proto_samples *out)
{
    out->count = (uint8_t)get_le(r, 1);
    out->raw = get_bytes(r, 2u * out->count);
}

int ecg_proto_decode_samples(const uint8_t *payload, size_t len, ecg_proto_samples *out)
{
    reader r = reader_of(payload, len);
    out->first_sample = get_le(&r, 4);
    get_samples(&r, out);
    return verdict(&r, out->count <= ECG_PROTO_MAX_BATCH);
}

int ecg_proto_decode_replay_samples(const uint8_t *payload, size_t len, ecg_proto_samples *out)
{
    reader r = reader_of(payload, len);
    out->first_sample = 0;
    get_samples(&r, out);
    return verdict(&r, out->count <= ECG_PROTO_MAX_BATCH);
}

int ecg_proto_decode_result(const uint8_t *payload, size_t len, const uint8_t *capabilities, ecg_proto_result *out)
{
    reader r = reader_of(payload, len);
    out->window_index = get_le(&r, 4);
    out->first_sample = get_le(&r, 4);
    out->status = (uint8_t)get_le(&r, 1);
    out->label = (int8_t)get_le(&r, 1);
    out->num_logits = (uint8_t)get_le(&r, 1);
    out->logits = (const int8_t *)get_bytes(&r, out->num_logits);
    out->time = get_le(&r, 4);
    out->time_unit = (uint8_t)get_le(&r, 1);
    out->source = (uint8_t)get_le(&r, 1);
    if (capabilities != NULL) {
        out->has_rhythm = (*capabilities & ECG_PROTO_CAP_BEATS) != 0;
    } else { /* the device is not known yet: the rhythm fields are there when bytes are left */
        out->has_rhythm = !r.bad && r.pos < r.len;
    }
    out->hr_x10 = ECG_PROTO_HR_UNKNOWN;
    out->rr_irregularity = ECG_PROTO_RR_IRREGULARITY_UNKNOWN;
    if (out->has_rhythm) {
        out->hr_x10 = (uint16_t)get_le(&r, 2);
        out->rr_irregularity = (uint16_t)get_le(&r, 2);
    }
    return verdict(&r, valid_result(out) && (!out->has_rhythm || valid_rhythm(out)));
}

int ecg_proto_decode_beats(const uint8_t *payload, size_t len, ecg_proto_beats *out)
{
    reader r = reader_of(payload, len);
    out->count = (uint8_t)get_le(&r, 1);
    out->raw = get_bytes(&r, 4u * out->count);
    return verdict(&r, out->count >= 1 && out->count <= ECG_PROTO_MAX_BEATS);
}

int ecg_proto_decode_ack(const uint8_t *payload, size_t len, ecg_proto_ack *out)
{
    reader r = reader_of(payload, len);
    out->seq = (uint16_t)get_le(&r, 2);
    out->type = (uint8_t)get_le(&r, 1);
    out->credits = (uint16_t)get_le(&r, 2);
    return verdict(&r, ECG_PROTO_TYPE_VALID(out->type));
}

int ecg_proto_decode_error(const uint8_t *payload, size_t len, ecg_proto_error *out)
{
    reader r = reader_of(payload, len);
    out->code = (uint8_t)get_le(&r, 1);
    out->about_seq = (uint16_t)get_le(&r, 2);
    out->message = get_str(&r);
    return verdict(&r, ECG_PROTO_ERR_VALID(out->code) && valid_str(&out->message));
}

int ecg_proto_decode_command(const uint8_t *payload, size_t len, ecg_proto_command *out)
{
    reader r = reader_of(payload, len);
    out->code = (uint8_t)get_le(&r, 1);
    out->arg = get_le(&r, 4);
    return verdict(&r, valid_command(out));
}

int ecg_proto_decode_replay_window(const uint8_t *payload, size_t len, ecg_proto_window_chunk *out)
{
    reader r = reader_of(payload, len);
    size_t rest;
    out->window_id = get_le(&r, 4);
    out->offset = (uint16_t)get_le(&r, 2);
    out->total = (uint16_t)get_le(&r, 2);
    rest = r.bad ? 0 : r.len - r.pos;
    out->data = (const int8_t *)get_bytes(&r, rest);
    out->len = (uint16_t)(rest > 0xFFFFu ? 0xFFFFu : rest); /* too long either way: refused */
    return verdict(&r, valid_chunk(out));
}

/* ---- reader ----------------------------------------------------------------------------------- */

void ecg_proto_reader_init(ecg_proto_reader *r)
{
    memset(r, 0, sizeof *r);
}

static void reader_consume(ecg_proto_reader *r, uint16_t n)
{
    r->start = (uint16_t)(r->start + n);
    r->len = (uint16_t)(r->len - n);
    if (r->len == 0) {
        r->start = 0;
    }
}

/* Drop the candidate's first byte and the bytes up to the next possible sync. */
static void reader_reject(ecg_proto_reader *r)
{
    const uint8_t *next;
    uint16_t n = 1;
    if (r->len > 1) {
        next = (const uint8_t *)memchr(r->buf + r->start + 1, ECG_PROTO_SYNC0, (size_t)r->len - 1u);
        n = next ? (uint16_t)(next - (r->buf + r->start)) : r->len;
    }
    r->dropped_bytes += n;
    reader_consume(r, n);
}

/* Deliver every frame at the front of the buffer until it holds only the start of a candidate. */
static void reader_scan(ecg_proto_reader *r, ecg_proto_frame_fn on_frame, void *ctx)
{
    while (r->len > 0) {
        const uint8_t *b = r->buf + r->start;
        uint16_t n, size;
        ecg_proto_frame f;
        if (b[0] != ECG_PROTO_SYNC0) {
            reader_reject(r);
            continue;
        }
        if (r->len < 2) {
            return;
        }
        if (b[1] != ECG_PROTO_SYNC1) {
            reader_reject(r);
            continue;
        }
        if (r->len < 3) {
            return;
        }
        if (b[2] != ECG_PROTO_VERSION) {
            r->header_errors++;
            reader_reject(r);
            continue;
        }
        if (r->len < ECG_PROTO_HEADER_BYTES) {
            return;
        }
        n = (uint16_t)(b[6] | ((uint16_t)b[7] << 8));
        if (n > ECG_PROTO_MAX_PAYLOAD) {
            r->header_errors++;
            reader_reject(r);
            continue;
        }
        size = (uint16_t)(ECG_PROTO_HEADER_BYTES + n + ECG_PROTO_CRC_BYTES);
        if (r->len < size) {
            return;
        }
        if (ecg_proto_crc16(ECG_PROTO_CRC_INIT, b + 2, ECG_PROTO_HEADER_BYTES - 2u + n) !=
            (uint16_t)(b[size - 2] | ((uint16_t)b[size - 1] << 8))) {
            r->crc_errors++;
            reader_reject(r);
            continue;
        }
        f.type = b[3];
        f.seq = (uint16_t)(b[4] | ((uint16_t)b[5] << 8));
        f.len = n;
        f.payload = b + ECG_PROTO_HEADER_BYTES;
        r->frames++;
        if (on_frame != NULL) {
            on_frame(ctx, &f);
        }
        reader_consume(r, size);
    }
}

void ecg_proto_reader_push(ecg_proto_reader *r, uint8_t byte, ecg_proto_frame_fn on_frame, void *ctx)
{
    /* After a scan the buffer holds less than one frame, so compacting always makes room. */
    if ((size_t)r->start + r->len >= sizeof r->buf) {
        memmove(r->buf, r->buf + r->start, r->len);
        r->start = 0;
    }
    r->buf[r->start + r->len] = byte;
    r->len++;
    reader_scan(r, on_frame, ctx);
}

void ecg_proto_reader_flush(ecg_proto_reader *r, ecg_proto_frame_fn on_frame, void *ctx)
{
    while (r->len > 0) {
        reader_reject(r);
        reader_scan(r, on_frame, ctx);
    }
}

/* ---- REPLAY_WINDOW assembly -------------------------------------------------------------------- */

void ecg_proto_window_rx_init(ecg_proto_window_rx *w, int8_t *dst, uint16_t size)
{
    w->dst = dst;
    w->size = size;
    w->received = 0;
    w->window_id = 0;
    w->active = 0;
}

int ecg_proto_window_rx_chunk(ecg_proto_window_rx *w, const ecg_proto_window_chunk *chunk)
{
    if (w->dst == NULL || !valid_chunk(chunk) || chunk->total != w->size) {
        w->active = 0;
        return -1;
    }
    if (chunk->offset == 0) {
        w->active = 1;
        w->window_id = chunk->window_id;
        w->received = 0;
    } else if (!w->active || chunk->window_id != w->window_id || chunk->offset != w->received) {
        w->active = 0;
        return -1;
    }
    memcpy(w->dst + chunk->offset, chunk->data, chunk->len);
    w->received = (uint16_t)(w->received + chunk->len);
    if (w->received == w->size) {
        w->active = 0;
        return 1;
    }
    return 0;
}
