"""The settings registry and the command line: names, flags, defaults,
validators and precedence, as gunicorn has them."""

import os
import sys

import pytest
from cunicorn.app import Application
from cunicorn.config import REGISTRY, Config, settings_markdown, validate_pos_int

from tests.support.config import load, load_exit

DEFAULT_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'

# name: (flags, default) exactly as gunicorn 27's config.py
GUNICORN = {
    "bind": (["-b", "--bind"], ["127.0.0.1:8000"]),
    "workers": (["-w", "--workers"], 1),
    "worker_class": (["-k", "--worker-class"], "sync"),
    "threads": (["--threads"], 1),
    "timeout": (["-t", "--timeout"], 30),
    "graceful_timeout": (["--graceful-timeout"], 30),
    "keepalive": (["--keep-alive"], 2),
    "backlog": (["--backlog"], 2048),
    "chdir": (["--chdir"], None),  # the current directory
    "pythonpath": (["--pythonpath"], None),
    "preload_app": (["--preload"], False),
    "accesslog": (["--access-logfile"], None),
    "access_log_format": (["--access-logformat"], DEFAULT_FORMAT),
    "errorlog": (["--error-logfile", "--log-file"], "-"),
    "loglevel": (["--log-level"], "info"),
    "max_requests": (["--max-requests"], 0),
    "max_requests_jitter": (["--max-requests-jitter"], 0),
    "limit_request_line": (["--limit-request-line"], 4094),
    "limit_request_fields": (["--limit-request-fields"], 100),
    "limit_request_field_size": (["--limit-request-field_size"], 8190),
    "config": (["-c", "--config"], "./gunicorn.conf.py"),
}


@pytest.mark.parametrize("name", sorted(GUNICORN))
def test_setting_flags_and_defaults_are_gunicorns(name, isolated):
    flags, default = GUNICORN[name]
    assert REGISTRY[name].cli == flags
    cfg = Config()
    if name == "chdir":
        assert cfg.chdir == str(isolated)
    else:
        assert getattr(cfg, name) == default


def test_settings_have_sections_and_docs():
    for s in REGISTRY.values():
        assert s.section, s.name
        assert s.short, s.name


def test_default_bind_from_port(monkeypatch):
    monkeypatch.setenv("PORT", "5555")
    assert Config().bind == ["0.0.0.0:5555"]


def test_default_workers_from_web_concurrency(monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "7")
    assert Config().workers == 7


@pytest.mark.parametrize(
    "argv, name, value",
    [
        (["-b", "127.0.0.1:0"], "bind", ["127.0.0.1:0"]),
        (["--bind", "a:1", "-b", "unix:/tmp/s"], "bind", ["a:1", "unix:/tmp/s"]),
        (["-w", "3"], "workers", 3),
        (["--workers=4"], "workers", 4),
        (["-k", "sync"], "worker_class", "sync"),
        (
            ["-k", "gunicorn.workers.sync.SyncWorker"],
            "worker_class",
            "gunicorn.workers.sync.SyncWorker",
        ),
        (["--threads", "1"], "threads", 1),
        (["-t", "5"], "timeout", 5),
        (["--timeout", "0"], "timeout", 0),
        (["--graceful-timeout", "7"], "graceful_timeout", 7),
        (["--keep-alive", "9"], "keepalive", 9),
        (["--backlog", "64"], "backlog", 64),
        (["--pythonpath", "a,b"], "pythonpath", "a,b"),
        (["--preload"], "preload_app", True),
        (["--access-logfile", "-"], "accesslog", "-"),
        (["--access-logformat", "%(h)s"], "access_log_format", "%(h)s"),
        (["--error-logfile", "e.log"], "errorlog", "e.log"),
        (["--log-file", "f.log"], "errorlog", "f.log"),
        (["--log-level", "debug"], "loglevel", "debug"),
        (["--max-requests", "100"], "max_requests", 100),
        (["--max-requests-jitter", "10"], "max_requests_jitter", 10),
        (["--limit-request-line", "0"], "limit_request_line", 0),
        (["--limit-request-fields", "50"], "limit_request_fields", 50),
        (["--limit-request-field_size", "100"], "limit_request_field_size", 100),
    ],
)
def test_each_flag_sets_its_setting(argv, name, value):
    assert getattr(load(argv), name) == value


def test_chdir_flag(isolated, tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    cfg = load(["--chdir", str(target)])
    assert cfg.chdir == str(target)
    assert os.getcwd() == str(target)


def test_chdir_relative_is_made_absolute(isolated):
    (isolated / "sub").mkdir()
    cfg = load(["--chdir", "sub"])
    assert cfg.chdir == str(isolated / "sub")


def test_app_module_positional():
    app = Application(["-w", "2", "mod.sub:make_app()"])
    assert app.app_uri == "mod.sub:make_app()"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["-w", "abc"], "argument -w/--workers: invalid int value: 'abc'"),
        (["-w", "-1"], "argument -w/--workers: Value must be positive: -1"),
        (["--timeout", "x"], "argument -t/--timeout: invalid int value: 'x'"),
        (["--backlog", "1.5"], "argument --backlog: invalid int value: '1.5'"),
        (
            ["--limit-request-line", "-3"],
            "argument --limit-request-line: Value must be positive: -3",
        ),
        (["--chdir", "/nonexistent/dir"], "argument --chdir: can't chdir to"),
        (["--no-such-option"], "unrecognized arguments: --no-such-option"),
    ],
)
def test_bad_value_is_argparse_error_naming_the_option(argv, message, capsys):
    code, err = load_exit(argv, capsys)
    assert code == 2
    assert message in err
    assert err.startswith("usage: cunicorn [OPTIONS] [APP_MODULE]")


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        Application(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == "cunicorn (version 0.1.0)\n"


def test_no_app_module_is_gunicorns_error(capsys):
    with pytest.raises(SystemExit) as exc:
        Application(["-w", "2"])
    assert exc.value.code == 1
    assert "Error: No application module specified." in capsys.readouterr().err


# --- precedence ---


def test_env_args_apply(monkeypatch):
    monkeypatch.setenv("GUNICORN_CMD_ARGS", "-w 3 --timeout 12")
    cfg = load([])
    assert (cfg.workers, cfg.timeout) == (3, 12)


def test_command_line_beats_env_args(monkeypatch):
    monkeypatch.setenv("GUNICORN_CMD_ARGS", "-w 3 --timeout 12")
    cfg = load(["-w", "5"])
    assert (cfg.workers, cfg.timeout) == (5, 12)


def test_cunicorn_cmd_args_beat_gunicorn_cmd_args(monkeypatch):
    monkeypatch.setenv("GUNICORN_CMD_ARGS", "-w 3 --keep-alive 4")
    monkeypatch.setenv("CUNICORN_CMD_ARGS", "-w 6")
    cfg = load([])
    assert (cfg.workers, cfg.keepalive) == (6, 4)


def test_env_args_beat_environment_defaults(monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "9")
    monkeypatch.setenv("PORT", "7000")
    monkeypatch.setenv("GUNICORN_CMD_ARGS", "-w 2")
    cfg = load([])
    assert cfg.workers == 2
    assert cfg.bind == ["0.0.0.0:7000"]


def test_bind_on_command_line_replaces_default_and_env(monkeypatch):
    monkeypatch.setenv("GUNICORN_CMD_ARGS", "-b 1.2.3.4:1")
    cfg = load(["-b", "127.0.0.1:0"])
    assert cfg.bind == ["127.0.0.1:0"]


def test_bad_value_in_env_args_exits_2(monkeypatch, capsys):
    monkeypatch.setenv("GUNICORN_CMD_ARGS", "-w nope")
    code, err = load_exit([], capsys)
    assert code == 2
    assert "invalid int value: 'nope'" in err


# --- config files ---


def test_config_file_sits_between_defaults_and_env(isolated, monkeypatch):
    conf = isolated / "conf.py"
    conf.write_text("workers = 4\ntimeout = 11\nkeepalive = 8\nunrelated = 1\n")
    monkeypatch.setenv("GUNICORN_CMD_ARGS", "--timeout 12")
    cfg = load(["-c", str(conf), "--keep-alive", "3"])
    assert (cfg.workers, cfg.timeout, cfg.keepalive) == (4, 12, 3)


def test_default_config_file_is_read(isolated):
    (isolated / "gunicorn.conf.py").write_text("workers = 5\n")
    assert load([]).workers == 5


def test_config_file_prefix_and_wsgi_app(isolated):
    (isolated / "c.py").write_text("wsgi_app = 'pkg:application'\nbind = 'a:1'\n")
    app = Application(["-c", "file:c.py"])
    assert app.app_uri == "pkg:application"
    assert app.cfg.bind == ["a:1"]


def test_config_from_python_module(isolated, app_module):
    name = app_module("workers = 6\n")
    assert load(["-c", f"python:{name}"]).workers == 6


def test_config_file_invalid_value_exits_1(isolated, capsys):
    (isolated / "c.py").write_text("workers = 'many'\n")
    code, err = load_exit(["-c", "c.py"], capsys)
    assert code == 1
    assert "Invalid value for workers: many" in err


def test_config_file_exception_exits_1_with_traceback(isolated, capsys):
    (isolated / "c.py").write_text("raise ValueError('boom')\n")
    code, err = load_exit(["-c", "c.py"], capsys)
    assert code == 1
    assert "Failed to read config file:" in err
    assert "ValueError: boom" in err


def test_missing_config_file_exits_1(capsys):
    code, err = load_exit(["-c", "nope.py"], capsys)
    assert code == 1
    assert "'nope.py' doesn't exist" in err


def test_unimplemented_gunicorn_setting_in_config_warns(isolated, capsys):
    (isolated / "c.py").write_text("spew = True\nworkers = 2\n")
    cfg = load(["-c", "c.py"])
    assert (cfg.workers, cfg.spew) == (2, True)
    assert "'spew' is not implemented by cunicorn yet" in capsys.readouterr().err


def test_implemented_settings_do_not_warn(isolated, capsys):
    # initgroups (arbiter) and the request hooks (hooks.py) are acted on
    (isolated / "c.py").write_text(
        "initgroups = True\n"
        "def pre_request(worker, req):\n    pass\n"
        "def post_request(worker, req, environ, resp):\n    pass\n"
    )
    cfg = load(["-c", "c.py"])
    assert cfg.initgroups is True
    assert cfg.changed("pre_request") and cfg.changed("post_request")
    assert cfg.warnings() == []
    assert "not implemented" not in capsys.readouterr().err


def test_dropped_gunicorn_settings_in_config_warn(isolated, capsys):
    (isolated / "c.py").write_text(
        "debug = True\nx_forwarded_for_header = 'X-FORWARDED-FOR'\nworkers = 2\n"
        "import os\nmy_own_name = 1\n"
    )
    assert load(["-c", "c.py"]).workers == 2
    err = capsys.readouterr().err
    assert "'debug' is not a setting any more" in err
    assert "'x_forwarded_for_header' is not a setting any more" in err
    assert "my_own_name" not in err and "'os'" not in err


# --- worker class and threads ---


@pytest.mark.parametrize(
    "argv",
    [
        ["-k", "sync"],
        ["-k", "gunicorn.workers.sync.SyncWorker"],
        ["-k", "egg:gunicorn#sync"],
        ["--threads", "1"],
    ],
)
def test_sync_worker_spellings(argv):
    assert load(argv).worker_class_str == "sync"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["-k", "eventlet"], "worker class 'eventlet' is not supported"),
        (["-k", "tornado"], "worker class 'tornado' is not supported"),
        (["-k", "my.Worker"], "class uri 'my.Worker' invalid or not found"),
    ],
)
def test_unsupported_worker_classes_are_clear_errors(argv, message, capsys):
    code, err = load_exit(argv, capsys)
    assert code == 1
    assert message in err


@pytest.mark.parametrize(
    "argv, name",
    [
        (["-k", "gthread"], "gthread"),
        (["--threads", "4"], "gthread"),
        (["-k", "gevent"], "gevent"),
        (["-k", "gunicorn.workers.ggevent.GeventWorker"], "gevent"),
    ],
)
def test_worker_classes_need_their_c_loop(argv, name, capsys, monkeypatch):
    from cunicorn import config

    monkeypatch.setattr(config, "worker_class_available", lambda n: False)
    code, err = load_exit(argv, capsys)
    assert code == 1
    assert f"worker class {name!r} is not available in this build" in err


# --- validators and effective limits ---


@pytest.mark.parametrize(
    "raw, value", [("10", 10), ("0x10", 16), (7, 7), (True, 1), ("0", 0)]
)
def test_validate_pos_int(raw, value):
    assert validate_pos_int(raw) == value


@pytest.mark.parametrize("raw", ["-1", -5, "abc"])
def test_validate_pos_int_rejects(raw):
    with pytest.raises(ValueError):
        validate_pos_int(raw)


def test_config_set_validates():
    cfg = Config()
    cfg.set("workers", "3")
    assert cfg.workers == 3
    with pytest.raises(ValueError):
        cfg.set("workers", "-3")
    with pytest.raises(AttributeError):
        cfg.set("no_such_setting", 1)
    with pytest.raises(AttributeError):
        cfg.no_such_setting  # noqa: B018


@pytest.mark.parametrize(
    "line, fields, size, expected",
    [
        (4094, 100, 8190, (4094, 100, 8190)),
        (0, 0, 0, (0, 32768, 8190)),
        (9000, 40000, 20000, (8190, 32768, 20000)),
        (8190, 32768, 1, (8190, 32768, 1)),
    ],
)
def test_effective_limits_clamp_as_gunicorn(line, fields, size, expected):
    cfg = Config()
    cfg.set("limit_request_line", line)
    cfg.set("limit_request_fields", fields)
    cfg.set("limit_request_field_size", size)
    assert (
        cfg.effective_limit_request_line,
        cfg.effective_limit_request_fields,
        cfg.effective_limit_request_field_size,
    ) == expected


def test_pythonpath_is_prepended(isolated):
    app = Application(["--pythonpath", "one,two", "x:app"])
    app.add_pythonpath()
    one, two = os.path.abspath("one"), os.path.abspath("two")
    assert sys.path.index(two) < sys.path.index(one)


def test_cwd_is_on_sys_path(isolated):
    Application(["x:app"])
    assert str(isolated) in sys.path


def test_settings_markdown_lists_every_setting():
    doc = settings_markdown()
    for name, s in REGISTRY.items():
        assert f"### `{name}`" in doc
        for flag in s.cli:
            assert f"`{flag}" in doc
    assert "## Server Socket" in doc
