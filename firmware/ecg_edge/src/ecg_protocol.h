/* The binary serial protocol, device side (firmware/PROTOCOL.md; host side: host/protocol.py).
 *
 * - Encoders build one frame in a caller buffer of ECG_PROTO_MAX_FRAME bytes and return its length
 *   (0 when a field is out of range: nothing is sent, the sequence number is not used).
 * - The reader takes the byte stream one byte at a time in a fixed buffer, resynchronises after
 *   garbage (a bad header or CRC drops one byte and rescans what was buffered) and hands every
 *   good frame to a callback.
 * - Decoders check a payload's length and values; they never read past it. Decoded strings, samples
 *   and int8 data point into the payload (valid while the frame is).
 * - The window assembler collects REPLAY_WINDOW chunks into the model input.
 *
 * No heap, no globals; constants come from the generated ecg_protocol_defs.h (export/protocol_defs.py).
 */
#ifndef ECG_PROTOCOL_H
#define ECG_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#if defined(__has_include)
#if __has_include("ecg_protocol_defs.h")
#include "ecg_protocol_defs.h"
#elif __has_include("generated/ecg_protocol_defs.h")
#include "generated/ecg_protocol_defs.h"
#else
#error "ecg-edge: ecg_protocol_defs.h is missing. Run: ecg-export firmware --bundle <your bundle> --out firmware/ecg_edge/src/generated"
#endif
#else
#include "ecg_protocol_defs.h"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* A string on the wire: up to ECG_PROTO_MAX_STRING printable ASCII bytes, not NUL-terminated. */
typedef struct {
    const char *text;
    size_t len;
} ecg_proto_str;

typedef struct {
    ecg_proto_str firmware;
    ecg_proto_str backend; /* "native", "tflm" or "none" */
    uint8_t model_sha256[ECG_PROTO_SHA256_BYTES];         /* zeros without a model */
    uint8_t spec_fingerprint[ECG_PROTO_FINGERPRINT_BYTES]; /* ECG_SPEC_FINGERPRINT as bytes */
    uint16_t rate_hz, window, hop;
    uint8_t adc_bits;
    uint8_t capabilities; /* ECG_PROTO_CAP_* */
    uint8_t num_labels;   /* <= ECG_PROTO_MAX_LABELS */
    ecg_proto_str labels[ECG_PROTO_MAX_LABELS];
    float input_scale; /* finite, >= 0 (0 without a model) */
    int8_t input_zero_point;
    float output_scale;
    int8_t output_zero_point;
    uint8_t time_unit; /* ECG_PROTO_TIME_* of RESULT times */
} ecg_proto_info;

/* SAMPLES (first_sample set) and REPLAY_SAMPLES (first_sample 0) as decoded. */
typedef struct {
    uint32_t first_sample;
    uint8_t count;
    const uint8_t *raw; /* count packed samples, u16 LE: use ecg_proto_sample_at() */
} ecg_proto_samples;

typedef struct {
    uint32_t window_index;
    uint32_t first_sample;
    uint8_t status;        /* ECG_PROTO_STATUS_* */
    int8_t label;          /* -1 when not classified, else < num_logits */
    uint8_t num_logits;    /* 0 when not classified */
    const int8_t *logits;
    uint32_t time;
    uint8_t time_unit;     /* ECG_PROTO_TIME_* */
    uint8_t source;        /* ECG_PROTO_FROM_* */
    /* Sent by a device with ECG_PROTO_CAP_BEATS only (ecg_proto_encode_result_beats; the other encoder
     * does not read them): pipeline.signal.beats.window_rhythm's figures for the window, both unknown
     * or neither, unknown when the status is LEAD_OFF. The decoder sets has_rhythm (0: both unknown). */
    uint8_t has_rhythm;
    uint16_t hr_x10;          /* heart rate, bpm x 10; ECG_PROTO_HR_UNKNOWN */
    uint16_t rr_irregularity; /* mean |successive RR difference| / mean RR, per mille; ECG_PROTO_RR_IRREGULARITY_UNKNOWN */
} ecg_proto_result;

/* BEATS as decoded. */
typedef struct {
    uint8_t count;      /* 1..ECG_PROTO_MAX_BEATS */
    const uint8_t *raw; /* count sample indices, u32 LE: use ecg_proto_beat_at() */
} ecg_proto_beats;

typedef struct {
    uint16_t seq;     /* the host frame acknowledged */
    uint8_t type;     /* its type */
    uint16_t credits; /* replay samples the device can still queue */
} ecg_proto_ack;

typedef struct {
    uint8_t code; /* ECG_PROTO_ERR_* */
    uint16_t about_seq;
    ecg_proto_str message;
} ecg_proto_error;

typedef struct {
    uint8_t code; /* ECG_PROTO_CMD_* */
    uint32_t arg;
} ecg_proto_command;

typedef struct {
    uint32_t window_id;
    uint16_t offset, total;
    uint16_t len;       /* 1..ECG_PROTO_MAX_WINDOW_CHUNK, offset + len <= total */
    const int8_t *data;
} ecg_proto_window_chunk;

/* A frame that passed the header and CRC checks. */
typedef struct {
    uint8_t type;
    uint16_t seq;
    uint16_t len;
    const uint8_t *payload;
} ecg_proto_frame;

/* ---- helpers ---------------------------------------------------------------------------------- */

/* CRC-16/CCITT-FALSE: start with crc = ECG_PROTO_CRC_INIT. */
uint16_t ecg_proto_crc16(uint16_t crc, const uint8_t *data, size_t n);
/* A NUL-terminated string as a wire string (its length is checked by the encoders). */
ecg_proto_str ecg_proto_cstr(const char *s);
/* ADC value (bits 0..14, larger values saturate) and lead-off flag as one packed sample. */
uint16_t ecg_proto_pack_sample(uint16_t adc, int lead_off);
/* Packed sample i of a decoded SAMPLES / REPLAY_SAMPLES payload (i < count). */
uint16_t ecg_proto_sample_at(const ecg_proto_samples *s, unsigned i);
/* Sample index i of a decoded BEATS payload (i < count). */
uint32_t ecg_proto_beat_at(const ecg_proto_beats *b, unsigned i);
/* 2 * n hex digits (either case) into n bytes, e.g. ECG_MODEL_SHA256; 0 on success, -1 otherwise. */
int ecg_proto_hex_bytes(const char *hex, uint8_t *out, size_t n);

/* ---- encoders: frame must hold ECG_PROTO_MAX_FRAME bytes; return the frame length, 0 on a bad field */

typedef struct {
    uint16_t seq; /* sequence number of the next frame */
} ecg_proto_tx;

void ecg_proto_tx_init(ecg_proto_tx *tx);
/* Wrap the `len` payload bytes already at frame + ECG_PROTO_HEADER_BYTES as a frame of `type`. */
size_t ecg_proto_finish(ecg_proto_tx *tx, uint8_t *frame, uint8_t type, size_t len);

size_t ecg_proto_encode_info(ecg_proto_tx *tx, uint8_t *frame, const ecg_proto_info *m);
/* count <= ECG_PROTO_MAX_BATCH packed samples (ecg_proto_pack_sample). */
size_t ecg_proto_encode_samples(ecg_proto_tx *tx, uint8_t *frame, uint32_t first_sample, const uint16_t *packed, unsigned count);
/* RESULT of a device without ECG_PROTO_CAP_BEATS: the fields up to `source`. */
size_t ecg_proto_encode_result(ecg_proto_tx *tx, uint8_t *frame, const ecg_proto_result *m);
/* RESULT of a device with ECG_PROTO_CAP_BEATS: the same, then m->hr_x10 and m->rr_irregularity. */
size_t ecg_proto_encode_result_beats(ecg_proto_tx *tx, uint8_t *frame, const ecg_proto_result *m);
/* 1 <= count <= ECG_PROTO_MAX_BEATS sample indices (the SAMPLES counter) of beats the detector found. */
size_t ecg_proto_encode_beats(ecg_proto_tx *tx, uint8_t *frame, const uint32_t *samples, unsigned count);
size_t ecg_proto_encode_ack(ecg_proto_tx *tx, uint8_t *frame, const ecg_proto_ack *m);
size_t ecg_proto_encode_error(ecg_proto_tx *tx, uint8_t *frame, const ecg_proto_error *m);
size_t ecg_proto_encode_command(ecg_proto_tx *tx, uint8_t *frame, const ecg_proto_command *m);
size_t ecg_proto_encode_replay_samples(ecg_proto_tx *tx, uint8_t *frame, const uint16_t *packed, unsigned count);
size_t ecg_proto_encode_replay_window(ecg_proto_tx *tx, uint8_t *frame, const ecg_proto_window_chunk *m);

/* ---- decoders: 0 on success, else the ECG_PROTO_ERR_* code to answer with (BAD_LENGTH: the
 * payload does not hold its fields exactly; BAD_VALUE: a field is out of range) */

int ecg_proto_decode_info(const uint8_t *payload, size_t len, ecg_proto_info *out);
int ecg_proto_decode_samples(const uint8_t *payload, size_t len, ecg_proto_samples *out);
/* `capabilities`: the sending device's (its INFO's); with ECG_PROTO_CAP_BEATS hr_x10 and
 * rr_irregularity are required, without it refused; NULL (no INFO seen yet) takes either layout. */
int ecg_proto_decode_result(const uint8_t *payload, size_t len, const uint8_t *capabilities, ecg_proto_result *out);
int ecg_proto_decode_beats(const uint8_t *payload, size_t len, ecg_proto_beats *out);
int ecg_proto_decode_ack(const uint8_t *payload, size_t len, ecg_proto_ack *out);
int ecg_proto_decode_error(const uint8_t *payload, size_t len, ecg_proto_error *out);
int ecg_proto_decode_command(const uint8_t *payload, size_t len, ecg_proto_command *out);
int ecg_proto_decode_replay_samples(const uint8_t *payload, size_t len, ecg_proto_samples *out);
int ecg_proto_decode_replay_window(const uint8_t *payload, size_t len, ecg_proto_window_chunk *out);

/* ---- reader -------------------------------------------------------------------------------- */

typedef void (*ecg_proto_frame_fn)(void *ctx, const ecg_proto_frame *frame);

typedef struct {
    uint8_t buf[ECG_PROTO_MAX_FRAME];
    uint16_t start, len; /* buffered candidate: buf[start .. start + len) */
    uint32_t frames;        /* frames delivered */
    uint32_t dropped_bytes; /* bytes not part of a delivered frame */
    uint32_t crc_errors;    /* complete candidates whose CRC failed */
    uint32_t header_errors; /* candidates after a sync with a wrong version or too long a payload */
} ecg_proto_reader;

void ecg_proto_reader_init(ecg_proto_reader *r);
/* Take one byte; calls on_frame for every frame it completes (several when a rescan finds frames
 * already buffered). The frame is valid during the call only; on_frame must not push to r. */
void ecg_proto_reader_push(ecg_proto_reader *r, uint8_t byte, ecg_proto_frame_fn on_frame, void *ctx);
/* The line went idle (ECG_PROTO_IDLE_FLUSH_MS without a byte) inside a candidate: give it up, and
 * every later one, delivering the frames buffered behind it. Leaves the buffer empty. */
void ecg_proto_reader_flush(ecg_proto_reader *r, ecg_proto_frame_fn on_frame, void *ctx);

/* ---- REPLAY_WINDOW assembly -------------------------------------------------------------------- */

typedef struct {
    int8_t *dst;        /* the model input */
    uint16_t size;      /* its bytes: every chunk's total must equal it */
    uint16_t received;  /* bytes of the window being assembled */
    uint32_t window_id;
    int active;
} ecg_proto_window_rx;

void ecg_proto_window_rx_init(ecg_proto_window_rx *w, int8_t *dst, uint16_t size);
/* Chunks arrive in order; offset 0 starts a window (dropping an unfinished one). Returns 1 when the
 * window is complete in dst, 0 when more chunks are due, -1 when the chunk does not continue the
 * window (wrong total, id or offset: answer ECG_PROTO_ERR_WINDOW_CHUNK; the unfinished window is
 * dropped). */
int ecg_proto_window_rx_chunk(ecg_proto_window_rx *w, const ecg_proto_window_chunk *chunk);

#ifdef __cplusplus
}
#endif

#endif /* ECG_PROTOCOL_H */
