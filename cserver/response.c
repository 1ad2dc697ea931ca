/* The WSGI response side: start_response, write(), the response iterable,
 * Content-Length / chunked framing, sendfile for FileWrapper, gunicorn's error
 * page and the cached Date header.
 *
 * start_response is a heap type (StartResponse) with a vectorcall entry; the
 * write() callable is a PyCFunction bound to the same instance.  start_response
 * validates the status and the headers and encodes the headers the app may
 * send ("Name: value\r\n"...) into a buffer in the instance, so that a bad value
 * raises in the app and never reaches the wire.  The framing (Content-Length,
 * chunked or close-delimited) and the Connection header are decided when the
 * head is sent: by then cn_response_finish may know the whole body length (a
 * list or tuple of bytes, or a regular file), which spares chunking.
 *
 * I/O goes only through cn_conn_sendv / cn_conn_sendfile (conn.c), which take
 * the GIL on entry and release it around the syscalls.  Three result domains:
 * the send helpers return 0 / -errno; Python-facing functions return NULL / -1
 * with an exception; cn_response_finish / cn_response_fail log and clear every
 * exception and return 0 / -1.  Every function here is CN_GIL unless marked. */
#include "response.h"

#include "filewrap.h"
#include "module_parts.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if PY_VERSION_HEX < 0x030C0000
#include <structmember.h>
#define Py_T_PYSSIZET T_PYSSIZET
#define Py_READONLY READONLY
#endif

/* A head up to this size is built on the stack, a larger one on the heap. */
#define CN_HEAD_STACK 4096
/* App header bytes kept inside the StartResponse object before it allocates;
 * sized so the object stays within pymalloc's small-object limit (512). */
#define CN_HINLINE 320
/* Cap on the encoded app headers (a response head that no client or proxy
 * would take anyway). */
#define CN_HEADERS_MAX (1024 * 1024)
/* iovecs per cn_conn_sendv call (below Linux's IOV_MAX of 1024); a chunked
 * body piece takes three. */
#define CN_BATCH 128

/* Per-request state of one response.  `w` and `c` are borrowed and NULL after
 * cn_response_detach. */
typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    cn_worker *w;
    cn_conn *c;
    PyObject *status;          /* strong str, NULL until start_response */
    PyObject *headers;         /* strong list of (str, str), NULL likewise */
    int status_code;
    int io_error;              /* -errno of the first failed send, or 0 */
    int64_t content_length;    /* from the app or computed; -1 if unknown */
    int64_t sent;              /* body bytes sent (framing excluded) */
    unsigned cl_computed : 1;  /* we add "Content-Length" to the head */
    unsigned chunked : 1;
    unsigned no_body : 1;      /* HEAD, 1xx, 204, 304 */
    unsigned keepalive : 1;    /* the head says "Connection: keep-alive" */
    unsigned head_sent : 1;    /* set before the first byte is tried */
    unsigned conn_close : 1;   /* the app sent "Connection: close" */
    char *hbuf;                /* encoded app headers: hinline or heap */
    size_t hlen, hcap;
    char hinline[CN_HINLINE];
} cn_sr;

/* Return codes of the finish helpers below. */
enum {
    FIN_OK = 0,
    FIN_APP_ERROR = -1,   /* a Python exception is set */
    FIN_IO_ERROR = -2,    /* self->io_error is set, no exception */
    FIN_FALLBACK = 1,     /* sendfile impossible: iterate instead */
};

static const char CRLF[] = "\r\n";
static const char LAST_CHUNK[] = "0\r\n\r\n";

/* ---- small helpers (no Python) --------------------------------------- */

/* RFC 9110 tchar. */
static const unsigned char tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
    ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
    ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
    ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
    ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
    ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
    ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
    ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
    ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
    ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

/* Control characters not allowed in a header value or a reason phrase
 * (every CTL but HTAB). */
static inline int
is_bad_ctl(unsigned char ch)
{
    return (ch < 0x20 && ch != '\t') || ch == 0x7f;
}

/* Case-insensitive comparison of s[0..n) with the lower-case literal `lit`. */
static int
lower_eq(const unsigned char *s, size_t n, const char *lit)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = s[i];
        if (ch >= 'A' && ch <= 'Z') {
            ch = (unsigned char)(ch + ('a' - 'A'));
        }
        if (lit[i] == '\0' || ch != (unsigned char)lit[i]) {
            return 0;
        }
    }
    return lit[n] == '\0';
}

/* Write the decimal form of v (>= 0) at p; return the number of digits. */
static size_t
put_u64(char *p, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++) {
        p[i] = tmp[n - 1 - i];
    }
    return n;
}

/* Write "%zX\r\n" at p (a chunk-size line, at most 18 bytes); return its
 * length. */
static size_t
put_chunk_size(char *p, size_t v)
{
    static const char hex[] = "0123456789ABCDEF";
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = hex[v & 0xf];
        v >>= 4;
    } while (v != 0);
    for (size_t i = 0; i < n; i++) {
        p[i] = tmp[n - 1 - i];
    }
    p[n] = '\r';
    p[n + 1] = '\n';
    return n + 2;
}

static inline char *
put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

/* ---- Date ------------------------------------------------------------- */

void
cn_worker_update_date(cn_worker *w)
{
    static const char days[7][4] = {
        "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {
        "Jan", "Feb", "Mar", "Apr", "May", "Jun",
        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    struct tm tm;
    char buf[sizeof(w->date)];

    if (now == w->date_sec && w->date_len != 0) {
        return;
    }
    if (gmtime_r(&now, &tm) == NULL || tm.tm_year + 1900 < 0
        || tm.tm_year + 1900 > 9999) {
        return;
    }
    /* IMF-fixdate, built by hand: strftime would follow the locale. */
    char *p = buf;
    p = put(p, days[tm.tm_wday], 3);
    p = PUT_LIT(p, ", ");
    *p++ = (char)('0' + tm.tm_mday / 10);
    *p++ = (char)('0' + tm.tm_mday % 10);
    *p++ = ' ';
    p = put(p, months[tm.tm_mon], 3);
    *p++ = ' ';
    int year = tm.tm_year + 1900;
    *p++ = (char)('0' + year / 1000);
    *p++ = (char)('0' + year / 100 % 10);
    *p++ = (char)('0' + year / 10 % 10);
    *p++ = (char)('0' + year % 10);
    *p++ = ' ';
    *p++ = (char)('0' + tm.tm_hour / 10);
    *p++ = (char)('0' + tm.tm_hour % 10);
    *p++ = ':';
    *p++ = (char)('0' + tm.tm_min / 10);
    *p++ = (char)('0' + tm.tm_min % 10);
    *p++ = ':';
    *p++ = (char)('0' + tm.tm_sec / 10);
    *p++ = (char)('0' + tm.tm_sec % 10);
    p = PUT_LIT(p, " GMT");
    /* Fill a local copy first: readers on the same thread never see a half
     * date; cross-thread readers are serialised by the GIL (the head is built
     * with it held). */
    memcpy(w->date, buf, (size_t)(p - buf));
    w->date_len = (size_t)(p - buf);
    w->date_sec = now;
}

/* ---- error page ------------------------------------------------------- */

static const char *
reason_for(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Request Entity Too Large";
    case 414: return "Request-URI Too Long";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

/* Bytes html.escape(text, quote=True) produces for one input byte. */
static size_t
escaped_len(unsigned char ch)
{
    switch (ch) {
    case '&': return 5;    /* &amp; */
    case '<': return 4;    /* &lt; */
    case '>': return 4;    /* &gt; */
    case '"': return 6;    /* &quot; */
    case '\'': return 6;   /* &#x27; */
    default: return 1;
    }
}

static char *
put_escaped(char *p, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '&': p = PUT_LIT(p, "&amp;"); break;
        case '<': p = PUT_LIT(p, "&lt;"); break;
        case '>': p = PUT_LIT(p, "&gt;"); break;
        case '"': p = PUT_LIT(p, "&quot;"); break;
        case '\'': p = PUT_LIT(p, "&#x27;"); break;
        default: *p++ = s[i]; break;
        }
    }
    return p;
}

/* gunicorn's util.write_error, byte for byte: the page is textwrap.dedent of
 * its template, the text is html.escape'd, Content-Length counts the page. */
int
cn_send_error(cn_conn *c, int status, const char *reason_text)
{
    const char *reason = reason_for(status);
    const char *text = reason_text != NULL ? reason_text : "";
    size_t rlen = strlen(reason), tlen = strlen(text), elen = 0;
    for (size_t i = 0; i < tlen; i++) {
        elen += escaped_len((unsigned char)text[i]);
    }
    static const char b1[] = "<html>\n  <head>\n    <title>";
    static const char b2[] = "</title>\n  </head>\n  <body>\n    <h1><p>";
    static const char b3[] = "</p></h1>\n    ";
    static const char b4[] = "\n  </body>\n</html>\n";
    size_t body_len = (sizeof(b1) - 1) + rlen + (sizeof(b2) - 1) + rlen
                      + (sizeof(b3) - 1) + elen + (sizeof(b4) - 1);
    size_t need = 128 + rlen + body_len;

    char stackbuf[2048];
    char *buf = stackbuf;
    if (need > sizeof(stackbuf)) {
        buf = PyMem_Malloc(need);
        if (buf == NULL) {
            c->must_close = 1;
            return -ENOMEM;
        }
    }
    char *p = buf;
    p = PUT_LIT(p, "HTTP/1.1 ");
    p += put_u64(p, (uint64_t)(status > 0 ? status : 500));
    *p++ = ' ';
    p = put(p, reason, rlen);
    p = PUT_LIT(p, "\r\nConnection: close\r\nContent-Type: text/html\r\n"
                   "Content-Length: ");
    p += put_u64(p, body_len);
    p = PUT_LIT(p, "\r\n\r\n");
    p = PUT_LIT(p, b1);
    p = put(p, reason, rlen);
    p = PUT_LIT(p, b2);
    p = put(p, reason, rlen);
    p = PUT_LIT(p, b3);
    p = put_escaped(p, text, tlen);
    p = PUT_LIT(p, b4);

    struct iovec iov = {buf, (size_t)(p - buf)};
    c->must_close = 1;
    int rc = cn_conn_sendv(c, &iov, 1);
    if (buf != stackbuf) {
        PyMem_Free(buf);
    }
    return rc;
}

/* ---- start_response ---------------------------------------------------- */

static void
sr_reset(cn_sr *self)
{
    Py_CLEAR(self->status);
    Py_CLEAR(self->headers);
    self->status_code = 0;
    self->content_length = -1;
    self->cl_computed = 0;
    self->conn_close = 0;
    self->hlen = 0;
}

/* Append n bytes to the encoded app headers.  0, or -1 with an exception. */
static int
hbuf_append(cn_sr *self, const char *s, size_t n)
{
    if (self->hlen + n > self->hcap) {
        size_t cap = self->hcap * 2;
        while (cap < self->hlen + n) {
            cap *= 2;
        }
        if (cap > CN_HEADERS_MAX) {
            PyErr_SetString(PyExc_ValueError, "response headers too large");
            return -1;
        }
        char *nb;
        if (self->hbuf == self->hinline) {
            nb = PyMem_Malloc(cap);
            if (nb != NULL) {
                memcpy(nb, self->hbuf, self->hlen);
            }
        }
        else {
            nb = PyMem_Realloc(self->hbuf, cap);
        }
        if (nb == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->hbuf = nb;
        self->hcap = cap;
    }
    memcpy(self->hbuf + self->hlen, s, n);
    self->hlen += n;
    return 0;
}

/* The latin-1 bytes of str `s` in *data / *len.  0, or -1 with ValueError
 * when `s` has a character above U+00FF. */
static int
latin1_view(PyObject *s, const char *what, const unsigned char **data,
            size_t *len)
{
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(s) < 0) {
        return -1;
    }
#endif
    if (PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND) {
        PyErr_Format(PyExc_ValueError, "%s %R is not latin-1 encodable",
                     what, s);
        return -1;
    }
    *data = PyUnicode_1BYTE_DATA(s);
    *len = (size_t)PyUnicode_GET_LENGTH(s);
    return 0;
}

/* Status: a str "3DIGIT SP reason" (reason may be empty), first digit 1-9, no
 * CTL but HTAB.  Stores the code in *code.  0, or -1 with an exception. */
static int
check_status(PyObject *status, int *code)
{
    const unsigned char *s;
    size_t n;

    if (!PyUnicode_Check(status)) {
        PyErr_Format(PyExc_TypeError, "status must be a str, not %.100s",
                     Py_TYPE(status)->tp_name);
        return -1;
    }
    if (latin1_view(status, "status", &s, &n) < 0) {
        return -1;
    }
    if (n < 4 || s[0] < '1' || s[0] > '9' || s[1] < '0' || s[1] > '9'
        || s[2] < '0' || s[2] > '9' || s[3] != ' ') {
        PyErr_Format(PyExc_ValueError,
                     "invalid status %R: expected '3DIGIT SP reason'", status);
        return -1;
    }
    for (size_t i = 4; i < n; i++) {
        if (is_bad_ctl(s[i])) {
            PyErr_Format(PyExc_ValueError,
                         "invalid status %R: control character", status);
            return -1;
        }
    }
    *code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
    return 0;
}

/* A Content-Length from the app: 1-18 digits.  Records it and appends the
 * header (once), or drops it for 1xx/204.  0, or -1 with ValueError. */
static int
record_content_length(cn_sr *self, PyObject *value, const unsigned char *v,
                      size_t vlen, int code)
{
    int64_t cl = 0;
    int ok = vlen > 0 && vlen <= 18;
    for (size_t i = 0; ok && i < vlen; i++) {
        ok = v[i] >= '0' && v[i] <= '9';
        cl = cl * 10 + (v[i] - '0');
    }
    if (!ok) {
        PyErr_Format(PyExc_ValueError, "invalid Content-Length %R", value);
        return -1;
    }
    /* No Content-Length may go with 1xx and 204 (RFC 9110 8.6). */
    if (code < 200 || code == 204) {
        return 0;
    }
    if (self->content_length >= 0) {
        if (self->content_length != cl) {
            PyErr_Format(PyExc_ValueError,
                         "conflicting Content-Length headers (%lld and %lld)",
                         (long long)self->content_length, (long long)cl);
            return -1;
        }
        return 0;   /* the same value twice: send it once */
    }
    self->content_length = cl;
    if (hbuf_append(self, "Content-Length: ", 16) < 0
        || hbuf_append(self, (const char *)v, vlen) < 0
        || hbuf_append(self, CRLF, 2) < 0) {
        return -1;
    }
    return 0;
}

/* Validate one (name, value) pair and append it to the head unless it is
 * hop-by-hop; record Content-Length and "Connection: close".  0, or -1 with
 * an exception. */
static int
process_header(cn_sr *self, PyObject *item, int code)
{
    PyObject *name, *value;
    const unsigned char *n, *v;
    size_t nlen, vlen;

    if (PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 2) {
        name = PyTuple_GET_ITEM(item, 0);
        value = PyTuple_GET_ITEM(item, 1);
    }
    else if (PyList_Check(item) && PyList_GET_SIZE(item) == 2) {
        name = PyList_GET_ITEM(item, 0);
        value = PyList_GET_ITEM(item, 1);
    }
    else {
        PyErr_Format(PyExc_TypeError,
                     "a response header must be a (name, value) tuple, "
                     "not %R", item);
        return -1;
    }
    if (!PyUnicode_Check(name)) {
        PyErr_Format(PyExc_TypeError, "%R is not a string", name);
        return -1;
    }
    if (!PyUnicode_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%R is not a string", value);
        return -1;
    }
    if (latin1_view(name, "header name", &n, &nlen) < 0
        || latin1_view(value, "header value", &v, &vlen) < 0) {
        return -1;
    }
    if (nlen == 0) {
        PyErr_SetString(PyExc_ValueError, "empty header name");
        return -1;
    }
    for (size_t i = 0; i < nlen; i++) {
        if (!tchar[n[i]]) {
            PyErr_Format(PyExc_ValueError, "invalid header name %R", name);
            return -1;
        }
    }
    for (size_t i = 0; i < vlen; i++) {
        if (is_bad_ctl(v[i])) {
            PyErr_Format(PyExc_ValueError, "invalid header value %R", value);
            return -1;
        }
    }
    /* RFC 9110 5.5: leading and trailing whitespace is not part of it. */
    while (vlen > 0 && (v[0] == ' ' || v[0] == '\t')) {
        v++;
        vlen--;
    }
    while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t')) {
        vlen--;
    }

    /* Hop-by-hop headers (gunicorn's util.hop_headers, which also holds
     * Server and Date: we send our own) never reach the wire. */
    int hop = 0;
    switch (nlen) {
    case 2: hop = lower_eq(n, nlen, "te"); break;
    case 4: hop = lower_eq(n, nlen, "date"); break;
    case 6: hop = lower_eq(n, nlen, "server"); break;
    case 7: hop = lower_eq(n, nlen, "upgrade"); break;
    case 8: hop = lower_eq(n, nlen, "trailers"); break;
    case 10:
        if (lower_eq(n, nlen, "connection")) {
            /* A comma-separated list of tokens; "close" anywhere counts. */
            size_t i = 0;
            while (i < vlen) {
                size_t j = i;
                while (j < vlen && v[j] != ',') {
                    j++;
                }
                size_t a = i, b = j;
                while (a < b && (v[a] == ' ' || v[a] == '\t')) {
                    a++;
                }
                while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t')) {
                    b--;
                }
                if (lower_eq(v + a, b - a, "close")) {
                    self->conn_close = 1;
                }
                i = j + 1;
            }
            hop = 1;
        }
        else {
            hop = lower_eq(n, nlen, "keep-alive");
        }
        break;
    case 14:
        if (lower_eq(n, nlen, "content-length")) {
            return record_content_length(self, value, v, vlen, code);
        }
        break;
    case 17: hop = lower_eq(n, nlen, "transfer-encoding"); break;
    case 18: hop = lower_eq(n, nlen, "proxy-authenticate"); break;
    case 19: hop = lower_eq(n, nlen, "proxy-authorization"); break;
    default: break;
    }
    if (hop) {
        return 0;
    }
    if (hbuf_append(self, (const char *)n, nlen) < 0
        || hbuf_append(self, ": ", 2) < 0
        || hbuf_append(self, (const char *)v, vlen) < 0
        || hbuf_append(self, CRLF, 2) < 0) {
        return -1;
    }
    return 0;
}

static PyObject *sr_write(PyObject *op, PyObject *data);

/* The write() callable's definition.  PyCFunction objects point at it; it is
 * never modified. */
static PyMethodDef sr_write_def = {
    "write", sr_write, METH_O,
    "write(data): send bytes of the response body (PEP 3333's write()).",
};

/* start_response(status, headers, exc_info=None).  Returns a new reference
 * to write(), or NULL with an exception; on failure nothing is recorded, so a
 * bad status or header cannot reach the wire. */
static PyObject *
sr_start(cn_sr *self, PyObject *status, PyObject *headers, PyObject *exc_info)
{
    if (self->c == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "start_response() called after the response ended");
        return NULL;
    }
    if (exc_info != NULL && exc_info != Py_None) {
        if (self->head_sent) {
            /* Too late to change anything: re-raise the app's exception
             * with its traceback (PEP 3333). */
            if (!PyTuple_Check(exc_info) || PyTuple_GET_SIZE(exc_info) != 3
                || !PyExceptionInstance_Check(PyTuple_GET_ITEM(exc_info, 1))) {
                PyErr_SetString(PyExc_TypeError,
                                "exc_info must be a (type, value, traceback) "
                                "tuple");
                return NULL;
            }
            PyObject *val = PyTuple_GET_ITEM(exc_info, 1);
            PyObject *tb = PyTuple_GET_ITEM(exc_info, 2);
            PyObject *tp = (PyObject *)Py_TYPE(val);
            Py_INCREF(tp);
            Py_INCREF(val);
            if (PyTraceBack_Check(tb)) {
                Py_INCREF(tb);
            }
            else {
                tb = NULL;
            }
            PyErr_Restore(tp, val, tb);
            return NULL;
        }
        sr_reset(self);   /* nothing sent yet: the new status replaces it */
    }
    else if (self->status != NULL) {
        PyErr_SetString(PyExc_AssertionError, "Response headers already set!");
        return NULL;
    }

    int code;
    if (check_status(status, &code) < 0) {
        return NULL;
    }
    PyObject *list;
    if (PyList_Check(headers)) {
        Py_INCREF(headers);
        list = headers;
    }
    else if (PyTuple_Check(headers)) {
        list = PySequence_List(headers);   /* no Python code runs */
        if (list == NULL) {
            return NULL;
        }
    }
    else {
        PyErr_Format(PyExc_TypeError,
                     "headers must be a list of (name, value) tuples, "
                     "not %.100s", Py_TYPE(headers)->tp_name);
        return NULL;
    }
    /* No Python code runs in this loop (only str and tuple accessors), so
     * the list cannot change under it. */
    self->content_length = -1;
    self->conn_close = 0;
    self->hlen = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
        if (process_header(self, PyList_GET_ITEM(list, i), code) < 0) {
            Py_DECREF(list);
            self->content_length = -1;
            self->conn_close = 0;
            self->hlen = 0;
            return NULL;
        }
    }
    PyObject *write = PyCFunction_New(&sr_write_def, (PyObject *)self);
    if (write == NULL) {
        Py_DECREF(list);
        self->content_length = -1;
        self->conn_close = 0;
        self->hlen = 0;
        return NULL;
    }
    Py_INCREF(status);
    Py_XSETREF(self->status, status);
    Py_XSETREF(self->headers, list);
    self->status_code = code;
    return write;
}

/* Vectorcall entry: start_response(status, headers, exc_info=None); the
 * names PEP 3333 uses (response_headers) are accepted as keywords too. */
static PyObject *
sr_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf,
              PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *a[3] = {NULL, NULL, NULL};

    if (nargs > 3) {
        PyErr_Format(PyExc_TypeError,
                     "start_response() takes at most 3 arguments (%zd given)",
                     nargs);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        a[i] = args[i];
    }
    if (kwnames != NULL) {
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(kwnames); k++) {
            PyObject *key = PyTuple_GET_ITEM(kwnames, k);
            int slot;
            if (PyUnicode_CompareWithASCIIString(key, "status") == 0) {
                slot = 0;
            }
            else if (PyUnicode_CompareWithASCIIString(key, "headers") == 0
                     || PyUnicode_CompareWithASCIIString(
                            key, "response_headers") == 0) {
                slot = 1;
            }
            else if (PyUnicode_CompareWithASCIIString(key, "exc_info") == 0) {
                slot = 2;
            }
            else {
                PyErr_Format(PyExc_TypeError,
                             "start_response() got an unexpected keyword "
                             "argument %R", key);
                return NULL;
            }
            if (a[slot] != NULL) {
                PyErr_Format(PyExc_TypeError,
                             "start_response() got multiple values for "
                             "argument %R", key);
                return NULL;
            }
            a[slot] = args[nargs + k];
        }
    }
    if (a[0] == NULL || a[1] == NULL) {
        PyErr_SetString(PyExc_TypeError,
                        "start_response() missing required argument "
                        "'status' or 'headers'");
        return NULL;
    }
    return sr_start((cn_sr *)op, a[0], a[1], a[2]);
}

/* ---- the head and the body -------------------------------------------- */

/* Decide the framing just before the head goes out.  known_len: the whole
 * body length when the caller knows it (a sequence, a file), else -1. */
static void
sr_frame(cn_sr *self, int64_t known_len)
{
    cn_conn *c = self->c;
    int code = self->status_code;

    self->no_body = c->is_head || code < 200 || code == 204 || code == 304;
    self->chunked = 0;
    self->cl_computed = 0;
    if (self->content_length < 0 && !self->no_body) {
        if (known_len >= 0) {
            self->content_length = known_len;
            self->cl_computed = 1;
        }
        else if (c->http_major == 1 && c->http_minor >= 1) {
            self->chunked = 1;
        }
        else {
            c->must_close = 1;   /* HTTP/1.0: the body ends at close */
        }
    }
    /* A 1xx as the final answer to a WSGI request leaves the client waiting
     * for another response: do not reuse the connection. */
    if (code < 200 || self->conn_close) {
        c->must_close = 1;
    }
    /* A worker that decided to retire (TERM, or its max_requests reached by
     * this or another thread's request) says so on every head it sends
     * from then on: its client reconnects instead of racing the close. */
    if (cn_worker_stopping() || cn_worker_max_reached(self->w, 0)) {
        c->must_close = 1;
    }
    self->keepalive = c->keepalive && !c->must_close;
    if (!self->keepalive) {
        c->must_close = 1;   /* we say "Connection: close": keep our word */
    }
}

/* Upper bound of the head's size (see sr_build_head). */
static size_t
sr_head_size(cn_sr *self)
{
    return 9 + (size_t)PyUnicode_GET_LENGTH(self->status) + self->hlen
           + self->w->date_len + 160;
}

/* Write the head at buf (sr_head_size bytes available); return its length. */
static size_t
sr_build_head(cn_sr *self, char *buf)
{
    char *p = buf;
    p = PUT_LIT(p, "HTTP/1.1 ");
    p = put(p, (const char *)PyUnicode_1BYTE_DATA(self->status),
            (size_t)PyUnicode_GET_LENGTH(self->status));
    p = PUT_LIT(p, "\r\nServer: cunicorn\r\nDate: ");
    p = put(p, self->w->date, self->w->date_len);
    if (self->keepalive) {
        p = PUT_LIT(p, "\r\nConnection: keep-alive\r\n");
    }
    else {
        p = PUT_LIT(p, "\r\nConnection: close\r\n");
    }
    if (self->chunked) {
        p = PUT_LIT(p, "Transfer-Encoding: chunked\r\n");
    }
    else if (self->cl_computed) {
        p = PUT_LIT(p, "Content-Length: ");
        p += put_u64(p, (uint64_t)self->content_length);
        p = PUT_LIT(p, "\r\n");
    }
    p = put(p, self->hbuf, self->hlen);
    p = PUT_LIT(p, "\r\n");
    return (size_t)(p - buf);
}

/* Send the head if it is not sent yet, then body pieces, framed: the items of
 * `seq` (an exact list or tuple whose items were checked to be bytes) or the
 * one bytes object `single` (either may be NULL), then the last chunk when
 * `last` and chunked.  Body bytes beyond Content-Length are dropped; none are
 * sent for HEAD/1xx/204/304.  Head and body leave in as few cn_conn_sendv
 * calls as CN_BATCH allows (one, usually).
 * Precondition: self->status is set and self->c is attached.
 * Returns 0 or -errno (also stored in self->io_error); no exception. */
static int
sr_send(cn_sr *self, PyObject *seq, PyObject *single, int64_t known_len,
        int last)
{
    struct iovec iov[CN_BATCH];
    PyObject *refs[CN_BATCH];               /* strong, items in iov */
    char sizes[CN_BATCH / 3 + 1][20];       /* chunk-size lines in iov */
    char stackhead[CN_HEAD_STACK];
    char *heaphead = NULL;
    int niov = 0, nrefs = 0, nsizes = 0, rc = 0;
    int64_t pending = 0;                    /* body bytes in iov */

    if (self->io_error) {
        return self->io_error;
    }
    if (!self->head_sent) {
        sr_frame(self, known_len);
        cn_worker_update_date(self->w);
        size_t need = sr_head_size(self);
        char *hb = stackhead;
        if (need > sizeof(stackhead)) {
            hb = heaphead = PyMem_Malloc(need);
            if (hb == NULL) {
                self->io_error = -ENOMEM;
                return -ENOMEM;
            }
        }
        iov[niov].iov_base = hb;
        iov[niov].iov_len = sr_build_head(self, hb);
        niov++;
        self->head_sent = 1;
    }

    for (Py_ssize_t i = 0; !self->no_body; i++) {
        PyObject *item;
        if (seq != NULL) {
            /* Re-read the size and the item every time: while a batch is in
             * sendv the GIL is released and another thread may change a
             * list. */
            if (i >= Py_SIZE(seq)) {
                break;
            }
            item = PyList_Check(seq) ? PyList_GET_ITEM(seq, i)
                                     : PyTuple_GET_ITEM(seq, i);
            if (!PyBytes_Check(item)) {
                break;   /* changed by another thread: the body ends short */
            }
        }
        else if (single != NULL && i == 0) {
            item = single;
        }
        else {
            break;
        }
        int64_t len = PyBytes_GET_SIZE(item);
        if (self->content_length >= 0) {
            int64_t left = self->content_length - self->sent - pending;
            if (left <= 0) {
                break;
            }
            if (len > left) {
                len = left;
            }
        }
        if (len == 0) {
            continue;   /* an empty chunk would end a chunked body */
        }
        if (niov + 3 > CN_BATCH - 1) {
            rc = cn_conn_sendv(self->c, iov, niov);
            for (int k = 0; k < nrefs; k++) {
                Py_DECREF(refs[k]);
            }
            niov = nrefs = nsizes = 0;
            if (rc < 0) {
                goto done;
            }
            self->sent += pending;
            pending = 0;
        }
        Py_INCREF(item);
        refs[nrefs++] = item;
        if (self->chunked) {
            iov[niov].iov_base = sizes[nsizes];
            iov[niov].iov_len = put_chunk_size(sizes[nsizes], (size_t)len);
            nsizes++;
            niov++;
        }
        iov[niov].iov_base = PyBytes_AS_STRING(item);
        iov[niov].iov_len = (size_t)len;
        niov++;
        if (self->chunked) {
            iov[niov].iov_base = (void *)CRLF;
            iov[niov].iov_len = 2;
            niov++;
        }
        pending += len;
    }
    if (last && self->chunked) {
        iov[niov].iov_base = (void *)LAST_CHUNK;
        iov[niov].iov_len = sizeof(LAST_CHUNK) - 1;
        niov++;
    }
    if (niov > 0) {
        rc = cn_conn_sendv(self->c, iov, niov);
        if (rc == 0) {
            self->sent += pending;
        }
    }
    for (int k = 0; k < nrefs; k++) {
        Py_DECREF(refs[k]);
    }
done:
    PyMem_Free(heaphead);
    if (rc < 0) {
        self->io_error = rc;
        self->c->must_close = 1;
    }
    return rc;
}

/* write(data): the PEP 3333 write() callable. */
static PyObject *
sr_write(PyObject *op, PyObject *data)
{
    cn_sr *self = (cn_sr *)op;

    if (self->c == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "write() called after the response ended");
        return NULL;
    }
    if (self->status == NULL) {
        PyErr_SetString(PyExc_AssertionError,
                        "write() before start_response()");
        return NULL;
    }
    if (!PyBytes_Check(data)) {
        PyErr_Format(PyExc_TypeError, "%R is not a byte", data);
        return NULL;
    }
    /* The bound method holds self; the caller holds data. */
    int rc = sr_send(self, NULL, data, -1, 0);
    if (rc < 0) {
        errno = -rc;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

/* ---- logging of failures ---------------------------------------------- */

/* Log a failed send (self->io_error) as gunicorn's sync worker does. */
static void
sr_log_io_error(cn_sr *self)
{
    int e = -self->io_error;
    if (e == EPIPE) {
        cn_worker_log(self->w, "debug", "Ignoring EPIPE", 0);
    }
    else if (e == ECONNRESET) {
        cn_worker_log(self->w, "debug", "Ignoring connection reset", 0);
    }
    else if (e == ENOTCONN) {
        cn_worker_log(self->w, "debug", "Ignoring socket not connected", 0);
    }
    else {
        errno = e;
        PyErr_SetFromErrno(PyExc_OSError);
        cn_worker_log(self->w, "error", "Socket error processing request.", 1);
    }
}

/* Log the exception set on entry as gunicorn does ("Error handling request
 * <uri>", with the traceback) and clear it.  When the connection already
 * failed and the exception is the OSError that failure raised in write(),
 * log it at debug level like gunicorn's "Ignoring EPIPE". */
static void
sr_log_app_error(cn_sr *self)
{
    cn_worker *w = self->w;
    cn_conn *c = self->c;

    if (w == NULL || c == NULL) {
        PyErr_WriteUnraisable((PyObject *)self);
        return;
    }
    if (self->io_error != 0 && PyErr_ExceptionMatches(PyExc_OSError)) {
        PyErr_Clear();   /* the OSError our own write() raised */
        sr_log_io_error(self);
        return;
    }
    int with_exc = PyErr_Occurred() != NULL;
    if (c->target == NULL) {
        cn_worker_log(w, "error", "Error handling request (no URI read)",
                      with_exc);
        return;
    }
    /* gunicorn decodes the request line as latin-1: re-encode each byte
     * above 0x7f as UTF-8 so the log gets valid text. */
    static const char prefix[] = "Error handling request ";
    size_t need = sizeof(prefix) + 2 * c->target_len;
    char stackbuf[1024];
    char *buf = stackbuf;
    if (need > sizeof(stackbuf)) {
        buf = PyMem_Malloc(need);
        if (buf == NULL) {
            cn_worker_log(w, "error", "Error handling request", with_exc);
            return;
        }
    }
    char *p = PUT_LIT(buf, prefix);
    for (size_t i = 0; i < c->target_len; i++) {
        unsigned char ch = (unsigned char)c->target[i];
        if (ch == 0) {
            ch = '?';
        }
        if (ch < 0x80) {
            *p++ = (char)ch;
        }
        else {
            *p++ = (char)(0xc0 | (ch >> 6));
            *p++ = (char)(0x80 | (ch & 0x3f));
        }
    }
    *p = '\0';
    cn_worker_log(w, "error", buf, with_exc);
    if (buf != stackbuf) {
        PyMem_Free(buf);
    }
}

/* ---- cn_response_finish ------------------------------------------------ */

/* Call result.close() if it has one; log what it raises.  Returns 0, or -1
 * when close() raised (the connection is then not reused). */
static int
sr_close_result(cn_sr *self, PyObject *result)
{
    if (PyList_CheckExact(result) || PyTuple_CheckExact(result)
        || PyBytes_CheckExact(result)) {
        return 0;
    }
    cn_state *st = (cn_state *)PyType_GetModuleState(Py_TYPE(self));
    PyObject *meth = PyObject_GetAttr(result, st->str[CN_STR_close]);
    PyObject *res = NULL;
    if (meth == NULL) {
        if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
            PyErr_Clear();
            return 0;
        }
    }
    else {
        res = PyObject_CallNoArgs(meth);
        Py_DECREF(meth);
    }
    if (res != NULL) {
        Py_DECREF(res);
        return 0;
    }
    sr_log_app_error(self);
    return -1;
}

/* A list or tuple: the whole body is known, so the head carries its
 * Content-Length and head and body go out in one writev. */
static int
sr_finish_seq(cn_sr *self, PyObject *seq)
{
    int64_t total = 0;

    if (self->status == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the application did not call start_response()");
        return FIN_APP_ERROR;
    }
    for (Py_ssize_t i = 0; i < Py_SIZE(seq); i++) {
        PyObject *item = PyList_Check(seq) ? PyList_GET_ITEM(seq, i)
                                           : PyTuple_GET_ITEM(seq, i);
        if (!PyBytes_Check(item)) {
            PyErr_Format(PyExc_TypeError, "%R is not a byte", item);
            return FIN_APP_ERROR;
        }
        total += PyBytes_GET_SIZE(item);
    }
    if (sr_send(self, seq, NULL, self->head_sent ? -1 : total, 1) < 0) {
        return FIN_IO_ERROR;
    }
    return FIN_OK;
}

/* Any other iterable: head with the first non-empty item, then one send per
 * item; stops once Content-Length bytes are out (PEP 3333). */
static int
sr_finish_iter(cn_sr *self, PyObject *result)
{
    PyObject *it = PyObject_GetIter(result);
    if (it == NULL) {
        return FIN_APP_ERROR;
    }
    int rc = FIN_OK;
    for (;;) {
        PyObject *item = PyIter_Next(it);   /* app code: may re-enter us */
        if (item == NULL) {
            if (PyErr_Occurred()) {
                rc = FIN_APP_ERROR;
            }
            break;
        }
        if (!PyBytes_Check(item)) {
            PyErr_Format(PyExc_TypeError, "%R is not a byte", item);
            Py_DECREF(item);
            rc = FIN_APP_ERROR;
            break;
        }
        if (PyBytes_GET_SIZE(item) == 0) {
            Py_DECREF(item);
            continue;
        }
        if (self->status == NULL) {
            PyErr_SetString(PyExc_RuntimeError,
                            "the application returned body data before "
                            "calling start_response()");
            Py_DECREF(item);
            rc = FIN_APP_ERROR;
            break;
        }
        int err = sr_send(self, NULL, item, -1, 0);
        Py_DECREF(item);
        if (err < 0) {
            rc = FIN_IO_ERROR;
            break;
        }
        if (!self->no_body && self->content_length >= 0
            && self->sent >= self->content_length) {
            break;
        }
    }
    Py_DECREF(it);
    if (rc != FIN_OK) {
        return rc;
    }
    if (self->io_error) {
        return FIN_IO_ERROR;   /* a write() inside the iteration failed */
    }
    if (self->status == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the application did not call start_response()");
        return FIN_APP_ERROR;
    }
    if (!self->head_sent || self->chunked) {
        /* An empty body (head not sent yet: "Content-Length: 0") or the
         * last chunk. */
        if (sr_send(self, NULL, NULL, self->head_sent ? -1 : 0, 1) < 0) {
            return FIN_IO_ERROR;
        }
    }
    return FIN_OK;
}

/* Call the no-argument method `name` of obj and return it as an int64 in
 * *out.  0, or -1 with an exception. */
static int
call_int_method(PyObject *obj, PyObject *name, int64_t *out)
{
    PyObject *r = PyObject_CallMethodNoArgs(obj, name);
    if (r == NULL) {
        return -1;
    }
    long long v = PyLong_AsLongLong(r);
    Py_DECREF(r);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    *out = v;
    return 0;
}

/* A FileWrapper over a regular file: head with the length, then
 * sendfile(2) from the file object's position.  FIN_FALLBACK when the file
 * cannot be sent that way (no fileno, not a regular file, sendfile refused
 * before any byte): the caller iterates the wrapper instead. */
static int
sr_finish_file(cn_sr *self, PyObject *fw)
{
    cn_state *st = (cn_state *)PyType_GetModuleState(Py_TYPE(self));
    PyObject *filelike = cn_filewrapper_filelike(fw);
    int64_t fd, pos;
    struct stat sb;

    /* fileno() and tell() are Python code: hold the file object. */
    Py_INCREF(filelike);
    if (call_int_method(filelike, st->str[CN_STR_fileno], &fd) < 0
        || fd < 0 || fd > INT_MAX) {
        PyErr_Clear();
        Py_DECREF(filelike);
        return FIN_FALLBACK;
    }
    /* tell() is the position the app sees (a buffered file object reads
     * ahead of it); the fd's own offset only when there is no tell(). */
    PyObject *tell = PyUnicode_FromString("tell");
    int have_pos = tell != NULL
                   && call_int_method(filelike, tell, &pos) == 0;
    Py_XDECREF(tell);
    Py_DECREF(filelike);
    if (!have_pos) {
        PyErr_Clear();
        pos = lseek((int)fd, 0, SEEK_CUR);
    }
    if (pos < 0 || fstat((int)fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        return FIN_FALLBACK;
    }
    int64_t nbytes = (int64_t)sb.st_size - pos;
    if (nbytes < 0) {
        nbytes = 0;
    }
    if (self->content_length >= 0 && nbytes > self->content_length) {
        nbytes = self->content_length;
    }
    if (sr_send(self, NULL, NULL, nbytes, 0) < 0) {
        return FIN_IO_ERROR;
    }
    if (self->no_body || nbytes == 0) {
        return FIN_OK;
    }
    if (self->chunked) {
        /* Not reached: the length was known when the head was framed. */
        return FIN_FALLBACK;
    }
    Py_ssize_t n = cn_conn_sendfile(self->c, (int)fd, (off_t)pos,
                                    (size_t)nbytes);
    if (n < 0) {
        if (n == -EINVAL || n == -ENOSYS || n == -EOPNOTSUPP) {
            /* sendfile refused this file before sending anything (the
             * offset is unchanged): read it through the wrapper. */
            return FIN_FALLBACK;
        }
        self->io_error = (int)n;
        self->c->must_close = 1;
        return FIN_IO_ERROR;
    }
    /* A short count (the file shrank) shows up as sent < content_length. */
    self->sent += n;
    return FIN_OK;
}

int
cn_response_finish(PyObject *sr, PyObject *result)
{
    cn_sr *self = (cn_sr *)sr;
    cn_state *st = (cn_state *)PyType_GetModuleState(Py_TYPE(sr));
    int rc, ret;

    /* Iterating and closing run app code: hold both across it. */
    Py_INCREF(sr);
    Py_INCREF(result);
    cn_conn *c = self->c;
    if (c == NULL) {
        (void)sr_close_result(self, result);
        ret = -1;
        goto out;
    }
    if (PyList_CheckExact(result) || PyTuple_CheckExact(result)) {
        rc = sr_finish_seq(self, result);
    }
    else {
        rc = FIN_FALLBACK;
        if (Py_IS_TYPE(result, st->file_wrapper_type) && self->w->sendfile
            && self->status != NULL && !self->head_sent) {
            rc = sr_finish_file(self, result);
        }
        if (rc == FIN_FALLBACK) {
            rc = sr_finish_iter(self, result);
        }
    }

    if (rc == FIN_APP_ERROR) {
        sr_log_app_error(self);
    }
    else if (rc == FIN_IO_ERROR) {
        sr_log_io_error(self);
    }
    int close_failed = sr_close_result(self, result) < 0;

    if (rc == FIN_APP_ERROR) {
        if (!self->head_sent) {
            self->head_sent = 1;
            (void)cn_send_error(c, 500, "");
        }
        c->must_close = 1;
        ret = -1;
    }
    else if (rc == FIN_IO_ERROR || close_failed) {
        c->must_close = 1;
        ret = -1;
    }
    else if (!self->no_body && self->content_length >= 0
             && self->sent < self->content_length) {
        /* The app promised more than it produced: the client would wait
         * for the rest. */
        c->must_close = 1;
        ret = -1;
    }
    else {
        ret = 0;
    }
out:
    Py_DECREF(result);
    Py_DECREF(sr);
    return ret;
}

int
cn_response_fail(PyObject *sr)
{
    cn_sr *self = (cn_sr *)sr;
    cn_conn *c = self->c;

    Py_INCREF(sr);
    if (c != NULL && c->body_error != CN_BODY_OK) {
        /* The app let a failed body read escape: that is the client's
         * error, answered as gunicorn does (400 for a malformed body, no
         * answer to a client that closed early), not a 500. */
        if (self->w != NULL) {
            cn_worker_log(self->w, "debug",
                          c->body_error == CN_BODY_INVALID
                              ? "Invalid request body; answered 400"
                              : "Ignored premature client disconnection",
                          1);
        }
        PyErr_Clear();
        if (!self->head_sent) {
            self->head_sent = 1;
            if (c->body_error == CN_BODY_INVALID) {
                self->status_code = 400;
                (void)cn_send_error(c, 400, c->error_reason ? c->error_reason : "");
            }
        }
        c->must_close = 1;
        Py_DECREF(sr);
        return -1;
    }
    sr_log_app_error(self);   /* clears the exception */
    if (c != NULL) {
        if (!self->head_sent) {
            self->head_sent = 1;
            self->status_code = 500;
            (void)cn_send_error(c, 500, "");
        }
        c->must_close = 1;
    }
    Py_DECREF(sr);
    return -1;
}

/* ---- object life ------------------------------------------------------- */

PyObject *
cn_response_new(cn_worker *w, cn_conn *c)
{
    cn_sr *self = PyObject_GC_New(cn_sr, w->st->start_response_type);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = sr_vectorcall;
    self->w = w;
    self->c = c;
    self->status = NULL;
    self->headers = NULL;
    self->status_code = 0;
    self->io_error = 0;
    self->content_length = -1;
    self->sent = 0;
    self->cl_computed = 0;
    self->chunked = 0;
    self->no_body = 0;
    self->keepalive = 0;
    self->head_sent = 0;
    self->conn_close = 0;
    self->hbuf = self->hinline;
    self->hlen = 0;
    self->hcap = sizeof(self->hinline);
    PyObject_GC_Track((PyObject *)self);
    return (PyObject *)self;
}

void
cn_response_detach(PyObject *sr)
{
    cn_sr *self = (cn_sr *)sr;
    self->w = NULL;
    self->c = NULL;
}

PyObject *
cn_response_status(PyObject *sr)
{
    return ((cn_sr *)sr)->status;
}

PyObject *
cn_response_headers(PyObject *sr)
{
    return ((cn_sr *)sr)->headers;
}

int64_t
cn_response_sent(PyObject *sr)
{
    return ((cn_sr *)sr)->sent;
}

static int
sr_traverse(PyObject *op, visitproc visit, void *arg)
{
    cn_sr *self = (cn_sr *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->status);
    Py_VISIT(self->headers);
    return 0;
}

static int
sr_clear(PyObject *op)
{
    cn_sr *self = (cn_sr *)op;
    Py_CLEAR(self->status);
    Py_CLEAR(self->headers);
    return 0;
}

static void
sr_dealloc(PyObject *op)
{
    cn_sr *self = (cn_sr *)op;
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    (void)sr_clear(op);
    if (self->hbuf != self->hinline) {
        PyMem_Free(self->hbuf);
    }
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyMemberDef sr_members[] = {
    {"__vectorcalloffset__", Py_T_PYSSIZET, offsetof(cn_sr, vectorcall),
     Py_READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot sr_slots[] = {
    {Py_tp_doc, (void *)"start_response(status, headers, exc_info=None)\n"
                        "--\n\nPEP 3333 start_response for one request; "
                        "returns write()."},
    {Py_tp_call, (void *)PyVectorcall_Call},
    {Py_tp_dealloc, sr_dealloc},
    {Py_tp_traverse, sr_traverse},
    {Py_tp_clear, sr_clear},
    {Py_tp_members, sr_members},
    {0, NULL},
};

static PyType_Spec sr_spec = {
    .name = "cunicorn._cserver.StartResponse",
    .basicsize = sizeof(cn_sr),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_HAVE_VECTORCALL
#ifdef Py_TPFLAGS_IMMUTABLETYPE
             | Py_TPFLAGS_IMMUTABLETYPE
#endif
#ifdef Py_TPFLAGS_DISALLOW_INSTANTIATION
             | Py_TPFLAGS_DISALLOW_INSTANTIATION
#endif
    ,
    .slots = sr_slots,
};

int
cn_response_add_type(PyObject *module, cn_state *st)
{
    PyObject *type = PyType_FromModuleAndSpec(module, &sr_spec, NULL);
    if (type == NULL) {
        return -1;
    }
    st->start_response_type = (PyTypeObject *)type;   /* takes the new ref */
    return 0;
}
