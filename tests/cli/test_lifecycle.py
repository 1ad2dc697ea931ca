"""Master lifecycle through the real command (issue 3): reload, log reopening,
binary upgrade, daemon and pid file, systemd activation, hooks, zero-loss
worker changes.  Waits are on observable state (log lines, pid files, answers),
every wait bounded; every process started here is stopped by pid."""

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.server import (
    REPO_ROOT,
    build_request,
    is_cunicorn,
    parse_response,
    pid_gone,
    read_pid,
    recv_all,
    start_server_cmd,
    wait_until,
)

APP = "tests.cli.apps.lifecycle:app"
CONF = "tests/cli/apps/hooks_conf.py"


def get(port, target="/", timeout=5.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(build_request("GET", target))
        return parse_response(recv_all(s, timeout))


def hook_lines(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.split() for line in path.read_text().splitlines() if line]


class Load:
    """Clients that send requests back to back (each answered ``Connection:
    close`` by the sync worker, so each is a new connection) and count every
    failure: refused, reset, EOF without a response, non-200."""

    def __init__(self, port: int, clients: int = 4) -> None:
        self.port = port
        self.ok = 0
        self.max_latency = 0.0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, daemon=True) for _ in range(clients)
        ]

    def _run(self) -> None:
        raw = build_request("GET", "/")
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                with socket.create_connection(
                    ("127.0.0.1", self.port), timeout=10
                ) as s:
                    s.sendall(raw)
                    resp = parse_response(recv_all(s, 10))
                err = None if resp.status == 200 else f"status {resp.status}"
            except Exception as e:  # refused, reset, timeout, bad response
                err = repr(e)
            with self._lock:
                self.max_latency = max(self.max_latency, time.monotonic() - t0)
                if err is None:
                    self.ok += 1
                else:
                    self.failures.append(err)

    def __enter__(self) -> "Load":
        for t in self._threads:
            t.start()
        assert wait_until(lambda: self.ok >= 20, 10), self.failures[:5]
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)

    def wait_more(self, n: int = 50) -> None:
        target = self.ok + n
        assert wait_until(lambda: self.ok >= target, 10), self.failures[:5]


# -- reload, reopen, worker count ----------------------------------------------


def test_hup_rereads_the_config_file_and_runs_on_reload(server_factory, tmp_path):
    wf = tmp_path / "workers"
    wf.write_text("1")
    hooks = tmp_path / "hooks.log"
    env = {"WORKERS_FILE": str(wf), "HOOK_LOG": str(hooks)}
    srv = server_factory(APP, "-c", CONF, env=env, workers=1)
    (old,) = srv.worker_pids()
    wf.write_text("2")
    os.kill(srv.pid, signal.SIGHUP)
    srv.wait_for_log(r"\[INFO\] Handling signal: hup")
    srv.wait_for_log(r"\[INFO\] Hang up: Master")
    srv.wait_for_log(r"Booting worker with pid: \d+", count=3)
    assert wait_until(lambda: pid_gone(old), 10), srv.log_tail()
    new = srv.worker_pids()[1:]
    assert len(new) == 2 and all(not pid_gone(p) for p in new)
    names = [x[0] for x in hook_lines(hooks)]
    assert "on_reload" in names
    assert ["nworkers_changed", "2", "1"] in [x[:1] + x[2:] for x in hook_lines(hooks)]
    # the old worker retired only after a new one was accepting
    log = srv.log_text()
    assert "SIGKILL" not in log and "exited with code" not in log


def test_raw_env_reaches_the_workers_and_a_hup_drops_a_removed_one(
    server_factory, tmp_path
):
    """raw_env (the config file's list, or -e KEY=VALUE) is in the workers'
    os.environ; a HUP whose config no longer names a variable restores the
    value it had before (unset here), as gunicorn's reload does; -e on the
    command line replaces the file's list, as any command-line setting does."""
    conf = tmp_path / "conf.py"
    conf.write_text('raw_env = ["CUN_A=1", "CUN_B=x=y"]\n')
    srv = server_factory(APP, "-c", str(conf), workers=1)

    def env(name, srv=srv):
        return get(srv.port, f"/env?name={name}").body

    assert (env("CUN_A"), env("CUN_B")) == (b"1", b"x=y")
    (old,) = srv.worker_pids()
    conf.write_text('raw_env = ["CUN_A=2"]\n')
    os.kill(srv.pid, signal.SIGHUP)
    srv.wait_for_log(r"Booting worker with pid: \d+", count=2)
    assert wait_until(lambda: pid_gone(old), 10), srv.log_tail()
    assert (env("CUN_A"), env("CUN_B")) == (b"2", b"-")

    cli = server_factory(APP, "-c", str(conf), "-e", "CUN_C=", workers=1)
    assert (env("CUN_A", cli), env("CUN_C", cli)) == (b"-", b"")


def test_raw_env_without_equals_is_a_config_error():
    proc = start_server_cmd(APP, "-e", "CUN_NOVALUE")
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1, (out, err)
    assert b"CUN_NOVALUE" in out + err


def test_hup_with_a_broken_config_keeps_serving(server_factory, tmp_path):
    wf = tmp_path / "workers"
    wf.write_text("1")
    srv = server_factory(APP, "-c", CONF, env={"WORKERS_FILE": str(wf)}, workers=1)
    wf.write_text("not a number")
    os.kill(srv.pid, signal.SIGHUP)
    srv.wait_for_log(r"Reload failed, configuration kept")
    srv.wait_for_log(r"Booting worker with pid: \d+", count=2)
    assert get(srv.port).status == 200
    assert srv.alive()


def test_hup_under_load_loses_nothing(server_factory):
    srv = server_factory(APP, "-w", "2")
    with Load(srv.port) as load:
        for _ in (1, 2):
            mark = srv.log_mark()
            os.kill(srv.pid, signal.SIGHUP)
            srv.wait_for_log(r"Booting worker with pid: \d+", count=2, since=mark)
            srv.wait_for_log(r"Worker exiting \(pid: \d+\)", count=2, since=mark)
            load.wait_more()
    assert load.failures == [], load.failures[:5]
    assert load.ok > 100


def test_hup_old_workers_serve_until_the_new_ones_accept(server_factory):
    # New workers take 2 s to import the app.  The old ones must keep answering
    # meanwhile: no request waits in the backlog for the new generation.
    env = {"LIFECYCLE_IMPORT_DELAY": "2"}
    srv = server_factory(APP, "-w", "2", env=env, ready_timeout=20)
    old = srv.worker_pids()
    with Load(srv.port, clients=2) as load:
        load.max_latency = 0.0
        mark = srv.log_mark()
        os.kill(srv.pid, signal.SIGHUP)
        srv.wait_for_log(r"Booting worker with pid: \d+", count=2, since=mark)
        assert wait_until(lambda: all(pid_gone(p) for p in old), 15), srv.log_tail()
        load.wait_more()
    assert load.failures == [], load.failures[:5]
    assert load.max_latency < 1.0, load.max_latency


def test_usr1_reopens_log_files_in_master_and_workers(server_factory, tmp_path):
    access = tmp_path / "access.log"
    srv = server_factory(APP, "-w", "2", "--access-logfile", str(access))
    assert get(srv.port).status == 200
    assert wait_until(lambda: access.exists() and access.stat().st_size > 0, 5)
    access.rename(tmp_path / "access.log.1")
    os.kill(srv.pid, signal.SIGUSR1)
    srv.wait_for_log(r"Handling signal: usr1")
    # each worker reopens on its own: keep asking until both wrote the new file

    def both_reopened():
        get(srv.port)
        return access.exists() and len(access.read_text().splitlines()) >= 4

    assert wait_until(both_reopened, 10, interval=0.1)
    assert srv.alive()


def test_ttin_ttou_under_load_lose_nothing(server_factory):
    srv = server_factory(APP, "-w", "2")
    with Load(srv.port) as load:
        os.kill(srv.pid, signal.SIGTTIN)
        srv.wait_for_log(r"Booting worker with pid: \d+", count=3)
        load.wait_more()
        os.kill(srv.pid, signal.SIGTTOU)
        srv.wait_for_log(r"Worker exiting \(pid: \d+\)")
        load.wait_more()
    assert load.failures == [], load.failures[:5]


def test_kill_9_under_load_replaced_within_a_second(server_factory):
    srv = server_factory(APP, "-w", "2")
    with Load(srv.port, clients=2) as load:
        victim = srv.worker_pids()[0]
        t0 = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        srv.wait_for_log(r"Booting worker with pid: \d+", count=3, timeout=5)
        assert time.monotonic() - t0 < 1.0
        load.wait_more()
    # The killed worker may have been mid-request: that one request can be cut;
    # a refused connection never happens (the socket stays in the master).
    assert not [f for f in load.failures if "Refused" in f], load.failures
    assert len(load.failures) <= 1, load.failures


def test_max_requests_recycles_without_failures(server_factory):
    srv = server_factory(APP, "-w", "2", "--max-requests", "20")
    with Load(srv.port) as load:
        srv.wait_for_log(r"Booting worker with pid: \d+", count=6, timeout=20)
        load.wait_more()
    assert load.failures == [], load.failures[:5]
    assert "Autorestarting worker after current request." in srv.log_text()


# -- hooks ---------------------------------------------------------------------


def test_hooks_fire_in_gunicorns_order(server_factory, tmp_path):
    hooks = tmp_path / "hooks.log"
    srv = server_factory(APP, "-c", CONF, "-w", "1", env={"HOOK_LOG": str(hooks)})
    (worker,) = srv.worker_pids()
    assert wait_until(lambda: len(hook_lines(hooks)) >= 6, 5)
    assert srv.stop() == 0
    lines = hook_lines(hooks)
    names = [x[0] for x in lines]
    assert names == [
        "nworkers_changed",
        "on_starting",
        "when_ready",
        "pre_fork",
        "post_fork",
        "post_worker_init",
        "worker_exit",
        "child_exit",
        "on_exit",
    ], lines
    master = str(srv.pid)
    by = {x[0]: x for x in lines}
    for name in ("on_starting", "when_ready", "pre_fork", "child_exit", "on_exit"):
        assert by[name][1] == master, lines
    for name in ("post_fork", "post_worker_init", "worker_exit"):
        assert by[name][1] == str(worker), lines
    assert by["child_exit"][2] == str(worker)
    assert by["when_ready"][2] == "1"  # one listener


def test_pre_request_and_post_request_hooks(server_factory, tmp_path):
    hooks = tmp_path / "hooks.log"
    env = {"HOOK_LOG": str(hooks), "HOOK_RAISE": "pre_request"}
    srv = server_factory(APP, "-c", CONF, "-w", "1", env=env)
    (worker,) = srv.worker_pids()
    assert get(srv.port, "/?x=1").status == 200  # a raising pre_request is logged
    assert get(srv.port).status == 200
    lines = [x for x in hook_lines(hooks) if x[0].endswith("_request")]
    assert lines == [
        ["pre_request", str(worker), "GET", "/"],
        ["post_request", str(worker), "GET", "200", "1"],
        ["pre_request", str(worker), "GET", "/"],
        ["post_request", str(worker), "GET", "200", "2"],
    ], lines
    srv.wait_for_log(r"Exception in pre_request hook")


def test_a_raising_hook_is_logged_and_the_master_lives(server_factory, tmp_path):
    hooks = tmp_path / "hooks.log"
    env = {"HOOK_LOG": str(hooks), "HOOK_RAISE": "pre_fork,child_exit"}
    srv = server_factory(APP, "-c", CONF, "-w", "1", env=env)
    (worker,) = srv.worker_pids()
    srv.wait_for_log(r"Exception in pre_fork hook")
    os.kill(worker, signal.SIGKILL)
    srv.wait_for_log(r"Exception in child_exit hook")
    srv.wait_for_log(r"Booting worker with pid: \d+", count=2)
    assert get(srv.port).status == 200


def test_worker_int_and_worker_abort_hooks(server_factory, tmp_path):
    hooks = tmp_path / "hooks.log"
    srv = server_factory(
        APP, "-c", CONF, "-w", "1", "--timeout", "2", env={"HOOK_LOG": str(hooks)}
    )
    (first,) = srv.worker_pids()
    s = srv.connect(timeout=10)
    s.sendall(build_request("GET", "/hang"))
    srv.wait_for_log(r"hang request started", timeout=5)
    srv.wait_for_log(rf"WORKER TIMEOUT \(pid:{first}\)", timeout=8)
    assert wait_until(
        lambda: ["worker_abort", str(first), str(first)] in hook_lines(hooks), 5
    )
    s.close()
    srv.wait_for_log(r"Booting worker with pid: \d+", count=2)
    second = srv.worker_pids()[1]
    assert get(srv.port).status == 200  # its loop (and handlers) are up
    os.kill(second, signal.SIGQUIT)
    assert wait_until(
        lambda: ["worker_int", str(second), str(second)] in hook_lines(hooks), 5
    ), hook_lines(hooks)
    srv.wait_for_log(r"Booting worker with pid: \d+", count=3)
    assert get(srv.port).status == 200


# -- stopping ------------------------------------------------------------------


def test_term_closes_the_listener_first_and_removes_pidfile(server_factory, tmp_path):
    pidfile = tmp_path / "app.pid"
    srv = server_factory(
        APP, "-w", "1", "--pid", str(pidfile), "--graceful-timeout", "10"
    )
    assert read_pid(pidfile) == srv.pid
    s = srv.connect(timeout=10)
    s.sendall(build_request("GET", "/slow?s=1.5"))
    srv.wait_for_log(r"slow request started")
    os.kill(srv.pid, signal.SIGTERM)
    srv.wait_for_log(r"Handling signal: term")

    def refused():
        try:
            socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()
            return False
        except ConnectionRefusedError:
            return True
        except OSError:
            return False

    # the worker still finishes its request, but the master no longer listens
    # for new connections once the worker has closed its copy of the socket
    resp = parse_response(recv_all(s, 10))
    s.close()
    assert resp.status == 200
    assert srv.wait_exit(10) == 0
    assert refused()
    assert not pidfile.exists()


# -- process titles -------------------------------------------------------------


def title(pid: int) -> str:
    """``pid``'s command line as ps shows it (setproctitle rewrites it)."""
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def test_process_titles_name_master_and_workers(server_factory, tmp_path):
    """gunicorn's titles (with setproctitle installed): ``master [NAME]`` and
    ``worker [NAME]``, NAME the app's URI unless -n/--name (proc_name) says;
    a HUP that changes proc_name renames the master and the new workers."""
    pytest.importorskip("setproctitle", reason="the test extra installs it")
    srv = server_factory(APP, "-w", "2")
    assert title(srv.pid) == f"cunicorn: master [{APP}]"
    # a worker sets its title in the child, maybe after its boot line
    want = [f"cunicorn: worker [{APP}]"] * 2
    assert wait_until(lambda: [title(p) for p in srv.worker_pids()] == want, 5)

    name = tmp_path / "name"
    name.write_text("api")
    conf = tmp_path / "conf.py"
    conf.write_text(f"proc_name = open({str(name)!r}).read()\n")
    srv = server_factory(APP, "-c", str(conf), "-w", "1")
    assert title(srv.pid) == "cunicorn: master [api]"
    worker = srv.worker_pids()[0]
    assert wait_until(lambda: title(worker) == "cunicorn: worker [api]", 5)
    name.write_text("api-v2")
    os.kill(srv.pid, signal.SIGHUP)
    srv.wait_for_log(r"Booting worker with pid: \d+", count=2)
    assert wait_until(lambda: title(srv.pid) == "cunicorn: master [api-v2]", 5)
    worker = srv.worker_pids()[1]
    assert wait_until(lambda: title(worker) == "cunicorn: worker [api-v2]", 5)


# -- pid file and daemon -------------------------------------------------------


def test_live_pidfile_refuses_to_start_and_stale_one_is_replaced(tmp_path):
    pidfile = tmp_path / "app.pid"
    pidfile.write_text(f"{os.getpid()}\n")  # a live process: us
    proc = start_server_cmd(APP, "--pid", str(pidfile))
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1, (out, err)
    assert b"Already running on PID" in out + err
    assert read_pid(pidfile) == os.getpid()


def test_stale_pidfile_is_replaced(server_factory, tmp_path):
    pidfile = tmp_path / "app.pid"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    pidfile.write_text(f"{dead.pid}\n")
    srv = server_factory(APP, "--pid", str(pidfile))
    assert read_pid(pidfile) == srv.pid
    assert srv.stop() == 0
    assert not pidfile.exists()


class Daemon:
    """A daemonized cunicorn (-D -R --pid): the launcher exits at once; the
    master is found through the pid file, the log through -R's stdout."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.pidfile = tmp_path / "d.pid"
        self.log_path = tmp_path / "d.log"
        self._fh = open(self.log_path, "wb")
        self.args = args
        self.seen: set[int] = set()

    def start(self) -> "Daemon":
        proc = start_server_cmd(
            APP, "-D", "-R", "--pid", str(self.pidfile), *self.args, log_file=self._fh
        )
        assert proc.wait(10) == 0
        assert wait_until(lambda: read_pid(self.pidfile), 10), self.log()
        self.pid = read_pid(self.pidfile)
        self.seen.add(self.pid)
        m = self.wait_log(r"Listening at: http://127\.0\.0\.1:(\d+)")
        self.port = int(m.group(1))
        self.wait_log(r"Booting worker with pid: \d+")
        return self

    def log(self) -> str:
        return self.log_path.read_bytes().decode("utf-8", "replace")

    def wait_log(self, regex: str, count: int = 1, timeout: float = 10.0):
        pat = re.compile(regex)

        def found():
            ms = list(pat.finditer(self.log()))
            return ms[count - 1] if len(ms) >= count else None

        m = wait_until(found, timeout)
        assert m, f"{regex!r} x{count} not seen\n{self.log()}"
        return m

    def cleanup(self) -> None:
        pids = set(self.seen)
        pids |= {
            int(p) for p in re.findall(r"Booting worker with pid: (\d+)", self.log())
        }
        pids |= {int(p) for p in re.findall(r"\[(\d+)\] \[INFO\] Starting", self.log())}
        for pid in pids:
            if not pid_gone(pid) and is_cunicorn(pid):
                os.kill(pid, signal.SIGKILL)
        self._fh.close()


@pytest.fixture
def daemon(tmp_path):
    started = []

    def make(*args):
        d = Daemon(tmp_path, *args)
        started.append(d)
        return d.start()

    yield make
    for d in started:
        d.cleanup()


def test_daemon_writes_pidfile_detaches_and_stops(daemon):
    d = daemon("-w", "1")
    assert d.pid != os.getpid()
    assert os.getsid(d.pid) != os.getsid(0)  # a session of its own (setsid)
    assert get(d.port).status == 200
    os.kill(d.pid, signal.SIGTERM)
    assert wait_until(lambda: pid_gone(d.pid), 10)
    assert wait_until(lambda: not d.pidfile.exists(), 5)
    assert "Shutting down: Master" in d.log()


def test_usr2_winch_quit_upgrade(daemon, tmp_path):
    has_setproctitle = importlib.util.find_spec("setproctitle") is not None
    d = daemon("-w", "2")
    old_master = d.pid
    old_workers = {
        int(p) for p in re.findall(r"Booting worker with pid: (\d+)", d.log())
    }
    pid2 = Path(str(d.pidfile) + ".2")
    with Load(d.port) as load:
        os.kill(old_master, signal.SIGUSR2)
        assert wait_until(lambda: read_pid(pid2), 15), d.log()
        new_master = read_pid(pid2)
        d.seen.add(new_master)
        assert new_master != old_master
        d.wait_log(r"Booting worker with pid: \d+", count=4, timeout=15)
        if has_setproctitle:  # the new master's name says it is the second
            assert title(new_master) == f"cunicorn: master [{APP}.2]"
        # a second USR2 while the child lives is refused
        os.kill(old_master, signal.SIGUSR2)
        d.wait_log(r"USR2 signal ignored. Child exists.")
        # ... and so is one to the new master while its parent lives
        os.kill(new_master, signal.SIGUSR2)
        d.wait_log(r"USR2 signal ignored. Parent exists.")
        load.wait_more()
        os.kill(old_master, signal.SIGWINCH)
        d.wait_log(r"graceful stop of workers")
        assert wait_until(lambda: all(pid_gone(p) for p in old_workers), 10)
        load.wait_more()
        os.kill(old_master, signal.SIGQUIT)
        assert wait_until(lambda: pid_gone(old_master), 10)
        d.wait_log(r"Master has been promoted.")
        if has_setproctitle:
            want = f"cunicorn: master [{APP}]"
            assert wait_until(lambda: title(new_master) == want, 5)
        assert wait_until(lambda: read_pid(d.pidfile) == new_master, 5)
        assert not pid2.exists()
        load.wait_more()
    assert load.failures == [], load.failures[:5]
    os.kill(new_master, signal.SIGTERM)
    assert wait_until(lambda: pid_gone(new_master), 10)
    assert wait_until(lambda: not d.pidfile.exists(), 5)


def test_winch_is_ignored_when_not_daemonized(server_factory):
    srv = server_factory(APP, "-w", "1", "--log-level", "debug")
    os.kill(srv.pid, signal.SIGWINCH)
    srv.wait_for_log(r"SIGWINCH ignored. Not daemonized")
    assert get(srv.port).status == 200


# -- systemd -------------------------------------------------------------------


def test_systemd_socket_activation_and_notify(tmp_path):
    port_file = tmp_path / "port"
    notify = tmp_path / "notify.sock"
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(str(notify))
    ns.settimeout(15)
    env = dict(os.environ, NOTIFY_SOCKET=str(notify), PYTHONUNBUFFERED="1")
    log_path = tmp_path / "sd.log"
    with open(log_path, "wb") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "tests/cli/apps/sd_launcher.py",
                str(port_file),
                "--",
                "-b",
                "127.0.0.1:1",  # ignored: systemd's socket wins
                "-w",
                "1",
                APP,
            ],
            cwd=str(REPO_ROOT),
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        msg = ns.recv(4096)
        assert msg.startswith(b"READY=1"), msg
        port = int(port_file.read_text())
        log = log_path.read_text()
        assert f"Listening at: http://127.0.0.1:{port} ({proc.pid})" in log
        assert wait_until(lambda: "Booting worker" in log_path.read_text(), 10)
        assert get(port).status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert ns.recv(4096).startswith(b"STOPPING=1")
    finally:
        ns.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        for p in re.findall(r"Booting worker with pid: (\d+)", log_path.read_text()):
            if not pid_gone(int(p)) and is_cunicorn(int(p)):
                os.kill(int(p), signal.SIGKILL)
