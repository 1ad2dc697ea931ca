"""PEP 3333 environ as gunicorn builds it, seen by the echo app over a socket."""

import socket

import pytest

from tests.support.server import build_request, parse_response


def _env(srv, raw):
    return srv.echo(raw)["environ"]


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH", "-BLARGH"])
def test_request_method(suite_server, method):
    env = _env(suite_server, build_request(method, "/m"))
    assert env["REQUEST_METHOD"] == method


def test_path_query_raw_uri(suite_server):
    env = _env(suite_server, build_request("GET", "/a/b%20c?x=1&y=%20z#frag"))
    assert env["PATH_INFO"] == "/a/b c"
    assert env["QUERY_STRING"] == "x=1&y=%20z"  # raw, not decoded
    assert env["RAW_URI"] == "/a/b%20c?x=1&y=%20z#frag"
    assert env["SCRIPT_NAME"] == ""


def test_path_info_percent_decoded_as_latin1(suite_server):
    # PEP 3333: PATH_INFO is the unquoted bytes decoded as latin-1
    env = _env(suite_server, build_request("GET", "/caf%C3%A9/%2F/%ff"))
    assert env["PATH_INFO"] == "/caf\u00c3\u00a9///\u00ff"


def test_raw_utf8_in_target_is_latin1(suite_server):
    raw = b"GET /\xc3\xa0%20k HTTP/1.0\r\n\r\n"
    env = _env(suite_server, raw)
    assert env["RAW_URI"] == "/\u00c3\u00a0%20k"
    assert env["PATH_INFO"] == "/\u00c3\u00a0 k"


def test_double_slash_path_kept(suite_server):
    env = _env(suite_server, build_request("GET", "//x//y?q"))
    assert env["PATH_INFO"] == "//x//y"
    assert env["QUERY_STRING"] == "q"


def test_absolute_form_target(suite_server):
    env = _env(suite_server, build_request("GET", "http://example.com/foo?q=1"))
    assert env["PATH_INFO"] == "/foo"
    assert env["QUERY_STRING"] == "q=1"
    assert env["RAW_URI"] == "http://example.com/foo?q=1"


@pytest.mark.parametrize("version", ["HTTP/1.0", "HTTP/1.1"])
def test_server_protocol(suite_server, version):
    env = _env(suite_server, build_request("GET", "/", version=version))
    assert env["SERVER_PROTOCOL"] == version


def test_server_name_port_from_listener_not_host(suite_server):
    env = _env(suite_server, build_request("GET", "/", host="example.com:8080"))
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(suite_server.port)
    assert env["HTTP_HOST"] == "example.com:8080"


def test_remote_addr_and_port(suite_server):
    with suite_server.connect() as s:
        local_port = s.getsockname()[1]
        s.sendall(build_request("GET", "/"))
        s.shutdown(socket.SHUT_WR)
        from tests.support.server import recv_all

        resp = parse_response(recv_all(s))
    env = resp.json()["environ"]
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"] == str(local_port)


def test_content_type_and_length_without_http_prefix(suite_server):
    raw = build_request(
        "POST", "/", [("Content-Type", "text/x-test"), ("Content-Length", "3")], b"abc"
    )
    env = _env(suite_server, raw)
    assert env["CONTENT_TYPE"] == "text/x-test"
    assert env["CONTENT_LENGTH"] == "3"
    assert "HTTP_CONTENT_TYPE" not in env
    assert "HTTP_CONTENT_LENGTH" not in env


def test_repeated_headers_joined_with_comma(suite_server):
    raw = build_request(
        "GET", "/", [("X-A", "1"), ("X-B", "q"), ("x-a", "2"), ("X-A", "3")]
    )
    env = _env(suite_server, raw)
    assert env["HTTP_X_A"] == "1,2,3"
    assert env["HTTP_X_B"] == "q"


def test_header_names_with_underscore_dropped(suite_server):
    raw = build_request(
        "GET", "/", [("X-Foo", "dash"), ("X_Foo", "underscore"), ("Y_Z", "1")]
    )
    env = _env(suite_server, raw)
    assert env["HTTP_X_FOO"] == "dash"
    assert "HTTP_Y_Z" not in env


def test_header_value_whitespace_trimmed(suite_server):
    raw = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: \t  v a l \t \r\n\r\n"
    env = _env(suite_server, raw)
    assert env["HTTP_X_PAD"] == "v a l"


def test_header_value_obs_text_latin1(suite_server):
    raw = b"GET / HTTP/1.1\r\nHost: x\r\nX-Value: caf\xc3\xa9\r\n\r\n"
    env = _env(suite_server, raw)
    assert env["HTTP_X_VALUE"] == "caf\u00c3\u00a9"


def test_wsgi_keys(suite_server):
    env = _env(suite_server, build_request("GET", "/"))
    assert env["wsgi.version"] == [1, 0]
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.multithread"] is False  # sync worker
    assert env["wsgi.multiprocess"] is True  # -w 2
    assert env["wsgi.run_once"] is False
    assert env["wsgi.file_wrapper.present"] is True
    assert "wsgi.input" in env and "wsgi.errors" in env
    assert env.get("wsgi.input_terminated") is True  # gunicorn sets it
    assert env.get("SERVER_SOFTWARE")


def test_wsgi_multiprocess_false_with_one_worker(server_factory):
    srv = server_factory("tests.apps.echo:app", "-w", "1")
    env = _env(srv, build_request("GET", "/"))
    assert env["wsgi.multiprocess"] is False


def test_environ_passes_wsgiref_validator(suite_server):
    # echo_validate=1 wraps the echo app in wsgiref.validate.validator
    resp = suite_server.fetch(
        build_request("GET", "/v?echo_validate=1&echo_mode=readn")
    )
    assert resp.status == 200, (resp.raw[:300], suite_server.log_tail())


def test_script_name_from_environment(server_factory):
    srv = server_factory("tests.apps.echo:app", env={"SCRIPT_NAME": "/app"})
    env = _env(srv, build_request("GET", "/app/foo/bar?x=1"))
    assert env["SCRIPT_NAME"] == "/app"
    assert env["PATH_INFO"] == "/foo/bar"
    assert env["QUERY_STRING"] == "x=1"
    assert env["RAW_URI"] == "/app/foo/bar?x=1"
