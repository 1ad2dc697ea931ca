"""bench app "matmul": inference that releases the GIL.

A numpy float32 256x256 ``A @ B`` per request (about 270 us of CPU).  Start the
server with OPENBLAS_NUM_THREADS=1 (bench/run.py does) so BLAS uses one thread
and the server's own threads are what runs in parallel.
"""

import numpy as np

_rng = np.random.default_rng(0)
A = _rng.random((256, 256), dtype=np.float32)
B = _rng.random((256, 256), dtype=np.float32)


def app(environ, start_response):
    c = A @ B
    body = b"%.3f" % float(c[0, 0])
    start_response(
        "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
    )
    return [body]
