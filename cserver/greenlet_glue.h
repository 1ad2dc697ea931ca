/* greenlet's C API behind plain functions (greenlet_glue.c).
 *
 * greenlet_glue.c is the only file that includes greenlet.h: its API table
 * is a static pointer set by PyGreenlet_Import(), so every call has to go
 * through that one translation unit.  Functions only, never PyGreenlet's
 * struct fields.  Everything here is CN_GIL.  Built only with
 * CN_HAVE_GREENLET (setup.py defines it when greenlet's headers are found). */
#ifndef CN_GREENLET_GLUE_H
#define CN_GREENLET_GLUE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Import greenlet's C API (once per process; later calls are no-ops).
 * 0, or -1 with ImportError set when greenlet is missing or its API capsule
 * cannot be had. */
int cn_greenlet_import(void);

/* A new greenlet that will call run() with no arguments, child of `parent`
 * (NULL: the current greenlet).  New reference, or NULL with an exception. */
PyObject *cn_greenlet_new(PyObject *run, PyObject *parent);

/* The current greenlet: new reference, or NULL with an exception. */
PyObject *cn_greenlet_current(void);

/* g.switch(*args) (args: a tuple, or NULL for none).  Returns what the
 * greenlet that switches back passes (new reference), or NULL with the
 * exception thrown into us (GreenletExit, gevent.Timeout ...). */
PyObject *cn_greenlet_switch(PyObject *g, PyObject *args);

/* g.throw(typ): raise `typ` inside g at its switch point.  Like
 * cn_greenlet_switch for what it returns. */
PyObject *cn_greenlet_throw(PyObject *g, PyObject *typ);

/* g.parent = parent.  0 or -1 with an exception. */
int cn_greenlet_set_parent(PyObject *g, PyObject *parent);

/* Whether g has started and not finished (1/0). */
int cn_greenlet_active(PyObject *g);

/* Borrowed: greenlet.GreenletExit (valid after cn_greenlet_import). */
PyObject *cn_greenlet_exit_type(void);

#endif
