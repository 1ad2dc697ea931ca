/* Worker set-up shared by every worker class (worker_args.c): run_worker's
 * arguments into a cn_worker, and its release.  Moved out of worker_sync.c so
 * the sync and gthread workers parse the same keywords the same way.  All
 * CN_GIL, main thread of the worker process. */
#include "environ.h"
#include "heartbeat.h"
#include "worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
cn_worker_clear(cn_worker *w)
{
    if (w->hb.obj != NULL) {
        PyBuffer_Release(&w->hb);
        w->heartbeats = NULL;
    }
    for (int i = 0; i < w->nlisteners; i++) {
        Py_XDECREF(w->listeners[i].server_name);
        Py_XDECREF(w->listeners[i].server_port);
    }
    PyMem_Free(w->listeners);
    w->listeners = NULL;
    cn_environ_clear_cache(w);
    Py_CLEAR(w->app);
    Py_CLEAR(w->base_environ);
    Py_CLEAR(w->access_log);
    Py_CLEAR(w->error_log);
    PyMem_Free(w->script_name);
    w->script_name = NULL;
    w->script_len = 0;
    PyMem_Free(w->proxy_allow.nets);
    PyMem_Free(w->forwarded_allow.nets);
    memset(&w->proxy_allow, 0, sizeof(w->proxy_allow));
    memset(&w->forwarded_allow, 0, sizeof(w->forwarded_allow));
}

/* Parse `listeners`: a list of (fd, SERVER_NAME, SERVER_PORT).  0 or -1. */
static int
parse_listeners(cn_worker *w, PyObject *listeners)
{
    PyObject *seq = PySequence_Fast(listeners, "listeners must be a sequence");
    if (seq == NULL) {
        return -1;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n < 1) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "at least one listener is needed");
        return -1;
    }
    w->listeners = PyMem_Calloc((size_t)n, sizeof(cn_listener));
    if (w->listeners == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        int fd;
        PyObject *name, *port;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "iUU;listener must be (fd, name, port)",
                              &fd, &name, &port)) {
            Py_DECREF(seq);
            return -1;
        }
        w->listeners[i].fd = fd;
        w->listeners[i].server_name = Py_NewRef(name);
        w->listeners[i].server_port = Py_NewRef(port);
        w->nlisteners = (int)i + 1;
    }
    Py_DECREF(seq);
    return 0;
}

/* One entry of an allow list: "ADDR" or "ADDR/BITS", IPv4 or IPv6.  0, or
 * -1 with ValueError naming `setting`. */
static int
parse_net(const char *setting, const char *text, cn_net *net)
{
    char host[64];
    const char *slash = strchr(text, '/');
    size_t hlen = slash != NULL ? (size_t)(slash - text) : strlen(text);
    if (hlen >= sizeof(host)) {
        goto bad;
    }
    memcpy(host, text, hlen);
    host[hlen] = 0;
    memset(net, 0, sizeof(*net));
    if (inet_pton(AF_INET, host, net->addr) == 1) {
        net->family = AF_INET;
        net->prefix = 32;
    }
    else if (inet_pton(AF_INET6, host, net->addr) == 1) {
        net->family = AF_INET6;
        net->prefix = 128;
    }
    else {
        goto bad;
    }
    if (slash != NULL) {
        char *end;
        errno = 0;
        long bits = strtol(slash + 1, &end, 10);
        if (end == slash + 1 || *end != 0 || errno != 0 || bits < 0 || bits > net->prefix) {
            goto bad;
        }
        net->prefix = (unsigned char)bits;
    }
    return 0;
bad:
    PyErr_Format(PyExc_ValueError, "%s: %s is not an IP address or network", setting, text);
    return -1;
}

/* An allow list: a list of str or a comma-separated str of addresses and
 * networks; "*" anywhere (or None) means everyone. */
static int
parse_allow(const char *setting, PyObject *value, cn_allow *out)
{
    PyMem_Free(out->nets);
    memset(out, 0, sizeof(*out));
    if (value == Py_None) {
        out->any = 1;
        return 0;
    }
    PyObject *items;
    if (PyUnicode_Check(value)) {
        PyObject *comma = PyUnicode_FromString(",");
        items = comma != NULL ? PyUnicode_Split(value, comma, -1) : NULL;
        Py_XDECREF(comma);
    }
    else {
        items = PySequence_List(value);
    }
    if (items == NULL) {
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(items);
    out->nets = PyMem_Calloc(n > 0 ? (size_t)n : 1, sizeof(cn_net));
    int rc = out->nets != NULL ? 0 : -1;
    if (rc < 0) {
        PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
        PyObject *entry = PyObject_CallMethod(PyList_GET_ITEM(items, i), "strip", NULL);
        const char *text = entry != NULL ? PyUnicode_AsUTF8(entry) : NULL;
        if (text == NULL) {
            rc = -1;
        }
        else if (strcmp(text, "*") == 0) {
            out->any = 1;
        }
        else if (text[0] != 0) {
            rc = parse_net(setting, text, &out->nets[out->n]);
            out->n += rc == 0;
        }
        Py_XDECREF(entry);
    }
    Py_DECREF(items);
    return rc;
}

/* w->script_name from the base environ's SCRIPT_NAME (see worker.h). */
static int
parse_script_name(cn_worker *w, PyObject *base)
{
    PyObject *v = PyDict_GetItemWithError(base, w->st->str[CN_STR_SCRIPT_NAME]);
    if (v == NULL || !PyUnicode_Check(v) || PyUnicode_GET_LENGTH(v) == 0) {
        return PyErr_Occurred() ? -1 : 0;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(v);
    const char *s;
    w->script_wide = PyUnicode_KIND(v) != PyUnicode_1BYTE_KIND;
    if (!w->script_wide) {
        s = (const char *)PyUnicode_1BYTE_DATA(v);
    }
    else if ((s = PyUnicode_AsUTF8AndSize(v, &n)) == NULL) {
        return -1;
    }
    w->script_name = PyMem_Malloc((size_t)n + 1);
    if (w->script_name == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(w->script_name, s, (size_t)n);
    w->script_name[n] = 0;
    w->script_len = (size_t)n;
    return 0;
}

/* forwarder_headers: ["SCRIPT_NAME", "PATH_INFO"], or with "*" (any). */
static int
parse_forwarders(cn_limits *l, PyObject *seq)
{
    l->nfwd = l->fwd_any = 0;
    if (seq == Py_None) {
        return 0;
    }
    PyObject *items = PySequence_Fast(seq, "forwarder_headers must be a list");
    if (items == NULL) {
        return -1;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(items);
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *name = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(items, i));
        if (name == NULL) {
            Py_DECREF(items);
            return -1;
        }
        if (strcmp(name, "*") == 0) {
            l->fwd_any = 1;
            continue;
        }
        if (l->nfwd == CN_FWD_MAX || strlen(name) >= sizeof(l->fwd[0])) {
            Py_DECREF(items);
            PyErr_Format(PyExc_ValueError, "forwarder_headers: at most %d names of under %d "
                         "characters", CN_FWD_MAX, (int)sizeof(l->fwd[0]));
            return -1;
        }
        snprintf(l->fwd[l->nfwd++], sizeof(l->fwd[0]), "%s", name);
    }
    Py_DECREF(items);
    return 0;
}

/* secure_scheme_headers: {"X-FORWARDED-PROTO": "https", ...}. */
static int
parse_secure(cn_worker *w, PyObject *d)
{
    w->nsecure = 0;
    if (d == Py_None) {
        return 0;
    }
    if (!PyDict_Check(d)) {
        PyErr_SetString(PyExc_TypeError, "secure_scheme_headers must be a dict");
        return -1;
    }
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(d, &pos, &k, &v)) {
        const char *name = PyUnicode_AsUTF8(k);
        const char *value = name ? PyUnicode_AsUTF8(v) : NULL;
        if (value == NULL) {
            return -1;
        }
        if (w->nsecure == 8 || strlen(name) >= 64 || strlen(value) >= 64) {
            PyErr_SetString(PyExc_ValueError, "secure_scheme_headers: at most 8 short entries");
            return -1;
        }
        snprintf(w->secure_name[w->nsecure], 64, "%s", name);
        snprintf(w->secure_value[w->nsecure], 64, "%s", value);
        w->nsecure++;
    }
    return 0;
}

static int
seconds_to_ms(double s)
{
    if (s <= 0) {
        return 0;
    }
    if (s > 86400.0 * 24) {
        s = 86400.0 * 24;
    }
    return (int)(s * 1000.0);
}

int
cn_worker_init_from_args(cn_worker *w, PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {
        "app", "listeners", "base_environ", "heartbeats", "slot", "timeout",
        "graceful_timeout", "keepalive", "max_requests", "limit_request_line",
        "limit_request_fields", "limit_request_field_size", "access_log",
        "error_log", "header_map", "permit_unconventional_http_method",
        "casefold_http_method", "permit_obsolete_folding", "strip_header_spaces",
        "proxy_protocol", "proxy_allow_ips", "forwarded_allow_ips", "secure_scheme_headers",
        "sendfile", "forwarder_headers", NULL,
    };
    PyObject *app, *listeners, *base, *heartbeats = Py_None;
    PyObject *access_log = Py_None, *error_log = Py_None;
    int slot = -1, permit_method = 0, casefold = 0, fold = 0, strip = 0, proxy = 0;
    int sendfile = 1;
    PyObject *proxy_allow = Py_None, *forwarded_allow = Py_None, *secure = Py_None;
    PyObject *forwarders = Py_None;
    double timeout = 30.0, graceful = 30.0, keepalive = 2.0;
    long max_requests = 0, line = 4094, fields = 100, field_size = 8190;
    const char *header_map = "drop";

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO!|$OidddllllOOspppppOOOpO", kwlist, &app,
                                     &listeners, &PyDict_Type, &base, &heartbeats, &slot,
                                     &timeout, &graceful, &keepalive, &max_requests, &line,
                                     &fields, &field_size, &access_log, &error_log,
                                     &header_map, &permit_method, &casefold, &fold, &strip,
                                     &proxy, &proxy_allow, &forwarded_allow, &secure,
                                     &sendfile, &forwarders)) {
        return -1;
    }
    if (!PyCallable_Check(app)) {
        PyErr_SetString(PyExc_TypeError, "app must be callable");
        return -1;
    }
    w->st = cn_get_state(module);
    w->app = Py_NewRef(app);
    w->base_environ = Py_NewRef(base);
    w->access_log = Py_NewRef(access_log);
    w->error_log = Py_NewRef(error_log);
    w->slot = -1;
    if (parse_listeners(w, listeners) < 0) {
        return -1;
    }
    if (heartbeats != Py_None) {
        if (PyObject_GetBuffer(heartbeats, &w->hb, PyBUF_WRITABLE) < 0) {
            return -1;
        }
        if (slot >= 0 && (size_t)(slot + 1) * CN_HEARTBEAT_SLOT_SIZE > (size_t)w->hb.len) {
            PyErr_SetString(PyExc_ValueError, "heartbeat slot out of range");
            return -1;
        }
        w->heartbeats = w->hb.buf;
        w->slot = slot;
    }
    w->timeout_ms = seconds_to_ms(timeout);
    if (w->timeout_ms == 0) {
        w->timeout_ms = 24 * 3600 * 1000;
    }
    w->graceful_timeout_ms = seconds_to_ms(graceful);
    w->keepalive_ms = seconds_to_ms(keepalive);
    /* A head must arrive promptly: a silent client must not hold a sync
     * worker for the whole timeout (a gunicorn bug we do not copy). */
    w->head_timeout_ms = w->timeout_ms < 5000 ? w->timeout_ms : 5000;
    w->max_requests = max_requests;
    w->sendfile = sendfile;
    cn_limits_init(&w->limits, line, fields, field_size);
    if (strcmp(header_map, "drop") == 0) {
        w->limits.header_map = CN_HEADER_MAP_DROP;
    }
    else if (strcmp(header_map, "refuse") == 0) {
        w->limits.header_map = CN_HEADER_MAP_REFUSE;
    }
    else if (strcmp(header_map, "dangerous") == 0) {
        w->limits.header_map = CN_HEADER_MAP_DANGEROUS;
    }
    else {
        PyErr_Format(PyExc_ValueError, "header_map must be drop, refuse or dangerous, not %s",
                     header_map);
        return -1;
    }
    w->limits.permit_unconventional_method = permit_method;
    w->limits.casefold_method = casefold;
    w->limits.permit_obsolete_folding = fold;
    w->limits.strip_header_spaces = strip;
    w->limits.proxy_protocol = proxy;
    if (parse_allow("proxy_allow_ips", proxy_allow, &w->proxy_allow) < 0
        || parse_allow("forwarded_allow_ips", forwarded_allow, &w->forwarded_allow) < 0
        || parse_secure(w, secure) < 0 || parse_forwarders(&w->limits, forwarders) < 0
        || parse_script_name(w, base) < 0) {
        return -1;
    }
    return 0;
}

int
cn_kw_pop_long(PyObject *kw, const char *name, long lo, long *out)
{
    PyObject *v = PyDict_GetItemString(kw, name); /* borrowed */
    if (v == NULL) {
        return 0;
    }
    long n = PyLong_AsLong(v);
    if (n == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (n < lo) {
        PyErr_Format(PyExc_ValueError, "%s must be at least %ld, not %ld", name, lo, n);
        return -1;
    }
    *out = n;
    return PyDict_DelItemString(kw, name);
}
