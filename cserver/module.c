/* cunicorn._cserver: module definition, multi-phase init and module state.
 *
 * The only file that defines PyInit_.  Every type is a heap type created from a
 * spec in its own file (cn_*_add_type) and kept in the module state, so the
 * module holds no C globals. */
#include "module.h"

#include "heartbeat.h"
#include "master.h"
#include "module_parts.h"

cn_state *
cn_get_state(PyObject *module)
{
    return (cn_state *)PyModule_GetState(module);
}

static int
cn_traverse(PyObject *module, visitproc visit, void *arg)
{
    cn_state *st = cn_get_state(module);
    Py_VISIT(st->input_type);
    Py_VISIT(st->start_response_type);
    Py_VISIT(st->file_wrapper_type);
    Py_VISIT(st->no_more_data);
    Py_VISIT(st->invalid_chunk);
    for (int i = 0; i < CN_STR__COUNT; i++) {
        Py_VISIT(st->str[i]);
    }
    return 0;
}

static int
cn_clear(PyObject *module)
{
    cn_state *st = cn_get_state(module);
    Py_CLEAR(st->input_type);
    Py_CLEAR(st->start_response_type);
    Py_CLEAR(st->file_wrapper_type);
    Py_CLEAR(st->no_more_data);
    Py_CLEAR(st->invalid_chunk);
    for (int i = 0; i < CN_STR__COUNT; i++) {
        Py_CLEAR(st->str[i]);
    }
    return 0;
}

static void
cn_free(void *module)
{
    cn_clear((PyObject *)module);
}

static const char *const cn_string_texts[CN_STR__COUNT] = {
#define CN_X(name, text) text,
    CN_STRINGS(CN_X)
#undef CN_X
};

/* Create an exception class `name` (a subclass of OSError), store a strong
 * reference in *slot and add it to the module.  0 or -1 with an exception. */
static int
add_exception(PyObject *module, const char *qualname, const char *doc,
              PyObject **slot)
{
    *slot = PyErr_NewExceptionWithDoc(qualname, doc, PyExc_OSError, NULL);
    if (*slot == NULL) {
        return -1;
    }
    const char *dot = strrchr(qualname, '.');
    return PyModule_AddObjectRef(module, dot + 1, *slot);
}

static int
cn_exec(PyObject *module)
{
    cn_state *st = cn_get_state(module);
    for (int i = 0; i < CN_STR__COUNT; i++) {
        st->str[i] = PyUnicode_InternFromString(cn_string_texts[i]);
        if (st->str[i] == NULL) {
            return -1;
        }
    }
    if (add_exception(module, "cunicorn._cserver.NoMoreData",
                      "The client closed the connection before the request "
                      "body ended.",
                      &st->no_more_data) < 0) {
        return -1;
    }
    if (add_exception(module, "cunicorn._cserver.InvalidChunk",
                      "The chunked request body is malformed.",
                      &st->invalid_chunk) < 0) {
        return -1;
    }
    if (cn_input_add_type(module, st) < 0
        || cn_response_add_type(module, st) < 0
        || cn_filewrapper_add_type(module, st) < 0) {
        return -1;
    }
    if (PyModule_AddIntConstant(module, "HEARTBEAT_SLOT_SIZE",
                                CN_HEARTBEAT_SLOT_SIZE) < 0) {
        return -1;
    }
    if (PyModule_AddStringConstant(module, "__version__", "0.1.0") < 0) {
        return -1;
    }
    return 0;
}

static PyMethodDef cn_methods[] = {
    {"run_master", (PyCFunction)(void (*)(void))cn_run_master,
     METH_VARARGS | METH_KEYWORDS, "Run the pre-fork master loop."},
    {"run_worker", (PyCFunction)(void (*)(void))cn_run_worker,
     METH_VARARGS | METH_KEYWORDS, "Run the sync worker loop."},
    {"run_worker_gthread", (PyCFunction)(void (*)(void))cn_run_worker_gthread,
     METH_VARARGS | METH_KEYWORDS, "Run the gthread worker (event loop + thread pool)."},
#ifdef CN_HAVE_GREENLET
    {"run_worker_gevent", (PyCFunction)(void (*)(void))cn_run_worker_gevent,
     METH_VARARGS | METH_KEYWORDS, "Run the gevent worker (greenlets on gevent's hub)."},
#endif
    {"parse_requests", (PyCFunction)(void (*)(void))cn_parse_requests,
     METH_VARARGS | METH_KEYWORDS, "Test entry: parse raw requests."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot cn_slots[] = {
    {Py_mod_exec, cn_exec},
    {0, NULL},
};

static struct PyModuleDef cn_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "cunicorn._cserver",
    .m_doc = "cunicorn's C engine: master loop, HTTP/1.1 engine, workers.",
    .m_size = sizeof(cn_state),
    .m_methods = cn_methods,
    .m_slots = cn_slots,
    .m_traverse = cn_traverse,
    .m_clear = cn_clear,
    .m_free = cn_free,
};

PyMODINIT_FUNC PyInit__cserver(void);

PyMODINIT_FUNC
PyInit__cserver(void)
{
    return PyModuleDef_Init(&cn_module);
}
