/* greenlet's C API behind plain functions: see greenlet_glue.h.
 *
 * greenlet.h defines `static void **_PyGreenlet_API`, the API table that
 * PyGreenlet_Import() fills from the capsule "greenlet._C_API".  It is the
 * one mutable static of this extension that is not a signal flag: it is
 * imposed by greenlet's header, written once under the GIL and only read
 * afterwards.  It lives here, in the only file that includes greenlet.h. */
#include "greenlet_glue.h"

#ifdef CN_HAVE_GREENLET

#include <greenlet.h>

int
cn_greenlet_import(void)
{
    if (_PyGreenlet_API != NULL) {
        return 0;
    }
    PyGreenlet_Import();
    if (_PyGreenlet_API == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ImportError, "greenlet's C API is not available");
        }
        return -1;
    }
    return 0;
}

static int
check(PyObject *g)
{
    if (!PyGreenlet_Check(g)) {
        PyErr_SetString(PyExc_TypeError, "a greenlet is required");
        return -1;
    }
    return 0;
}

PyObject *
cn_greenlet_new(PyObject *run, PyObject *parent)
{
    if (parent != NULL && check(parent) < 0) {
        return NULL;
    }
    return (PyObject *)PyGreenlet_New(run, (PyGreenlet *)parent);
}

PyObject *
cn_greenlet_current(void)
{
    return (PyObject *)PyGreenlet_GetCurrent();
}

PyObject *
cn_greenlet_switch(PyObject *g, PyObject *args)
{
    if (check(g) < 0) {
        return NULL;
    }
    PyObject *empty = NULL;
    if (args == NULL) {
        empty = PyTuple_New(0);
        if (empty == NULL) {
            return NULL;
        }
        args = empty;
    }
    PyObject *r = PyGreenlet_Switch((PyGreenlet *)g, args, NULL);
    Py_XDECREF(empty);
    return r;
}

PyObject *
cn_greenlet_throw(PyObject *g, PyObject *typ)
{
    if (check(g) < 0) {
        return NULL;
    }
    return PyGreenlet_Throw((PyGreenlet *)g, typ, NULL, NULL);
}

int
cn_greenlet_set_parent(PyObject *g, PyObject *parent)
{
    if (check(g) < 0 || check(parent) < 0) {
        return -1;
    }
    return PyGreenlet_SetParent((PyGreenlet *)g, (PyGreenlet *)parent);
}

int
cn_greenlet_active(PyObject *g)
{
    return PyGreenlet_Check(g) && PyGreenlet_ACTIVE((PyGreenlet *)g);
}

PyObject *
cn_greenlet_exit_type(void)
{
    return PyExc_GreenletExit;
}

#endif /* CN_HAVE_GREENLET */
