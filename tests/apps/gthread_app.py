"""Test app for the gthread worker's black-box tests (tests/blackbox/test_gthread.py).

Paths (query parameters in brackets):
  /hello              200, b"hello"
  /path [comm]        200, the query string as the body (pipelining order),
                      then, with comm=1, a space and what /comm answers
  /pid                200, the worker's pid
  /sleep [ms, touch, comm]
                      sleeps ``ms`` milliseconds (a slow app), then b"slept"
                      (or, with comm=1, what /comm answers); creates the
                      file ``touch`` first when given
  /slowread [ms]      reads the body in 4 KiB pieces, sleeping ``ms`` between
                      them, answers with the byte count
  /big [n]            ``n`` bytes (default 4 MiB) as 64 KiB pieces, no length
  /comm               the OS name of that thread (cunicorn-loop, cunicorn-pool,
                      cunicorn-fast)
  /item/<id>          the same as /comm (one route whatever the id)
  /conc [ms, touch]   counts the requests in the app at once while it sleeps
                      ``ms``; answers the most seen so far (creates ``touch``
                      first when given)
  /spin [ms, comm]    burns ``ms`` milliseconds of CPU time, then b"spun"
                      (or, with comm=1, what /comm answers)
"""

import os
import threading
import time
from urllib.parse import parse_qs


def _qs(environ, name):
    v = parse_qs(environ.get("QUERY_STRING", "")).get(name)
    return v[0] if v else None


def _q(environ, name, default):
    v = parse_qs(environ.get("QUERY_STRING", "")).get(name)
    return int(v[0]) if v else default


def _big(n):
    piece = b"x" * 65536
    while n > 0:
        k = min(n, len(piece))
        yield piece[:k]
        n -= k


_conc_lock = threading.Lock()
_conc = [0, 0]  # in the app now, most at once


def _conc_sleep(ms):
    with _conc_lock:
        _conc[0] += 1
        _conc[1] = max(_conc[1], _conc[0])
    time.sleep(ms / 1000.0)
    with _conc_lock:
        _conc[0] -= 1
        return _conc[1]


def _touch(environ):
    """Create the file named by the ``touch`` parameter, if any: the test's
    sign that the request reached the app."""
    touch = _qs(environ, "touch")
    if touch:
        with open(touch, "w"):
            pass


_comms = {}  # native thread id -> its name: the server's threads live on


def _comm():
    """The OS name of the calling thread, read once per thread (so /comm
    stays a cheap route, served inline even under ASan)."""
    tid = threading.get_native_id()
    name = _comms.get(tid)
    if name is None:
        with open(f"/proc/self/task/{tid}/comm", "rb") as f:
            name = _comms[tid] = f.read().strip()
    return name


def app(environ, start_response):
    path = environ["PATH_INFO"]
    body = None
    if path == "/sleep":
        _touch(environ)
        time.sleep(_q(environ, "ms", 100) / 1000.0)
        body = _comm() if _q(environ, "comm", 0) else b"slept"
    elif path == "/slowread":
        pause = _q(environ, "ms", 10) / 1000.0
        total = 0
        inp = environ["wsgi.input"]
        while True:
            chunk = inp.read(4096)
            if not chunk:
                break
            total += len(chunk)
            time.sleep(pause)
        body = str(total).encode()
    elif path == "/big":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return _big(_q(environ, "n", 4 << 20))
    elif path == "/spin":
        end = time.thread_time() + _q(environ, "ms", 20) / 1000.0
        while time.thread_time() < end:
            pass
        body = _comm() if _q(environ, "comm", 0) else b"spun"
    elif path == "/pid":
        body = str(os.getpid()).encode()
    elif path == "/conc":
        _touch(environ)
        body = str(_conc_sleep(_q(environ, "ms", 0))).encode()
    elif path == "/comm" or path.startswith("/item/"):
        body = _comm()
    elif path == "/path":
        body = environ.get("QUERY_STRING", "").encode()
        if _q(environ, "comm", 0):
            body += b" " + _comm()
    else:
        body = b"hello"
    start_response(
        "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
    )
    return [body]
