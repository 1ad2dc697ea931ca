"""gunicorn's request corpus (../shared/conformance/gunicorn-requests), replayed
over real sockets against ``tests.apps.echo:conformance_app`` and through the
engine's parser (``_cserver.parse_requests``).

- One server per distinct set of ``cfg.set()`` flags (cases are ordered so each
  configuration starts once).
- A case whose setting the CLI does not accept FAILS naming the setting: it
  is a missing feature, not a case to skip (conformance README).
- Valid cases: what the app saw equals ``request`` (the sync worker answers only
  the first of pipelined requests; the whole list is checked at engine level).
- Invalid cases: the README's wire outcome table.
- Engine level: every valid case whose settings parse_requests() takes gives
  the expected requests, and the same result fed whole, byte by byte and in
  7-byte pieces (picohttpparser-style).
"""

from __future__ import annotations

import re

import pytest

from tests.support import corpus
from tests.support.corpus import (
    OUTCOME_400,
    OUTCOME_431,
    OUTCOME_BODY_FAILS,
    OUTCOME_CLOSED,
    PARSER_KWARGS,
    expected_environ_headers,
    path_info_of,
)
from tests.support.parsed import normalize
from tests.support.server import Server, ServerStartError, parse_response

CASES = corpus.load_cases()

if not CASES:
    pytest.skip(
        f"conformance corpus not found at {corpus.CORPUS_DIR} "
        "(a plain clone has no ../shared; see the conformance README)",
        allow_module_level=True,
    )

APP = "tests.apps.echo:conformance_app"


def _ids(cases):
    return [c.name for c in cases]


WIRE_CASES = sorted(CASES, key=lambda c: (c.flag_key, c.name))
VALID = [c for c in CASES if c.kind == "valid"]
INVALID = [c for c in CASES if c.kind == "invalid"]
PARSER_VALID = [c for c in VALID if set(c.settings) <= PARSER_KWARGS]
PARSER_INVALID = [c for c in INVALID if set(c.settings) <= PARSER_KWARGS]


def _declared_length(req: dict) -> int | None:
    for name, value in req["headers"]:
        if name == "CONTENT-LENGTH":
            return int(value)
    return None


def _truncated(case) -> bool:
    """True if the case's (only/first) request declares more body than the
    .http file holds (valid/099: gunicorn's LengthReader returns a short body at
    EOF; DESIGN.md makes that an error for the app's read)."""
    first = case.expected[0]
    n = _declared_length(first)
    return (
        n is not None and n > len(first["body"]) and case.data.endswith(first["body"])
    )


# -- servers, one per configuration ------------------------------------------------


class _Pool:
    """Keeps the server of the current configuration; starting another one
    stops the previous (cases are sorted by configuration)."""

    def __init__(self, log_root):
        self.log_root = log_root
        self.key = None
        self.server: Server | None = None
        self.error: str | None = None
        self.n = 0

    def get(self, case) -> Server:
        if case.flag_key != self.key:
            self.close()
            self.key = case.flag_key
            try:
                args = case.cli_args()
            except KeyError as e:
                self.error = f"no CLI flag known for setting {e.args[0]!r}"
                pytest.fail(self.error)
            self.n += 1
            d = self.log_root / f"cfg{self.n}"
            d.mkdir()
            srv = Server(APP, *args, log_dir=d)
            try:
                srv.start()
            except ServerStartError as e:
                names = ", ".join(
                    f"{k}={v!r}" for k, v in sorted(case.settings.items())
                )
                rc = srv.proc.returncode if srv.proc else None
                if rc == 2:
                    self.error = f"missing setting(s) {names}: the CLI rejected {args} (exit 2)\n{e}"  # noqa: E501
                else:
                    self.error = f"server with settings [{names}] args {args} did not start:\n{e}"  # noqa: E501
            else:
                self.server = srv
        if self.error:
            pytest.fail(self.error)
        return self.server

    def close(self):
        if self.server is not None:
            self.server.stop()
        self.server, self.error, self.key = None, None, None


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    p = _Pool(tmp_path_factory.mktemp("conformance"))
    yield p
    p.close()


# -- over the socket ---------------------------------------------------------------


def _check_valid_wire(case, data: bytes, srv: Server):
    exp = case.expected[0]
    assert data, f"{case.name}: connection closed without a response\n{srv.log_tail()}"
    resp = parse_response(data)
    assert resp.status == 200, (
        f"{case.name}: status {resp.status} {resp.reason}\n{data[:300]!r}\n{srv.log_tail()}"  # noqa: E501
    )
    out = resp.json()
    env = out["environ"]
    u = exp["uri"]
    assert env["REQUEST_METHOD"] == exp["method"]
    assert env["RAW_URI"] == u["raw"]
    pi = path_info_of(u)
    if pi is not None:
        assert env["PATH_INFO"] == pi
    assert env["QUERY_STRING"] == u["query"]
    assert env["SERVER_PROTOCOL"] == "HTTP/%d.%d" % exp["version"]  # noqa: UP031
    seen = {
        k: v
        for k, v in env.items()
        if k.startswith("HTTP_")
        or (k in ("CONTENT_TYPE", "CONTENT_LENGTH") and v != "")
    }
    assert seen == expected_environ_headers(exp["headers"])
    body = out["body"].encode("latin-1")
    if _truncated(case):
        # short of Content-Length at EOF: a read error (DESIGN.md), after a
        # prefix of the bytes that came (the failing read may hold the rest)
        assert exp["body"].startswith(body)
        assert out["read_error"], f"{case.name}: truncated body read as complete"
    else:
        assert out["read_error"] is None, out["read_error"]
        assert body == exp["body"]


def _in_trailers(case) -> bool:
    """The fault is a forbidden trailer field (after the chunked body): the
    server can only notice it while the app reads the body, exactly like a bad
    chunk. gunicorn answers 400 there because the parse error raised by the
    app's read propagates; our echo app reports the failed read instead, so the
    "body read fails" outcome applies (a 400 remains correct)."""
    return (
        case.kind == "invalid"
        and case.expected == "InvalidHeaderName"
        and b"Transfer-Encoding: chunked" in case.data
        and b"\r\n0\r\n" in case.data
    )


def _check_invalid_wire(case, data: bytes, srv: Server):
    exc = case.expected
    ctx = f"{case.name} ({exc}): got {data[:300]!r}\n{srv.log_tail()}"
    if exc in OUTCOME_CLOSED:
        assert data == b"", ctx
        return
    if (exc in OUTCOME_400 or exc in OUTCOME_431) and not _in_trailers(case):
        assert data, "closed without a response: " + ctx
        resp = parse_response(data)
        assert resp.status == (431 if exc in OUTCOME_431 else 400), ctx
        assert resp.header("Connection", "").lower() == "close", ctx
        return
    assert exc in OUTCOME_BODY_FAILS or _in_trailers(case), f"unknown outcome {exc}"
    if not data:
        return  # the connection closed: fine
    resp = parse_response(data)
    if resp.status == 200:
        # the app ran: its body read must have failed
        assert resp.json()["read_error"], "malformed chunked body read as valid: " + ctx
    else:
        assert resp.status in (400, 500), ctx


@pytest.mark.parametrize("case", WIRE_CASES, ids=_ids(WIRE_CASES))
def test_wire(pool, case):
    srv = pool.get(case)
    data = srv.request(case.data, timeout=10)
    if case.kind == "valid":
        _check_valid_wire(case, data, srv)
    else:
        _check_invalid_wire(case, data, srv)
    assert srv.alive(), srv.log_tail()


# -- engine level (parse_requests) --------------------------------------------------


def _normalize(results):
    return normalize(results, keep_reason=True)


def _parse(case, chunk=0):
    from cunicorn import _cserver

    kw = {k: v for k, v in case.settings.items() if k in PARSER_KWARGS}
    return _normalize(_cserver.parse_requests(case.data, chunk=chunk, **kw))


@pytest.mark.parametrize("case", PARSER_VALID, ids=_ids(PARSER_VALID))
def test_parser_valid(case):
    got = _parse(case)
    n = len(case.expected)
    if _truncated(case):
        # headers as expected; the body cannot complete (see _truncated)
        assert got, "no result"
        first = got[0]
        if "error" not in first:
            pytest.fail(
                f"{case.name}: body shorter than Content-Length accepted: {first!r:.300}"  # noqa: E501
            )
        return
    assert len(got) >= n, f"expected {n} request(s), got {got!r:.500}"
    for i, (g, e) in enumerate(zip(got[:n], case.expected)):
        assert "error" not in g, f"request {i}: {g}"
        assert g["method"] == e["method"], i
        assert g["uri"] == e["uri"]["raw"], i
        assert g["version"] == e["version"], i
        assert g["headers"] == e["headers"], i
        assert g["body"] == e["body"], i


@pytest.mark.parametrize("chunk", [1, 7])
@pytest.mark.parametrize("case", PARSER_VALID, ids=_ids(PARSER_VALID))
def test_parser_chunked_same_as_whole(case, chunk):
    assert _parse(case, chunk=chunk) == _parse(case)


@pytest.mark.parametrize("case", PARSER_INVALID, ids=_ids(PARSER_INVALID))
def test_parser_invalid(case):
    got = _parse(case)
    exc = case.expected
    errors = [r for r in got if "error" in r]
    if exc in OUTCOME_CLOSED:
        # incomplete request at EOF: no request, and no error response either way
        assert not [r for r in got if "error" not in r], got
        return
    assert errors, f"{case.name} ({exc}) parsed without error: {got!r:.500}"
    status = errors[0]["error"]
    if exc in OUTCOME_431:
        assert status == 431, errors[0]
    elif exc == "ChunkMissingTerminator":
        # the data ends before the last CRLF: "incomplete at EOF" (0) is right too
        assert status in (0, 400), errors[0]
    elif exc in OUTCOME_400 or exc in OUTCOME_BODY_FAILS:
        assert status == 400, errors[0]
    # nothing after the failed request
    assert "error" in got[-1]


@pytest.mark.parametrize("chunk", [1, 7])
@pytest.mark.parametrize("case", PARSER_INVALID, ids=_ids(PARSER_INVALID))
def test_parser_invalid_chunked_same_status(case, chunk):
    whole = _parse(case)
    pieces = _parse(case, chunk=chunk)
    strip = lambda rs: [  # noqa: E731
        {"error": r["error"]} if "error" in r else r for r in rs
    ]
    assert strip(pieces) == strip(whole)


def test_corpus_complete():
    assert len(CASES) == 137, len(CASES)
    assert len(VALID) == 63 and len(INVALID) == 74
    assert not re.search(rb"\\", b"".join(c.data for c in CASES))
