/* Semihosting console, command line and exit (semihost.h). */
#include "semihost.h"

#include "rt_io.h"

#define ADP_STOPPED_APPLICATION_EXIT 0x20026u
#define ADP_STOPPED_RUN_TIME_ERROR 0x20023u

/* Limits mirrored in export/qemu.py. */
#define CMDLINE_BYTES 1024
#define MAX_ARGS 32

static char cmdline[CMDLINE_BYTES];
static char *args[MAX_ARGS + 1];
static char default_name[] = SH_PLATFORM_NAME;

void sh_write0(const char *text)
{
    (void)sh_call(SH_SYS_WRITE0, (uintptr_t)text);
}

void sh_write_uint(uint32_t value, unsigned base)
{
    char buf[12];
    char *p = buf + sizeof buf - 1;
    *p = '\0';
    do {
        *--p = "0123456789abcdef"[value % base];
        value /= base;
    } while (value != 0u);
    sh_write0(p);
}

/* Splits the command line in place. QEMU joins its `arg=` values with single spaces, so
 * export/qemu.py quotes an argument holding blanks, quotes or backslashes: "..." with \" and \\. */
static int split_args(char *s)
{
    int argc = 0;
    char *out = s;
    for (;;) {
        int quoted = 0;
        while (*s == ' ' || *s == '\t') {
            ++s;
        }
        if (*s == '\0') {
            return argc;
        }
        if (argc == MAX_ARGS) {
            return -1;
        }
        args[argc++] = out;
        while (*s != '\0' && (quoted || (*s != ' ' && *s != '\t'))) {
            if (*s == '"') {
                quoted = !quoted;
            } else if (quoted && *s == '\\' && (s[1] == '"' || s[1] == '\\')) {
                *out++ = *++s;
            } else {
                *out++ = *s;
            }
            ++s;
        }
        if (*s != '\0') {
            ++s;
        }
        *out++ = '\0';
    }
}

int sh_args(char ***argv)
{
    struct {
        char *buf;
        uint32_t len;
    } block;
    int argc;

    block.buf = cmdline;
    block.len = sizeof cmdline - 1u;
    if (sh_call(SH_SYS_GET_CMDLINE, (uintptr_t)&block) != 0u || block.len >= sizeof cmdline) {
        sh_write0(SH_FATAL "no command line, or longer than 1023 bytes\n");
        sh_exit(SH_FAULT_STATUS);
    }
    cmdline[block.len] = '\0';
    argc = split_args(cmdline);
    if (argc < 0) {
        sh_write0(SH_FATAL "more than 32 arguments\n");
        sh_exit(SH_FAULT_STATUS);
    }
    if (argc == 0) {
        args[argc++] = default_name;
    }
    args[argc] = 0;
    *argv = args;
    return argc;
}

void sh_exit(int status)
{
    uint32_t block[2];
    if (status < 0 || status > 255) {
        status = 255; /* the host keeps 8 bits: 256 must not read as success */
    }
    block[0] = ADP_STOPPED_APPLICATION_EXIT;
    block[1] = (uint32_t)status;
    (void)sh_call(SH_SYS_EXIT_EXTENDED, (uintptr_t)block);
    /* Only a host without SYS_EXIT_EXTENDED gets here: it can tell zero from non-zero only. */
    (void)sh_call(SH_SYS_EXIT,
                  status == 0 ? ADP_STOPPED_APPLICATION_EXIT : ADP_STOPPED_RUN_TIME_ERROR);
    for (;;) {
    }
}

size_t sh_stack_high_water(const uint32_t *base, const uint32_t *top)
{
    const uint32_t *p = base;
    while (p < top && *(const volatile uint32_t *)p == SH_STACK_PAINT) {
        ++p;
    }
    return (size_t)((uintptr_t)top - (uintptr_t)p);
}

void sh_run_main(const uint32_t *stack_base, const uint32_t *stack_top, const char *overflow)
{
    char **argv;
    const int argc = sh_args(&argv);
    const int status = harness_main(argc, argv);
    /* The paint reached down to the lowest word: the stack was used to its end. */
    if (sh_stack_high_water(stack_base, stack_top) >= (size_t)((uintptr_t)stack_top - (uintptr_t)stack_base)) {
        sh_write0(SH_FATAL);
        sh_write0(overflow);
        sh_exit(SH_FAULT_STATUS);
    }
    sh_exit(status);
}
