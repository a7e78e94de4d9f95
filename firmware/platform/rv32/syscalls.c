/* What picolibc needs from a heap-free program: no sbrk (malloc fails), abort and _exit end the
 * program through semihosting. No stdio: the harnesses print with rt_log. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#include "semihost.h"

void *sbrk(ptrdiff_t increment);
void _exit(int status);

void *sbrk(ptrdiff_t increment)
{
    (void)increment;
    errno = ENOMEM;
    return (void *)-1;
}

void abort(void)
{
    sh_write0(SH_FATAL "abort\n");
    sh_exit(SH_FAULT_STATUS);
}

void _exit(int status)
{
    sh_exit(status);
}
