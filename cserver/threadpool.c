/* The gthread worker's pool (threadpool.c): N C threads, each with its own
 * Python thread state, that take a connection whose head the loop thread has
 * parsed, run the app on it with the GIL (cn_serve_request: environ, app,
 * response, access log), and hand the connection back to the loop.
 *
 * Body reads and response writes block only the pool thread doing them, with
 * the GIL released (conn.c polls the non-blocking socket).  The queue is two
 * intrusive lists under g->pool_mu, which never hold more than
 * worker_connections entries together, since every entry is an open
 * connection: requests in arrival order (q_head), and short ones (f_head).
 *
 * Short requests first.  With more connections than threads, a request
 * waits behind every one queued before it: behind a hundred 2 ms model
 * calls, a 50 µs health check waits 100 ms.  So the pool learns what each
 * route (method and path, ids in it as one: route_hash) costs in CPU time,
 * as a moving average per route in a small direct-mapped table, and a
 * request whose route costs less than a quarter of the average request,
 * or is short outright (fit to serve inline: inline_request_ok), goes to
 * the short list, taken first.  When every request costs about the same
 * (one route, or similar ones), all go to one list and the order is plain
 * arrival order.  No starvation: after GT_FAST_RUN short requests in a
 * row, one from the other list.
 *
 * The fast lane.  When every thread holds a long request (a model call, a
 * slow upstream), a short one would still wait for the first of them to
 * end.  One more thread, the fast lane, serves short requests (the head of
 * the short list, fit to serve inline) at such times only.  It serves in
 * the slot the next thread to finish frees, which waits for it: the app
 * runs --threads requests, plus one short one for its length.  With
 * --threads 1 there is none: one request at a time, as in gunicorn.
 *
 * Lock order (see gthread.h): GIL -> pool_mu.  A thread holding pool_mu
 * never takes the GIL: to sleep on the queue a thread drops pool_mu, releases
 * the GIL, then takes pool_mu again. */
#include "gthread.h"

#include "connio.h"
#include "serve.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

/* Unread body a kept-alive connection may drop before its next request;
 * more than this and the connection closes instead. */
#define GT_DISCARD_LIMIT (1024 * 1024)

#define GT_FAST_RUN 8 /* short requests taken in a row while others wait */
#define GT_SAMPLE 8   /* a route's cost is measured on one request in this */
#define GT_YOUNG 16   /* ... after the first GT_YOUNG, all measured: a cold
                       * first request (imports, caches) is soon forgotten */

#define FNV(h, ch) (((h) ^ (unsigned char)(ch)) * 1099511628211ULL)

/* Whether the path segment s[0..n) reads as an identifier, not a name: all
 * digits (/items/42), or 16 or more hex digits and dashes with a digit
 * among them (a UUID, a digest). */
static int
segment_is_id(const char *s, size_t n)
{
    size_t digits = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= '0' && ch <= '9') {
            digits++;
        }
        else if (!((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f') && ch != '-') {
            return 0;
        }
    }
    return digits > 0 && (digits == n || n >= 16);
}

/* FNV-1a of the request's method and path (query excluded), an identifier
 * segment hashed as one placeholder: /items/42 and /items/7 are one route,
 * the table learns it once and it does not crowd out others; never 0.
 * The thread that owns gc, no GIL needed. */
static uint64_t
route_hash(const cn_conn *c)
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < c->method_len; i++) {
        h = FNV(h, c->method[i]);
    }
    h = FNV(h, ' ');
    size_t end = 0;
    while (end < c->target_len && c->target[end] != '?') {
        end++;
    }
    for (size_t i = 0; i < end;) {
        size_t j = i;
        while (j < end && c->target[j] != '/') {
            j++;
        }
        if (segment_is_id(c->target + i, j - i)) {
            h = FNV(h, 1);
        }
        else {
            for (size_t k = i; k < j; k++) {
                h = FNV(h, c->target[k]);
            }
        }
        if (j < end) {
            h = FNV(h, '/');
        }
        i = j + 1;
    }
    return h != 0 ? h : 1;
}

/* Whether the table holds a cost for `route`.  Any thread. */
static int
route_known(cn_gthread *g, uint64_t route)
{
    return atomic_load_explicit(&g->routes[route % GT_ROUTES].key, memory_order_relaxed) == route;
}

/* Whether the request queued as gc is short (see the top of the file):
 * error pages are; a route never seen is not.  Any thread. */
static int
route_is_short(cn_gthread *g, gt_conn *gc)
{
    if (gc->job != GT_JOB_SERVE) {
        return 1;
    }
    gt_route *r = &g->routes[gc->route % GT_ROUTES];
    if (!route_known(g, gc->route)) {
        return 0;
    }
    uint64_t cost = atomic_load_explicit(&r->cost_us, memory_order_relaxed);
    uint64_t avg = atomic_load_explicit(&g->avg_us, memory_order_relaxed);
    return cost * 4 < avg;
}

/* Moving averages (1/8 for the route, 1/16 for all requests) after a
 * request of `route` took, when measured (>= 0), `cpu_us` of the thread's
 * CPU and `wall_us` of wall time alone in the pool (no other thread
 * serving: no wait for the GIL in it).  A route starts with a CPU sample,
 * and the CPU time as its wall time when it had none; a wall time over
 * GT_INLINE_US counts at once (a request that waits for I/O must not be
 * served inline again).  Pool or loop thread; racing updates may drop a
 * sample, which an average can afford. */
static void
route_note(cn_gthread *g, uint64_t route, int64_t cpu_us, int64_t wall_us)
{
    gt_route *r = &g->routes[route % GT_ROUTES];
    if (wall_us > UINT32_MAX) {
        wall_us = UINT32_MAX;
    }
    if (atomic_load_explicit(&r->key, memory_order_relaxed) != route) {
        if (cpu_us < 0) {
            return;
        }
        atomic_store_explicit(&r->cost_us, (uint32_t)cpu_us, memory_order_relaxed);
        atomic_store_explicit(&r->wall_us, (uint32_t)(wall_us >= 0 ? wall_us : cpu_us),
                              memory_order_relaxed);
        atomic_store_explicit(&r->samples, 1, memory_order_relaxed);
        atomic_store_explicit(&r->key, route, memory_order_relaxed);
    }
    else {
        if (wall_us >= 0) {
            int64_t w = atomic_load_explicit(&r->wall_us, memory_order_relaxed);
            w = wall_us >= GT_INLINE_US ? wall_us : w + (wall_us - w) / 8;
            atomic_store_explicit(&r->wall_us, (uint32_t)w, memory_order_relaxed);
        }
        if (cpu_us >= 0) {
            /* young: 1/n, the plain mean of the samples so far; then 1/8 */
            uint32_t n = atomic_load_explicit(&r->samples, memory_order_relaxed) + 1;
            int64_t c = atomic_load_explicit(&r->cost_us, memory_order_relaxed);
            atomic_store_explicit(&r->cost_us,
                                  (uint32_t)(c + (cpu_us - c) / (n < 8 ? n : 8)),
                                  memory_order_relaxed);
            atomic_store_explicit(&r->samples, n, memory_order_relaxed);
        }
    }
    if (cpu_us >= 0) {
        int64_t a = atomic_load_explicit(&g->avg_us, memory_order_relaxed);
        atomic_store_explicit(&g->avg_us, (uint32_t)(a + (cpu_us - a) / 16),
                              memory_order_relaxed);
    }
}

/* Whether gc's request is short and needs nothing more from the client:
 * an error page, or a route whose CPU and wall times are known to be under
 * GT_INLINE_CPU_US and GT_INLINE_US, with no body or all of it buffered.
 * gc->route is set. */
static int
inline_request_ok(cn_gthread *g, gt_conn *gc)
{
    cn_conn *c = &gc->c;
    if (gc->job != GT_JOB_SERVE) {
        return 1;
    }
    if (c->chunked
        || (c->content_length > 0 && (uint64_t)c->content_length > c->len - c->pos)) {
        return 0;
    }
    gt_route *r = &g->routes[gc->route % GT_ROUTES];
    return route_known(g, gc->route)
           && atomic_load_explicit(&r->cost_us, memory_order_relaxed) < GT_INLINE_CPU_US
           && atomic_load_explicit(&r->wall_us, memory_order_relaxed) < GT_INLINE_US;
}

/* Once per request, when its head is parsed: its route, and whether it is
 * long (not fit to serve inline).  The thread that owns gc. */
static void
classify(cn_gthread *g, gt_conn *gc)
{
    gc->route = gc->job == GT_JOB_SERVE ? route_hash(&gc->c) : 0;
    gc->longreq = !inline_request_ok(g, gc);
}

/* Whether the fast lane should take the head of the short list: a request
 * fit to serve inline (short, nothing more to read), while every serving
 * slot is held and a long request holds one of them.  pool_mu held. */
static int
fast_ready(cn_gthread *g)
{
    return g->f_head != NULL && !g->f_head->longreq
           && atomic_load_explicit(&g->busy, memory_order_relaxed) >= g->nthreads
           && atomic_load_explicit(&g->busy_long, memory_order_relaxed) > 0;
}

/* Append gc (classified) to its list; wake an idle pool thread when `wake`
 * (a pool thread queueing work for itself does not: it takes from the
 * queue next).  The thread that owns gc, no GIL needed. */
static void
queue_push(cn_gthread *g, gt_conn *gc, int wake)
{
    int fast = !gc->longreq || route_is_short(g, gc);
    pthread_mutex_lock(&g->pool_mu);
    gc->next = NULL;
    gt_conn **head = fast ? &g->f_head : &g->q_head;
    gt_conn **tail = fast ? &g->f_tail : &g->q_tail;
    if (*tail != NULL) {
        (*tail)->next = gc;
    }
    else {
        *head = gc;
    }
    *tail = gc;
    atomic_fetch_add_explicit(&g->queued_long, gc->longreq, memory_order_relaxed);
    if (wake && g->idle > 0) {
        pthread_cond_signal(&g->pool_cv);
    }
    if (g->fast_idle && fast_ready(g)) {
        pthread_cond_signal(&g->fast_cv);
    }
    pthread_mutex_unlock(&g->pool_mu);
}

/* queue_push every connection of `list` (linked by next), waking. */
static void
queue_push_list(cn_gthread *g, gt_conn *list)
{
    while (list != NULL) {
        gt_conn *gc = list;
        list = gc->next;
        queue_push(g, gc, 1);
    }
}

int
cn_gt_pool_dispatch(cn_gthread *g, gt_conn *gc, int may_inline)
{
    classify(g, gc);
    if (may_inline && !gc->longreq
        && atomic_load_explicit(&g->busy, memory_order_relaxed) < g->nthreads
        && atomic_load_explicit(&g->busy_long, memory_order_relaxed) == 0
        && atomic_load_explicit(&g->queued_long, memory_order_relaxed) == 0
        && !atomic_load_explicit(&g->watching, memory_order_relaxed)) {
        return 1; /* no long request in the pool, a slot free, the loop
                   * thread not stuck: it serves this one */
    }
    queue_push(g, gc, 1);
    return 0;
}

/* Take one of the nthreads serving slots (g->busy): 1, or 0 when all are
 * taken.  The loop thread serving inline takes one too, so that no more
 * than --threads requests ever run in the app at once (with --threads 1,
 * one at a time, as gunicorn).  Any thread. */
static int
slot_take(cn_gthread *g)
{
    int b = atomic_load(&g->busy);
    while (b < g->nthreads) {
        if (atomic_compare_exchange_weak(&g->busy, &b, b + 1)) {
            return 1;
        }
    }
    return 0;
}

/* Unlink the head of the short list (fast) or of the other, which the
 * caller saw is there, and count it as served.  pool_mu held. */
static gt_conn *
queue_take(cn_gthread *g, int fast)
{
    gt_conn **head = fast ? &g->f_head : &g->q_head;
    gt_conn **tail = fast ? &g->f_tail : &g->q_tail;
    gt_conn *gc = *head;
    *head = gc->next;
    if (*head == NULL) {
        *tail = NULL;
    }
    gc->next = NULL;
    g->fast_run = fast ? g->fast_run + 1 : 0;
    atomic_fetch_sub_explicit(&g->queued_long, gc->longreq, memory_order_relaxed);
    atomic_fetch_add_explicit(&g->busy_long, gc->longreq, memory_order_relaxed);
    return gc;
}

/* The next queued connection and a serving slot for it, or NULL (nothing
 * queued, every slot taken, or, with short_only, the next one is long).
 * pool_mu held. */
static gt_conn *
pool_pop_locked(cn_gthread *g, int short_only)
{
    int fast = g->f_head != NULL && (g->q_head == NULL || g->fast_run < GT_FAST_RUN);
    gt_conn *next = fast ? g->f_head : g->q_head;
    if (next == NULL || (short_only && next->longreq)) {
        return NULL;
    }
    if (!slot_take(g)) {
        return NULL; /* woken when the inline batch or the fast lane ends */
    }
    return queue_take(g, fast);
}

/* Take the next queued connection; NULL when the pool shuts down.  Called
 * and returns with the GIL; releases it only when it has to sleep (under
 * load the queue is rarely empty and the GIL is kept). */
static gt_conn *
pool_pop(cn_gthread *g)
{
    pthread_mutex_lock(&g->pool_mu);
    gt_conn *gc = pool_pop_locked(g, 0);
    int stop = g->shutdown;
    pthread_mutex_unlock(&g->pool_mu);
    if (gc != NULL || stop) {
        return gc;
    }
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&g->pool_mu);
    for (;;) {
        gc = pool_pop_locked(g, 0);
        if (gc != NULL || g->shutdown) {
            break;
        }
        g->idle++;
        pthread_cond_wait(&g->pool_cv, &g->pool_mu);
        g->idle--;
    }
    pthread_mutex_unlock(&g->pool_mu);
    Py_END_ALLOW_THREADS
    return gc;
}

/* Serve the request on `gc` and say what the loop should do with the
 * connection (GT_BACK_*).  CN_GIL.  Leaves no exception set. */
static int
serve_one(cn_gthread *g, gt_conn *gc)
{
    cn_worker *w = &g->w;
    cn_conn *c = &gc->c;
    if (gc->job == GT_JOB_ERROR) {
        cn_serve_head_result(w, c, -1);
        if (PyErr_Occurred()) {
            PyErr_WriteUnraisable(NULL);
        }
        return GT_BACK_LINGER;
    }
    /* Connection: close on the responses of a worker about to retire, and
     * when keep-alive is off (--keep-alive 0, as gunicorn). */
    if (w->keepalive_ms == 0 || atomic_load(&g->stop_req) || atomic_load(&g->retire_req)
        || cn_worker_max_reached(w, 1)) {
        c->keepalive = 0;
    }
    int r = cn_serve_request(w, c);
    if (cn_worker_max_reached(w, 0) && !atomic_load(&g->retire_req)) {
        atomic_store(&g->retire_req, 1); /* the hand-back wakes the loop */
    }
    if (r == 1 && !c->body_done && cn_conn_discard_body(c, GT_DISCARD_LIMIT) < 0) {
        r = -1;
    }
    if (PyErr_Occurred()) {
        PyErr_WriteUnraisable(NULL);
    }
    return r == 1 ? GT_BACK_KEEP : r == 0 ? GT_BACK_CLOSE : GT_BACK_LINGER;
}

/* After a kept-alive response on gc, which this pool thread owns: take the
 * next request on it without the loop thread where that is cheap.
 *   - nothing buffered, the loop's read watcher armed: give it back lazily
 *     (cn_gt_release_idle), no wake-up;
 *   - a pipelined head buffered, or bytes arrived meanwhile (the loop saw
 *     them and stopped watching: GT_POOL_NOIO): one non-blocking recv and a
 *     parse here; a complete head goes to the tail of the queue (the next
 *     request is served in turn, in order, with no loop round trip).
 * Returns 1 when gc is no longer this thread's to touch (given back or
 * queued), 0 when the caller must hand it back through the list as
 * GT_BACK_KEEP (a partial or bad head, EAGAIN, EOF: the loop re-parses
 * from the head's start and goes on).  CN_GIL (released around the recv
 * and the parse). */
static int
pool_keep(cn_gthread *g, gt_conn *gc)
{
    cn_conn *c = &gc->c;
    if (c->eof || c->buf == NULL || atomic_load(&g->stop_req) || atomic_load(&g->retire_req)) {
        return 0;
    }
    int buffered = c->pos < c->len;
    if (!buffered && cn_gt_release_idle(g, gc)) {
        return 1;
    }
    int r = 0;
    Py_BEGIN_ALLOW_THREADS
    cn_conn_compact(c);
    cn_parse_begin(c, &g->w.limits);
    if (!buffered && c->len < c->cap) {
        ssize_t n;
        do {
            n = recv(c->fd, c->buf + c->len, c->cap - c->len, MSG_DONTWAIT);
        } while (n < 0 && errno == EINTR);
        if (n > 0) {
            c->len += (size_t)n;
        }
        else if (n == 0) {
            c->eof = 1;
        }
    }
    if (c->len > c->pos) {
        r = cn_parse_head(c, &g->w.limits);
    }
    Py_END_ALLOW_THREADS
    if (r != 1) {
        return 0;
    }
    gc->job = GT_JOB_SERVE;
    classify(g, gc);
    queue_push(g, gc, 0);
    return 1;
}

/* Keep gc, served inline with its response held back, until
 * cn_gt_cork_flush.  Any thread. */
static void
cork_hold(cn_gthread *g, gt_conn *gc)
{
    pthread_mutex_lock(&g->batch_mu);
    gc->next = NULL;
    if (g->cork_tail != NULL) {
        g->cork_tail->next = gc;
    }
    else {
        g->cork_head = gc;
        g->cork_since = cn_gt_clock_ns(CLOCK_MONOTONIC);
    }
    g->cork_tail = gc;
    pthread_mutex_unlock(&g->batch_mu);
}

void
cn_gt_watch_takeover(cn_gthread *g)
{
    cn_gt_cork_flush(g, 0);
    pthread_mutex_lock(&g->batch_mu);
    gt_conn *rest = g->batch_rest;
    g->batch_rest = NULL;
    pthread_mutex_unlock(&g->batch_mu);
    queue_push_list(g, rest);
}

void
cn_gt_cork_flush(cn_gthread *g, int may_wait)
{
    pthread_mutex_lock(&g->batch_mu);
    gt_conn *list = g->cork_head;
    g->cork_head = g->cork_tail = NULL;
    pthread_mutex_unlock(&g->batch_mu);
    while (list != NULL) {
        gt_conn *gc = list;
        list = gc->next;
        gc->next = NULL;
        int r = cn_conn_cork_flush(&gc->c, may_wait);
        if (r == 0) {
            cork_hold(g, gc); /* the rest when the loop thread is back */
            continue;
        }
        if (r < 0) {
            gc->back = GT_BACK_CLOSE;
        }
        if (gc->back != GT_BACK_KEEP || !cn_gt_release_idle(g, gc)) {
            cn_gt_hand_back(g, gc);
        }
    }
}

/* Serve gc (popped from the queue, or inline: counted in g->busy either
 * way) and pass the connection on: given back to the loop, or queued again
 * for its next request.  *nserved counts the calling thread's requests.
 * CN_GIL. */
static void
serve_and_pass(cn_gthread *g, gt_conn *gc, unsigned *nserved)
{
    /* The cost of a request is the CPU time this thread spends on it
     * (wall time would count the waits for the GIL, which every request
     * shares); measured on one request in GT_SAMPLE of a known route, the
     * clock being a syscall.  Wall time (vDSO, cheap) counts when the
     * thread served alone: with the CPU time, it decides inline serving. */
    uint64_t route = gc->route;
    int sample = route != 0
                 && (++*nserved % GT_SAMPLE == 0 || !route_known(g, route)
                     || atomic_load_explicit(&g->routes[route % GT_ROUTES].samples,
                                             memory_order_relaxed) < GT_YOUNG);
    int64_t cpu0 = sample ? cn_gt_clock_ns(CLOCK_THREAD_CPUTIME_ID) : 0;
    int64_t wall0 = cn_gt_clock_ns(CLOCK_MONOTONIC);
    int alone = atomic_load_explicit(&g->busy, memory_order_relaxed) == 1;
    int back = serve_one(g, gc);
    if (route != 0) {
        int64_t cpu_us = sample ? (cn_gt_clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0) / 1000 : -1;
        alone = alone && atomic_load_explicit(&g->busy, memory_order_relaxed) == 1;
        route_note(g, route, cpu_us, alone ? (cn_gt_clock_ns(CLOCK_MONOTONIC) - wall0) / 1000 : -1);
    }
    atomic_fetch_sub_explicit(&g->busy_long, gc->longreq, memory_order_relaxed);
    gc->longreq = 0;
    atomic_fetch_sub(&g->busy, 1);
    gc->back_at = cn_gt_now();
    if (gc->c.corking) { /* served inline: the response may be held back */
        gc->c.corking = 0;
        if (gc->c.cork_len > 0) {
            gc->back = (unsigned char)back;
            cork_hold(g, gc); /* passed on once it is sent */
            return;
        }
    }
    /* A kept-alive connection usually goes back without waking the loop,
     * or stays in the pool for its next request; gc is not this thread's
     * once given back or queued. */
    if (back != GT_BACK_KEEP || !pool_keep(g, gc)) {
        gc->back = (unsigned char)back;
        cn_gt_hand_back(g, gc);
    }
}

/* Wake a pool thread that found every slot taken, now that one is free
 * again and work waits.  Any thread, no lock held. */
static void
pool_nudge(cn_gthread *g)
{
    pthread_mutex_lock(&g->pool_mu);
    if (g->idle > 0 && (g->q_head != NULL || g->f_head != NULL)) {
        pthread_cond_broadcast(&g->pool_cv);
    }
    pthread_mutex_unlock(&g->pool_mu);
}

/* The fast lane's pool_pop (see the top of the file): the head of the
 * short list when fast_ready, in a slot borrowed from the next thread to
 * finish; NULL when the pool shuts down.  Called and returns with the GIL,
 * released while it waits. */
static gt_conn *
fast_pop(cn_gthread *g)
{
    pool_nudge(g); /* a thread that waited for the slot it served in */
    gt_conn *gc = NULL;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&g->pool_mu);
    while (!g->shutdown && !fast_ready(g)) {
        g->fast_idle = 1;
        pthread_cond_wait(&g->fast_cv, &g->pool_mu);
        g->fast_idle = 0;
    }
    if (!g->shutdown) {
        gc = queue_take(g, 1);
        atomic_fetch_add(&g->busy, 1); /* over nthreads: borrowed */
    }
    pthread_mutex_unlock(&g->pool_mu);
    Py_END_ALLOW_THREADS
    return gc;
}

/* Body of a pool thread, named `name`, taking its work from `pop`: its own
 * thread state for its whole life. */
static void *
thread_body(cn_gthread *g, const char *name, gt_conn *(*pop)(cn_gthread *))
{
    pthread_setname_np(pthread_self(), name);
    PyGILState_STATE gs = PyGILState_Ensure();
    unsigned nserved = 0;
    gt_conn *gc;
    while ((gc = pop(g)) != NULL) {
        serve_and_pass(g, gc, &nserved);
    }
    PyGILState_Release(gs);
    pthread_mutex_lock(&g->pool_mu);
    g->alive--;
    pthread_cond_broadcast(&g->exit_cv);
    pthread_mutex_unlock(&g->pool_mu);
    return NULL;
}

static void *
pool_main(void *arg)
{
    return thread_body(arg, "cunicorn-pool", pool_pop);
}

static void *
fast_main(void *arg)
{
    return thread_body(arg, "cunicorn-fast", fast_pop);
}

/* ---- inline serving (see gthread.h) ---------------------------------------- */

gt_conn *
cn_gt_serve_inline(cn_gthread *g, gt_conn *list)
{
    static _Thread_local unsigned nserved;
    if (g->loop_ts == NULL) {
        g->loop_gs = PyGILState_Ensure(); /* first time: this thread's state */
    }
    else {
        PyEval_RestoreThread(g->loop_ts);
    }
    int64_t deadline = cn_gt_clock_ns(CLOCK_MONOTONIC) + GT_INLINE_BUDGET_NS;
    /* the batch's requests not served yet: where the main thread, should it
     * take the loop over, finds them (cn_gt_watch_takeover) */
    pthread_mutex_lock(&g->batch_mu);
    g->batch_rest = list;
    pthread_mutex_unlock(&g->batch_mu);
    int64_t now = cn_gt_clock_ns(CLOCK_MONOTONIC);
    for (;;) {
        pthread_mutex_lock(&g->batch_mu);
        int due = g->cork_head != NULL && now - g->cork_since > GT_CORK_NS;
        gt_conn *gc = g->batch_rest;
        int got = gc != NULL && slot_take(g);
        if (got) {
            g->batch_rest = gc->next;
            gc->next = NULL;
        }
        pthread_mutex_unlock(&g->batch_mu);
        if (due) {
            cn_gt_cork_flush(g, 1); /* held long enough */
        }
        if (gc != NULL && !got) {
            break; /* the pool has every slot: it takes the rest */
        }
        if (gc == NULL) {
            /* what serving queued: a connection's next, pipelined, request;
             * a long one is left to the pool */
            pthread_mutex_lock(&g->pool_mu);
            gc = pool_pop_locked(g, 1);
            pthread_mutex_unlock(&g->pool_mu);
            if (gc == NULL) {
                break;
            }
        }
        gc->c.corking = 1;
        serve_and_pass(g, gc, &nserved);
        now = cn_gt_clock_ns(CLOCK_MONOTONIC);
        if (now > deadline) {
            break;
        }
    }
    cn_gt_cork_flush(g, 1);
    pthread_mutex_lock(&g->batch_mu);
    list = g->batch_rest;
    g->batch_rest = NULL;
    pthread_mutex_unlock(&g->batch_mu);
    /* Over budget: the rest waits for the next round, after a look at the
     * loop; what is queued goes to the pool, whose threads may have waited
     * for the slot this thread held. */
    if (list != NULL && atomic_load(&g->busy) >= g->nthreads) {
        queue_push_list(g, list);
        list = NULL;
    }
    pool_nudge(g);
    g->loop_ts = PyEval_SaveThread();
    return list;
}

void
cn_gt_inline_end(cn_gthread *g)
{
    if (g->loop_ts != NULL) {
        PyEval_RestoreThread(g->loop_ts);
        g->loop_ts = NULL;
        PyGILState_Release(g->loop_gs);
    }
}

int
cn_gt_pool_start(cn_gthread *g)
{
    int n = g->nthreads + (g->nthreads > 1); /* the fast lane's */
    g->threads = calloc((size_t)n, sizeof(pthread_t));
    if (g->threads == NULL) {
        return -ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        pthread_mutex_lock(&g->pool_mu);
        g->alive++;
        pthread_mutex_unlock(&g->pool_mu);
        int err = pthread_create(&g->threads[i], NULL, i < g->nthreads ? pool_main : fast_main, g);
        if (err != 0) {
            pthread_mutex_lock(&g->pool_mu);
            g->alive--;
            pthread_mutex_unlock(&g->pool_mu);
            return -err;
        }
        g->nstarted = i + 1;
    }
    return 0;
}

int
cn_gt_pool_stop(cn_gthread *g, int wait_ms)
{
    int all_out;
    Py_BEGIN_ALLOW_THREADS
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += wait_ms / 1000;
    deadline.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&g->pool_mu);
    g->shutdown = 1;
    pthread_cond_broadcast(&g->pool_cv);
    pthread_cond_broadcast(&g->fast_cv);
    while (g->alive > 0) {
        if (pthread_cond_timedwait(&g->exit_cv, &g->pool_mu, &deadline) == ETIMEDOUT) {
            break;
        }
    }
    all_out = g->alive == 0;
    pthread_mutex_unlock(&g->pool_mu);
    if (all_out) {
        for (int i = 0; i < g->nstarted; i++) {
            pthread_join(g->threads[i], NULL);
        }
    }
    Py_END_ALLOW_THREADS
    return all_out;
}
