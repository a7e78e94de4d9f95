/* What the platform self-tests share (harness/m4_selftest.c for the Cortex-M4, RV32 and the host;
 * platform/xtensa/selftest/xt_selftest.c): one console line built by appending, the echo of the
 * arguments, and a file copy through rt_io.h in blocks of a size that is not a power of two.
 * Include it in one file only. */
#ifndef SELFTEST_UTIL_H
#define SELFTEST_UTIL_H

#include <stdint.h>
#include <string.h>

#include "rt_io.h"

static unsigned char copy_buf[3000]; /* not a power of two: exercises partial blocks */
static char line[1200];

static inline void append(const char *text)
{
    strncat(line, text, sizeof line - strlen(line) - 1);
}

/* Appends `v` in decimal to `line`. */
static inline void append_u64(uint64_t v)
{
    char digits[21];
    char *p = digits + sizeof digits - 1;
    *p = '\0';
    do {
        *--p = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v != 0u);
    append(p);
}

/* Logs every argument as "arg I [TEXT]". */
static inline void echo_args(int argc, char **argv)
{
    int i;
    for (i = 0; i < argc; ++i) {
        line[0] = '\0';
        append("arg ");
        append_u64((uint64_t)i);
        append(" [");
        append(argv[i]);
        append("]");
        rt_log(line);
    }
}

/* Copies in_path to out_path through copy_buf and logs "copy bytes=N"; 0 on any failure (logged). */
static inline int copy_file(const char *in_path, const char *out_path)
{
    rt_file *in = rt_open(in_path, 0);
    rt_file *out;
    uint64_t total = 0;
    size_t n;
    int ok = 1;

    if (in == NULL) {
        rt_log("copy: cannot open input");
        return 0;
    }
    out = rt_open(out_path, 1);
    if (out == NULL) {
        rt_log("copy: cannot open output");
        (void)rt_close(in);
        return 0;
    }
    do {
        n = rt_read(in, copy_buf, sizeof copy_buf);
        if (n > 0u && rt_write(out, copy_buf, n) != n) {
            rt_log("copy: short write");
            ok = 0;
            break;
        }
        total += n;
    } while (n == sizeof copy_buf);
    ok = (rt_close(in) == 0) && ok;
    ok = (rt_close(out) == 0) && ok;
    line[0] = '\0';
    append("copy bytes=");
    append_u64(total);
    rt_log(line);
    return ok;
}

#endif /* SELFTEST_UTIL_H */
