/* The WSGI environ of one request (PEP 3333, with the keys gunicorn sets).
 *
 * Built from the parsed head in one pass: a copy of the worker's base dict,
 * then interned CGI keys and an HTTP_* key per header name, cached per worker
 * so a steady stream of requests allocates no key strings.  CN_GIL. */
#include "environ.h"

#include "module.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <unistd.h>

/* Set d[key] = value, stealing the reference to value.  0 or -1. */
static int
set_steal(PyObject *d, PyObject *key, PyObject *value)
{
    if (value == NULL) {
        return -1;
    }
    int r = PyDict_SetItem(d, key, value);
    Py_DECREF(value);
    return r;
}

static PyObject *
latin1(const char *s, size_t n)
{
    return PyUnicode_DecodeLatin1(s, (Py_ssize_t)n, NULL);
}

static int
hexval(char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

/* Percent-decode s[0..n) as latin-1 text (PEP 3333's PATH_INFO). New ref. */
static PyObject *
unquote(const char *s, size_t n)
{
    if (memchr(s, '%', n) == NULL) {
        return latin1(s, n);
    }
    char stackbuf[1024] = {0};
    char *out = n <= sizeof(stackbuf) ? stackbuf : PyMem_Malloc(n);
    if (out == NULL) {
        return PyErr_NoMemory();
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n
            && (hi = hexval(s[i + 1])) >= 0 && (lo = hexval(s[i + 2])) >= 0) {
            out[k++] = (char)(hi * 16 + lo);
            i += 2;
        }
        else {
            out[k++] = s[i];
        }
    }
    PyObject *r = latin1(out, k);
    if (out != stackbuf) {
        PyMem_Free(out);
    }
    return r;
}

/* The environ key for header `h`: "HTTP_" + upper-cased name with '-' → '_'
 * (CONTENT_TYPE and CONTENT_LENGTH have no prefix).  Borrowed from the cache
 * when it fits there, else a new reference in *owned.  NULL with an
 * exception on failure. */
static PyObject *
header_key(cn_worker *w, const cn_header *h, PyObject **owned)
{
    char up[CN_HKEY_MAXLEN + 8];
    *owned = NULL;
    if (h->name_len < CN_HKEY_MAXLEN) {
        unsigned hash = 2166136261u;
        for (size_t i = 0; i < h->name_len; i++) {
            char ch = h->name[i];
            if (ch >= 'a' && ch <= 'z') {
                ch = (char)(ch - 32);
            }
            up[i] = ch;
            hash = (hash ^ (unsigned char)ch) * 16777619u;
        }
        cn_hkey *e = &w->hkeys[hash % CN_HKEY_CACHE];
        if (e->key != NULL && e->len == h->name_len
            && memcmp(e->name, up, h->name_len) == 0) {
            return e->key;
        }
        char key[CN_HKEY_MAXLEN + 8];
        size_t n = 0;
        if (!((h->name_len == 12 && memcmp(up, "CONTENT-TYPE", 12) == 0)
              || (h->name_len == 14 && memcmp(up, "CONTENT-LENGTH", 14) == 0))) {
            memcpy(key, "HTTP_", 5);
            n = 5;
        }
        for (size_t i = 0; i < h->name_len; i++) {
            key[n++] = up[i] == '-' ? '_' : up[i];
        }
        PyObject *k = PyUnicode_DecodeLatin1(key, (Py_ssize_t)n, NULL);
        if (k == NULL) {
            return NULL;
        }
        PyUnicode_InternInPlace(&k);
        Py_XSETREF(e->key, k);
        e->len = (unsigned char)h->name_len;
        memcpy(e->name, up, h->name_len);
        return k;
    }
    /* Long names: built each time. */
    PyObject *name = latin1(h->name, h->name_len);
    if (name == NULL) {
        return NULL;
    }
    PyObject *upper = PyObject_CallMethod(name, "upper", NULL);
    Py_DECREF(name);
    if (upper == NULL) {
        return NULL;
    }
    PyObject *repl = PyObject_CallMethod(upper, "replace", "ss", "-", "_");
    Py_DECREF(upper);
    if (repl == NULL) {
        return NULL;
    }
    *owned = PyUnicode_FromFormat("HTTP_%U", repl);
    Py_DECREF(repl);
    return *owned;
}

/* Whether the header h, whose name has a '_', reaches the environ: with
 * header_map=dangerous, or when it is one of forwarder_headers from a
 * trusted front end (c->fwd_trusted); else it is dropped (gunicorn's
 * header_map=drop: '_' names could spoof '-' ones). */
static int
underscore_kept(const cn_worker *w, const cn_conn *c, const cn_header *h)
{
    return w->limits.header_map == CN_HEADER_MAP_DANGEROUS
           || (c->fwd_trusted && cn_fwd_named(&w->limits, h->name, h->name_len));
}

static int
add_header(cn_worker *w, const cn_conn *c, PyObject *env, const cn_header *h)
{
    PyObject *owned;
    if (c->underscore && memchr(h->name, '_', h->name_len) != NULL
        && !underscore_kept(w, c, h)) {
        return 0;
    }
    PyObject *key = header_key(w, h, &owned);
    if (key == NULL) {
        return -1;
    }
    PyObject *value = latin1(h->value, h->value_len);
    if (value == NULL) {
        Py_XDECREF(owned);
        return -1;
    }
    PyObject *prev = PyDict_GetItemWithError(env, key);
    int r;
    if (prev != NULL && PyUnicode_Check(prev)) {
        /* Repeats joined with ",", as gunicorn does. */
        PyObject *joined = PyUnicode_FromFormat("%U,%U", prev, value);
        Py_DECREF(value);
        r = set_steal(env, key, joined);
    }
    else if (PyErr_Occurred()) {
        Py_DECREF(value);
        r = -1;
    }
    else {
        r = set_steal(env, key, value);
    }
    Py_XDECREF(owned);
    return r;
}

void
cn_peer_ip(cn_conn *c)
{
    const struct sockaddr *sa = (const struct sockaddr *)&c->peer;
    c->peer_ip[0] = 0;
    if (c->peer_len == 0) {
        return;
    }
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, c->peer_ip,
                  sizeof(c->peer_ip));
    }
    else if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, c->peer_ip,
                  sizeof(c->peer_ip));
    }
}

int
cn_ip_allowed(const cn_allow *allow, const cn_conn *c)
{
    const struct sockaddr *sa = (const struct sockaddr *)&c->peer;
    const unsigned char *ip;
    if (allow->any || c->peer_len == 0
        || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)) {
        return 1; /* everyone ("*"), or a unix socket's peer, as gunicorn */
    }
    if (sa->sa_family == AF_INET) {
        ip = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
    }
    else {
        ip = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    }
    for (int i = 0; i < allow->n; i++) {
        const cn_net *net = &allow->nets[i];
        if (net->family != sa->sa_family) {
            continue;
        }
        unsigned whole = net->prefix / 8, rest = net->prefix % 8;
        if (memcmp(ip, net->addr, whole) == 0
            && (rest == 0 || ((ip[whole] ^ net->addr[whole]) & (0xFF00u >> rest) & 0xFF) == 0)) {
            return 1;
        }
    }
    return 0;
}

int
cn_request_scheme(cn_worker *w, cn_conn *c)
{
    int decided = 0, trusted = -1;
    c->https = 0;
    for (size_t i = 0; i < c->nheaders && w->nsecure > 0; i++) {
        const cn_header *h = &c->headers[i];
        for (int k = 0; k < w->nsecure; k++) {
            size_t n = strlen(w->secure_name[k]);
            if (h->name_len != n || strncasecmp(h->name, w->secure_name[k], n) != 0) {
                continue;
            }
            if (trusted < 0) {
                trusted = cn_ip_allowed(&w->forwarded_allow, c);
            }
            if (!trusted) {
                return 0;
            }
            size_t vn = strlen(w->secure_value[k]);
            int https = h->value_len == vn && memcmp(h->value, w->secure_value[k], vn) == 0;
            if (decided && https != c->https) {
                return -1;
            }
            decided = 1;
            c->https = https;
        }
    }
    return 0;
}

/* REMOTE_ADDR / REMOTE_PORT from the peer, or from the PROXY header. */
static int
add_remote(cn_state *st, PyObject *env, const cn_conn *c)
{
    const struct sockaddr *sa = (const struct sockaddr *)&c->peer;
    if (c->has_proxy) {
        if (set_steal(env, st->str[CN_STR_REMOTE_ADDR], PyUnicode_FromString(c->proxy_addr)) < 0) {
            return -1;
        }
        return set_steal(env, st->str[CN_STR_REMOTE_PORT],
                         PyUnicode_FromFormat("%d", c->proxy_port));
    }
    if (c->peer_len == 0) {
        return 0;
    }
    int port;
    if (sa->sa_family == AF_INET) {
        port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
    }
    else if (sa->sa_family == AF_INET6) {
        port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    }
    else {
        /* Unix socket: gunicorn reports the empty peer name. */
        return PyDict_SetItem(env, st->str[CN_STR_REMOTE_ADDR], st->str[CN_STR_empty]);
    }
    if (set_steal(env, st->str[CN_STR_REMOTE_ADDR], PyUnicode_FromString(c->peer_ip)) < 0) {
        return -1;
    }
    return set_steal(env, st->str[CN_STR_REMOTE_PORT], PyUnicode_FromFormat("%d", port));
}

/* SERVER_NAME / SERVER_PORT from the listener, or from Host for unix sockets. */
static int
add_server(cn_worker *w, PyObject *env, const cn_conn *c)
{
    cn_state *st = w->st;
    const cn_listener *li = &w->listeners[c->listener];
    if (PyUnicode_GET_LENGTH(li->server_name) > 0) {
        if (PyDict_SetItem(env, st->str[CN_STR_SERVER_NAME], li->server_name) < 0) {
            return -1;
        }
        return PyDict_SetItem(env, st->str[CN_STR_SERVER_PORT], li->server_port);
    }
    const char *host = NULL;
    size_t hlen = 0;
    for (size_t i = 0; i < c->nheaders; i++) {
        if (c->headers[i].name_len == 4 && strncasecmp(c->headers[i].name, "host", 4) == 0) {
            host = c->headers[i].value;
            hlen = c->headers[i].value_len;
            break;
        }
    }
    if (host == NULL) {
        if (PyDict_SetItem(env, st->str[CN_STR_SERVER_NAME], st->str[CN_STR_empty]) < 0) {
            return -1;
        }
        return PyDict_SetItem(env, st->str[CN_STR_SERVER_PORT], st->str[CN_STR_empty]);
    }
    const char *colon = NULL;
    if (hlen > 0 && host[0] != '[') {
        colon = memchr(host, ':', hlen);
    }
    else if (hlen > 0) {
        const char *rb = memchr(host, ']', hlen);
        if (rb != NULL && rb + 1 < host + hlen && rb[1] == ':') {
            colon = rb + 1;
        }
    }
    size_t nlen = colon ? (size_t)(colon - host) : hlen;
    if (set_steal(env, st->str[CN_STR_SERVER_NAME], latin1(host, nlen)) < 0) {
        return -1;
    }
    if (colon) {
        return set_steal(env, st->str[CN_STR_SERVER_PORT],
                         latin1(colon + 1, hlen - nlen - 1));
    }
    return set_steal(env, st->str[CN_STR_SERVER_PORT], PyUnicode_FromString("80"));
}

/* The parts of the request target: the path [*path, *pend) and, when there
 * is one, the query [*q, *qend) (q NULL without one). */
static void
split_target(const cn_conn *c, const char **path, const char **pend, const char **q,
             const char **qend)
{
    const char *t = c->target;
    size_t n = c->target_len;
    const char *end = t + n;
    *path = t;

    if (n >= 2 && t[0] == '/' && t[1] == '/') {
        /* "//x" is a path, not a network location (gunicorn #297). */
    }
    else if (t[0] != '/') {
        /* absolute-form: skip "scheme://authority" */
        const char *sep = NULL;
        for (const char *p = t; p + 2 < end; p++) {
            if (*p == ':' && p[1] == '/' && p[2] == '/') {
                sep = p + 3;
                break;
            }
            if (*p == '/' || *p == '?') {
                break;
            }
        }
        if (sep != NULL) {
            const char *slash = sep;
            while (slash < end && *slash != '/' && *slash != '?' && *slash != '#') {
                slash++;
            }
            *path = slash;
        }
    }
    const char *qm = memchr(*path, '?', (size_t)(end - *path));
    const char *hash = memchr(*path, '#', (size_t)(end - *path));
    *pend = qm ? qm : (hash ? hash : end);
    if (qm && hash && hash < qm) {
        *pend = hash;
        qm = NULL;
    }
    *q = qm ? qm + 1 : NULL;
    *qend = qm ? (hash && hash > qm ? hash : end) : NULL;
}

int
cn_request_forwarded(cn_worker *w, cn_conn *c)
{
    c->fwd_trusted = 0;
    if (!c->fwd_named || w->limits.header_map == CN_HEADER_MAP_DANGEROUS) {
        return 0;
    }
    int ok = cn_ip_allowed(&w->forwarded_allow, c);
    c->fwd_trusted = ok;
    return !ok && w->limits.header_map == CN_HEADER_MAP_REFUSE ? -1 : 0;
}

int
cn_request_script(const cn_worker *w, cn_conn *c, char *msg, size_t cap)
{
    c->script_hdr = -1;
    c->script_skip = 0;
    for (size_t i = 0; c->underscore && i < c->nheaders; i++) {
        const cn_header *h = &c->headers[i];
        if (h->name_len == 11 && strncasecmp(h->name, "script_name", 11) == 0
            && underscore_kept(w, c, h)) {
            c->script_hdr = (int)i; /* the last one, as gunicorn */
        }
    }
    const char *s = w->script_name;
    size_t n = w->script_len;
    int wide = w->script_wide;
    if (c->script_hdr >= 0) {
        s = c->headers[c->script_hdr].value;
        n = c->headers[c->script_hdr].value_len;
        wide = 0;
    }
    if (n == 0) {
        return 0;
    }
    const char *path, *pend, *q, *qend;
    split_target(c, &path, &pend, &q, &qend);
    if (!wide && (size_t)(pend - path) >= n && memcmp(path, s, n) == 0) {
        c->script_skip = n;
        return 0;
    }
    snprintf(msg, cap,
             "Configuration problem: Request path '%.*s' does not start with SCRIPT_NAME '%.*s'",
             (int)(pend - path > 200 ? 200 : pend - path), path, (int)(n > 200 ? 200 : n), s);
    return 1;
}

/* PATH_INFO (what follows SCRIPT_NAME: cn_request_script), SCRIPT_NAME from
 * a header, and QUERY_STRING, from the request target. */
static int
add_path(cn_worker *w, PyObject *env, const cn_conn *c)
{
    cn_state *st = w->st;
    const char *path, *pend, *q, *qend;
    split_target(c, &path, &pend, &q, &qend);
    path += c->script_skip;
    if (set_steal(env, st->str[CN_STR_PATH_INFO], unquote(path, (size_t)(pend - path))) < 0) {
        return -1;
    }
    if (c->script_hdr >= 0) {
        const cn_header *h = &c->headers[c->script_hdr];
        if (set_steal(env, st->str[CN_STR_SCRIPT_NAME], latin1(h->value, h->value_len)) < 0) {
            return -1;
        }
    }
    if (q) {
        return set_steal(env, st->str[CN_STR_QUERY_STRING], latin1(q, (size_t)(qend - q)));
    }
    return PyDict_SetItem(env, st->str[CN_STR_QUERY_STRING], st->str[CN_STR_empty]);
}

/* gunicorn.socket, for a request that asks to upgrade (WebSocket): the
 * connection as a Python socket of its own (a dup of the descriptor), which
 * an app may take over (Flask-Sock, simple-websocket), ending with
 * StopIteration (serve.c).  Its calls block as on gunicorn's, but through a
 * timeout of weeks (CN_APP_SOCKET_TIMEOUT) rather than blocking mode: the
 * dup shares the descriptor's O_NONBLOCK, which the engine's own reads and
 * writes (poll-bounded) rely on.  gevent's socket in the gevent worker.
 * Only for Upgrade requests (c->upgrade): a socket object a request would
 * cost microseconds.  0 or -1. */
#define CN_APP_SOCKET_TIMEOUT 2e6 /* seconds: 23 days, poll's limit is 24.8 */

static int
add_socket(cn_worker *w, PyObject *env, cn_conn *c)
{
    int fd = fcntl(c->fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    PyObject *mod = PyImport_ImportModule(w->coop_wait != NULL ? "gevent.socket" : "socket");
    PyObject *cls = mod != NULL ? PyObject_GetAttrString(mod, "socket") : NULL;
    Py_XDECREF(mod);
    PyObject *args = cls != NULL ? PyTuple_New(0) : NULL;
    PyObject *kw = args != NULL ? Py_BuildValue("{s:i}", "fileno", fd) : NULL;
    PyObject *sock = kw != NULL ? PyObject_Call(cls, args, kw) : NULL;
    Py_XDECREF(kw);
    Py_XDECREF(args);
    Py_XDECREF(cls);
    if (sock == NULL) {
        close(fd);
        return -1;
    }
    if (w->coop_wait == NULL) {
        PyObject *r = PyObject_CallMethod(sock, "settimeout", "d", CN_APP_SOCKET_TIMEOUT);
        if (r == NULL) {
            Py_DECREF(sock);
            return -1;
        }
        Py_DECREF(r);
    }
    int rc = PyDict_SetItemString(env, "gunicorn.socket", sock);
    Py_DECREF(sock);
    return rc;
}

static PyObject *
method_str(cn_state *st, const cn_conn *c)
{
    if (c->method_len == 3 && memcmp(c->method, "GET", 3) == 0) {
        return Py_NewRef(st->str[CN_STR_GET]);
    }
    if (c->method_len == 4 && memcmp(c->method, "POST", 4) == 0) {
        return Py_NewRef(st->str[CN_STR_POST]);
    }
    if (c->method_len == 4 && memcmp(c->method, "HEAD", 4) == 0) {
        return Py_NewRef(st->str[CN_STR_HEAD]);
    }
    return latin1(c->method, c->method_len);
}

PyObject *
cn_environ_build(cn_worker *w, cn_conn *c, PyObject *input)
{
    cn_state *st = w->st;
    PyObject *env = PyDict_Copy(w->base_environ);
    if (env == NULL) {
        return NULL;
    }
    if (set_steal(env, st->str[CN_STR_REQUEST_METHOD], method_str(st, c)) < 0
        || set_steal(env, st->str[CN_STR_RAW_URI], latin1(c->target, c->target_len)) < 0
        || PyDict_SetItem(env, st->str[CN_STR_SERVER_PROTOCOL],
                          st->str[c->http_minor ? CN_STR_HTTP_1_1 : CN_STR_HTTP_1_0]) < 0
        || PyDict_SetItem(env, st->str[CN_STR_wsgi_input], input) < 0
        || add_path(w, env, c) < 0
        || add_remote(st, env, c) < 0
        || add_server(w, env, c) < 0
        || (c->https
            && set_steal(env, st->str[CN_STR_wsgi_url_scheme], PyUnicode_FromString("https")) < 0)) {
        Py_DECREF(env);
        return NULL;
    }
    for (size_t i = 0; i < c->nheaders; i++) {
        if (add_header(w, c, env, &c->headers[i]) < 0) {
            Py_DECREF(env);
            return NULL;
        }
    }
    if (c->upgrade && add_socket(w, env, c) < 0) {
        Py_DECREF(env);
        return NULL;
    }
    return env;
}

void
cn_environ_clear_cache(cn_worker *w)
{
    for (int i = 0; i < CN_HKEY_CACHE; i++) {
        Py_CLEAR(w->hkeys[i].key);
    }
}
