/* Per-worker settings and state shared by the engine files (worker_sync.c
 * today; gthread and gevent later).  One per worker process; owned by the
 * worker's run function. */
#ifndef CN_WORKER_H
#define CN_WORKER_H

#include "module.h"
#include "parser.h"

#include <stdint.h>
#include <time.h>

typedef struct {
    int fd;
    PyObject *server_name; /* strong: SERVER_NAME */
    PyObject *server_port; /* strong: SERVER_PORT */
} cn_listener;

/* environ key ("HTTP_ACCEPT") for a header name, cached by name (environ.c). */
#define CN_HKEY_CACHE 128
#define CN_HKEY_MAXLEN 40
typedef struct {
    unsigned char len;
    char name[CN_HKEY_MAXLEN]; /* upper-cased header name */
    PyObject *key;             /* strong */
} cn_hkey;

/* A list of trusted peers (forwarded_allow_ips, proxy_allow_ips): addresses
 * and networks (an address is a network of its full length), or everyone. */
typedef struct {
    unsigned char family;      /* AF_INET or AF_INET6 */
    unsigned char prefix;      /* bits of addr that must match */
    unsigned char addr[16];
} cn_net;

typedef struct {
    int any;                   /* "*" */
    int n;
    cn_net *nets;              /* PyMem, n of them */
} cn_allow;

typedef struct cn_worker {
    cn_state *st;              /* borrowed: module state */
    PyObject *app;             /* strong */
    PyObject *base_environ;    /* strong dict, copied per request */
    PyObject *access_log;      /* strong or NULL */
    PyObject *error_log;       /* strong or NULL */
    cn_listener *listeners;
    int nlisteners;
    void *heartbeats;          /* shared table or NULL (inside hb) */
    Py_buffer hb;              /* the heartbeat table's buffer, or hb.obj NULL */
    int slot;
    int timeout_ms;            /* worker timeout; also the I/O wait limit */
    int graceful_timeout_ms;
    int keepalive_ms;
    long max_requests;         /* 0 = unlimited */
    cn_limits limits;          /* parser policy from the limit_* settings */
    int head_timeout_ms;       /* a request head must arrive within this */
    int sendfile;              /* FileWrapper responses with sendfile(2) */
    /* The environment's SCRIPT_NAME (the base environ's), which a request
     * path must start with (cn_request_script); script_len 0: none.  As
     * latin-1 text, the path's; script_wide: characters beyond latin-1
     * (then UTF-8, for the message), a prefix of no path. */
    char *script_name;         /* PyMem or NULL */
    size_t script_len;
    int script_wide;
    uint64_t requests;         /* served so far */
    uint64_t emfile_logged_ms; /* last "too many open files" log line */

    /* Cooperative waits (the gevent worker): when set, conn.c keeps the GIL
     * around I/O and calls this on EAGAIN instead of poll(); it returns 0
     * when fd is ready, -ETIMEDOUT or -errno.  NULL: blocking waits with the
     * GIL released (sync, gthread pool threads). */
    int (*coop_wait)(struct cn_worker *w, int fd, short events, int timeout_ms);
    /* Cooperative workers: when the last wait on fd failed because an
     * exception was thrown into the waiting greenlet (the app's
     * gevent.Timeout around a wsgi.input read), set that exception again and
     * return 1 (it is handed over once); else 0.  NULL: no such waits. */
    int (*coop_exc)(struct cn_worker *w, int fd);

    /* "Date:" value, recomputed at most once a second (response.c). */
    time_t date_sec;
    char date[40];
    size_t date_len;

    cn_hkey hkeys[CN_HKEY_CACHE];

    /* Proxy trust: proxy_allow_ips and forwarded_allow_ips. */
    cn_allow proxy_allow;
    cn_allow forwarded_allow;
    /* secure_scheme_headers: upper-case names and the value meaning https. */
    int nsecure;
    char secure_name[8][64];
    char secure_value[8][64];
} cn_worker;

/* Log `msg` at `level` ("debug", "info", "warning", "error", "critical")
 * through the worker's error_log callable (stderr when none).  With
 * with_exc != 0 a Python exception is set on entry: it is passed to the log
 * as the traceback and cleared.  CN_GIL.  Never fails (a failing logger is
 * reported with PyErr_WriteUnraisable). */
void cn_worker_log(cn_worker *w, const char *level, const char *msg, int with_exc);

/* Log that accept() ran out of descriptors (EMFILE and the like) and the
 * worker backs off, at most once a minute: the back-offs come ten times a
 * second while it lasts.  CN_GIL. */
void cn_worker_log_emfile(cn_worker *w);

/* Whether a quick stop (QUIT/INT) or graceful stop (TERM) was asked for.
 * Async-signal flags; any thread. */
int cn_worker_quitting(void);
int cn_worker_stopping(void);

/* Install the worker's signal handlers (worker_common.c).  0 or -1 with
 * OSError set.  Call once in the worker process, main thread. */
int cn_worker_install_signals(void);

/* Fill a zeroed `w` from run_worker's arguments (args = (app, listeners,
 * base_environ), kwargs = the keywords of _cserver.run_worker).  0, or -1
 * with an exception set; either way release `w` with cn_worker_clear.
 * CN_GIL (worker_args.c). */
int cn_worker_init_from_args(cn_worker *w, PyObject *module, PyObject *args, PyObject *kwargs);

/* Whether the worker has served max_requests once `more` requests are
 * added to those counted (0: now; 1: after the one about to be served):
 * then it retires (gunicorn's max_requests, jitter applied). */
static inline int
cn_worker_max_reached(const cn_worker *w, uint64_t more)
{
    return w->max_requests > 0 && w->requests + more >= (uint64_t)w->max_requests;
}

/* Pop the int keyword `name` from `kw` (a dict the caller owns) into *out,
 * which keeps its default when absent; below `lo` is a ValueError.  0, or
 * -1 with an exception.  CN_GIL. */
int cn_kw_pop_long(PyObject *kw, const char *name, long lo, long *out);

/* Drop every reference and buffer cn_worker_init_from_args took.  CN_GIL. */
void cn_worker_clear(cn_worker *w);

/* In a new worker process, before the app is imported: a TERM arriving
 * while the worker boots sets the stop flag instead of killing it, so the
 * worker finishes booting, serves nothing and exits cleanly ("Worker
 * exiting"), as gunicorn's workers do.  0 or -errno.  No Python. */
int cn_worker_catch_term_early(void);

/* Mark whether the app is running (a QUIT then exits at once). */
void cn_worker_set_in_app(int in_app);

#endif
