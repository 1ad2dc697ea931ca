"""The engine's parser (llhttp + guard layer) through
``cunicorn._cserver.parse_requests``: one test per rule of DESIGN.md's guard
layer. Every input is also fed byte by byte and in 7-byte pieces and must give
the same result (picohttpparser style)."""

from __future__ import annotations

import pytest
from cunicorn import _cserver

from tests.support.parsed import normalize


def _normalize(results):
    return normalize(results)


def parse(data: bytes, **kw):
    """parse_requests fed whole, byte by byte and in 7-byte chunks; asserts the
    three agree and returns the normalised result."""
    whole = _normalize(_cserver.parse_requests(data, **kw))
    for chunk in (1, 7):
        assert _normalize(_cserver.parse_requests(data, chunk=chunk, **kw)) == whole, (
            f"chunk={chunk} differs from whole"
        )
    return whole


def ok(data: bytes, n: int = 1, **kw):
    """Assert ``n`` requests parse without error; return them."""
    got = parse(data, **kw)
    assert len(got) == n and all("error" not in r for r in got), got
    return got


def err(data: bytes, status=400, **kw):
    """Assert parsing ends with an error of ``status`` (or one of a tuple)."""
    got = parse(data, **kw)
    assert got and "error" in got[-1], got
    statuses = status if isinstance(status, tuple) else (status,)
    assert got[-1]["error"] in statuses, got[-1]
    return got


def req(head: str, body: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode("latin-1") + body


SIMPLE = req("GET / HTTP/1.1\nHost: x\n\n")


def test_simple_request():
    (r,) = ok(b"GET /a?b=c HTTP/1.1\r\nHost: x\r\nX-Y: z\r\n\r\n")
    assert r == {
        "method": "GET",
        "uri": "/a?b=c",
        "version": (1, 1),
        "headers": [("HOST", "x"), ("X-Y", "z")],
        "body": b"",
    }


def test_empty_input_gives_nothing():
    assert parse(b"") == []


# -- limits ------------------------------------------------------------------------


def _line(length):
    fixed = len("GET /") + len(" HTTP/1.1")
    return f"GET /{'a' * (length - fixed)} HTTP/1.1"


def test_request_line_limit_default():
    ok((_line(4094) + "\r\n\r\n").encode())
    err((_line(4095) + "\r\n\r\n").encode(), 400)


def test_request_line_limit_without_crlf_yet():
    # the limit fires while the line is still incomplete
    err(_line(10000).encode(), 400)


def test_request_line_limit_kwarg():
    ok((_line(200) + "\r\n\r\n").encode(), limit_request_line=200)
    err((_line(201) + "\r\n\r\n").encode(), 400, limit_request_line=200)


def _field(total):
    return "X-Long: " + "v" * (total - len("X-Long: ") - 2) + "\r\n"


def test_field_size_limit_default():
    ok(("GET / HTTP/1.1\r\n" + _field(8190) + "\r\n").encode())
    err(("GET / HTTP/1.1\r\n" + _field(8191) + "\r\n").encode(), 431)


def test_field_size_limit_kwarg():
    ok(
        ("GET / HTTP/1.1\r\n" + _field(40) + "\r\n").encode(),
        limit_request_field_size=40,
    )
    err(
        ("GET / HTTP/1.1\r\n" + _field(41) + "\r\n").encode(),
        431,
        limit_request_field_size=40,
    )


def test_field_size_applies_to_name_too():
    name = "X" * 9000
    err(f"GET / HTTP/1.1\r\n{name}: v\r\n\r\n".encode(), 431)


def _fields(n):
    return "GET / HTTP/1.1\r\n" + "".join(f"X-{i}: {i}\r\n" for i in range(n)) + "\r\n"


def test_field_count_limit_default():
    ok(_fields(100).encode())
    err(_fields(101).encode(), 431)


def test_field_count_limit_kwarg():
    ok(_fields(3).encode(), limit_request_fields=3)
    err(_fields(4).encode(), 431, limit_request_fields=3)


def test_chunk_extension_is_capped():
    ext = ";x=" + "e" * 100_000
    body = f"5{ext}\r\nhello\r\n0\r\n\r\n".encode()
    err(req("POST / HTTP/1.1\nTransfer-Encoding: chunked\n\n", body), 400)


# -- versions ------------------------------------------------------------------------


@pytest.mark.parametrize("v", ["HTTP/1.0", "HTTP/1.1"])
def test_supported_versions(v):
    (r,) = ok(f"GET / {v}\r\n\r\n".encode())
    assert r["version"] == (1, int(v[-1]))


def test_http09_rejected():
    err(b"GET /\r\n\r\n", 400)


@pytest.mark.parametrize("v", ["HTTP/2.0", "HTTP/3.0", "HTTP/1.2", "HTTP/0.9"])
def test_other_versions_rejected(v):
    err(f"GET / {v}\r\n\r\n".encode(), (400, 505))


@pytest.mark.parametrize(
    "v", ["HTTP/1", "HTTP/1.10", "HTTP/01.1", "http/1.1", "HTTP/1.1 ", "FTP/1.1"]
)
def test_malformed_versions_rejected(v):
    err(f"GET / {v}\r\n\r\n".encode(), (400, 505))


def test_pri_preface_rejected():
    err(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", (400, 505))


# -- Transfer-Encoding / Content-Length ----------------------------------------

CHUNKED_BODY = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"


def test_chunked_body_decoded():
    (r,) = ok(req("POST / HTTP/1.1\nTransfer-Encoding: chunked\n\n", CHUNKED_BODY))
    assert r["body"] == b"hello world"
    assert ("TRANSFER-ENCODING", "chunked") in r["headers"]


@pytest.mark.parametrize(
    "te",
    ["gzip, chunked", "identity, chunked", "deflate,chunked", "CHUNKED", "Chunked"],
)
def test_te_list_ending_in_chunked(te):
    (r,) = ok(req(f"POST / HTTP/1.1\nTransfer-Encoding: {te}\n\n", CHUNKED_BODY))
    assert r["body"] == b"hello world"


def test_te_split_over_two_headers_ending_in_chunked():
    (r,) = ok(
        req(
            "POST / HTTP/1.1\nTransfer-Encoding: gzip\nTransfer-Encoding: chunked\n\n",
            CHUNKED_BODY,
        )
    )
    assert r["body"] == b"hello world"


@pytest.mark.parametrize("te", ["chunked, gzip", "chunked, identity"])
def test_te_not_ending_in_chunked(te):
    err(req(f"POST / HTTP/1.1\nTransfer-Encoding: {te}\n\n", CHUNKED_BODY), 400)


def test_te_in_http10():
    err(req("POST / HTTP/1.0\nTransfer-Encoding: chunked\n\n", CHUNKED_BODY), 400)


def test_te_with_content_length():
    err(
        req(
            "POST / HTTP/1.1\nContent-Length: 3\nTransfer-Encoding: chunked\n\n",
            CHUNKED_BODY,
        ),
        400,
    )
    err(
        req(
            "POST / HTTP/1.1\nTransfer-Encoding: chunked\nContent-Length: 3\n\n",
            CHUNKED_BODY,
        ),
        400,
    )


@pytest.mark.parametrize(
    "head",
    [
        "Transfer-Encoding: chunked, chunked",
        "Transfer-Encoding: chunked\nTransfer-Encoding: chunked",
        "Transfer-Encoding: identity, chunked, identity, chunked",
    ],
)
def test_chunked_twice(head):
    err(req(f"POST / HTTP/1.1\n{head}\n\n", CHUNKED_BODY), 400)


@pytest.mark.parametrize("te", ["foo", "foo, chunked", "x-custom"])
def test_unknown_coding_is_501(te):
    err(req(f"POST / HTTP/1.1\nTransfer-Encoding: {te}\n\n", CHUNKED_BODY), 501)


def test_nbsp_chunked_is_not_chunked():
    # gunicorn strips Unicode whitespace and takes "\xa0chunked" as chunked;
    # it is not the token "chunked": an error (400, or 501 as unknown coding)
    data = b"POST / HTTP/1.1\r\nTransfer-Encoding: \xa0chunked\r\n\r\n" + CHUNKED_BODY
    got = err(data, (400, 501))
    assert not any(r.get("body") == b"hello world" for r in got)


def test_te_with_leading_htab_value():
    # conformance invalid/chunked_02 in spirit: "\tchunked" + Content-Length
    err(
        b"POST / HTTP/1.1\r\nContent-Length: 12\r\nTransfer-Encoding: \tchunked\r\n\r\n"
        + CHUNKED_BODY,
        400,
    )


def test_identity_alone_does_not_smuggle():
    # gunicorn treats "identity" as "no body" and reads the body as the next
    # request: the smuggled request must never come out
    data = b"POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n"  # noqa: E501
    got = parse(data)
    assert not any(r.get("uri") == "/smuggled" for r in got), got


def test_identity_with_content_length_ok():
    (r,) = ok(
        req(
            "POST / HTTP/1.1\nTransfer-Encoding: identity\nContent-Length: 5\n\n",
            b"World",
        )
    )
    assert r["body"] == b"World"


@pytest.mark.parametrize("same", [True, False])
def test_duplicate_content_length(same):
    second = "5" if same else "6"
    err(
        req(
            f"POST / HTTP/1.1\nContent-Length: 5\nContent-Length: {second}\n\n",
            b"hello!",
        ),
        400,
    )


@pytest.mark.parametrize(
    "cl", ["-1", "+1", "-0", "0_1", "5, 5", "1 2", "0x5", "abc", " "]
)
def test_bad_content_length(cl):
    err(req(f"POST / HTTP/1.1\nContent-Length: {cl}\n\n", b"hello"), 400)


def test_content_length_body():
    (r,) = ok(req("POST / HTTP/1.1\nContent-Length: 5\n\n", b"hello"))
    assert r["body"] == b"hello"


@pytest.mark.parametrize("size", ["-5", "+5", "5 ", " 5", "5_0", "", "g", "0x5"])
def test_bad_chunk_size(size):
    body = f"{size}\r\nhello\r\n0\r\n\r\n".encode()
    err(req("POST / HTTP/1.1\nTransfer-Encoding: chunked\n\n", body), 400)


def test_chunk_missing_crlf_after_data():
    err(
        req(
            "POST / HTTP/1.1\nTransfer-Encoding: chunked\n\n", b"5\r\nhelloXX0\r\n\r\n"
        ),
        400,
    )


def test_chunk_size_leading_zeros_and_uppercase():
    (r,) = ok(
        req(
            "POST / HTTP/1.1\nTransfer-Encoding: chunked\n\n",
            b"0005\r\nhello\r\nA\r\n0123456789\r\n0\r\n\r\n",
        )
    )
    assert r["body"] == b"hello0123456789"


# -- header syntax -------------------------------------------------------------------


def test_obs_fold_rejected():
    err(b"GET / HTTP/1.1\r\nLong: one\r\n two\r\nHost: x\r\n\r\n", 400)
    err(b"GET / HTTP/1.1\r\nLong: one\r\n\ttwo\r\n\r\n", 400)


def test_fold_on_first_header_rejected():
    err(b"GET / HTTP/1.1\r\n folded: x\r\n\r\n", 400)


def test_empty_header_name_rejected():
    err(b"GET / HTTP/1.1\r\n: value\r\n\r\n", 400)


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\nHost: x\r\n\r\n",  # bare LF after the request line
        b"GET / HTTP/1.1\r\nHost: x\n\r\n",  # bare LF after a field
        b"GET / HTTP/1.1\r\nHost: x\r\n\n",  # bare LF as the final empty line
        b"GET / HTTP/1.1\rHost: x\r\n\r\n",  # bare CR after the request line
        b"GET / HTTP/1.1\r\nHost: x\rY: z\r\n\r\n",  # bare CR in a field value
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\r\n",  # bare CR in the final line
        b"GET / HTTP/1.1\r\nNewline: a\nContent-Length: 26\r\n\r\n",
    ],
)
def test_bare_cr_or_lf_rejected(data):
    err(data, 400)


@pytest.mark.parametrize(
    "name", ["Bad Name", "Bad\x00Name", "Bad(Name", "Content-Length\xdf", "X\x7f"]
)
def test_invalid_header_name_rejected(name):
    err(f"GET / HTTP/1.1\r\n{name}: v\r\n\r\n".encode("latin-1"), 400)


def test_space_before_colon_rejected():
    err(b"GET / HTTP/1.1\r\nContent-Length : 3\r\n\r\nxyz", 400)


@pytest.mark.parametrize("value", [b"a\x00b", b"a\x07b", b"a\x7fb", b"a\x1bb"])
def test_control_bytes_in_value_rejected(value):
    err(b"GET / HTTP/1.1\r\nX-V: " + value + b"\r\n\r\n", 400)


def test_value_whitespace_trimmed_and_obs_text_kept():
    (r,) = ok(b"GET / HTTP/1.1\r\nA: \t x y \t\r\nB:caf\xc3\xa9\r\nC:\r\n\r\n")
    assert r["headers"] == [("A", "x y"), ("B", "caf\u00c3\u00a9"), ("C", "")]


def test_header_names_upper_cased_in_wire_order_with_repeats():
    (r,) = ok(b"GET / HTTP/1.1\r\nx-a: 1\r\nX-B: 2\r\nX-a: 3\r\n\r\n")
    assert r["headers"] == [("X-A", "1"), ("X-B", "2"), ("X-A", "3")]


def test_header_names_with_underscore_dropped():
    (r,) = ok(
        b"GET / HTTP/1.0\r\nTransfer_Encoding: tricked\r\nContent-Length: 7\r\nContent_Length: -1E23\r\n\r\ntricked"  # noqa: E501
    )
    assert r["headers"] == [("CONTENT-LENGTH", "7")]
    assert r["body"] == b"tricked"


@pytest.mark.parametrize("name", ["Host", "Content-Type"])
def test_duplicate_singleton_headers_rejected(name):
    # gunicorn 26 (conformance invalid/041, 042)
    err(f"GET / HTTP/1.1\r\n{name}: a\r\n{name}: b\r\n\r\n".encode(), 400)


# -- trailers ------------------------------------------------------------------------


def test_trailers_do_not_reach_headers():
    body = b"5\r\nhello\r\n0\r\nX-Trailer: t\r\nVary: *\r\n\r\n"
    (r,) = ok(req("POST / HTTP/1.1\nTransfer-Encoding: chunked\n\n", body))
    assert r["body"] == b"hello"
    assert [k for k, _ in r["headers"]] == ["TRANSFER-ENCODING"]


@pytest.mark.parametrize(
    "name",
    ["Host", "Content-Length", "Transfer-Encoding", "Trailer", "Authorization", "TE"],
)
def test_forbidden_trailers(name):
    body = f"5\r\nhello\r\n0\r\n{name}: x\r\n\r\n".encode()
    err(req("POST / HTTP/1.1\nTransfer-Encoding: chunked\n\n", body), 400)


def test_trailer_size_limited():
    body = (
        b"5\r\nhello\r\n0\r\n"
        + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 8000) for i in range(200))
        + b"\r\n"
    )
    err(req("POST / HTTP/1.1\nTransfer-Encoding: chunked\n\n", body), (400, 431))


# -- methods -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method",
    ["GET", "-BLARGH", "ABC", "M" * 20, "PROPFIND", "X.Y_Z", "PURGE", "CONNECT"],
)
def test_methods_accepted(method):
    target = "x:1" if method == "CONNECT" else "/"
    (r,) = ok(f"{method} {target} HTTP/1.1\r\n\r\n".encode())
    assert r["method"] == method


@pytest.mark.parametrize(
    "method",
    [
        "get",
        "Get",
        "-blargh",
        "GE",
        "M" * 21,
        "GET:",
        "G(T",
        "GET\x00",
        "GET\xdf",
        "bla:rgh",
    ],
)
def test_methods_rejected(method):
    err(f"{method} / HTTP/1.1\r\n\r\n".encode("latin-1"), 400)


# -- request target ------------------------------------------------------------------


@pytest.mark.parametrize(
    "byte", [b"\x00", b"\x01", b"\x08", b"\x0b", b"\x1b", b"\x7f", b"\t"]
)
def test_control_bytes_in_target_rejected(byte):
    err(b"GET /a" + byte + b"b HTTP/1.1\r\n\r\n", 400)


@pytest.mark.parametrize(
    "line",
    [
        b"GET  / HTTP/1.1",  # two spaces
        b"GET / HTTP/1.1 ",  # trailing space
        b"GET HTTP/1.1",  # no target
        b" GET / HTTP/1.1",  # leading space
        b"GET * HTTP/1.1",  # asterisk only for OPTIONS
        b"GET foo/bar HTTP/1.1",  # relative
        b"GET example.com:443 HTTP/1.1",  # authority only for CONNECT
    ],
)
def test_bad_request_lines(line):
    err(line + b"\r\nHost: x\r\n\r\n", 400)


@pytest.mark.parametrize(
    "target",
    [
        "/",
        "/a%20b?c=d#e",
        "http://example.com/x",
        "//double",
        '/with_"quotes"',
        "/\xc3\xa0",
    ],
)
def test_targets_kept_raw(target):
    (r,) = ok(f"GET {target} HTTP/1.1\r\n\r\n".encode("latin-1"))
    assert r["uri"] == target


def test_options_asterisk_ok():
    (r,) = ok(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
    assert r["uri"] == "*"


# -- pipelining ----------------------------------------------------------------------


def test_pipelined_requests_in_order():
    data = (
        b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /2 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        + CHUNKED_BODY
        + b"PUT /3 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /4 HTTP/1.1\r\n\r\n"
    )
    got = ok(data, 4)
    assert [r["uri"] for r in got] == ["/1", "/2", "/3", "/4"]
    assert [r["body"] for r in got] == [b"", b"hello world", b"abc", b""]


def test_pipelined_error_stops_parsing():
    data = b"GET /1 HTTP/1.1\r\n\r\nBAD\r\n\r\nGET /3 HTTP/1.1\r\n\r\n"
    got = parse(data)
    assert len(got) == 2, got
    assert got[0]["uri"] == "/1"
    assert got[1]["error"] == 400


def test_body_that_looks_like_a_request_is_body():
    data = (
        b"GET /first HTTP/1.0\r\nContent-Length: 24\r\n\r\nGET /second HTTP/1.1\r\n\r\n"
    )
    (r,) = ok(data)
    assert r["body"] == b"GET /second HTTP/1.1\r\n\r\n"


def test_incomplete_request_is_not_returned():
    got = parse(b"GET / HTTP/1.1\r\nHost: x\r\n")
    assert not [r for r in got if "error" not in r], got


def test_truncated_body_is_not_a_short_success():
    got = parse(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
    assert not [r for r in got if "error" not in r], got
