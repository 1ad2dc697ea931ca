/* The master's signal queue (master_signals.c): C handlers that only queue.
 *
 * A handler writes its signal number (one byte) to a non-blocking, close-on-exec
 * self-pipe; the master loop polls the read end and dispatches the numbers in
 * arrival order with the GIL held.  If the pipe is ever full, the signal is
 * remembered in a per-signal flag instead of being lost (it is then delivered
 * once, after the ones in the pipe).
 *
 * This is the syscall layer: nothing here touches Python, functions return 0 or
 * -errno, and any thread may call them with or without the GIL.  Only one queue
 * can be open per process at a time (the handler finds the pipe through a
 * `volatile sig_atomic_t`, the only kind of mutable global STYLE.md allows). */
#ifndef CN_MASTER_SIGNALS_H
#define CN_MASTER_SIGNALS_H

#include <signal.h>

#define CN_SIGQ_MAX 16 /* signals one queue can handle */

typedef struct {
    int rfd;                                /* read end, -1 when closed */
    int wfd;                                /* write end, -1 when closed */
    int nsigs;                              /* entries used in signos/saved */
    int signos[CN_SIGQ_MAX];                /* the queued signals */
    struct sigaction saved[CN_SIGQ_MAX];    /* their dispositions before open */
    struct sigaction saved_pipe;            /* SIGPIPE before open */
} cn_sigq;

/* Create the pipe and install the queueing handler for signos[0..n) (SA_RESTART;
 * SIGCHLD with SA_NOCLDSTOP) and SIG_IGN for SIGPIPE, saving the previous
 * dispositions.  Returns 0, -EBUSY when another queue is open in this process,
 * -EINVAL for a bad list, or the -errno of a failed syscall (nothing is left
 * installed then). */
int cn_sigq_open(cn_sigq *q, const int *signos, int n);

/* Restore the dispositions saved by cn_sigq_open and close the pipe.  Safe to
 * call on a queue that failed to open or is already closed. */
void cn_sigq_close(cn_sigq *q);

/* In a freshly forked child (signals still blocked): set the queued signals to
 * SIG_DFL (USR1, USR2, HUP, WINCH, TTIN, TTOU to SIG_IGN: a worker still
 * booting must survive the master's broadcasts), put SIGPIPE back as it was before open (Python ignores it), close
 * the pipe and forget it, so that the child never writes into the master's
 * queue. */
void cn_sigq_child_reset(cn_sigq *q);

/* Wait until the pipe is readable or timeout_ms (>= 0) passes.  Returns 1
 * (readable), 0 (timeout), -EINTR (another signal interrupted the wait: the
 * caller should run PyErr_CheckSignals and come back) or another -errno.
 * CN_NOGIL: call it with the GIL released. */
int cn_sigq_wait(cn_sigq *q, int timeout_ms);

/* Move up to `max` queued signal numbers into out[], oldest first (a bounded
 * read: what does not fit stays queued for the next call).  Returns the count. */
int cn_sigq_drain(cn_sigq *q, int *out, int max);

/* Block the queued signals in the calling thread, storing the previous mask in
 * *old (used around fork so the child cannot run the master's handler).
 * 0 or -errno. */
int cn_sigq_block(const cn_sigq *q, sigset_t *old);

/* Set the calling thread's signal mask back to *old.  0 or -errno. */
int cn_sigq_setmask(const sigset_t *old);

#endif
