/* Small helpers the harness programs share (not part of the firmware). */
#ifndef HARNESS_UTIL_H
#define HARNESS_UTIL_H

#include <stdint.h>
#include <string.h>

#include "rt_io.h"

/* Log "<program>: <what><detail>" on the console and return 1 (the exit status of a failure). */
static inline int harness_fail(const char *program, const char *what, const char *detail)
{
    char line[200];
    line[0] = '\0';
    strncat(line, program, sizeof line - 1);
    strncat(line, ": ", sizeof line - strlen(line) - 1);
    strncat(line, what, sizeof line - strlen(line) - 1);
    strncat(line, detail, sizeof line - strlen(line) - 1);
    rt_log(line);
    return 1;
}

/* Store v little-endian at out[0..3]. */
static inline void harness_le32(uint8_t *out, uint32_t v)
{
    out[0] = (uint8_t)v;
    out[1] = (uint8_t)(v >> 8);
    out[2] = (uint8_t)(v >> 16);
    out[3] = (uint8_t)(v >> 24);
}

#endif /* HARNESS_UTIL_H */
