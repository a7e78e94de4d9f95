/* rt_io on the host: stdio files, stderr console, no instruction counter. */
#include <stdio.h>

#include "rt_io.h"

struct rt_file {
    FILE *fp;
};

/* One slot per open file keeps this heap-free like the device builds. */
#define RT_MAX_FILES 8
static struct rt_file files[RT_MAX_FILES];

rt_file *rt_open(const char *path, int write)
{
    size_t i;
    for (i = 0; i < RT_MAX_FILES; ++i) {
        if (files[i].fp == NULL) {
            files[i].fp = fopen(path, write ? "wb" : "rb");
            return files[i].fp != NULL ? &files[i] : NULL;
        }
    }
    return NULL;
}

size_t rt_read(rt_file *f, void *buf, size_t n)
{
    return fread(buf, 1, n, f->fp);
}

size_t rt_write(rt_file *f, const void *buf, size_t n)
{
    return fwrite(buf, 1, n, f->fp);
}

int rt_close(rt_file *f)
{
    int rc = fclose(f->fp);
    f->fp = NULL;
    return rc;
}

void rt_log(const char *line)
{
    fprintf(stderr, "%s\n", line);
}

int rt_counter_available(void)
{
    return 0;
}

uint64_t rt_instructions(void)
{
    return 0;
}

int main(int argc, char **argv)
{
    return harness_main(argc, argv);
}
