"""The response side: framing, bodyless statuses, file_wrapper, write(),
exc_info, hop-by-hop headers, Date/Server, the iterable's close()."""

import email.utils
import os
import re
import socket
import time
from urllib.parse import quote

import pytest

from tests.support.server import build_request, parse_response, wait_until


def _get(srv, path, method="GET", version="HTTP/1.1", headers=()):
    raw = build_request(method, path, headers, version=version)
    return srv.fetch(raw, head_request=(method == "HEAD"))


def _head_and_rest(data):
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


# -- framing ---------------------------------------------------------------


def test_sync_worker_closes_after_response(suite_server):
    resp = _get(suite_server, "/_t/hello")
    assert resp.status == 200
    assert resp.body == b"hello"
    assert resp.header("Connection", "").lower() == "close"
    assert resp.rest == b""


def test_chunked_response_on_http11(suite_server):
    resp = _get(suite_server, "/_t/chunked")
    assert resp.status == 200
    assert resp.header("Transfer-Encoding") == "chunked"
    assert resp.header("Content-Length") is None
    assert resp.complete, resp.raw
    assert resp.body == b"hello world!"
    assert resp.rest == b""


def test_close_delimited_response_on_http10(suite_server):
    resp = _get(suite_server, "/_t/chunked", version="HTTP/1.0")
    assert resp.status == 200
    assert resp.header("Transfer-Encoding") is None
    assert resp.body == b"hello world!"
    assert resp.version in ("HTTP/1.0", "HTTP/1.1")


def test_content_length_response_is_not_chunked(suite_server):
    resp = _get(suite_server, "/_t/hello")
    assert resp.header("Transfer-Encoding") is None
    assert resp.header("Content-Length") == "5"


def test_app_sends_more_than_content_length(suite_server):
    data = suite_server.request(build_request("GET", "/_t/cl?declared=5&send=11"))
    head, rest = _head_and_rest(data)
    assert b" 200 " in head.split(b"\r\n")[0]
    assert rest == b"01234"  # only Content-Length bytes reach the wire


def test_app_sends_less_than_content_length(suite_server):
    # the server cannot fix the length: it must close so the client notices
    data = suite_server.request(
        build_request("GET", "/_t/cl?declared=20&send=5"), timeout=10
    )
    head, rest = _head_and_rest(data)
    assert rest == b"01234"
    resp = parse_response(data)
    assert not resp.complete


def test_write_callable(suite_server):
    resp = _get(suite_server, "/_t/write")
    assert resp.status == 200
    assert resp.body == b"abc"
    assert resp.complete


def test_write_callable_with_content_length(suite_server):
    resp = _get(suite_server, "/_t/write?cl=3")
    assert resp.status == 200
    assert resp.header("Content-Length") == "3"
    assert resp.body == b"abc"


# -- bodyless responses ------------------------------------------------------


@pytest.mark.parametrize("path", ["/_t/hello", "/_t/hello_nocl", "/_t/chunked", "/"])
def test_head_has_no_body(suite_server, path):
    data = suite_server.request(build_request("HEAD", path))
    head, rest = _head_and_rest(data)
    assert head.startswith(b"HTTP/1.1 200"), data[:200]
    assert rest == b"", data
    # no chunked framing announced for a body that is not sent
    assert b"\r\ntransfer-encoding: chunked" not in head.lower()


def test_head_keeps_content_length(suite_server):
    resp = _get(suite_server, "/_t/hello", method="HEAD")
    assert resp.header("Content-Length") == "5"


@pytest.mark.parametrize("code", ["204", "304"])
def test_204_304_have_no_body(suite_server, code):
    data = suite_server.request(build_request("GET", f"/_t/nobody?code={code}"))
    head, rest = _head_and_rest(data)
    assert head.startswith(f"HTTP/1.1 {code} ".encode()), data[:200]
    assert rest == b"", data
    lhead = head.lower()
    assert b"transfer-encoding" not in lhead
    assert b"should-not-appear" not in data


# -- file_wrapper ------------------------------------------------------------


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("files") / "blob.bin"
    content = os.urandom(300_000) + bytes(range(256))
    p.write_bytes(content)
    return p, content


@pytest.mark.parametrize("kind", ["file", "bytesio"])
@pytest.mark.parametrize("with_cl", [False, True])
def test_file_wrapper_bytes_exact(suite_server, data_file, kind, with_cl):
    path, content = data_file
    target = f"/_t/file?kind={kind}&path={quote(str(path))}&blksize=4096"
    if with_cl:
        target += f"&cl={len(content)}"
    resp = _get(suite_server, target)
    assert resp.status == 200
    assert resp.complete
    assert len(resp.body) == len(content)
    assert resp.body == content


@pytest.mark.parametrize("kind", ["file", "bytesio"])
def test_file_wrapper_honours_content_length(suite_server, data_file, kind):
    path, content = data_file
    target = f"/_t/file?kind={kind}&path={quote(str(path))}&cl=1000"
    data = suite_server.request(build_request("GET", target))
    head, rest = _head_and_rest(data)
    assert rest == content[:1000]


@pytest.mark.parametrize("kind", ["file", "bytesio"])
def test_file_wrapper_starts_at_current_offset(suite_server, data_file, kind):
    path, content = data_file
    target = f"/_t/file?kind={kind}&path={quote(str(path))}&offset=12345"
    resp = _get(suite_server, target)
    assert resp.body == content[12345:]


@pytest.mark.parametrize(
    "args, env, sendfile",
    [
        ((), None, True),
        (("--no-sendfile",), None, False),
        ((), {"SENDFILE": "0"}, False),
        (("-k", "gthread", "--no-sendfile"), None, False),
        (("-k", "gevent", "--no-sendfile"), None, False),
    ],
    ids=["default", "no-sendfile", "SENDFILE=0", "gthread", "gevent"],
)
def test_no_sendfile_reads_through_the_file_wrapper(
    server_factory, tmp_path, args, env, sendfile
):
    """gunicorn's --no-sendfile (or SENDFILE=0): a wsgi.file_wrapper response
    is read through the file object, not sent from its descriptor."""
    path = tmp_path / "text.txt"
    content = b"hello, file\n" * 20_000
    path.write_bytes(content)
    srv = server_factory("tests.apps.suite:app", *args, env=env)
    target = f"/_t/file?kind=upper&path={quote(str(path))}&offset=6"
    resp = _get(srv, target)
    assert resp.status == 200
    assert resp.body == (content[6:] if sendfile else content[6:].upper())


def test_file_wrapper_http10(suite_server, data_file):
    path, content = data_file
    resp = _get(suite_server, f"/_t/file?path={quote(str(path))}", version="HTTP/1.0")
    assert resp.body == content


def test_file_wrapper_head(suite_server, data_file):
    path, content = data_file
    data = suite_server.request(
        build_request("HEAD", f"/_t/file?path={quote(str(path))}&cl={len(content)}")
    )
    head, rest = _head_and_rest(data)
    assert rest == b""


# -- app-supplied status and headers ---------------------------------------


BAD_STATUS = ["crlf", "lf", "short", "alpha", "nospace", "fourdigit", "nul", "empty"]


@pytest.mark.parametrize("which", BAD_STATUS)
def test_bad_status_gives_500_and_nothing_of_it(suite_server, which):
    data = suite_server.request(build_request("GET", f"/_t/bad_status?which={which}"))
    resp = parse_response(data)
    assert resp.status == 500, data[:300]
    assert b"Injected" not in data
    assert b"X-Injected" not in data
    assert data.count(b"\nHTTP/1.") == 0  # one response head only
    assert resp.complete and resp.rest == b""


BAD_HEADERS = [
    "name_crlf",
    "name_lf",
    "value_crlf",
    "value_lf",
    "value_cr",
    "value_nul",
    "name_space",
    "name_colon",
    "name_empty",
    "name_nul",
]


@pytest.mark.parametrize("which", BAD_HEADERS)
def test_bad_header_gives_500_and_nothing_of_it(suite_server, which):
    data = suite_server.request(build_request("GET", f"/_t/bad_header?which={which}"))
    resp = parse_response(data)
    assert resp.status == 500, data[:300]
    assert b"Injected" not in data
    assert b"X-Bad" not in data


def test_hop_by_hop_headers_from_app_dropped(suite_server):
    resp = _get(suite_server, "/_t/hop")
    assert resp.status == 200
    assert resp.header("X-Kept") == "yes"
    assert resp.header("Keep-Alive") is None
    assert resp.header("Proxy-Authenticate") is None
    assert resp.header("Upgrade") is None
    assert [v.lower() for v in resp.header_list("Connection")] == ["close"]
    assert resp.body == b"ok"


def test_date_and_server_headers(suite_server):
    before = time.time()
    resp = _get(suite_server, "/_t/hello")
    assert resp.header("Server")
    date = resp.header("Date")
    assert date and re.match(
        r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$", date
    ), date
    ts = email.utils.parsedate_to_datetime(date).timestamp()
    assert before - 2 <= ts <= time.time() + 2
    assert len(resp.header_list("Date")) == 1
    assert len(resp.header_list("Server")) == 1


# -- app errors --------------------------------------------------------------


def test_exception_before_start_response_is_500(suite_server):
    mark = suite_server.log_mark()
    resp = _get(suite_server, "/_t/exc_before")
    assert resp.status == 500
    assert resp.header("Connection", "").lower() == "close"
    assert b"boom-before" not in resp.raw  # no traceback to the client
    suite_server.wait_for_log(r"boom-before-start-response", since=mark)


@pytest.mark.parametrize("cl", ["", "100"])
def test_exception_after_head_sent_closes_without_completing(suite_server, cl):
    mark = suite_server.log_mark()
    data = suite_server.request(
        build_request("GET", f"/_t/exc_after?cl={cl}"), timeout=10
    )
    resp = parse_response(data)
    assert resp.status == 200  # the head was already out
    assert data.count(b"\nHTTP/1.") == 0  # no second (500) head after the first
    assert not resp.complete, data  # chunked not terminated / length not met
    assert resp.body.startswith(b"first-chunk") or resp.body == b""
    suite_server.wait_for_log(r"boom-after-head", since=mark)


def test_exc_info_before_body_replaces_status(suite_server):
    resp = _get(suite_server, "/_t/exc_info")
    assert resp.status == 500
    assert resp.body == b"handled"


def test_exc_info_after_head_reraises(suite_server):
    mark = suite_server.log_mark()
    data = suite_server.request(build_request("GET", "/_t/exc_info_after"), timeout=10)
    resp = parse_response(data)
    assert resp.status == 200
    assert b"must-not-be-sent" not in data
    assert not resp.complete
    suite_server.wait_for_log(r"late problem", since=mark)


def test_start_response_twice_without_exc_info_is_an_error(suite_server):
    data = suite_server.request(build_request("GET", "/_t/double_start"))
    resp = parse_response(data)
    assert resp.status == 500
    assert b"must-not-be-sent" not in data


# -- close() -------------------------------------------------------------------


def test_close_called_after_normal_response(suite_server, tmp_path):
    marker = tmp_path / "closed"
    resp = _get(
        suite_server, f"/_t/stream?chunks=3&size=10&close_file={quote(str(marker))}"
    )
    assert resp.body == b"x" * 30
    assert wait_until(marker.exists, 10), "iterable close() not called"


def test_close_called_when_client_disconnects(suite_server, tmp_path):
    marker = tmp_path / "closed"
    target = f"/_t/stream?chunks=100000&size=65536&close_file={quote(str(marker))}"
    s = suite_server.connect()
    try:
        s.sendall(build_request("GET", target))
        got = b""
        while len(got) < 200_000:
            b = s.recv(65536)
            assert b, "server closed before streaming"
            got += b
    finally:
        # RST rather than FIN, like a client that went away
        s.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
        s.close()
    assert wait_until(marker.exists, 15), (
        "iterable close() not called after the client disconnected\n"
        + suite_server.log_tail()
    )
    # and the server is still serving
    assert _get(suite_server, "/_t/hello").status == 200


def test_no_wsgiref_validator_complaints(suite_server):
    # validator-wrapped apps complain on stderr when close() is skipped etc.
    for path in (
        "/_t/hello",
        "/_t/hello_nocl",
        "/_t/chunked",
        "/_t/exc_info",
        "/_t/nobody?code=204",
    ):
        _get(suite_server, path)
        _get(suite_server, path, method="HEAD")
    log = suite_server.log_text()
    assert "Iterator garbage collected without being closed" not in log
    assert "wsgiref.validate" not in log, suite_server.log_tail()
