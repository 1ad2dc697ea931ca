/* _cserver.parse_requests: the engine's parser over bytes, for tests.
 *
 * Feeds `data` in pieces of `chunk` bytes through the same code the workers
 * use (cn_parse_head / cn_parse_body), so tests can check the guard layer and
 * pipelining without a socket.  CN_GIL. */
#include "module_parts.h"
#include "parser.h"

#include <stdlib.h>
#include <string.h>

/* Append the next piece of input to the connection's buffer. */
static int
feed(cn_conn *c, const char *data, size_t total, size_t *fed, size_t chunk)
{
    size_t n = total - *fed;
    if (chunk > 0 && n > chunk) {
        n = chunk;
    }
    if (n == 0) {
        return 0;
    }
    if (c->len + n > c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 4096; /* geometric: byte-by-byte feeds */
        while (cap < c->len + n) {
            cap *= 2;
        }
        char *b = realloc(c->buf, cap);
        if (b == NULL) {
            return -1;
        }
        c->buf = b;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, data + *fed, n);
    c->len += n;
    *fed += n;
    return 1;
}

static PyObject *
head_dict(cn_conn *c, const cn_limits *l)
{
    PyObject *headers = PyList_New(0);
    if (headers == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < c->nheaders; i++) {
        const cn_header *h = &c->headers[i];
        if (memchr(h->name, '_', h->name_len) && l->header_map == CN_HEADER_MAP_DROP) {
            continue;
        }
        PyObject *name = PyUnicode_DecodeLatin1(h->name, (Py_ssize_t)h->name_len, NULL);
        PyObject *upper = name ? PyObject_CallMethod(name, "upper", NULL) : NULL;
        Py_XDECREF(name);
        PyObject *item = upper ? Py_BuildValue("(N N)", upper,
                                               PyUnicode_DecodeLatin1(h->value, (Py_ssize_t)h->value_len, NULL))
                               : NULL;
        if (item == NULL || PyList_Append(headers, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(headers);
            return NULL;
        }
        Py_DECREF(item);
    }
    return Py_BuildValue("{s:N, s:N, s:(ii), s:N}",
                         "method", PyUnicode_DecodeLatin1(c->method, (Py_ssize_t)c->method_len, NULL),
                         "uri", PyUnicode_DecodeLatin1(c->target, (Py_ssize_t)c->target_len, NULL),
                         "version", c->http_major, c->http_minor,
                         "headers", headers);
}

static int
set_error(PyObject *out, int status, const char *reason)
{
    PyObject *d = Py_BuildValue("{s:i, s:s}", "error", status, "reason", reason ? reason : "");
    if (d == NULL) {
        return -1;
    }
    int r = PyList_Append(out, d);
    Py_DECREF(d);
    return r;
}

PyObject *
cn_parse_requests(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"data", "chunk", "limit_request_line", "limit_request_fields",
                             "limit_request_field_size", "header_map",
                             "permit_unconventional_http_method", "casefold_http_method",
                             "permit_obsolete_folding", "strip_header_spaces", "proxy_protocol", NULL};
    Py_buffer data;
    Py_ssize_t chunk = 0;
    long line = 4094, fields = 100, field_size = 8190;
    const char *header_map = "drop";
    int permit = 0, casefold = 0, fold = 0, strip = 0, proxy = 0;
    (void)module;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*|$nlllsppppp", kwlist, &data, &chunk, &line,
                                     &fields, &field_size, &header_map, &permit, &casefold,
                                     &fold, &strip, &proxy)) {
        return NULL;
    }
    cn_limits l;
    cn_limits_init(&l, line, fields, field_size);
    l.header_map = strcmp(header_map, "refuse") == 0      ? CN_HEADER_MAP_REFUSE
                   : strcmp(header_map, "dangerous") == 0 ? CN_HEADER_MAP_DANGEROUS
                                                          : CN_HEADER_MAP_DROP;
    l.permit_unconventional_method = permit;
    l.casefold_method = casefold;
    l.permit_obsolete_folding = fold;
    l.strip_header_spaces = strip;
    l.proxy_protocol = proxy;

    cn_conn c;
    memset(&c, 0, sizeof(c));
    c.fd = -1;
    size_t fed = 0, total = (size_t)data.len;
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        PyBuffer_Release(&data);
        return NULL;
    }
    for (;;) {
        cn_parse_begin(&c, &l);
        int r;
        while ((r = cn_parse_head(&c, &l)) == 0) {
            int f = feed(&c, data.buf, total, &fed, (size_t)chunk);
            if (f < 0) {
                PyErr_NoMemory();
                goto fail;
            }
            if (f == 0) {
                break;
            }
        }
        if (r == 0) {
            if (c.len > c.head_start && set_error(out, 0, "incomplete request") < 0) {
                goto fail;
            }
            break;
        }
        if (r < 0) {
            if (set_error(out, c.error_status, c.error_reason) < 0) {
                goto fail;
            }
            break;
        }
        PyObject *d = head_dict(&c, &l);
        if (d == NULL) {
            goto fail;
        }
        /* Decode the body; pointers into the buffer are not used past here,
         * so the buffer may grow. */
        PyObject *body = PyBytes_FromStringAndSize(NULL, 0);
        int failed = 0;
        while (body != NULL && !c.body_done) {
            int step = cn_parse_body(&c);
            if (step < 0) {
                failed = 1;
                break;
            }
            if (c.body_len > c.body_pos) {
                PyObject *part = PyBytes_FromStringAndSize(c.body + c.body_pos,
                                                           (Py_ssize_t)(c.body_len - c.body_pos));
                c.body_len = c.body_pos = 0;
                PyBytes_ConcatAndDel(&body, part);
                continue;
            }
            if (c.body_done) {
                break;
            }
            if (step == 0) {
                int f = feed(&c, data.buf, total, &fed, (size_t)chunk);
                if (f <= 0) {
                    failed = 2;
                    break;
                }
            }
        }
        if (body == NULL) {
            Py_DECREF(d);
            goto fail;
        }
        if (failed) {
            Py_DECREF(body);
            Py_DECREF(d);
            if (set_error(out, failed == 1 ? 400 : 0,
                          failed == 1 ? c.error_reason : "incomplete body") < 0) {
                goto fail;
            }
            break;
        }
        if (PyDict_SetItemString(d, "body", body) < 0 || PyList_Append(out, d) < 0) {
            Py_DECREF(body);
            Py_DECREF(d);
            goto fail;
        }
        Py_DECREF(body);
        Py_DECREF(d);
        /* Next pipelined request: drop what was parsed. */
        memmove(c.buf, c.buf + c.pos, c.len - c.pos);
        c.len -= c.pos;
        c.pos = 0;
        if (c.len == 0 && fed == total) {
            break;
        }
    }
    free(c.buf);
    free(c.body);
    free(c.headers);
    PyBuffer_Release(&data);
    return out;
fail:
    free(c.buf);
    free(c.body);
    free(c.headers);
    PyBuffer_Release(&data);
    Py_DECREF(out);
    return NULL;
}
