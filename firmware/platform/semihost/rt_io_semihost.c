/* rt_io files and console under QEMU: semihosting (each platform has its own instruction counter). */
#include "rt_io.h"
#include "semihost.h"

struct rt_file {
    uint32_t handle; /* semihosting handle */
    int open;
};

#define RT_MAX_FILES 8
static struct rt_file files[RT_MAX_FILES];

rt_file *rt_open(const char *path, int write)
{
    size_t i;
    const char *end = path;
    uint32_t block[3];

    while (*end != '\0') {
        ++end;
    }
    for (i = 0; i < RT_MAX_FILES; ++i) {
        if (!files[i].open) {
            block[0] = (uint32_t)(uintptr_t)path;
            block[1] = write ? SH_MODE_WB : SH_MODE_RB;
            block[2] = (uint32_t)(end - path);
            files[i].handle = sh_call(SH_SYS_OPEN, (uintptr_t)block);
            files[i].open = files[i].handle != UINT32_MAX; /* -1: failure */
            return files[i].open ? &files[i] : NULL;
        }
    }
    return NULL;
}

/* SYS_READ and SYS_WRITE return the number of bytes NOT transferred. */
static size_t transfer(uint32_t op, rt_file *f, const void *buf, size_t n)
{
    uint32_t block[3];
    uint32_t left;
    block[0] = f->handle;
    block[1] = (uint32_t)(uintptr_t)buf;
    block[2] = (uint32_t)n;
    left = sh_call(op, (uintptr_t)block);
    return left <= n ? n - left : 0u;
}

size_t rt_read(rt_file *f, void *buf, size_t n)
{
    size_t total = 0;
    while (total < n) { /* a host may return less than asked before the end of the file */
        size_t got = transfer(SH_SYS_READ, f, (char *)buf + total, n - total);
        if (got == 0u) {
            break;
        }
        total += got;
    }
    return total;
}

size_t rt_write(rt_file *f, const void *buf, size_t n)
{
    return transfer(SH_SYS_WRITE, f, buf, n);
}

int rt_close(rt_file *f)
{
    uint32_t block[1];
    block[0] = f->handle;
    f->open = 0;
    return sh_call(SH_SYS_CLOSE, (uintptr_t)block) == 0u ? 0 : -1;
}

void rt_log(const char *line)
{
    sh_write0(line);
    sh_write0("\n");
}
