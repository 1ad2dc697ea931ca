"""bench app "matmul_probe": the matmul app (bench/apps/matmul.py) on every path
but ``/probe``, which answers at once: a trivial endpoint that a probe hits
every 10 ms while the matmul endpoint is saturated (bench/gthread.py)."""

from matmul import app as matmul_app

PROBE = b"ok"


def app(environ, start_response):
    if environ["PATH_INFO"] == "/probe":
        start_response("200 OK", [("Content-Length", "2")])
        return [PROBE]
    return matmul_app(environ, start_response)
