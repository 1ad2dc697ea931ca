/* llhttp glue and the guard layer (parser.c): turns the bytes in a
 * connection's read buffer into a request head and decoded body bytes,
 * enforcing what llhttp alone does not (DESIGN.md, "the guard layer").
 * No function here touches Python or the socket; no GIL needed. */
#ifndef CN_PARSER_H
#define CN_PARSER_H

#include "conn.h"

#define CN_FWD_MAX 16 /* forwarder_headers names kept */

/* Parser policy, from the worker's settings (normalised by cn_limits_init). */
typedef struct {
    size_t line;          /* max request line length, CRLF excluded; 0 = none */
    size_t field_size;    /* max header line length, CRLF included */
    size_t fields;        /* max number of header lines */
    int header_map;       /* CN_HEADER_MAP_* */
    int permit_unconventional_method;
    int casefold_method;
    int permit_obsolete_folding;
    int strip_header_spaces;
    int proxy_protocol;   /* expect a PROXY v1/v2 header on new connections */
    /* forwarder_headers: names with '_' that a trusted front end may send
     * (SCRIPT_NAME, PATH_INFO), compared with the upper-cased header name;
     * fwd_any for "*" */
    int nfwd, fwd_any;
    char fwd[CN_FWD_MAX][64];
} cn_limits;

enum { CN_HEADER_MAP_DROP = 0, CN_HEADER_MAP_REFUSE = 1, CN_HEADER_MAP_DANGEROUS = 2 };

/* Fill `l` from gunicorn-style setting values (0 or out of range → default). */
void cn_limits_init(cn_limits *l, long line, long fields, long field_size);

/* Whether the header name n[0..len) is one of forwarder_headers.  No Python. */
int cn_fwd_named(const cn_limits *l, const char *n, size_t len);

/* Prepare `c` to parse a new request starting at c->pos (after a previous one
 * or on a fresh connection); compacts nothing. */
void cn_parse_begin(cn_conn *c, const cn_limits *l);

/* Try to parse the request head from the buffer.  Returns 1 when the head is
 * complete (c->method, target, headers, ... are set and c->pos is at the first
 * body byte), 0 when more bytes are needed, -1 on a bad request
 * (c->error_status / c->error_reason say what to answer). */
int cn_parse_head(cn_conn *c, const cn_limits *l);

/* Decode body bytes from the buffer [pos, len) into c->body.  Returns 1 when
 * it made progress (c->body_done is set at the end of the message), 0 when it
 * needs more bytes, -1 on a malformed body (c->body_error = CN_BODY_INVALID,
 * c->error_status / error_reason set). */
int cn_parse_body(cn_conn *c);

/* Largest head the buffer may need to hold under `l`. */
size_t cn_max_head_size(const cn_limits *l);

#endif
