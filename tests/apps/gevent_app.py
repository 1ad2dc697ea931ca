"""App for the gevent worker's black-box tests (tests/blackbox/test_gevent.py).

Routes (query parameters in brackets):

- ``/hello``: ``Hello, World!``
- ``/pid``: the worker's pid
- ``/sleep`` [s, mark]: ``time.sleep(s)`` (cooperative once gevent patched
  ``time``); with ``mark``, create that file first, so a test can wait until
  the request is inside the app
- ``/upstream`` [port]: connect a ``socket.socket`` (patched) to 127.0.0.1:port,
  send ``ping``, answer what comes back
- ``/big`` [n]: n bytes of ``x`` (a slow reader's response)
- ``/body``: the length of the request body, read from wsgi.input
- ``/body_timeout`` [t]: read wsgi.input inside ``gevent.Timeout(t)``; answer
  ``timeout`` when the Timeout itself reached the app, else what was raised
  (or ``read N``)
- ``/busy`` [s]: a pure-Python busy loop for s seconds (blocks the hub)
- ``/patched``: ``yes`` when the socket module is gevent's
"""

import os
import socket
import time
from urllib.parse import parse_qs


def _reply(start_response, body, status="200 OK"):
    if isinstance(body, str):
        body = body.encode()
    start_response(
        status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
    )
    return [body]


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/pid":
        return _reply(start_response, str(os.getpid()))
    if path == "/sleep":
        mark = q.get("mark")
        if mark:
            with open(mark, "w"):
                pass
        time.sleep(float(q.get("s", "0.2")))
        return _reply(start_response, "slept")
    if path == "/upstream":
        with socket.create_connection(("127.0.0.1", int(q["port"])), timeout=10) as s:
            s.sendall(b"ping")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(100)
                if not chunk:
                    break
                data += chunk
        return _reply(start_response, data)
    if path == "/big":
        return _reply(start_response, b"x" * int(q.get("n", "1000000")))
    if path == "/body":
        data = environ["wsgi.input"].read()
        return _reply(start_response, str(len(data)))
    if path == "/body_timeout":
        import gevent

        try:
            with gevent.Timeout(float(q.get("t", "0.2"))):
                data = environ["wsgi.input"].read()
        except gevent.Timeout:
            return _reply(start_response, "timeout")
        except Exception as e:  # what the app saw instead (the old OSError)
            return _reply(start_response, type(e).__name__)
        return _reply(start_response, f"read {len(data)}")
    if path == "/busy":
        end = time.monotonic() + float(q.get("s", "10"))
        n = 0
        while time.monotonic() < end:
            n += 1
        return _reply(start_response, str(n))
    if path == "/patched":
        from gevent import monkey

        return _reply(
            start_response, "yes" if monkey.is_module_patched("socket") else "no"
        )
    return _reply(start_response, "Hello, World!")
