/* Serving one request (serve.c), shared by every worker class. */
#ifndef CN_SERVE_H
#define CN_SERVE_H

#include "conn.h"
#include "worker.h"

/* Act on cn_conn_read_head's result r: 1 → 1 (serve it); -1 → the error
 * response is sent, returns -1 (close with linger); 0/-2/-3 → 0 (close).
 * CN_GIL. */
int cn_serve_head_result(cn_worker *w, cn_conn *c, int r);

/* Serve the request whose head is parsed on `c`: proxy and scheme checks,
 * environ, the app, the response, the access log.  Returns 1 when the
 * connection may carry another request (keep-alive, response complete,
 * nothing unread), 0 to close it, -1 to close it with a lingering drain.
 * Never leaves an exception set.  CN_GIL. */
int cn_serve_request(cn_worker *w, cn_conn *c);

#endif
