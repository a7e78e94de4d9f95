// The tflm backend: TensorFlow Lite Micro running the bundle's int8 flatbuffer.
// Built only with ECG_BACKEND_TFLM=1 in a toolchain that has the TFLM library (the Arduino
// "Arduino_TensorFlowLite"/"tflite-micro-arduino-examples" library, or ESP-IDF's esp-tflite-micro
// with ESP-NN). This repository's machines have no TFLM C++ sources, so this file is not built or
// tested here; the native backend is, bit-exact with TFLM's reference kernels.
#include "ecg_board.h"
#if defined(ECG_BACKEND_TFLM) && ECG_BACKEND_TFLM

#include <new>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

extern "C" {
#include "ecg_generated.h"
#include "ecg_infer.h"
}
#if __has_include("ecg_model_data.h")
#include "ecg_model_data.h"
#include "ecg_tflm_ops.h"
#else
#include "generated/ecg_model_data.h"
#include "generated/ecg_tflm_ops.h"
#endif

namespace {
alignas(16) uint8_t arena[ECG_TFLM_ARENA_BYTES];
alignas(tflite::MicroInterpreter) uint8_t interpreter_storage[sizeof(tflite::MicroInterpreter)];
tflite::MicroMutableOpResolver<ECG_TFLM_NUM_OPS> resolver;
tflite::MicroInterpreter *interpreter = nullptr;
const char *error_text = "not initialised";
}  // namespace

extern "C" int ecg_infer_init(void) {
  const tflite::Model *model = tflite::GetModel(g_model);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    error_text = "flatbuffer schema version differs from the TFLM library's";
    return -1;
  }
  ECG_TFLM_REGISTER_OPS(resolver)
  // Placement new into static storage: no heap.
  interpreter = new (interpreter_storage) tflite::MicroInterpreter(model, resolver, arena, sizeof arena);
  if (interpreter->AllocateTensors() != kTfLiteOk) {
    error_text = "AllocateTensors failed: ECG_TFLM_ARENA_BYTES too small or an op is missing";
    interpreter = nullptr;
    return -1;
  }
  error_text = "";
  return 0;
}

extern "C" int8_t *ecg_infer_input(void) {
  return interpreter ? interpreter->input(0)->data.int8 : nullptr;
}

extern "C" int ecg_infer_run(int8_t *logits) {
  if (!interpreter || interpreter->Invoke() != kTfLiteOk) {
    error_text = interpreter ? "Invoke failed" : error_text;
    return -1;
  }
  const int8_t *out = interpreter->output(0)->data.int8;
  for (int i = 0; i < ECG_NUM_LABELS; ++i) logits[i] = out[i];
  return 0;
}

extern "C" const char *ecg_infer_backend(void) { return "tflm"; }
extern "C" const char *ecg_infer_error(void) { return error_text; }

#endif  // ECG_BACKEND_TFLM
