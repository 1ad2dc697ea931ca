/* Connection I/O used by the worker loops (conn.c).  All CN_GIL: they
 * release the GIL around syscalls themselves. */
#ifndef CN_CONNIO_H
#define CN_CONNIO_H

#include "conn.h"
#include "parser.h"

/* Receive once into the buffer (growing it up to `limit` bytes), waiting up
 * to timeout_ms.  Returns bytes received, 0 at EOF, -ENOBUFS when the buffer
 * is at `limit`, -ETIMEDOUT or -errno. */
int cn_conn_recv(cn_conn *c, size_t limit, int timeout_ms);

/* Move the unparsed bytes [pos, len) to the start of the buffer. */
void cn_conn_compact(cn_conn *c);

/* Read and parse the next request head.  1: head ready; 0: the client closed
 * (or timed out) cleanly between requests; -1: bad request (c->error_status);
 * -2: the client closed mid-head; -3: I/O error or timeout mid-head. */
int cn_conn_read_head(cn_conn *c, const cn_limits *l, int timeout_ms);

/* Before the next request on a kept-alive connection: read and drop what
 * the app left of this request's body, up to `limit` bytes.  0 when the body
 * is done, -1 when the connection must close instead.  CN_GIL (waits release
 * it).  Never leaves an exception set. */
int cn_conn_discard_body(cn_conn *c, size_t limit);

/* Half-close, then read and drop what the client still sends for a moment
 * (up to a second, 256 KiB), so that closing does not reset a response it
 * has yet to read.  Waits through wait_fd: cooperative under gevent. */
void cn_conn_linger(cn_conn *c);

/* Close the socket; with linger, cn_conn_linger first. */
void cn_conn_close(cn_conn *c, int linger);

/* Free the connection's buffers (worker exit). */
void cn_conn_free_buffers(cn_conn *c);

#endif
