/* Building the WSGI environ (environ.c). */
#ifndef CN_ENVIRON_H
#define CN_ENVIRON_H

#include "conn.h"
#include "worker.h"

/* A new environ dict for the request head on `c` with `input` (borrowed) as
 * wsgi.input.  New reference, or NULL with an exception.  CN_GIL. */
PyObject *cn_environ_build(cn_worker *w, cn_conn *c, PyObject *input);

/* Fill c->peer_ip from c->peer.  No Python. */
void cn_peer_ip(cn_conn *c);

/* Whether c's peer is in `allow` (an address or network of it, or "*"); a
 * peer without an IP address (a unix socket) is, as in gunicorn.  1 or 0.
 * No Python. */
int cn_ip_allowed(const cn_allow *allow, const cn_conn *c);

/* Decide wsgi.url_scheme from secure_scheme_headers when the peer is trusted
 * (forwarded_allow_ips): sets c->https.  0, or -1 when the headers disagree
 * (a 400, gunicorn's InvalidSchemeHeaders).  No Python. */
int cn_request_scheme(cn_worker *w, cn_conn *c);

/* forwarder_headers: whether the header names with '_' that are forwarder
 * headers (SCRIPT_NAME, PATH_INFO) come from a trusted front end
 * (forwarded_allow_ips): sets c->fwd_trusted.  0, or -1 when such a header
 * comes from another peer and header_map is refuse (a 400, as gunicorn).
 * No Python. */
int cn_request_forwarded(cn_worker *w, cn_conn *c);

/* gunicorn's SCRIPT_NAME: a SCRIPT_NAME header that reaches the environ (a
 * trusted front end's, after cn_request_forwarded), else the environment's
 * (w->script_name).  The request path must start with it, and PATH_INFO is
 * the rest (sets c->script_hdr, c->script_skip).  0, or 1 when the path does
 * not start with it (`msg` says so: gunicorn's "Configuration problem", a
 * 500).  No Python. */
int cn_request_script(const cn_worker *w, cn_conn *c, char *msg, size_t cap);

/* Drop the worker's cached header keys.  CN_GIL. */
void cn_environ_clear_cache(cn_worker *w);

#endif
