"""Error and access logs: gunicorn's loggers, formats, atoms and escaping."""

import base64
import logging
import os
import re
import sys

import pytest
from cunicorn.config import Config
from cunicorn.glogging import Logger

ENVIRON = {
    "REQUEST_METHOD": "GET",
    "RAW_URI": "/path/x?a=1",
    "PATH_INFO": "/path/x",
    "QUERY_STRING": "a=1",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "10.1.2.3",
    "HTTP_REFERER": "http://ref/",
    "HTTP_USER_AGENT": 'agent "quoted"',
    "HTTP_X_FORWARDED_FOR": "1.1.1.1",
    "CONTENT_TYPE": "text/plain",
    "HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"alice:secret").decode(),
    "wsgi.url_scheme": "http",
    "MY_VAR": "v",
}
HEADERS = [("Content-Type", "text/html"), ("X-Id", "1"), ("X-Id", "2")]


def make_logger(tmp_path, *argv):
    cfg = Config()
    for name, value in argv:
        cfg.set(name, value)
    return Logger(cfg)


@pytest.fixture
def access_file(tmp_path):
    return tmp_path / "access.log"


def access_line(tmp_path, fmt, environ=ENVIRON, status="200 OK", length=5, t=1.5):
    path = tmp_path / f"access{len(os.listdir(tmp_path))}.log"
    log = make_logger(tmp_path, ("accesslog", str(path)), ("access_log_format", fmt))
    log.access(environ, status, HEADERS, length, t)
    log.flush()
    return path.read_text().rstrip("\n")


def test_default_format_line(tmp_path):
    line = access_line(tmp_path, Config().access_log_format)
    m = re.fullmatch(
        r"10\.1\.2\.3 - alice \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "
        r'"GET /path/x\?a=1 HTTP/1\.1" 200 5 "http://ref/" "agent \\"quoted\\""',
        line,
    )
    assert m, line


@pytest.mark.parametrize(
    "atom, value",
    [
        ("h", "10.1.2.3"),
        ("l", "-"),
        ("u", "alice"),
        ("r", "GET /path/x?a=1 HTTP/1.1"),
        ("m", "GET"),
        ("U", "/path/x"),
        ("q", "a=1"),
        ("H", "HTTP/1.1"),
        ("s", "200"),
        ("B", "5"),
        ("b", "5"),
        ("f", "http://ref/"),
        ("a", 'agent \\"quoted\\"'),
        ("T", "1"),
        ("M", "1500"),
        ("D", "1500000"),
        ("L", "1.500000"),
        ("p", f"<{os.getpid()}>"),
        ("{x-forwarded-for}i", "1.1.1.1"),
        ("{X-Forwarded-For}i", "1.1.1.1"),
        ("{content-type}i", "text/plain"),
        ("{missing}i", "-"),
        ("{content-type}o", "text/html"),
        ("{x-id}o", "2"),
        ("{my_var}e", "v"),
        ("{MY_VAR}e", "v"),
        ("{wsgi.url_scheme}e", "http"),
        ("{nope}e", "-"),
        ("nonexistent", "-"),
    ],
)
def test_atom(tmp_path, atom, value):
    assert access_line(tmp_path, f"%({atom})s") == value


def test_no_length_and_no_user(tmp_path):
    env = {k: v for k, v in ENVIRON.items() if k != "HTTP_AUTHORIZATION"}
    assert access_line(tmp_path, "%(b)s|%(B)s|%(u)s", env, length=None) == "-|None|-"


def test_zero_length_is_0_as_gunicorn(tmp_path):
    assert access_line(tmp_path, "%(b)s", length=0) == "0"


def test_t_atom_is_clf_date(tmp_path):
    assert re.fullmatch(
        r"\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]",
        access_line(tmp_path, "%(t)s"),
    )


def test_status_none_logs_dash(tmp_path):
    assert access_line(tmp_path, "%(s)s", status=None) == "-"


def test_access_to_stdout(tmp_path, capsys):
    log = make_logger(tmp_path, ("accesslog", "-"), ("access_log_format", "%(m)s"))
    log.access(ENVIRON, "204 No Content", [], 0, 0.01)
    assert capsys.readouterr().out == "GET\n"


def test_no_access_log_by_default(tmp_path, capsys):
    log = make_logger(tmp_path)
    assert not log.access_log_enabled
    log.access(ENVIRON, "200 OK", [], 0, 0.01)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_error_log_format_to_stderr(tmp_path, capsys):
    log = make_logger(tmp_path)
    log.info("hello %s", "there")
    err = capsys.readouterr().err
    date = r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\]"
    expected = date + rf" \[{os.getpid()}\] \[INFO\] hello there\n"
    assert re.fullmatch(expected, err), err


def test_error_log_to_file_and_level(tmp_path, capsys):
    path = tmp_path / "error.log"
    log = make_logger(tmp_path, ("errorlog", str(path)), ("loglevel", "warning"))
    log.info("quiet")
    log.warning("loud")
    log.flush()
    text = path.read_text()
    assert "[WARNING] loud" in text
    assert "quiet" not in text
    assert capsys.readouterr().err == ""


def test_loggers_are_gunicorns(tmp_path):
    log = make_logger(tmp_path, ("accesslog", "-"))
    assert log.error_log is logging.getLogger("gunicorn.error")
    assert log.access_log is logging.getLogger("gunicorn.access")
    assert not log.error_log.propagate


def test_setup_twice_does_not_stack_handlers(tmp_path):
    cfg = Config()
    log = Logger(cfg)
    log.setup(cfg)
    ours = [h for h in log.error_log.handlers if getattr(h, "_gunicorn", False)]
    assert len(ours) == 1


def test_unwritable_error_log(tmp_path):
    with pytest.raises(RuntimeError, match="isn't writable"):
        make_logger(tmp_path, ("errorlog", str(tmp_path / "no" / "dir" / "e.log")))


def test_error_log_callback_with_exception(tmp_path, capsys):
    log = make_logger(tmp_path)
    try:
        raise ValueError("app broke")
    except ValueError:
        log.error_log_callback("error", "Error handling request /x", True)
    err = capsys.readouterr().err
    assert "[ERROR] Error handling request /x" in err
    assert "Traceback (most recent call last)" in err
    assert "ValueError: app broke" in err


def test_error_log_callback_without_exception(tmp_path, capsys):
    log = make_logger(tmp_path)
    log.error_log_callback("warning", "100% sure", False)
    err = capsys.readouterr().err
    assert "[WARNING] 100% sure" in err
    assert "Traceback" not in err


def test_master_log(tmp_path, capsys):
    log = make_logger(tmp_path)
    log.master_log("info", "Handling signal: term")
    log.master_log("debug", "hidden")
    err = capsys.readouterr().err
    assert "[INFO] Handling signal: term" in err
    assert "hidden" not in err


def test_wsgi_errors_goes_to_error_log_streams(tmp_path):
    path = tmp_path / "error.log"
    log = make_logger(tmp_path, ("errorlog", str(path)))
    errors = log.wsgi_errors()
    errors.write("from app\n")
    errors.writelines(["a\n", "b\n"])
    errors.flush()
    assert path.read_text() == "from app\na\nb\n"


def test_wsgi_errors_stderr(tmp_path):
    log = make_logger(tmp_path)
    # pytest may add capture handlers of its own: only check ours
    streams = log.wsgi_errors().streams
    assert streams[0] is sys.stderr
    assert streams.count(sys.stderr) == 1


def test_reopen_files(tmp_path):
    path = tmp_path / "access.log"
    log = make_logger(tmp_path, ("accesslog", str(path)), ("access_log_format", "x"))
    log.access(ENVIRON, "200 OK", [], 0, 0.0)
    os.rename(path, tmp_path / "access.log.1")
    log.reopen_files()
    log.access(ENVIRON, "200 OK", [], 0, 0.0)
    log.flush()
    assert path.read_text() == "x\n"
    assert (tmp_path / "access.log.1").read_text() == "x\n"
