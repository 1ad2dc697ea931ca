/* llhttp glue and the guard layer.
 *
 * A request head is only handed to llhttp once it is complete in the buffer:
 * a pre-scan (guard_scan) walks it line by line as bytes arrive and enforces
 * the limits and the line rules llhttp 8.1 does not (bare CR or LF, obs-fold,
 * empty names, line and field limits).  llhttp then parses the whole head in
 * one call, so every span callback sees a whole token pointing into our
 * buffer, and pauses at headers-complete, where the semantic checks run
 * (Transfer-Encoding, Content-Length, Expect, version).  The body is decoded
 * later, on demand, by the same parser instance; it pauses again at
 * message-complete, so the bytes after it are the next (pipelined) request.
 *
 * Nothing here touches Python or sockets: any thread, no GIL. */
#include "parser.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CN_DEFAULT_FIELD_SIZE 8190
#define CN_MAX_FIELDS 32768
#define CN_HARD_LINE_LIMIT (64 * 1024) /* when limit_request_line is 0 */
#define CN_BODY_STEP (64 * 1024)       /* bytes decoded per llhttp call */

void
cn_limits_init(cn_limits *l, long line, long fields, long field_size)
{
    memset(l, 0, sizeof(*l));
    l->line = line > 0 ? (size_t)line : 0;
    l->fields = (fields <= 0 || fields > CN_MAX_FIELDS) ? CN_MAX_FIELDS
                                                        : (size_t)fields;
    l->field_size = field_size > 0 ? (size_t)field_size : CN_DEFAULT_FIELD_SIZE;
}

size_t
cn_max_head_size(const cn_limits *l)
{
    size_t line = l->line ? l->line : CN_HARD_LINE_LIMIT;
    return line + 2 + l->fields * l->field_size + 2;
}

/* ---- errors ------------------------------------------------------------ */

static int
fail(cn_conn *c, int status, const char *reason)
{
    c->error_status = status;
    c->error_reason = reason;
    return -1;
}

/* Stash an error from inside an llhttp callback. */
static int
cb_fail(cn_conn *c, int status, const char *reason)
{
    fail(c, status, reason);
    llhttp_set_error_reason(&c->parser, reason);
    return HPE_USER;
}

/* ---- the pre-scan -------------------------------------------------------- */

/* RFC 9110 tchar. */
static int
is_tchar(unsigned char ch)
{
    if (isalnum(ch)) {
        return 1;
    }
    return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int method_ok(const char *m, size_t n, const cn_limits *l);

/* The request line's shape, checked as soon as it is complete so a bad line
 * is answered 400 before any header limit is reached: METHOD SP TARGET SP
 * HTTP/D.D, single spaces, no control bytes in the target. */
static int
request_line_check(cn_conn *c, const cn_limits *l, const char *s, size_t n)
{
    const char *sp1 = memchr(s, ' ', n);
    if (sp1 == NULL) {
        return fail(c, 400, "Invalid HTTP request line");
    }
    if (!method_ok(s, (size_t)(sp1 - s), l)) {
        return fail(c, 400, "Invalid HTTP method");
    }
    const char *t = sp1 + 1, *end = s + n;
    const char *sp2 = memchr(t, ' ', (size_t)(end - t));
    if (sp2 == NULL || sp2 == t) {
        return fail(c, 400, "Invalid HTTP request line");
    }
    for (const char *p = t; p < sp2; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            return fail(c, 400, "Invalid request target");
        }
    }
    const char *v = sp2 + 1;
    if (end - v != 8 || memcmp(v, "HTTP/", 5) != 0 || !isdigit((unsigned char)v[5])
        || v[6] != '.' || !isdigit((unsigned char)v[7])) {
        return fail(c, 400, "Invalid HTTP Version");
    }
    return 0;
}

/* Walk the lines of the head from c->scan_pos.  Returns 1 when the empty line
 * ending the head has been seen (*head_end = offset after it), 0 when more
 * bytes are needed, -1 on a violation (c->error_status set). */
static int
guard_scan(cn_conn *c, const cn_limits *l, size_t *head_end)
{
    size_t line_limit = l->line ? l->line : CN_HARD_LINE_LIMIT;

    while (c->scan_pos < c->len) {
        const char *start = c->buf + c->scan_pos;
        size_t avail = c->len - c->scan_pos;
        const char *nl = memchr(start, '\n', avail);
        size_t content = nl ? (size_t)(nl - start) : avail;
        const char *cr = memchr(start, '\r', content);

        /* A CR must be the last byte before LF. */
        if (cr != NULL && cr != start + content - 1) {
            return fail(c, 400, "Invalid HTTP line: bare CR");
        }
        if (nl == NULL) {
            /* Partial line: enforce its limit before it grows further. */
            if (c->nlines == 0) {
                if (avail > line_limit + 1) {
                    return fail(c, 400, "Request Line is too large");
                }
            }
            else if (avail > l->field_size) {
                return fail(c, 431, "Request Header Fields Too Large");
            }
            return 0;
        }
        if (content == 0 || start[content - 1] != '\r') {
            if (!(content == 0 && c->nlines == 0)) {
                return fail(c, 400, "Invalid HTTP line: bare LF");
            }
            return fail(c, 400, "Invalid HTTP line: bare LF");
        }
        content--; /* drop the CR */
        if (c->nlines == 0) {
            if (content == 0) {
                /* Empty line(s) before a request: skip, as llhttp does. */
                c->scan_pos += 2;
                c->head_start = c->scan_pos;
                continue;
            }
            if (content > line_limit) {
                return fail(c, 400, "Request Line is too large");
            }
            if (request_line_check(c, l, start, content) < 0) {
                return -1;
            }
        }
        else if (content == 0) {
            *head_end = c->scan_pos + 2;
            c->scan_pos += 2;
            return 1;
        }
        else {
            int fold = start[0] == ' ' || start[0] == '\t';
            if (fold) {
                if (!l->permit_obsolete_folding || c->nlines == 1) {
                    return fail(c, 400, "Obsolete line folding is unacceptable");
                }
                /* A continuation counts toward its field's size, as in
                 * gunicorn, and is joined into it by rewrite_head. */
                c->field_len += content + 2;
                c->needs_rewrite = 1;
                c->nlines--;
            }
            else {
                c->field_len = content + 2;
            }
            if (c->field_len > l->field_size) {
                return fail(c, 431, "Request Header Fields Too Large");
            }
            if (c->nlines > l->fields) {
                return fail(c, 431, "Request Header Fields Too Large");
            }
            if (start[0] == ':') {
                return fail(c, 400, "Invalid header name: empty");
            }
            if (l->strip_header_spaces && !fold) {
                const char *colon = memchr(start, ':', content);
                if (colon != NULL && colon > start
                    && (colon[-1] == ' ' || colon[-1] == '\t')) {
                    c->needs_rewrite = 1;
                }
            }
        }
        c->nlines++;
        c->scan_pos += content + 2;
    }
    return 0;
}

/* gunicorn's method rules: a token; upper-case letters only (no a-z, no #)
 * and 3 to 20 characters unless permit_unconventional_http_method. */
static int
method_ok(const char *m, size_t n, const cn_limits *l)
{
    if (n == 0) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)m[i];
        if (!is_tchar(ch)) {
            return 0;
        }
        if (!l->permit_unconventional_method && ((ch >= 'a' && ch <= 'z') || ch == '#')) {
            return 0;
        }
    }
    if (!l->permit_unconventional_method && (n < 3 || n > 20)) {
        return 0;
    }
    return 1;
}

/* Whether llhttp knows method `m` (its own table, from llhttp.h). */
static int
llhttp_knows(const char *m, size_t n)
{
    static const char *const known[] = {
#define CN_XX(num, name, string) #string,
        HTTP_METHOD_MAP(CN_XX)
#undef CN_XX
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strlen(known[i]) == n && memcmp(known[i], m, n) == 0) {
            return 1;
        }
    }
    return 0;
}

/* ---- llhttp callbacks ---------------------------------------------------- */

static int
on_message_begin(llhttp_t *p)
{
    (void)p;
    return 0;
}

static int
on_url(llhttp_t *p, const char *at, size_t len)
{
    cn_conn *c = p->data;
    if (c->target == NULL) {
        c->target = at;
    }
    c->target_len += len;
    return 0;
}

static int
on_version_complete(llhttp_t *p)
{
    cn_conn *c = p->data;
    if (p->http_major != 1 || p->http_minor > 1) {
        return cb_fail(c, 400, "Invalid HTTP Version");
    }
    return 0;
}

static int
on_header_field(llhttp_t *p, const char *at, size_t len)
{
    cn_conn *c = p->data;
    if (c->in_trailers) {
        size_t room = sizeof(c->trailer_name) - c->trailer_name_len;
        memcpy(c->trailer_name + c->trailer_name_len, at, len < room ? len : room);
        c->trailer_name_len += len < room ? len : room;
        c->field_len += len;
        if (c->field_len > ((const cn_limits *)c->limits)->field_size) {
            return cb_fail(c, 400, "Trailer field too large");
        }
        return 0;
    }
    if (c->cur.name == NULL) {
        c->cur.name = at;
    }
    c->cur.name_len += len;
    return 0;
}

static int
on_header_value(llhttp_t *p, const char *at, size_t len)
{
    cn_conn *c = p->data;
    if (c->in_trailers) {
        c->field_len += len;
        if (c->field_len > ((const cn_limits *)c->limits)->field_size) {
            return cb_fail(c, 400, "Trailer field too large");
        }
        return 0;
    }
    if (c->cur.value == NULL) {
        c->cur.value = at;
    }
    c->cur.value_len += len;
    return 0;
}

static int
name_is(const cn_header *h, const char *name)
{
    size_t n = strlen(name);
    return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

static int
on_header_value_complete(llhttp_t *p)
{
    cn_conn *c = p->data;
    if (c->in_trailers) {
        /* Trailers are checked and dropped: they never reach environ. */
        static const char *const forbidden[] = {
            "host", "content-length", "transfer-encoding", "trailer",
            "authorization", "te",
        };
        cn_header h = {c->trailer_name, c->trailer_name_len, NULL, 0};
        if (c->trailer_name_len < sizeof(c->trailer_name)) {
            for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++) {
                if (name_is(&h, forbidden[i])) {
                    return cb_fail(c, 400, "Forbidden trailer field");
                }
            }
        }
        if (++c->nfields > ((const cn_limits *)c->limits)->fields) {
            return cb_fail(c, 400, "Too many trailer fields");
        }
        c->trailer_name_len = 0;
        c->field_len = 0;
        return 0;
    }
    if (c->cur.value == NULL) {
        c->cur.value = c->cur.name; /* empty value: any valid pointer */
    }
    /* llhttp keeps trailing whitespace in the value span: strip it. */
    while (c->cur.value_len > 0
           && (c->cur.value[c->cur.value_len - 1] == ' '
               || c->cur.value[c->cur.value_len - 1] == '\t')) {
        c->cur.value_len--;
    }
    if (c->nheaders == c->headers_cap) {
        size_t cap = c->headers_cap ? c->headers_cap * 2 : 32;
        cn_header *h = realloc(c->headers, cap * sizeof(*h));
        if (h == NULL) {
            return cb_fail(c, 500, "Out of memory");
        }
        c->headers = h;
        c->headers_cap = cap;
    }
    c->headers[c->nheaders++] = c->cur;
    memset(&c->cur, 0, sizeof(c->cur));
    return 0;
}

/* Split a Transfer-Encoding list and apply the guard rules.  Returns 0 and
 * sets c->chunked, or an error status (400 / 501). */
static int
check_transfer_encoding(cn_conn *c)
{
    int seen_te = 0, chunked_last = 0, chunked_seen = 0;
    for (size_t i = 0; i < c->nheaders; i++) {
        const cn_header *h = &c->headers[i];
        if (!name_is(h, "transfer-encoding")) {
            continue;
        }
        seen_te = 1;
        const char *s = h->value, *end = h->value + h->value_len;
        while (s <= end) {
            const char *comma = memchr(s, ',', (size_t)(end - s));
            const char *e = comma ? comma : end;
            const char *a = s, *b = e;
            while (a < b && (*a == ' ' || *a == '\t')) {
                a++;
            }
            while (b > a && (b[-1] == ' ' || b[-1] == '\t')) {
                b--;
            }
            size_t n = (size_t)(b - a);
            if (n > 0) {
                if (chunked_seen) {
                    /* Anything after chunked, chunked twice included. */
                    c->error_reason = "Invalid Transfer-Encoding";
                    return 400;
                }
                if (n == 7 && strncasecmp(a, "chunked", 7) == 0) {
                    chunked_seen = 1;
                    chunked_last = 1;
                }
                else if ((n == 8 && strncasecmp(a, "identity", 8) == 0)
                         || (n == 4 && strncasecmp(a, "gzip", 4) == 0)
                         || (n == 6 && strncasecmp(a, "x-gzip", 6) == 0)
                         || (n == 7 && strncasecmp(a, "deflate", 7) == 0)
                         || (n == 8 && strncasecmp(a, "compress", 8) == 0)) {
                    chunked_last = 0;
                }
                else {
                    c->error_reason = "Unsupported transfer coding";
                    return 501;
                }
            }
            if (comma == NULL) {
                break;
            }
            s = comma + 1;
        }
    }
    if (!seen_te) {
        return 0;
    }
    if (c->http_minor == 0) {
        c->error_reason = "Transfer-Encoding is not allowed before version 1.1";
        return 400;
    }
    if (!chunked_last) {
        c->error_reason = "Transfer-Encoding must end in chunked";
        return 400;
    }
    c->chunked = 1;
    return 0;
}

static int
on_headers_complete(llhttp_t *p)
{
    cn_conn *c = p->data;
    const cn_limits *l = c->limits;
    int ncl = 0;

    c->http_major = p->http_major;
    c->http_minor = p->http_minor;
    if (c->http_major != 1 || c->http_minor > 1) {
        return cb_fail(c, 400, "Invalid HTTP Version");
    }
    int nhost = 0, nctype = 0;
    for (size_t i = 0; i < c->nheaders; i++) {
        const cn_header *h = &c->headers[i];
        if (name_is(h, "host") && ++nhost > 1) {
            return cb_fail(c, 400, "Duplicate Host header");
        }
        if (name_is(h, "content-type") && ++nctype > 1) {
            return cb_fail(c, 400, "Duplicate Content-Type header");
        }
        if (name_is(h, "content-length")) {
            if (++ncl > 1) {
                return cb_fail(c, 400, "Duplicate Content-Length");
            }
            if (h->value_len == 0) {
                return cb_fail(c, 400, "Invalid Content-Length");
            }
            for (size_t k = 0; k < h->value_len; k++) {
                if (h->value[k] < '0' || h->value[k] > '9') {
                    return cb_fail(c, 400, "Invalid Content-Length");
                }
            }
        }
        else if (name_is(h, "upgrade")) {
            c->upgrade = 1; /* environ.c: gunicorn.socket */
        }
        else if (name_is(h, "expect")) {
            if (h->value_len == 12 && strncasecmp(h->value, "100-continue", 12) == 0) {
                c->expect_continue = c->http_minor >= 1;
            }
            else {
                return cb_fail(c, 417, "Expectation Failed");
            }
        }
        if (memchr(h->name, '_', h->name_len) != NULL) {
            /* environ.c decides (forwarder_headers, header_map) */
            int named = cn_fwd_named(l, h->name, h->name_len);
            c->underscore = 1;
            c->fwd_named |= named;
            if (l->header_map == CN_HEADER_MAP_REFUSE && !named) {
                return cb_fail(c, 400, "Invalid header name: underscore");
            }
        }
    }
    int st = check_transfer_encoding(c);
    if (st != 0) {
        return cb_fail(c, st, c->error_reason);
    }
    if (c->chunked && ncl > 0) {
        return cb_fail(c, 400, "Content-Length with Transfer-Encoding");
    }
    c->content_length = (p->flags & F_CONTENT_LENGTH) ? (int64_t)p->content_length : -1;
    if (!c->chunked && c->content_length <= 0) {
        c->body_done = 1;
    }
    c->keepalive = llhttp_should_keep_alive(p) ? 1 : 0;
    c->in_trailers = 1;
    c->field_len = 0;
    c->at_chunk_line = c->chunked;
    return HPE_PAUSED;
}

static int
on_body(llhttp_t *p, const char *at, size_t len)
{
    cn_conn *c = p->data;
    if (c->body_len + len > c->body_cap) {
        /* Compact first: what was handed out is gone. */
        if (c->body_pos > 0) {
            memmove(c->body, c->body + c->body_pos, c->body_len - c->body_pos);
            c->body_len -= c->body_pos;
            c->body_pos = 0;
        }
        if (c->body_len + len > c->body_cap) {
            /* At most one CN_BODY_STEP of input is decoded per call, so the
             * body buffer never outgrows it plus what is unread. */
            size_t cap = c->body_len + len;
            char *b = realloc(c->body, cap);
            if (b == NULL) {
                return cb_fail(c, 500, "Out of memory");
            }
            c->body = b;
            c->body_cap = cap;
        }
    }
    memcpy(c->body + c->body_len, at, len);
    c->body_len += len;
    return 0;
}

static int
on_chunk_extension(llhttp_t *p, const char *at, size_t len)
{
    cn_conn *c = p->data;
    (void)at;
    c->field_len += len;
    if (c->field_len > 4096) {
        return cb_fail(c, 400, "Chunk extension too large");
    }
    return 0;
}

static int
on_chunk_header(llhttp_t *p)
{
    cn_conn *c = p->data;
    c->field_len = 0;
    if (p->content_length == 0) {
        c->last_chunk = 1;
    }
    return 0;
}

/* After each chunk, pause: the next line is a chunk-size line, which
 * fix_chunk_line checks and simplifies before llhttp sees it. */
static int
on_chunk_complete(llhttp_t *p)
{
    cn_conn *c = p->data;
    if (c->last_chunk) {
        return 0;
    }
    c->at_chunk_line = 1;
    return HPE_PAUSED;
}

static int
on_message_complete(llhttp_t *p)
{
    cn_conn *c = p->data;
    c->body_done = 1;
    return HPE_PAUSED;
}

static const llhttp_settings_t cn_llhttp_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_chunk_extension_name = on_chunk_extension,
    .on_chunk_extension_value = on_chunk_extension,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_version_complete = on_version_complete,
    .on_header_value_complete = on_header_value_complete,
    .on_chunk_header = on_chunk_header,
    .on_chunk_complete = on_chunk_complete,
};


/* ---- PROXY protocol ------------------------------------------------------ */

static const char cn_pp2_sig[12] = {'\r', '\n', '\r', '\n', '\0', '\r', '\n', 'Q', 'U', 'I', 'T', '\n'};

/* Parse a decimal port "0".."65535". */
static int
parse_port(const char *s, size_t n)
{
    if (n == 0 || n > 5) {
        return -1;
    }
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v <= 65535 ? v : -1;
}

/* PROXY v1: "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" (at most 107 bytes). */
static int
parse_proxy_v1(cn_conn *c)
{
    const char *start = c->buf + c->pos;
    size_t avail = c->len - c->pos;
    const char *lf = memchr(start, '\n', avail < 107 ? avail : 107);
    if (lf == NULL) {
        return avail >= 107 ? fail(c, 400, "Invalid PROXY line") : 0;
    }
    if (lf == start || lf[-1] != '\r') {
        return fail(c, 400, "Invalid PROXY line");
    }
    const char *f[6];
    size_t fl[6];
    int nf = 0;
    const char *p = start, *end = lf - 1;
    while (p < end && nf < 6) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        const char *e = sp ? sp : end;
        f[nf] = p;
        fl[nf] = (size_t)(e - p);
        nf++;
        p = sp ? sp + 1 : end;
    }
    if (nf != 6 || p != end) {
        return fail(c, 400, "Invalid PROXY line");
    }
    int family;
    if (fl[1] == 4 && memcmp(f[1], "TCP4", 4) == 0) {
        family = AF_INET;
    }
    else if (fl[1] == 4 && memcmp(f[1], "TCP6", 4) == 0) {
        family = AF_INET6;
    }
    else {
        return fail(c, 400, "Invalid PROXY line: protocol not supported");
    }
    char a[48], b[48];
    unsigned char bin[16];
    if (fl[2] >= sizeof(a) || fl[3] >= sizeof(b)) {
        return fail(c, 400, "Invalid PROXY line");
    }
    memcpy(a, f[2], fl[2]);
    a[fl[2]] = 0;
    memcpy(b, f[3], fl[3]);
    b[fl[3]] = 0;
    if (inet_pton(family, a, bin) != 1 || inet_pton(family, b, bin) != 1) {
        return fail(c, 400, "Invalid PROXY line: bad address");
    }
    int sport = parse_port(f[4], fl[4]);
    int dport = parse_port(f[5], fl[5]);
    if (sport < 0 || dport < 0) {
        return fail(c, 400, "Invalid PROXY line: bad port");
    }
    c->has_proxy = 1;
    memcpy(c->proxy_addr, a, fl[2] + 1);
    c->proxy_port = sport;
    c->pos = (size_t)(lf + 1 - c->buf);
    return 1;
}

/* PROXY v2: the binary header (signature, ver/cmd, family, length). */
static int
parse_proxy_v2(cn_conn *c)
{
    const unsigned char *h = (const unsigned char *)c->buf + c->pos;
    size_t avail = c->len - c->pos;
    if (avail < 16) {
        return 0;
    }
    size_t len = ((size_t)h[14] << 8) | h[15];
    if (avail < 16 + len) {
        return 0;
    }
    if ((h[12] & 0xF0) != 0x20) {
        return fail(c, 400, "Invalid PROXY v2 header: version");
    }
    int cmd = h[12] & 0x0F;
    int fam = h[13];
    if (cmd == 1) {
        if (fam == 0x11 && len >= 12) {
            inet_ntop(AF_INET, h + 16, c->proxy_addr, sizeof(c->proxy_addr));
            c->proxy_port = (h[24] << 8) | h[25];
            c->has_proxy = 1;
        }
        else if (fam == 0x21 && len >= 36) {
            inet_ntop(AF_INET6, h + 16, c->proxy_addr, sizeof(c->proxy_addr));
            c->proxy_port = (h[48] << 8) | h[49];
            c->has_proxy = 1;
        }
        else if (fam != 0x00) {
            return fail(c, 400, "Invalid PROXY v2 header: family");
        }
    }
    else if (cmd != 0) {
        return fail(c, 400, "Invalid PROXY v2 header: command");
    }
    c->pos += 16 + len;
    return 1;
}

/* A PROXY header before the first request: 1 consumed (or none there),
 * 0 need more bytes, -1 invalid. */
static int
parse_proxy(cn_conn *c)
{
    size_t avail = c->len - c->pos;
    if (avail == 0) {
        return 0;
    }
    const char *s = c->buf + c->pos;
    size_t k = avail < 12 ? avail : 12;
    if (memcmp(s, cn_pp2_sig, k) == 0) {
        return k < 12 ? 0 : parse_proxy_v2(c);
    }
    k = avail < 6 ? avail : 6;
    if (memcmp(s, "PROXY ", k) == 0) {
        return k < 6 ? 0 : parse_proxy_v1(c);
    }
    return 1;
}

/* ---- driving ------------------------------------------------------------- */

void
cn_parse_begin(cn_conn *c, const cn_limits *l)
{
    llhttp_init(&c->parser, HTTP_REQUEST, &cn_llhttp_settings);
    c->parser.data = c;
    c->limits = l;
    c->head_start = c->pos;
    c->scan_pos = c->pos;
    c->nlines = 0;
    c->method = c->target = NULL;
    c->method_len = c->target_len = 0;
    c->http_major = c->http_minor = 0;
    c->nheaders = 0;
    memset(&c->cur, 0, sizeof(c->cur));
    c->content_length = -1;
    c->chunked = c->expect_continue = c->continue_sent = 0;
    c->is_head = c->keepalive = c->must_close = c->body_done = 0;
    c->at_chunk_line = c->last_chunk = c->needs_rewrite = 0;
    c->body_len = c->body_pos = 0;
    c->body_error = 0;
    c->trailer_name_len = c->field_len = c->nfields = 0;
    c->in_trailers = 0;
    c->error_status = 0;
    c->error_reason = NULL;
    c->underscore = c->fwd_named = c->fwd_trusted = c->upgrade = 0;
    c->script_hdr = -1;
    c->script_skip = 0;
}

int
cn_fwd_named(const cn_limits *l, const char *n, size_t len)
{
    if (l->fwd_any) {
        return 1;
    }
    for (int k = 0; k < l->nfwd; k++) {
        const char *f = l->fwd[k];
        size_t i = 0;
        while (i < len && f[i] != 0 && toupper((unsigned char)n[i]) == (unsigned char)f[i]) {
            i++;
        }
        if (i == len && f[i] == 0) {
            return 1;
        }
    }
    return 0;
}

/* Map an llhttp error to a status for the error page. */
static int
llhttp_status(cn_conn *c, llhttp_errno_t err)
{
    if (c->error_status) { /* set by a callback (cb_fail) */
        return -1;
    }
    switch (err) {
    case HPE_INVALID_METHOD:
        return fail(c, 400, "Invalid HTTP method");
    case HPE_INVALID_URL:
        return fail(c, 400, "Invalid request target");
    case HPE_INVALID_VERSION:
        return fail(c, 400, "Invalid HTTP Version");
    case HPE_INVALID_HEADER_TOKEN:
        return fail(c, 400, "Invalid HTTP header");
    case HPE_INVALID_CONTENT_LENGTH:
    case HPE_UNEXPECTED_CONTENT_LENGTH:
        return fail(c, 400, "Invalid Content-Length");
    case HPE_INVALID_TRANSFER_ENCODING:
        return fail(c, 400, "Invalid Transfer-Encoding");
    default:
        return fail(c, 400, "Bad Request");
    }
}


/* Bytes overwritten before llhttp parses the head and put back after: llhttp
 * 8.1 in strict mode refuses what gunicorn accepts (obs-text in the target,
 * "Transfer-Encoding: identity" beside Content-Length), so we hide those
 * bytes from it and keep every other check it makes. */
typedef struct {
    size_t *off;
    char *orig;
    size_t n, cap;
} cn_mask;

static int
mask_byte(cn_mask *m, char *buf, size_t off, char repl)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        size_t *o = realloc(m->off, cap * sizeof(*o));
        if (o == NULL) {
            return -1;
        }
        m->off = o;
        char *b = realloc(m->orig, cap);
        if (b == NULL) {
            return -1;
        }
        m->orig = b;
        m->cap = cap;
    }
    m->off[m->n] = off;
    m->orig[m->n] = buf[off];
    m->n++;
    buf[off] = repl;
    return 0;
}

static void
mask_restore(cn_mask *m, char *buf)
{
    for (size_t i = 0; i < m->n; i++) {
        buf[m->off[i]] = m->orig[i];
    }
    free(m->off);
    free(m->orig);
    memset(m, 0, sizeof(*m));
}

/* Whether a Transfer-Encoding value lists only "identity". */
static int
te_identity_only(const char *v, size_t n)
{
    int seen = 0;
    const char *end = v + n;
    while (v < end) {
        while (v < end && (*v == ' ' || *v == '\t' || *v == ',')) {
            v++;
        }
        const char *t = v;
        while (v < end && *v != ',' && *v != ' ' && *v != '\t') {
            v++;
        }
        if (v > t) {
            if (!((size_t)(v - t) == 8 && strncasecmp(t, "identity", 8) == 0)) {
                return 0;
            }
            seen = 1;
        }
    }
    return seen;
}

/* Mask what llhttp must not see in the head [start, end).  0 or -1 (ENOMEM). */
static int
mask_head(cn_conn *c, cn_mask *m, size_t start, size_t end)
{
    char *b = c->buf;
    const char *sp1 = memchr(b + start, ' ', end - start);
    const char *lf = memchr(b + start, '\n', end - start);
    if (sp1 != NULL && lf != NULL && sp1 < lf) {
        for (const char *p = sp1 + 1; p < lf && *p != ' '; p++) {
            if ((unsigned char)*p >= 0x80 && mask_byte(m, b, (size_t)(p - b), 'x') < 0) {
                return -1;
            }
        }
    }
    /* Header lines: "Transfer-Encoding: identity" beside a Content-Length
     * means no coding at all (gunicorn, valid/009).  Without a length it is
     * left to llhttp and the guard: a request TE must end in chunked, else
     * the body would be read as the next request. */
    size_t first = lf ? (size_t)(lf - b) + 1 : end;
    int has_cl = 0;
    for (size_t pos = first; pos < end;) {
        const char *nl = memchr(b + pos, '\n', end - pos);
        if (nl == NULL) {
            break;
        }
        if ((size_t)(nl - (b + pos)) > 15 && strncasecmp(b + pos, "content-length:", 15) == 0) {
            has_cl = 1;
        }
        pos = (size_t)(nl - b) + 1;
    }
    for (size_t pos = first; has_cl && pos < end;) {
        const char *line = b + pos;
        const char *nl = memchr(line, '\n', end - pos);
        if (nl == NULL) {
            break;
        }
        size_t len = (size_t)(nl - line);
        if (len > 18 && strncasecmp(line, "transfer-encoding:", 18) == 0
            && te_identity_only(line + 18, len - 19)) {
            if (mask_byte(m, b, pos, 'X') < 0) {
                return -1;
            }
        }
        pos += len + 1;
    }
    return 0;
}

/* The request-target forms of RFC 9112 section 3.2 that llhttp lets through:
 * "*" only with OPTIONS; an absolute-form authority must be well formed. */
static int
target_ok(const cn_conn *c)
{
    const char *t = c->target;
    size_t n = c->target_len;
    if (n == 1 && t[0] == '*') {
        return c->method_len == 7 && memcmp(c->method, "OPTIONS", 7) == 0;
    }
    if (t[0] == '/' || (c->method_len == 7 && memcmp(c->method, "CONNECT", 7) == 0)) {
        return 1;
    }
    const char *end = t + n;
    const char *sep = NULL;
    for (const char *p = t; p + 2 < end; p++) {
        if (p[0] == ':' && p[1] == '/' && p[2] == '/') {
            sep = p;
            break;
        }
    }
    if (sep == NULL || sep == t || !isalpha((unsigned char)t[0])) {
        return 0;
    }
    for (const char *p = t; p < sep; p++) {
        if (!isalnum((unsigned char)*p) && *p != '+' && *p != '-' && *p != '.') {
            return 0;
        }
    }
    const char *a = sep + 3, *ae = a;
    while (ae < end && *ae != '/' && *ae != '?' && *ae != '#') {
        ae++;
    }
    const char *lb = memchr(a, '[', (size_t)(ae - a));
    const char *rb = memchr(a, ']', (size_t)(ae - a));
    const char *at = memchr(a, '@', (size_t)(ae - a));
    const char *host = at ? at + 1 : a;
    if (lb != NULL || rb != NULL) {
        if (lb != host || rb == NULL || rb < lb) {
            return 0;
        }
        if (rb + 1 < ae && rb[1] != ':') {
            return 0;
        }
    }
    return 1;
}

/* Check the chunk-size line at c->pos and rewrite it in place so llhttp sees
 * only "SIZE\r\n": RFC 9112 allows whitespace around chunk extensions, which
 * llhttp 8.1 strict refuses; extensions are validated here and dropped.
 * 1: done (c->pos moved), 0: need more bytes, -1: invalid. */
static int
fix_chunk_line(cn_conn *c)
{
    char *start = c->buf + c->pos;
    size_t avail = c->len - c->pos;
    size_t scan = avail < 4098 ? avail : 4098;
    char *lf = memchr(start, '\n', scan);
    if (lf == NULL) {
        if (avail >= 4098) {
            return fail(c, 400, "Chunk extension too large");
        }
        return 0;
    }
    if (lf == start || lf[-1] != '\r') {
        return fail(c, 400, "Invalid chunk size line: bare LF");
    }
    char *cr = lf - 1;
    char *semi = memchr(start, ';', (size_t)(cr - start));
    char *size_end = semi ? semi : cr;
    if (semi) {
        while (size_end > start && (size_end[-1] == ' ' || size_end[-1] == '\t')) {
            size_end--;
        }
        for (char *p = semi; p < cr; p++) {
            unsigned char ch = (unsigned char)*p;
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
                return fail(c, 400, "Invalid chunk extension");
            }
        }
    }
    size_t n = (size_t)(size_end - start);
    if (n == 0 || n > 16) {
        return fail(c, 400, "Invalid chunk size");
    }
    for (size_t i = 0; i < n; i++) {
        if (!isxdigit((unsigned char)start[i])) {
            return fail(c, 400, "Invalid chunk size");
        }
    }
    char *dst = cr - n;
    memmove(dst, start, n);
    c->pos = (size_t)(dst - c->buf);
    return 1;
}

/* Normalise the head in place before llhttp sees it, for the compat switches:
 * obs-fold continuations are joined to their field with one space
 * (permit_obsolete_folding) and whitespace before a header's colon is dropped
 * (strip_header_spaces).  The head only shrinks; the bytes after it move
 * down with it.  *head_end is updated. */
static void
rewrite_head(cn_conn *c, const cn_limits *l, size_t *head_end)
{
    char *b = c->buf;
    size_t r = c->head_start, w = c->head_start, end = *head_end;
    int first = 1;
    while (r < end) {
        char *nl = memchr(b + r, '\n', end - r);
        size_t len = (size_t)(nl - (b + r)) + 1; /* includes CRLF */
        if (!first && len > 2 && (b[r] == ' ' || b[r] == '\t')) {
            /* Continuation: replace the previous CRLF and this line's
             * leading whitespace by one space. */
            size_t k = r;
            while (b[k] == ' ' || b[k] == '\t') {
                k++;
            }
            w -= 2;
            b[w++] = ' ';
            memmove(b + w, b + k, r + len - k);
            w += r + len - k;
        }
        else if (!first && len > 2 && l->strip_header_spaces) {
            char *colon = memchr(b + r, ':', len);
            size_t name_end = colon ? (size_t)(colon - b) : r;
            size_t ne = name_end;
            while (ne > r && (b[ne - 1] == ' ' || b[ne - 1] == '\t')) {
                ne--;
            }
            memmove(b + w, b + r, ne - r);
            w += ne - r;
            memmove(b + w, b + name_end, r + len - name_end);
            w += r + len - name_end;
        }
        else {
            memmove(b + w, b + r, len);
            w += len;
        }
        first = 0;
        r += len;
    }
    size_t shrink = end - w;
    memmove(b + w, b + end, c->len - end);
    c->len -= shrink;
    *head_end = w;
    c->scan_pos -= shrink;
}

int
cn_parse_head(cn_conn *c, const cn_limits *l)
{
    size_t head_end = 0;
    if (l->proxy_protocol && c->nrequests == 0 && !c->has_proxy
        && c->scan_pos == c->head_start) {
        int pr = parse_proxy(c);
        if (pr <= 0) {
            return pr;
        }
        c->head_start = c->scan_pos = c->pos;
    }
    int r = guard_scan(c, l, &head_end);
    if (r <= 0) {
        return r;
    }
    if (c->needs_rewrite) {
        rewrite_head(c, l, &head_end);
    }

    /* The method: ours to validate (llhttp knows only its table). */
    const char *line = c->buf + c->head_start;
    size_t line_len = head_end - c->head_start;
    const char *sp = memchr(line, ' ', line_len);
    if (sp == NULL) {
        return fail(c, 400, "Invalid HTTP request line");
    }
    c->method = line;
    c->method_len = (size_t)(sp - line);
    if (!method_ok(c->method, c->method_len, l)) {
        return fail(c, 400, "Invalid HTTP method");
    }
    if (l->casefold_method) {
        for (size_t i = 0; i < c->method_len; i++) {
            c->buf[c->head_start + i] = (char)toupper((unsigned char)c->buf[c->head_start + i]);
        }
    }

    const char *feed = line;
    llhttp_errno_t err;
    if (!llhttp_knows(c->method, c->method_len)) {
        /* Bridge: llhttp parses a stand-in method, framing checks intact. */
        err = llhttp_execute(&c->parser, "PUT", 3);
        if (err != HPE_OK) {
            return llhttp_status(c, err);
        }
        feed = sp;
    }
    cn_mask mask = {0};
    if (mask_head(c, &mask, c->head_start, head_end) < 0) {
        mask_restore(&mask, c->buf);
        return fail(c, 500, "Out of memory");
    }
    size_t feed_len = (size_t)(c->buf + head_end - feed);
    err = llhttp_execute(&c->parser, feed, feed_len);
    mask_restore(&mask, c->buf);
    if (err != HPE_PAUSED) {
        if (err == HPE_OK) {
            /* A complete head must reach headers-complete. */
            return fail(c, 400, "Bad Request");
        }
        return llhttp_status(c, err);
    }
    const char *at = llhttp_get_error_pos(&c->parser);
    c->pos = (size_t)(at - c->buf);
    c->is_head = c->method_len == 4 && memcmp(c->method, "HEAD", 4) == 0;
    if (c->target_len == 0) {
        return fail(c, 400, "Invalid request target");
    }
    for (size_t i = 0; i < c->target_len; i++) {
        unsigned char ch = (unsigned char)c->target[i];
        if (ch <= 0x20 || ch == 0x7f) {
            return fail(c, 400, "Invalid request target");
        }
    }
    if (!target_ok(c)) {
        return fail(c, 400, "Invalid request target");
    }
    c->nrequests++;
    return 1;
}

static int
parse_body_step(cn_conn *c)
{
    if (c->body_done || c->body_error) {
        return c->body_error ? -1 : 0;
    }
    size_t n = c->len - c->pos;
    if (n == 0) {
        return 0;
    }
    if (n > CN_BODY_STEP) {
        n = CN_BODY_STEP;
    }
    if (c->at_chunk_line) {
        int r = fix_chunk_line(c);
        if (r <= 0) {
            if (r < 0) {
                c->body_error = CN_BODY_INVALID;
                c->must_close = 1;
            }
            return r;
        }
        c->at_chunk_line = 0;
        n = c->len - c->pos;
        if (n > CN_BODY_STEP) {
            n = CN_BODY_STEP;
        }
    }
    if (llhttp_get_errno(&c->parser) == HPE_PAUSED) {
        llhttp_resume(&c->parser);
    }
    const char *start = c->buf + c->pos;
    llhttp_errno_t err = llhttp_execute(&c->parser, start, n);
    if (err == HPE_OK) {
        c->pos += n;
        return 0;
    }
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
        c->pos = (size_t)(llhttp_get_error_pos(&c->parser) - c->buf);
        if (err == HPE_PAUSED_UPGRADE) {
            c->must_close = 1;
            c->body_done = 1;
        }
        /* Paused at a chunk boundary (at_chunk_line) or at message end. */
        return 0;
    }
    c->body_error = CN_BODY_INVALID;
    c->must_close = 1;
    if (!c->error_status) {
        c->error_reason = llhttp_get_error_reason(&c->parser);
        if (c->error_reason == NULL) {
            c->error_reason = "Invalid chunked body";
        }
    }
    return -1;
}

int
cn_parse_body(cn_conn *c)
{
    size_t pos = c->pos;
    unsigned done = c->body_done;
    size_t blen = c->body_len;
    if (parse_body_step(c) < 0) {
        return -1;
    }
    return (c->pos != pos || c->body_done != done || c->body_len != blen) ? 1 : 0;
}
