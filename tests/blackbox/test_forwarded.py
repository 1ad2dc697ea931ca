"""What a front end (nginx) may tell the app, as gunicorn lets it: the scheme
(secure_scheme_headers, from forwarded_allow_ips peers), SCRIPT_NAME and the
other forwarder_headers (names with '_', from the same peers only), and the
environment's SCRIPT_NAME.  A unix socket's peer is trusted, as in gunicorn.
Every expectation here was checked against gunicorn 27 on the same requests."""

import pytest

from tests.support.server import build_request, start_server_cmd

APP = "tests.apps.echo:app"
KEYS = (
    "wsgi.url_scheme",
    "SCRIPT_NAME",
    "PATH_INFO",
    "HTTP_SCRIPT_NAME",
    "HTTP_PATH_INFO",
)


def environ(srv, target="/app/hello%20x?x=1", headers=()):
    resp = srv.fetch(build_request("GET", target, headers))
    assert resp.status == 200, (resp.status, resp.body[-300:])
    env = resp.json()["environ"]
    return {k: env.get(k) for k in KEYS}


def status_and_body(srv, target, headers=()):
    resp = srv.fetch(build_request("GET", target, headers))
    return resp.status, resp.body.decode("latin-1")


# -- the scheme ------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers, scheme",
    [
        ([], "http"),
        ([("X-Forwarded-Proto", "https")], "https"),
        ([("X-Forwarded-Protocol", "ssl")], "https"),
        ([("X-Forwarded-Ssl", "on")], "https"),
        ([("X-Forwarded-Proto", "HTTPS")], "http"),  # values match exactly
    ],
)
def test_scheme_from_a_trusted_front_end(server_factory, headers, scheme):
    srv = server_factory(APP)
    assert environ(srv, "/", headers)["wsgi.url_scheme"] == scheme


def test_scheme_headers_from_another_peer_are_ignored(server_factory):
    srv = server_factory(APP, "--forwarded-allow-ips", "10.0.0.1")
    env = environ(srv, "/", [("X-Forwarded-Proto", "https")])
    assert env["wsgi.url_scheme"] == "http"
    srv = server_factory(APP, "--forwarded-allow-ips", "*")
    assert environ(srv, "/", [("X-Forwarded-Proto", "https")])["wsgi.url_scheme"] == (
        "https"
    )


def test_contradictory_scheme_headers_are_a_400(server_factory):
    srv = server_factory(APP)
    headers = [("X-Forwarded-Proto", "https"), ("X-Forwarded-Ssl", "off")]
    status, body = status_and_body(srv, "/", headers)
    assert status == 400
    assert "Contradictory scheme headers" in body


# -- SCRIPT_NAME and the other forwarder headers ------------------------------


def test_script_name_header_from_a_trusted_front_end(server_factory):
    """nginx's ``proxy_set_header SCRIPT_NAME /app``: the app is mounted at
    /app; PATH_INFO is the rest of the path (decoded after the split)."""
    srv = server_factory(APP)
    env = environ(srv, headers=[("SCRIPT_NAME", "/app")])
    assert env["SCRIPT_NAME"] == "/app"
    assert env["PATH_INFO"] == "/hello x"
    assert env["HTTP_SCRIPT_NAME"] == "/app"
    # any case of the name; a trailing slash stays in SCRIPT_NAME
    env = environ(srv, headers=[("Script_Name", "/app/")])
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app/", "hello x")
    # an empty one is an empty SCRIPT_NAME
    env = environ(srv, headers=[("SCRIPT_NAME", "")])
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("", "/app/hello x")


def test_path_info_header_is_passed_on_but_does_not_move_the_path(server_factory):
    srv = server_factory(APP)
    env = environ(srv, headers=[("PATH_INFO", "/zzz")])
    assert (env["PATH_INFO"], env["HTTP_PATH_INFO"]) == ("/app/hello x", "/zzz")


def test_other_underscore_headers_are_dropped(server_factory):
    srv = server_factory(APP)
    resp = srv.fetch(build_request("GET", "/", [("X_Foo", "1"), ("X-Bar", "2")]))
    env = resp.json()["environ"]
    assert "HTTP_X_FOO" not in env
    assert env["HTTP_X_BAR"] == "2"


def test_script_name_the_path_does_not_start_with_is_a_500(server_factory):
    srv = server_factory(APP)
    status, body = status_and_body(srv, "/app/hello", [("SCRIPT_NAME", "/other")])
    assert status == 500
    assert (
        "Configuration problem: Request path &#x27;/app/hello&#x27; does not start"
        " with SCRIPT_NAME &#x27;/other&#x27;"
    ) in body
    srv.wait_for_log(
        r"\[WARNING\] Invalid request from ip=127\.0\.0\.1: Configuration problem"
    )
    assert environ(srv)["PATH_INFO"] == "/app/hello x"  # the worker goes on


def test_forwarder_headers_from_another_peer(server_factory):
    """Dropped (header_map=drop), or a 400 with header_map=refuse."""
    srv = server_factory(APP, "--forwarded-allow-ips", "10.0.0.1")
    env = environ(srv, headers=[("SCRIPT_NAME", "/app")])
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("", "/app/hello x")
    assert env["HTTP_SCRIPT_NAME"] is None
    srv = server_factory(
        APP, "--forwarded-allow-ips", "10.0.0.1", "--header-map", "refuse"
    )
    status, body = status_and_body(srv, "/app/hello", [("SCRIPT_NAME", "/app")])
    assert status == 400
    assert "Invalid header name" in body


def test_header_map_refuse_spares_a_trusted_forwarder_header(server_factory):
    srv = server_factory(APP, "--header-map", "refuse")
    env = environ(srv, headers=[("SCRIPT_NAME", "/app")])
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/hello x")
    status, _ = status_and_body(srv, "/", [("X_Foo", "1")])
    assert status == 400


def test_forwarder_headers_setting_names_them(server_factory):
    srv = server_factory(APP, "--forwarder-headers", "REMOTE_USER")
    resp = srv.fetch(
        build_request(
            "GET", "/app/x", [("REMOTE_USER", "alice"), ("SCRIPT_NAME", "/app")]
        )
    )
    env = resp.json()["environ"]
    assert env["HTTP_REMOTE_USER"] == "alice"
    assert "HTTP_SCRIPT_NAME" not in env  # no longer a forwarder header
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("", "/app/x")


# -- the environment's SCRIPT_NAME ---------------------------------------------


def test_environment_script_name_the_path_does_not_start_with_is_a_500(
    server_factory,
):
    srv = server_factory(APP, env={"SCRIPT_NAME": "/app"})
    env = environ(srv, "/app/foo")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/foo")
    status, body = status_and_body(srv, "/foo")
    assert status == 500
    assert "does not start with SCRIPT_NAME &#x27;/app&#x27;" in body
    # a trusted front end's header wins over the environment
    env = environ(srv, "/v2/foo", [("SCRIPT_NAME", "/v2")])
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/v2", "/foo")


# -- behind nginx on a unix socket ---------------------------------------------


def test_a_unix_socket_peer_is_trusted(server_factory, tmp_path):
    path = tmp_path / "app.sock"
    srv = server_factory(APP, "-b", f"unix:{path}", bind=False)
    assert srv.unix_path == str(path)
    resp = srv.fetch(
        build_request(
            "GET", "/app/x", [("X-Forwarded-Proto", "https"), ("SCRIPT_NAME", "/app")]
        )
    )
    assert resp.status == 200
    env = resp.json()["environ"]
    assert env["wsgi.url_scheme"] == "https"
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/x")
    assert env["REMOTE_ADDR"] == ""


@pytest.mark.parametrize("worker", ["gthread", "gevent"])
def test_every_worker_class_reads_the_front_ends_headers(server_factory, worker):
    srv = server_factory(APP, "-k", worker)
    env = environ(
        srv, headers=[("SCRIPT_NAME", "/app"), ("X-Forwarded-Proto", "https")]
    )
    assert (env["wsgi.url_scheme"], env["SCRIPT_NAME"], env["PATH_INFO"]) == (
        "https",
        "/app",
        "/hello x",
    )
    status, _ = status_and_body(srv, "/app/x", [("SCRIPT_NAME", "/other")])
    assert status == 500


# -- trusted peers: addresses and networks -----------------------------------------


@pytest.mark.parametrize(
    "allow, trusted",
    [
        ("127.0.0.0/8", True),
        ("10.0.0.0/8,127.0.0.1", True),
        ("127.0.0.2", False),
        ("127.0.0.0/31", True),
        ("127.0.0.2/31", False),
        ("10.0.0.0/8, ::1", False),
        ("0.0.0.0/0", True),
    ],
)
def test_forwarded_allow_ips_takes_networks(server_factory, allow, trusted):
    srv = server_factory(APP, "--forwarded-allow-ips", allow)
    env = environ(srv, "/", [("X-Forwarded-Proto", "https")])
    assert env["wsgi.url_scheme"] == ("https" if trusted else "http")


@pytest.mark.parametrize(
    "allow, trusted",
    [("::1", True), ("::/127", True), ("::2/127", False), ("127.0.0.1", False)],
)
def test_forwarded_allow_ips_over_ipv6(server_factory, allow, trusted):
    srv = server_factory(
        APP, "-b", "[::1]:0", "--forwarded-allow-ips", allow, bind=False
    )
    assert srv.host == "::1"
    env = environ(srv, "/", [("X-Forwarded-Proto", "https")])
    assert env["wsgi.url_scheme"] == ("https" if trusted else "http")


@pytest.mark.parametrize(
    "allow, status", [("127.0.0.1", 200), ("127.0.0.0/24", 200), ("10.0.0.0/8", 403)]
)
def test_proxy_allow_from_takes_networks(server_factory, allow, status):
    srv = server_factory(APP, "--proxy-protocol", "--proxy-allow-from", allow)
    raw = b"PROXY TCP4 192.0.2.7 198.51.100.1 5555 80\r\n" + build_request("GET", "/")
    resp = srv.fetch(raw)
    assert resp.status == status
    if status == 200:
        assert resp.json()["environ"]["REMOTE_ADDR"] == "192.0.2.7"


@pytest.mark.parametrize("setting", ["--forwarded-allow-ips", "--proxy-allow-from"])
def test_a_bad_address_names_the_setting_and_exits_2(setting):
    proc = start_server_cmd(APP, setting, "10.0.0.1/8")
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert f"argument {setting}: '10.0.0.1/8' is not an IP address or network" in (
        (out + err).decode()
    )


def test_a_bad_forwarded_allow_ips_from_the_environment_exits_1():
    proc = start_server_cmd(APP, env={"FORWARDED_ALLOW_IPS": "nope"})
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1
    assert "Invalid value for forwarded_allow_ips (its default comes from the " in (
        (out + err).decode()
    )
