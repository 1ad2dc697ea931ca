/* TEMPORARY placeholder (response helper replaces this file). */
#include "module_parts.h"
int cn_filewrapper_add_type(PyObject *module, cn_state *st) { (void)module; (void)st; return 0; }
