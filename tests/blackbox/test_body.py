"""wsgi.input: every read mode, Content-Length and chunked bodies, truncated
bodies, Expect: 100-continue."""

import socket

import pytest

from tests.support.server import (
    build_request,
    chunked,
    parse_response,
    recv_all,
    recv_until,
)

# lines of several sizes, one longer than any n used, an empty line, no final LF
BODY = b"first line\nsecond\n\n" + b"L" * 3000 + b"\nshort\nno-newline-at-end"
MODES = [
    ("read", 7),
    ("readn", 1),
    ("readn", 7),
    ("readn", 4096),
    ("readline", 7),
    ("readlinen", 1),
    ("readlinen", 5),
    ("readlinen", 100000),
    ("readlines", 7),
    ("iter", 7),
]


def _expected_pieces(mode, n, body):
    if mode == "read":
        return [len(body)]
    if mode in ("readline", "readlines", "iter"):
        return [len(x) for x in body.splitlines(keepends=True)]
    return None


@pytest.mark.parametrize("framing", ["length", "chunked"])
@pytest.mark.parametrize("mode,n", MODES, ids=[f"{m}-{n}" for m, n in MODES])
def test_read_modes(suite_server, mode, n, framing):
    target = f"/body?echo_mode={mode}&echo_n={n}"
    if framing == "length":
        raw = build_request("POST", target, body=BODY)
    else:
        raw = build_request(
            "POST",
            target,
            [("Transfer-Encoding", "chunked")],
            chunked(BODY[:5], BODY[5:3001], BODY[3001:]),
        )
    out = suite_server.echo(raw)
    assert out["violations"] == []
    assert out["body"].encode("latin-1") == BODY
    expected = _expected_pieces(mode, n, BODY)
    if expected is not None:
        assert out["pieces"] == expected


@pytest.mark.parametrize("mode", ["read", "readn", "readline", "readlines", "iter"])
def test_empty_body(suite_server, mode):
    out = suite_server.echo(
        build_request("POST", f"/?echo_mode={mode}", [("Content-Length", "0")])
    )
    assert out["body"] == ""
    assert out["violations"] == []


def test_get_without_body_reads_empty(suite_server):
    out = suite_server.echo(build_request("GET", "/?echo_mode=read"))
    assert out["body"] == ""


def test_validated_read_modes(suite_server):
    for mode in ("readn", "readline", "readlinen", "readlines", "iter"):
        raw = build_request(
            "POST", f"/?echo_validate=1&echo_mode={mode}&echo_n=3", body=BODY
        )
        out = suite_server.echo(raw)
        assert out["body"].encode("latin-1") == BODY, mode


def test_large_body_streamed(suite_server):
    body = bytes(range(256)) * 4096  # 1 MiB, every byte value
    out = suite_server.echo(
        build_request("POST", "/?echo_mode=readn&echo_n=65536", body=body)
    )
    assert out["body"].encode("latin-1") == body


def test_large_chunked_body_many_chunks(suite_server):
    parts = [bytes([i % 256]) * (i % 97 + 1) for i in range(2000)]
    body = b"".join(parts)
    raw = build_request(
        "POST",
        "/?echo_mode=readn&echo_n=1000",
        [("Transfer-Encoding", "chunked")],
        chunked(*parts),
    )
    out = suite_server.echo(raw)
    assert out["body"].encode("latin-1") == body


def test_chunked_with_extensions_and_trailers(suite_server):
    body = b"5;name=val\r\nhello\r\n6; x\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
    raw = build_request("POST", "/", [("Transfer-Encoding", "chunked")], body)
    out = suite_server.echo(raw)
    assert out["body"] == "hello world"
    assert "HTTP_X_TRAILER" not in out["environ"]  # trailers never reach environ


def _not_a_success(srv, raw):
    """A body that ends early must not look like a successful request: the
    app's read raises, so the client sees a 5xx/4xx or a closed connection."""
    data = srv.request(raw, timeout=10)
    if data:
        resp = parse_response(data)
        assert resp.status >= 400, (resp.status, data[:300])
    return data


@pytest.mark.parametrize("mode", ["read", "readn", "readline", "readlines", "iter"])
def test_truncated_content_length_body_raises_in_app(suite_server, mode):
    raw = build_request(
        "POST", f"/trunc?echo_mode={mode}", [("Content-Length", "100")], b"0123456789"
    )
    _not_a_success(suite_server, raw)


def test_truncated_body_is_logged(server_factory):
    # gunicorn logs a premature client disconnection at debug level
    srv = server_factory("tests.apps.echo:app", "--log-level", "debug")
    mark = srv.log_mark()
    raw = build_request("POST", "/trunc", [("Content-Length", "100")], b"0123456789")
    _not_a_success(srv, raw)
    srv.wait_for_log(
        r"(?i)(disconnect|NoMoreData|incomplete|truncated|error)", since=mark
    )


def test_truncated_chunked_body_raises_in_app(suite_server):
    raw = build_request(
        "POST", "/trunc", [("Transfer-Encoding", "chunked")], b"a\r\n01234"
    )
    _not_a_success(suite_server, raw)


def test_truncated_before_last_chunk(suite_server):
    raw = build_request(
        "POST", "/trunc", [("Transfer-Encoding", "chunked")], b"5\r\nhello\r\n"
    )
    _not_a_success(suite_server, raw)


def test_expect_100_continue(suite_server):
    body = b"x" * 1000
    head = build_request(
        "POST",
        "/?echo_mode=read",
        [("Expect", "100-continue"), ("Content-Length", str(len(body)))],
    )
    with suite_server.connect() as s:
        s.sendall(head)
        got = recv_until(s, b"\r\n\r\n", timeout=5)
        assert got.startswith(b"HTTP/1.1 100 Continue\r\n"), got
        # nothing else before the body is sent
        rest = got.split(b"\r\n\r\n", 1)[1]
        assert rest == b""
        s.sendall(body)
        s.shutdown(socket.SHUT_WR)
        data = got + recv_all(s)
    resp = parse_response(data)
    assert [c for c, _ in resp.interim] == [100]
    assert resp.status == 200
    assert resp.json()["body"] == body.decode()


def test_expect_unknown_is_417(suite_server):
    raw = build_request("POST", "/", [("Expect", "something-else")], b"abc")
    resp = suite_server.fetch(raw)
    assert resp.status == 417
    assert resp.header("Connection", "").lower() == "close"


def test_unread_body_does_not_lose_the_response(suite_server):
    # the app ignores a large body; closing with unread input must not reset
    # the connection before the client has read the answer
    body = b"u" * (2 * 1024 * 1024)
    raw = build_request("POST", "/?echo_mode=none", body=body)
    for _ in range(3):
        resp = suite_server.fetch(raw, timeout=10)
        assert resp.status == 200
        assert resp.json()["body"] == ""


def test_nbsp_chunked_over_the_wire(suite_server):
    raw = (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \xa0chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n"
    )
    resp = suite_server.fetch(raw)
    assert resp.status in (400, 501)
