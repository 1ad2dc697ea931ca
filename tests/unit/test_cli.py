"""The command itself, run as ``python -m cunicorn`` in a subprocess: exit codes
and messages that need no running server."""

import subprocess
import sys

import pytest
from cunicorn import cli


def run(*args, cwd=None, env=None):
    return subprocess.run(
        [sys.executable, "-m", "cunicorn", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
    )


@pytest.mark.parametrize("flag", ["-v", "--version"])
def test_version(flag):
    r = run(flag)
    assert r.returncode == 0
    assert r.stdout == "cunicorn (version 0.1.0)\n"


def test_help_lists_gunicorn_flags():
    r = run("--help")
    assert r.returncode == 0
    for flag in ("--bind", "--workers", "--limit-request-field_size", "--preload"):
        assert flag in r.stdout


def test_bad_option_value_exits_2():
    r = run("-w", "two", "x:app")
    assert r.returncode == 2
    assert "cunicorn: error: argument -w/--workers: invalid int value: 'two'" in (
        r.stderr
    )


def test_unknown_option_exits_2():
    r = run("--bogus", "x:app")
    assert r.returncode == 2
    assert "unrecognized arguments: --bogus" in r.stderr


def test_no_app_module_exits_1_like_gunicorn():
    r = run("-w", "1")
    assert r.returncode == 1
    assert "Error: No application module specified." in r.stderr


def test_unsupported_worker_class_exits_1():
    r = run("-k", "eventlet", "x:app")
    assert r.returncode == 1
    assert "worker class 'eventlet' is not supported by cunicorn" in r.stderr


def test_preload_missing_module_exits_3(tmp_path):
    r = run("--preload", "-b", "127.0.0.1:0", "no_such_mod_cli:app", cwd=tmp_path)
    assert r.returncode == 3
    assert "ModuleNotFoundError: No module named 'no_such_mod_cli'" in r.stderr


def test_preload_missing_attribute_exits_4(tmp_path):
    (tmp_path / "cli_app.py").write_text("x = 1\n")
    r = run("--preload", "-b", "127.0.0.1:0", "cli_app:app", cwd=tmp_path)
    assert r.returncode == 4
    assert "Failed to find attribute 'app' in 'cli_app'." in r.stderr


def test_bad_bind_address_exits_1(tmp_path):
    (tmp_path / "cli_app2.py").write_text("def app(e, s):\n    return []\n")
    r = run("--preload", "-b", "127.0.0.1:http", "cli_app2:app", cwd=tmp_path)
    assert r.returncode == 1
    assert "Error: 'http' is not a valid port number." in r.stderr


def test_main_in_process_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == "cunicorn (version 0.1.0)\n"


OK_APP = "def app(environ, start_response):\n    return []\n"


def test_check_config_loads_the_app_and_exits_0(isolated):
    (isolated / "okapp.py").write_text(OK_APP)
    r = run("--check-config", "-w", "3", "okapp:app")
    assert r.returncode == 0, r.stderr
    assert "Listening" not in r.stdout + r.stderr  # checked, never served


def test_check_config_with_an_app_that_fails_to_load_exits_1(isolated):
    (isolated / "badapp.py").write_text("raise ImportError('no model file')\n")
    r = run("--check-config", "badapp:app")
    assert r.returncode == 1
    assert "Error while loading the application" in r.stderr
    assert "ImportError: no model file" in r.stderr


def test_print_config_prints_the_resolved_settings(isolated):
    (isolated / "okapp.py").write_text(OK_APP)
    r = run("--print-config", "-w", "3", "--timeout", "7", "okapp:app")
    assert r.returncode == 0, r.stderr
    lines = dict(
        (k.strip(), v.strip())
        for k, _, v in (line.partition("=") for line in r.stdout.splitlines())
    )
    assert lines["workers"] == "3"
    assert lines["timeout"] == "7"
    assert lines["bind"] == "['127.0.0.1:8000']"
