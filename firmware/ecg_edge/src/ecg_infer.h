/* One inference interface, two backends chosen at build time:
 *   native (default): our int8 kernels (nn/) running the generated model blob, any C99 compiler;
 *   tflm (ECG_BACKEND_TFLM=1): TensorFlow Lite Micro with the generated flatbuffer, for the
 *   Arduino/ESP-IDF builds that have the library (ESP-NN / CMSIS-NN speed). Not buildable here.
 * Both take the quantized window in the model's input tensor and give int8 logits.
 */
#ifndef ECG_INFER_H
#define ECG_INFER_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 0 on success; otherwise ecg_infer_error() says why (bad model, arena too small, ...). */
int ecg_infer_init(void);
/* The model's input: ECG_WINDOW_SAMPLES * ECG_IN_LEADS int8 values, written before ecg_infer_run(). */
int8_t *ecg_infer_input(void);
/* Run the model; logits gets ECG_NUM_LABELS int8 values. 0 on success. */
int ecg_infer_run(int8_t *logits);
/* "native" or "tflm". */
const char *ecg_infer_backend(void);
const char *ecg_infer_error(void);

#ifdef __cplusplus
}
#endif

#endif /* ECG_INFER_H */
