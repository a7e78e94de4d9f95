/* rt_io files and console, the command line and exit through QEMU's Xtensa SIMCALLs. */
#include "rt_io.h"
#include "xt_internal.h"

#define ARGV_BYTES 2048u /* argv pointers and strings, as SYS_argv lays them out */

static uint32_t argv_words[ARGV_BYTES / 4u];

static uint32_t length(const char *s)
{
    const char *end = s;
    while (*end != '\0') {
        ++end;
    }
    return (uint32_t)(end - s);
}

void xt_write(const char *text)
{
    (void)xt_simcall(XT_SYS_WRITE, XT_CONSOLE_FD, (uint32_t)(uintptr_t)text, length(text));
}

void xt_write_hex(uint32_t value)
{
    char buf[9];
    int i;
    for (i = 0; i < 8; ++i) {
        buf[i] = "0123456789abcdef"[(value >> (28 - 4 * i)) & 0xFu];
    }
    buf[8] = '\0';
    xt_write(buf);
}

int xt_args(char ***argv)
{
    const uint32_t argc = xt_simcall(XT_SYS_ARGC, 0, 0, 0);
    const uint32_t bytes = xt_simcall(XT_SYS_ARGV_SZ, 0, 0, 0);
    if (argc == 0u || bytes > sizeof argv_words) {
        xt_write("xt fatal: no command line, or longer than 2048 bytes with its pointers\n");
        xt_exit(XT_FAULT_STATUS);
    }
    (void)xt_simcall(XT_SYS_ARGV, (uint32_t)(uintptr_t)argv_words, 0, 0);
    *argv = (char **)(void *)argv_words;
    return (int)argc;
}

void xt_exit(int status)
{
    if (status < 0 || status > 255) {
        status = 255; /* the host keeps 8 bits: 256 must not read as success */
    }
    (void)xt_simcall(XT_SYS_EXIT, (uint32_t)status, 0, 0);
    for (;;) {
    }
}

/* ------------------------------------------------------------------------------ rt_io files */

struct rt_file {
    uint32_t fd; /* the host's descriptor */
    int open;
};

#define RT_MAX_FILES 8
static struct rt_file files[RT_MAX_FILES];

rt_file *rt_open(const char *path, int write)
{
    size_t i;
    for (i = 0; i < RT_MAX_FILES; ++i) {
        if (!files[i].open) {
            files[i].fd = xt_simcall(XT_SYS_OPEN, (uint32_t)(uintptr_t)path,
                                     write ? XT_O_WRONLY_CREAT_TRUNC : XT_O_RDONLY, XT_FILE_MODE);
            files[i].open = files[i].fd != UINT32_MAX; /* -1: failure */
            return files[i].open ? &files[i] : NULL;
        }
    }
    return NULL;
}

/* SYS_read and SYS_write return the bytes moved, or -1. */
static size_t transfer(uint32_t op, rt_file *f, const void *buf, size_t n)
{
    size_t total = 0;
    while (total < n) { /* the host may move less than asked before the end of the file */
        const uint32_t done = xt_simcall(op, f->fd, (uint32_t)(uintptr_t)((const char *)buf + total),
                                         (uint32_t)(n - total));
        if (done == 0u || done == UINT32_MAX) {
            break;
        }
        total += done;
    }
    return total;
}

size_t rt_read(rt_file *f, void *buf, size_t n)
{
    return transfer(XT_SYS_READ, f, buf, n);
}

size_t rt_write(rt_file *f, const void *buf, size_t n)
{
    return transfer(XT_SYS_WRITE, f, buf, n);
}

int rt_close(rt_file *f)
{
    f->open = 0;
    return xt_simcall(XT_SYS_CLOSE, f->fd, 0, 0) == 0u ? 0 : -1;
}

void rt_log(const char *line)
{
    xt_write(line);
    xt_write("\n");
}
