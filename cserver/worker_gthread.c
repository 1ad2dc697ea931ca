/* The gthread worker's entry point (worker_gthread.c): _cserver.
 * run_worker_gthread.  Runs in the worker process's main thread, called from
 * Python (cunicorn.arbiter) with the GIL.  It starts the loop thread
 * (loop.c) and the pool (threadpool.c), then waits with the GIL released:
 * signals are delivered to this thread only (the others block them), and it
 * turns the flags they set into requests for the loop thread (TERM: graceful
 * stop; QUIT/INT: stop now), runs the Python signal handlers (USR1, the
 * worker_int / worker_abort hooks), watches for the parent's death, and logs
 * what the loop thread noticed (it cannot call Python).  See gthread.h for the
 * threads, the ownership of connections and the lock order. */
#include "gthread.h"

#include "heartbeat.h"
#include "module_parts.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define GT_MAIN_TICK_MS 100

/* Start the loop thread and the pool with every signal blocked in them, so
 * that signals reach the main thread only.  0 or -errno; *loop_started says
 * whether the loop thread runs (it is told to quit when the pool failed).
 * CN_GIL. */
static int
start_threads(cn_gthread *g, int *loop_started)
{
    sigset_t all, old;
    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int err = pthread_create(&g->loop_thread, NULL, cn_gt_loop_main, g);
    *loop_started = err == 0;
    if (err == 0) {
        err = -cn_gt_pool_start(g);
        if (err != 0) {
            atomic_store(&g->quit_req, 1);
            cn_gt_wake(g);
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return -err;
}

/* Sleep up to GT_MAIN_TICK_MS, or until the loop thread ends or a signal
 * comes; meanwhile stand in for the loop thread while it serves a request
 * inline for too long (cn_gt_watch).  While it serves inline at all, look
 * every GT_WATCH_MS.  No GIL. */
static void
wait_tick(cn_gthread *g, unsigned *seen)
{
    struct pollfd pfd = {.fd = g->done_fd, .events = POLLIN};
    int64_t end = cn_gt_clock_ns(CLOCK_MONOTONIC) + GT_MAIN_TICK_MS * 1000000LL;
    for (;;) {
        unsigned batches = atomic_load(&g->inline_batches);
        int inline_busy = batches != *seen || atomic_load(&g->inline_since) != 0;
        *seen = batches;
        int64_t left_ms = (end - cn_gt_clock_ns(CLOCK_MONOTONIC)) / 1000000;
        if (left_ms <= 0) {
            return;
        }
        int ms = inline_busy && left_ms > GT_WATCH_MS ? GT_WATCH_MS : (int)left_ms;
        if (poll(&pfd, 1, ms) != 0) {
            return; /* the loop ended, or a signal (EINTR) */
        }
        if (cn_gt_watch(g, end)) {
            return;
        }
    }
}

/* Wait for the loop thread to end, relaying signals and notices.  CN_GIL
 * (released while waiting).  0, or -1 when the loop ended while the loop
 * thread was stuck serving inline (it is not joined). */
static int
wait_loop(cn_gthread *g)
{
    pid_t ppid = getppid();
    int stop_sent = 0, quit_sent = 0, retire_logged = 0;
    unsigned seen = 0;
    while (!atomic_load(&g->loop_done)) {
        Py_BEGIN_ALLOW_THREADS
        wait_tick(g, &seen);
        Py_END_ALLOW_THREADS
        /* Python handlers (USR1 reopen, worker_int / worker_abort hooks:
         * worker_common.c hands them the signal) run only in this, the
         * main thread, and only when it checks. */
        if (PyErr_CheckSignals() < 0) {
            PyErr_WriteUnraisable(NULL);
        }
        if (cn_worker_quitting() && !quit_sent) {
            quit_sent = 1;
            atomic_store(&g->quit_req, 1);
            cn_gt_wake(g);
        }
        else if (!stop_sent && (cn_worker_stopping() || getppid() != ppid)) {
            if (getppid() != ppid) {
                cn_worker_log(&g->w, "info", "Parent changed, shutting down", 0);
            }
            stop_sent = 1;
            atomic_store(&g->stop_req, 1);
            cn_gt_wake(g);
        }
        if (atomic_exchange(&g->emfile_note, 0)) {
            cn_worker_log_emfile(&g->w);
        }
        if (!retire_logged && atomic_load(&g->retire_req)) {
            retire_logged = 1;
            cn_worker_log(&g->w, "info", "Autorestarting worker after current request.", 0);
        }
    }
    if (atomic_load(&g->abandoned)) {
        return -1;
    }
    Py_BEGIN_ALLOW_THREADS
    pthread_join(g->loop_thread, NULL);
    Py_END_ALLOW_THREADS
    return 0;
}

PyObject *
cn_run_worker_gthread(PyObject *module, PyObject *args, PyObject *kwargs)
{
    long threads = 1, worker_connections = 1000;
    PyObject *kw = kwargs != NULL ? PyDict_Copy(kwargs) : PyDict_New();
    if (kw == NULL) {
        return NULL;
    }
    if (cn_kw_pop_long(kw, "threads", 1, &threads) < 0
        || cn_kw_pop_long(kw, "worker_connections", 1, &worker_connections) < 0) {
        Py_DECREF(kw);
        return NULL;
    }
    if (threads > 1024 || worker_connections > 1000000) {
        Py_DECREF(kw);
        PyErr_SetString(PyExc_ValueError, "threads or worker_connections out of range");
        return NULL;
    }
    /* Plain calloc: the loop thread reads this without the GIL. */
    cn_gthread *g = calloc(1, sizeof(cn_gthread));
    if (g == NULL) {
        Py_DECREF(kw);
        return PyErr_NoMemory();
    }
    g->done_fd = -1;
    g->nthreads = (int)threads;
    g->max_conns = (int)worker_connections;
    pthread_mutex_init(&g->pool_mu, NULL);
    pthread_mutex_init(&g->back_mu, NULL);
    pthread_mutex_init(&g->loop_mu, NULL);
    pthread_cond_init(&g->pool_cv, NULL);
    pthread_cond_init(&g->exit_cv, NULL);
    pthread_cond_init(&g->fast_cv, NULL);
    pthread_mutex_init(&g->batch_mu, NULL);

    PyObject *ret = NULL;
    int loop_started = 0, leak = 0;
    int rc = cn_worker_init_from_args(&g->w, module, args, kw);
    Py_DECREF(kw);
    if (rc < 0) {
        goto done;
    }
    if (cn_worker_install_signals() < 0) {
        goto done;
    }
    g->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int err = g->done_fd < 0 ? -errno : cn_gt_loop_init(g);
    if (err == 0) {
        err = start_threads(g, &loop_started);
    }
    if (err != 0) {
        if (loop_started) {
            Py_BEGIN_ALLOW_THREADS
            pthread_join(g->loop_thread, NULL);
            Py_END_ALLOW_THREADS
            leak = !cn_gt_pool_stop(g, 1000);
        }
        errno = -err;
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    if (wait_loop(g) < 0) {
        leak = 1; /* the loop thread is still in the app, using g */
        cn_gt_pool_stop(g, 0);
        if (!cn_worker_quitting()) {
            cn_worker_log(&g->w, "warning",
                          "graceful timeout: exiting with requests in flight", 0);
        }
        ret = PyLong_FromLong(0);
        goto done;
    }
    /* After a clean stop every pool thread is idle or about to be; after
     * the graceful deadline or a quick stop some may still be in the app:
     * they are left running (the process exits next) and nothing they use
     * is freed. */
    int forced = atomic_load(&g->forced);
    if (!cn_gt_pool_stop(g, forced ? 0 : 1000)) {
        leak = 1;
        if (!cn_worker_quitting()) {
            cn_worker_log(&g->w, "warning",
                          "graceful timeout: exiting with requests in flight", 0);
        }
    }
    ret = PyLong_FromLong(0);

done:
    if (leak) {
        return ret;
    }
    cn_gt_loop_free(g);
    if (g->done_fd >= 0) {
        close(g->done_fd);
    }
    free(g->threads);
    cn_worker_clear(&g->w);
    pthread_mutex_destroy(&g->pool_mu);
    pthread_mutex_destroy(&g->back_mu);
    pthread_mutex_destroy(&g->loop_mu);
    pthread_cond_destroy(&g->pool_cv);
    pthread_cond_destroy(&g->exit_cv);
    pthread_cond_destroy(&g->fast_cv);
    pthread_mutex_destroy(&g->batch_mu);
    free(g);
    return ret;
}
