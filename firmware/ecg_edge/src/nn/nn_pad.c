/* PAD of an int8 tensor (up to 4-D) with a constant: TFLM's reference_ops::Pad, row by row. */
#include "nn_kernels.h"

#include <string.h>

void nn_pad_s8(const nn_pad_params *p, const int8_t *input, int8_t *output)
{
    const int32_t *d = p->in_dims;
    const int32_t out1 = p->before[1] + d[1] + p->after[1];
    const int32_t out2 = p->before[2] + d[2] + p->after[2];
    const size_t row = (size_t)(p->before[3] + d[3] + p->after[3]);
    const size_t plane = (size_t)out2 * row;
    const size_t cube = (size_t)out1 * plane;
    const int8_t value = (int8_t)p->pad_value;
    int32_t i0, i1, i2;
    int8_t *out = output;
    /* leading padding of dimension 0 */
    memset(out, value, (size_t)p->before[0] * cube);
    out += (size_t)p->before[0] * cube;
    for (i0 = 0; i0 < d[0]; ++i0) {
        memset(out, value, (size_t)p->before[1] * plane);
        out += (size_t)p->before[1] * plane;
        for (i1 = 0; i1 < d[1]; ++i1) {
            memset(out, value, (size_t)p->before[2] * row);
            out += (size_t)p->before[2] * row;
            for (i2 = 0; i2 < d[2]; ++i2) {
                memset(out, value, (size_t)p->before[3]);
                out += p->before[3];
                memcpy(out, input, (size_t)d[3]);
                out += d[3];
                input += d[3];
                memset(out, value, (size_t)p->after[3]);
                out += p->after[3];
            }
            memset(out, value, (size_t)p->after[2] * row);
            out += (size_t)p->after[2] * row;
        }
        memset(out, value, (size_t)p->after[1] * plane);
        out += (size_t)p->after[1] * plane;
    }
    memset(out, value, (size_t)p->after[0] * cube);
}
