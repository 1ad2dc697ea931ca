/* Signals and logging shared by every worker class (worker_common.c).
 *
 * Signals (handlers only set flags, except where noted):
 *   TERM      finish the request in hand, then exit 0;
 *   QUIT/INT  exit now: between requests through the flag, inside the app by
 *             _exit(0) from the handler (the app cannot be interrupted else);
 *   ABRT      sent by the master on timeout: _exit(1);
 *   USR1      reopen logs (flag);
 * Hooks: when Python has its own handler for QUIT/INT, ABRT or USR1 at
 * install time (cunicorn.arbiter sets one for USR1 always, for QUIT/INT with
 * a worker_int hook, for ABRT with a worker_abort hook), the C handler hands
 * the signal to it with PyErr_SetInterruptEx (async-signal-safe) instead of
 * _exit: the Python handler runs at the next bytecode or PyErr_CheckSignals
 * (the worker loops call it once per iteration), runs the hook and leaves
 * with os._exit.  An app stuck in C code without the GIL does not get there:
 * the master's SIGKILL follows a second after its SIGABRT.
 *   PIPE      ignored: a vanished client is an EPIPE from writev. */
#include "worker.h"

#include "heartbeat.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The only mutable globals: async-signal flags of this (single) worker. */
static volatile sig_atomic_t cn_sig_stop;
static volatile sig_atomic_t cn_sig_quit;
static volatile sig_atomic_t cn_sig_in_app;
/* Python has a handler of its own for these (set at install time). */
static volatile sig_atomic_t cn_sig_py_quit;
static volatile sig_atomic_t cn_sig_py_abrt;
static volatile sig_atomic_t cn_sig_py_usr1;

int
cn_worker_quitting(void)
{
    return cn_sig_quit != 0;
}

int
cn_worker_stopping(void)
{
    return cn_sig_stop != 0 || cn_sig_quit != 0;
}

static void
on_signal(int signo)
{
    switch (signo) {
    case SIGTERM:
        cn_sig_stop = 1;
        break;
    case SIGQUIT:
    case SIGINT:
        cn_sig_quit = 1;
        if (cn_sig_py_quit) {
            PyErr_SetInterruptEx(signo);
        }
        else if (cn_sig_in_app) {
            _exit(0);
        }
        break;
    case SIGABRT:
        if (!cn_sig_py_abrt) {
            _exit(1);
        }
        PyErr_SetInterruptEx(signo);
        break;
    case SIGUSR1:
        if (cn_sig_py_usr1) {
            PyErr_SetInterruptEx(signo);
        }
        break;
    default:
        break;
    }
}

/* 1 when Python's signal module has a Python function as the handler of
 * `signo` (not SIG_DFL, SIG_IGN or default_int_handler), else 0 (errors are
 * cleared: no handler).  CN_GIL. */
static int
python_handles(int signo)
{
    PyObject *mod = PyImport_ImportModule("signal");
    PyObject *h = mod ? PyObject_CallMethod(mod, "getsignal", "i", signo) : NULL;
    PyObject *dflt = mod ? PyObject_GetAttrString(mod, "default_int_handler") : NULL;
    int yes = h != NULL && dflt != NULL && h != dflt && PyCallable_Check(h);
    Py_XDECREF(h);
    Py_XDECREF(dflt);
    Py_XDECREF(mod);
    PyErr_Clear();
    return yes;
}

/* Install the worker's handlers (no SA_RESTART: waits see EINTR).  0 or -1
 * with OSError set.  CN_GIL. */
int
cn_worker_install_signals(void)
{
    cn_sig_py_quit = python_handles(SIGQUIT);
    cn_sig_py_abrt = python_handles(SIGABRT);
    cn_sig_py_usr1 = python_handles(SIGUSR1);
    static const int handled[] = {SIGTERM, SIGQUIT, SIGINT, SIGABRT, SIGUSR1};
    static const int ignored[] = {SIGPIPE, SIGHUP, SIGWINCH, SIGTTIN, SIGTTOU, SIGUSR2};
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_signal;
    for (size_t i = 0; i < sizeof(handled) / sizeof(handled[0]); i++) {
        if (sigaction(handled[i], &sa, NULL) < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
    }
    sa.sa_handler = SIG_IGN;
    for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++) {
        if (sigaction(ignored[i], &sa, NULL) < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    return 0;
}

int
cn_worker_catch_term_early(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_signal;
    return sigaction(SIGTERM, &sa, NULL) < 0 ? -errno : 0;
}

void
cn_worker_set_in_app(int in_app)
{
    cn_sig_in_app = in_app;
}

void
cn_worker_log_emfile(cn_worker *w)
{
    uint64_t now = cn_now_ms();
    if (w->emfile_logged_ms == 0 || now - w->emfile_logged_ms >= 60000) {
        w->emfile_logged_ms = now;
        cn_worker_log(w, "error", "accept() failed: too many open files; backing off", 0);
    }
}

void
cn_worker_log(cn_worker *w, const char *level, const char *msg, int with_exc)
{
    PyObject *type = NULL, *value = NULL, *tb = NULL;
    if (with_exc) {
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        if (value != NULL && tb != NULL) {
            PyException_SetTraceback(value, tb);
        }
    }
    if (w->error_log == NULL || w->error_log == Py_None) {
        fprintf(stderr, "[%s] %s\n", level, msg);
        if (type != NULL) {
            PyErr_Restore(type, value, tb);
            PyErr_Print();
        }
        return;
    }
    /* Make the exception the "handled" one so logging's exc_info=True sees it
     * through sys.exc_info(). */
    PyObject *ot, *ov, *otb;
    PyErr_GetExcInfo(&ot, &ov, &otb);
    if (type != NULL) {
        PyErr_SetExcInfo(type, value, tb); /* steals */
    }
    PyObject *r = PyObject_CallFunction(w->error_log, "ssO", level, msg,
                                        type != NULL ? Py_True : Py_False);
    if (r == NULL) {
        PyErr_WriteUnraisable(w->error_log);
    }
    Py_XDECREF(r);
    PyErr_SetExcInfo(ot, ov, otb);
}

