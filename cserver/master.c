/* The pre-fork master loop: _cserver.run_master (contract in master.h and
 * _cserver.pyi).  Follows gunicorn's arbiter (gunicorn/arbiter.py): the same
 * signals, log lines, exit codes 3/4 and timeout handling.
 *
 * Shape:
 *   - cn_master holds everything: the worker table (indexed by heartbeat slot,
 *     so a slot is busy exactly while its worker is alive or unreaped), the
 *     target worker count, the stop state and the Python callables.
 *   - Signals are queued by master_signals.c; the loop waits on the queue with
 *     the GIL released, then, with the GIL: dispatches each signal through
 *     cn_master_signals[] (signo -> handle_*), reaps, checks heartbeats and
 *     spawns what is missing.
 *   - Python does what needs Python through the `hooks` object (protocol in
 *     _cserver.pyi, called through cn_master_call): server hooks around
 *     fork and reap, the HUP config reload, log reopening, the USR2 exec,
 *     closing the listeners and the pid file.  The C side owns the worker
 *     table, the generations (HUP retires the old one only once the new one
 *     accepts: CN_HB_UNBOOTED), the USR2 child and the promotion.
 *
 * GIL: every function here runs with the GIL held except the wait, which
 * releases it around cn_sigq_wait only.  The master is single-threaded C; Python
 * code it calls (log, spawn in the child) may run threads of its own. */
#include "master.h"

#include "heartbeat.h"
#include "master_signals.h"
#include "worker.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CN_GIL   /* caller holds the GIL */
#define CN_NOGIL /* caller must not hold the GIL */

#define CN_WORKER_BOOT_ERROR 3  /* gunicorn's Arbiter.WORKER_BOOT_ERROR */
#define CN_APP_LOAD_ERROR 4     /* gunicorn's Arbiter.APP_LOAD_ERROR */
#define CN_MAX_WAIT_MS 1000     /* the loop wakes at least once a second */
#define CN_ABORT_GRACE_MS 1000  /* SIGABRT on timeout, SIGKILL this much later */
#define CN_QUICK_STOP_MS 2000   /* INT/QUIT: longest wait before SIGKILL */
#define CN_FINAL_REAP_MS 1000   /* after the last SIGKILL, wait this for zombies */
#define CN_SIGBATCH 64          /* signals handled per wake-up */
#define CN_HUP_MAX_WAIT_MS 30000 /* old generation retires by then, booted or not */

/* The master stamps a new worker's heartbeat slot with the fork time and this
 * bit; the worker's first beat (from its accept loop) clears it.  So a slot
 * says whether its worker is accepting yet, without any change to the worker
 * side, and the timeout logic uses the time with the bit masked off. */

typedef enum {
    CN_RUNNING = 0,
    CN_STOP_GRACEFUL,   /* TERM (or exit 3/4): workers got SIGTERM */
    CN_STOP_QUICK,      /* INT/QUIT: workers got SIGQUIT */
} cn_stop_state;

/* One live (or dead but unreaped) worker; table entry index = heartbeat slot. */
typedef struct {
    pid_t pid;             /* 0: slot free */
    uint64_t age;          /* spawn order, strictly increasing (gunicorn's age) */
    unsigned generation;   /* the master's generation when spawned (HUP bumps) */
    int retiring;          /* sent SIGTERM to leave (TTOU, HUP): not counted */
    int aborted;           /* sent SIGABRT on timeout */
    int64_t abort_ms;      /* when SIGABRT (or the last SIGKILL) was sent */
} cn_mworker;

typedef struct cn_master {
    PyObject *spawn;       /* strong: spawn(slot) -> int, called in the child */
    PyObject *log;         /* strong: log(level, message) */
    PyObject *hooks;       /* strong or NULL: lifecycle callbacks (see .pyi) */
    Py_buffer hb;          /* the heartbeat table, held writable for the run */
    int hb_held;
    int nslots;            /* hb.len / CN_HEARTBEAT_SLOT_SIZE */
    cn_mworker *w;         /* nslots entries */
    int nalive;            /* entries with pid != 0 */
    int num_workers;       /* target count of non-retiring workers */
    int64_t timeout_ms;    /* 0: no heartbeat timeout */
    int64_t graceful_ms;
    uint64_t worker_age;
    unsigned generation;
    pid_t pid;             /* the master's own pid */
    cn_sigq sigq;
    cn_stop_state stop;
    int64_t stop_deadline; /* stop: SIGKILL the rest at this time */
    int killed;            /* stop: SIGKILL sent, waiting for the zombies */
    int exit_code;
    const char *reason;    /* static string for "Reason: ..." or NULL */
    int no_slot_logged;    /* "no free heartbeat slot" already said */
    int daemon;            /* WINCH stops the workers only when daemonized */
    pid_t reexec_pid;      /* USR2 child (the new master) while it lives */
    pid_t parent_master;   /* we are the USR2 child of this master; 0: not */
    int64_t hup_deadline;  /* old generation retires by then at the latest */
} cn_master;

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

static int64_t
now_ms(void)
{
    return (int64_t)cn_now_ms();
}

/* Log through the Python `log(level, message)` callable.  printf-style.  A
 * failing logger is reported with PyErr_WriteUnraisable and otherwise ignored.
 * CN_GIL. */
static void cn_master_log(cn_master *m, const char *level, const char *fmt,
                          ...) __attribute__((format(printf, 3, 4)));

static void
cn_master_log(cn_master *m, const char *level, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    int len;
    PyObject *msg, *res;

    va_start(ap, fmt);
    len = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (len < 0) {
        return;
    }
    if ((size_t)len >= sizeof(buf)) {
        len = (int)sizeof(buf) - 1;
    }
    msg = PyUnicode_DecodeUTF8(buf, len, "replace");
    if (msg == NULL) {
        PyErr_WriteUnraisable(m->log);
        return;
    }
    res = PyObject_CallFunction(m->log, "sO", level, msg);
    Py_DECREF(msg);
    if (res == NULL) {
        PyErr_WriteUnraisable(m->log);
        return;
    }
    Py_DECREF(res);
}

/* Call hooks.<name>(args built from fmt) when a hooks object is set.  Returns
 * the new reference the method returned, or NULL: no hooks object, or the
 * method raised (then logged as gunicorn logs a failing hook, and cleared: a
 * callback that raises never stops the master).  CN_GIL. */
static PyObject *
cn_master_call(cn_master *m, const char *name, const char *fmt, ...)
{
    PyObject *meth, *args, *res;
    va_list ap;

    if (m->hooks == NULL) {
        return NULL;
    }
    meth = PyObject_GetAttrString(m->hooks, name);
    if (meth == NULL) {
        goto fail;
    }
    va_start(ap, fmt);
    args = Py_VaBuildValue(fmt, ap);
    va_end(ap);
    if (args == NULL) {
        Py_DECREF(meth);
        goto fail;
    }
    res = PyObject_Call(meth, args, NULL);
    Py_DECREF(args);
    Py_DECREF(meth);
    if (res != NULL) {
        return res;
    }
fail:
    /* The Python side logs its own hooks' errors; this is a bug in the glue
     * (SystemExit included: a callback does not get to end the master). */
    PyErr_WriteUnraisable(m->hooks);
    cn_master_log(m, "error", "Exception in %s callback", name);
    return NULL;
}

/* cn_master_call for a method whose result is not needed.  CN_GIL. */
#define cn_master_hook(m, ...)                                \
    do {                                                      \
        PyObject *hook_res_ = cn_master_call((m), __VA_ARGS__); \
        Py_XDECREF(hook_res_);                                \
    } while (0)

/* gunicorn names the signal with signal.Signals(sig).name. */
static const char *
signal_name(int sig, char *buf, size_t size)
{
    switch (sig) {
    case SIGHUP: return "SIGHUP";
    case SIGINT: return "SIGINT";
    case SIGQUIT: return "SIGQUIT";
    case SIGILL: return "SIGILL";
    case SIGTRAP: return "SIGTRAP";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGKILL: return "SIGKILL";
    case SIGUSR1: return "SIGUSR1";
    case SIGSEGV: return "SIGSEGV";
    case SIGUSR2: return "SIGUSR2";
    case SIGPIPE: return "SIGPIPE";
    case SIGALRM: return "SIGALRM";
    case SIGTERM: return "SIGTERM";
    case SIGXCPU: return "SIGXCPU";
    case SIGXFSZ: return "SIGXFSZ";
    case SIGSYS: return "SIGSYS";
    default:
        snprintf(buf, size, "signal %d", sig);
        return buf;
    }
}

/* Forget worker `slot` (after it was reaped, or it vanished).  CN_GIL. */
static void
free_worker(cn_master *m, int slot)
{
    if (m->w[slot].pid != 0) {
        memset(&m->w[slot], 0, sizeof(m->w[slot]));
        m->nalive--;
    }
}

/* Send `sig` to worker `slot`.  ESRCH means someone else reaped it: forget it
 * (gunicorn's kill_worker does the same).  CN_GIL. */
static void
kill_worker(cn_master *m, int slot, int sig)
{
    pid_t pid = m->w[slot].pid;

    if (pid <= 0) {
        return;
    }
    if (kill(pid, sig) < 0 && errno == ESRCH) {
        free_worker(m, slot);
    }
}

static void
kill_workers(cn_master *m, int sig)
{
    for (int i = 0; i < m->nslots; i++) {
        if (m->w[i].pid != 0) {
            kill_worker(m, i, sig);
        }
    }
}

/* ------------------------------------------------------------------ */
/* The child side of a fork                                            */

/* Flush C stdio and Python's sys.stdout / sys.stderr; errors are ignored (the
 * process is about to _exit).  CN_GIL. */
static void
flush_std_streams(void)
{
    static const char *const names[] = {"stdout", "stderr"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        PyObject *f = PySys_GetObject(names[i]); /* borrowed */
        if (f != NULL && f != Py_None) {
            PyObject *r = PyObject_CallMethod(f, "flush", NULL);
            if (r == NULL) {
                PyErr_Clear();
            }
            Py_XDECREF(r);
        }
    }
    fflush(stdout);
    fflush(stderr);
}

/* Turn the pending exception of a failed spawn() into an exit code: SystemExit
 * keeps its code, as Python itself would; anything else prints its traceback
 * and gives 1.  (spawn() is expected to catch import errors itself and return
 * 3 or 4; an exception that escapes it is a bug, and respawning is the safer
 * answer than halting the server.)  CN_GIL. */
static int
exit_code_from_exception(void)
{
    if (!PyErr_ExceptionMatches(PyExc_SystemExit)) {
        PyErr_Print();
        return 1;
    }
    PyObject *type, *exc, *tb;
    PyErr_Fetch(&type, &exc, &tb);
    PyErr_NormalizeException(&type, &exc, &tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    PyObject *code = exc ? PyObject_GetAttrString(exc, "code") : NULL;
    int rc = 1;
    if (code == NULL) {
        PyErr_Clear();
    }
    else if (code == Py_None) {
        rc = 0;
    }
    else if (PyLong_Check(code)) {
        long v = PyLong_AsLong(code);
        if (v == -1 && PyErr_Occurred()) {
            PyErr_Clear();
        }
        else {
            rc = (int)(v & 0xff);
        }
    }
    else {
        PyObject_Print(code, stderr, Py_PRINT_RAW);
        fputc('\n', stderr);
        PyErr_Clear();
    }
    Py_XDECREF(code);
    Py_XDECREF(exc);
    return rc;
}

/* Fork with the queued signals blocked, so the child cannot run the
 * master's handler (and write into its pipe) before its signals are reset.
 * Child: 0, with Python and the signal queue reset and the mask still
 * blocked (*oldmask restores it).  Parent: the child's pid, or -1 with
 * errno, the mask restored.  CN_GIL. */
static pid_t
master_fork(cn_master *m, sigset_t *oldmask)
{
    cn_sigq_block(&m->sigq, oldmask);
    PyOS_BeforeFork();
    pid_t pid = fork();
    if (pid == 0) {
        PyOS_AfterFork_Child();
        cn_sigq_child_reset(&m->sigq);
        return 0;
    }
    int saved = errno;
    PyOS_AfterFork_Parent();
    cn_sigq_setmask(oldmask);
    errno = saved;
    return pid;
}

/* Runs in the freshly forked child (master_fork), signals still blocked:
 * catch TERM from now on, log the boot as gunicorn does (in the child, so the line
 * carries the worker's pid), call spawn(slot) and _exit with its result.
 * Never returns.  CN_GIL. */
static void
run_child(cn_master *m, int slot, const sigset_t *oldmask)
{
    PyObject *res;
    int code = 0;
    pid_t pid = getpid();

    (void)cn_worker_catch_term_early();
    cn_sigq_setmask(oldmask);

    /* post_fork and the other worker-side hooks run inside spawn(). */
    cn_master_log(m, "info", "Booting worker with pid: %ld", (long)pid);
    res = PyObject_CallFunction(m->spawn, "i", slot);
    if (res == NULL) {
        code = exit_code_from_exception();
    }
    else {
        if (res == Py_None) {
            code = 0;
        }
        else if (PyLong_Check(res)) {
            long v = PyLong_AsLong(res);
            if (v == -1 && PyErr_Occurred()) {
                PyErr_Clear();
                code = 1;
            }
            else {
                code = (int)(v & 0xff);
            }
        }
        else {
            cn_master_log(m, "error", "spawn() returned %s, not an int",
                          Py_TYPE(res)->tp_name);
            code = 1;
        }
        Py_DECREF(res);
    }
    cn_master_log(m, "info", "Worker exiting (pid: %ld)", (long)pid);
    flush_std_streams();
    _exit(code);
}

/* ------------------------------------------------------------------ */
/* Spawning, reaping, timeouts                                         */

/* Fork one worker into a free slot.  Returns its pid, or -1 (no free slot or
 * fork failed; logged, nothing else changes).  CN_GIL. */
static pid_t
spawn_worker(cn_master *m)
{
    int slot = -1;
    sigset_t oldmask;
    pid_t pid;

    for (int i = 0; i < m->nslots; i++) {
        if (m->w[i].pid == 0) {
            slot = i;
            break;
        }
    }
    if (slot < 0) {
        if (!m->no_slot_logged) {
            cn_master_log(m, "error",
                          "No free heartbeat slot for a new worker "
                          "(%d slots, all in use)", m->nslots);
            m->no_slot_logged = 1;
        }
        return -1;
    }
    m->no_slot_logged = 0;
    /* The worker owns the slot from now; it counts from the fork, and the
     * UNBOOTED bit stays until its first beat. */
    cn_heartbeat_set(m->hb.buf, slot, cn_now_ms() | CN_HB_UNBOOTED);
    m->worker_age++;
    cn_master_hook(m, "pre_fork", "(iK)", slot, (unsigned long long)m->worker_age);

    pid = master_fork(m, &oldmask);
    if (pid == 0) {
        run_child(m, slot, &oldmask); /* does not return */
    }
    if (pid < 0) {
        cn_master_log(m, "error", "Unable to fork a worker: %s", strerror(errno));
        return -1;
    }
    m->w[slot].pid = pid;
    m->w[slot].age = m->worker_age;
    m->w[slot].generation = m->generation;
    m->w[slot].retiring = 0;
    m->w[slot].aborted = 0;
    m->w[slot].abort_ms = 0;
    m->nalive++;
    cn_master_hook(m, "forked", "(il)", slot, (long)pid);
    return pid;
}

static void begin_stop(cn_master *m, int graceful);
static int seconds_to_ms(double s, int64_t *out, const char *what);

/* Log a reaped worker's status as gunicorn's reap_workers does, and halt on
 * exit codes 3/4.  CN_GIL. */
static void
report_exit(cn_master *m, pid_t pid, int status)
{
    char namebuf[32];

    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char *name = signal_name(sig, namebuf, sizeof(namebuf));
        if (sig == SIGKILL) {
            cn_master_log(m, "error",
                          "Worker (pid:%ld) was sent %s! Perhaps out of memory?",
                          (long)pid, name);
        }
        else if (sig == SIGTERM) {
            cn_master_log(m, "info", "Worker (pid:%ld) was sent %s!",
                          (long)pid, name);
        }
        else {
            cn_master_log(m, "warning", "Worker (pid:%ld) was sent %s!",
                          (long)pid, name);
        }
        return;
    }
    if (!WIFEXITED(status)) {
        return;
    }
    int code = WEXITSTATUS(status);
    if (code != 0) {
        cn_master_log(m, "error", "Worker (pid:%ld) exited with code %d.",
                      (long)pid, code);
    }
    if (m->stop != CN_RUNNING) {
        return;
    }
    if (code == CN_WORKER_BOOT_ERROR) {
        m->exit_code = CN_WORKER_BOOT_ERROR;
        m->reason = "Worker failed to boot.";
        begin_stop(m, 1);
    }
    else if (code == CN_APP_LOAD_ERROR) {
        m->exit_code = CN_APP_LOAD_ERROR;
        m->reason = "App failed to load.";
        begin_stop(m, 1);
    }
}

/* Reap every exited child without blocking.  Children that are not workers
 * (the Python side may have its own) are reaped and ignored, as gunicorn
 * does.  CN_GIL. */
static void
reap_workers(cn_master *m)
{
    for (;;) {
        int status = 0;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid < 0 && errno == EINTR) {
            continue;
        }
        if (pid <= 0) {
            return; /* 0: none exited; ECHILD: no children */
        }
        if (pid == m->reexec_pid) {
            /* The USR2 child (new master) exited: another USR2 may try. */
            m->reexec_pid = 0;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                cn_master_log(m, "warning",
                              "New master (pid:%ld) exited with status %d",
                              (long)pid, status);
            }
            continue;
        }
        int slot = -1;
        for (int i = 0; i < m->nslots; i++) {
            if (m->w[i].pid == pid) {
                slot = i;
                break;
            }
        }
        if (slot < 0) {
            continue;
        }
        free_worker(m, slot);
        report_exit(m, pid, status);
        cn_master_hook(m, "child_exit", "(ili)", slot, (long)pid, status);
    }
}

/* Kill workers whose heartbeat is older than the timeout: SIGABRT first
 * (log critical, like gunicorn), SIGKILL every CN_ABORT_GRACE_MS after that
 * while the worker lives (a SIGSTOPped worker ignores the SIGABRT).  CN_GIL. */
static void
murder_workers(cn_master *m)
{
    if (m->timeout_ms <= 0) {
        return;
    }
    int64_t now = now_ms();
    for (int i = 0; i < m->nslots; i++) {
        cn_mworker *w = &m->w[i];
        if (w->pid == 0) {
            continue;
        }
        if (w->aborted) {
            if (now - w->abort_ms >= CN_ABORT_GRACE_MS) {
                w->abort_ms = now;
                kill_worker(m, i, SIGKILL);
            }
            continue;
        }
        int64_t beat = (int64_t)cn_heartbeat_ms(cn_heartbeat_read(m->hb.buf, i));
        if (now - beat <= m->timeout_ms) {
            continue;
        }
        cn_master_log(m, "critical", "WORKER TIMEOUT (pid:%ld)", (long)w->pid);
        w->aborted = 1;
        w->abort_ms = now;
        kill_worker(m, i, SIGABRT);
    }
}

/* A worker of a generation before the last HUP: not counted, gets SIGTERM
 * once the new generation is accepting (retire_old_generation). */
static int
is_old(const cn_master *m, const cn_mworker *w)
{
    return w->generation != m->generation;
}

/* A live worker that counts towards num_workers. */
static int
counted(const cn_master *m, const cn_mworker *w)
{
    return w->pid != 0 && !w->retiring && !is_old(m, w);
}

/* Keep `num_workers` non-retiring workers: spawn what is missing, retire the
 * oldest extra ones with SIGTERM (gunicorn's manage_workers).  CN_GIL. */
static void
manage_workers(cn_master *m)
{
    int active = 0;

    for (int i = 0; i < m->nslots; i++) {
        if (counted(m, &m->w[i])) {
            active++;
        }
    }
    while (active < m->num_workers) {
        /* Replacements are spread out (0-100 ms apart, as gunicorn does), so
         * a worker that dies at once cannot turn the master into a fork
         * loop.  The first set starts without delay. */
        if (m->worker_age >= (uint64_t)m->num_workers) {
            struct timespec ts = {0, (long)(random() % 100) * 1000000L};
            Py_BEGIN_ALLOW_THREADS
            nanosleep(&ts, NULL);
            Py_END_ALLOW_THREADS
        }
        if (spawn_worker(m) < 0) {
            break;
        }
        active++;
    }
    while (active > m->num_workers) {
        int oldest = -1;
        for (int i = 0; i < m->nslots; i++) {
            cn_mworker *w = &m->w[i];
            if (counted(m, w) && (oldest < 0 || w->age < m->w[oldest].age)) {
                oldest = i;
            }
        }
        if (oldest < 0) {
            break;
        }
        m->w[oldest].retiring = 1;
        kill_worker(m, oldest, SIGTERM);
        active--;
    }
}

/* Change the target worker count and tell hooks.nworkers_changed(new, old)
 * when it changed, or always with `force` (gunicorn's num_workers setter
 * fires on every reload).  CN_GIL. */
static void
set_num_workers(cn_master *m, int n, int force)
{
    int old = m->num_workers;

    m->num_workers = n;
    if (n != old || force) {
        cn_master_hook(m, "nworkers_changed", "(ii)", n, old);
    }
}

/* After HUP: once every worker of the new generation is accepting (its
 * heartbeat lost the UNBOOTED bit) or CN_HUP_MAX_WAIT_MS passed, send the
 * old generation SIGTERM.  Until then both generations accept, so no
 * connection waits in the backlog for a worker that is still importing the
 * app.  CN_GIL. */
static void
retire_old_generation(cn_master *m)
{
    int booted = 0, old = 0;

    if (m->hup_deadline == 0) {
        return;
    }
    for (int i = 0; i < m->nslots; i++) {
        cn_mworker *w = &m->w[i];
        if (w->pid == 0 || w->retiring) {
            continue;
        }
        if (is_old(m, w)) {
            old++;
        }
        else if (!(cn_heartbeat_read(m->hb.buf, i) & CN_HB_UNBOOTED)) {
            booted++;
        }
    }
    if (old > 0 && booted < m->num_workers && now_ms() < m->hup_deadline) {
        return;
    }
    m->hup_deadline = 0;
    for (int i = 0; i < m->nslots; i++) {
        cn_mworker *w = &m->w[i];
        if (w->pid != 0 && is_old(m, w) && !w->retiring) {
            w->retiring = 1;
            kill_worker(m, i, SIGTERM);
        }
    }
}

/* Start stopping: graceful (SIGTERM, wait graceful_timeout) or quick (SIGQUIT,
 * wait at most CN_QUICK_STOP_MS); SIGKILL whoever is left at the deadline.  A
 * quick stop overrides a graceful one in progress (INT after TERM); nothing
 * overrides a quick one.  CN_GIL. */
static void
begin_stop(cn_master *m, int graceful)
{
    int64_t now = now_ms();

    if (m->stop == CN_STOP_QUICK || (graceful && m->stop == CN_STOP_GRACEFUL)) {
        return;
    }
    if (m->stop == CN_RUNNING) {
        /* gunicorn's stop() closes the listeners first; a unix socket file
         * stays when a USR2 master (parent or child) still serves on it. */
        int unlink = m->reexec_pid == 0 && m->parent_master == 0;
        cn_master_hook(m, "stopping", "(O)", unlink ? Py_True : Py_False);
    }
    if (graceful) {
        m->stop = CN_STOP_GRACEFUL;
        m->stop_deadline = now + m->graceful_ms;
        kill_workers(m, SIGTERM);
        return;
    }
    int64_t wait = m->graceful_ms < CN_QUICK_STOP_MS ? m->graceful_ms
                                                     : CN_QUICK_STOP_MS;
    if (m->stop != CN_STOP_GRACEFUL || now + wait < m->stop_deadline) {
        m->stop_deadline = now + wait;
    }
    m->stop = CN_STOP_QUICK;
    if (!m->killed) {
        kill_workers(m, SIGQUIT);
    }
}

/* During a stop: SIGKILL the rest at the deadline.  Returns 1 when the loop is
 * done (no workers left, or the zombies did not come back in time).  CN_GIL. */
static int
stop_progress(cn_master *m)
{
    if (m->nalive == 0) {
        return 1;
    }
    int64_t now = now_ms();
    if (now < m->stop_deadline) {
        return 0;
    }
    if (!m->killed) {
        kill_workers(m, SIGKILL);
        m->killed = 1;
        m->stop_deadline = now + CN_FINAL_REAP_MS;
        return m->nalive == 0;
    }
    cn_master_log(m, "warning", "%d worker(s) still not reaped after SIGKILL",
                  m->nalive);
    return 1;
}

/* Milliseconds until the loop must wake up by itself: the stop deadline, a
 * heartbeat that will go stale, a SIGKILL due after a SIGABRT; at most
 * CN_MAX_WAIT_MS.  CN_GIL (reads only C state). */
static int
next_wait_ms(cn_master *m)
{
    int64_t now = now_ms();
    int64_t wake = now + CN_MAX_WAIT_MS;

    if (m->stop != CN_RUNNING) {
        if (m->stop_deadline < wake) {
            wake = m->stop_deadline;
        }
    }
    else {
        if (m->hup_deadline != 0) {
            /* old generation waiting: look at the new one's boot often */
            int64_t t = now + 20;
            if (t < wake) {
                wake = t;
            }
        }
        for (int i = 0; i < m->nslots; i++) {
            cn_mworker *w = &m->w[i];
            int64_t t;
            if (w->pid == 0) {
                continue;
            }
            if (w->aborted) {
                t = w->abort_ms + CN_ABORT_GRACE_MS;
            }
            else if (m->timeout_ms > 0) {
                t = (int64_t)cn_heartbeat_ms(cn_heartbeat_read(m->hb.buf, i))
                    + m->timeout_ms + 1;
            }
            else {
                continue;
            }
            if (t < wake) {
                wake = t;
            }
        }
    }
    if (wake <= now) {
        return 0;
    }
    return (int)(wake - now);
}

/* ------------------------------------------------------------------ */
/* Signal handlers (run from the loop, with the GIL, never in a signal   */
/* context).                                                             */

typedef void (*cn_sig_handler)(cn_master *m);

static void
handle_chld(cn_master *m)
{
    reap_workers(m);
}

/* TERM: graceful stop. */
static void
handle_term(cn_master *m)
{
    begin_stop(m, 1);
}

/* INT, QUIT: quick stop. */
static void
handle_quick(cn_master *m)
{
    begin_stop(m, 0);
}

static const char *
master_name(const cn_master *m)
{
    return m->parent_master != 0 ? "Master.2" : "Master";
}

/* Store hooks.reload()'s (workers, timeout, graceful_timeout); a malformed
 * result is logged and changes nothing.  CN_GIL. */
static void
apply_reload(cn_master *m, PyObject *res)
{
    int workers;
    double timeout, graceful;
    int64_t t_ms, g_ms;

    if (!PyArg_ParseTuple(res, "idd;reload() must return (workers, timeout, "
                          "graceful_timeout)", &workers, &timeout, &graceful)
        || seconds_to_ms(timeout, &t_ms, "timeout") < 0
        || seconds_to_ms(graceful, &g_ms, "graceful_timeout") < 0) {
        PyErr_WriteUnraisable(m->hooks);
        cn_master_log(m, "error", "Reload ignored: bad settings from reload()");
        return;
    }
    if (workers < 0) {
        workers = 0;
    }
    if (workers > m->nslots / 2) {
        cn_master_log(m, "warning",
                      "%d workers asked on reload; %d is the limit of the "
                      "heartbeat table during a reload", workers, m->nslots / 2);
        workers = m->nslots / 2;
    }
    m->timeout_ms = t_ms;
    m->graceful_ms = g_ms;
    set_num_workers(m, workers, 1);
}

/* HUP (gunicorn's reload): hooks.reload() re-reads the configuration, reopens
 * the logs and runs on_reload; then a new generation of workers starts, and
 * the old one gets SIGTERM once the new one accepts (retire_old_generation):
 * no moment without an accepting worker, no request cut.  A reload that fails
 * keeps the running configuration but still renews the workers. */
static void
handle_hup(cn_master *m)
{
    if (m->stop != CN_RUNNING) {
        return;
    }
    cn_master_log(m, "info", "Hang up: %s", master_name(m));
    PyObject *res = cn_master_call(m, "reload", "()");
    if (res != NULL) {
        apply_reload(m, res);
        Py_DECREF(res);
    }
    m->generation++; /* the running workers are the old generation now */
    m->hup_deadline = now_ms() + (m->timeout_ms > 0 && m->timeout_ms < CN_HUP_MAX_WAIT_MS
                                  ? m->timeout_ms : CN_HUP_MAX_WAIT_MS);
    manage_workers(m);
    retire_old_generation(m);
}

static void
handle_ttin(cn_master *m)
{
    if (m->stop != CN_RUNNING) {
        return;
    }
    if (m->num_workers >= m->nslots / 2) {
        cn_master_log(m, "warning",
                      "TTIN ignored: %d workers is the limit of the heartbeat "
                      "table", m->nslots / 2);
        return;
    }
    set_num_workers(m, m->num_workers + 1, 0);
    manage_workers(m);
}

static void
handle_ttou(cn_master *m)
{
    if (m->stop != CN_RUNNING || m->num_workers <= 1) {
        return;
    }
    set_num_workers(m, m->num_workers - 1, 0);
    manage_workers(m);
}

/* USR1: reopen the master's log files (hooks.reopen_logs) and forward the
 * signal to every worker, which reopens its own. */
static void
handle_usr1(cn_master *m)
{
    cn_master_hook(m, "reopen_logs", "()");
    kill_workers(m, SIGUSR1);
}

/* USR2: binary upgrade.  Fork; the child calls hooks.reexec(), which runs
 * pre_exec and execs the same command with the listening sockets inherited
 * (GUNICORN_FD / LISTEN_FDS) and GUNICORN_PID set; the new master writes
 * <pidfile>.2 and promotes itself when this one exits.  Refused while a
 * child exists or when this master is itself such a child, as gunicorn.
 * Workers keep serving throughout. */
static void
handle_usr2(cn_master *m)
{
    sigset_t oldmask;
    pid_t pid;

    if (m->stop != CN_RUNNING) {
        return;
    }
    if (m->reexec_pid != 0) {
        cn_master_log(m, "warning", "USR2 signal ignored. Child exists.");
        return;
    }
    if (m->parent_master != 0) {
        cn_master_log(m, "warning", "USR2 signal ignored. Parent exists.");
        return;
    }
    if (m->hooks == NULL) {
        cn_master_log(m, "warning", "USR2 signal ignored: no reexec callback");
        return;
    }
    pid = master_fork(m, &oldmask);
    if (pid == 0) {
        cn_sigq_setmask(&oldmask);
        cn_master_hook(m, "reexec", "()"); /* execs; returns only on failure */
        flush_std_streams();
        _exit(1);
    }
    if (pid < 0) {
        cn_master_log(m, "error", "Unable to fork the new master: %s", strerror(errno));
        return;
    }
    m->reexec_pid = pid;
}

/* WINCH: when daemonized, stop the workers gracefully and keep none (the step
 * after USR2: the old master then only waits for QUIT, or HUP to come back). */
static void
handle_winch(cn_master *m)
{
    if (!m->daemon) {
        cn_master_log(m, "debug", "SIGWINCH ignored. Not daemonized");
        return;
    }
    if (m->stop != CN_RUNNING) {
        return;
    }
    cn_master_log(m, "info", "graceful stop of workers");
    set_num_workers(m, 0, 0);
    for (int i = 0; i < m->nslots; i++) {
        if (m->w[i].pid != 0) {
            m->w[i].retiring = 1;
            kill_worker(m, i, SIGTERM);
        }
    }
}

/* gunicorn's maybe_promote_master: the USR2 child becomes the master once the
 * old master is gone (we were reparented).  CN_GIL. */
static void
maybe_promote(cn_master *m)
{
    if (m->parent_master == 0 || getppid() == m->parent_master) {
        return;
    }
    cn_master_log(m, "info", "Master has been promoted.");
    m->parent_master = 0;
    cn_master_hook(m, "promoted", "()");
}

static const struct {
    int signo;
    const char *name;       /* gunicorn's lower-case name for the log line */
    cn_sig_handler handler;
} cn_master_signals[] = {
    {SIGHUP, "hup", handle_hup},
    {SIGQUIT, "quit", handle_quick},
    {SIGINT, "int", handle_quick},
    {SIGTERM, "term", handle_term},
    {SIGTTIN, "ttin", handle_ttin},
    {SIGTTOU, "ttou", handle_ttou},
    {SIGUSR1, "usr1", handle_usr1},
    {SIGUSR2, "usr2", handle_usr2},
    {SIGWINCH, "winch", handle_winch},
    {SIGCHLD, "chld", handle_chld},
};

#define CN_NSIGNALS ((int)(sizeof(cn_master_signals) / sizeof(cn_master_signals[0])))

/* Log "Handling signal: <name>" (not for CHLD, which is frequent) and run the
 * handler.  During a stop only CHLD, INT and QUIT still act.  CN_GIL. */
static void
dispatch_signal(cn_master *m, int signo)
{
    for (int i = 0; i < CN_NSIGNALS; i++) {
        if (cn_master_signals[i].signo != signo) {
            continue;
        }
        if (signo != SIGCHLD) {
            cn_master_log(m, "info", "Handling signal: %s",
                          cn_master_signals[i].name);
        }
        cn_master_signals[i].handler(m);
        return;
    }
    cn_master_log(m, "info", "Ignoring unknown signal: %d", signo);
}

/* ------------------------------------------------------------------ */
/* The loop                                                            */

/* Run until stopped; the exit code is in m->exit_code.  CN_GIL (released
 * while waiting). */
static void
master_loop(cn_master *m)
{
    int sigs[CN_SIGBATCH];
    int wait_errors = 0;

    manage_workers(m);
    for (;;) {
        int timeout = next_wait_ms(m);
        int rc;

        Py_BEGIN_ALLOW_THREADS
        rc = cn_sigq_wait(&m->sigq, timeout);
        Py_END_ALLOW_THREADS

        if (rc < 0 && rc != -EINTR && wait_errors++ < 3) {
            cn_master_log(m, "error", "poll() on the signal pipe failed: %s",
                          strerror(-rc));
        }
        /* Signals with Python handlers (not ours) run here; one that raises
         * must not end the master.  A KeyboardInterrupt can only come from a
         * SIGINT caught by Python before our handler was installed: treat it
         * as the INT it was. */
        if (PyErr_CheckSignals() < 0) {
            if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
                PyErr_Clear();
                dispatch_signal(m, SIGINT);
            }
            else {
                PyErr_WriteUnraisable(NULL);
            }
        }
        int n = cn_sigq_drain(&m->sigq, sigs, CN_SIGBATCH);
        for (int i = 0; i < n; i++) {
            dispatch_signal(m, sigs[i]);
        }
        reap_workers(m);
        maybe_promote(m);
        if (m->stop != CN_RUNNING) {
            if (stop_progress(m)) {
                break;
            }
            continue;
        }
        murder_workers(m);
        manage_workers(m);
        retire_old_generation(m);
        if (PyErr_Occurred()) {
            /* Nothing above should leave one; never let it escape. */
            PyErr_WriteUnraisable(NULL);
        }
    }
    cn_master_log(m, m->exit_code == 0 ? "info" : "error", "Shutting down: %s",
                  master_name(m));
    if (m->reason != NULL) {
        cn_master_log(m, m->exit_code == 0 ? "info" : "error", "Reason: %s",
                      m->reason);
    }
}

static void
master_clear(cn_master *m)
{
    cn_sigq_close(&m->sigq);
    if (m->hb_held) {
        PyBuffer_Release(&m->hb);
        m->hb_held = 0;
    }
    PyMem_Free(m->w);
    m->w = NULL;
    Py_CLEAR(m->spawn);
    Py_CLEAR(m->log);
    Py_CLEAR(m->hooks);
}

static int
seconds_to_ms(double s, int64_t *out, const char *what)
{
    if (s != s) {
        PyErr_Format(PyExc_ValueError, "%s must be a number", what);
        return -1;
    }
    if (s <= 0) {
        *out = 0;
    }
    else if (s > 1e9) {
        *out = (int64_t)1e12;
    }
    else {
        *out = (int64_t)(s * 1000.0 + 0.5);
        if (*out == 0) {
            *out = 1;
        }
    }
    return 0;
}

PyObject *
cn_run_master(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"heartbeats", "workers", "timeout",
                             "graceful_timeout", "spawn", "log", "hooks",
                             "daemon", "parent_master", NULL};
    PyObject *heartbeats;
    PyObject *hooks = Py_None;
    int daemon = 0;
    long parent_master = 0;
    int workers = -1;
    double timeout = -1.0, graceful = -1.0;
    PyObject *timeout_o = NULL, *graceful_o = NULL;
    PyObject *spawn = NULL, *log = NULL;
    cn_master m;
    int rc;
    static const int signos[] = {SIGHUP, SIGQUIT, SIGINT, SIGTERM, SIGTTIN,
                                 SIGTTOU, SIGUSR1, SIGUSR2, SIGWINCH, SIGCHLD};

    (void)module;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$iOOOOOpl:run_master",
                                     kwlist, &heartbeats, &workers, &timeout_o,
                                     &graceful_o, &spawn, &log, &hooks, &daemon,
                                     &parent_master)) {
        return NULL;
    }
    if (workers < 0 || timeout_o == NULL || graceful_o == NULL
        || spawn == NULL || log == NULL) {
        const char *missing = workers < 0 ? "workers"
                              : timeout_o == NULL ? "timeout"
                              : graceful_o == NULL ? "graceful_timeout"
                              : spawn == NULL ? "spawn" : "log";
        if (workers < 0 && PyDict_Check(kwargs)
            && PyDict_GetItemString(kwargs, "workers") != NULL) {
            PyErr_SetString(PyExc_ValueError, "workers must be >= 0");
        }
        else {
            PyErr_Format(PyExc_TypeError,
                         "run_master() missing required keyword argument '%s'",
                         missing);
        }
        return NULL;
    }
    timeout = PyFloat_AsDouble(timeout_o);
    if (timeout == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    graceful = PyFloat_AsDouble(graceful_o);
    if (graceful == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    if (!PyCallable_Check(spawn) || !PyCallable_Check(log)) {
        PyErr_SetString(PyExc_TypeError, "spawn and log must be callable");
        return NULL;
    }

    memset(&m, 0, sizeof(m));
    m.sigq.rfd = m.sigq.wfd = -1;
    if (seconds_to_ms(timeout, &m.timeout_ms, "timeout") < 0
        || seconds_to_ms(graceful, &m.graceful_ms, "graceful_timeout") < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(heartbeats, &m.hb, PyBUF_WRITABLE) < 0) {
        return NULL;
    }
    m.hb_held = 1;
    m.nslots = (int)(m.hb.len / CN_HEARTBEAT_SLOT_SIZE > INT32_MAX / 2
                     ? INT32_MAX / 2 : m.hb.len / CN_HEARTBEAT_SLOT_SIZE);
    if (m.nslots < 2 || workers > m.nslots / 2) {
        PyErr_Format(PyExc_ValueError,
                     "heartbeats holds %d slot(s) of %d bytes: not enough for "
                     "%d worker(s)", m.nslots, CN_HEARTBEAT_SLOT_SIZE, workers);
        master_clear(&m);
        return NULL;
    }
    m.w = PyMem_Calloc((size_t)m.nslots, sizeof(cn_mworker));
    if (m.w == NULL) {
        master_clear(&m);
        return PyErr_NoMemory();
    }
    m.spawn = Py_NewRef(spawn);
    m.log = Py_NewRef(log);
    m.hooks = hooks == Py_None ? NULL : Py_NewRef(hooks);
    m.daemon = daemon;
    m.parent_master = (pid_t)(parent_master > 0 ? parent_master : 0);
    m.num_workers = workers;
    m.pid = getpid();

    rc = cn_sigq_open(&m.sigq, signos, (int)(sizeof(signos) / sizeof(signos[0])));
    if (rc < 0) {
        if (rc == -EBUSY) {
            PyErr_SetString(PyExc_RuntimeError,
                            "run_master is already running in this process");
        }
        else {
            errno = -rc;
            PyErr_SetFromErrno(PyExc_OSError);
        }
        master_clear(&m);
        return NULL;
    }

    master_loop(&m);

    master_clear(&m);
    if (PyErr_Occurred()) {
        PyErr_WriteUnraisable(NULL);
    }
    return PyLong_FromLong(m.exit_code);
}
