/* The device's band-pass (and optional notch): a causal biquad cascade with its state in double.
 *
 * Direct form II transposed, the same arithmetic order as scipy.signal.sosfilt. The state is
 * double because float32 state misses the 1e-4 z-score budget on drifting input (measured in
 * tests/test_preprocess.py). With ECG_FILTER_INIT_STEADY the state starts at the steady state of
 * the first sample after (re)start, so a DC offset gives no start-up step.
 */
#ifndef ECG_FILTER_H
#define ECG_FILTER_H

#include "ecg_generated.h"

typedef struct {
    double z[ECG_FILTER_SECTIONS][2];
    int started; /* 0 until the first sample after ecg_filter_restart() */
} ecg_filter;

/* Forget the state: the next sample starts the filter afresh. */
void ecg_filter_restart(ecg_filter *f);

/* Filter one sample (ADC counts as double); returns the filtered value. */
double ecg_filter_step(ecg_filter *f, double x);

#endif /* ECG_FILTER_H */
