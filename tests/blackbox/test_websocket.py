"""An app that takes the connection over, as WebSocket libraries do on
gunicorn: ``environ["gunicorn.socket"]`` on a request with an Upgrade header,
and StopIteration from the app meaning "close the connection" (gunicorn's
protocol, which Flask-Sock and simple-websocket speak)."""

import socket
import threading

import pytest

from tests.support.server import build_request, recv_until, wait_until

RAW = "tests.apps.websocket_app:raw"
FLASK = "tests.apps.websocket_app:flask_app"
UPGRADE = [("Connection", "Upgrade"), ("Upgrade", "lines")]
WORKERS = {
    "sync": (),
    "gthread": ("-k", "gthread", "--threads", "4"),
    "gevent": ("-k", "gevent"),
}


def no_errors(srv):
    log = srv.log_text()
    assert "Traceback" not in log and "[ERROR]" not in log, srv.log_tail()


@pytest.mark.parametrize("worker", WORKERS)
def test_an_app_takes_the_connection_over(server_factory, worker):
    srv = server_factory(RAW, *WORKERS[worker])
    with srv.connect() as s:
        s.sendall(build_request("GET", "/lines", UPGRADE))
        head = recv_until(s, b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        for line in (b"one\n", b"two\n"):
            s.sendall(line)
            assert recv_until(s, b"\n") == line
        s.sendall(b"bye\n")
        assert recv_until(s, b"\n") == b"bye\n"
        assert s.recv(100) == b""  # the server closed it after StopIteration
    # and serves on: a plain request gets no socket
    resp = srv.fetch(build_request("GET", "/"))
    assert (resp.status, resp.body) == (200, b"no socket")
    no_errors(srv)


def test_an_upgrade_request_not_taken_over_is_served_as_any(server_factory):
    """The app's socket shares the connection's descriptor, but not blocking
    mode: a large response to a client that does not read waits in poll
    (the GIL released), so the worker's other requests go on."""
    srv = server_factory(RAW, *WORKERS["gthread"], "-w", "1")
    stalled = srv.connect()
    try:
        stalled.sendall(build_request("GET", "/big", UPGRADE))
        recv_until(stalled, b"\r\n\r\n")  # the head left; then it stops reading
        for _ in range(3):
            resp = srv.fetch(build_request("GET", "/"), timeout=5)
            assert (resp.status, resp.body) == (200, b"no socket")
    finally:
        stalled.close()
    no_errors(srv)


def test_a_plain_request_on_the_same_server_keeps_its_connection(server_factory):
    """Only Upgrade requests see gunicorn.socket; the others keep alive."""
    srv = server_factory(RAW, *WORKERS["gthread"])
    with srv.connect() as s:
        for _ in range(3):
            s.sendall(build_request("GET", "/"))
            assert recv_until(s, b"no socket").startswith(b"HTTP/1.1 200 OK")


def close(ws):
    """Close a client the server has not closed (after bye it has: its close
    frame ends the client's reader thread, which closes the client's socket;
    a close() racing with that sees ConnectionClosed or EBADF)."""
    from simple_websocket import ConnectionClosed

    if ws.connected:
        try:
            ws.close()
        except (ConnectionClosed, OSError):
            pass


@pytest.fixture
def ws_client():
    # flask-sock (the server's side) and simple-websocket are in the test extra
    from simple_websocket import Client

    return Client


@pytest.mark.parametrize("worker", WORKERS)
def test_flask_sock_echo(server_factory, ws_client, worker):
    """Flask-Sock as its users run it on gunicorn (a real WebSocket: wsproto
    handshake and frames, its reader thread on the taken-over socket)."""
    srv = server_factory(FLASK, *WORKERS[worker])
    ws = ws_client.connect(f"ws://127.0.0.1:{srv.port}/ws")
    try:
        for text in ("hello", "é" * 1000, "bye"):
            ws.send(text)
            assert ws.receive(timeout=5) == text
        # the route returned after bye: Flask-Sock closed the WebSocket
        assert wait_until(lambda: not ws.connected, 5)
        assert ws.close_reason == 1000
    finally:
        close(ws)
    assert srv.fetch(build_request("GET", "/hello")).body == b"hello"
    no_errors(srv)


def test_flask_sock_session_beside_plain_requests(server_factory, ws_client):
    """gthread: an open WebSocket holds one pool thread, not the worker."""
    srv = server_factory(FLASK, *WORKERS["gthread"], "-w", "1")
    ws = ws_client.connect(f"ws://127.0.0.1:{srv.port}/ws")
    try:
        ws.send("ping")
        assert ws.receive(timeout=5) == "ping"
        got = []

        def plain():
            got.append(srv.fetch(build_request("GET", "/hello")).body)

        threads = [threading.Thread(target=plain) for _ in range(5)]
        for t in threads:
            t.start()
        assert wait_until(lambda: len(got) == 5, 10), got
        ws.send("bye")
        assert ws.receive(timeout=5) == "bye"
        assert wait_until(lambda: not ws.connected, 5)
    finally:
        close(ws)
    assert got == [b"hello"] * 5
    no_errors(srv)


def test_stop_iteration_without_the_socket_closes_quietly(server_factory, tmp_path):
    """gunicorn's rule holds for any app: StopIteration from the call closes
    the connection with nothing sent, and is not an error."""
    app = tmp_path / "stopapp.py"
    app.write_text("def app(environ, start_response):\n    raise StopIteration\n")
    srv = server_factory("stopapp:app", "--pythonpath", str(tmp_path))
    with srv.connect() as s:
        s.sendall(build_request("GET", "/"))
        s.settimeout(5)
        assert s.recv(100) == b""
    no_errors(srv)
    assert isinstance(srv.connect(), socket.socket)  # still accepting
