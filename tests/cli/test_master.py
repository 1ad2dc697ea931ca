"""The C master (``_cserver.run_master``) driven through the real command.

Each test starts ``python -m cunicorn ... -b 127.0.0.1:0 tests.cli.apps.lifecycle:app``
(tests/support/server.py), acts on it with signals and raw HTTP, and waits on
observable state only: log lines, exit codes, answers.  Every wait is bounded;
the ``server_factory`` fixture stops the server by pid at teardown (TERM, then
SIGKILL of the master and of every worker pid seen in the log).
"""

import os
import signal
import time

import pytest

from tests.support.server import (
    build_request,
    free_port,
    parse_response,
    pid_gone,
    recv_all,
    start_server_cmd,
    wait_until,
)

APP = "tests.cli.apps.lifecycle:app"


def get(srv, target="/", timeout=5.0):
    return srv.fetch(build_request("GET", target), timeout=timeout)


def answering_pid(srv) -> int:
    resp = get(srv)
    assert resp.status == 200, (resp.raw[:300], srv.log_tail())
    word, pid = resp.body.split()
    assert word == b"ok"
    return int(pid)


def start_in_flight(srv, target):
    """Send a request and wait until the app logged that it started; returns
    the open socket (read the answer with recv_all)."""
    s = srv.connect(timeout=10)
    s.sendall(build_request("GET", target))
    what = target.lstrip("/").split("?")[0]
    srv.wait_for_log(rf"{what} request started \(pid \d+\)", timeout=10)
    return s


# -- workers that die or hang -------------------------------------------------


def test_worker_killed_with_9_is_replaced_and_server_keeps_answering(server_factory):
    srv = server_factory(APP, "-w", "2", "--timeout", "30")
    first, second = srv.worker_pids()[:2]

    os.kill(first, signal.SIGKILL)
    # The other worker still answers while the master replaces the dead one.
    for _ in range(3):
        assert answering_pid(srv) != first
    srv.wait_for_log(
        rf"Worker \(pid:{first}\) was sent SIGKILL! Perhaps out of memory\?"
    )
    srv.wait_for_log(r"Booting worker with pid: \d+", count=3, timeout=10)

    os.kill(second, signal.SIGKILL)
    srv.wait_for_log(r"Booting worker with pid: \d+", count=4, timeout=10)
    new = set(srv.worker_pids()[2:])
    assert len(new) == 2 and not new & {first, second}
    # Only the replacements are left, and they serve.
    seen = {answering_pid(srv) for _ in range(6)}
    assert seen <= new, (seen, new)
    assert srv.alive()


def test_timeout_kills_a_stuck_worker_and_replaces_it(server_factory):
    srv = server_factory(APP, "-w", "1", "--timeout", "2", "--graceful-timeout", "2")
    (stuck,) = srv.worker_pids()
    s = start_in_flight(srv, "/hang")
    try:
        t0 = time.monotonic()
        srv.wait_for_log(rf"\[CRITICAL\] WORKER TIMEOUT \(pid:{stuck}\)", timeout=8)
        srv.wait_for_log(r"Booting worker with pid: \d+", count=2, timeout=5)
        assert time.monotonic() - t0 < 2 + 3
        assert wait_until(lambda: pid_gone(stuck), 5), "stuck worker still alive"
    finally:
        s.close()
    new = srv.worker_pids()[1]
    assert answering_pid(srv) == new
    assert srv.alive()


def test_stopped_worker_is_killed_and_replaced(server_factory):
    srv = server_factory(APP, "-w", "1", "--timeout", "2")
    (worker,) = srv.worker_pids()
    os.kill(worker, signal.SIGSTOP)
    try:
        srv.wait_for_log(rf"WORKER TIMEOUT \(pid:{worker}\)", timeout=6)
        # A stopped process ignores SIGABRT; the SIGKILL a second later does it.
        srv.wait_for_log(rf"Worker \(pid:{worker}\) was sent SIGKILL!", timeout=4)
        srv.wait_for_log(r"Booting worker with pid: \d+", count=2, timeout=5)
    finally:
        if not pid_gone(worker):
            os.kill(worker, signal.SIGCONT)
    assert answering_pid(srv) == srv.worker_pids()[1]


# -- stopping the master ------------------------------------------------------


def test_term_is_graceful_in_flight_request_finishes(server_factory):
    srv = server_factory(APP, "-w", "1", "--graceful-timeout", "10")
    s = start_in_flight(srv, "/slow?s=1.5")
    try:
        t0 = time.monotonic()
        os.kill(srv.pid, signal.SIGTERM)
        resp = parse_response(recv_all(s, timeout=10))
    finally:
        s.close()
    assert resp.status == 200 and resp.body == b"slow done", resp.raw[:300]
    assert srv.wait_exit(10) == 0, srv.log_tail()
    assert time.monotonic() - t0 < 8  # did not wait out graceful_timeout
    log = srv.log_text()
    assert "[INFO] Handling signal: term" in log
    assert "[INFO] Shutting down: Master" in log
    assert "SIGKILL" not in log


@pytest.mark.parametrize("sig", [signal.SIGQUIT, signal.SIGINT], ids=["quit", "int"])
def test_quit_and_int_stop_quickly(server_factory, sig):
    srv = server_factory(APP, "-w", "2", "--graceful-timeout", "30")
    s = start_in_flight(srv, "/slow?s=30")
    try:
        t0 = time.monotonic()
        os.kill(srv.pid, sig)
        assert srv.wait_exit(8) == 0, srv.log_tail()
        assert time.monotonic() - t0 < 5
    finally:
        s.close()
    log = srv.log_text()
    name = signal.Signals(sig).name[3:].lower()
    assert f"[INFO] Handling signal: {name}" in log
    assert "[INFO] Shutting down: Master" in log
    assert "KeyboardInterrupt" not in log
    assert wait_until(lambda: all(pid_gone(p) for p in srv.worker_pids()), 5)


# -- exit codes 3 and 4 halt the master ---------------------------------------


def run_to_exit(app, *args, timeout=30):
    proc = start_server_cmd(app, *args)
    try:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, (out + err).decode("utf-8", "replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)


def test_module_not_found_exits_3():
    rc, log = run_to_exit("tests.cli.apps.no_such_module:app", "-w", "2")
    assert rc == 3, log
    assert "No module named" in log  # the traceback is logged
    assert "Worker failed to boot." in log
    assert "Shutting down: Master" in log


def test_missing_attribute_exits_4():
    rc, log = run_to_exit("tests.cli.apps.lifecycle:nope", "-w", "2")
    assert rc == 4, log
    assert "App failed to load." in log
    assert "Shutting down: Master" in log


# -- changing the worker set --------------------------------------------------


def test_ttin_adds_and_ttou_retires_the_oldest_never_below_one(server_factory):
    srv = server_factory(APP, "-w", "1")
    (oldest,) = srv.worker_pids()
    os.kill(srv.pid, signal.SIGTTIN)
    srv.wait_for_log(r"Booting worker with pid: \d+", count=2)
    newer = srv.worker_pids()[1]

    os.kill(srv.pid, signal.SIGTTOU)
    srv.wait_for_log(r"Handling signal: ttou")
    assert wait_until(lambda: pid_gone(oldest), 10), srv.log_tail()
    os.kill(srv.pid, signal.SIGTTOU)  # already at one: ignored
    srv.wait_for_log(r"Handling signal: ttou", count=2)
    assert answering_pid(srv) == newer
    assert len(srv.worker_pids()) == 2 and not pid_gone(newer)


def test_hup_starts_new_workers_then_retires_the_old(server_factory):
    srv = server_factory(APP, "-w", "2")
    old = set(srv.worker_pids())
    os.kill(srv.pid, signal.SIGHUP)
    srv.wait_for_log(r"\[INFO\] Hang up: Master")
    srv.wait_for_log(r"Booting worker with pid: \d+", count=4)
    new = set(srv.worker_pids()) - old
    assert len(new) == 2
    assert wait_until(lambda: all(pid_gone(p) for p in old), 10), srv.log_tail()
    assert {answering_pid(srv) for _ in range(4)} <= new
    assert srv.alive()


def test_term_while_a_worker_boots_lets_it_exit_cleanly(server_factory):
    # gunicorn's workers install their signal handlers before importing the app:
    # a TERM during a slow import ends the worker cleanly after boot, never by
    # the signal's default action.  server_factory returns at the worker's
    # "Booting worker" line, logged before the 2 s import starts.
    srv = server_factory(APP, "-w", "1", env={"LIFECYCLE_IMPORT_DELAY": "2"})
    (pid,) = srv.worker_pids()
    os.kill(pid, signal.SIGTERM)
    srv.wait_for_log(rf"Worker exiting \(pid: {pid}\)", timeout=10)
    text = srv.log_text()
    assert f"Worker (pid:{pid}) was sent SIGTERM" not in text, text


def test_reuse_port_two_servers_share_one_address(server_factory):
    """--reuse-port (SO_REUSEPORT, as gunicorn sets it): a second server binds
    the address the first listens on, and the kernel spreads the connections
    over both; without it the second could not bind."""
    port = free_port()
    bind = ("-b", f"127.0.0.1:{port}", "--reuse-port", "-w", "1")
    a = server_factory(APP, *bind, bind=False)
    b = server_factory(APP, *bind, bind=False)
    assert a.port == b.port == port
    want = {a.worker_pids()[0], b.worker_pids()[0]}
    seen = set()
    for _ in range(200):
        resp = get(a)
        assert resp.status == 200
        seen.add(int(resp.body.split()[1]))
        if seen == want:
            break
    assert seen == want
