/* TEMPORARY placeholder: the master loop is being written. */
#include "master.h"
PyObject *cn_run_master(PyObject *m, PyObject *a, PyObject *k) { (void)m; (void)a; (void)k; PyErr_SetString(PyExc_NotImplementedError, "run_master"); return NULL; }
