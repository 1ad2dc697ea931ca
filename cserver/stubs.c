/* TEMPORARY: placeholders while the engine files are written. */
#include "module_parts.h"
int cn_input_add_type(PyObject *module, cn_state *st) { (void)module; (void)st; return 0; }
int cn_response_add_type(PyObject *module, cn_state *st) { (void)module; (void)st; return 0; }
int cn_filewrapper_add_type(PyObject *module, cn_state *st) { (void)module; (void)st; return 0; }
PyObject *cn_run_worker(PyObject *m, PyObject *a, PyObject *k) { (void)m; (void)a; (void)k; PyErr_SetString(PyExc_NotImplementedError, "run_worker"); return NULL; }
PyObject *cn_parse_requests(PyObject *m, PyObject *a, PyObject *k) { (void)m; (void)a; (void)k; PyErr_SetString(PyExc_NotImplementedError, "parse_requests"); return NULL; }
