/* How every emulated platform (platform/m4, rv32, xtensa) finds QEMU's `-icount shift=S` at reset:
 * it times a loop of exactly 2 * RT_ICOUNT_CALIBRATION_LOOPS instructions in virtual ns, and the
 * shift is the one that best explains that time (one instruction takes 2^S ns). */
#ifndef RT_ICOUNT_H
#define RT_ICOUNT_H

#include <stdint.h>

#define RT_ICOUNT_CALIBRATION_LOOPS 4096u
#define RT_ICOUNT_MAX_SHIFT 10 /* QEMU's limit for -icount shift */

/* The shift whose 2^S ns per instruction is nearest to `ns` for the calibration loop. */
static inline int rt_icount_shift_of(uint64_t ns)
{
    uint64_t best_error = UINT64_MAX;
    int best = 0;
    int s;
    for (s = 0; s <= RT_ICOUNT_MAX_SHIFT; ++s) {
        const uint64_t expected = (uint64_t)(2u * RT_ICOUNT_CALIBRATION_LOOPS) << s;
        const uint64_t error = ns > expected ? ns - expected : expected - ns;
        if (error < best_error) {
            best_error = error;
            best = s;
        }
    }
    return best;
}

#endif /* RT_ICOUNT_H */
