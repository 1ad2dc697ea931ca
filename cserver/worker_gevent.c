/* The gevent worker (-k gevent, alias coroutine): cunicorn's C engine on
 * gevent's hub, one greenlet per connection.
 *
 * Everything runs in the worker's main thread with the GIL held.  Three kinds
 * of greenlet take turns:
 *   - the hub (gevent's), which runs the libev loop and calls our watcher
 *     callbacks: the acceptor (on_accept), the ticker (on_tick) and the
 *     wake-up of a waiting connection (conn_wake);
 *   - one greenlet per connection, child of the hub, whose run is conn_run
 *     (C): read the head, serve it (serve.c), keep-alive, pipelining, close.
 *     A keep-alive connection idle for CN_PARK_MS is "parked": its greenlet
 *     ends and its read watcher starts a new one (conn_revive) when the next
 *     request comes, so 10,000 idle clients cost no greenlet stacks (a
 *     greenlet that ran Python code keeps a frame-stack chunk of its own);
 *   - the main greenlet (run_worker_gevent's caller), which sets up, then
 *     sleeps in the hub until the ticker says the worker is done, and then
 *     tears down.
 *
 * A connection's I/O is conn.c's: it tries the syscall and, on EAGAIN, calls
 * w->coop_wait (gevent_wait below), which starts a gevent io watcher made by
 * the hub's loop through gevent's public API (`loop.io(fd, events)`; the read
 * watcher stays started from one wait to the next) and switches to the hub;
 * the watcher's callback switches back.  An exception thrown into the wait
 * (the app's gevent.Timeout) is kept and handed to conn.c's body read
 * through w->coop_exc, so the app sees it instead of an OSError.  Timeouts are
 * not one timer per wait: each wait records a deadline and the ticker, every
 * CN_TICK_S, wakes the waits that are past it (and beats the heartbeat, so a
 * hub blocked by CPU-bound code stops beating and the master kills the
 * worker, as gunicorn's does).
 *
 * Ownership: a gconn is owned by its greenlet's run (conn_run frees it at
 * the end), or, parked, by the worker (the ticker, a drain or the tear-down
 * frees it with release_conn); the worker's fd table borrows it.  A greenlet switching into
 * another returns when that one switches to the hub again (or ends, its
 * parent being the hub), so a hub callback that switches into a connection
 * gets control back; it must not touch the gconn afterwards (it may be
 * freed). */
#include "connio.h"
#include "environ.h"
#include "greenlet_glue.h"
#include "heartbeat.h"
#include "module_parts.h"
#include "serve.h"
#include "worker.h"

#ifdef CN_HAVE_GREENLET

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CN_TICK_S 0.25             /* heartbeat, timeouts and signals */
#define CN_ACCEPT_BATCH 64         /* accepts per listener wake-up */
#define CN_ACCEPT_BACKOFF_MS 100   /* after EMFILE and the like */
#define CN_DISCARD_LIMIT (1 << 20) /* unread body drained for keep-alive */
/* A keep-alive connection idle this long gives up its greenlet until its
 * next request: a suspended greenlet that ran Python code keeps a Python
 * frame stack chunk (several KB), too much for thousands of idle clients. */
#define CN_PARK_MS 1000
/* A client that answers each response at once (wrk on the same cores) has
 * its next request ready when we look: serving it without a trip through the
 * hub saves a loop iteration per request, but the other connections wait
 * meanwhile.  After this many in a row, the next one goes through the hub.
 * Flask c50 -w 2: 8 keeps the CPU of "never" (47.4 vs 47.6 us/req) with p99
 * 14 ms instead of 45-95; 0 costs 53 us/req. */
#define CN_STREAK_MAX 8

typedef struct gworker gworker;

/* What a started read watcher calls (gconn.rw_on). */
#define RW_WAKE 1
#define RW_REVIVE 2

/* One connection served by one greenlet. */
typedef struct gconn {
    cn_conn c;           /* the connection (conn.c's state) */
    gworker *gw;
    PyObject *greenlet;  /* strong: serves this connection */
    PyObject *self;      /* strong: capsule pointing here (callbacks' self) */
    PyObject *wake;      /* strong: conn_wake bound to self (rw's callback) */
    PyObject *wake_w;    /* strong or NULL: conn_wake_w bound to self (ww's) */
    PyObject *revive;    /* strong or NULL: conn_revive bound to self */
    PyObject *rw, *ww;   /* strong or NULL: gevent io watchers, read / write */
    PyObject *waiter;    /* strong while waiting: the greenlet to resume */
    PyObject *exc_t, *exc_v, *exc_tb; /* strong or NULL: thrown into the last wait */
    uint64_t deadline;   /* cn_now_ms() the wait ends at, 0 = never */
    short waiting;       /* POLLIN / POLLOUT while suspended, else 0 */
    int wake_result;     /* what the wait returns: 0, -ETIMEDOUT, -ECANCELED */
    unsigned idle : 1;      /* waiting for the next request: a drain closes it */
    unsigned cancelled : 1; /* killed: every later wait fails at once */
    unsigned parked : 1;    /* idle without a greenlet; rw wakes conn_revive */
    unsigned rw_on : 2;     /* rw started: 0 no, RW_WAKE or RW_REVIVE */
    int streak;             /* requests found ready without a wait in a row */
} gconn;

struct gworker {
    cn_worker w;          /* first: coop_wait gets &gw->w */
    PyObject *self;       /* strong: capsule pointing here */
    PyObject *hub;        /* strong: gevent's hub greenlet */
    PyObject *loop;       /* strong: hub.loop */
    PyObject *main;       /* strong: the greenlet that runs run_worker_gevent */
    PyObject **lwatch;    /* strong: one io watcher per listener */
    PyObject *accept_cb;  /* strong: on_accept bound to self */
    PyObject *ticker;     /* strong: repeating timer watcher */
    PyObject *tick_cb;    /* strong: on_tick bound to self */
    PyObject *s_start, *s_stop, *s_close; /* strong: method names */
    gconn **byfd;         /* borrowed: live connections by fd */
    int nfd;
    int nconns, max_conns;
    int accepting;        /* listener watchers are started */
    int stopping;         /* graceful drain under way */
    const char *stop_why; /* a drain asked for outside the hub (static text) */
    int stop_asked;
    int killing;          /* tearing down: waits fail at once */
    int done;             /* the main greenlet may tear down */
    int main_waiting;     /* the main greenlet sleeps in the hub */
    uint64_t drain_deadline, backoff_until;
    pid_t ppid;
};

static gconn *
conn_of(PyObject *capsule)
{
    return (gconn *)PyCapsule_GetPointer(capsule, "cunicorn.gconn");
}

static gworker *
worker_of(PyObject *capsule)
{
    return (gworker *)PyCapsule_GetPointer(capsule, "cunicorn.gworker");
}

/* watcher.start(cb, *args) / watcher.stop() / watcher.close().  0, or -1
 * with an exception set.  CN_GIL. */
static int
watcher_start(gworker *gw, PyObject *watcher, PyObject *cb, PyObject *arg)
{
    PyObject *r = arg == NULL
                      ? PyObject_CallMethodOneArg(watcher, gw->s_start, cb)
                      : PyObject_CallMethodObjArgs(watcher, gw->s_start, cb, arg, NULL);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

static int
watcher_call(PyObject *watcher, PyObject *name)
{
    PyObject *r = PyObject_CallMethodNoArgs(watcher, name);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* Stop and close *wp and drop it, keeping any exception already set. */
static void
watcher_drop(gworker *gw, PyObject **wp)
{
    if (*wp == NULL) {
        return;
    }
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    if (watcher_call(*wp, gw->s_stop) < 0 || watcher_call(*wp, gw->s_close) < 0) {
        PyErr_WriteUnraisable(*wp);
    }
    PyErr_Restore(t, v, tb);
    Py_CLEAR(*wp);
}

/* ------------------------------------------------------------ waiting */

/* Drop an exception kept from an earlier wait that nobody asked for. */
static void
clear_exc(gconn *gc)
{
    Py_CLEAR(gc->exc_t);
    Py_CLEAR(gc->exc_v);
    Py_CLEAR(gc->exc_tb);
}

static PyObject *conn_wake(PyObject *self, PyObject *unused);
static PyObject *conn_wake_w(PyObject *self, PyObject *unused);
static PyMethodDef conn_wake_def = {"cn_gevent_wake", conn_wake, METH_NOARGS, NULL};
static PyMethodDef conn_wake_w_def = {"cn_gevent_wake_w", conn_wake_w, METH_NOARGS, NULL};

/* Suspend the calling greenlet until gc's fd is ready for `events`
 * (POLLIN or POLLOUT), timeout_ms pass (<= 0: no limit) or the connection is
 * cancelled.  0, -ETIMEDOUT, -ECANCELED or -errno; never leaves an exception
 * set (one thrown into the wait - GreenletExit when killed - cancels it).
 * CN_GIL, in any greenlet but the hub.
 *
 * The read watcher stays started after the wait (stopped lazily, by
 * conn_wake, if it fires while nobody waits): a keep-alive connection then
 * costs no watcher call and no epoll_ctl per request - libev would re-add a
 * stopped fd with an EPOLL_CTL_ADD failing with EEXIST once the app has spent
 * a loop iteration or more.  The write watcher is stopped after each wait. */
static int
gconn_wait(gconn *gc, short events, int timeout_ms)
{
    gworker *gw = gc->gw;
    clear_exc(gc);
    if (gc->cancelled || gw->killing) {
        return -ECANCELED;
    }
    int want_write = (events & POLLOUT) != 0;
    PyObject **wp = want_write ? &gc->ww : &gc->rw;
    if (*wp == NULL) {
        *wp = PyObject_CallMethod(gw->loop, "io", "ii", gc->c.fd, want_write ? 2 : 1);
        if (*wp == NULL) {
            cn_worker_log(&gw->w, "error", "gevent: cannot create an io watcher", 1);
            return -ENOMEM;
        }
    }
    if (want_write && gc->wake_w == NULL) {
        gc->wake_w = PyCFunction_New(&conn_wake_w_def, gc->self);
        if (gc->wake_w == NULL) {
            cn_worker_log(&gw->w, "error", "gevent: cannot create an io watcher", 1);
            return -ENOMEM;
        }
    }
    PyObject *cur = cn_greenlet_current();
    if (cur == NULL) {
        PyErr_Clear();
        return -EIO;
    }
    if (cur == gw->hub) {
        Py_DECREF(cur);
        return -EDEADLK; /* the hub cannot wait on itself */
    }
    if ((want_write || gc->rw_on != RW_WAKE)
        && watcher_start(gw, *wp, want_write ? gc->wake_w : gc->wake, NULL) < 0) {
        Py_DECREF(cur);
        cn_worker_log(&gw->w, "error", "gevent: cannot start an io watcher", 1);
        return -EIO;
    }
    if (!want_write) {
        gc->rw_on = RW_WAKE;
    }
    gc->waiter = cur;
    gc->waiting = want_write ? POLLOUT : POLLIN;
    gc->wake_result = 0;
    gc->deadline = timeout_ms > 0 ? cn_now_ms() + (uint64_t)timeout_ms : 0;

    PyObject *r = cn_greenlet_switch(gw->hub, NULL);

    int rc = gc->wake_result;
    if (r == NULL) {
        /* Thrown into us: GreenletExit (killed), or the app's exception
         * (gevent.Timeout), kept for gevent_exc: the wait fails with
         * -ECANCELED and conn.c's body read raises that exception again. */
        if (PyErr_ExceptionMatches(cn_greenlet_exit_type())) {
            gc->cancelled = 1;
            PyErr_Clear();
        }
        else {
            PyErr_Fetch(&gc->exc_t, &gc->exc_v, &gc->exc_tb);
        }
        rc = -ECANCELED;
    }
    Py_XDECREF(r);
    gc->waiting = 0;
    Py_CLEAR(gc->waiter);
    if (want_write && watcher_call(*wp, gw->s_stop) < 0) {
        PyErr_Clear();
    }
    return rc;
}

/* cn_worker.coop_exc: hand the exception thrown into fd's last wait back
 * (set again, 1), or 0. */
static int
gevent_exc(cn_worker *w, int fd)
{
    gworker *gw = (gworker *)w;
    if (fd < 0 || fd >= gw->nfd || gw->byfd[fd] == NULL || gw->byfd[fd]->exc_t == NULL) {
        return 0;
    }
    gconn *gc = gw->byfd[fd];
    PyErr_Restore(gc->exc_t, gc->exc_v, gc->exc_tb);
    gc->exc_t = gc->exc_v = gc->exc_tb = NULL;
    return 1;
}

/* cn_worker.coop_wait: find the connection by fd and wait on it. */
static int
gevent_wait(cn_worker *w, int fd, short events, int timeout_ms)
{
    gworker *gw = (gworker *)w;
    if (fd < 0 || fd >= gw->nfd || gw->byfd[fd] == NULL) {
        return -EBADF;
    }
    return gconn_wait(gw->byfd[fd], events, timeout_ms);
}

/* Switch into a connection's greenlet (hub context) until it switches back
 * to the hub or ends; the connection it serves may be freed meanwhile, so
 * the caller must not touch it after.  Never leaves an exception set. */
static void
switch_into(gworker *gw, PyObject *greenlet)
{
    PyObject *g = Py_NewRef(greenlet);
    PyObject *r = cn_greenlet_switch(g, NULL);
    Py_DECREF(g);
    if (r == NULL) {
        cn_worker_log(&gw->w, "error", "gevent: a connection greenlet failed", 1);
    }
    Py_XDECREF(r);
}

/* Resume gc's waiting greenlet with `result` as its wait's result.  Called
 * in the hub (a watcher callback); returns when that greenlet switches back
 * to the hub or ends.  gc may be freed on return.  Never leaves an
 * exception set. */
static void
wake_conn(gconn *gc, int result)
{
    if (!gc->waiting || gc->waiter == NULL) {
        return; /* a stale event: that wait is over */
    }
    gworker *gw = gc->gw;
    gc->waiting = 0;
    gc->wake_result = result;
    switch_into(gw, gc->waiter);
}

/* The read watcher's callback: self is the connection's capsule.  Wakes
 * the greenlet waiting to read; fired while nobody waits (the app is busy
 * and the client sent more), it stops the watcher, which the next wait
 * starts again. */
static PyObject *
conn_wake(PyObject *self, PyObject *Py_UNUSED(unused))
{
    Py_INCREF(self); /* the greenlet may drop its references meanwhile */
    gconn *gc = conn_of(self);
    if (gc != NULL) {
        if (gc->waiting == POLLIN) {
            wake_conn(gc, 0);
        }
        else if (gc->rw_on && gc->rw != NULL) {
            gc->rw_on = 0;
            if (watcher_call(gc->rw, gc->gw->s_stop) < 0) {
                PyErr_Clear();
            }
        }
    }
    PyErr_Clear();
    Py_DECREF(self);
    Py_RETURN_NONE;
}

/* The write watcher's callback (started only while a greenlet waits to
 * write). */
static PyObject *
conn_wake_w(PyObject *self, PyObject *Py_UNUSED(unused))
{
    Py_INCREF(self);
    gconn *gc = conn_of(self);
    if (gc != NULL && gc->waiting == POLLOUT) {
        wake_conn(gc, 0);
    }
    PyErr_Clear();
    Py_DECREF(self);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------ accepting */

/* Start or stop every listener's watcher.  CN_GIL, any greenlet. */
static void
set_accepting(gworker *gw, int on)
{
    if (gw->accepting == on || gw->lwatch == NULL) {
        return;
    }
    for (int i = 0; i < gw->w.nlisteners; i++) {
        int rc;
        if (on) {
            PyObject *idx = PyLong_FromLong(i);
            rc = idx == NULL ? -1 : watcher_start(gw, gw->lwatch[i], gw->accept_cb, idx);
            Py_XDECREF(idx);
        }
        else {
            rc = watcher_call(gw->lwatch[i], gw->s_stop);
        }
        if (rc < 0) {
            cn_worker_log(&gw->w, "error", "gevent: cannot switch a listener watcher", 1);
        }
    }
    gw->accepting = on;
}

/* Accept again if nothing stands in the way (drain, the connection cap, an
 * EMFILE back-off). */
static void
maybe_resume_accepting(gworker *gw)
{
    if (!gw->accepting && !gw->stopping && !gw->stop_asked && !gw->killing
        && gw->nconns < gw->max_conns
        && cn_now_ms() >= gw->backoff_until) {
        set_accepting(gw, 1);
    }
}

/* Make the fd table hold `fd`.  0 or -ENOMEM. */
static int
byfd_reserve(gworker *gw, int fd)
{
    if (fd < gw->nfd) {
        return 0;
    }
    int n = gw->nfd ? gw->nfd : 1024;
    while (n <= fd) {
        n *= 2;
    }
    gconn **t = PyMem_Realloc(gw->byfd, (size_t)n * sizeof(gconn *));
    if (t == NULL) {
        return -ENOMEM;
    }
    memset(t + gw->nfd, 0, (size_t)(n - gw->nfd) * sizeof(gconn *));
    gw->byfd = t;
    gw->nfd = n;
    return 0;
}

static PyObject *conn_run(PyObject *self, PyObject *unused);

static PyMethodDef conn_run_def = {"cn_gevent_serve", conn_run, METH_NOARGS, NULL};

/* Free a gconn that its greenlet no longer uses (or never ran). */
static void
gconn_free(gconn *gc)
{
    Py_CLEAR(gc->wake);
    Py_CLEAR(gc->wake_w);
    Py_CLEAR(gc->revive);
    Py_CLEAR(gc->self);
    Py_CLEAR(gc->greenlet);
    Py_CLEAR(gc->waiter);
    clear_exc(gc);
    cn_conn_free_buffers(&gc->c);
    PyMem_Free(gc);
}

static void release_conn(gconn *gc);

/* Give gc a new greenlet (child of the hub) running conn_run and switch
 * into it: it runs until its first wait (or to its end) and comes back here.
 * Hub context.  gc may be freed on return.  Never leaves an exception. */
static void
run_conn(gconn *gc)
{
    gworker *gw = gc->gw;
    PyObject *run = PyCFunction_New(&conn_run_def, gc->self);
    if (run != NULL) {
        gc->greenlet = cn_greenlet_new(run, gw->hub);
        Py_DECREF(run);
    }
    if (gc->greenlet == NULL) {
        cn_worker_log(&gw->w, "error", "gevent: cannot start a connection greenlet", 1);
        release_conn(gc);
        return;
    }
    switch_into(gw, gc->greenlet);
}

/* Serve the accepted socket `fd` in a new greenlet, switched into at once:
 * it runs until its first wait (or to its end) and comes back here.  Takes
 * the fd (closed on failure).  Hub context.  Never leaves an exception. */
static void
start_conn(gworker *gw, int fd, int listener, const struct sockaddr_storage *peer,
           socklen_t peer_len)
{
    gconn *gc = NULL;
    if (byfd_reserve(gw, fd) < 0 || (gc = PyMem_Calloc(1, sizeof(gconn))) == NULL) {
        close(fd);
        cn_worker_log(&gw->w, "error", "gevent: out of memory accepting a connection", 0);
        return;
    }
    gc->gw = gw;
    gc->c.fd = fd;
    gc->c.listener = listener;
    gc->c.w = &gw->w;
    memcpy(&gc->c.peer, peer, sizeof(*peer));
    gc->c.peer_len = peer_len;
    cn_peer_ip(&gc->c);
    gc->self = PyCapsule_New(gc, "cunicorn.gconn", NULL);
    if (gc->self != NULL) {
        gc->wake = PyCFunction_New(&conn_wake_def, gc->self);
    }
    if (gc->wake == NULL) {
        cn_worker_log(&gw->w, "error", "gevent: cannot set up a connection", 1);
        close(fd);
        gc->c.fd = -1;
        gconn_free(gc);
        return;
    }
    gw->byfd[fd] = gc;
    gw->nconns++;
    run_conn(gc);
}

/* A listener is readable: accept a batch, each into its own greenlet,
 * within worker_connections.  Hub context; `arg` is the listener index. */
static PyObject *
on_accept(PyObject *self, PyObject *arg)
{
    gworker *gw = worker_of(self);
    long i = PyLong_AsLong(arg);
    if (gw == NULL || i < 0 || i >= gw->w.nlisteners) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    int lfd = gw->w.listeners[i].fd;
    for (int n = 0; n < CN_ACCEPT_BATCH && gw->accepting; n++) {
        if (gw->nconns >= gw->max_conns) {
            set_accepting(gw, 0); /* a closing connection resumes */
            break;
        }
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);
        int fd = accept4(lfd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            if (err == EINTR || err == ECONNABORTED) {
                continue;
            }
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
                cn_worker_log_emfile(&gw->w);
                gw->backoff_until = cn_now_ms() + CN_ACCEPT_BACKOFF_MS;
                set_accepting(gw, 0); /* the ticker resumes */
            }
            break; /* EAGAIN: another worker took it, or none left */
        }
        if (peer.ss_family == AF_INET || peer.ss_family == AF_INET6) {
            int one = 1;
            (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        start_conn(gw, fd, (int)i, &peer, len);
    }
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------ one connection */

/* Ask for the graceful stop from any greenlet: accept no more now; the
 * ticker (in the hub) begins the drain.  `why` is static text to log. */
static void
ask_stop(gworker *gw, const char *why)
{
    if (!gw->stop_asked) {
        gw->stop_asked = 1;
        gw->stop_why = why;
        set_accepting(gw, 0);
    }
}

/* Wait for the next request on a connection with nothing buffered, holding
 * no buffer meanwhile.  1: bytes (or EOF) are there, read the head; 0:
 * close; 2: still idle after CN_PARK_MS, park it (gc->deadline is when its
 * wait ends).  A MSG_PEEK first finds a request that is there already (a new
 * connection's first, or a fast client's next) without a trip through the
 * hub; at most CN_STREAK_MAX times in a row, for fairness. */
static int
wait_next_request(gconn *gc, int timeout_ms)
{
    cn_conn *c = &gc->c;
    uint64_t end = cn_now_ms() + (uint64_t)timeout_ms;
    if (c->nrequests == 0 || gc->streak < CN_STREAK_MAX) {
        char b;
        ssize_t n = recv(c->fd, &b, 1, MSG_PEEK);
        if (n > 0) {
            gc->streak++;
            return 1;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            return 0;
        }
    }
    gc->streak = 0;
    cn_conn_free_buffers(c);
    gc->idle = 1;
    int park = timeout_ms > CN_PARK_MS;
    int r = gconn_wait(gc, POLLIN, park ? CN_PARK_MS : timeout_ms);
    gc->idle = 0;
    if (r == -ETIMEDOUT && park && !gc->cancelled && !gc->gw->killing) {
        gc->deadline = end; /* the keep-alive limit, kept while parked */
        return 2;
    }
    return r == 0;
}

/* Serve requests on the connection until it closes (keep-alive, pipelined
 * requests in order).  Returns 1 to close with a lingering drain, 0 to close
 * at once, 2 to park it. */
static int
serve_connection(gconn *gc)
{
    gworker *gw = gc->gw;
    cn_worker *w = &gw->w;
    cn_conn *c = &gc->c;
    for (;;) {
        if (c->pos == c->len) {
            if ((gw->stopping || gw->stop_asked) && c->nrequests > 0) {
                return 0;
            }
            int timeout = c->nrequests > 0 ? w->keepalive_ms : w->head_timeout_ms;
            int r = wait_next_request(gc, timeout > 0 ? timeout : 1);
            if (r != 1) {
                return r == 2 ? 2 : 0;
            }
        }
        int r = cn_serve_head_result(w, c, cn_conn_read_head(c, &w->limits, w->head_timeout_ms));
        if (r != 1) {
            return r < 0;
        }
        int last = cn_worker_max_reached(w, 1);
        if (gw->stopping || gw->stop_asked || last || w->keepalive_ms == 0) {
            c->keepalive = 0; /* the response says Connection: close */
        }
        r = cn_serve_request(w, c);
        if (last) {
            ask_stop(gw, "Autorestarting worker after current request.");
        }
        if (r <= 0) {
            return r < 0;
        }
        if (gc->cancelled || gw->killing) {
            return 0;
        }
        if (cn_conn_discard_body(c, CN_DISCARD_LIMIT) < 0) {
            return 1;
        }
    }
}

/* Close and free a connection that no greenlet is serving any more (its
 * own, at its end, or none: parked).  No switch; any context. */
static void
release_conn(gconn *gc)
{
    gworker *gw = gc->gw;
    cn_conn *c = &gc->c;
    watcher_drop(gw, &gc->rw);
    watcher_drop(gw, &gc->ww);
    gc->rw_on = 0;
    if (c->fd >= 0 && c->fd < gw->nfd && gw->byfd[c->fd] == gc) {
        gw->byfd[c->fd] = NULL;
    }
    cn_conn_close(c, 0);
    gw->nconns--;
    gconn_free(gc);
    maybe_resume_accepting(gw);
}

/* The parked connection's socket is readable: serve it in a new greenlet.
 * Hub context (rw's callback); self is the capsule. */
static PyObject *
conn_revive(PyObject *self, PyObject *Py_UNUSED(unused))
{
    Py_INCREF(self);
    gconn *gc = conn_of(self);
    if (gc != NULL && gc->parked) {
        gc->parked = 0;
        gc->deadline = 0;
        gc->rw_on = 0;
        if (watcher_call(gc->rw, gc->gw->s_stop) < 0) {
            PyErr_Clear();
        }
        run_conn(gc); /* may free gc */
    }
    PyErr_Clear();
    Py_DECREF(self);
    Py_RETURN_NONE;
}

static PyMethodDef conn_revive_def = {"cn_gevent_revive", conn_revive, METH_NOARGS, NULL};

/* Park an idle keep-alive connection: its read watcher calls conn_revive
 * when the next request comes; the ticker closes it at gc->deadline.
 * 0, or -1 (then close it). */
static int
park_conn(gconn *gc)
{
    gworker *gw = gc->gw;
    if (gc->revive == NULL) {
        gc->revive = PyCFunction_New(&conn_revive_def, gc->self);
    }
    if (gc->revive == NULL || gc->rw == NULL
        || watcher_start(gw, gc->rw, gc->revive, NULL) < 0) {
        PyErr_Clear();
        return -1;
    }
    gc->rw_on = RW_REVIVE;
    gc->parked = 1;
    return 0;
}

/* The greenlet's run: serve; then park the connection, or close and free
 * it.  self is the gconn's capsule.  Always returns None (errors are
 * logged). */
static PyObject *
conn_run(PyObject *self, PyObject *Py_UNUSED(unused))
{
    gconn *gc = conn_of(self);
    if (gc == NULL) {
        return NULL;
    }
    Py_INCREF(self);
    gworker *gw = gc->gw;
    int how = serve_connection(gc);
    if (PyErr_Occurred()) {
        cn_worker_log(&gw->w, "error", "gevent: error serving a connection", 1);
    }
    if (how == 2 && park_conn(gc) == 0) {
        Py_CLEAR(gc->greenlet); /* this greenlet ends; another serves the next request */
    }
    else {
        if (how == 1 && !gc->cancelled && !gw->killing) {
            cn_conn_linger(&gc->c); /* waits through gevent_wait */
        }
        release_conn(gc);
    }
    Py_DECREF(self);
    PyErr_Clear();
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------ the ticker */

/* Begin the graceful stop: accept no more, close idle keep-alive
 * connections, let the others finish their request (their response says
 * Connection: close) until graceful_timeout.  Hub context. */
static void
begin_drain(gworker *gw, const char *why)
{
    if (gw->stopping) {
        return;
    }
    if (why != NULL) {
        cn_worker_log(&gw->w, "info", why, 0);
    }
    gw->stopping = 1;
    gw->drain_deadline = cn_now_ms() + (uint64_t)gw->w.graceful_timeout_ms;
    set_accepting(gw, 0);
    for (int fd = 0; fd < gw->nfd; fd++) {
        gconn *gc = gw->byfd[fd];
        if (gc == NULL) {
            continue;
        }
        gc->c.must_close = 1;
        if (gc->parked) {
            release_conn(gc);
        }
        else if (gc->idle) {
            wake_conn(gc, -ECANCELED); /* may free gc */
        }
    }
}

/* Every CN_TICK_S in the hub: heartbeat, signals, parent, max_requests,
 * wait deadlines, the EMFILE back-off, the end of a drain. */
static PyObject *
on_tick(PyObject *self, PyObject *Py_UNUSED(unused))
{
    gworker *gw = worker_of(self);
    if (gw == NULL) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    cn_worker *w = &gw->w;
    cn_heartbeat_beat(w->heartbeats, w->slot);
    if (cn_worker_quitting()) {
        gw->done = 1;
    }
    else if (!gw->stopping) {
        if (gw->stop_asked) {
            begin_drain(gw, gw->stop_why);
        }
        else if (cn_worker_stopping()) {
            begin_drain(gw, NULL);
        }
        else if (getppid() != gw->ppid) {
            begin_drain(gw, "Parent changed, shutting down");
        }
    }
    uint64_t now = cn_now_ms();
    for (int fd = 0; !gw->done && fd < gw->nfd; fd++) {
        gconn *gc = gw->byfd[fd];
        if (gc == NULL || gc->deadline == 0 || now < gc->deadline) {
            continue;
        }
        if (gc->parked) {
            release_conn(gc); /* the keep-alive timeout */
        }
        else if (gc->waiting) {
            wake_conn(gc, -ETIMEDOUT); /* may free gc */
        }
    }
    maybe_resume_accepting(gw);
    if (gw->stopping && (gw->nconns == 0 || cn_now_ms() >= gw->drain_deadline)) {
        gw->done = 1;
    }
    if (gw->done && gw->main_waiting) {
        gw->main_waiting = 0;
        PyObject *r = cn_greenlet_switch(gw->main, NULL);
        Py_XDECREF(r); /* only when the main greenlet sleeps again */
    }
    PyErr_Clear();
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------ set-up, tear-down */

static PyMethodDef on_accept_def = {"cn_gevent_accept", on_accept, METH_O, NULL};
static PyMethodDef on_tick_def = {"cn_gevent_tick", on_tick, METH_NOARGS, NULL};

/* gevent's hub (gevent.get_hub()) and its loop into gw.  0 or -1. */
static int
attach_hub(gworker *gw)
{
    PyObject *mod = PyImport_ImportModule("gevent.hub");
    if (mod == NULL) {
        return -1;
    }
    gw->hub = PyObject_CallMethod(mod, "get_hub", NULL);
    Py_DECREF(mod);
    if (gw->hub == NULL) {
        return -1;
    }
    gw->loop = PyObject_GetAttrString(gw->hub, "loop");
    gw->main = cn_greenlet_current();
    if (gw->loop == NULL || gw->main == NULL) {
        return -1;
    }
    if (gw->main == gw->hub) {
        PyErr_SetString(PyExc_RuntimeError, "run_worker_gevent cannot run in gevent's hub");
        return -1;
    }
    gw->s_start = PyUnicode_InternFromString("start");
    gw->s_stop = PyUnicode_InternFromString("stop");
    gw->s_close = PyUnicode_InternFromString("close");
    if (gw->s_start == NULL || gw->s_stop == NULL || gw->s_close == NULL) {
        return -1;
    }
    return 0;
}

/* Listener and ticker watchers.  0 or -1. */
static int
make_watchers(gworker *gw)
{
    int n = gw->w.nlisteners;
    gw->lwatch = PyMem_Calloc((size_t)n, sizeof(PyObject *));
    if (gw->lwatch == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (int i = 0; i < n; i++) {
        gw->lwatch[i] = PyObject_CallMethod(gw->loop, "io", "ii", gw->w.listeners[i].fd, 1);
        if (gw->lwatch[i] == NULL) {
            return -1;
        }
    }
    gw->accept_cb = PyCFunction_New(&on_accept_def, gw->self);
    gw->tick_cb = PyCFunction_New(&on_tick_def, gw->self);
    if (gw->accept_cb == NULL || gw->tick_cb == NULL) {
        return -1;
    }
    gw->ticker = PyObject_CallMethod(gw->loop, "timer", "dd", CN_TICK_S, CN_TICK_S);
    if (gw->ticker == NULL) {
        return -1;
    }
    return watcher_start(gw, gw->ticker, gw->tick_cb, NULL);
}

/* End every connection still open: each greenlet gets GreenletExit at its
 * switch point, with the main greenlet as its parent so that it comes back
 * here when it ends.  Main greenlet. */
static void
kill_conns(gworker *gw)
{
    gw->killing = 1;
    for (int fd = 0; fd < gw->nfd; fd++) {
        gconn *gc = gw->byfd[fd];
        if (gc == NULL) {
            continue;
        }
        if (gc->parked || gc->greenlet == NULL) {
            release_conn(gc);
            continue;
        }
        PyObject *g = Py_NewRef(gc->greenlet);
        if (cn_greenlet_active(g) && cn_greenlet_set_parent(g, gw->main) == 0) {
            PyObject *r = cn_greenlet_throw(g, cn_greenlet_exit_type());
            Py_XDECREF(r);
        }
        PyErr_Clear();
        Py_DECREF(g);
        if (gw->byfd[fd] == gc) {
            /* Still there: its greenlet is stuck somewhere we cannot reach.
             * Close the socket and leave the rest to the process exit. */
            gw->byfd[fd] = NULL;
            cn_conn_close(&gc->c, 0);
        }
    }
}

static void
gworker_clear(gworker *gw)
{
    if (gw->lwatch != NULL) {
        for (int i = 0; i < gw->w.nlisteners; i++) {
            watcher_drop(gw, &gw->lwatch[i]);
        }
        PyMem_Free(gw->lwatch);
        gw->lwatch = NULL;
    }
    watcher_drop(gw, &gw->ticker);
    Py_CLEAR(gw->accept_cb);
    Py_CLEAR(gw->tick_cb);
    PyMem_Free(gw->byfd);
    gw->byfd = NULL;
    gw->nfd = 0;
    Py_CLEAR(gw->s_start);
    Py_CLEAR(gw->s_stop);
    Py_CLEAR(gw->s_close);
    Py_CLEAR(gw->loop);
    Py_CLEAR(gw->hub);
    Py_CLEAR(gw->main);
    Py_CLEAR(gw->self);
    cn_worker_clear(&gw->w);
}

PyObject *
cn_run_worker_gevent(PyObject *module, PyObject *args, PyObject *kwargs)
{
    /* run_worker's keywords plus worker_connections (clamped, as gunicorn
     * takes any value) */
    long max_conns = 1000;
    PyObject *kw = kwargs != NULL ? PyDict_Copy(kwargs) : PyDict_New();
    if (kw == NULL) {
        return NULL;
    }
    if (cn_kw_pop_long(kw, "worker_connections", LONG_MIN, &max_conns) < 0) {
        Py_DECREF(kw);
        return NULL;
    }
    max_conns = max_conns < 1 ? 1 : (max_conns > 1000000 ? 1000000 : max_conns);
    gworker *gw = PyMem_Calloc(1, sizeof(gworker));
    PyObject *ret = NULL;
    if (gw == NULL) {
        Py_DECREF(kw);
        return PyErr_NoMemory();
    }
    int rc = cn_worker_init_from_args(&gw->w, module, args, kw);
    Py_DECREF(kw);
    if (rc < 0 || cn_greenlet_import() < 0 || attach_hub(gw) < 0) {
        goto done;
    }
    gw->max_conns = (int)max_conns;
    gw->w.coop_wait = gevent_wait;
    gw->w.coop_exc = gevent_exc;
    gw->self = PyCapsule_New(gw, "cunicorn.gworker", NULL);
    /* the fd table grows with the highest fd accepted (start_conn) */
    if (gw->self == NULL || byfd_reserve(gw, 1023) < 0) {
        if (!PyErr_Occurred()) {
            PyErr_NoMemory();
        }
        goto done;
    }
    if (cn_worker_install_signals() < 0 || make_watchers(gw) < 0) {
        goto done;
    }
    gw->ppid = getppid();
    cn_heartbeat_beat(gw->w.heartbeats, gw->w.slot);
    set_accepting(gw, 1);

    /* Sleep in the hub; the ticker switches back here when the worker is
     * done (quit, or the drain is over). */
    while (!gw->done) {
        gw->main_waiting = 1;
        PyObject *r = cn_greenlet_switch(gw->hub, NULL);
        gw->main_waiting = 0;
        if (r == NULL) {
            /* The hub ended or threw into us (LoopExit, SystemExit...). */
            cn_worker_log(&gw->w, "error", "gevent: the hub stopped", 1);
            break;
        }
        Py_DECREF(r);
    }
    set_accepting(gw, 0);
    watcher_drop(gw, &gw->ticker);
    kill_conns(gw);
    ret = PyLong_FromLong(0);

done:
    gworker_clear(gw);
    PyMem_Free(gw);
    return ret;
}

#endif /* CN_HAVE_GREENLET */
