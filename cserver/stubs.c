/* TEMPORARY: placeholders while the engine files are written; each owner deletes
 * its lines here when its file defines the symbol. */
#include "module_parts.h"
PyObject *cn_run_worker(PyObject *m, PyObject *a, PyObject *k) { (void)m; (void)a; (void)k; PyErr_SetString(PyExc_NotImplementedError, "run_worker"); return NULL; }
PyObject *cn_parse_requests(PyObject *m, PyObject *a, PyObject *k) { (void)m; (void)a; (void)k; PyErr_SetString(PyExc_NotImplementedError, "parse_requests"); return NULL; }
