/* wsgi.input: a file-like reader over the request body (PEP 3333, and what
 * gunicorn's http.body.Body offers: read, readline, readlines, iteration).
 *
 * The object borrows the connection until cn_input_detach(); body bytes come
 * only from cn_conn_read_body(), which decodes Content-Length and chunked
 * framing and raises (NoMoreData, InvalidChunk, OSError, TimeoutError) when the
 * body cannot be completed.  Those exceptions reach the app's call unchanged: a
 * truncated body never looks like a short successful read.
 *
 * Buffering.  A read-ahead buffer of CN_INPUT_BUF_SIZE bytes, allocated on the
 * first read that needs it, serves readline() and small read(n) calls so that
 * neither calls cn_conn_read_body per line or per byte.  Large reads bypass it:
 * the bytes go straight into the result object, which starts at the size the
 * Content-Length predicts (capped) and doubles when the body is longer than
 * predicted.  An empty body (no Content-Length, or 0) costs one
 * cn_conn_read_body call returning 0 and no buffer at all.
 *
 * Threads.  Every method runs with the GIL (CN_GIL); cn_conn_read_body releases
 * it while it waits, so another thread may call into the same object meanwhile.
 * A `busy` flag turns such a concurrent (or re-entrant, from a signal handler)
 * call into RuntimeError instead of letting two calls move the buffer under
 * each other; cn_input_detach() during a read leaves the buffer to the reader,
 * which frees it on its way out.
 *
 * The object holds no Python references, so its type is not GC-tracked. */
#include "input.h"

#include "module_parts.h"

#include <string.h>

/* Read-ahead size: several TCP segments' worth, so a readline() loop over a
 * large multipart body calls cn_conn_read_body about once per 16 KB; small
 * enough to be a cheap malloc per request that reads line by line. */
#define CN_INPUT_BUF_SIZE 16384

/* A read of the whole body (or read(n) with a large n) preallocates what the
 * Content-Length announces, but never more than this: the header is the
 * client's claim, not bytes that exist.  Past it the result doubles. */
#define CN_INPUT_PREALLOC_MAX (1024 * 1024)

/* First allocation of a large read when the body length is unknown
 * (chunked). */
#define CN_INPUT_PREALLOC_CHUNKED 65536

/* Stack space used to find out whether a body goes on once the result object
 * is full: at the end of the body no reallocation happens. */
#define CN_INPUT_PROBE_SIZE 8192

typedef struct {
    PyObject_HEAD
    cn_conn *conn;        /* borrowed; NULL once detached */
    char *buf;            /* read-ahead (PyMem), NULL until first needed */
    size_t pos, len;      /* unread bytes are buf[pos, len) */
    uint64_t received;    /* bytes cn_conn_read_body has returned so far */
    unsigned eof : 1;     /* cn_conn_read_body returned 0: body complete */
    unsigned busy : 1;    /* a method is running (it may have released the GIL) */
} cn_input;

static const char closed_msg[] = "I/O operation on closed request body";

/* ---- entering and leaving a method ------------------------------------ */

/* Start a reading method.  0, or -1 with ValueError (detached) or RuntimeError
 * (another call on this object is in progress).  CN_GIL. */
static int
input_enter(cn_input *self)
{
    if (self->conn == NULL) {
        PyErr_SetString(PyExc_ValueError, closed_msg);
        return -1;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError,
                        "concurrent call on the same wsgi.input");
        return -1;
    }
    self->busy = 1;
    return 0;
}

/* End a reading method; frees the buffer if the input was detached while the
 * method ran.  CN_GIL. */
static void
input_leave(cn_input *self)
{
    self->busy = 0;
    if (self->conn == NULL && self->buf != NULL) {
        PyMem_Free(self->buf);
        self->buf = NULL;
        self->pos = self->len = 0;
    }
}

/* ---- pulling body bytes ------------------------------------------------- */

/* Read up to `n` (> 0) body bytes into dst.  Returns the count (> 0), 0 at the
 * end of the body (remembered: later calls return 0 without asking the
 * connection), or -1 with an exception: the connection's, or ValueError when
 * the input was detached while the GIL was released.  CN_GIL. */
static Py_ssize_t
pull(cn_input *self, char *dst, size_t n)
{
    if (self->eof) {
        return 0;
    }
    if (self->conn == NULL) {
        PyErr_SetString(PyExc_ValueError, closed_msg);
        return -1;
    }
    Py_ssize_t k = cn_conn_read_body(self->conn, dst, n);
    if (k < 0) {
        if (!PyErr_Occurred()) {  /* contract breach: never a silent error */
            PyErr_SetString(PyExc_OSError, "request body read failed");
        }
        return -1;
    }
    if (self->conn == NULL) {  /* detached by another thread meanwhile */
        PyErr_SetString(PyExc_ValueError, closed_msg);
        return -1;
    }
    if (k == 0) {
        self->eof = 1;
    }
    self->received += (uint64_t)k;
    return k;
}

/* Make sure the read-ahead buffer exists.  0, or -1 with MemoryError. */
static int
ensure_buf(cn_input *self)
{
    if (self->buf == NULL) {
        self->buf = PyMem_Malloc(CN_INPUT_BUF_SIZE);
        if (self->buf == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->pos = self->len = 0;
    }
    return 0;
}

/* Read once into the free tail of the read-ahead buffer, first moving the
 * unread bytes to its front when the tail is full.  The buffer must exist and
 * must not be full of unread bytes.  Returns what pull() returns. */
static Py_ssize_t
fill(cn_input *self)
{
    if (self->pos == self->len) {
        self->pos = self->len = 0;
    }
    else if (self->len == CN_INPUT_BUF_SIZE) {
        memmove(self->buf, self->buf + self->pos, self->len - self->pos);
        self->len -= self->pos;
        self->pos = 0;
    }
    Py_ssize_t k = pull(self, self->buf + self->len,
                        CN_INPUT_BUF_SIZE - self->len);
    if (k > 0) {
        self->len += (size_t)k;
    }
    return k;
}

/* How many body bytes the connection still expects to hand out, as far as the
 * request head tells: the rest of the Content-Length; 0 for a request without
 * a body; `unknown` for a chunked body.  A hint only: reads stay correct
 * whatever it says. */
static size_t
remaining_hint(cn_input *self, size_t unknown)
{
    const cn_conn *c = self->conn;
    if (self->eof || c == NULL) {
        return 0;
    }
    if (c->chunked) {
        return unknown;
    }
    if (c->content_length <= 0) {
        return 0;
    }
    uint64_t cl = (uint64_t)c->content_length;
    uint64_t rest = cl > self->received ? cl - self->received : 0;
    return rest > SIZE_MAX ? SIZE_MAX : (size_t)rest;
}

/* Take `n` bytes (n <= unread) out of the read-ahead buffer as a new bytes
 * object, or NULL with an exception. */
static PyObject *
take_buffered(cn_input *self, size_t n)
{
    PyObject *res = PyBytes_FromStringAndSize(
        n ? self->buf + self->pos : NULL, (Py_ssize_t)n);
    if (res != NULL) {
        self->pos += n;
    }
    return res;
}

/* ---- read ----------------------------------------------------------------- */

/* read(n) for a large n or n = "all" (SIZE_MAX): buffered bytes first, then
 * straight into the result, growing it geometrically.  Returns a new bytes
 * object of exactly n bytes, or fewer only at the end of the body; NULL with
 * an exception otherwise (bytes already consumed are then lost: the body is
 * broken anyway).  CN_GIL. */
static PyObject *
read_direct(cn_input *self, size_t n)
{
    size_t avail = self->len - self->pos;
    size_t hint = remaining_hint(self, CN_INPUT_PREALLOC_CHUNKED);
    if (hint > CN_INPUT_PREALLOC_MAX) {
        hint = CN_INPUT_PREALLOC_MAX;
    }
    size_t cap = avail + hint;           /* both bounded: no overflow */
    if (cap > n) {
        cap = n;
    }
    if (cap > (size_t)PY_SSIZE_T_MAX) {
        cap = (size_t)PY_SSIZE_T_MAX;
    }
    PyObject *res = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)cap);
    if (res == NULL) {
        return NULL;
    }
    size_t got = 0;
    if (avail) {
        memcpy(PyBytes_AS_STRING(res), self->buf + self->pos, avail);
        self->pos = self->len = 0;
        got = avail;
    }
    while (got < n) {
        Py_ssize_t k;
        if (got < cap) {
            k = pull(self, PyBytes_AS_STRING(res) + got, cap - got);
            if (k < 0) {
                goto fail;
            }
            if (k == 0) {
                break;
            }
            got += (size_t)k;
            continue;
        }
        /* Full.  Ask for a little more on the stack first: at the end of the
         * body (the usual case when the Content-Length was right) nothing is
         * reallocated; otherwise grow and keep reading in place. */
        char probe[CN_INPUT_PROBE_SIZE];
        size_t want = n - got < sizeof probe ? n - got : sizeof probe;
        k = pull(self, probe, want);
        if (k < 0) {
            goto fail;
        }
        if (k == 0) {
            break;
        }
        size_t newcap = cap > n / 2 ? n : cap * 2;
        if (newcap < got + (size_t)k) {
            newcap = got + (size_t)k;
        }
        if (newcap > (size_t)PY_SSIZE_T_MAX) {
            newcap = (size_t)PY_SSIZE_T_MAX;
        }
        if (cap == 0) {
            /* res is the shared empty bytes object: it cannot be resized. */
            Py_DECREF(res);
            res = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)newcap);
            if (res == NULL) {
                return NULL;
            }
        }
        else if (_PyBytes_Resize(&res, (Py_ssize_t)newcap) < 0) {
            return NULL;  /* res was freed and set to NULL */
        }
        cap = newcap;
        memcpy(PyBytes_AS_STRING(res) + got, probe, (size_t)k);
        got += (size_t)k;
    }
    if (got != cap && _PyBytes_Resize(&res, (Py_ssize_t)got) < 0) {
        return NULL;
    }
    return res;

fail:
    Py_DECREF(res);
    return NULL;
}

/* read(n) with 0 <= n, or n = SIZE_MAX for everything.  New reference or
 * NULL.  CN_GIL; the caller has entered the object. */
static PyObject *
input_read_impl(cn_input *self, size_t n)
{
    size_t avail = self->len - self->pos;
    if (n <= avail) {
        return take_buffered(self, n);
    }
    if (self->eof) {
        return take_buffered(self, avail);
    }
    /* Straight into the result when the read is large, or when it asks for
     * all the body that is left (read(), read(CONTENT_LENGTH), an empty
     * body): buffering would only add a copy and an allocation. */
    if (n > CN_INPUT_BUF_SIZE || n - avail >= CN_INPUT_BUF_SIZE / 2
        || n - avail >= remaining_hint(self, SIZE_MAX)) {
        return read_direct(self, n);
    }
    /* Small read: top up the read-ahead buffer until it holds n bytes or the
     * body ends (n <= BUF, so it fits once the unread bytes are moved to the
     * front). */
    if (ensure_buf(self) < 0) {
        return NULL;
    }
    if (self->pos > 0 && CN_INPUT_BUF_SIZE - self->pos < n) {
        memmove(self->buf, self->buf + self->pos, avail);
        self->len = avail;
        self->pos = 0;
    }
    while (self->len - self->pos < n) {
        Py_ssize_t k = fill(self);
        if (k < 0) {
            return NULL;
        }
        if (k == 0) {
            break;
        }
    }
    avail = self->len - self->pos;
    return take_buffered(self, n < avail ? n : avail);
}

/* ---- readline ------------------------------------------------------------- */

/* Append `n` bytes to the growing bytes object *res (created on first use)
 * whose used length is *used.  0 or -1 with an exception (*res cleared). */
static int
append(PyObject **res, size_t *used, const char *src, size_t n)
{
    size_t cap = *res ? (size_t)PyBytes_GET_SIZE(*res) : 0;
    if (*used + n > cap) {
        size_t newcap = cap ? cap * 2 : CN_INPUT_BUF_SIZE * 2;
        if (newcap < *used + n) {
            newcap = *used + n;
        }
        if (newcap > (size_t)PY_SSIZE_T_MAX) {
            PyErr_NoMemory();
            Py_CLEAR(*res);
            return -1;
        }
        if (*res == NULL) {
            *res = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)newcap);
            if (*res == NULL) {
                return -1;
            }
        }
        else if (_PyBytes_Resize(res, (Py_ssize_t)newcap) < 0) {
            return -1;
        }
    }
    memcpy(PyBytes_AS_STRING(*res) + *used, src, n);
    *used += n;
    return 0;
}

/* readline(limit): bytes up to and including the next b"\n", at most `limit`
 * bytes (SIZE_MAX: no limit), b"" at the end of the body.  A line that fits
 * the read-ahead buffer is copied once, into the result; a longer one spills
 * buffer-sized pieces into a growing result.  New reference or NULL.  CN_GIL;
 * the caller has entered the object. */
static PyObject *
input_readline_impl(cn_input *self, size_t limit)
{
    PyObject *res = NULL;   /* spilled part of a long line, or NULL */
    size_t used = 0;        /* bytes of res in use */
    size_t scanned = 0;     /* unread buffered bytes known to hold no b"\n" */

    if (limit == 0) {
        return PyBytes_FromStringAndSize(NULL, 0);
    }
    if (self->buf == NULL && !self->eof) {
        if (remaining_hint(self, 1) == 0) {
            /* Most likely no body at all: confirm it without allocating the
             * read-ahead buffer. */
            char first;
            Py_ssize_t k = pull(self, &first, 1);
            if (k < 0) {
                return NULL;
            }
            if (k == 1) {
                if (ensure_buf(self) < 0) {
                    return NULL;
                }
                self->buf[0] = first;
                self->len = 1;
            }
        }
        else if (ensure_buf(self) < 0) {
            return NULL;
        }
    }
    if (self->buf == NULL) {  /* the body is over and nothing is buffered */
        return PyBytes_FromStringAndSize(NULL, 0);
    }
    for (;;) {
        size_t avail = self->len - self->pos;
        size_t want = limit - used;
        size_t lim = avail < want ? avail : want;
        size_t take;
        const char *start = self->buf + self->pos;
        const char *nl = lim > scanned
            ? memchr(start + scanned, '\n', lim - scanned) : NULL;
        if (nl != NULL) {
            take = (size_t)(nl - start) + 1;
        }
        else if (lim == want || self->eof) {
            take = lim;
        }
        else {
            /* No end of line yet: keep what we have and read more. */
            scanned = avail;
            if (avail == CN_INPUT_BUF_SIZE) {
                if (append(&res, &used, start, avail) < 0) {
                    return NULL;
                }
                self->pos = self->len = 0;
                scanned = 0;
            }
            Py_ssize_t k = fill(self);
            if (k < 0) {
                Py_XDECREF(res);
                return NULL;
            }
            continue;
        }
        if (res == NULL) {
            return take_buffered(self, take);
        }
        if (append(&res, &used, start, take) < 0) {
            return NULL;
        }
        self->pos += take;
        if ((size_t)PyBytes_GET_SIZE(res) != used
            && _PyBytes_Resize(&res, (Py_ssize_t)used) < 0) {
            return NULL;
        }
        return res;
    }
}

/* ---- argument parsing ----------------------------------------------------- */

/* Parse the single optional size argument of read/readline/readlines (given
 * positionally or as keyword `name` or `alias`).  None or a negative int means
 * "no limit" (*out = SIZE_MAX); an int too large for Py_ssize_t is clamped.
 * 0 or -1 with TypeError.  CN_GIL. */
static int
parse_size(const char *fname, PyObject *const *args, Py_ssize_t nargs,
           PyObject *kwnames, const char *name, const char *alias,
           size_t *out)
{
    PyObject *arg = NULL;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs + nkw > 1) {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes at most 1 argument (%zd given)",
                     fname, nargs + nkw);
        return -1;
    }
    if (nargs == 1) {
        arg = args[0];
    }
    else if (nkw == 1) {
        PyObject *kw = PyTuple_GET_ITEM(kwnames, 0);
        if (PyUnicode_CompareWithASCIIString(kw, name) != 0
            && (alias == NULL
                || PyUnicode_CompareWithASCIIString(kw, alias) != 0)) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got an unexpected keyword argument '%U'",
                         fname, kw);
            return -1;
        }
        arg = args[0];
    }
    *out = SIZE_MAX;
    if (arg == NULL || arg == Py_None) {
        return 0;
    }
    if (!PyIndex_Check(arg)) {
        PyErr_Format(PyExc_TypeError,
                     "%s() argument should be integer or None, not '%.200s'",
                     fname, Py_TYPE(arg)->tp_name);
        return -1;
    }
    Py_ssize_t v = PyNumber_AsSsize_t(arg, NULL);  /* clamps */
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (v >= 0) {
        *out = (size_t)v;
    }
    return 0;
}

/* ---- methods -------------------------------------------------------------- */

static PyObject *
input_read(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
           PyObject *kwnames)
{
    cn_input *self = (cn_input *)op;
    size_t n;
    if (parse_size("read", args, nargs, kwnames, "size", NULL, &n) < 0
        || input_enter(self) < 0) {
        return NULL;
    }
    PyObject *res = input_read_impl(self, n);
    input_leave(self);
    return res;
}

/* read1(size=-1): at most one cn_conn_read_body call; b"" only at the end of
 * the body. */
static PyObject *
input_read1(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
            PyObject *kwnames)
{
    cn_input *self = (cn_input *)op;
    size_t n;
    PyObject *res = NULL;
    if (parse_size("read1", args, nargs, kwnames, "size", NULL, &n) < 0
        || input_enter(self) < 0) {
        return NULL;
    }
    size_t avail = self->len - self->pos;
    if (avail == 0 && n != 0 && !self->eof) {
        if (n >= CN_INPUT_BUF_SIZE) {
            if (n > CN_INPUT_PREALLOC_CHUNKED) {
                n = CN_INPUT_PREALLOC_CHUNKED;
            }
            res = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
            if (res != NULL) {
                Py_ssize_t k = pull(self, PyBytes_AS_STRING(res), n);
                if (k < 0 || ((size_t)k != n
                              && _PyBytes_Resize(&res, k) < 0)) {
                    Py_CLEAR(res);
                }
            }
            goto done;
        }
        if (ensure_buf(self) < 0 || fill(self) < 0) {
            goto done;
        }
        avail = self->len - self->pos;
    }
    res = take_buffered(self, n < avail ? n : avail);
done:
    input_leave(self);
    return res;
}

/* readinto(b): fill the writable buffer b until it is full or the body ends;
 * returns the count. */
static PyObject *
input_readinto(PyObject *op, PyObject *arg)
{
    cn_input *self = (cn_input *)op;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS)
        < 0) {
        return NULL;
    }
    if (input_enter(self) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    char *dst = view.buf;
    size_t n = (size_t)view.len, got = 0;
    size_t avail = self->len - self->pos;
    if (avail) {
        got = avail < n ? avail : n;
        memcpy(dst, self->buf + self->pos, got);
        self->pos += got;
    }
    int failed = 0;
    while (got < n) {
        Py_ssize_t k = pull(self, dst + got, n - got);
        if (k <= 0) {
            failed = k < 0;
            break;
        }
        got += (size_t)k;
    }
    input_leave(self);
    PyBuffer_Release(&view);
    return failed ? NULL : PyLong_FromSize_t(got);
}

static PyObject *
input_readline(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames)
{
    cn_input *self = (cn_input *)op;
    size_t n;
    if (parse_size("readline", args, nargs, kwnames, "size", NULL, &n) < 0
        || input_enter(self) < 0) {
        return NULL;
    }
    PyObject *res = input_readline_impl(self, n);
    input_leave(self);
    return res;
}

/* readlines(hint=-1): the remaining lines; with hint > 0, stop once the lines
 * read total hint bytes or more. */
static PyObject *
input_readlines(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                PyObject *kwnames)
{
    cn_input *self = (cn_input *)op;
    size_t hint;
    if (parse_size("readlines", args, nargs, kwnames, "hint", "size", &hint)
        < 0) {
        return NULL;
    }
    if (hint == 0) {
        hint = SIZE_MAX;  /* like io: hint <= 0 means no limit */
    }
    PyObject *lines = PyList_New(0);
    if (lines == NULL || input_enter(self) < 0) {
        Py_XDECREF(lines);
        return NULL;
    }
    size_t total = 0;
    for (;;) {
        PyObject *line = input_readline_impl(self, SIZE_MAX);
        if (line == NULL) {
            Py_CLEAR(lines);
            break;
        }
        size_t len = (size_t)PyBytes_GET_SIZE(line);
        int rc = len ? PyList_Append(lines, line) : 0;
        Py_DECREF(line);
        if (rc < 0) {
            Py_CLEAR(lines);
            break;
        }
        total += len;
        if (len == 0 || total >= hint) {
            break;
        }
    }
    input_leave(self);
    return lines;
}

static PyObject *
input_iternext(PyObject *op)
{
    cn_input *self = (cn_input *)op;
    if (input_enter(self) < 0) {
        return NULL;
    }
    PyObject *line = input_readline_impl(self, SIZE_MAX);
    input_leave(self);
    if (line != NULL && PyBytes_GET_SIZE(line) == 0) {
        Py_DECREF(line);
        return NULL;  /* StopIteration */
    }
    return line;
}

/* close(): PEP 3333 says the application should not close wsgi.input, and the
 * server still owns the connection; accept the call and do nothing. */
static PyObject *
input_close(PyObject *op, PyObject *Py_UNUSED(ignored))
{
    (void)op;
    Py_RETURN_NONE;
}

static PyObject *
input_readable(PyObject *op, PyObject *Py_UNUSED(ignored))
{
    cn_input *self = (cn_input *)op;
    if (self->conn == NULL) {
        PyErr_SetString(PyExc_ValueError, closed_msg);
        return NULL;
    }
    Py_RETURN_TRUE;
}

static PyObject *
input_false(PyObject *op, PyObject *Py_UNUSED(ignored))
{
    (void)op;
    Py_RETURN_FALSE;
}

static PyObject *
input_get_closed(PyObject *op, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(((cn_input *)op)->conn == NULL);
}

static void
input_dealloc(PyObject *op)
{
    cn_input *self = (cn_input *)op;
    PyTypeObject *tp = Py_TYPE(op);
    PyMem_Free(self->buf);
    tp->tp_free(op);
    Py_DECREF(tp);
}

#define CN_FASTKW (METH_FASTCALL | METH_KEYWORDS)
#define CN_METH(f) (PyCFunction)(void (*)(void))(f)

static PyMethodDef input_methods[] = {
    {"read", CN_METH(input_read), CN_FASTKW,
     "read(size=-1) -> bytes: size bytes, fewer only at the end of the body; "
     "everything that is left when size is negative or None."},
    {"read1", CN_METH(input_read1), CN_FASTKW,
     "read1(size=-1) -> bytes: at most size bytes with at most one read from "
     "the connection; b'' only at the end of the body."},
    {"readinto", CN_METH(input_readinto), METH_O,
     "readinto(b) -> int: fill b until it is full or the body ends."},
    {"readline", CN_METH(input_readline), CN_FASTKW,
     "readline(size=-1) -> bytes: the next line including b'\\n', at most "
     "size bytes; b'' at the end of the body."},
    {"readlines", CN_METH(input_readlines), CN_FASTKW,
     "readlines(hint=-1) -> list of bytes: the remaining lines, stopping once "
     "they total hint bytes when hint > 0."},
    {"close", CN_METH(input_close), METH_NOARGS,
     "Do nothing: the server owns the request body."},
    {"readable", CN_METH(input_readable), METH_NOARGS, "True."},
    {"writable", CN_METH(input_false), METH_NOARGS, "False."},
    {"seekable", CN_METH(input_false), METH_NOARGS, "False."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef input_getset[] = {
    {"closed", input_get_closed, NULL,
     "True once the request is over and the body can no longer be read.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot input_slots[] = {
    {Py_tp_dealloc, input_dealloc},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, input_iternext},
    {Py_tp_methods, input_methods},
    {Py_tp_getset, input_getset},
    {Py_tp_doc, "wsgi.input: the request body as a read-only file."},
    {0, NULL},
};

#ifndef Py_TPFLAGS_IMMUTABLETYPE
#define Py_TPFLAGS_IMMUTABLETYPE 0
#endif
#ifndef Py_TPFLAGS_DISALLOW_INSTANTIATION
#define Py_TPFLAGS_DISALLOW_INSTANTIATION 0
#endif

static PyType_Spec input_spec = {
    .name = "cunicorn._cserver.Body",
    .basicsize = sizeof(cn_input),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE
             | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = input_slots,
};

/* ---- contract (input.h, module_parts.h) ----------------------------------- */

int
cn_input_add_type(PyObject *module, cn_state *st)
{
    st->input_type = (PyTypeObject *)PyType_FromModuleAndSpec(
        module, &input_spec, NULL);
    return st->input_type == NULL ? -1 : 0;
}

PyObject *
cn_input_new(cn_worker *w, cn_conn *c)
{
    cn_input *self = PyObject_New(cn_input, w->st->input_type);
    if (self == NULL) {
        return NULL;
    }
    self->conn = c;
    self->buf = NULL;
    self->pos = self->len = 0;
    self->received = 0;
    self->eof = 0;
    self->busy = 0;
    return (PyObject *)self;
}

void
cn_input_detach(PyObject *input)
{
    if (input == NULL) {
        return;
    }
    cn_input *self = (cn_input *)input;
    self->conn = NULL;
    if (!self->busy) {  /* else input_leave() frees it */
        PyMem_Free(self->buf);
        self->buf = NULL;
        self->pos = self->len = 0;
    }
}
