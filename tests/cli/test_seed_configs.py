"""The gunicorn config files of ../shared/seed-configs run unchanged with only
``-b 127.0.0.1:PORT`` added, in a directory with ./log, as their users run
them."""

import importlib.util
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys

import pytest
from cunicorn.config import worker_class_available

from tests.support.server import (
    REPO_ROOT,
    free_port,
    kill_and_wait,
    parse_response,
    read_pid,
    wait_until,
)

SEEDS = REPO_ROOT.parent / "shared" / "seed-configs"
if not SEEDS.is_dir():
    SEEDS = pathlib.Path("/work/shared/seed-configs")

APP = (
    "def app(environ, start_response):\n"
    "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
    "    return [b'seed ok']\n"
)

pytestmark = [
    pytest.mark.skipif(not SEEDS.is_dir(), reason="shared/seed-configs not found"),
    pytest.mark.skipif(
        importlib.util.find_spec("gevent") is None,
        reason="the seed configs import gevent.monkey",
    ),
]


def prepare(tmp_path, seed):
    shutil.copy(SEEDS / seed, tmp_path / seed)
    (tmp_path / "log").mkdir()
    (tmp_path / "app.py").write_text(APP)
    return tmp_path


def start(tmp_path, *args):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT / "pysrc"), env.get("PYTHONPATH", "")]
    )
    out = open(tmp_path / "out.txt", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cunicorn", *args],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    out.close()
    return proc


def get(port, path="/"):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: ua\r\n\r\n".encode())
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return parse_response(data)


def answers(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def test_sync_seed_four_workers_and_access_log(tmp_path):
    work = prepare(tmp_path, "gunicorn_sync.py")
    port = free_port()
    proc = start(work, "-c", "gunicorn_sync.py", "-b", f"127.0.0.1:{port}", "app:app")
    try:
        out = work / "out.txt"
        assert wait_until(
            lambda: (
                out.read_text().count("Booting worker with pid") >= 4 and answers(port)
            ),
            15,
        ), out.read_text()
        assert read_pid(work / "log" / "gunicorn.pid") == proc.pid
        resp = get(port, "/p?q=1")
        assert (resp.status, resp.body) == (200, b"seed ok")
        log = work / "log" / "gunicorn_access.log"
        assert wait_until(lambda: log.exists() and log.read_text(), 5)
        # the seed's own access_log_format (no %(t)s)
        assert log.read_text().splitlines()[0] == (
            '127.0.0.1 - - "GET /p?q=1 HTTP/1.1" 200 7 "-" "ua"'
        )
        text = out.read_text()
        assert "Using worker: sync" in text
        assert "[DEBUG]" in text  # loglevel = 'debug'
        assert "'debug' is not a setting any more" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    assert not (work / "log" / "gunicorn.pid").exists()


def run_gevent_seed(work, *extra):
    port = free_port()
    proc = start(
        work, "-c", "gunicorn_gevent.py", "-b", f"127.0.0.1:{port}", *extra, "app:app"
    )
    # daemon = True: the command returns once the daemon is detached
    assert proc.wait(15) == 0, (work / "out.txt").read_text()
    pidfile = work / "log" / "gunicorn.pid"
    pid = wait_until(lambda: read_pid(pidfile), 10)
    assert pid, (work / "out.txt").read_text()
    try:
        assert wait_until(lambda: answers(port), 15)
        resp = get(port, "/g")
        assert (resp.status, resp.body) == (200, b"seed ok")
        access = work / "log" / "gunicorn.access.log"
        assert wait_until(
            lambda: access.exists() and '"GET /g' in access.read_text(), 5
        )
        line = access.read_text().splitlines()[0]
        # the seed's "generic" formatter: quotes, pid, datefmt, levelname
        assert line.startswith("'[") and "] INFO [" in line, line
        assert '"GET /g HTTP/1.1" 200 7' in line
        error = work / "log" / "gunicorn.error.log"
        assert error.exists()  # WARNING and above only: empty on a clean start
        return pid
    except BaseException:
        kill_and_wait(pid)
        raise


def test_gevent_seed_with_sync_override(tmp_path):
    """Daemonizes, reload on, logconfig_dict with its own handlers and no root
    logger (gunicorn issue #2250): both rotating files are written."""
    work = prepare(tmp_path, "gunicorn_gevent.py")
    pid = run_gevent_seed(work, "-k", "sync")
    kill_and_wait(pid)
    text = (work / "out.txt").read_text()
    assert "'x_forwarded_for_header' is not a setting any more" in text


@pytest.mark.skipif(
    not worker_class_available("gevent"),
    reason="worker class 'gevent' is not in this build of cunicorn yet",
)
def test_gevent_seed_unchanged(tmp_path):
    work = prepare(tmp_path, "gunicorn_gevent.py")
    pid = run_gevent_seed(work)
    kill_and_wait(pid)


def test_gevent_seed_without_gevent_worker_names_it(tmp_path):
    if worker_class_available("gevent"):
        pytest.skip("the gevent worker class exists")
    work = prepare(tmp_path, "gunicorn_gevent.py")
    proc = start(work, "-c", "gunicorn_gevent.py", "-b", "127.0.0.1:1", "app:app")
    assert proc.wait(15) == 1
    assert "worker class 'gevent'" in (work / "out.txt").read_text()
