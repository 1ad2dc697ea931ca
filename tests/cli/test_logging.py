"""Logging of the real command: logconfig_dict rotating files, syslog and
statsd over loopback UDP, an access log on /dev/full, --capture-output."""

import os
import socket
import time

import pytest

from tests.support.server import Server, wait_until

APP = (
    "def app(environ, start_response):\n"
    "    start_response('201 Created', [('Content-Type', 'text/plain')])\n"
    "    return [b'x' * 100]\n"
)


@pytest.fixture
def app_dir(tmp_path):
    (tmp_path / "logapp.py").write_text(APP)
    return tmp_path


def get(srv, path="/"):
    return srv.fetch(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())


def udp_listener():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5)
    return s


def collect(sock, until, timeout=10):
    """Datagrams received until ``until(list_of_texts)`` holds."""
    got = []
    deadline = time.monotonic() + timeout
    while not until(got) and time.monotonic() < deadline:
        try:
            got.append(sock.recv(65536).decode("utf-8", "replace"))
        except TimeoutError:
            break
    return got


def test_logconfig_dict_rotating_files(app_dir):
    conf = app_dir / "conf.py"
    conf.write_text(
        "logconfig_dict = {\n"
        "  'version': 1,\n"
        "  'loggers': {'gunicorn.access': {'level': 'INFO', 'handlers': ['acc'],\n"
        "                                  'propagate': False}},\n"
        "  'handlers': {'acc': {'class': 'logging.handlers.RotatingFileHandler',\n"
        f"     'filename': {str(app_dir / 'acc.log')!r}, 'maxBytes': 300,\n"
        "     'backupCount': 2}},\n"
        "}\n"
    )
    with Server("logapp:app", "-c", str(conf), "--pythonpath", str(app_dir)) as srv:
        for i in range(12):
            assert get(srv, f"/r{i}").status == 201
        assert wait_until(lambda: (app_dir / "acc.log.2").exists(), 5)
        assert (app_dir / "acc.log.1").exists()
        assert not (app_dir / "acc.log.3").exists()
        text = (app_dir / "acc.log").read_text()
        assert '"GET /r11 HTTP/1.1" 201 100' in text
        # root and gunicorn.error keep the defaults: the error log still works
        assert "Listening at" in srv.log_text()


def test_syslog_over_udp(app_dir):
    lst = udp_listener()
    port = lst.getsockname()[1]
    with Server(
        "logapp:app",
        "--pythonpath",
        str(app_dir),
        "--log-syslog",
        f"--log-syslog-to=udp://127.0.0.1:{port}",
        "--log-syslog-prefix",
        "web",
        "--log-syslog-facility",
        "local3",
        "--access-logfile",
        "-",
    ) as srv:
        assert get(srv, "/sys").status == 201
        got = collect(lst, lambda g: any("/sys" in m for m in g))
    lst.close()
    access = [m for m in got if "/sys" in m]
    assert access, got
    # <PRI>: local3 (19) * 8 + info (6) = 158; gunicorn's prefix and format
    assert access[0].startswith("<158>gunicorn.web.access: [")
    assert any(m.startswith("<158>gunicorn.web.error: [") for m in got), got


def test_statsd_metrics_over_udp(app_dir):
    lst = udp_listener()
    port = lst.getsockname()[1]
    with Server(
        "logapp:app",
        "--pythonpath",
        str(app_dir),
        "--statsd-host",
        f"127.0.0.1:{port}",
        "--statsd-prefix",
        "svc",
        "--dogstatsd-tags",
        "env:test",
    ) as srv:
        assert get(srv, "/m").status == 201
        got = collect(
            lst, lambda g: any("svc.gunicorn.request.status.201" in m for m in g)
        )
    lst.close()
    assert "svc.gunicorn.requests:1|c|@1.0|#env:test" in got
    assert "svc.gunicorn.request.status.201:1|c|@1.0|#env:test" in got
    assert any(
        m.startswith("svc.gunicorn.request.duration:") and m.endswith("|ms|#env:test")
        for m in got
    )
    assert "svc.gunicorn.workers:1|g|#env:test" in got


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_access_log_on_a_full_disk_serves_every_request(app_dir):
    with Server(
        "logapp:app", "--pythonpath", str(app_dir), "--access-logfile", "/dev/full"
    ) as srv:
        for i in range(20):
            assert get(srv, f"/f{i}").status == 201
        srv.wait_for_log(r"logging to /dev/full failed", timeout=5)
        text = srv.log_text()
    assert text.count("logging to /dev/full failed") == 1
    assert "Traceback" not in text
    assert "--- Logging error ---" not in text


PRINT_APP = (
    "import sys\n"
    "def app(environ, start_response):\n"
    "    print('app-stdout', environ['PATH_INFO'], flush=True)\n"
    "    print('app-stderr', environ['PATH_INFO'], file=sys.stderr, flush=True)\n"
    "    start_response('200 OK', [('Content-Length', '2')])\n"
    "    return [b'ok']\n"
)


def test_capture_output_sends_the_apps_prints_to_the_error_log(app_dir):
    """--capture-output with --error-logfile: what the app prints (stdout and
    stderr) lands in the error log file, not on the terminal."""
    (app_dir / "printapp.py").write_text(PRINT_APP)
    with Server(
        "printapp:app",
        "--pythonpath",
        str(app_dir),
        "--capture-output",
        error_log=app_dir / "error.log",
    ) as srv:
        assert get(srv, "/captured").status == 200
        srv.wait_for_log("app-stdout /captured")
        srv.wait_for_log("app-stderr /captured")
        assert b"app-std" not in srv.out_path.read_bytes()
