"""Echo app: answers 200 with JSON describing what the app saw.

Response body (application/json)::

    {"environ": {CGI / HTTP_* / RAW_URI / wsgi.* keys → JSON-able value},
     "body": request body decoded as latin-1 (byte-exact round trip),
     "pieces": [len of each piece the read mode returned],
     "violations": [contract slips seen while reading, e.g. read(n) > n],
     "pid": worker pid}

The body is read in the mode chosen by the query parameter ``echo_mode``:
``read`` (default: ``read()``), ``readn`` (``read(n)`` until b""),
``readline`` (``readline()`` until b""), ``readlinen`` (``readline(n)``),
``readlines``, ``iter`` (``for line in wsgi.input``), ``none`` (not read);
``echo_n`` gives n (default 7). ``echo_validate=1`` runs the request through
``wsgiref.validate.validator`` (only modes that pass an argument to read()).

``app`` is unwrapped: the conformance corpus has targets (``*``, authority
form) and methods that wsgiref's validator refuses. ``validated_app`` is the
validator-wrapped variant (``read`` mode is mapped to ``readn`` there, since the
validator forbids ``read()`` without a size).
"""

import json
import os
from urllib.parse import parse_qs
from wsgiref.validate import validator

CGI_KEYS = {
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "SERVER_SOFTWARE",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "REMOTE_HOST",
    "RAW_URI",
    "GATEWAY_INTERFACE",
}


def _jsonable(v):
    if v is None or isinstance(v, (str, bool, int, float)):
        return v
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    return f"<{type(v).__name__}>"


def describe_environ(environ):
    out = {}
    for k, v in environ.items():
        if k in CGI_KEYS or k.startswith("HTTP_") or k.startswith("wsgi."):
            out[k] = _jsonable(v)
        elif isinstance(v, str) and k.isupper():
            out[k] = v
    out["wsgi.file_wrapper.present"] = "wsgi.file_wrapper" in environ
    return out


def read_body(environ, mode, n):
    """Read wsgi.input in ``mode``; return (body, pieces, violations)."""
    inp = environ["wsgi.input"]
    got, violations = [], []
    if mode == "none":
        pass
    elif mode == "read":
        got.append(inp.read())
    elif mode in ("readn", "readline", "readlinen"):
        for _ in range(10_000_000):  # bounded
            if mode == "readn":
                piece = inp.read(n)
            elif mode == "readline":
                piece = inp.readline()
            else:
                piece = inp.readline(n)
            if not isinstance(piece, bytes):
                violations.append(f"non-bytes {type(piece).__name__!r}")
                break
            if not piece:
                break
            if mode != "readline" and len(piece) > n:
                violations.append("%s(%d) returned %d bytes" % (mode, n, len(piece)))  # noqa: UP031
            if mode.startswith("readline") and b"\n" in piece[:-1]:
                violations.append(f"newline inside a line: {piece[:80]!r}")
            got.append(piece)
        else:
            violations.append("read loop did not end")
        if inp.read(n) != b"":
            violations.append("read after EOF returned data")
    elif mode in ("readlines", "iter"):
        got = list(inp.readlines() if mode == "readlines" else inp)
        for line in got:
            if b"\n" in line[:-1]:
                violations.append(f"newline inside a line: {line[:80]!r}")
    else:
        raise ValueError(f"unknown echo_mode {mode!r}")
    return b"".join(got), [len(x) for x in got], violations


def echo(environ, start_response):
    qs = parse_qs(environ.get("QUERY_STRING", ""))
    mode = qs.get("echo_mode", ["read"])[0]
    n = int(qs.get("echo_n", ["7"])[0])
    if environ.get("tests.echo.validated") and mode == "read":
        mode = "readn"
    body, pieces, violations = read_body(environ, mode, n)
    payload = {
        "environ": describe_environ(environ),
        "body": body.decode("latin-1"),
        "pieces": pieces,
        "violations": violations,
        "pid": os.getpid(),
    }
    out = json.dumps(payload).encode("ascii")
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(out)))],
    )
    return [out]


_validated_echo = validator(echo)


def validated_app(environ, start_response):
    environ["tests.echo.validated"] = True
    return _validated_echo(environ, start_response)


def app(environ, start_response):
    qs = environ.get("QUERY_STRING", "")
    if "echo_validate=1" in qs:
        return validated_app(environ, start_response)
    return echo(environ, start_response)


def conformance_app(environ, start_response):
    """Echo for the conformance corpus: reads the body with read(8192) until
    b"" and, instead of failing, reports a read error in ``read_error`` (with
    the bytes read before it in ``body``), so the test can tell "the app's body
    read failed" from "the app saw a short body as complete"."""
    inp = environ["wsgi.input"]
    got, err = [], None
    try:
        for _ in range(1_000_000):  # bounded
            piece = inp.read(8192)
            if not piece:
                break
            got.append(piece)
    except Exception as e:  # noqa: BLE001 - reported to the test
        err = f"{type(e).__name__}: {e}"
    payload = {
        "environ": describe_environ(environ),
        "body": b"".join(got).decode("latin-1"),
        "read_error": err,
        "pid": os.getpid(),
    }
    out = json.dumps(payload).encode("ascii")
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(out)))],
    )
    return [out]
