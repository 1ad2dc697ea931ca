/* One client connection: its socket, read buffer, llhttp parser and the state
 * of the request being served.  Shared by every worker class.
 *
 * Thread/GIL: a connection is used by one thread at a time.  Functions marked
 * CN_NOGIL release nothing and must be called without the GIL; functions marked
 * CN_GIL need it.  The send/recv helpers below are called WITH the GIL and
 * release it themselves around the syscalls and waits. */
#ifndef CN_CONN_H
#define CN_CONN_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <llhttp.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#define CN_GIL   /* caller holds the GIL */
#define CN_NOGIL /* caller must not hold the GIL */

struct cn_worker;

/* One header field of the request head: pointers into the connection's read
 * buffer, valid until the next request is parsed. */
typedef struct {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} cn_header;

#define CN_MAX_HEADERS_HARD 32768 /* ceiling whatever limit_request_fields says */

typedef struct cn_conn {
    int fd;
    int listener;              /* index into the worker's listeners */
    struct sockaddr_storage peer;
    socklen_t peer_len;
    struct cn_worker *w;

    /* Read buffer: bytes [pos, len) are received but not yet parsed. */
    char *buf;
    size_t cap, len, pos;
    size_t head_start;         /* where the current request's head begins */
    size_t scan_pos;           /* guard pre-scan: start of the next line */
    size_t nlines;             /* guard pre-scan: lines seen in this head */
    const void *limits;        /* the cn_limits in force (parser.h) */

    llhttp_t parser;
    llhttp_settings_t *settings;

    /* The request head (valid after cn_conn_read_head returned 1). */
    const char *method;
    size_t method_len;
    const char *target;
    size_t target_len;
    int http_major, http_minor;
    cn_header *headers;
    size_t nheaders, headers_cap;
    cn_header cur;             /* header being assembled from llhttp spans */
    int64_t content_length;    /* -1 when absent */
    unsigned chunked : 1;
    unsigned expect_continue : 1;  /* client waits for "100 Continue" */
    unsigned continue_sent : 1;
    unsigned is_head : 1;          /* method is HEAD: no response body */
    unsigned keepalive : 1;        /* the engine may reuse the connection */
    unsigned must_close : 1;       /* set when the connection cannot be reused */
    unsigned body_done : 1;        /* the request body has been read to its end */
    unsigned eof : 1;              /* the client closed its side */
    unsigned needs_rewrite : 1;    /* head has folds / spaces to normalise */
    unsigned at_chunk_line : 1;    /* next body bytes are a chunk-size line */
    unsigned last_chunk : 1;       /* the zero-size chunk has been seen */

    /* Body bytes decoded by llhttp and not yet handed to wsgi.input. */
    char *body;
    size_t body_cap, body_len, body_pos;
    int body_error;            /* 0, or CN_BODY_* below once the body failed */
    PyObject *pending_exc;     /* exception stashed by a callback, or NULL */

    /* Trailer name being assembled (trailers are checked, never kept). */
    char trailer_name[32];
    size_t trailer_name_len, field_len, nfields;
    int in_trailers;
    /* PROXY protocol (v1 or v2) client address, from the first request. */
    int has_proxy;
    char proxy_addr[48];
    int proxy_port;
    size_t nrequests;          /* requests parsed on this connection */
    char peer_ip[48];          /* peer address as text ("" for unix sockets) */
    int https;                 /* wsgi.url_scheme is https (trusted header) */
    int underscore;            /* a header name with '_' in this request */
    int fwd_named;             /* ... one of them a forwarder_headers name */
    int fwd_trusted;           /* ... and the peer may send forwarder_headers */
    int upgrade;               /* an Upgrade header: the app gets gunicorn.socket */
    int script_hdr;            /* header index giving SCRIPT_NAME, or -1 */
    size_t script_skip;        /* path bytes that are SCRIPT_NAME */

    int error_status;          /* HTTP status of a parse error, or 0 */
    const char *error_reason;  /* static text for the error page */

    /* Output held back (cn_conn_cork_flush): while `corking`, writes that
     * fit CN_CORK_MAX collect here, in order, instead of leaving at once. */
    int corking;
    char *cork;
    size_t cork_len, cork_cap;
} cn_conn;

enum {
    CN_BODY_OK = 0,
    CN_BODY_EOF = 1,       /* client closed before the body ended */
    CN_BODY_INVALID = 2,   /* malformed chunked encoding */
    CN_BODY_TIMEOUT = 3,   /* no byte within the timeout */
    CN_BODY_IOERR = 4,     /* recv failed */
};

/* Read up to `n` decoded body bytes into `dst`.  CN_GIL (releases it to wait).
 * Returns the number of bytes (> 0), 0 at the end of the body, or -1 with a
 * Python exception set (NoMoreData, InvalidChunk, OSError / TimeoutError).
 * Sends "HTTP/1.1 100 Continue" first when the client asked for it. */
Py_ssize_t cn_conn_read_body(cn_conn *c, char *dst, size_t n);

/* Send every byte of iov[0..iovcnt) (the array is modified).  CN_GIL (released
 * around send and the wait for POLLOUT).  Returns 0, or -errno (-EPIPE,
 * -ECONNRESET, -ETIMEDOUT after the worker's send timeout ...); never sets a
 * Python exception. */
int cn_conn_sendv(cn_conn *c, struct iovec *iov, int iovcnt);

/* Put c->fd back in non-blocking mode (an app that set its socket object on
 * a dup of it blocking turned the shared file status off).  No Python. */
void cn_conn_nonblocking(cn_conn *c);

/* Send what corking held back and stop corking.  may_wait: 1 waits for
 * the socket as cn_conn_sendv does (CN_GIL, released while waiting); 0
 * sends only what the socket takes now, no GIL needed.  Returns 1 when
 * everything is sent (the buffer is freed), 0 when bytes are left
 * (may_wait 0 only), or -errno (must_close set).  The gthread worker corks
 * the responses of an inline batch: written back to back, they wake a
 * client (or a proxy) once rather than once each. */
int cn_conn_cork_flush(cn_conn *c, int may_wait);

/* sendfile(2) `count` bytes of `in_fd` from `offset` (count 0: to EOF).
 * CN_GIL (released).  Returns bytes sent (>= 0) or -errno; never sets a
 * Python exception.  A short count means the file ended early. */
Py_ssize_t cn_conn_sendfile(cn_conn *c, int in_fd, off_t offset, size_t count);

#endif
