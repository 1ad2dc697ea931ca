"""--reload: a changed module or --reload-extra-file restarts the worker; a
syntax error serves a 500 with the traceback until it is fixed."""

import pytest

from tests.support.server import Server, wait_until

APP = (
    "def app(environ, start_response):\n"
    "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
    "    return [{body!r}]\n"
)


def body(srv):
    return srv.fetch(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")


def write_app(path, text):
    path.write_text(APP.format(body=text))


@pytest.mark.parametrize("engine", ["poll", "inotify"])
def test_module_change_and_syntax_error(tmp_path, engine):
    mod = tmp_path / "reloadapp.py"
    write_app(mod, b"one")
    with Server(
        "reloadapp:app",
        "--reload",
        "--reload-engine",
        engine,
        "--pythonpath",
        str(tmp_path),
    ) as srv:
        assert body(srv).body == b"one"
        mark = srv.log_mark()
        write_app(mod, b"two")
        srv.wait_for_log(r"Worker reloading: .*reloadapp\.py modified", since=mark)
        assert wait_until(lambda: body(srv).body == b"two", 10)
        mark = srv.log_mark()
        mod.write_text("def app(:\n")
        srv.wait_for_log(r"Worker reloading", since=mark)
        resp = wait_until(lambda: (r := body(srv)).status == 500 and r, 10)
        assert resp, srv.log_tail()
        assert b"SyntaxError" in resp.body and b"reloadapp.py" in resp.body
        write_app(mod, b"three")
        assert wait_until(lambda: body(srv).body == b"three", 10), srv.log_tail()


def test_extra_file_change(tmp_path):
    write_app(tmp_path / "reloadapp2.py", b"a")
    extra = tmp_path / "templates.txt"
    extra.write_text("v1")
    with Server(
        "reloadapp2:app",
        "--reload",
        "--reload-extra-file",
        str(extra),
        "--pythonpath",
        str(tmp_path),
    ) as srv:
        assert body(srv).status == 200  # the worker has loaded: watching
        pids = srv.worker_pids()
        mark = srv.log_mark()
        extra.write_text("v2")
        srv.wait_for_log(r"Worker reloading: .*templates\.txt modified", since=mark)
        srv.wait_for_log(r"Booting worker with pid", since=mark)
        assert srv.worker_pids() != pids
        assert body(srv).status == 200
