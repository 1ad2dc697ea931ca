/* TEMPORARY placeholder (response helper replaces this file). */
#include "response.h"
#include "module_parts.h"
int cn_response_add_type(PyObject *module, cn_state *st) { (void)module; (void)st; return 0; }
