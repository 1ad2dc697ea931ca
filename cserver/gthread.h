/* The gthread worker's shared state (gthread.h): what the loop thread
 * (loop.c), the pool threads (threadpool.c) and the worker's main thread
 * (worker_gthread.c) exchange.
 *
 * Threads:
 *   main    the worker process's Python thread: parses the arguments, starts
 *           the others, then waits with the GIL released, turning signal flags
 *           into requests for the loop and logging what the loop noticed;
 *   loop    one libev loop, never the GIL while in it: accept, idle
 *           keep-alive, reading and parsing heads, lingering closes, the
 *           heartbeat;
 *   pool    N threads that take the GIL to run cn_serve_request on a parsed
 *           request, then hand the connection back to the loop;
 *   fast    with N > 1, one more pool thread for short requests while the
 *           N hold long ones (threadpool.c, "The fast lane").
 *
 * Inline serving.  When the pool holds no long request (serving or queued),
 * a request whose route is known to be short (learned CPU time under
 * GT_INLINE_CPU_US and wall time under GT_INLINE_US, no body left to wait
 * for) is served by the loop thread itself, between two iterations of the
 * loop, as an extra pool thread would: no hand-off, no wake-up, no context
 * switch (a hand-off costs more than a short request here).  Under a steady
 * load of short requests the pool drains and sleeps, and the loop thread
 * serves alone, as bjoern would.  The batch's small responses are held back
 * and written together when it ends (or after GT_CORK_NS): the client is
 * woken once for several (cn_gt_cork_flush); a connection is passed on only
 * once its response is sent.  The loop thread leaves the loop (loop_mu)
 * while it serves; should a request turn out long, the main thread takes
 * the loop over after GT_WATCH_MS (cn_gt_watch, "watchdog"): the batch's
 * held responses leave and its unserved requests go to the pool
 * (cn_gt_watch_takeover), accepting, reading and the heartbeat go on, other
 * requests go to the pool, and the loop is handed back when the loop thread
 * is done.  So a long request never stops the loop for longer than that,
 * as with the pool.
 *
 * Ownership of a connection follows its state: GT_READING, GT_LINGER,
 * GT_CLOSED and GT_BACK belong to the loop thread, GT_POOL and GT_POOL_NOIO
 * to the pool (queued or being served).  The loop gives a connection to the
 * pool through the queue (pool_mu).  The pool gives it back in one of two
 * ways:
 *   - lazily, the common keep-alive case (nothing buffered, the loop's read
 *     watcher still armed, at least two requests served on it): one
 *     compare-and-swap GT_POOL -> GT_BACK, no wake-up; the loop takes it
 *     over at its next readable event or timer (it treats GT_BACK as "wait
 *     for the next head, idle since back_at");
 *   - through the hand-back list (back_mu) and the async watcher, for
 *     everything else (close, linger, pipelined bytes, or the loop stopped
 *     the read watcher: it swapped GT_POOL -> GT_POOL_NOIO first, so the
 *     pool's swap fails and it takes this path).
 * A pool thread that finds the connection's next head complete (pipelined,
 * or read by itself once the loop stopped watching) queues it again itself:
 * it stays the pool's.  The swaps are the only points where two threads
 * write the state; they are atomic, with release/acquire ordering for the
 * connection's other fields.
 * Only the loop thread frees connections.
 *
 * Lock order: GIL -> pool_mu and GIL -> back_mu; pool_mu and back_mu are
 * leaves (never held together, never held while taking the GIL).  The loop
 * thread never holds the GIL. */
#ifndef CN_GTHREAD_H
#define CN_GTHREAD_H

#include "conn.h"
#include "worker.h"

#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

enum {
    GT_READING = 0,
    GT_POOL = 1,
    GT_LINGER = 2,
    GT_CLOSED = 3,
    GT_POOL_NOIO = 4, /* in the pool, the loop's read watcher stopped */
    GT_BACK = 5,      /* returned lazily by the pool, idle since back_at */
};
enum { GT_JOB_SERVE = 0, GT_JOB_ERROR = 1 };

#define GT_INLINE_US 500                /* routes shorter than this ... */
#define GT_INLINE_CPU_US 200            /* ... using less CPU: inline (a
                                         * 0.3 ms model call is better in the
                                         * pool, beside the loop) */
#define GT_INLINE_BUDGET_NS 2000000LL   /* inline serving per loop iteration */
#define GT_CORK_NS 500000LL             /* responses held back at most (unless
                                         * a request takes longer) */
#define GT_WATCH_MS 5                   /* inline this long: the main thread
                                         * takes the loop over */
enum { GT_BACK_KEEP = 0, GT_BACK_CLOSE = 1, GT_BACK_LINGER = 2 };

struct cn_gthread;

typedef struct gt_conn {
    cn_conn c;                 /* first member: the engine's connection */
    struct cn_gthread *g;
    ev_io io;                  /* loop thread: readable (READING, LINGER) */
    ev_timer timer;            /* loop thread: head/keep-alive/linger deadline */
    struct gt_conn *next;      /* link in the pool queue or the hand-back list */
    struct gt_conn *all_prev;  /* loop thread: list of open connections */
    struct gt_conn *all_next;
    struct gt_conn *dead_next; /* loop thread: closed, to be freed */
    _Atomic unsigned char state; /* GT_*; see the ownership notes above */
    unsigned char job;         /* GT_JOB_*: what the pool is asked to do */
    unsigned char back;        /* GT_BACK_*: set by the pool before handing back */
    unsigned char head_started;/* bytes of the next head have arrived */
    unsigned char longreq;     /* queued or served as a request not short */
    size_t drained;            /* lingering close: bytes dropped so far */
    double back_at;            /* cn_gt_now() when the pool gave it back */
    uint64_t route;            /* hash of the queued request's method and path */
} gt_conn;

/* What requests of one route (method and path) cost the pool, learned as
 * they are served: lets short requests overtake long ones (threadpool.c). */
#define GT_ROUTES 256
typedef struct {
    _Atomic uint64_t key;      /* route hash, 0 = free */
    _Atomic uint32_t cost_us;  /* moving average of the CPU time in the app */
    _Atomic uint32_t wall_us;  /* moving average of the wall time serving it */
    _Atomic uint32_t samples;  /* CPU samples taken (every request's at first) */
} gt_route;

typedef struct cn_gthread {
    cn_worker w;               /* settings; its Python parts need the GIL */
    int nthreads;
    int max_conns;             /* worker_connections */

    /* ---- loop thread only ---- */
    struct ev_loop *loop;
    ev_io *accept_io;          /* one per listener */
    ev_timer backoff;          /* EMFILE: accept paused */
    ev_timer hold;             /* accept deferred to a sibling (loop.c) */
    ev_timer beat;             /* heartbeat, every second */
    ev_timer graceful;         /* stop: deadline for in-flight requests */
    ev_async wake;             /* hand-backs and requests from other threads */
    ev_check reap;             /* frees closed connections after each iteration */
    int accepting, backing_off, holding, stopping;
    int ended;                 /* the loop is over (loop_end): leave it */
    gt_conn *inl_head, *inl_tail; /* requests to serve inline, arrival order */
    int nconns;                /* open connections, whatever their state */
    gt_conn *all;              /* open connections */
    gt_conn *dead;             /* closed, freed by the reap watcher */
    char **free_bufs;          /* free list of read buffers of GT_BUF bytes */
    int nfree;

    /* ---- pool queue: pool_mu (lock order: GIL -> pool_mu, a leaf) ---- */
    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cv;    /* work queued, or shutdown */
    pthread_cond_t exit_cv;    /* a pool thread exited */
    pthread_cond_t fast_cv;    /* the fast lane has work, or shutdown */
    gt_conn *q_head, *q_tail;  /* requests in arrival order */
    gt_conn *f_head, *f_tail;  /* short requests: taken first, see pool_pop */
    int fast_run;              /* short requests taken in a row */
    int idle;                  /* pool threads waiting on pool_cv */
    int fast_idle;             /* the fast lane waits on fast_cv */
    int shutdown;              /* pool threads exit when the queue is empty */
    int alive;                 /* pool threads still running */

    /* ---- who runs the loop: loop_mu (held by the loop thread, or by the
     * main thread standing in while the loop thread serves inline) ---- */
    pthread_mutex_t loop_mu;
    _Atomic int64_t inline_since; /* ns (CLOCK_MONOTONIC) the inline batch began, 0 */
    atomic_uint inline_batches;   /* count, so the watchdog knows to tick fast */
    atomic_int watching;          /* the main thread runs the loop */
    atomic_int want_back;         /* the loop thread is done inline: hand back */
    atomic_int abandoned;         /* loop over while the loop thread is stuck inline */
    PyThreadState *loop_ts;       /* the loop thread's, when it has served inline */
    PyGILState_STATE loop_gs;

    /* ---- the inline batch being served: batch_mu (a leaf) ---- */
    pthread_mutex_t batch_mu;
    gt_conn *batch_rest;       /* its requests not served yet */
    gt_conn *cork_head, *cork_tail; /* served, output corked, not passed on */
    int64_t cork_since;        /* ns (CLOCK_MONOTONIC) the first was held */

    /* ---- hand-back list: back_mu (lock order: GIL -> back_mu, a leaf) ---- */
    pthread_mutex_t back_mu;
    gt_conn *back;

    /* ---- flags between threads (atomics, no lock) ---- */
    atomic_int stop_req;       /* main -> loop: graceful stop (TERM) */
    atomic_int quit_req;       /* main -> loop: stop now (QUIT/INT) */
    atomic_int retire_req;     /* pool -> loop: max_requests reached */
    atomic_int emfile_note;    /* loop -> main: accept ran out of fds */
    atomic_int loop_done;      /* loop -> main: ev_run returned */
    atomic_int forced;         /* loop ended with connections in the pool */
    atomic_int busy;           /* threads serving a connection */
    atomic_int busy_long;      /* ... on a long request (gt_conn.longreq) */
    atomic_int queued_long;    /* queued requests not short */
    _Atomic uint32_t avg_us;   /* moving average of every request's cost */
    gt_route routes[GT_ROUTES];/* direct-mapped by route hash; relaxed atomics */
    int done_fd;               /* eventfd the loop thread signals on exit */

    pthread_t loop_thread;
    pthread_t *threads;        /* the pool's, then the fast lane's */
    int nstarted;
} cn_gthread;

/* loop.c ------------------------------------------------------------------ */

/* Set up the loop and its watchers (main thread, before the loop thread
 * starts).  0 or -errno.  No Python. */
int cn_gt_loop_init(cn_gthread *g);

/* Body of the loop thread: runs until every connection is closed after a
 * stop, the graceful deadline, or a quick stop.  No GIL, ever. */
void *cn_gt_loop_main(void *arg);

/* Give a served connection back to the loop thread (pool thread, GIL held
 * or not): what to do is in gc->back. */
void cn_gt_hand_back(cn_gthread *g, gt_conn *gc);

/* Give back a kept-alive connection with nothing buffered without waking
 * the loop (GT_POOL -> GT_BACK).  Pool thread; 1 when done (the caller must
 * not touch gc again), 0 when it must use cn_gt_hand_back instead. */
int cn_gt_release_idle(cn_gthread *g, gt_conn *gc);

/* Run the loop in the calling (main) thread while the loop thread has been
 * serving inline for more than GT_WATCH_MS; returns when it is back, the
 * loop ended, a stop was asked for, or after until_ns (CLOCK_MONOTONIC).
 * 1 when it ran the loop, 0 when it was not needed.  No GIL. */
int cn_gt_watch(cn_gthread *g, int64_t until_ns);

/* clock_gettime(clock) in nanoseconds, any thread. */
int64_t cn_gt_clock_ns(clockid_t clock);

/* Monotonic seconds (coarse clock: a few ms resolution), any thread. */
double cn_gt_now(void);

/* Wake the loop thread to look at the flags (any thread). */
void cn_gt_wake(cn_gthread *g);

/* Free every connection and buffer the loop still holds, and the loop
 * (main thread, after the loop thread and every pool thread exited). */
void cn_gt_loop_free(cn_gthread *g);

/* threadpool.c ------------------------------------------------------------ */

/* A connection whose head is parsed (job GT_JOB_SERVE) or failed
 * (GT_JOB_ERROR): 1 when the caller, the loop thread (may_inline), should
 * serve it itself (see "Inline serving" above), else queued for the pool
 * and 0.  Whoever runs the loop, no GIL. */
int cn_gt_pool_dispatch(cn_gthread *g, gt_conn *gc, int may_inline);

/* Serve `list` (linked by next, state GT_POOL) in the loop thread, with
 * the GIL, out of the loop (loop_mu not held), then what serving queued
 * (pipelined requests), for up to GT_INLINE_BUDGET_NS.  Returns what is
 * left of `list`: served after the next, non-blocking, loop iteration. */
gt_conn *cn_gt_serve_inline(cn_gthread *g, gt_conn *list);

/* Send the responses an inline batch held back (cn_conn_cork_flush) and
 * pass their connections on (given back to the loop).  may_wait: the loop
 * thread at the batch's end (CN_GIL), which waits for a full socket; 0:
 * the main thread standing in for it (cn_gt_watch, no GIL), which leaves
 * what a socket does not take now for the loop thread. */
void cn_gt_cork_flush(cn_gthread *g, int may_wait);

/* The main thread takes the loop over from a stuck inline batch: the
 * responses it held back go now (what a socket takes), the requests it has
 * not served go to the pool.  No GIL. */
void cn_gt_watch_takeover(cn_gthread *g);

/* The loop thread's Python thread state goes (loop thread, at its end). */
void cn_gt_inline_end(cn_gthread *g);

/* Start g->nthreads pool threads.  CN_GIL, main thread; 0 or -errno (the
 * threads already started keep running; stop them with cn_gt_pool_stop). */
int cn_gt_pool_start(cn_gthread *g);

/* Ask the pool threads to exit once the queue is empty and wait up to
 * wait_ms for all of them.  1 when every thread exited (and was joined),
 * 0 when some are still inside the app.  CN_GIL (released while waiting). */
int cn_gt_pool_stop(cn_gthread *g, int wait_ms);

#endif
