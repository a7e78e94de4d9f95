/* The newlib system layer for a heap-free program: no _sbrk memory, console output only.
 * Only what a libc function pulls in is linked (e.g. assert -> fprintf(stderr) -> _write). */
#include <errno.h>
#include <stddef.h>
#include <sys/stat.h>

#include "m4_platform.h"
#include "m4_internal.h"

void *_sbrk(ptrdiff_t increment);
int _write(int fd, const char *buf, int len);
int _read(int fd, char *buf, int len);
int _close(int fd);
int _lseek(int fd, int offset, int whence);
int _fstat(int fd, struct stat *st);
int _isatty(int fd);
int _getpid(void);
int _kill(int pid, int sig);
void _exit(int status);

/* No heap: malloc always fails (newlib stdio then stays unbuffered). */
void *_sbrk(ptrdiff_t increment)
{
    (void)increment;
    errno = ENOMEM;
    return (void *)-1;
}

/* stdout and stderr go to the semihosting console. */
int _write(int fd, const char *buf, int len)
{
    char chunk[65];
    int done = 0;
    if (fd != 1 && fd != 2) {
        errno = EBADF;
        return -1;
    }
    while (done < len) {
        int n = len - done < 64 ? len - done : 64;
        int i;
        for (i = 0; i < n; ++i) {
            chunk[i] = buf[done + i] != '\0' ? buf[done + i] : ' ';
        }
        chunk[n] = '\0';
        sh_write0(chunk);
        done += n;
    }
    return len;
}

int _read(int fd, char *buf, int len)
{
    (void)fd;
    (void)buf;
    (void)len;
    errno = EBADF;
    return -1;
}

int _close(int fd)
{
    (void)fd;
    errno = EBADF;
    return -1;
}

int _lseek(int fd, int offset, int whence)
{
    (void)fd;
    (void)offset;
    (void)whence;
    errno = ESPIPE;
    return -1;
}

int _fstat(int fd, struct stat *st)
{
    (void)fd;
    st->st_mode = S_IFCHR;
    return 0;
}

int _isatty(int fd)
{
    return fd >= 0 && fd <= 2;
}

int _getpid(void)
{
    return 1;
}

/* abort() raises SIGABRT: report it and stop with the fault status. */
int _kill(int pid, int sig)
{
    (void)pid;
    sh_write0("m4 fatal: signal ");
    sh_write_uint((uint32_t)sig, 10);
    sh_write0("\n");
    sh_exit(SH_FAULT_STATUS);
}

void _exit(int status)
{
    sh_exit(status);
}
