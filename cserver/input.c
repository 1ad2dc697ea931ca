/* TEMPORARY placeholder (input helper replaces this file). */
#include "input.h"
#include "module_parts.h"
int cn_input_add_type(PyObject *module, cn_state *st) { (void)module; (void)st; return 0; }
