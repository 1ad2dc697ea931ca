/* Module state of cunicorn._cserver, shared by the files that need types,
 * exceptions or interned strings.  Only module.c defines PyInit_. */
#ifndef CN_MODULE_H
#define CN_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "cn_strings.h"

typedef struct {
    PyTypeObject *input_type;         /* wsgi.input */
    PyTypeObject *start_response_type;
    PyTypeObject *file_wrapper_type;  /* wsgi.file_wrapper */
    PyObject *no_more_data;           /* exception NoMoreData(OSError) */
    PyObject *invalid_chunk;          /* exception InvalidChunk(OSError) */
    PyObject *str[CN_STR__COUNT];     /* interned strings, see cn_strings.h */
} cn_state;

/* Borrowed pointer to the module's state. */
cn_state *cn_get_state(PyObject *module);

#endif
