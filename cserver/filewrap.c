/* wsgi.file_wrapper: FileWrapper(filelike, blksize=8192).
 *
 * PEP 3333's optional platform-specific file handling.  As an iterable it
 * yields filelike.read(blksize) until that returns an empty (false) value, and
 * close() closes the file; response.c recognises an instance returned by the
 * app (exact type only) and sends the file with sendfile(2) instead when
 * filelike.fileno() is a regular file, unless --no-sendfile (or SENDFILE=0)
 * turned sendfile off (cn_worker.sendfile).
 *
 * Heap type created from a spec; the interned "read" and "close" strings come
 * from the module state reached through the type.  Everything here is CN_GIL. */
#include "filewrap.h"

#include "module_parts.h"

#include <structmember.h>

#ifndef Py_T_OBJECT_EX
#define Py_T_OBJECT_EX T_OBJECT_EX
#define Py_T_PYSSIZET T_PYSSIZET
#define Py_READONLY READONLY
#endif

typedef struct {
    PyObject_HEAD
    PyObject *filelike;     /* strong */
    PyObject *blksize_obj;  /* strong int, passed to read() as is */
    Py_ssize_t blksize;
} cn_filewrapper;

PyObject *
cn_filewrapper_filelike(PyObject *fw)
{
    return ((cn_filewrapper *)fw)->filelike;
}

static PyObject *
fw_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    char *kwlist[] = {"filelike", "blksize", NULL};
    PyObject *filelike;
    Py_ssize_t blksize = 8192;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|n:FileWrapper", kwlist,
                                     &filelike, &blksize)) {
        return NULL;
    }
    PyObject *blksize_obj = PyLong_FromSsize_t(blksize);
    if (blksize_obj == NULL) {
        return NULL;
    }
    cn_filewrapper *self = (cn_filewrapper *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(blksize_obj);
        return NULL;
    }
    Py_INCREF(filelike);
    self->filelike = filelike;
    self->blksize_obj = blksize_obj;
    self->blksize = blksize;
    return (PyObject *)self;
}

static int
fw_traverse(PyObject *op, visitproc visit, void *arg)
{
    cn_filewrapper *self = (cn_filewrapper *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->filelike);
    Py_VISIT(self->blksize_obj);
    return 0;
}

static int
fw_clear(PyObject *op)
{
    cn_filewrapper *self = (cn_filewrapper *)op;
    Py_CLEAR(self->filelike);
    Py_CLEAR(self->blksize_obj);
    return 0;
}

static void
fw_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    (void)fw_clear(op);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyObject *
fw_iter(PyObject *op)
{
    Py_INCREF(op);
    return op;
}

/* The next block: filelike.read(blksize), or NULL without an exception at
 * the end (an empty / false result), or NULL with the exception read()
 * raised. */
static PyObject *
fw_next(PyObject *op)
{
    cn_filewrapper *self = (cn_filewrapper *)op;
    cn_state *st = (cn_state *)PyType_GetModuleState(Py_TYPE(op));
    if (st == NULL || self->filelike == NULL) {
        return NULL;
    }
    /* read() is Python code: keep the file object alive across it even if
     * it clears the wrapper. */
    PyObject *filelike = self->filelike;
    Py_INCREF(filelike);
    PyObject *callargs[2] = {filelike, self->blksize_obj};
    PyObject *data = PyObject_VectorcallMethod(st->str[CN_STR_read],
                                               callargs, 2, NULL);
    Py_DECREF(filelike);
    if (data == NULL) {
        return NULL;
    }
    int truth;
    if (PyBytes_CheckExact(data)) {
        truth = PyBytes_GET_SIZE(data) > 0;
    }
    else {
        truth = PyObject_IsTrue(data);
    }
    if (truth > 0) {
        return data;
    }
    Py_DECREF(data);
    return NULL;   /* end of file (truth == 0) or IsTrue failed (< 0) */
}

/* close(): filelike.close() when the file object has one. */
static PyObject *
fw_close(PyObject *op, PyObject *Py_UNUSED(ignored))
{
    cn_filewrapper *self = (cn_filewrapper *)op;
    cn_state *st = (cn_state *)PyType_GetModuleState(Py_TYPE(op));
    if (st == NULL || self->filelike == NULL) {
        Py_RETURN_NONE;
    }
    PyObject *meth = PyObject_GetAttr(self->filelike, st->str[CN_STR_close]);
    if (meth == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            return NULL;
        }
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    PyObject *res = PyObject_CallNoArgs(meth);
    Py_DECREF(meth);
    return res;
}

static PyMethodDef fw_methods[] = {
    {"close", fw_close, METH_NOARGS,
     "Close the wrapped file object (if it has a close() method)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef fw_members[] = {
    {"filelike", Py_T_OBJECT_EX, offsetof(cn_filewrapper, filelike),
     Py_READONLY, "The wrapped file object."},
    {"blksize", Py_T_PYSSIZET, offsetof(cn_filewrapper, blksize),
     Py_READONLY, "The size of each read()."},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot fw_slots[] = {
    {Py_tp_doc, (void *)"FileWrapper(filelike, blksize=8192)\n--\n\n"
                        "wsgi.file_wrapper: iterates filelike.read(blksize); "
                        "sent with sendfile(2)\nwhen filelike.fileno() is a "
                        "regular file (unless --no-sendfile)."},
    {Py_tp_new, fw_new},
    {Py_tp_dealloc, fw_dealloc},
    {Py_tp_traverse, fw_traverse},
    {Py_tp_clear, fw_clear},
    {Py_tp_iter, fw_iter},
    {Py_tp_iternext, fw_next},
    {Py_tp_methods, fw_methods},
    {Py_tp_members, fw_members},
    {0, NULL},
};

static PyType_Spec fw_spec = {
    .name = "cunicorn._cserver.FileWrapper",
    .basicsize = sizeof(cn_filewrapper),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
#ifdef Py_TPFLAGS_IMMUTABLETYPE
             | Py_TPFLAGS_IMMUTABLETYPE
#endif
    ,
    .slots = fw_slots,
};

int
cn_filewrapper_add_type(PyObject *module, cn_state *st)
{
    PyObject *type = PyType_FromModuleAndSpec(module, &fw_spec, NULL);
    if (type == NULL) {
        return -1;
    }
    st->file_wrapper_type = (PyTypeObject *)type;   /* takes the new ref */
    return PyModule_AddType(module, st->file_wrapper_type);
}
