"""Request limits, error responses (status, Connection: close, lingering close)
and the limit flags."""

import re
import socket
import threading

import pytest

from tests.support.server import build_request, parse_response, recv_all


def _line_of(length, method="GET", version="HTTP/1.1"):
    """A request line of exactly ``length`` bytes (without CRLF)."""
    fixed = len(method) + len(" /") + len(" ") + len(version)
    return f"{method} /{'a' * (length - fixed)} {version}"


def _req_with_line(length):
    line = _line_of(length)
    assert len(line) == length
    return (line + "\r\nHost: x\r\n\r\n").encode()


def _req_with_field_line(total):
    """A request whose one header line is ``total`` bytes including CRLF."""
    prefix = "X-Long: "
    value = "v" * (total - len(prefix) - 2)
    line = prefix + value + "\r\n"
    assert len(line) == total
    return ("GET / HTTP/1.1\r\nHost: x\r\n" + line + "\r\n").encode()


def _req_with_fields(n):
    # n header fields in total (Host included)
    hdrs = "".join(f"X-H{i}: {i}\r\n" for i in range(n - 1))
    return ("GET / HTTP/1.1\r\nHost: x\r\n" + hdrs + "\r\n").encode()


def _status(srv, raw):
    data = srv.request(raw, timeout=10)
    resp = parse_response(data)
    return resp


# -- defaults ------------------------------------------------------------------


def test_request_line_4094_ok_4095_rejected(suite_server):
    assert _status(suite_server, _req_with_line(4094)).status == 200
    resp = _status(suite_server, _req_with_line(4095))
    assert resp.status == 400
    assert resp.header("Connection", "").lower() == "close"


def test_huge_request_line_rejected(suite_server):
    resp = _status(suite_server, _req_with_line(100_000))
    assert resp.status == 400


def test_field_line_8190_ok_8191_rejected(suite_server):
    assert _status(suite_server, _req_with_field_line(8190)).status == 200
    resp = _status(suite_server, _req_with_field_line(8191))
    assert resp.status == 431
    assert resp.header("Connection", "").lower() == "close"


def test_field_count_100_ok_101_rejected(suite_server):
    assert _status(suite_server, _req_with_fields(100)).status == 200
    resp = _status(suite_server, _req_with_fields(101))
    assert resp.status == 431
    assert resp.header("Connection", "").lower() == "close"


def test_endless_headers_bounded(suite_server):
    # many small fields: the count limit fires, the buffer does not grow forever
    raw = b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 20000 + b"\r\n"
    assert _status(suite_server, raw).status == 431


# -- flags ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory):
    from tests.support.server import Server

    srv = Server(
        "tests.apps.echo:app",
        "--limit-request-line",
        "100",
        "--limit-request-fields",
        "5",
        "--limit-request-field_size",
        "50",
        log_dir=tmp_path_factory.mktemp("limited"),
    )
    srv.start()
    yield srv
    srv.stop()


def test_limit_request_line_flag(limited_server):
    assert _status(limited_server, _req_with_line(100)).status == 200
    assert _status(limited_server, _req_with_line(101)).status == 400


def test_limit_request_field_size_flag(limited_server):
    assert _status(limited_server, _req_with_field_line(50)).status == 200
    assert _status(limited_server, _req_with_field_line(51)).status == 431


def test_limit_request_fields_flag(limited_server):
    assert _status(limited_server, _req_with_fields(5)).status == 200
    assert _status(limited_server, _req_with_fields(6)).status == 431


def test_larger_limits_flags(server_factory):
    srv = server_factory(
        "tests.apps.echo:app",
        "--limit-request-line",
        "8000",
        "--limit-request-fields",
        "150",
    )
    assert _status(srv, _req_with_line(8000)).status == 200
    assert _status(srv, _req_with_line(8001)).status == 400
    assert _status(srv, _req_with_fields(150)).status == 200
    assert _status(srv, _req_with_fields(151)).status == 431


# -- malformed requests ----------------------------------------------------------

BAD = {
    "garbage_line": (b"THIS IS NOT HTTP\r\n\r\n", 400),
    "no_version": (b"GET /\r\n\r\n", 400),
    "http09": (b"GET /\r\n", None),  # 400 or closed
    "lowercase_method": (b"get / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "nul_in_target": (b"GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "ctl_in_target": (b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "del_in_target": (b"GET /a\x7fb HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "esc_in_target": (b"GET /a\x1b[2Jb HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "space_before_colon": (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    "obs_fold": (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400),
    "empty_name": (b"GET / HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n", 400),
    "bare_lf": (b"GET / HTTP/1.1\nHost: x\n\n", 400),
    "bare_cr": (b"GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n", 400),
    "dup_cl": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nab",  # noqa: E501
        400,
    ),
    "te_and_cl": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",  # noqa: E501
        400,
    ),
    "te_http10": (
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "te_unknown": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: foo\r\n\r\n",
        501,
    ),
    "te_chunked_not_last": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        400,
    ),
    "http20": (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", (400, 505)),
    "pri": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", (400, 505)),
}


@pytest.mark.parametrize("name", list(BAD))
def test_malformed_request(suite_server, name):
    raw, expected = BAD[name]
    data = suite_server.request(raw, timeout=10)
    if expected is None:
        if data:
            assert parse_response(data).status == 400
        return
    resp = parse_response(data)
    if isinstance(expected, tuple):
        assert resp.status in expected, data[:200]
    else:
        assert resp.status == expected, data[:200]
    assert resp.header("Connection", "").lower() == "close"
    assert resp.complete and resp.rest == b"", data  # one whole response, nothing after


def test_server_survives_malformed_requests(suite_server):
    for raw, _ in BAD.values():
        suite_server.request(raw, timeout=10)
    assert suite_server.fetch(build_request("GET", "/_t/hello")).status == 200


@pytest.mark.parametrize(
    "bad",
    [b"GARBAGE\r\n", b"GET /\x00 HTTP/1.1\r\n", b"GET / HTTP/1.1\r\nX: a\r\n b\r\n"],
)
def test_error_readable_despite_large_unread_body(suite_server, bad):
    """Lingering close: the server answers 400 and half-closes/drains so the
    client reads the error even while it is still sending garbage."""
    garbage = b"Z" * (4 * 1024 * 1024)
    s = suite_server.connect(timeout=10)
    errors = []

    def sender():
        try:
            s.sendall(bad + garbage)
        except OSError as e:  # the server may close while we still send
            errors.append(e)

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    try:
        data = b""
        s.settimeout(10)
        while b"\r\n\r\n" not in data:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            data += b
        # 400 for the request line (431 if the garbage is taken as one endless
        # header line; test_bad_request_line_wins_over_header_limit checks which)
        assert re.match(rb"HTTP/1\.[01] (400|431) ", data), (
            f"client could not read the error (got {data[:100]!r}, sender: {errors})"
        )
        assert b"connection: close" in data.lower()
    finally:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()
        t.join(10)


@pytest.mark.parametrize(
    "bad", [b"GARBAGE\r\n", b"GET /\x00 HTTP/1.1\r\n", b"get / HTTP/1.1\r\n"]
)
def test_bad_request_line_wins_over_header_limit(suite_server, bad):
    # gunicorn reads and rejects the request line (400) before any header
    resp = _status(suite_server, bad + b"X-Long: " + b"v" * 20000 + b"\r\n\r\n")
    assert resp.status == 400


def test_error_response_is_complete(suite_server):
    data = suite_server.request(b"GARBAGE\r\n\r\n")
    resp = parse_response(data)
    assert resp.status == 400
    # either Content-Length matches or the body is close-delimited; no chunking junk
    assert resp.complete
    assert resp.rest == b""


def test_client_sends_nothing_then_closes(suite_server):
    # EOF before any byte: no response, and the worker is free again
    with suite_server.connect() as s:
        s.shutdown(socket.SHUT_WR)
        assert recv_all(s) == b""
    assert suite_server.fetch(build_request("GET", "/_t/hello")).status == 200
