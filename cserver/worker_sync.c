/* The sync worker: one connection at a time, closed after its response, as
 * gunicorn's SyncWorker.  Runs in the worker process after fork, called from
 * Python (cunicorn.arbiter) with the GIL; it releases the GIL around accept,
 * recv, send, sendfile and every wait.
 * Signals: see worker_common.c. */
#include "connio.h"
#include "environ.h"
#include "heartbeat.h"
#include "module_parts.h"
#include "serve.h"
#include "worker.h"

#include <errno.h>
#include <poll.h>
#include <sys/epoll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Serve one accepted connection: one request, then close.  CN_GIL. */
static void
serve_connection(cn_worker *w, cn_conn *c)
{
    c->has_proxy = 0;
    c->nrequests = 0;
    cn_peer_ip(c);
    int r = cn_serve_head_result(w, c, cn_conn_read_head(c, &w->limits, w->head_timeout_ms));
    if (r == 1) {
        c->keepalive = 0; /* sync: Connection: close on every response */
        r = cn_serve_request(w, c);
    }
    cn_conn_close(c, r < 0);
}

/* Wait up to a second for a listener to be readable: on the worker's epoll
 * set, whose listeners are registered EPOLLEXCLUSIVE so one connection wakes
 * one idle worker, not all of them; plain poll() where that is unavailable.
 * No GIL. */
static int
wait_listeners(int epfd, struct pollfd *pfds, int n)
{
    if (epfd >= 0) {
        struct epoll_event ev[8];
        return epoll_wait(epfd, ev, 8, 1000);
    }
    return poll(pfds, (nfds_t)n, 1000);
}

/* The worker's epoll set over the listeners, or -1 (use poll). */
static int
make_listener_epoll(cn_worker *w)
{
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        return -1;
    }
    for (int i = 0; i < w->nlisteners; i++) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.u32 = (uint32_t)i};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, w->listeners[i].fd, &ev) < 0) {
            close(epfd);
            return -1;
        }
    }
    return epfd;
}

/* Accept one connection from any listener, waiting up to a second.  1 with
 * c->fd set, 0 when nothing came (or a signal), never fails.  CN_GIL. */
static int
accept_one(cn_worker *w, cn_conn *c, int epfd, struct pollfd *pfds)
{
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < w->nlisteners; i++) {
            int fd;
            int err = 0;
            c->peer_len = sizeof(c->peer);
            Py_BEGIN_ALLOW_THREADS
            fd = accept4(w->listeners[i].fd, (struct sockaddr *)&c->peer, &c->peer_len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                err = errno;
            }
            Py_END_ALLOW_THREADS
            if (fd >= 0) {
                c->fd = fd;
                c->listener = i;
                return 1;
            }
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
                /* Out of descriptors: keep running, back off briefly. */
                cn_worker_log_emfile(w);
                Py_BEGIN_ALLOW_THREADS
                poll(NULL, 0, 100);
                Py_END_ALLOW_THREADS
                return 0;
            }
        }
        if (pass == 1 || cn_worker_stopping()) {
            break;
        }
        int r;
        Py_BEGIN_ALLOW_THREADS
        r = wait_listeners(epfd, pfds, w->nlisteners);
        Py_END_ALLOW_THREADS
        if (r <= 0) {
            return 0;
        }
    }
    return 0;
}

PyObject *
cn_run_worker(PyObject *module, PyObject *args, PyObject *kwargs)
{
    cn_worker *w = PyMem_Calloc(1, sizeof(cn_worker));
    cn_conn *c = PyMem_Calloc(1, sizeof(cn_conn));
    struct pollfd *pfds = NULL;
    int epfd = -1;
    PyObject *ret = NULL;
    if (w == NULL || c == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    c->fd = -1;
    if (cn_worker_init_from_args(w, module, args, kwargs) < 0) {
        goto done;
    }

    pfds = PyMem_Calloc((size_t)w->nlisteners, sizeof(struct pollfd));
    if (pfds == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (int i = 0; i < w->nlisteners; i++) {
        pfds[i].fd = w->listeners[i].fd;
        pfds[i].events = POLLIN;
    }
    epfd = make_listener_epoll(w);
    if (cn_worker_install_signals() < 0) {
        goto done;
    }

    pid_t ppid = getppid();
    c->fd = -1;
    c->w = w;
    while (!cn_worker_stopping()) {
        cn_heartbeat_beat(w->heartbeats, w->slot);
        /* Python handlers (USR1 reopen, worker_int/worker_abort hooks: see
         * worker_common.c) run here between connections. */
        if (PyErr_CheckSignals() < 0) {
            PyErr_WriteUnraisable(NULL);
        }
        if (getppid() != ppid) {
            cn_worker_log(w, "info", "Parent changed, shutting down", 0);
            break;
        }
        if (cn_worker_max_reached(w, 0)) {
            cn_worker_log(w, "info", "Autorestarting worker after current request.", 0);
            break;
        }
        if (accept_one(w, c, epfd, pfds)) {
            c->pos = c->len = 0;
            c->eof = 0;
            serve_connection(w, c);
        }
        if (PyErr_Occurred()) {
            PyErr_WriteUnraisable(NULL);
        }
    }
    ret = PyLong_FromLong(0);

done:
    if (c != NULL) {
        cn_conn_close(c, 0);
        cn_conn_free_buffers(c);
        PyMem_Free(c);
    }
    PyMem_Free(pfds);
    if (epfd >= 0) {
        close(epfd);
    }
    if (w != NULL) {
        cn_worker_clear(w);
        PyMem_Free(w);
    }
    return ret;
}
