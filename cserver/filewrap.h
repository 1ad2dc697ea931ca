/* wsgi.file_wrapper (filewrap.c): FileWrapper(filelike, blksize=8192), an
 * iterable over filelike.read(blksize) that response.c recognises and sends
 * with sendfile(2) when filelike is backed by a regular file. */
#ifndef CN_FILEWRAP_H
#define CN_FILEWRAP_H

#include "module.h"

/* The wrapped file object of FileWrapper instance `fw` (borrowed; never
 * NULL).  `fw` must be exactly st->file_wrapper_type.  CN_GIL. */
PyObject *cn_filewrapper_filelike(PyObject *fw);

#endif
