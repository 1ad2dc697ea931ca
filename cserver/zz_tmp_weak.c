/* TEMPORARY (lead): weak fallbacks so the module loads while response.c and
 * input.c are being written.  Deleted once they land. */
#include "input.h"
#include "response.h"
#define W __attribute__((weak))
W PyObject *cn_response_new(cn_worker *w, cn_conn *c) { (void)w; (void)c; PyErr_SetString(PyExc_NotImplementedError, "response"); return NULL; }
W int cn_response_finish(PyObject *sr, PyObject *result) { (void)sr; (void)result; return -1; }
W int cn_response_fail(PyObject *sr) { (void)sr; PyErr_Clear(); return -1; }
W void cn_response_detach(PyObject *sr) { (void)sr; }
W PyObject *cn_response_status(PyObject *sr) { (void)sr; return NULL; }
W PyObject *cn_response_headers(PyObject *sr) { (void)sr; return NULL; }
W int64_t cn_response_sent(PyObject *sr) { (void)sr; return 0; }
W int cn_send_error(cn_conn *c, int status, const char *t) { (void)c; (void)status; (void)t; return 0; }
W void cn_worker_update_date(cn_worker *w) { (void)w; }
W PyObject *cn_input_new(cn_worker *w, cn_conn *c) { (void)w; (void)c; PyErr_SetString(PyExc_NotImplementedError, "input"); return NULL; }
W void cn_input_detach(PyObject *i) { (void)i; }
