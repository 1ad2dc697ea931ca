"""The gthread worker (-k gthread): an event loop without the GIL owns the
sockets, a pool of Python threads runs the app.  Black-box: a real server on
127.0.0.1:0, raw sockets, waits on observable state."""

import itertools
import os
import resource
import select
import signal
import socket
import threading
import time

import pytest

from tests.support.server import (
    build_request,
    cpu_seconds,
    parse_response,
    recv_all,
    recv_response,
    wait_until,
)

APP = "tests.apps.gthread_app:app"


def read_one(sock, timeout=5.0):
    """Read exactly one Content-Length-framed response from a kept-alive
    socket; returns (head_text, body)."""
    resp, rest = recv_response(sock, timeout)
    assert not rest, "extra bytes after a response"
    return resp.raw.partition(b"\r\n\r\n")[0].decode("latin-1"), resp.body


def get(path):
    return build_request("GET", path)


def answered(sock):
    """Whether a response has arrived on sock (peeked, not read)."""
    sock.setblocking(False)
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except BlockingIOError:
        return False
    finally:
        sock.settimeout(20)


@pytest.fixture(params=["4", "1"], ids=["threads4", "threads1"])
def threads(request):
    return request.param


def start(server_factory, threads, *args):
    return server_factory(APP, "-k", "gthread", "--threads", threads, *args)


def test_keepalive_reuse_and_timeout(server_factory, threads):
    srv = start(server_factory, threads, "--keep-alive", "1")
    with srv.connect() as s:
        for i in range(3):
            s.sendall(get(f"/path?q={i}"))
            head, body = read_one(s)
            assert head.startswith("HTTP/1.1 200"), head
            assert "Connection: keep-alive" in head, head
            assert body == f"q={i}".encode()
        # idle after the last response: closed after --keep-alive (1 s)
        t0 = time.monotonic()
        assert recv_all(s, timeout=5) == b""
        idle = time.monotonic() - t0
        assert 0.5 <= idle < 4.0, idle


def test_pipelined_requests_answered_in_order(server_factory, threads):
    srv = start(server_factory, threads)
    with srv.connect() as s:
        s.sendall(get("/path?1") + get("/sleep?ms=50") + get("/path?3"))
        raw = b""
        while raw.count(b"HTTP/1.1 200 OK") < 3 or not raw.endswith(b"3"):
            chunk = s.recv(65536)
            assert chunk, raw
            raw += chunk
    bodies = [part.rpartition(b"\r\n\r\n")[2] for part in raw.split(b"HTTP/1.1 ")[1:]]
    assert bodies == [b"1", b"slept", b"3"], raw


def test_pipelined_then_half_close(server_factory, threads):
    srv = start(server_factory, threads)
    raw = srv.request(get("/path?a") + get("/path?b"), timeout=5)
    assert raw.count(b"HTTP/1.1 200 OK") == 2, raw
    assert raw.index(b"\r\n\r\na") < raw.index(b"\r\n\r\nb")


def test_worker_connections_cap(server_factory):
    srv = start(server_factory, "2", "-w", "1", "--worker-connections", "2")
    a = srv.connect()
    b = srv.connect()
    try:
        a.sendall(get("/hello"))
        read_one(a)
        b.sendall(get("/hello"))
        read_one(b)
        # a third connection completes in the kernel's backlog but is not
        # served while two are open
        c = srv.connect()
        c.sendall(get("/path?third"))
        c.settimeout(0.8)
        with pytest.raises(TimeoutError):
            c.recv(1)
        a.close()  # one slot frees: the third is accepted and served
        head, body = read_one(c, timeout=5)
        assert body == b"third"
        c.close()
    finally:
        a.close()
        b.close()


def test_body_streamed_to_a_slow_app(server_factory, threads):
    srv = start(server_factory, threads)
    size = 256 * 1024
    with srv.connect(timeout=20) as s:
        s.sendall(
            b"POST /slowread?ms=2 HTTP/1.1\r\nHost: x\r\n"
            + f"Content-Length: {size}\r\n\r\n".encode()
        )
        for _ in range(size // 16384):
            s.sendall(b"y" * 16384)
        head, body = read_one(s, timeout=20)
    assert head.startswith("HTTP/1.1 200"), head
    assert body == str(size).encode()


def test_slow_app_does_not_block_others_with_threads(server_factory):
    srv = start(server_factory, "4", "-w", "1")
    slow = srv.connect(timeout=10)
    slow.sendall(get("/sleep?ms=1500"))
    time.sleep(0.05)  # let the slow request reach a pool thread first
    t0 = time.monotonic()
    resp = srv.fetch(get("/hello"))
    assert resp.status == 200
    assert time.monotonic() - t0 < 1.0
    head, body = read_one(slow, timeout=10)
    assert body == b"slept"
    slow.close()


def test_slow_client_reading_a_large_response(server_factory, threads):
    srv = start(server_factory, threads, "-w", "1")
    n = 32 << 20  # more than the socket buffers hold
    s = srv.connect(timeout=10)
    s.sendall(build_request("GET", f"/big?n={n}", headers=[("Connection", "close")]))
    time.sleep(0.3)  # the server's send buffer fills, its writer waits
    # others are still served meanwhile (threads=1: the loop still accepts
    # and parses; the answer waits for the pool thread, so only check >1)
    if threads != "1":
        assert srv.fetch(get("/hello")).status == 200
    got = 0
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += len(chunk)
    s.close()
    assert got > n  # chunked framing included
    assert srv.fetch(get("/hello")).status == 200


def test_client_vanishing_mid_response(server_factory, threads):
    srv = start(server_factory, threads, "-w", "1")
    pid = srv.worker_pids()[0]
    for _ in range(3):
        s = srv.connect()
        s.sendall(get("/big?n=33554432"))
        s.recv(1000)
        s.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
        s.close()  # reset
    resp = srv.fetch(get("/pid"))
    assert resp.status == 200 and int(resp.body) == pid
    assert "Traceback" not in srv.log_text()


@pytest.fixture
def more_fds():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 4096)
    if want < 2200:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} too low")
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.timeout(90)
def test_slowloris_does_not_delay_others(server_factory, more_fds):
    srv = start(server_factory, "4", "-w", "1", "--worker-connections", "2000")
    baseline = []
    for _ in range(20):
        t0 = time.monotonic()
        assert srv.fetch(get("/hello")).status == 200
        baseline.append(time.monotonic() - t0)
    idle = []
    try:
        for i in range(1000):
            c = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            if i % 2:
                c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # a head that never ends
            idle.append(c)
        lat = []
        for _ in range(20):
            t0 = time.monotonic()
            assert srv.fetch(get("/hello")).status == 200
            lat.append(time.monotonic() - t0)
        lat.sort()
        # normal latency: the median stays within a few ms of the baseline
        assert lat[10] < max(sorted(baseline)[10] * 5, 0.05), (lat, baseline)
        assert lat[-1] < 1.0, lat
    finally:
        for c in idle:
            c.close()


def test_emfile_backs_off_and_recovers(server_factory, tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
    try:
        srv = start(server_factory, "2", "-w", "1")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    pid = srv.worker_pids()[0]
    held = []
    try:
        for _ in range(80):
            held.append(socket.create_connection(("127.0.0.1", srv.port), timeout=5))
        srv.wait_for_log(r"too many open files", timeout=10)
        # no busy loop while out of descriptors
        t0 = cpu_seconds(pid)
        time.sleep(1.0)
        t1 = cpu_seconds(pid)
        assert t1 - t0 < 0.3, "worker spins while out of descriptors"
        # ten back-offs a second, one line a minute
        assert srv.log_text().count("too many open files") == 1
    finally:
        for c in held:
            c.close()
    resp = wait_until(lambda: _try_fetch(srv), timeout=10)
    assert resp is not None and resp.status == 200
    assert int(srv.fetch(get("/pid")).body) == pid  # same worker, no crash


def _try_fetch(srv):
    try:
        return srv.fetch(get("/pid"), timeout=2)
    except OSError:
        return None


def test_graceful_term_drains_in_flight(server_factory, threads):
    srv = start(server_factory, threads, "-w", "1", "--graceful-timeout", "10")
    idle = srv.connect(timeout=10)
    idle.sendall(get("/hello"))
    read_one(idle)
    busy = srv.connect(timeout=10)
    busy.sendall(get("/sleep?ms=1000"))
    time.sleep(0.2)  # the slow request is in the app
    os.kill(srv.pid, signal.SIGTERM)
    head, body = read_one(busy, timeout=10)
    assert body == b"slept"
    # its head left after TERM: it says so, and the connection closes
    assert "Connection: close" in head, head
    assert recv_all(busy, timeout=5) == b""
    # the idle keep-alive connection is watched until its timer (2 s)
    # expires, then closed
    assert recv_all(idle, timeout=5) == b""
    assert srv.wait_exit(10) == 0
    busy.close()
    idle.close()


def test_term_ends_at_graceful_timeout(server_factory):
    srv = start(server_factory, "2", "-w", "1", "--graceful-timeout", "1")
    s = srv.connect(timeout=10)
    s.sendall(get("/sleep?ms=20000"))
    time.sleep(0.2)
    t0 = time.monotonic()
    os.kill(srv.pid, signal.SIGTERM)
    assert srv.wait_exit(10) is not None
    assert time.monotonic() - t0 < 8
    s.close()


def test_quit_exits_now(server_factory, threads):
    srv = start(server_factory, threads, "-w", "1")
    s = srv.connect(timeout=10)
    s.sendall(get("/sleep?ms=20000"))
    time.sleep(0.2)
    t0 = time.monotonic()
    os.kill(srv.pid, signal.SIGQUIT)
    assert srv.wait_exit(10) is not None
    assert time.monotonic() - t0 < 5
    s.close()


def test_max_requests_recycles_without_reset(server_factory, threads):
    srv = start(server_factory, threads, "-w", "1", "--max-requests", "5")
    pids = []
    s = srv.connect()
    for _ in range(23):
        s.sendall(get("/pid"))
        head, body = read_one(s)  # an EOF or reset here fails the test
        pids.append(int(body))
        if "Connection: close" in head:
            assert recv_all(s) == b""
            s.close()
            s = wait_until(lambda: _connect(srv), timeout=10)
    s.close()
    assert len(set(pids)) >= 4, pids
    for p in set(pids):
        assert pids.count(p) <= 5, pids


def _connect(srv):
    try:
        return srv.connect()
    except OSError:
        return None


def test_threads_run_the_app_in_parallel(server_factory):
    srv = start(server_factory, "4", "-w", "1")
    results = []

    def one():
        results.append(srv.fetch(get("/sleep?ms=600"), timeout=10).status)

    t0 = time.monotonic()
    ts = [threading.Thread(target=one) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(10)
    assert results == [200] * 4
    assert time.monotonic() - t0 < 1.5


def test_multithread_environ_and_errors(server_factory):
    srv = server_factory("tests.apps.echo:app", "-k", "gthread", "--threads", "2")
    env = srv.echo(build_request("POST", "/x?y=1", body=b"abc"))
    assert env["environ"]["wsgi.multithread"] is True
    assert env["body"] == "abc"
    # a bad request gets its 400 from a pool thread, and the server goes on
    resp = srv.fetch(b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert resp.status == 400
    resp = parse_response(
        srv.request(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 200 + b"\r\n")
    )
    assert resp.status == 431
    assert srv.fetch(get("/")).status == 200


class _KeepAliveLoad:
    """``n`` client threads, each looping keep-alive GET /hello on one
    connection and reconnecting after a ``Connection: close`` answer (as wrk
    does).  Every EOF, reset or timeout is recorded in ``errors``."""

    def __init__(self, srv, n=4):
        self.srv = srv
        self.ok = 0
        self.errors = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, daemon=True) for _ in range(n)
        ]

    def _run(self):
        s = None
        while not self._stop.is_set():
            try:
                if s is None:
                    s = self.srv.connect(timeout=5)
                s.sendall(get("/hello"))
                head, body = read_one(s)
                assert head.startswith("HTTP/1.1 200") and body == b"hello", head
                self.ok += 1
                if "Connection: close" in head:
                    assert recv_all(s, timeout=5) == b""
                    s.close()
                    s = None
            except (OSError, AssertionError) as e:
                self.errors.append(repr(e))
                if s is not None:
                    s.close()
                s = None
        if s is not None:
            s.close()

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def wait_ok(self, more, timeout=10.0):
        target = self.ok + more
        assert wait_until(lambda: self.ok >= target, timeout), (self.ok, self.errors)

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(10)


def test_hup_under_keepalive_load_loses_nothing(server_factory, threads):
    # issue 3: a retiring worker keeps watching its idle keep-alive
    # connections and answers what arrives with Connection: close
    srv = start(server_factory, threads, "-w", "2", "--graceful-timeout", "10")
    with _KeepAliveLoad(srv) as load:
        load.wait_ok(200)
        for n in (1, 2):
            os.kill(srv.pid, signal.SIGHUP)
            srv.wait_for_log(r"Booting worker with pid", count=2 + 2 * n, timeout=15)
            srv.wait_for_log(r"Worker exiting \(pid", count=2 * n, timeout=15)
            load.wait_ok(200)
    assert load.errors == [], load.errors[:5]
    assert srv.alive()


def test_max_requests_under_keepalive_load_loses_nothing(server_factory, threads):
    srv = start(server_factory, threads, "-w", "2", "--max-requests", "40")
    with _KeepAliveLoad(srv) as load:
        # six recycles, each under load from four clients
        srv.wait_for_log(r"Booting worker with pid", count=8, timeout=20)
        load.wait_ok(100)
    assert load.errors == [], load.errors[:5]


def _hook_seen(path, name, pid):
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return False
    return f"{name} {pid} {pid}" in lines


def test_python_signal_handlers_run_in_an_idle_worker(
    server_factory, threads, tmp_path
):
    # USR1 (reopen logs), worker_abort (ABRT) and worker_int (QUIT) run as
    # Python handlers: the worker's main thread must run them while it waits
    hooks = tmp_path / "hooks.log"
    access = tmp_path / "access.log"
    srv = server_factory(
        APP,
        "-k",
        "gthread",
        "--threads",
        threads,
        "-w",
        "1",
        "-c",
        "tests/cli/apps/hooks_conf.py",
        "--access-logfile",
        str(access),
        env={"HOOK_LOG": str(hooks)},
    )
    (first,) = srv.worker_pids()
    assert srv.fetch(get("/hello")).status == 200
    assert wait_until(lambda: access.exists() and access.stat().st_size > 0, 5)
    access.rename(tmp_path / "access.log.1")
    os.kill(first, signal.SIGUSR1)
    assert wait_until(access.exists, 5), "USR1 did not reopen the access log"
    os.kill(first, signal.SIGABRT)
    assert wait_until(lambda: _hook_seen(hooks, "worker_abort", first), 5)
    srv.wait_for_log(r"Booting worker with pid: \d+", count=2, timeout=10)
    second = srv.worker_pids()[1]
    assert srv.fetch(get("/hello")).status == 200
    os.kill(second, signal.SIGQUIT)
    assert wait_until(lambda: _hook_seen(hooks, "worker_int", second), 5)
    srv.wait_for_log(r"Booting worker with pid: \d+", count=3, timeout=10)
    assert srv.fetch(get("/hello")).status == 200


def test_short_requests_overtake_queued_long_ones(server_factory):
    # one thread: requests queue; the pool learns that /hello costs far less
    # CPU than /spin and serves it before the spins queued ahead of it
    srv = start(server_factory, "1", "-w", "1")
    with srv.connect() as s:
        # /hello's first, cold request is averaged away by the others, and
        # the spins come last: the average request is theirs (under ASan a
        # request of /hello costs a millisecond or more)
        for path in ["/hello"] * 20 + ["/spin?ms=30"] * 3:
            s.sendall(get(path))
            read_one(s)
    spins = [srv.connect(timeout=20) for _ in range(5)]
    try:
        for c in spins:  # 200 ms each: time for this client to send /hello
            c.sendall(get("/spin?ms=200"))  # while the second one runs
        # once the first spin is answered (whichever: one loop iteration
        # may read them in any order) the others have long been read and
        # queued (the loop thread does not wait for the pool)
        ready, _, _ = select.select(spins, [], [], 20)
        assert ready, "no spin answered"
        first = ready[0]
        assert read_one(first, timeout=20)[1] == b"spun"
        others = [c for c in spins if c is not first]
        with srv.connect(timeout=20) as s:
            s.sendall(get("/hello"))
            assert read_one(s, timeout=20)[1] == b"hello"
        done = sum(answered(c) for c in others)
        # arrival order would have answered the four other spins first; the
        # short request waits at most for the one running
        assert done <= 1, done
        for c in others:
            assert read_one(c, timeout=20)[1] == b"spun"
    finally:
        for c in spins:
            c.close()


# ---- inline serving: short requests on the loop thread (gthread.h) ----------


def warm(srv, path, n=20):
    """Serve `path` n times in a row on one kept-alive connection (its
    route's cost is learned); returns the last body."""
    with srv.connect(timeout=10) as s:
        for _ in range(n):
            s.sendall(get(path))
            head, body = read_one(s)
            assert head.startswith("HTTP/1.1 200"), head
    return body


def learned_short(srv):
    """Serve /sleep?ms=0 until the loop thread serves it inline."""
    warm(srv, "/sleep?ms=0", 20)
    assert wait_until(
        lambda: srv.fetch(get("/sleep?ms=0&comm=1")).body == b"cunicorn-loop", 10
    )


def in_app(srv, tmp_path, path, name="in-app"):
    """Send `path` (an app path taking ``touch``) on a new connection and
    wait until the app runs it (it creates tmp_path / name); returns the
    connection."""
    mark = tmp_path / name
    sock = srv.connect(timeout=10)
    sep = "&" if "?" in path else "?"
    sock.sendall(get(f"{path}{sep}touch={mark}"))
    assert wait_until(mark.exists, 5)
    return sock


def test_short_routes_are_served_by_the_loop_thread(server_factory, threads):
    srv = start(server_factory, threads, "-w", "1")

    def on_loop():
        return srv.fetch(get("/comm")).body == b"cunicorn-loop"

    # a short route, once learned, is served by the loop thread itself (a
    # connection's first request may still find the pool finishing the
    # last one: then the pool serves it)
    warm(srv, "/comm", 5)
    assert wait_until(on_loop, 5)
    # a long one (20 ms of CPU, over the inline limit) stays in the pool
    assert warm(srv, "/spin?ms=20&comm=1", 5) == b"cunicorn-pool"
    assert wait_until(on_loop, 5)


def test_identifiers_in_the_path_are_one_route(server_factory):
    """/item/1, /item/2, ...: each id is new, but numbers and UUIDs in the
    path count as one route, learned short on a few of them: a request for
    an id never seen is served inline (a route seen for the first time goes
    to the pool)."""
    srv = start(server_factory, "4", "-w", "1")
    with srv.connect(timeout=10) as s:
        for i in range(20):
            s.sendall(get(f"/item/{i}"))
            assert read_one(s)[0].startswith("HTTP/1.1 200")
    fresh = itertools.count(1)

    def inline(template):  # an id never seen before, every time (a new
        # connection's first request may find the pool finishing the last
        # one, or a slow sample may have made the route long for a while)
        path = template.format(next(fresh))
        return srv.fetch(get(path)).body == b"cunicorn-loop"

    assert wait_until(lambda: inline("/item/3f2b8c1e-9a4d-4e6f-8b7a-{:012x}"), 10)
    assert wait_until(lambda: inline("/item/12345{}"), 10)
    # a name is not an id: /item/name is a route of its own, never seen
    assert srv.fetch(get("/item/name")).body == b"cunicorn-pool"


@pytest.mark.parametrize("nthreads", ["2", "4"])
def test_inline_request_turning_long_does_not_stop_the_loop(
    server_factory, nthreads, tmp_path
):
    """A route learned short is served inline; when one of its requests
    sleeps, the main thread runs the loop meanwhile: other clients are
    accepted, read and answered by the pool before it ends (with --threads
    1 they wait for it: test_threads_1_runs_one_request_at_a_time...)."""
    srv = start(server_factory, nthreads, "-w", "1")
    learned_short(srv)
    slow = in_app(srv, tmp_path, "/sleep?ms=3000")
    t0 = time.monotonic()
    with srv.connect(timeout=10) as s:  # a new connection: accept, read, serve
        s.sendall(get("/comm"))
        head, body = read_one(s, timeout=10)
    assert head.startswith("HTTP/1.1 200")
    assert body == b"cunicorn-pool"  # the loop thread is the one sleeping
    assert time.monotonic() - t0 < 2.0, "the loop waited for the inline request"
    head, body = read_one(slow, timeout=10)
    assert body == b"slept"
    slow.close()


def test_long_inline_request_keeps_the_heartbeat(server_factory, tmp_path):
    srv = start(server_factory, "1", "-w", "1", "--timeout", "2")
    pid = int(warm(srv, "/pid", 2))
    learned_short(srv)
    with srv.connect(timeout=15) as s:
        s.sendall(get("/sleep?ms=4500"))
        head, body = read_one(s, timeout=15)
    assert body == b"slept"
    assert int(warm(srv, "/pid", 1)) == pid
    assert "WORKER TIMEOUT" not in srv.log_text()


def test_quit_with_a_stuck_inline_request_exits_now(server_factory, tmp_path):
    """QUIT while the loop thread is stuck in a request it serves inline:
    the main thread, standing in for it, ends the loop and the worker
    exits by itself (the master would wait graceful_timeout to kill it)."""
    srv = start(server_factory, "2", "-w", "1", "--graceful-timeout", "30")
    learned_short(srv)
    s = in_app(srv, tmp_path, "/sleep?ms=60000")
    t0 = time.monotonic()
    os.kill(srv.pid, signal.SIGQUIT)
    assert srv.wait_exit(20) is not None
    assert time.monotonic() - t0 < 10
    assert "SIGKILL" not in srv.log_text()
    s.close()


def test_threads_1_runs_one_request_at_a_time_even_inline(server_factory, tmp_path):
    """The loop thread serving inline takes one of the --threads slots: with
    --threads 1, a request arriving while an inline one runs long (the main
    thread reads it) waits for it, as with gunicorn, instead of running
    beside it in the pool."""
    srv = start(server_factory, "1", "-w", "1")
    warm(srv, "/conc?ms=0", 20)
    assert wait_until(lambda: srv.fetch(get("/comm")).body == b"cunicorn-loop", 10)
    slow = in_app(srv, tmp_path, "/conc?ms=600")
    with srv.connect(timeout=10) as s:
        s.sendall(get("/conc?ms=0"))
        head, body = read_one(s, timeout=10)
    assert body == b"1", "two requests ran in the app at once with --threads 1"
    assert read_one(slow, timeout=10)[1] == b"1"
    slow.close()


def test_a_burst_of_connections_is_shared_between_workers(server_factory):
    """40 keep-alive connections opened at once: the first worker to wake
    would take them all; the workers balance on their open connections
    (loop.c, accept_defer), so each ends up with a fair part."""
    srv = start(server_factory, "4", "-w", "2")
    assert wait_until(lambda: len(srv.worker_pids()) == 2, 10)
    # both workers booted and answering
    assert wait_until(
        lambda: len({srv.fetch(get("/pid")).body for _ in range(8)}) == 2, 10
    )
    socks = [srv.connect(timeout=10) for _ in range(40)]
    try:
        pids = []
        for s in socks:
            s.sendall(get("/pid"))
        for s in socks:
            pids.append(int(read_one(s, timeout=10)[1]))
        counts = sorted(pids.count(p) for p in set(pids))
        assert len(counts) == 2 and counts[0] >= 8, counts
    finally:
        for s in socks:
            s.close()


# ---- held responses: an inline batch writes its responses together ---------


def test_pipelined_requests_served_inline_answer_in_order(server_factory, threads):
    srv = start(server_factory, threads, "-w", "1")
    warm(srv, "/path?warm", 20)

    def inline():
        return srv.fetch(get("/path?comm=1")).body == b"comm=1 cunicorn-loop"

    assert wait_until(inline, 10)
    with srv.connect(timeout=10) as s:
        s.sendall(b"".join(get(f"/path?i={i}") for i in range(30)))
        rest = b""
        for i in range(30):
            resp, rest = recv_response(s, 5, rest)
            assert resp.status == 200
            assert resp.body == f"i={i}".encode()
        assert not rest


@pytest.mark.parametrize("order", ["a_then_b", "b_then_a"])
def test_inline_batch_with_a_request_turning_long(server_factory, order):
    """A (short) and B (a route learned short that runs 3 s this time) are
    read in one loop iteration and served inline in one batch, in either
    order (libev runs the later event first).  A is answered in well under
    B's 3 s either way: when the main thread takes the loop over (5 ms), a
    response the batch held back leaves, and a request it has not served
    yet goes to the pool.  A 3 ms request on a third connection keeps the
    loop thread busy while A and B arrive, so that one iteration reads
    both."""
    srv = start(server_factory, "4", "-w", "1")
    warm(srv, "/conc?ms=0", 20)
    warm(srv, "/comm", 20)
    learned_short(srv)
    conns = [srv.connect(timeout=10) for _ in range(3)]
    try:
        busy, a, b = conns
        busy.sendall(get("/conc?ms=3"))
        first, second = (a, b) if order == "a_then_b" else (b, a)
        t0 = time.monotonic()
        for c in (first, second):
            c.sendall(get("/comm") if c is a else get("/sleep?ms=3000&comm=1"))
        assert read_one(a, timeout=10)[0].startswith("HTTP/1.1 200")
        assert time.monotonic() - t0 < 2.0, "A's response waited for B"
        assert read_one(busy, timeout=10)[1] == b"1"
        assert read_one(b, timeout=10)[1] == b"cunicorn-loop"
    finally:
        for c in conns:
            c.close()


def test_large_inline_response_after_a_held_one(server_factory):
    """A response too big to hold back (over 64 KiB) sends what is held
    first: pipelined small, big, small on one connection arrive whole and
    in order."""
    srv = start(server_factory, "4", "-w", "1")
    warm(srv, "/path?warm", 20)
    big = get("/big?n=200000")
    with srv.connect(timeout=10) as s:
        for _ in range(20):  # learn /big (chunked: read to the last chunk)
            s.sendall(big)
            data = b""
            while not data.endswith(b"\r\n0\r\n\r\n"):
                chunk = s.recv(65536)
                assert chunk, "closed"
                data += chunk
    last = build_request("GET", "/path?last", headers=[("Connection", "close")])
    with srv.connect(timeout=10) as s:
        s.sendall(get("/path?first") + big + last)
        raw = recv_all(s, 10)
    first_at = raw.index(b"\r\n\r\nfirst")
    big_at = raw.index(b"Transfer-Encoding: chunked")
    last_at = raw.index(b"\r\n\r\nlast")
    assert first_at < big_at < last_at, raw[:300]
    assert raw.count(b"x") - raw.count(b"text/plain") == 200000
    assert raw.count(b"HTTP/1.1 200") == 3


# ---- the fast lane: a short request beside --threads long ones (gthread.h) --


@pytest.mark.parametrize("nthreads", [1, 2, 4])
def test_fast_lane_serves_a_short_request_beside_long_ones(
    server_factory, nthreads, tmp_path
):
    """Every pool thread holds a long request and another waits for one: a
    request of a route learned short is served at once by the fast lane
    thread, while the long ones run on, and the waiting long one still
    waits (no more than --threads long requests in the app).  With
    --threads 1 there is no fast lane: it waits its turn, as in gunicorn."""
    srv = start(server_factory, str(nthreads), "-w", "1")
    warm(srv, "/comm", 20)
    warm(srv, "/sleep?ms=20", 3)  # long: 20 ms of wall time
    longs = [
        in_app(srv, tmp_path, "/sleep?ms=4000", f"long-{i}") for i in range(nthreads)
    ]
    waiting = srv.connect(timeout=20)
    extra = tmp_path / "long-extra"
    waiting.sendall(get(f"/sleep?ms=100&touch={extra}"))
    try:
        with srv.connect(timeout=20) as s:
            s.sendall(get("/comm"))
            head, body = read_one(s, timeout=20)
        assert head.startswith("HTTP/1.1 200"), head
        if nthreads == 1:
            assert body == b"cunicorn-pool"
            assert answered(longs[0]), "served beside the long request"
        else:
            assert body == b"cunicorn-fast"
            assert not any(answered(c) for c in longs), "waited for a long one"
            assert not extra.exists(), "a long request ran in the fast lane"
        for c in longs:
            assert read_one(c, timeout=20)[1] == b"slept"
        assert read_one(waiting, timeout=20)[1] == b"slept"
    finally:
        for c in longs + [waiting]:
            c.close()
