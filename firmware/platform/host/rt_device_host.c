#define _POSIX_C_SOURCE 200809L
/* rt_device on a POSIX host: see rt_device.h. The sample "interrupt" is the signal handler of a
 * POSIX interval timer, so it interrupts the main loop exactly like an ISR on a one-core MCU (one
 * thread: the ring's volatile indices are all the synchronisation needed). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "rt_device.h"

#define TIMER_SIGNAL SIGALRM
#define WRITE_WAIT_MS 50
#define MIN_TIMER_PERIOD_NS 500000L /* a faster clock takes several ticks per interrupt (at most 2 kHz of signals) */

static int serial_fd = -1;
static int serial_hangup;         /* the other side of a pty is closed */
static uint32_t serial_dropped;
static int serial_stuck;          /* the last wait for room timed out */
static char error_text[160];

static timer_t timer_id;
static int timer_running;
static rt_device_tick_fn tick_fn;
static volatile uint32_t ticks;
static volatile sig_atomic_t stop_requested;

/* rt_device_set_speed: device time = start + speed * (real time - start). */
static double speed = 1.0;
static uint64_t speed_start_ns;
static double ticks_per_expiry = 1.0; /* device ticks per timer expiry */
static uint64_t expiries, ticks_done;

static void set_error(const char *what, const char *detail)
{
    snprintf(error_text, sizeof error_text, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
}

const char *rt_device_error(void)
{
    return error_text;
}

static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The device's clock: real time, or scaled by rt_device_set_speed. */
static uint64_t device_ns(void)
{
    const uint64_t now = monotonic_ns();
    if (speed == 1.0 || now < speed_start_ns) {
        return now;
    }
    return speed_start_ns + (uint64_t)((double)(now - speed_start_ns) * speed);
}

int rt_device_set_speed(uint32_t num, uint32_t den)
{
    if (num == 0u || den == 0u) {
        set_error("bad speed", NULL);
        return -1;
    }
    if (timer_running) {
        set_error("the speed is set before the timer starts", NULL);
        return -1;
    }
    speed = (double)num / (double)den;
    speed_start_ns = monotonic_ns();
    return 0;
}

uint32_t rt_device_millis(void)
{
    return (uint32_t)(device_ns() / 1000000u);
}

uint32_t rt_device_clock(void)
{
    return (uint32_t)(device_ns() / 1000u);
}

uint8_t rt_device_clock_unit(void)
{
    return 0; /* microseconds */
}

/* ---- serial ------------------------------------------------------------------------------------ */

/* Raw mode: no echo, no line editing, no character translation, 8 bits (what cfmakeraw does). */
static int make_raw(int fd)
{
    struct termios t;
    if (tcgetattr(fd, &t) != 0) {
        return -1;
    }
    t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON | IXOFF);
    t.c_oflag &= ~(tcflag_t)OPOST;
    t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB);
    t.c_cflag |= CS8 | CREAD | CLOCAL;
    t.c_cc[VMIN] = 0;
    t.c_cc[VTIME] = 0;
    return tcsetattr(fd, TCSANOW, &t);
}

int rt_device_serial_open(const char *spec)
{
    int fd, flags;
    if (spec == NULL || *spec == '\0') {
        set_error("no serial link given", NULL);
        return -1;
    }
    if (strncmp(spec, "fd:", 3) == 0) {
        char *end;
        long v = strtol(spec + 3, &end, 10);
        if (*end != '\0' || v < 0 || v > 65535 || fcntl((int)v, F_GETFD) < 0) {
            set_error("not an open file descriptor", spec);
            return -1;
        }
        fd = (int)v;
    } else {
        fd = open(spec, O_RDWR | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
            set_error(spec, strerror(errno));
            return -1;
        }
    }
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        set_error(spec, strerror(errno));
        return -1;
    }
    if (isatty(fd) && make_raw(fd) != 0) {
        set_error(spec, strerror(errno));
        return -1;
    }
    serial_fd = fd;
    return 0;
}

size_t rt_device_serial_read(uint8_t *buf, size_t n)
{
    ssize_t got;
    if (serial_fd < 0 || n == 0) {
        return 0;
    }
    got = read(serial_fd, buf, n);
    if (got > 0) {
        serial_hangup = 0;
        return (size_t)got;
    }
    /* EIO: the slave side of our pty is closed (nobody connected); 0: end of a file or socket. */
    if (got == 0 || errno == EIO) {
        serial_hangup = 1;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        serial_hangup = 0; /* connected, nothing waiting */
    }
    return 0;
}

/* Wait up to `ms` for room to write; 1 when writable, 0 on timeout or when nobody is connected. */
static int wait_writable(int ms)
{
    const uint64_t deadline = monotonic_ns() + (uint64_t)ms * 1000000u;
    for (;;) {
        struct pollfd p;
        uint64_t now = monotonic_ns();
        int rc;
        p.fd = serial_fd;
        p.events = POLLOUT;
        p.revents = 0;
        rc = poll(&p, 1, now >= deadline ? 0 : (int)((deadline - now + 999999u) / 1000000u));
        if (rc < 0 && errno == EINTR) {
            if (monotonic_ns() >= deadline) {
                return 0;
            }
            continue; /* the timer signal */
        }
        if (rc <= 0) {
            return 0;
        }
        if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) {
            serial_hangup = 1;
            return 0;
        }
        return (p.revents & POLLOUT) != 0;
    }
}

void rt_device_serial_write(const uint8_t *data, size_t n)
{
    size_t done = 0;
    if (serial_fd < 0) {
        return;
    }
    /* Nobody on the other side of the pty: drop (bytes written now would reach whoever opens it
     * much later, out of date). */
    {
        struct pollfd p;
        p.fd = serial_fd;
        p.events = POLLOUT;
        p.revents = 0;
        if (poll(&p, 1, 0) > 0 && (p.revents & POLLHUP)) {
            serial_hangup = 1;
            serial_dropped += (uint32_t)n;
            return;
        }
    }
    while (done < n) {
        ssize_t w = write(serial_fd, data + done, n - done);
        if (w > 0) {
            done += (size_t)w;
            serial_stuck = 0;
            continue;
        }
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !serial_stuck && wait_writable(WRITE_WAIT_MS)) {
            continue;
        }
        /* A client that does not read: drop, and drop at once until the line moves again. */
        serial_stuck = 1;
        serial_dropped += (uint32_t)(n - done);
        return;
    }
}

uint32_t rt_device_serial_dropped(void)
{
    return serial_dropped;
}

/* ---- timer and signals --------------------------------------------------------------------------- */

static void on_timer(int sig)
{
    const int saved = errno;
    int runs = 1 + timer_getoverrun(timer_id); /* expiries while the signal was pending */
    uint64_t due;
    (void)sig;
    if (runs < 1) {
        runs = 1;
    }
    expiries += (uint64_t)runs;
    due = (uint64_t)((double)expiries * ticks_per_expiry); /* 1 per expiry at speed 1 */
    while (ticks_done < due) {
        ticks_done++;
        ticks = ticks + 1u;
        if (tick_fn != NULL) {
            tick_fn();
        }
    }
    errno = saved;
}

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

int rt_device_timer_start(uint32_t hz, rt_device_tick_fn fn)
{
    struct sigaction sa;
    struct sigevent ev;
    struct itimerspec its;
    long period_ns = hz > 0 ? (long)(1000000000.0 / ((double)hz * speed) + 0.5) : 0;

    if (period_ns < MIN_TIMER_PERIOD_NS && hz > 0) {
        period_ns = MIN_TIMER_PERIOD_NS;
    }
    if (period_ns <= 0) {
        set_error("bad timer rate", NULL);
        return -1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    tick_fn = fn;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_timer;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(TIMER_SIGNAL, &sa, NULL) != 0) {
        set_error("sigaction", strerror(errno));
        return -1;
    }
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = TIMER_SIGNAL;
    if (timer_create(CLOCK_MONOTONIC, &ev, &timer_id) != 0) {
        set_error("timer_create", strerror(errno));
        return -1;
    }
    ticks_per_expiry = (double)period_ns * speed * (double)hz / 1e9;
    expiries = ticks_done = 0;
    /* Expiries at start + k * period on CLOCK_MONOTONIC: the rate never drifts. */
    its.it_interval.tv_sec = period_ns / 1000000000L;
    its.it_interval.tv_nsec = period_ns % 1000000000L;
    its.it_value = its.it_interval;
    if (timer_settime(timer_id, 0, &its, NULL) != 0) {
        set_error("timer_settime", strerror(errno));
        timer_delete(timer_id);
        return -1;
    }
    timer_running = 1;
    return 0;
}

void rt_device_timer_stop(void)
{
    if (timer_running) {
        timer_delete(timer_id);
        timer_running = 0;
    }
}

uint32_t rt_device_ticks(void)
{
    return ticks;
}

int rt_device_stop_requested(void)
{
    return stop_requested != 0;
}

void rt_device_idle(uint32_t ticks_seen)
{
    sigset_t block, old;
    fd_set rd;
    struct timespec timeout;
    int nfds = 0;

    sigemptyset(&block);
    sigaddset(&block, TIMER_SIGNAL);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &old);
    if (ticks == ticks_seen && !stop_requested) {
        FD_ZERO(&rd);
        /* A closed pty reads as EIO at once: then only the timer wakes us (and the next read
         * notices a new connection). */
        if (serial_fd >= 0 && !serial_hangup) {
            FD_SET(serial_fd, &rd);
            nfds = serial_fd + 1;
        }
        timeout.tv_sec = 0;
        timeout.tv_nsec = 100000000L;
        /* Atomically unblocks the timer signal while waiting: no lost wake-up. */
        (void)pselect(nfds, &rd, NULL, NULL, &timeout, &old);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
}

size_t rt_device_stack_used(void)
{
    return 0;
}
