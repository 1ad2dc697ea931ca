/* Building the WSGI environ (environ.c). */
#ifndef CN_ENVIRON_H
#define CN_ENVIRON_H

#include "conn.h"
#include "worker.h"

/* A new environ dict for the request head on `c` with `input` (borrowed) as
 * wsgi.input.  New reference, or NULL with an exception.  CN_GIL. */
PyObject *cn_environ_build(cn_worker *w, cn_conn *c, PyObject *input);

/* Drop the worker's cached header keys.  CN_GIL. */
void cn_environ_clear_cache(cn_worker *w);

#endif
