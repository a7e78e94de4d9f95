/* Arduino IDE builds have no per-project flags: keep a*b+c unfused so float32 results match numpy. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "ecg_filter.h"

static const double sos[ECG_FILTER_SECTIONS][6] = ECG_FILTER_SOS;
static const double zi_unit[ECG_FILTER_SECTIONS][2] = ECG_FILTER_ZI;

void ecg_filter_restart(ecg_filter *f)
{
    int s;
    for (s = 0; s < ECG_FILTER_SECTIONS; ++s) {
        f->z[s][0] = 0.0;
        f->z[s][1] = 0.0;
    }
    f->started = 0;
}

double ecg_filter_step(ecg_filter *f, double x)
{
    int s;
    if (!f->started) {
        for (s = 0; s < ECG_FILTER_SECTIONS; ++s) {
            f->z[s][0] = ECG_FILTER_INIT_STEADY ? zi_unit[s][0] * x : 0.0;
            f->z[s][1] = ECG_FILTER_INIT_STEADY ? zi_unit[s][1] * x : 0.0;
        }
        f->started = 1;
    }
    for (s = 0; s < ECG_FILTER_SECTIONS; ++s) {
        const double y = sos[s][0] * x + f->z[s][0];
        f->z[s][0] = sos[s][1] * x - sos[s][4] * y + f->z[s][1];
        f->z[s][1] = sos[s][2] * x - sos[s][5] * y;
        x = y;
    }
    return x;
}
