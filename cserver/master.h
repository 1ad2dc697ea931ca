/* The pre-fork master loop (master.c). */
#ifndef CN_MASTER_H
#define CN_MASTER_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* _cserver.run_master(heartbeats, *, workers, timeout, graceful_timeout, spawn,
 * log, hooks=None, daemon=False, parent_master=0) -> int (contract and the
 * hooks protocol in _cserver.pyi).  Called with the GIL; releases it only
 * while waiting.  Returns a new reference to the exit code, or NULL with an
 * exception set. */
PyObject *cn_run_master(PyObject *module, PyObject *args, PyObject *kwargs);

#endif
