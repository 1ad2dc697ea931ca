"""The gevent worker (-k gevent): greenlets on gevent's hub, one per connection.

Concurrency through patched code (time.sleep, sockets), slow clients and slow
readers, keep-alive, pipelining, worker_connections, graceful TERM, the
hub-blocked timeout, and the seed gevent config file served unchanged."""

import os
import re
import selectors
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time

import pytest

from tests.support.server import (
    REPO_ROOT,
    build_request,
    cpu_seconds,
    free_port,
    kill_and_wait,
    recv_all,
    recv_response,
    start_server_cmd,
    wait_until,
)

pytest.importorskip("gevent")
pytest.importorskip("greenlet")

from cunicorn import _cserver  # noqa: E402

if not hasattr(_cserver, "run_worker_gevent"):
    pytest.skip("built without the gevent worker", allow_module_level=True)

APP = "tests.apps.gevent_app:app"
SEED_CONFIG = REPO_ROOT.parent / "shared" / "seed-configs" / "gunicorn_gevent.py"


def gevent_server(factory, *args, **kw):
    return factory(APP, "-k", "gevent", *args, **kw)


def read_response(sock, timeout=5.0, buf=b""):
    """Read one response with a Content-Length body from ``sock``; return
    (status, headers dict lower-cased, body, bytes left over)."""
    resp, rest = recv_response(sock, timeout, buf)
    headers = {k.lower(): v for k, v in resp.headers}
    return resp.status, headers, resp.body, rest


def get(path, close=False):
    headers = [("Connection", "close")] if close else []
    return build_request("GET", path, headers=headers)


def fetch_many(port, paths, timeout=10.0):
    """Send one Connection: close request per path, all at once on separate
    connections; return (responses in order, seconds until the last one)."""
    t0 = time.monotonic()
    socks = []
    for p in paths:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        s.sendall(get(p, close=True))
        socks.append(s)
    sel = selectors.DefaultSelector()
    data = {}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        data[s] = b""
    left = len(socks)
    deadline = t0 + timeout
    while left and time.monotonic() < deadline:
        for key, _ in sel.select(max(0.0, deadline - time.monotonic())):
            chunk = key.fileobj.recv(65536)
            if chunk:
                data[key.fileobj] += chunk
            else:
                sel.unregister(key.fileobj)
                left -= 1
    elapsed = time.monotonic() - t0
    for s in socks:
        s.close()
    return [data[s] for s in socks], elapsed


class _SlowEcho(socketserver.BaseRequestHandler):
    delay = 0.3

    def handle(self):
        data = self.request.recv(100)
        time.sleep(self.delay)
        self.request.sendall(data.replace(b"ping", b"pong") + b"\n")


@pytest.fixture
def echo_service():
    """A threaded TCP service on 127.0.0.1 answering ``ping`` with ``pong\\n``
    after 0.3 s."""
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SlowEcho)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def test_patched_sleep_200_concurrent_clients(server_factory):
    srv = gevent_server(server_factory)
    # warm up: the first request imports what the app needs
    assert srv.fetch(get("/patched", close=True)).body == b"yes"
    responses, elapsed = fetch_many(srv.port, ["/sleep?s=0.2"] * 200)
    ok = [
        r for r in responses if r.startswith(b"HTTP/1.1 200") and r.endswith(b"slept")
    ]
    assert len(ok) == 200, (len(ok), srv.log_tail())
    assert elapsed < 1.0, elapsed


def test_patched_socket_to_local_service(server_factory, echo_service):
    srv = gevent_server(server_factory)
    resp = srv.fetch(get(f"/upstream?port={echo_service}", close=True))
    assert resp.status == 200 and resp.body == b"pong\n"
    # 10 upstream calls of 0.3 s each overlap: the socket waits are cooperative
    responses, elapsed = fetch_many(srv.port, [f"/upstream?port={echo_service}"] * 10)
    assert all(r.endswith(b"pong\n") for r in responses), responses
    assert elapsed < 1.5, elapsed


def test_slow_clients_and_slow_readers_do_not_block_others(server_factory):
    srv = gevent_server(server_factory, "--timeout", "30")
    slow = []
    try:
        for _ in range(20):  # heads that never end
            s = srv.connect()
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow:")
            slow.append(s)
        body_client = srv.connect()  # a body that stops half-way
        body_client.sendall(
            b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"a" * 10
        )
        slow.append(body_client)
        reader = srv.connect()  # asks for 30 MB and reads none of it
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        reader.sendall(get("/big?n=30000000"))
        slow.append(reader)
        t0 = time.monotonic()
        resp = srv.fetch(get("/hello", close=True))
        assert resp.status == 200 and resp.body == b"Hello, World!"
        assert time.monotonic() - t0 < 1.0
        # the half-sent body completes and is answered
        body_client.sendall(b"b" * 90)
        status, _, body, _ = read_response(body_client)
        assert (status, body) == (200, b"100")
    finally:
        for s in slow:
            s.close()
    assert srv.fetch(get("/hello", close=True)).status == 200


def test_app_timeout_around_a_body_read_reaches_the_app(server_factory):
    # gevent.Timeout thrown into the worker's wait on the socket must reach the
    # app as itself, not as an OSError; the connection then closes (the body
    # was not read to its end) and the worker serves on.
    srv = gevent_server(server_factory)
    s = srv.connect()
    s.sendall(
        b"POST /body_timeout?t=0.2 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
        + b"a" * 10
    )
    status, headers, body, _ = read_response(s)
    assert (status, body) == (200, b"timeout")
    assert headers.get("connection", "").lower() == "close"
    s.close()
    resp = srv.fetch(
        build_request(
            "POST",
            "/body_timeout?t=5",
            body=b"x" * 50,
            headers=[("Connection", "close")],
        )
    )
    assert resp.status == 200 and resp.body == b"read 50"


def test_keepalive_and_timeout(server_factory):
    srv = gevent_server(server_factory, "--keep-alive", "1")
    s = srv.connect()
    left = b""
    for _ in range(3):
        s.sendall(get("/hello"))
        status, headers, body, left = read_response(s, buf=left)
        assert status == 200 and body == b"Hello, World!"
        assert headers.get("connection", "keep-alive").lower() != "close"
    t0 = time.monotonic()
    assert recv_all(s, timeout=5) == b""  # closed by the keep-alive timeout
    waited = time.monotonic() - t0
    assert 0.5 < waited < 3.0, waited
    s.close()


def test_next_request_sent_while_the_app_runs_no_spin(server_factory):
    # The read watcher stays started between waits: when the client's next
    # request arrives while the app still runs, the watcher fires with nobody
    # waiting and must be stopped (not fire on every loop iteration, spinning
    # the hub), and the request is served once the first response is out.
    srv = gevent_server(server_factory)
    s = srv.connect()
    s.sendall(get("/pid"))
    _, _, pid, left = read_response(s)
    pid = int(pid)
    for sleep_s in (0.2, 0.6):  # the first round warms the worker up
        cpu0 = cpu_seconds(pid)
        s.sendall(get(f"/sleep?s={sleep_s}"))
        time.sleep(0.1)  # the app is inside its sleep: send the next request now
        s.sendall(get("/hello"))
        status, _, body, left = read_response(s, buf=left)
        assert (status, body) == (200, b"slept")
        status, _, body, left = read_response(s, buf=left)
        assert (status, body) == (200, b"Hello, World!")
    used = cpu_seconds(pid) - cpu0
    assert used < 0.25, f"worker used {used:.2f} s of CPU during a 0.6 s sleep"
    s.close()


def test_pipelined_requests_answered_in_order(server_factory):
    srv = gevent_server(server_factory)
    s = srv.connect()
    s.sendall(get("/sleep?s=0.05") + get("/hello") + get("/body", close=True))
    out = []
    left = b""
    for _ in range(3):
        status, _, body, left = read_response(s, buf=left)
        out.append((status, body))
    assert out == [(200, b"slept"), (200, b"Hello, World!"), (200, b"0")]
    assert recv_all(s, timeout=5) == b""
    s.close()


def test_worker_connections_caps_open_connections(server_factory):
    srv = gevent_server(
        server_factory, "--worker-connections", "2", "--keep-alive", "30"
    )
    held = []
    for _ in range(2):
        s = srv.connect()
        s.sendall(get("/hello"))
        assert read_response(s)[0] == 200
        held.append(s)
    third = srv.connect()
    third.sendall(get("/hello", close=True))
    third.settimeout(0.7)
    with pytest.raises(socket.timeout):
        third.recv(100)  # not accepted while two connections are open
    held.pop().close()
    status, _, body, _ = read_response(third, timeout=5)
    assert (status, body) == (200, b"Hello, World!")
    for s in held + [third]:
        s.close()


def test_graceful_term_drains(server_factory, tmp_path):
    srv = gevent_server(
        server_factory, "--graceful-timeout", "10", "--keep-alive", "30"
    )
    idle = srv.connect()
    idle.sendall(get("/hello"))
    assert read_response(idle)[0] == 200
    mark = tmp_path / "in-app"
    busy = srv.connect()
    busy.sendall(get(f"/sleep?s=1&mark={mark}"))
    assert wait_until(mark.exists, 5)
    os.kill(srv.pid, signal.SIGTERM)
    # the idle keep-alive connection is closed, the request in flight finishes
    assert recv_all(idle, timeout=3) == b""
    status, headers, body, _ = read_response(busy, timeout=5)
    assert (status, body) == (200, b"slept")
    assert headers.get("connection", "").lower() == "close"
    assert srv.wait_exit(10) == 0
    idle.close()
    busy.close()


def test_quit_exits_at_once(server_factory, tmp_path):
    srv = gevent_server(server_factory, "--graceful-timeout", "30")
    mark = tmp_path / "in-app"
    busy = srv.connect()
    busy.sendall(get(f"/sleep?s=20&mark={mark}"))
    assert wait_until(mark.exists, 5)
    t0 = time.monotonic()
    os.kill(srv.pid, signal.SIGQUIT)
    assert srv.wait_exit(5) is not None
    assert time.monotonic() - t0 < 4
    busy.close()


def test_hub_blocked_by_cpu_is_timed_out(server_factory):
    srv = gevent_server(server_factory, "--timeout", "2")
    first = int(srv.fetch(get("/pid", close=True)).body)
    busy = srv.connect()
    busy.sendall(get("/busy?s=60", close=True))
    srv.wait_for_log(r"WORKER TIMEOUT", timeout=15)
    srv.wait_for_log(r"Booting worker with pid", count=2, timeout=10)
    assert recv_all(busy, timeout=5) == b""
    busy.close()
    second = int(srv.fetch(get("/pid", close=True), timeout=10).body)
    assert second != first


def test_bad_request_gets_its_error_and_others_continue(server_factory):
    srv = gevent_server(server_factory)
    raw = srv.request(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 400"), raw
    assert srv.fetch(get("/hello", close=True)).status == 200


def test_max_requests_replaces_the_worker(server_factory):
    srv = gevent_server(server_factory, "--max-requests", "2")
    pids = [int(srv.fetch(get("/pid", close=True), timeout=10).body) for _ in range(5)]
    assert len(set(pids)) >= 2, pids
    srv.wait_for_log(r"Booting worker with pid", count=2)


def test_dotted_gunicorn_class_and_coroutine_alias(server_factory):
    for k in ("gunicorn.workers.ggevent.GeventWorker", "coroutine"):
        srv = server_factory(APP, "-k", k)
        assert srv.fetch(get("/patched", close=True)).body == b"yes"
        srv.stop()


def test_missing_gevent_is_one_clear_error(tmp_path):
    fake = tmp_path / "gevent"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('no gevent here')\n")
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = start_server_cmd(APP, "-k", "gevent", env=env)
    try:
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = (out + err).decode()
    assert proc.returncode == 1, text
    lines = [ln for ln in text.splitlines() if "gevent worker needs gevent" in ln]
    assert len(lines) == 1, text


# ---------------------------------------------------------------- seed config


SEED_APP = """\
import os


def app(environ, start_response):
    body = ("%s %s" % (VERSION, os.getpid())).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


VERSION = "{version}"
"""


def _get_text(port, path="/", timeout=5.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(get(path, close=True))
        raw = recv_all(s, timeout)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), raw[:300]
    return body.decode()


@pytest.mark.timeout(90)
def test_seed_gevent_config_served_unchanged(tmp_path):
    if not SEED_CONFIG.exists():
        pytest.skip(f"{SEED_CONFIG} is not there")
    work = tmp_path / "site"
    (work / "log").mkdir(parents=True)
    shutil.copy(SEED_CONFIG, work / "gunicorn_gevent.py")
    (work / "seedapp.py").write_text(SEED_APP.format(version="v1"))
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "cunicorn", "-c", "gunicorn_gevent.py"]
    cmd += ["-b", f"127.0.0.1:{port}", "seedapp:app"]
    launcher = subprocess.run(
        cmd,
        cwd=work,
        env=env,
        capture_output=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    # daemon = True: the launcher returns at once, the master lives on
    assert launcher.returncode == 0, launcher.stderr.decode()
    pidfile = work / "log" / "gunicorn.pid"
    master = None
    try:
        assert wait_until(
            lambda: pidfile.exists() and pidfile.read_text().strip(), 15
        ), "no pid file"
        master = int(pidfile.read_text().strip())

        def answers():
            try:
                return _get_text(port, timeout=2)
            except OSError:
                return None

        first = wait_until(answers, 15)
        assert first and first.startswith("v1 "), first
        for _ in range(3):
            assert _get_text(port).startswith("v1 ")
        access = work / "log" / "gunicorn.access.log"
        error = work / "log" / "gunicorn.error.log"
        assert wait_until(
            lambda: access.exists() and access.read_text().count("GET /") >= 4, 10
        ), access.read_text() if access.exists() else "no access log"
        assert error.exists()

        # reload = True: a change to the app's source restarts the workers
        src = work / "seedapp.py"
        src.write_text(SEED_APP.format(version="v2"))
        later = time.time() + 5  # an mtime the reloader cannot mistake for the old one
        os.utime(src, (later, later))

        def reloaded():
            try:
                return _get_text(port, timeout=2).startswith("v2 ")
            except (OSError, AssertionError):
                return False

        assert wait_until(reloaded, 20), (
            error.read_text() if error.exists() else "no error log"
        )
        # loglevel warning: the error log file holds warnings, not info lines
        assert not re.search(r"\] INFO ", error.read_text())
    finally:
        if master is not None:
            kill_and_wait(master, timeout=15)
