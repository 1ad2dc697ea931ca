/* The master's signal queue: see master_signals.h.  No Python in this file. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2 */
#endif
#include "master_signals.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#define CN_SIGQ_NSIG 65 /* signal numbers 1..64 fit in one byte and here */

/* Write end of the open queue's pipe, -1 when none: read by the handler. */
static volatile sig_atomic_t cn_sigq_wfd = -1;
/* Set by the handler when the pipe was full; cleared by cn_sigq_drain. */
static volatile sig_atomic_t cn_sigq_lost[CN_SIGQ_NSIG];

/* The handler: async-signal-safe, touches only errno, the pipe and the flags. */
static void
cn_sigq_handler(int signo)
{
    int saved_errno = errno;
    int fd = cn_sigq_wfd;
    unsigned char b = (unsigned char)signo;

    if (fd < 0 || write(fd, &b, 1) != 1) {
        if (signo > 0 && signo < CN_SIGQ_NSIG) {
            cn_sigq_lost[signo] = 1;
        }
    }
    errno = saved_errno;
}

static void
close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

int
cn_sigq_open(cn_sigq *q, const int *signos, int n)
{
    int fds[2];
    int i, err;
    struct sigaction sa, ign;

    q->rfd = q->wfd = -1;
    q->nsigs = 0;
    if (n < 0 || n > CN_SIGQ_MAX) {
        return -EINVAL;
    }
    for (i = 0; i < n; i++) {
        if (signos[i] <= 0 || signos[i] >= CN_SIGQ_NSIG
            || signos[i] == SIGPIPE) {
            return -EINVAL;
        }
    }
    if (cn_sigq_wfd != -1) {
        return -EBUSY;
    }
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
        return -errno;
    }
    q->rfd = fds[0];
    q->wfd = fds[1];
    for (i = 0; i < CN_SIGQ_NSIG; i++) {
        cn_sigq_lost[i] = 0;
    }
    cn_sigq_wfd = q->wfd;

    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    if (sigaction(SIGPIPE, &ign, &q->saved_pipe) < 0) {
        err = -errno;
        cn_sigq_wfd = -1;
        close_fd(&q->rfd);
        close_fd(&q->wfd);
        return err;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = cn_sigq_handler;
    sigemptyset(&sa.sa_mask);
    for (i = 0; i < n; i++) {
        /* A master handler never runs nested inside another one. */
        sigaddset(&sa.sa_mask, signos[i]);
    }
    for (i = 0; i < n; i++) {
        sa.sa_flags = SA_RESTART;
        if (signos[i] == SIGCHLD) {
            sa.sa_flags |= SA_NOCLDSTOP; /* a SIGSTOPped worker is not news */
        }
        if (sigaction(signos[i], &sa, &q->saved[i]) < 0) {
            err = -errno;
            cn_sigq_close(q);
            return err;
        }
        q->signos[i] = signos[i];
        q->nsigs = i + 1;
    }
    return 0;
}

void
cn_sigq_close(cn_sigq *q)
{
    int i;

    if (q->wfd < 0 && q->rfd < 0) {
        return;
    }
    for (i = 0; i < q->nsigs; i++) {
        sigaction(q->signos[i], &q->saved[i], NULL);
    }
    sigaction(SIGPIPE, &q->saved_pipe, NULL);
    q->nsigs = 0;
    cn_sigq_wfd = -1;
    close_fd(&q->rfd);
    close_fd(&q->wfd);
}

void
cn_sigq_child_reset(cn_sigq *q)
{
    int i;
    struct sigaction dfl;

    memset(&dfl, 0, sizeof(dfl));
    sigemptyset(&dfl.sa_mask);
    for (i = 0; i < q->nsigs; i++) {
        int s = q->signos[i];
        /* Until the child installs its own handlers, the master's broadcast
         * signals (USR1 reopen, ...) must not kill it by their default
         * action; TERM, QUIT, INT, CHLD keep theirs. */
        dfl.sa_handler = (s == SIGUSR1 || s == SIGUSR2 || s == SIGHUP
                          || s == SIGWINCH || s == SIGTTIN || s == SIGTTOU)
                         ? SIG_IGN : SIG_DFL;
        sigaction(s, &dfl, NULL);
    }
    sigaction(SIGPIPE, &q->saved_pipe, NULL);
    q->nsigs = 0;
    cn_sigq_wfd = -1;
    close_fd(&q->rfd);
    close_fd(&q->wfd);
}

int
cn_sigq_wait(cn_sigq *q, int timeout_ms)
{
    struct pollfd pfd;
    int rc;

    pfd.fd = q->rfd;
    pfd.events = POLLIN;
    pfd.revents = 0;
    rc = poll(&pfd, 1, timeout_ms < 0 ? 0 : timeout_ms);
    if (rc < 0) {
        return -errno;
    }
    return rc > 0 ? 1 : 0;
}

int
cn_sigq_drain(cn_sigq *q, int *out, int max)
{
    unsigned char buf[64];
    int n = 0, i;

    while (n < max) {
        size_t want = sizeof(buf);
        if ((size_t)(max - n) < want) {
            want = (size_t)(max - n);
        }
        ssize_t r = read(q->rfd, buf, want);
        if (r > 0) {
            for (i = 0; i < (int)r; i++) {
                out[n++] = buf[i];
            }
            continue;
        }
        if (r < 0 && errno == EINTR) {
            continue;
        }
        break; /* EAGAIN: empty */
    }
    for (i = 0; i < q->nsigs && n < max; i++) {
        int s = q->signos[i];
        if (cn_sigq_lost[s]) {
            cn_sigq_lost[s] = 0;
            out[n++] = s;
        }
    }
    return n;
}

int
cn_sigq_block(const cn_sigq *q, sigset_t *old)
{
    sigset_t set;
    int i;

    sigemptyset(&set);
    for (i = 0; i < q->nsigs; i++) {
        sigaddset(&set, q->signos[i]);
    }
    return -pthread_sigmask(SIG_BLOCK, &set, old);
}

int
cn_sigq_setmask(const sigset_t *old)
{
    return -pthread_sigmask(SIG_SETMASK, old, NULL);
}
