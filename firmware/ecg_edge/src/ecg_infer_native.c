/* The native backend: nn/ kernels on the model blob generated from the bundle. */
#include "ecg_board.h"
#if !defined(ECG_BACKEND_TFLM) || !ECG_BACKEND_TFLM

#include <string.h>

#include "ecg_generated.h"
#include "ecg_infer.h"
#include "nn/nn_model.h"

/* int32-aligned: biases and scratch in the arena are read as int32. */
static union {
    int32_t align;
    int8_t bytes[ECG_NATIVE_ARENA_BYTES];
} arena;
static nn_model model;

/* The RAM budget of the generated ecg_config.h (export/ram.py) counts nn_model with a figure of its
 * own: on a 32-bit target it must not be smaller than the struct (C99: a negative array size). */
#if defined(ECG_RAM_MODEL_TABLE_BYTES) && defined(UINTPTR_MAX) && UINTPTR_MAX == 0xFFFFFFFFu
typedef char ecg_nn_model_fits_the_generated_ram_budget[sizeof(nn_model) <= ECG_RAM_MODEL_TABLE_BYTES ? 1 : -1];
typedef char ecg_arena_fits_the_generated_ram_budget[sizeof arena <= ECG_RAM_ARENA_BYTES ? 1 : -1];
#endif
static nn_status status = NN_OK;
static int ready;
static int shape_mismatch;

int ecg_infer_init(void)
{
    status = nn_model_init(&model, g_ecg_native_model, g_ecg_native_model_len, arena.bytes, sizeof arena.bytes);
    shape_mismatch = status == NN_OK && (nn_model_input_bytes(&model) != (size_t)ECG_WINDOW_SAMPLES * ECG_IN_LEADS ||
                                         nn_model_output_bytes(&model) != (size_t)ECG_NUM_LABELS);
    ready = status == NN_OK && !shape_mismatch;
    return ready ? 0 : -1;
}

int8_t *ecg_infer_input(void)
{
    return nn_model_input(&model);
}

int ecg_infer_run(int8_t *logits)
{
    if (!ready) {
        return -1;
    }
    status = nn_model_invoke(&model);
    if (status != NN_OK) {
        return -1;
    }
    memcpy(logits, nn_model_output(&model), ECG_NUM_LABELS);
    return 0;
}

const char *ecg_infer_backend(void)
{
    return "native";
}

const char *ecg_infer_error(void)
{
    return shape_mismatch ? "model input/output sizes differ from ecg_config.h" : nn_status_str(status);
}

#else
/* ISO C forbids an empty translation unit. */
typedef int ecg_infer_native_unused;
#endif
