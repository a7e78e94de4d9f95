/* nn_runner: runs a native model blob (export/native_blob.py) over a file of quantized inputs.
 *
 *   nn_runner MODEL.bin INPUTS.bin OUTPUTS.bin [STATS.bin [OPSTATS.bin]]
 *
 * INPUTS holds N int8 inputs back to back (its size must be a whole number of inputs); OUTPUTS
 * receives the N int8 outputs. STATS receives one uint64 (little-endian) per inference: the
 * instructions it executed (Cortex-M4 under QEMU -icount); OPSTATS, N x ops uint64 (each op's
 * instructions, in op order). Where the platform has no instruction counter (the host), STATS and
 * OPSTATS are left empty and a line says so. Exit status: 0 ok, 1 usage or file error, 2 model
 * refused, 3 inference failed.
 *
 * Buffers are static (no heap): NN_RUNNER_BLOB_BYTES (default 256 KiB) and NN_RUNNER_ARENA_BYTES
 * (default 128 KiB).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "nn_model.h"
#include "rt_io.h"

#ifndef NN_RUNNER_BLOB_BYTES
#define NN_RUNNER_BLOB_BYTES (256UL * 1024UL)
#endif
#ifndef NN_RUNNER_ARENA_BYTES
#define NN_RUNNER_ARENA_BYTES (128UL * 1024UL)
#endif

/* uint32_t storage keeps both 4-byte aligned, as nn_model_init requires. */
static uint32_t blob_words[NN_RUNNER_BLOB_BYTES / 4u];
static uint32_t arena_words[NN_RUNNER_ARENA_BYTES / 4u];
static nn_model model;

/* ------------------------------------------------------------------ messages without printf */

typedef struct {
    char text[256];
    size_t len;
} line_buf;

static void put_str(line_buf *b, const char *s)
{
    while (*s != '\0' && b->len + 1u < sizeof b->text) {
        b->text[b->len++] = *s++;
    }
    b->text[b->len] = '\0';
}

static void put_u64(line_buf *b, uint64_t v)
{
    char digits[24];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v != 0u);
    while (n > 0u && b->len + 1u < sizeof b->text) {
        b->text[b->len++] = digits[--n];
    }
    b->text[b->len] = '\0';
}

static void say(const char *a, const char *b, const char *c)
{
    line_buf l;
    l.len = 0;
    l.text[0] = '\0';
    put_str(&l, "nn_runner: ");
    put_str(&l, a);
    put_str(&l, b);
    put_str(&l, c);
    rt_log(l.text);
}

/* ----------------------------------------------------------------------------- file helpers */

/* Reads up to `cap` bytes; returns the count, or cap + 1 if the file holds more. */
static size_t read_all(rt_file *f, uint8_t *buf, size_t cap)
{
    size_t total = 0;
    uint8_t extra;
    for (;;) {
        const size_t got = rt_read(f, buf + total, cap - total);
        total += got;
        if (got == 0u || total == cap) {
            break;
        }
    }
    if (total == cap && rt_read(f, &extra, 1) == 1u) {
        return cap + 1u;
    }
    return total;
}

static int write_u64(rt_file *f, uint64_t v)
{
    uint8_t b[8];
    int i;
    for (i = 0; i < 8; ++i) {
        b[i] = (uint8_t)(v >> (8 * i));
    }
    return f == NULL || rt_write(f, b, sizeof b) == sizeof b;
}

static int load_model(const char *path)
{
    uint8_t *blob = (uint8_t *)blob_words;
    rt_file *f = rt_open(path, 0);
    size_t len;
    nn_status s;
    if (f == NULL) {
        say("cannot open model ", path, "");
        return 1;
    }
    len = read_all(f, blob, sizeof blob_words);
    rt_close(f);
    if (len > sizeof blob_words) {
        say("model ", path, " is larger than NN_RUNNER_BLOB_BYTES; rebuild with a larger -DNN_RUNNER_BLOB_BYTES");
        return 1;
    }
    s = nn_model_init(&model, blob, len, (int8_t *)arena_words, sizeof arena_words);
    if (s != NN_OK) {
        line_buf l;
        l.len = 0;
        put_str(&l, "nn_runner: model ");
        put_str(&l, path);
        put_str(&l, " refused: ");
        put_str(&l, nn_status_str(s));
        if (nn_model_error_op(&model) >= 0) {
            put_str(&l, " (op record ");
            put_u64(&l, (uint64_t)nn_model_error_op(&model));
            put_str(&l, ")");
        }
        if (s == NN_ERR_ARENA) {
            put_str(&l, "; rebuild with a larger -DNN_RUNNER_ARENA_BYTES");
        }
        rt_log(l.text);
        return 2;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------ main */

typedef struct {
    rt_file *inputs, *outputs, *stats, *opstats;
} files;

static int close_all(files *fs, int status)
{
    rt_file **all[4];
    size_t i;
    all[0] = &fs->inputs;
    all[1] = &fs->outputs;
    all[2] = &fs->stats;
    all[3] = &fs->opstats;
    for (i = 0; i < 4u; ++i) {
        if (*all[i] != NULL && rt_close(*all[i]) != 0 && status == 0) {
            say("cannot close an output file (disk full?)", "", "");
            status = 1;
        }
        *all[i] = NULL;
    }
    return status;
}

static rt_file *open_or_complain(const char *path, int write)
{
    rt_file *f = rt_open(path, write);
    if (f == NULL) {
        say(write ? "cannot create " : "cannot open ", path, "");
    }
    return f;
}

/* One inference; per-op instruction counts when counting and `opstats` is open. */
static nn_status run_one(files *fs, int counting, uint64_t *total)
{
    const size_t n_ops = nn_model_op_count(&model);
    const uint64_t start = counting ? rt_instructions() : 0u;
    nn_status s = NN_OK;
    size_t i;
    if (!counting || fs->opstats == NULL) {
        s = nn_model_invoke(&model);
    } else {
        for (i = 0; i < n_ops && s == NN_OK; ++i) {
            const uint64_t t0 = rt_instructions();
            s = nn_model_invoke_op(&model, i);
            if (!write_u64(fs->opstats, rt_instructions() - t0)) {
                say("cannot write per-op stats", "", "");
                return NN_ERR_ARG;
            }
        }
    }
    *total = counting ? rt_instructions() - start : 0u;
    return s;
}

int harness_main(int argc, char **argv)
{
    files fs;
    size_t in_bytes, out_bytes;
    uint64_t n = 0;
    int counting, status;
    line_buf l;
    memset(&fs, 0, sizeof fs);
    if (argc < 4 || argc > 6) {
        rt_log("usage: nn_runner MODEL.bin INPUTS.bin OUTPUTS.bin [STATS.bin [OPSTATS.bin]]");
        return 1;
    }
    status = load_model(argv[1]);
    if (status != 0) {
        return status;
    }
    in_bytes = nn_model_input_bytes(&model);
    out_bytes = nn_model_output_bytes(&model);
    counting = rt_counter_available();
    fs.inputs = open_or_complain(argv[2], 0);
    fs.outputs = fs.inputs != NULL ? open_or_complain(argv[3], 1) : NULL;
    if (fs.outputs != NULL && argc >= 5) {
        fs.stats = open_or_complain(argv[4], 1);
        if (fs.stats != NULL && argc == 6) {
            fs.opstats = open_or_complain(argv[5], 1);
        }
    }
    if (fs.inputs == NULL || fs.outputs == NULL || (argc >= 5 && fs.stats == NULL) || (argc == 6 && fs.opstats == NULL)) {
        return close_all(&fs, 1);
    }
    if (argc >= 5 && !counting) {
        say("no instruction counter on this platform; STATS left empty", "", "");
    }
    for (;;) {
        uint64_t instructions = 0;
        const size_t got = rt_read(fs.inputs, nn_model_input(&model), in_bytes);
        nn_status s;
        if (got == 0u) {
            break;
        }
        if (got != in_bytes) {
            l.len = 0;
            put_str(&l, "nn_runner: ");
            put_str(&l, argv[2]);
            put_str(&l, " is not a whole number of inputs of ");
            put_u64(&l, in_bytes);
            put_str(&l, " bytes (");
            put_u64(&l, got);
            put_str(&l, " bytes left over)");
            rt_log(l.text);
            return close_all(&fs, 1);
        }
        s = run_one(&fs, counting, &instructions);
        if (s != NN_OK) {
            say("inference failed: ", nn_status_str(s), "");
            return close_all(&fs, 3);
        }
        if (rt_write(fs.outputs, nn_model_output(&model), out_bytes) != out_bytes || (counting && !write_u64(fs.stats, instructions))) {
            say("cannot write ", argv[3], " or the stats");
            return close_all(&fs, 1);
        }
        ++n;
    }
    l.len = 0;
    put_str(&l, "nn_runner: ");
    put_u64(&l, n);
    put_str(&l, " inferences, ");
    put_u64(&l, nn_model_op_count(&model));
    put_str(&l, " ops, arena ");
    put_u64(&l, nn_model_arena_bytes(&model));
    put_str(&l, " B, ");
    put_u64(&l, nn_model_macs(&model));
    put_str(&l, " MACs per inference");
    rt_log(l.text);
    return close_all(&fs, 0);
}
