/* Connection I/O for the blocking-style worker (sync): receive into the
 * connection's buffer, read the head and the body through the parser, send
 * with writev and sendfile, close with a lingering drain when unread request
 * bytes could otherwise turn the close into a reset.
 *
 * Sockets are non-blocking; a syscall is tried first and poll() waits only on
 * EAGAIN, in slices of at most a second so the heartbeat keeps beating while a
 * slow client is served.  Every function here is called with the GIL and
 * releases it around syscalls and waits (no Python API in between). */
#include "conn.h"

#include "connio.h"
#include "heartbeat.h"
#include "module.h"
#include "parser.h"
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <unistd.h>

#define CN_READ_CHUNK 16384
#define CN_INITIAL_BUF 8192
#define CN_LINGER_MS 1000
#define CN_LINGER_BYTES (256 * 1024)
#define CN_SEND_HOLDING_GIL (64 * 1024) /* see cn_conn_sendv */
#define CN_CORK_MAX (64 * 1024)         /* held back at most */

/* Release the GIL around blocking I/O, unless the worker waits
 * cooperatively (gevent: the GIL stays held and coop_wait switches to the
 * hub).  Used in pairs within one block. */
#define CN_IO_BEGIN(c)                                        \
    {                                                         \
        PyThreadState *cn_save_ = NULL;                       \
        if ((c)->w->coop_wait == NULL) {                      \
            cn_save_ = PyEval_SaveThread();                   \
        }
#define CN_IO_END(c)                                          \
        if (cn_save_ != NULL) {                               \
            PyEval_RestoreThread(cn_save_);                   \
        }                                                     \
    }

/* Wait until fd is ready for `events` or `timeout_ms` passes, beating the
 * heartbeat each second.  No GIL (caller released it), except in a
 * cooperative worker, where coop_wait runs with the GIL.  0, -ETIMEDOUT or
 * -errno. */
static int
wait_fd(cn_conn *c, short events, int timeout_ms)
{
    if (c->w->coop_wait != NULL) {
        return c->w->coop_wait(c->w, c->fd, events, timeout_ms);
    }
    uint64_t deadline = cn_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        uint64_t now = cn_now_ms();
        if (timeout_ms > 0 && now >= deadline) {
            return -ETIMEDOUT;
        }
        int slice = 1000;
        if (timeout_ms > 0 && deadline - now < (uint64_t)slice) {
            slice = (int)(deadline - now);
        }
        struct pollfd pfd = {.fd = c->fd, .events = events};
        int r = poll(&pfd, 1, slice);
        cn_heartbeat_beat(c->w->heartbeats, c->w->slot);
        if (r > 0) {
            return 0;
        }
        if (r < 0 && errno != EINTR) {
            return -errno;
        }
        if (cn_worker_quitting()) {
            return -EINTR;
        }
    }
}

/* cn_conn_recv without touching the GIL: the caller released it. */
static int
recv_nogil(cn_conn *c, size_t limit, int timeout_ms)
{
    if (c->len == c->cap) {
        if (c->cap >= limit) {
            return -ENOBUFS;
        }
        size_t cap = c->cap ? c->cap * 2 : CN_INITIAL_BUF;
        if (cap > limit) {
            cap = limit;
        }
        char *b = realloc(c->buf, cap);
        if (b == NULL) {
            return -ENOMEM;
        }
        /* The head's pointers are into the old buffer: only grow between
         * requests or while the head is incomplete (no pointers yet). */
        c->buf = b;
        c->cap = cap;
    }
    ssize_t n;
    int err = 0;
    for (;;) {
        n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n >= 0) {
            break;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            err = -errno;
            break;
        }
        err = wait_fd(c, POLLIN, timeout_ms);
        if (err < 0) {
            break;
        }
    }
    if (err < 0) {
        return err;
    }
    if (n == 0) {
        c->eof = 1;
        return 0;
    }
    c->len += (size_t)n;
    return (int)n;
}

/* Stop holding output back (cn_conn_cork_flush), sending what is held, as
 * any other I/O on the connection must first.  0 or -errno.  CN_GIL. */
static int
uncork(cn_conn *c)
{
    if (!c->corking && c->cork_len == 0) {
        return 0;
    }
    int r = cn_conn_cork_flush(c, 1);
    return r < 0 ? r : 0;
}

int
cn_conn_recv(cn_conn *c, size_t limit, int timeout_ms)
{
    int r = uncork(c); /* never wait for the client with its output held */
    if (r < 0) {
        return r;
    }
    CN_IO_BEGIN(c)
    r = recv_nogil(c, limit, timeout_ms);
    CN_IO_END(c)
    return r;
}

void
cn_conn_compact(cn_conn *c)
{
    if (c->pos == 0) {
        return;
    }
    memmove(c->buf, c->buf + c->pos, c->len - c->pos);
    c->len -= c->pos;
    c->pos = 0;
}

int
cn_conn_read_head(cn_conn *c, const cn_limits *l, int timeout_ms)
{
    int r;
    /* Receiving and parsing need no Python: one GIL release for the lot. */
    CN_IO_BEGIN(c)
    cn_conn_compact(c);
    cn_parse_begin(c, l);
    size_t limit = cn_max_head_size(l);
    for (;;) {
        r = cn_parse_head(c, l);
        if (r != 0) {
            break;
        }
        if (c->eof) {
            r = c->len == c->head_start ? 0 : -2;
            break;
        }
        int n = recv_nogil(c, limit, timeout_ms);
        if (n == 0) {
            r = c->len == c->head_start ? 0 : -2;
            break;
        }
        if (n == -ENOBUFS) {
            c->error_status = c->nlines == 0 ? 400 : 431;
            c->error_reason = c->nlines == 0 ? "Request Line is too large"
                                             : "Request Header Fields Too Large";
            r = -1;
            break;
        }
        if (n < 0) {
            r = -3;
            break;
        }
    }
    CN_IO_END(c)
    return r;
}

/* Send "100 Continue" once, the first time the app reads a body it was
 * promised.  0 or -errno. */
static int
send_continue(cn_conn *c)
{
    static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
    c->continue_sent = 1;
    if (c->pos < c->len) {
        return 0; /* the client sent the body anyway */
    }
    struct iovec iov = {.iov_base = (void *)msg, .iov_len = sizeof(msg) - 1};
    return cn_conn_sendv(c, &iov, 1);
}

Py_ssize_t
cn_conn_read_body(cn_conn *c, char *dst, size_t n)
{
    cn_state *st = c->w->st;
    if (c->expect_continue && !c->continue_sent && !c->body_done) {
        int r = send_continue(c);
        if (r < 0) {
            errno = -r;
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
    }
    for (;;) {
        size_t have = c->body_len - c->body_pos;
        if (have > 0) {
            size_t k = have < n ? have : n;
            memcpy(dst, c->body + c->body_pos, k);
            c->body_pos += k;
            if (c->body_pos == c->body_len) {
                c->body_pos = c->body_len = 0;
            }
            return (Py_ssize_t)k;
        }
        if (c->body_done) {
            return 0;
        }
        if (c->body_error) {
            break;
        }
        if (c->pos < c->len) {
            int r = cn_parse_body(c);
            if (r < 0) {
                break;
            }
            if (r > 0) {
                continue;
            }
        }
        /* Need more bytes: keep the unparsed tail, reuse the buffer. */
        cn_conn_compact(c);
        if (c->cap == 0) {
            c->buf = malloc(CN_READ_CHUNK);
            if (c->buf == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            c->cap = CN_READ_CHUNK;
        }
        int r = cn_conn_recv(c, c->cap > CN_READ_CHUNK ? c->cap : CN_READ_CHUNK,
                             c->w->timeout_ms);
        if (r == 0) {
            c->body_error = CN_BODY_EOF;
            c->must_close = 1;
            PyErr_SetString(st->no_more_data,
                            "client closed the connection before the request "
                            "body ended");
            return -1;
        }
        if (r < 0) {
            c->body_error = r == -ETIMEDOUT ? CN_BODY_TIMEOUT : CN_BODY_IOERR;
            c->must_close = 1;
            if (c->w->coop_exc != NULL && c->w->coop_exc(c->w, c->fd)) {
                return -1; /* the app's own exception, thrown into the wait */
            }
            if (r == -ETIMEDOUT) {
                PyErr_SetString(PyExc_TimeoutError, "timed out reading the request body");
            }
            else {
                errno = -r;
                PyErr_SetFromErrno(PyExc_OSError);
            }
            return -1;
        }
    }
    if (c->body_error == CN_BODY_INVALID) {
        PyErr_Format(st->invalid_chunk, "invalid request body: %s",
                     c->error_reason ? c->error_reason : "malformed");
    }
    else if (c->body_error == CN_BODY_EOF) {
        PyErr_SetString(st->no_more_data, "request body ended early");
    }
    else {
        PyErr_SetString(PyExc_OSError, "request body unavailable after an error");
    }
    return -1;
}

/* Drop the n bytes writev sent from the front of *iov. */
static void
iov_advance(struct iovec **iov, int *iovcnt, size_t n)
{
    while (*iovcnt > 0 && n >= (*iov)->iov_len) {
        n -= (*iov)->iov_len;
        (*iov)++;
        (*iovcnt)--;
    }
    if (*iovcnt > 0) {
        (*iov)->iov_base = (char *)(*iov)->iov_base + n;
        (*iov)->iov_len -= n;
    }
}

void
cn_conn_nonblocking(cn_conn *c)
{
    int fl = fcntl(c->fd, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK)) {
        (void)fcntl(c->fd, F_SETFL, fl | O_NONBLOCK);
    }
}

/* Hold iov's `bytes` back: 1, or 0 when they do not fit (or no memory):
 * the caller sends them, after what is held. */
static int
cork_append(cn_conn *c, const struct iovec *iov, int iovcnt, size_t bytes)
{
    if (c->cork_len + bytes > CN_CORK_MAX) {
        return 0;
    }
    if (c->cork_len + bytes > c->cork_cap) {
        size_t cap = c->cork_cap ? c->cork_cap : 4096;
        while (cap < c->cork_len + bytes) {
            cap *= 2;
        }
        char *b = realloc(c->cork, cap);
        if (b == NULL) {
            return 0;
        }
        c->cork = b;
        c->cork_cap = cap;
    }
    for (int i = 0; i < iovcnt; i++) {
        memcpy(c->cork + c->cork_len, iov[i].iov_base, iov[i].iov_len);
        c->cork_len += iov[i].iov_len;
    }
    return 1;
}

int
cn_conn_cork_flush(cn_conn *c, int may_wait)
{
    /* taken off the connection first: cn_conn_sendv below must not see it */
    char *buf = c->cork;
    size_t len = c->cork_len, cap = c->cork_cap, off = 0;
    c->cork = NULL;
    c->cork_len = c->cork_cap = 0;
    c->corking = 0;
    int err = 0;
    while (off < len) {
        ssize_t n = write(c->fd, buf + off, len - off);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!may_wait) {
                /* the rest stays held, for a flush that may wait */
                memmove(buf, buf + off, len - off);
                c->cork = buf;
                c->cork_len = len - off;
                c->cork_cap = cap;
                return 0;
            }
            struct iovec iov = {.iov_base = buf + off, .iov_len = len - off};
            err = cn_conn_sendv(c, &iov, 1); /* waits, GIL released */
            break;
        }
        err = n < 0 ? -errno : -EPIPE;
        break;
    }
    free(buf);
    if (err < 0) {
        c->must_close = 1;
        return err;
    }
    return 1;
}

int
cn_conn_sendv(cn_conn *c, struct iovec *iov, int iovcnt)
{
    size_t bytes = 0;
    for (int i = 0; i < iovcnt; i++) {
        bytes += iov[i].iov_len;
    }
    if (c->corking && cork_append(c, iov, iovcnt, bytes)) {
        return 0;
    }
    int f = uncork(c); /* too big to hold: what is held first, then this */
    if (f < 0) {
        return f;
    }
    /* A response that fits the socket's buffer is sent with the GIL held:
     * the socket is non-blocking, the copy takes microseconds, and giving
     * the GIL up costs taking it back, which under contention (the gthread
     * worker's pool beside GIL-free inference) waits up to the interpreter's
     * switch interval.  The GIL goes only to wait, or to copy a large one. */
    if (bytes <= CN_SEND_HOLDING_GIL) {
        ssize_t n;
        do {
            n = writev(c->fd, iov, iovcnt > IOV_MAX ? IOV_MAX : iovcnt);
        } while (n < 0 && errno == EINTR);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            c->must_close = 1;
            return -errno;
        }
        if (n > 0) {
            iov_advance(&iov, &iovcnt, (size_t)n);
        }
        if (iovcnt == 0) {
            return 0;
        }
    }
    int err = 0;
    CN_IO_BEGIN(c)
    while (iovcnt > 0) {
        ssize_t n = writev(c->fd, iov, iovcnt > IOV_MAX ? IOV_MAX : iovcnt);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                err = wait_fd(c, POLLOUT, c->w->timeout_ms);
                if (err < 0) {
                    break;
                }
                continue;
            }
            err = -errno;
            break;
        }
        iov_advance(&iov, &iovcnt, (size_t)n);
    }
    CN_IO_END(c)
    if (err < 0) {
        c->must_close = 1;
    }
    return err;
}

Py_ssize_t
cn_conn_sendfile(cn_conn *c, int in_fd, off_t offset, size_t count)
{
    int f = uncork(c);
    if (f < 0) {
        return f;
    }
    Py_ssize_t total = 0;
    int err = 0;
    int to_eof = count == 0;
    CN_IO_BEGIN(c)
    while (to_eof || (size_t)total < count) {
        size_t want = to_eof ? (size_t)1 << 30 : count - (size_t)total;
        ssize_t n = sendfile(c->fd, in_fd, &offset, want);
        if (n > 0) {
            total += n;
            continue;
        }
        if (n == 0) {
            break; /* end of file */
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            err = wait_fd(c, POLLOUT, c->w->timeout_ms);
            if (err < 0) {
                break;
            }
            continue;
        }
        err = -errno;
        break;
    }
    CN_IO_END(c)
    if (err < 0) {
        c->must_close = 1;
        return err;
    }
    return total;
}

void
cn_conn_linger(cn_conn *c)
{
    CN_IO_BEGIN(c)
    char sink[4096];
    size_t drained = 0;
    uint64_t deadline = cn_now_ms() + CN_LINGER_MS;
    shutdown(c->fd, SHUT_WR);
    while (drained < CN_LINGER_BYTES) {
        ssize_t n = recv(c->fd, sink, sizeof(sink), 0);
        if (n > 0) {
            drained += (size_t)n;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            break;
        }
        uint64_t now = cn_now_ms();
        if (now >= deadline || wait_fd(c, POLLIN, (int)(deadline - now)) < 0) {
            break;
        }
    }
    CN_IO_END(c)
}

void
cn_conn_close(cn_conn *c, int linger)
{
    if (c->fd < 0) {
        return;
    }
    if (linger) {
        cn_conn_linger(c);
    }
    close(c->fd);
    c->fd = -1;
}

void
cn_conn_free_buffers(cn_conn *c)
{
    free(c->cork);
    c->cork = NULL;
    c->cork_len = c->cork_cap = 0;
    free(c->buf);
    free(c->body);
    free(c->headers);
    c->buf = c->body = NULL;
    c->headers = NULL;
    c->cap = c->len = c->pos = 0;
    c->body_cap = c->body_len = c->body_pos = 0;
    c->headers_cap = c->nheaders = 0;
}

int
cn_conn_discard_body(cn_conn *c, size_t limit)
{
    char sink[8192];
    size_t total = 0;
    if (c->expect_continue && !c->continue_sent && !c->body_done) {
        return -1; /* never invite a body nobody will read */
    }
    while (!c->body_done) {
        if (c->body_error || total > limit) {
            return -1;
        }
        Py_ssize_t n = cn_conn_read_body(c, sink, sizeof(sink));
        if (n < 0) {
            PyErr_Clear();
            return -1;
        }
        total += (size_t)n;
    }
    c->body_len = c->body_pos = 0;
    return 0;
}
