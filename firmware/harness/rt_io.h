/* Platform services for the test harnesses (not used by the firmware itself).
 *
 * A harness program defines harness_main(); each platform (platform/host, platform/m4,
 * platform/rv32) provides main() or the reset handler, the command line, file access and an
 * instruction counter.
 * On the host these are stdio; on the Cortex-M4 and RV32 under QEMU they are semihosting calls.
 */
#ifndef RT_IO_H
#define RT_IO_H

#include <stddef.h>
#include <stdint.h>

/* The program: argv[0] is the program name. Returns the exit status. */
int harness_main(int argc, char **argv);

typedef struct rt_file rt_file;

/* Open `path` for binary reading (write == 0) or writing (write != 0, truncates); NULL on failure. */
rt_file *rt_open(const char *path, int write);
/* Bytes read (short only at end of file or on error). */
size_t rt_read(rt_file *f, void *buf, size_t n);
/* Bytes written (short only on error). */
size_t rt_write(rt_file *f, const void *buf, size_t n);
/* 0 on success. */
int rt_close(rt_file *f);
/* One line of text to the console (stderr on the host, the semihosting console under QEMU). */
void rt_log(const char *line);

/* Instruction counter: non-zero when rt_instructions() counts executed instructions
 * (Cortex-M4 and RV32 under QEMU -icount); 0 on the host, where it returns 0. */
int rt_counter_available(void);
/* Instructions executed since an arbitrary origin (64-bit, never wraps in practice). */
uint64_t rt_instructions(void);

#endif /* RT_IO_H */
