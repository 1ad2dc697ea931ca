"""Test apps for the black-box suite, reachable through one router ``app``.

``/_t/<name>?params`` runs the app ``<name>`` below; any other path goes to the
echo app (tests/apps/echo.py). Each app is also importable on its own
(``tests.apps.suite:chunked_app`` etc.) for a dedicated server.

Apps (query parameters in brackets):
  hello            200, Content-Length 5, b"hello"                (validated)
  hello_nocl       200, b"hello" from a generator, no length      (validated)
  chunked          200, no length, generator b"hello ", b"", b"world", b"!"
                                                                  (validated)
  nobody [code]    ``code`` (204/304/1xx) with a body the server must drop
  file [path, kind=file|bytesio|upper, blksize, cl, offset]
                   wsgi.file_wrapper over a real file or a BytesIO; ``upper``:
                   a real file's fileno() whose read() upper-cases, so a body
                   sent with sendfile(2) differs from one read through it
  bad_status [which]   start_response with a malformed status (see BAD_STATUS)
  bad_header [which]   a malformed header (see BAD_HEADERS)
  hop              hop-by-hop headers from the app (server must drop them)
  exc_before       raises before start_response
  exc_after [cl]   yields b"first-chunk" then raises
  write [cl]       uses the write() callable, then returns [b"c"]
  exc_info         start_response, error, start_response(500, exc_info) before
                   any body: the second status wins               (validated)
  exc_info_after   yields b"first", then start_response(.., exc_info) which
                   must re-raise (head already sent)
  double_start     start_response twice without exc_info (must fail: 500)
  cl [declared, send]  declares Content-Length ``declared``, sends ``send`` bytes
  stream [close_file, chunks, size]  class-based iterable; ``close()`` touches
                   ``close_file``; used for client disconnects and normal ends
  pid              the worker's pid as text
"""

import io
import os
import sys
from urllib.parse import parse_qs
from wsgiref.validate import validator

from tests.apps.echo import app as echo_app

BAD_STATUS = {
    "crlf": "200 OK\r\nX-Injected: y",
    "lf": "200 OK\nX-Injected: y",
    "short": "99 x",
    "alpha": "abc",
    "nospace": "200OK",
    "fourdigit": "2000 OK",
    "nul": "200 O\x00K",
    "empty": "",
}

BAD_HEADERS = {
    "name_crlf": ("X-Bad\r\nX-Injected", "v"),
    "name_lf": ("X-Bad\nX-Injected", "v"),
    "value_crlf": ("X-Bad", "v\r\nX-Injected: 1"),
    "value_lf": ("X-Bad", "v\nX-Injected: 1"),
    "value_cr": ("X-Bad", "v\rX-Injected: 1"),
    "value_nul": ("X-Bad", "v\x00X-Injected"),
    "name_space": ("X Injected", "v"),
    "name_colon": ("X-Injected:", "v"),
    "name_empty": ("", "X-Injected"),
    "name_nul": ("X-Injected\x00", "v"),
}


def _qs(environ):
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def _hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


def _hello_nocl(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        yield b"hel"
        yield b"lo"

    return gen()


def _chunked(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        yield b"hello "
        yield b""  # an empty piece must not end the chunked body
        yield b"world"
        yield b"!"

    return gen()


hello_app = validator(_hello)
hello_nocl_app = validator(_hello_nocl)
chunked_app = validator(_chunked)


def _nobody(environ, start_response):
    code = _qs(environ).get("code", "204")
    start_response(f"{code} Whatever", [("X-Code", code)])
    return [b"should-not-appear"]


nobody_app = validator(_nobody)


class _UpperFile:
    """A file object whose read() upper-cases what the file holds."""

    def __init__(self, path):
        self.f = open(path, "rb")

    def fileno(self):
        return self.f.fileno()

    def tell(self):
        return self.f.tell()

    def seek(self, pos):
        return self.f.seek(pos)

    def read(self, n=-1):
        return self.f.read(n).upper()

    def close(self):
        self.f.close()


def file_app(environ, start_response):
    q = _qs(environ)
    kind = q.get("kind", "file")
    blksize = int(q.get("blksize", "8192"))
    if kind == "upper":
        f = _UpperFile(q["path"])
        if "offset" in q:
            f.seek(int(q["offset"]))
    elif kind == "file":
        f = open(q["path"], "rb")
        if "offset" in q:
            f.seek(int(q["offset"]))
    else:
        with open(q["path"], "rb") as src:
            f = io.BytesIO(src.read())
        if "offset" in q:
            f.seek(int(q["offset"]))
    headers = [("Content-Type", "application/octet-stream")]
    if "cl" in q:
        headers.append(("Content-Length", q["cl"]))
    start_response("200 OK", headers)
    return environ["wsgi.file_wrapper"](f, blksize)


def bad_status_app(environ, start_response):
    status = BAD_STATUS[_qs(environ).get("which", "crlf")]
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def bad_header_app(environ, start_response):
    name, value = BAD_HEADERS[_qs(environ).get("which", "value_crlf")]
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), (name, value), ("Content-Length", "2")],
    )
    return [b"ok"]


def hop_app(environ, start_response):
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/plain"),
            ("Connection", "keep-alive"),
            ("Keep-Alive", "timeout=99"),
            ("Proxy-Authenticate", "Basic"),
            ("Upgrade", "h2c"),
            ("X-Kept", "yes"),
            ("Content-Length", "2"),
        ],
    )
    return [b"ok"]


def exc_before_app(environ, start_response):
    raise RuntimeError("boom-before-start-response")


def exc_after_app(environ, start_response):
    headers = [("Content-Type", "text/plain")]
    cl = _qs(environ).get("cl")
    if cl:
        headers.append(("Content-Length", cl))
    start_response("200 OK", headers)

    def gen():
        yield b"first-chunk"
        raise RuntimeError("boom-after-head")

    return gen()


def write_app(environ, start_response):
    headers = [("Content-Type", "text/plain")]
    cl = _qs(environ).get("cl")
    if cl:
        headers.append(("Content-Length", cl))
    write = start_response("200 OK", headers)
    write(b"a")
    write(b"")
    write(b"b")
    return [b"c"]


def _exc_info(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise ValueError("app noticed a problem")
    except ValueError:
        start_response(
            "500 Internal Server Error",
            [("Content-Type", "text/plain"), ("Content-Length", "7")],
            sys.exc_info(),
        )
    return [b"handled"]


exc_info_app = validator(_exc_info)


def exc_info_after_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        yield b"first"
        try:
            raise ValueError("late problem")
        except ValueError:
            # head already sent: start_response must re-raise
            start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
        yield b"must-not-be-sent"

    return gen()


def double_start_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    start_response("201 Created", [("Content-Type", "text/plain")])
    return [b"must-not-be-sent"]


def cl_app(environ, start_response):
    q = _qs(environ)
    declared = int(q.get("declared", "5"))
    send = int(q.get("send", "11"))
    data = (b"0123456789" * (send // 10 + 1))[:send]
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(declared))],
    )
    half = len(data) // 2
    return [data[:half], data[half:]]


class _Stream:
    def __init__(self, close_file, chunks, size):
        self.close_file = close_file
        self.left = chunks
        self.block = b"x" * size

    def __iter__(self):
        return self

    def __next__(self):
        if self.left <= 0:
            raise StopIteration
        self.left -= 1
        return self.block

    def close(self):
        if self.close_file:
            with open(self.close_file, "w") as f:
                f.write("closed with %d chunks left\n" % self.left)  # noqa: UP031


def stream_app(environ, start_response):
    q = _qs(environ)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return _Stream(
        q.get("close_file"), int(q.get("chunks", "3")), int(q.get("size", "10"))
    )


def pid_app(environ, start_response):
    body = str(os.getpid()).encode()
    start_response(
        "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
    )
    return [body]


ROUTES = {
    "hello": hello_app,
    "hello_nocl": hello_nocl_app,
    "chunked": chunked_app,
    "nobody": nobody_app,
    "file": file_app,
    "bad_status": bad_status_app,
    "bad_header": bad_header_app,
    "hop": hop_app,
    "exc_before": exc_before_app,
    "exc_after": exc_after_app,
    "write": write_app,
    "exc_info": exc_info_app,
    "exc_info_after": exc_info_after_app,
    "double_start": double_start_app,
    "cl": cl_app,
    "stream": stream_app,
    "pid": pid_app,
}


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path.startswith("/_t/"):
        return ROUTES[path[4:]](environ, start_response)
    return echo_app(environ, start_response)
