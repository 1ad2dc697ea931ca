/* The gthread worker's event loop (loop.c).  One thread per worker runs it,
 * never holding the GIL and never calling Python: it accepts, keeps idle
 * keep-alive connections, receives and parses request heads (so slow or
 * silent clients cost no pool thread), queues complete heads for the pool,
 * takes connections back after their response, closes (with a lingering
 * drain when unread bytes could turn the close into a reset) and beats the
 * heartbeat.  Pipelined requests already in the buffer are parsed as soon as
 * the connection comes back (gunicorn's gthread leaves them unanswered).
 *
 * Connections are freed in two phases: conn_close() marks and unlinks, the
 * reap watcher (ev_check, after the iteration's callbacks) frees. */
#include "gthread.h"

#include "connio.h"
#include "environ.h"
#include "heartbeat.h"
#include "parser.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define GT_BUF 8192               /* read buffer; grows up to the head limit */
#define GT_FREE_MAX 256           /* read buffers kept for reuse */
#define GT_ACCEPT_BATCH 64        /* accepts per wake: do not starve the rest */
#define GT_HOLD_S 0.001           /* accept deferred to an idle, lighter sibling */
#define GT_LIVE_MS 3000           /* a sibling that beat this recently is alive */
#define GT_LOAD_BUSY (1ULL << 32) /* published with the load: serving inline */
#define GT_LOAD_HOLD (1ULL << 33) /* ... deferring its accepts */
#define GT_READS_PER_WAKE 4       /* recvs per readable event, same reason */
#define GT_BACKOFF_S 0.1          /* accept pause after EMFILE/ENFILE */
#define GT_LINGER_S 1.0
#define GT_LINGER_BYTES (256 * 1024)
#define GT_POOL_CHECK_S 0.25      /* look for a lazily returned connection */

#define GT_CONTAINER(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static void conn_close(cn_gthread *g, gt_conn *gc);
static int accept_defer(cn_gthread *g);

/* Whether this thread is the worker's loop thread (inline serving). */
static _Thread_local int tl_loop_thread;

/* Leave the loop for good (stop, quick stop, graceful deadline). */
static void
loop_end(cn_gthread *g)
{
    g->ended = 1;
    ev_break(g->loop, EVBREAK_ALL);
}

/* ---- read buffers --------------------------------------------------------- */

/* Give `c` a read buffer if it has none.  0 or -ENOMEM. */
static int
buf_acquire(cn_gthread *g, cn_conn *c)
{
    if (c->buf != NULL) {
        return 0;
    }
    char *b = g->nfree > 0 ? g->free_bufs[--g->nfree] : malloc(GT_BUF);
    if (b == NULL) {
        return -ENOMEM;
    }
    c->buf = b;
    c->cap = GT_BUF;
    c->len = c->pos = 0;
    return 0;
}

/* An idle connection holds no buffer: 10,000 idle keep-alive connections
 * cost their cn_conn and the kernel's socket, not 10,000 read buffers.  The
 * caller has checked that nothing is buffered (len == 0). */
static void
buf_release(cn_gthread *g, cn_conn *c)
{
    if (c->buf != NULL) {
        if (c->cap == GT_BUF && g->nfree < GT_FREE_MAX) {
            g->free_bufs[g->nfree++] = c->buf;
        }
        else {
            free(c->buf);
        }
    }
    c->buf = NULL;
    c->cap = c->len = c->pos = 0;
    c->head_start = c->scan_pos = 0;
    free(c->headers);
    c->headers = NULL;
    c->headers_cap = c->nheaders = 0;
    free(c->body);
    c->body = NULL;
    c->body_cap = c->body_len = c->body_pos = 0;
}

/* One non-blocking recv into c's buffer, growing it up to `limit` (heads
 * only: no pointers into the buffer exist yet).  Bytes received (> 0), 0 at
 * EOF, -EAGAIN, -ENOBUFS when the buffer is full at `limit`, or -errno.
 * *drained is set when the recv did not fill the room it had (the socket
 * is most likely empty: skip the recv that would say EAGAIN). */
static int
recv_nb(cn_gthread *g, cn_conn *c, size_t limit, int *drained)
{
    *drained = 0;
    if (buf_acquire(g, c) < 0) {
        return -ENOMEM;
    }
    if (c->len == c->cap) {
        if (c->cap >= limit) {
            return -ENOBUFS;
        }
        size_t cap = c->cap * 2 < limit ? c->cap * 2 : limit;
        char *b = realloc(c->buf, cap);
        if (b == NULL) {
            return -ENOMEM;
        }
        c->buf = b;
        c->cap = cap;
    }
    for (;;) {
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n > 0) {
            *drained = (size_t)n < c->cap - c->len;
            c->len += (size_t)n;
            return (int)n;
        }
        if (n == 0) {
            c->eof = 1;
            return 0;
        }
        if (errno == EINTR) {
            continue;
        }
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

/* ---- accepting ------------------------------------------------------------ */

static void
accept_start(cn_gthread *g)
{
    if (!g->accepting) {
        for (int i = 0; i < g->w.nlisteners; i++) {
            ev_io_start(g->loop, &g->accept_io[i]);
        }
        g->accepting = 1;
    }
}

static void
accept_stop(cn_gthread *g)
{
    if (g->accepting) {
        for (int i = 0; i < g->w.nlisteners; i++) {
            ev_io_stop(g->loop, &g->accept_io[i]);
        }
        g->accepting = 0;
    }
}

/* Accept again when below worker_connections, not paused (EMFILE, or
 * deferred to a sibling), not stopping. */
static void
accept_maybe_resume(cn_gthread *g)
{
    if (!g->accepting && !g->backing_off && !g->holding && !g->stopping
        && g->nconns < g->max_conns) {
        accept_start(g);
    }
}

/* Balance between workers.  Every worker watches the shared listening
 * socket and the kernel wakes them all for a new connection; the one that
 * runs first takes the whole burst (a keep-alive client's 200 connections
 * split 196/4 between two workers, whose requests then waited in one
 * pool while the other idled).  So each worker publishes, in its
 * heartbeat slot, its open connections and whether its loop thread is
 * serving inline (GT_LOAD_BUSY: slow to accept); a worker holding more
 * than a live sibling that is not (by 2 and an eighth) leaves the
 * connection to it and stops accepting for GT_HOLD_S, then accepts again
 * whatever the others do (a stuck sibling cannot stop it).  A worker
 * deferring says so (GT_LOAD_HOLD) and is not deferred to unless it holds
 * less than half as many (a burst of new connections would otherwise all
 * go to the one not deferring): two workers wait for each other only over
 * a large imbalance, and for GT_HOLD_S at most.  Loop thread
 * (or the main thread standing in). */
static void
load_publish(cn_gthread *g)
{
    uint64_t load = g->stopping ? UINT32_MAX : (uint64_t)g->nconns;
    cn_heartbeat_set_load(g->w.heartbeats, g->w.slot,
                          load | (atomic_load(&g->inline_since) != 0 ? GT_LOAD_BUSY : 0)
                              | (g->holding ? GT_LOAD_HOLD : 0));
}

/* 1 when this worker should leave the next connection to a sibling. */
static int
accept_defer(cn_gthread *g)
{
    uint64_t mine = (uint64_t)g->nconns;
    if (g->w.heartbeats == NULL || mine < 2) {
        return 0;
    }
    int n = (int)(g->w.hb.len / CN_HEARTBEAT_SLOT_SIZE);
    uint64_t now = cn_now_ms();
    for (int i = 0; i < n; i++) {
        if (i == g->w.slot) {
            continue;
        }
        uint64_t beat = cn_heartbeat_read(g->w.heartbeats, i);
        uint64_t load = cn_heartbeat_read_load(g->w.heartbeats, i);
        int64_t age = (int64_t)(now - beat); /* CN_HB_UNBOOTED: "in the future" */
        uint64_t theirs = load & UINT32_MAX;
        if (age < 0 || age >= GT_LIVE_MS || mine <= theirs + 2 + mine / 8) {
            continue;
        }
        if (!(load & (GT_LOAD_BUSY | GT_LOAD_HOLD)) || mine > 2 * theirs + 8) {
            return 1;
        }
    }
    return 0;
}

/* ---- connection states ---------------------------------------------------- */

static void
conn_timer_set(cn_gthread *g, gt_conn *gc, int ms)
{
    ev_timer_stop(g->loop, &gc->timer);
    ev_timer_set(&gc->timer, ms > 0 ? ms / 1000.0 : 0.001, 0.0);
    ev_timer_start(g->loop, &gc->timer);
}

/* Hand the connection to the pool: its head is parsed (GT_JOB_SERVE) or
 * failed and needs an error page (GT_JOB_ERROR). */
static void
conn_dispatch(cn_gthread *g, gt_conn *gc, int job)
{
    /* The read watcher stays armed: a request without a body gets no more
     * bytes until its response, and the watcher is stopped lazily (in
     * on_conn_io) only if some do come.  So a keep-alive request costs no
     * epoll_ctl in steady state, and the pool can give the connection back
     * without waking the loop (cn_gt_release_idle): the next readable
     * event, or this timer if none comes, takes it over. */
    conn_timer_set(g, gc, (int)(GT_POOL_CHECK_S * 1000));
    gc->state = GT_POOL;
    gc->job = (unsigned char)job;
    if (cn_gt_pool_dispatch(g, gc, tl_loop_thread)) {
        /* served by this thread after the iteration (cn_gt_loop_main) */
        gc->next = NULL;
        if (g->inl_tail != NULL) {
            g->inl_tail->next = gc;
        }
        else {
            g->inl_head = gc;
        }
        g->inl_tail = gc;
    }
}

/* Receive and parse until the head is complete (dispatch), the socket has no
 * more bytes (wait), or the connection ends (close).  Bounded: at most
 * GT_READS_PER_WAKE recvs, the next readable event continues. */
static void
conn_readable(cn_gthread *g, gt_conn *gc)
{
    cn_conn *c = &gc->c;
    const cn_limits *l = &g->w.limits;
    size_t limit = cn_max_head_size(l);
    for (int i = 0; i < GT_READS_PER_WAKE && !c->eof; i++) {
        int drained;
        int n = recv_nb(g, c, limit, &drained);
        if (n == -EAGAIN) {
            break;
        }
        if (n == -ENOBUFS) {
            c->error_status = c->nlines == 0 ? 400 : 431;
            c->error_reason = c->nlines == 0 ? "Request Line is too large"
                                             : "Request Header Fields Too Large";
            conn_dispatch(g, gc, GT_JOB_ERROR);
            return;
        }
        if (n < 0) {
            conn_close(g, gc);
            return;
        }
        if (n == 0) {
            break;
        }
        if (!gc->head_started) {
            /* A head has begun: it must now complete within the head
             * timeout, whatever the keep-alive timeout. */
            gc->head_started = 1;
            conn_timer_set(g, gc, g->w.head_timeout_ms);
        }
        int r = cn_parse_head(c, l);
        if (r == 1) {
            conn_dispatch(g, gc, GT_JOB_SERVE);
            return;
        }
        if (r < 0) {
            conn_dispatch(g, gc, GT_JOB_ERROR);
            return;
        }
        if (drained) {
            break;
        }
    }
    if (c->eof) {
        /* Clean close between requests, or the client gave up mid-head:
         * either way there is nobody to answer. */
        conn_close(g, gc);
        return;
    }
    if (c->len == 0 && c->buf != NULL) {
        buf_release(g, c);
    }
}

/* Wait for the next request on `gc` (fresh, or back from the pool after a
 * kept-alive response): parse what is already buffered first (pipelining),
 * else arm the read watcher and the head or keep-alive timer. */
static void
conn_wait_head(cn_gthread *g, gt_conn *gc, int after_response)
{
    cn_conn *c = &gc->c;
    gc->state = GT_READING;
    if (c->buf != NULL) {
        cn_conn_compact(c);
    }
    cn_parse_begin(c, &g->w.limits);
    gc->head_started = c->len > 0;
    if (c->len > 0) {
        int r = cn_parse_head(c, &g->w.limits);
        if (r == 1) {
            conn_dispatch(g, gc, GT_JOB_SERVE);
            return;
        }
        if (r < 0) {
            conn_dispatch(g, gc, GT_JOB_ERROR);
            return;
        }
    }
    else {
        /* Idle, even while stopping: a request may already be on its way
         * (the client had our keep-alive answer); it is served, with
         * Connection: close.  The keep-alive timer or the graceful deadline
         * closes the connection otherwise. */
        buf_release(g, c);
    }
    if (c->eof) {
        conn_close(g, gc);
        return;
    }
    int ms = g->w.head_timeout_ms;
    if (!gc->head_started && after_response) {
        /* keep-alive counts from the end of the response */
        ms = g->w.keepalive_ms - (int)((cn_gt_now() - gc->back_at) * 1000);
    }
    conn_timer_set(g, gc, ms);
    if (!ev_is_active(&gc->io)) {
        ev_io_start(g->loop, &gc->io);
    }
}

/* Half-close and drain what the client still sends, for a moment, so that
 * closing does not reset the response it has yet to read. */
static void
conn_linger(cn_gthread *g, gt_conn *gc)
{
    gc->state = GT_LINGER;
    gc->drained = 0;
    shutdown(gc->c.fd, SHUT_WR);
    ev_timer_stop(g->loop, &gc->timer);
    ev_timer_set(&gc->timer, GT_LINGER_S, 0.0);
    ev_timer_start(g->loop, &gc->timer);
    if (!ev_is_active(&gc->io)) {
        ev_io_start(g->loop, &gc->io);
    }
}

static void
conn_drain(cn_gthread *g, gt_conn *gc)
{
    char sink[4096];
    for (int i = 0; i < GT_READS_PER_WAKE; i++) {
        ssize_t n = recv(gc->c.fd, sink, sizeof(sink), 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            return;
        }
        if (n <= 0) {
            break;
        }
        gc->drained += (size_t)n;
        if (gc->drained >= GT_LINGER_BYTES) {
            break;
        }
    }
    conn_close(g, gc);
}

/* First phase of the close: stop watching, close the socket, unlink; the
 * reap watcher frees the memory after this iteration.  Loop thread. */
static void
conn_close(cn_gthread *g, gt_conn *gc)
{
    if (gc->state == GT_CLOSED) {
        return;
    }
    ev_io_stop(g->loop, &gc->io);
    ev_timer_stop(g->loop, &gc->timer);
    if (gc->c.fd >= 0) {
        close(gc->c.fd);
        gc->c.fd = -1;
    }
    gc->state = GT_CLOSED;
    if (gc->all_prev != NULL) {
        gc->all_prev->all_next = gc->all_next;
    }
    else {
        g->all = gc->all_next;
    }
    if (gc->all_next != NULL) {
        gc->all_next->all_prev = gc->all_prev;
    }
    gc->all_prev = gc->all_next = NULL;
    gc->dead_next = g->dead;
    g->dead = gc;
    g->nconns--;
    if (g->holding && !accept_defer(g)) {
        /* lighter now: the deferral has no reason left */
        ev_timer_stop(g->loop, &g->hold);
        g->holding = 0;
    }
    load_publish(g);
    accept_maybe_resume(g);
}

static void
conn_free(cn_gthread *g, gt_conn *gc)
{
    gc->c.len = 0;
    buf_release(g, &gc->c);
    free(gc->c.cork);
    free(gc);
}

/* The state of `gc` as the loop may act on it: GT_POOL and GT_POOL_NOIO
 * (the pool's), or a loop state; a connection the pool returned lazily
 * (GT_BACK) is taken over first, as if handed back.  Loop thread. */
static int
conn_claim(cn_gthread *g, gt_conn *gc)
{
    int st = atomic_load_explicit(&gc->state, memory_order_acquire);
    if (st == GT_BACK) {
        conn_wait_head(g, gc, 1);
        st = atomic_load_explicit(&gc->state, memory_order_relaxed);
    }
    return st;
}

static void
on_conn_io(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    gt_conn *gc = GT_CONTAINER(io, gt_conn, io);
    unsigned char st = atomic_load_explicit(&gc->state, memory_order_acquire);
    if (st == GT_POOL) {
        /* Bytes while a pool thread has it (a body, a pipelined request):
         * the pool reads them; stop watching until it hands back, and tell
         * it so (it then hands back through the list, which re-arms).  The
         * swap fails when the pool has just returned it (GT_BACK). */
        if (atomic_compare_exchange_strong_explicit(&gc->state, &st, GT_POOL_NOIO,
                                                    memory_order_acq_rel,
                                                    memory_order_acquire)) {
            ev_io_stop(loop, io);
            return;
        }
    }
    switch (conn_claim(gc->g, gc)) {
    case GT_READING:
        conn_readable(gc->g, gc);
        break;
    case GT_LINGER:
        conn_drain(gc->g, gc);
        break;
    case GT_POOL_NOIO:
        ev_io_stop(loop, io);
        break;
    default:
        break;
    }
}

/* 1 when request bytes wait unread in the socket (no recv buffer needed:
 * a one-byte peek). */
static int
conn_has_pending(gt_conn *gc)
{
    char b;
    ssize_t n;
    do {
        n = recv(gc->c.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    return n > 0;
}

/* Head, keep-alive or linger deadline.  A silent or trickling client gets
 * no answer, as in gunicorn; the close is a lingering one (half-close, then
 * drain) so bytes that crossed the deadline do not turn it into a reset.
 * An idle connection whose request arrived in this very iteration is served
 * instead (the timer and the readable event raced). */
static void
on_conn_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    gt_conn *gc = GT_CONTAINER(t, gt_conn, timer);
    cn_gthread *g = gc->g;
    int st = atomic_load_explicit(&gc->state, memory_order_acquire);
    if (st == GT_BACK) {
        /* returned lazily and idle since: now it waits like any other
         * (buffer released, keep-alive timer for the time left) */
        conn_claim(g, gc);
        return;
    }
    if (st == GT_POOL || st == GT_POOL_NOIO) {
        conn_timer_set(g, gc, (int)(GT_POOL_CHECK_S * 1000));
        return;
    }
    if (st != GT_READING) {
        conn_close(g, gc); /* linger deadline */
        return;
    }
    if (!gc->head_started && conn_has_pending(gc)) {
        conn_readable(g, gc);
        if (gc->state == GT_READING && !gc->head_started) {
            conn_linger(g, gc); /* the peeked byte was an EOF after all */
        }
        return;
    }
    conn_linger(g, gc);
}

/* A new connection from listener `li`; NULL when out of memory. */
static gt_conn *
conn_new(cn_gthread *g, int fd, int li, const struct sockaddr_storage *peer, socklen_t peer_len)
{
    gt_conn *gc = calloc(1, sizeof(*gc));
    if (gc == NULL) {
        return NULL;
    }
    cn_conn *c = &gc->c;
    c->fd = fd;
    c->listener = li;
    memcpy(&c->peer, peer, sizeof(c->peer));
    c->peer_len = peer_len;
    c->w = &g->w;
    cn_peer_ip(c);
    if (peer->ss_family == AF_INET || peer->ss_family == AF_INET6) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    gc->g = g;
    ev_io_init(&gc->io, on_conn_io, fd, EV_READ);
    ev_init(&gc->timer, on_conn_timer);
    gc->all_next = g->all;
    if (g->all != NULL) {
        g->all->all_prev = gc;
    }
    g->all = gc;
    g->nconns++;
    load_publish(g);
    return gc;
}

/* End of an accept pause: EMFILE back-off, or deferral to a sibling. */
static void
on_pause_end(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    cn_gthread *g = t->data;
    if (t == &g->hold) {
        g->holding = 0;
    }
    else {
        g->backing_off = 0;
    }
    load_publish(g);
    accept_maybe_resume(g);
}

/* Stop accepting for `seconds`: *flag (backing_off or holding) stays set
 * until the timer `t` fires (on_pause_end). */
static void
accept_pause(cn_gthread *g, ev_timer *t, int *flag, double seconds)
{
    accept_stop(g);
    *flag = 1;
    load_publish(g);
    ev_timer_set(t, seconds, 0.0);
    ev_timer_start(g->loop, t);
}

static void
on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    cn_gthread *g = io->data;
    int li = (int)(io - g->accept_io);
    for (int i = 0; i < GT_ACCEPT_BATCH; i++) {
        if (g->nconns >= g->max_conns) {
            accept_stop(g); /* resumed by conn_close below the cap */
            return;
        }
        if (accept_defer(g)) {
            accept_pause(g, &g->hold, &g->holding, GT_HOLD_S);
            return;
        }
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof(peer);
        int fd = accept4(io->fd, (struct sockaddr *)&peer, &peer_len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: pause accepting (no busy loop on a
                 * listener that stays readable), keep serving, resume. */
                accept_pause(g, &g->backoff, &g->backing_off, GT_BACKOFF_S);
                atomic_store(&g->emfile_note, 1);
            }
            return;
        }
        gt_conn *gc = conn_new(g, fd, li, &peer, peer_len);
        if (gc == NULL) {
            close(fd);
            return;
        }
        conn_wait_head(g, gc, 0);
        if (gc->state == GT_READING) {
            conn_readable(g, gc); /* the request is often there already */
        }
    }
}

/* ---- stopping --------------------------------------------------------------- */

/* Graceful stop (TERM, max_requests): accept no more (the listening socket
 * is shared: other workers take the kernel's backlog), let queued and
 * running requests finish, and keep watching idle keep-alive connections:
 * every response decided from now on says Connection: close (serve_one,
 * response.c), a request that arrives on an idle connection is served that
 * way, and an idle connection is closed (lingering) when its keep-alive
 * timer expires.  Ends when no connection is left, or at the graceful
 * deadline.  Never closes an idle connection at the stop itself: its
 * client may be sending a request that very moment, which a close would
 * answer with a reset. */
static void
enter_stopping(cn_gthread *g)
{
    if (g->stopping) {
        return;
    }
    g->stopping = 1;
    load_publish(g);
    accept_stop(g);
    ev_timer_stop(g->loop, &g->backoff);
    ev_timer_set(&g->graceful, g->w.graceful_timeout_ms / 1000.0, 0.0);
    ev_timer_start(g->loop, &g->graceful);
}

static void
check_flags(cn_gthread *g)
{
    if (atomic_load(&g->quit_req)) {
        atomic_store(&g->forced, 1);
        loop_end(g);
        return;
    }
    if (atomic_load(&g->stop_req) || atomic_load(&g->retire_req)) {
        enter_stopping(g);
    }
}

/* The graceful deadline: close what the loop holds (idle, reading,
 * lingering) and end; "forced" only when requests are still in the pool. */
static void
on_graceful(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    cn_gthread *g = t->data;
    int in_pool = 0;
    gt_conn *gc = g->all;
    while (gc != NULL) {
        gt_conn *next = gc->all_next;
        int st = conn_claim(g, gc);
        if (st == GT_POOL || st == GT_POOL_NOIO) {
            in_pool = 1;
        }
        else if (st != GT_CLOSED) {
            if (st == GT_READING) {
                shutdown(gc->c.fd, SHUT_WR);
            }
            conn_close(g, gc);
        }
        gc = next;
    }
    if (in_pool) {
        atomic_store(&g->forced, 1);
    }
    loop_end(g);
}

static void
on_beat(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    cn_gthread *g = t->data;
    cn_heartbeat_beat(g->w.heartbeats, g->w.slot);
    check_flags(g);
}

/* Connections handed back by the pool, and flags set by other threads.
 * Whoever runs the loop. */
static void
take_back(cn_gthread *g)
{
    pthread_mutex_lock(&g->back_mu);
    gt_conn *list = g->back;
    g->back = NULL;
    pthread_mutex_unlock(&g->back_mu);
    check_flags(g);
    while (list != NULL) {
        gt_conn *gc = list;
        list = gc->next;
        gc->next = NULL;
        switch (gc->back) {
        case GT_BACK_KEEP:
            conn_wait_head(g, gc, 1);
            break;
        case GT_BACK_LINGER:
            conn_linger(g, gc);
            break;
        default:
            conn_close(g, gc);
            break;
        }
    }
}

static void
on_wake(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop;
    (void)revents;
    take_back(a->data);
}

/* Second phase of the close, after the iteration's callbacks. */
static void
on_reap(struct ev_loop *loop, ev_check *chk, int revents)
{
    (void)loop;
    (void)revents;
    cn_gthread *g = chk->data;
    while (g->dead != NULL) {
        gt_conn *gc = g->dead;
        g->dead = gc->dead_next;
        conn_free(g, gc);
    }
    if (g->stopping && g->nconns == 0) {
        loop_end(g);
    }
}

/* ---- entry points ------------------------------------------------------------ */

double
cn_gt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int
cn_gt_release_idle(cn_gthread *g, gt_conn *gc)
{
    cn_conn *c = &gc->c;
    /* Pipelined bytes must be parsed now, and a stop must see every
     * connection: those go through the list (and wake the loop).  So does
     * a connection after its first request: until it shows it is reused,
     * it may well stay idle, and the loop releases an idle connection's
     * buffers at once (10,000 idle keep-alive connections must not hold
     * 10,000 read buffers, even for the GT_POOL_CHECK_S it takes the loop
     * to find a lazily returned one). */
    if (c->pos != c->len || c->eof || c->nrequests < 2 || atomic_load(&g->stop_req)
        || atomic_load(&g->retire_req)) {
        return 0;
    }
    unsigned char st = GT_POOL;
    return atomic_compare_exchange_strong_explicit(&gc->state, &st, GT_BACK,
                                                   memory_order_acq_rel, memory_order_acquire);
}

void
cn_gt_hand_back(cn_gthread *g, gt_conn *gc)
{
    pthread_mutex_lock(&g->back_mu);
    gc->next = g->back;
    g->back = gc;
    pthread_mutex_unlock(&g->back_mu);
    if (!tl_loop_thread) {
        ev_async_send(g->loop, &g->wake);
    } /* else served inline: the loop thread takes it back after the batch */
}

void
cn_gt_wake(cn_gthread *g)
{
    ev_async_send(g->loop, &g->wake);
}

int
cn_gt_loop_init(cn_gthread *g)
{
    g->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK | EVFLAG_NOENV);
    if (g->loop == NULL) {
        return -ENOMEM;
    }
    g->accept_io = calloc((size_t)g->w.nlisteners, sizeof(ev_io));
    g->free_bufs = calloc(GT_FREE_MAX, sizeof(char *));
    if (g->accept_io == NULL || g->free_bufs == NULL) {
        return -ENOMEM;
    }
    for (int i = 0; i < g->w.nlisteners; i++) {
        ev_io_init(&g->accept_io[i], on_accept, g->w.listeners[i].fd, EV_READ);
        g->accept_io[i].data = g;
    }
    ev_init(&g->backoff, on_pause_end);
    g->backoff.data = g;
    ev_init(&g->hold, on_pause_end);
    g->hold.data = g;
    ev_init(&g->graceful, on_graceful);
    g->graceful.data = g;
    ev_timer_init(&g->beat, on_beat, 1.0, 1.0);
    g->beat.data = g;
    ev_timer_start(g->loop, &g->beat);
    ev_async_init(&g->wake, on_wake);
    g->wake.data = g;
    ev_async_start(g->loop, &g->wake);
    ev_check_init(&g->reap, on_reap);
    g->reap.data = g;
    ev_check_start(g->loop, &g->reap);
    return 0;
}

int64_t
cn_gt_clock_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void *
cn_gt_loop_main(void *arg)
{
    cn_gthread *g = arg;
    tl_loop_thread = 1;
    pthread_setname_np(pthread_self(), "cunicorn-loop"); /* top -H, /proc */
    pthread_mutex_lock(&g->loop_mu);
    cn_heartbeat_beat(g->w.heartbeats, g->w.slot);
    accept_maybe_resume(g);
    check_flags(g);
    while (!g->ended) {
        /* with requests left from the last batch, only a look (accept,
         * read what has come), no wait */
        ev_run(g->loop, g->inl_head != NULL ? EVRUN_NOWAIT : EVRUN_ONCE);
        if (g->ended || g->inl_head == NULL) {
            continue;
        }
        /* Serve what the iterations found for inline serving, out of the
         * loop: the main thread may run it meanwhile (cn_gt_watch). */
        gt_conn *list = g->inl_head;
        g->inl_head = g->inl_tail = NULL;
        atomic_fetch_add(&g->inline_batches, 1);
        atomic_store(&g->inline_since, cn_gt_clock_ns(CLOCK_MONOTONIC));
        load_publish(g);
        pthread_mutex_unlock(&g->loop_mu);
        list = cn_gt_serve_inline(g, list);
        atomic_store(&g->inline_since, 0);
        if (atomic_load(&g->watching)) {
            atomic_store(&g->want_back, 1);
            ev_async_send(g->loop, &g->wake);
        }
        pthread_mutex_lock(&g->loop_mu);
        load_publish(g);
        atomic_store(&g->want_back, 0);
        if (list != NULL) {
            /* the rest of the batch goes first next time */
            gt_conn *last = list;
            while (last->next != NULL) {
                last = last->next;
            }
            last->next = g->inl_head;
            g->inl_head = list;
            if (g->inl_tail == NULL) {
                g->inl_tail = last;
            }
        }
        take_back(g); /* what serving gave back */
    }
    if (g->nconns > 0) {
        atomic_store(&g->forced, 1);
    }
    pthread_mutex_unlock(&g->loop_mu);
    cn_gt_inline_end(g);
    atomic_store(&g->loop_done, 1);
    uint64_t one = 1;
    ssize_t r = write(g->done_fd, &one, sizeof(one));
    (void)r;
    return NULL;
}

int
cn_gt_watch(cn_gthread *g, int64_t until_ns)
{
    int64_t since = atomic_load(&g->inline_since);
    if (since == 0 || cn_gt_clock_ns(CLOCK_MONOTONIC) - since < GT_WATCH_MS * 1000000LL
        || pthread_mutex_trylock(&g->loop_mu) != 0) {
        return 0;
    }
    atomic_store(&g->watching, 1);
    /* what the batch holds goes on without the request that holds the loop
     * thread: the responses it held back, the requests it has not served */
    cn_gt_watch_takeover(g);
    /* (the loop thread clears inline_since, then looks at watching: one of
     * the two sees the other's store.)  A new TERM or QUIT returns at once:
     * the caller relays it. */
    int stopping = cn_worker_stopping(), quitting = cn_worker_quitting();
    while (atomic_load(&g->inline_since) != 0 && !atomic_load(&g->want_back) && !g->ended
           && cn_worker_stopping() == stopping && cn_worker_quitting() == quitting
           && cn_gt_clock_ns(CLOCK_MONOTONIC) < until_ns) {
        ev_run(g->loop, EVRUN_ONCE);
    }
    if (g->ended && atomic_load(&g->inline_since) != 0) {
        /* over (deadline, quick stop) while a request runs inline: the
         * worker exits without the loop thread, as without a pool thread */
        atomic_store(&g->forced, 1);
        atomic_store(&g->abandoned, 1);
        atomic_store(&g->loop_done, 1);
    }
    atomic_store(&g->watching, 0);
    pthread_mutex_unlock(&g->loop_mu);
    return 1;
}

void
cn_gt_loop_free(cn_gthread *g)
{
    if (g->loop != NULL) {
        g->stopping = 1;
        while (g->all != NULL) {
            conn_close(g, g->all);
        }
        while (g->dead != NULL) {
            gt_conn *gc = g->dead;
            g->dead = gc->dead_next;
            conn_free(g, gc);
        }
        ev_loop_destroy(g->loop);
        g->loop = NULL;
    }
    if (g->free_bufs != NULL) {
        for (int i = 0; i < g->nfree; i++) {
            free(g->free_bufs[i]);
        }
        free(g->free_bufs);
        g->free_bufs = NULL;
    }
    free(g->accept_io);
    g->accept_io = NULL;
}
