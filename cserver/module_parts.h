/* Entry points that module.c wires into the module: types added at exec time
 * and module-level functions.  Each returns 0/-1 (add_type) or a new reference
 * / NULL with an exception (functions). */
#ifndef CN_MODULE_PARTS_H
#define CN_MODULE_PARTS_H

#include "module.h"

int cn_input_add_type(PyObject *module, cn_state *st);       /* input.c */
int cn_response_add_type(PyObject *module, cn_state *st);    /* response.c */
int cn_filewrapper_add_type(PyObject *module, cn_state *st); /* filewrap.c */

PyObject *cn_run_worker(PyObject *module, PyObject *args, PyObject *kwargs);
PyObject *cn_run_worker_gthread(PyObject *module, PyObject *args, PyObject *kwargs); /* worker_gthread.c */
PyObject *cn_run_worker_gevent(PyObject *module, PyObject *args, PyObject *kwargs); /* worker_gevent.c, with CN_HAVE_GREENLET */
PyObject *cn_parse_requests(PyObject *module, PyObject *args, PyObject *kwargs);

#endif
