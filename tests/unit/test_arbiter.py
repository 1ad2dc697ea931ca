"""The arbiter glue, driven with a stand-in for the C extension: what it binds,
logs, and passes to run_master / run_worker, and the exit codes of spawn()."""

import os
import re
import socket

import pytest
from cunicorn import SERVER_SOFTWARE
from cunicorn.app import Application
from cunicorn.arbiter import Arbiter

APP_SOURCE = """
def app(environ, start_response):
    start_response("200 OK", [])
    return [b"ok"]
not_callable = 1
"""


class FakeFileWrapper:
    pass


class FakeCServer:
    """run_master calls spawn() for each worker in this process (no fork)."""

    HEARTBEAT_SLOT_SIZE = 64
    FileWrapper = FakeFileWrapper

    def __init__(self, master_code=0, worker_code=0):
        self.master_code = master_code
        self.worker_code = worker_code
        self.master_calls = []
        self.worker_calls = []
        self.spawn_codes = []

    def run_master(
        self, heartbeats, *, workers, timeout, graceful_timeout, spawn, log, **kw
    ):
        self.master_calls.append(
            dict(
                heartbeats=heartbeats,
                workers=workers,
                timeout=timeout,
                graceful_timeout=graceful_timeout,
            )
        )
        log("info", "master says hi")
        for slot in range(workers):
            self.spawn_codes.append(spawn(slot))
        return self.master_code

    def run_worker(self, app, listeners, base_environ, **kwargs):
        self.worker_calls.append((app, listeners, base_environ, kwargs))
        return self.worker_code


def make(argv, **fake):
    app = Application(argv)
    cs = FakeCServer(**fake)
    return Arbiter(app, cserver=cs), cs


def test_run_binds_logs_and_runs_master(app_module, capsys):
    mod = app_module(APP_SOURCE)
    arb, cs = make(["-b", "127.0.0.1:0", "-w", "3", "-t", "7", f"{mod}:app"])
    assert arb.run() == 0
    err = capsys.readouterr().err
    lines = [re.sub(r"^\[[^]]*\] \[\d+\] ", "", line) for line in err.splitlines()]
    assert lines[0] == "[INFO] Starting cunicorn 0.1.0"
    listening = r"\[INFO\] Listening at: http://127\.0\.0\.1:(\d+) \((\d+)\)"
    m = re.fullmatch(listening, lines[1])
    assert m, lines
    assert m.group(1) != "0"
    assert int(m.group(2)) == os.getpid()
    assert lines[2] == "[INFO] Using worker: sync"
    assert "[INFO] master says hi" in lines

    (call,) = cs.master_calls
    assert call["workers"] == 3
    assert call["timeout"] == 7
    assert call["graceful_timeout"] == 30
    assert len(call["heartbeats"]) == 64 * 64
    assert cs.spawn_codes == [0, 0, 0]

    app, listeners, base, kwargs = cs.worker_calls[0]
    assert app(None, lambda *a: None) == [b"ok"]
    ((fd, name, port),) = listeners
    assert isinstance(fd, int)
    assert (name, port) == ("127.0.0.1", m.group(1))
    assert kwargs["slot"] == 0
    assert [c[3]["slot"] for c in cs.worker_calls] == [0, 1, 2]
    assert kwargs["heartbeats"] is call["heartbeats"]


def test_listeners_closed_after_master_returns(app_module, tmp_path):
    mod = app_module(APP_SOURCE)
    path = tmp_path / "srv.sock"
    arb, cs = make(["-b", f"unix:{path}", f"{mod}:app"])
    seen = []
    cs.run_worker = lambda app, listeners, base, **kw: (
        seen.append((listeners, os.path.exists(path))) or 0
    )
    assert arb.run() == 0
    assert seen[0][0][0][1:] == ("", "")  # unix: SERVER_NAME/PORT from Host
    assert seen[0][1]  # the socket file existed while serving
    assert not path.exists()
    assert all(lnr.sock.fileno() == -1 for lnr in arb.listeners)


def test_master_exit_code_is_returned(app_module):
    mod = app_module(APP_SOURCE)
    arb, _ = make(["-b", "127.0.0.1:0", f"{mod}:app"], master_code=3)
    assert arb.run() == 3


def test_base_environ(app_module, monkeypatch):
    monkeypatch.setenv("SCRIPT_NAME", "/prefix")
    mod = app_module(APP_SOURCE)
    arb, cs = make(["-b", "127.0.0.1:0", "-w", "2", f"{mod}:app"])
    arb.run()
    base = cs.worker_calls[0][2]
    assert base["wsgi.version"] == (1, 0)
    assert base["wsgi.multithread"] is False
    assert base["wsgi.multiprocess"] is True
    assert base["wsgi.run_once"] is False
    assert base["wsgi.input_terminated"] is True
    assert base["wsgi.url_scheme"] == "http"
    assert base["wsgi.file_wrapper"] is FakeFileWrapper
    assert base["SERVER_SOFTWARE"] == SERVER_SOFTWARE == "cunicorn/0.1.0"
    assert base["SCRIPT_NAME"] == "/prefix"
    assert callable(base["wsgi.errors"].write)


def test_single_worker_is_not_multiprocess(app_module):
    mod = app_module(APP_SOURCE)
    arb, cs = make(["-b", "127.0.0.1:0", f"{mod}:app"])
    arb.run()
    base = cs.worker_calls[0][2]
    assert base["wsgi.multiprocess"] is False
    assert base["SCRIPT_NAME"] == ""


def test_worker_kwargs(app_module, tmp_path):
    mod = app_module(APP_SOURCE)
    argv = ["-b", "127.0.0.1:0", "--keep-alive", "5", "--graceful-timeout", "9"]
    argv += ["--limit-request-line", "9000", "--limit-request-fields", "0"]
    argv += ["--limit-request-field_size", "0", f"{mod}:app"]
    arb, cs = make(argv)
    arb.run()
    kw = cs.worker_calls[0][3]
    assert kw["keepalive"] == 5
    assert kw["graceful_timeout"] == 9
    assert kw["timeout"] == 30
    assert kw["max_requests"] == 0
    assert kw["limit_request_line"] == 8190
    assert kw["limit_request_fields"] == 32768
    assert kw["limit_request_field_size"] == 8190
    assert kw["access_log"] is None
    assert kw["error_log"] == arb.log.error_log_callback


def test_access_log_callable_when_enabled(app_module, tmp_path):
    mod = app_module(APP_SOURCE)
    log = tmp_path / "a.log"
    arb, cs = make(["-b", "127.0.0.1:0", "--access-logfile", str(log), f"{mod}:app"])
    arb.run()
    assert cs.worker_calls[0][3]["access_log"] == arb.log.access


def test_max_requests_jitter(app_module):
    mod = app_module(APP_SOURCE)
    argv = ["-b", "127.0.0.1:0", "-w", "30", "--max-requests", "100"]
    arb, cs = make([*argv, "--max-requests-jitter", "50", f"{mod}:app"])
    arb.run()
    values = [c[3]["max_requests"] for c in cs.worker_calls]
    assert all(100 <= v <= 150 for v in values)
    assert len(set(values)) > 1
    arb, cs = make([*argv, f"{mod}:app"])
    arb.run()
    assert {c[3]["max_requests"] for c in cs.worker_calls} == {100}


def test_spawn_missing_module_returns_3_with_traceback(capsys):
    arb, cs = make(["-b", "127.0.0.1:0", "no_such_module_abc:app"])
    assert arb.run() == 0  # the fake master ignores the worker's code
    assert cs.spawn_codes == [3]
    assert cs.worker_calls == []
    err = capsys.readouterr().err
    assert "[ERROR] Exception in worker process" in err
    assert "Traceback (most recent call last)" in err
    assert "ModuleNotFoundError: No module named 'no_such_module_abc'" in err


def test_spawn_missing_attribute_returns_4(app_module, capsys):
    mod = app_module(APP_SOURCE)
    arb, cs = make(["-b", "127.0.0.1:0", f"{mod}:nope"])
    arb.run()
    assert cs.spawn_codes == [4]
    assert f"Failed to find attribute 'nope' in '{mod}'." in capsys.readouterr().err


def test_spawn_not_callable_returns_4(app_module, capsys):
    mod = app_module(APP_SOURCE)
    arb, cs = make(["-b", "127.0.0.1:0", f"{mod}:not_callable"])
    arb.run()
    assert cs.spawn_codes == [4]
    assert "Application object must be callable." in capsys.readouterr().err


def test_spawn_returns_run_worker_code(app_module):
    mod = app_module(APP_SOURCE)
    arb, cs = make(["-b", "127.0.0.1:0", f"{mod}:app"], worker_code=0)
    arb.run()
    assert cs.spawn_codes == [0]


def test_spawn_run_worker_raising_is_not_a_boot_error(app_module, capsys):
    mod = app_module(APP_SOURCE)
    arb, cs = make(["-b", "127.0.0.1:0", f"{mod}:app"])

    def broken(*a, **kw):
        raise NotImplementedError("not yet")

    cs.run_worker = broken
    arb.run()
    assert cs.spawn_codes == [1]
    assert "NotImplementedError: not yet" in capsys.readouterr().err


def test_preload_loads_in_master(app_module):
    mod = app_module(APP_SOURCE + "\nimport os\nLOADED_IN = os.getpid()\n")
    arb, cs = make(["-b", "127.0.0.1:0", "--preload", f"{mod}:app"])
    loaded = []
    real_load = arb.app.load
    arb.app.load = lambda: loaded.append(len(cs.master_calls)) or real_load()
    arb.run()
    assert loaded == [0]  # loaded once, before run_master
    assert len(cs.worker_calls) == 1


@pytest.mark.parametrize(
    "target, code", [("no_such_module_q:app", 3), ("{mod}:nope", 4)]
)
def test_preload_failure_exits_before_binding(app_module, target, code):
    mod = app_module(APP_SOURCE)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    arb, cs = make(["-b", f"127.0.0.1:{port}", "--preload", target.format(mod=mod)])
    assert arb.run() == code
    assert cs.master_calls == []
    assert arb.listeners == []


def test_heartbeat_slots_are_generous(app_module):
    mod = app_module(APP_SOURCE)
    arb, cs = make(["-b", "127.0.0.1:0", "-w", "40", f"{mod}:app"])
    cs.run_worker = lambda *a, **kw: 0
    arb.run()
    assert len(cs.master_calls[0]["heartbeats"]) == 64 * 160
