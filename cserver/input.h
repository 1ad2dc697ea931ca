/* wsgi.input (input.c): a file-like reader over the request body. */
#ifndef CN_INPUT_H
#define CN_INPUT_H

#include "conn.h"
#include "worker.h"

/* A new wsgi.input object for the request now on `c` (new reference, or NULL
 * with an exception).  It borrows `c` until cn_input_detach() is called (before
 * the connection can go away or move to its next request); after that every
 * read raises ValueError("I/O operation on closed request body").
 * Reads pull decoded body bytes with cn_conn_read_body() through a small
 * internal buffer of bounded size (readline scans it without copying more than
 * it returns).  CN_GIL. */
PyObject *cn_input_new(cn_worker *w, cn_conn *c);
void cn_input_detach(PyObject *input);

#endif
