/* The WSGI response side (response.c): start_response, write(), the
 * iterable, Content-Length / chunked framing, sendfile for FileWrapper. */
#ifndef CN_RESPONSE_H
#define CN_RESPONSE_H

#include "conn.h"
#include "worker.h"

/* A new start_response callable for the request now on `c` (new reference or
 * NULL with an exception).  It borrows `c`, which outlives it while the request
 * is served: cn_response_detach() is called before `c` can go away, after which
 * the callable (if the app kept it) raises instead of touching `c`. CN_GIL. */
PyObject *cn_response_new(cn_worker *w, cn_conn *c);

/* The app returned `result` (borrowed): iterate it, send the head and body, and
 * always call result.close() if it has one.  App errors are logged through
 * cn_worker_log and cleared: a 500 is sent if no byte of the head was sent yet,
 * otherwise the connection is cut.  Returns 0 when the response went out whole
 * and framed (the connection may be reused unless c->must_close), -1 when the
 * connection must be closed.  Never returns with an exception set.  CN_GIL. */
int cn_response_finish(PyObject *sr, PyObject *result);

/* The app call itself raised (exception set on entry): log it, clear it, send a
 * 500 if nothing was sent yet.  Returns -1 (close the connection).  CN_GIL. */
int cn_response_fail(PyObject *sr);

/* Detach the callable from its connection (see cn_response_new).  CN_GIL. */
void cn_response_detach(PyObject *sr);

/* For the access log after cn_response_finish/cn_response_fail: the status line
 * text ("200 OK"; borrowed, NULL if never set), the response headers (borrowed
 * list of (str, str), NULL if never set), and the body bytes sent. */
PyObject *cn_response_status(PyObject *sr);
PyObject *cn_response_headers(PyObject *sr);
int64_t cn_response_sent(PyObject *sr);

/* Send a complete error response (400, 431, 417, 500, 501, ...) in gunicorn's
 * HTML format with "Connection: close".  `reason_text` goes into the page body
 * (HTML-escaped).  CN_GIL.  Returns 0 or -errno. */
int cn_send_error(cn_conn *c, int status, const char *reason_text);

/* Fill w->date with the current IMF-fixdate if the second changed.  Any
 * thread; no Python. */
void cn_worker_update_date(cn_worker *w);

#endif
