"""Every gunicorn setting in the registry with gunicorn's flags, defaults and
validators; warnings for what cunicorn does not do; the generated docs."""

import os
import pathlib
import sys

import pytest
from cunicorn import cli
from cunicorn.config import (
    DROPPED_SETTINGS,
    NOT_IMPLEMENTED,
    OUT_OF_SCOPE,
    REGISTRY,
    Config,
    settings_markdown,
)

from tests.support.config import load, load_exit

ROOT = pathlib.Path(__file__).resolve().parents[2]

# name: (section, flags, default) as gunicorn 24-26 has them.
GUNICORN = {
    "reload": ("Debugging", ["--reload"], False),
    "reload_engine": ("Debugging", ["--reload-engine"], "auto"),
    "reload_extra_files": ("Debugging", ["--reload-extra-file"], []),
    "spew": ("Debugging", ["--spew"], False),
    "check_config": ("Debugging", ["--check-config"], False),
    "print_config": ("Debugging", ["--print-config"], False),
    "disable_redirect_access_to_syslog": (
        "Logging",
        ["--disable-redirect-access-to-syslog"],
        False,
    ),
    "capture_output": ("Logging", ["--capture-output"], False),
    "logger_class": ("Logging", ["--logger-class"], "gunicorn.glogging.Logger"),
    "logconfig": ("Logging", ["--log-config"], None),
    "logconfig_dict": ("Logging", [], {}),
    "logconfig_json": ("Logging", ["--log-config-json"], None),
    "syslog_addr": ("Logging", ["--log-syslog-to"], "udp://localhost:514"),
    "syslog": ("Logging", ["--log-syslog"], False),
    "syslog_prefix": ("Logging", ["--log-syslog-prefix"], None),
    "syslog_facility": ("Logging", ["--log-syslog-facility"], "user"),
    "enable_stdio_inheritance": (
        "Logging",
        ["-R", "--enable-stdio-inheritance"],
        False,
    ),
    "statsd_host": ("Logging", ["--statsd-host"], None),
    "dogstatsd_tags": ("Logging", ["--dogstatsd-tags"], ""),
    "statsd_prefix": ("Logging", ["--statsd-prefix"], ""),
    "proc_name": ("Process Naming", ["-n", "--name"], None),
    "default_proc_name": ("Process Naming", [], "gunicorn"),
    "keyfile": ("SSL", ["--keyfile"], None),
    "certfile": ("SSL", ["--certfile"], None),
    "cert_reqs": ("SSL", ["--cert-reqs"], 0),
    "ca_certs": ("SSL", ["--ca-certs"], None),
    "suppress_ragged_eofs": ("SSL", ["--suppress-ragged-eofs"], True),
    "do_handshake_on_connect": ("SSL", ["--do-handshake-on-connect"], False),
    "ciphers": ("SSL", ["--ciphers"], None),
    "preload_app": ("Server Mechanics", ["--preload"], False),
    "sendfile": ("Server Mechanics", ["--no-sendfile"], None),
    "reuse_port": ("Server Mechanics", ["--reuse-port"], False),
    "daemon": ("Server Mechanics", ["-D", "--daemon"], False),
    "raw_env": ("Server Mechanics", ["-e", "--env"], []),
    "pidfile": ("Server Mechanics", ["-p", "--pid"], None),
    "worker_tmp_dir": ("Server Mechanics", ["--worker-tmp-dir"], None),
    "user": ("Server Mechanics", ["-u", "--user"], os.geteuid()),
    "group": ("Server Mechanics", ["-g", "--group"], os.getegid()),
    "umask": ("Server Mechanics", ["-m", "--umask"], 0),
    "initgroups": ("Server Mechanics", ["--initgroups"], False),
    "tmp_upload_dir": ("Server Mechanics", [], None),
    "pythonpath": ("Server Mechanics", ["--pythonpath"], None),
    "paste": ("Server Mechanics", ["--paste", "--paster"], None),
    "proxy_protocol": ("Server Mechanics", ["--proxy-protocol"], False),
    "proxy_allow_ips": (
        "Server Mechanics",
        ["--proxy-allow-from"],
        ["127.0.0.1", "::1"],
    ),
    "protocol": ("Server Mechanics", ["--protocol"], "http"),
    "raw_paste_global_conf": ("Server Mechanics", ["--paste-global"], []),
    "permit_obsolete_folding": (
        "Server Mechanics",
        ["--permit-obsolete-folding"],
        False,
    ),
    "strip_header_spaces": ("Server Mechanics", ["--strip-header-spaces"], False),
    "permit_unconventional_http_method": (
        "Server Mechanics",
        ["--permit-unconventional-http-method"],
        False,
    ),
    "permit_unconventional_http_version": (
        "Server Mechanics",
        ["--permit-unconventional-http-version"],
        False,
    ),
    "casefold_http_method": ("Server Mechanics", ["--casefold-http-method"], False),
    "forwarder_headers": (
        "Server Mechanics",
        ["--forwarder-headers"],
        ["SCRIPT_NAME", "PATH_INFO"],
    ),
    "header_map": ("Server Mechanics", ["--header-map"], "drop"),
    "forwarded_allow_ips": (
        "Server Mechanics",
        ["--forwarded-allow-ips"],
        ["127.0.0.1", "::1"],
    ),
    "worker_connections": ("Worker Processes", ["--worker-connections"], 1000),
}

HOOKS = {
    "on_starting": 1,
    "on_reload": 1,
    "when_ready": 1,
    "pre_fork": 2,
    "post_fork": 2,
    "post_worker_init": 1,
    "worker_int": 1,
    "worker_abort": 1,
    "pre_exec": 1,
    "pre_request": 2,
    "child_exit": 2,
    "worker_exit": 2,
    "nworkers_changed": 3,
    "on_exit": 1,
    "ssl_context": 2,
}


@pytest.mark.parametrize("name", sorted(GUNICORN))
def test_gunicorn_setting(name):
    section, flags, default = GUNICORN[name]
    s = REGISTRY[name]
    assert (s.section, s.cli) == (section, flags)
    assert Config().values[name] == default


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_hooks_default_to_noops_and_check_arity(name):
    s = REGISTRY[name]
    assert s.section == "Server Hooks" and not s.cli
    cfg = Config()
    assert callable(cfg.values[name])
    ok = eval("lambda " + ",".join(f"a{i}" for i in range(HOOKS[name])) + ": None")
    cfg.set(name, ok)
    assert cfg.values[name] is ok
    bad = eval("lambda " + ",".join(f"a{i}" for i in range(HOOKS[name] + 1)) + ": 1")
    with pytest.raises(TypeError, match=f"arity of: {HOOKS[name]}"):
        cfg.set(name, bad)
    with pytest.raises(TypeError, match="not callable"):
        cfg.set(name, 3)


def test_hook_as_dotted_string(app_module):
    mod = app_module("def ready(server):\n    server.append(1)\n")
    cfg = Config()
    cfg.set("when_ready", f"{mod}.ready")
    seen = []
    cfg.when_ready(seen)
    assert seen == [1]
    with pytest.raises(TypeError, match="Can not load 'nope'"):
        cfg.set("when_ready", f"{mod}.nope")
    with pytest.raises(TypeError, match="is not import string"):
        cfg.set("when_ready", "plain")


def test_post_request_accepts_two_three_or_four_arguments():
    cfg = Config()
    seen = []
    cfg.set("post_request", lambda w, r: seen.append((w, r)))
    cfg.post_request(1, 2, 3, 4)
    cfg.set("post_request", lambda w, r, e: seen.append((w, r, e)))
    cfg.post_request(1, 2, 3, 4)
    assert seen == [(1, 2), (1, 2, 3)]
    with pytest.raises(TypeError, match="arity of: 4"):
        cfg.set("post_request", lambda a: None)


def test_hook_in_config_file(isolated):
    (isolated / "c.py").write_text("def on_starting(server):\n    pass\n")
    cfg = load(["-c", "c.py"])
    assert cfg.on_starting.__module__ == "__config__"
    (isolated / "d.py").write_text("def on_starting(a, b):\n    pass\n")
    with pytest.raises(SystemExit) as exc:
        load(["-c", "d.py"])
    assert exc.value.code == 1


@pytest.mark.parametrize(
    "argv, name, value",
    [
        (["-D"], "daemon", True),
        (["-p", "x.pid"], "pidfile", "x.pid"),
        (["-u", "0"], "user", 0),
        (["-g", "0"], "group", 0),
        (["-u", "root"], "user", 0),
        (["-m", "022"], "umask", 0o22),
        (["-m", "0x1f"], "umask", 31),
        (["--umask", "18"], "umask", 18),
        (["-n", "web"], "proc_name", "web"),
        (["-e", "A=1", "--env", "B=2"], "raw_env", ["A=1", "B=2"]),
        (["-R"], "enable_stdio_inheritance", True),
        (["--no-sendfile"], "sendfile", False),
        (["--reuse-port"], "reuse_port", True),
        (["--worker-connections", "50"], "worker_connections", 50),
        (["--statsd-host", "localhost:9125"], "statsd_host", ("localhost", 9125)),
        (["--statsd-host", "localhost"], "statsd_host", ("localhost", 8125)),
        (["--statsd-host", "unix:///tmp/s"], "statsd_host", "/tmp/s"),
        (["--statsd-host", "unix:8125"], "statsd_host", ("unix", 8125)),
        (["--statsd-prefix", "app"], "statsd_prefix", "app"),
        (["--dogstatsd-tags", "a:b,c"], "dogstatsd_tags", "a:b,c"),
        (["--log-syslog"], "syslog", True),
        (["--log-syslog-to", "tcp://h:1"], "syslog_addr", "tcp://h:1"),
        (["--log-syslog-prefix", "p"], "syslog_prefix", "p"),
        (["--log-syslog-facility", "local0"], "syslog_facility", "local0"),
        (["--capture-output"], "capture_output", True),
        (["--reload"], "reload", True),
        (["--reload-engine", "poll"], "reload_engine", "poll"),
        (["--check-config"], "check_config", True),
        (["--print-config"], "print_config", True),
        (["--log-config-json", "x.json"], "logconfig_json", "x.json"),
        (["--logger-class", "simple"], "logger_class", "simple"),
        (["--forwarder-headers", "X,Y"], "forwarder_headers", ["X", "Y"]),
        (["--header-map", "REFUSE"], "header_map", "refuse"),
    ],
)
def test_flag_sets_setting(argv, name, value, capsys):
    assert load(argv).values[name] == value


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--reload-engine", "fsevents"], "Invalid reload_engine: 'fsevents'"),
        (["-u", "no-such-user-x"], "No such user: 'no-such-user-x'"),
        (["-g", "no-such-group-x"], "No such group: 'no-such-group-x'"),
        (["--reload-extra-file", "missing.txt"], "File missing.txt does not exists"),
        (["-m", "-1"], "Value must be positive"),
        (["--header-map", "keep"], "Invalid header map behaviour"),
        (["--protocol", "h3"], "must be one of http, uwsgi"),
    ],
)
def test_bad_flag_values(argv, message, capsys):
    code, err = load_exit(argv, capsys)
    assert code in (1, 2)
    assert message in err


@pytest.mark.parametrize(
    "source, message",
    [
        ("user = 'no-such-user-x'", "No such user"),
        ("workers = 'many'", "Invalid value for workers: many"),
        ("reload_extra_files = ['nope.txt']", "Invalid value for reload_extra_files"),
        ("logconfig_dict = []", "Invalid value for logconfig_dict"),
        ("statsd_host = 'h:notaport'", "Invalid value for statsd_host"),
    ],
)
def test_bad_values_in_config_file_exit_1(isolated, source, message, capsys):
    (isolated / "c.py").write_text(source + "\n")
    code, err = load_exit(["-c", "c.py"], capsys)
    assert code == 1
    assert message in err


@pytest.mark.parametrize(
    "argv",
    [["--certfile", "c.pem"], ["--keyfile", "k.pem"]],
)
def test_tls_is_a_clear_error(argv, capsys):
    code, err = load_exit(argv, capsys)
    assert code == 1
    assert "TLS is not supported yet" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--paste", "x.ini"], "PasteDeploy"),
        (["--protocol", "uwsgi"], "'uwsgi' is not supported"),
        (["-k", "asgi"], "ASGI is out of cunicorn's scope"),
        (["-k", "uvicorn.workers.UvicornWorker"], "ASGI is out of cunicorn's scope"),
    ],
)
def test_unsupported_modes_are_clear_errors(argv, message, capsys):
    code, err = load_exit(argv, capsys)
    assert code == 1
    assert message in err


@pytest.mark.parametrize(
    "argv, name",
    [
        (["--http-protocols", "h2,h1"], "http_protocols"),
        (["--dirty-workers", "2"], "dirty_workers"),
        (["--control-socket", "/tmp/x.ctl"], "control_socket"),
        (["--asgi-loop", "uvloop"], "asgi_loop"),
        (["--root-path", "/api"], "root_path"),
    ],
)
def test_out_of_scope_settings_warn(argv, name, capsys):
    load(argv)
    err = capsys.readouterr().err
    assert f"setting {name!r} is out of cunicorn's scope" in err


def test_defaults_give_no_warning(capsys):
    load([])
    assert "Warning" not in capsys.readouterr().err


def test_every_warned_setting_is_registered():
    for name in list(NOT_IMPLEMENTED) + list(OUT_OF_SCOPE):
        assert name in REGISTRY, name
    for name in DROPPED_SETTINGS:
        assert name not in REGISTRY, name


def test_raw_env_as_dict():
    assert load(["-e", "A=a=b", "-e", "B="]).env == {"A": "a=b", "B": ""}


def test_raw_env_without_equals_exits_1(capsys):
    code, err = load_exit(["-e", "NOEQUALS"], capsys)
    assert code == 1
    assert "environment setting 'NOEQUALS' invalid" in err


def test_sendfile_follows_gunicorn(monkeypatch):
    assert Config(environ={}).sendfile is True
    assert Config(environ={"SENDFILE": "0"}).sendfile is False
    assert load(["--no-sendfile"]).sendfile is False


def test_proc_name_falls_back_to_default_proc_name():
    cfg = Config()
    assert cfg.proc_name == "gunicorn"
    cfg.set("proc_name", "web")
    assert cfg.proc_name == "web"


def test_mutable_defaults_are_not_shared():
    a, b = Config(), Config()
    a.values["raw_env"].append("X=1")
    a.values["logconfig_dict"]["k"] = 1
    assert b.raw_env == [] and b.logconfig_dict == {}
    assert REGISTRY["raw_env"].default == []


# --- --check-config / --print-config ---


def run_cli(argv):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    return exc.value.code


def test_check_config_loads_the_app(app_module, capsys):
    mod = app_module("def app(e, s):\n    return []\n")
    assert run_cli(["--check-config", f"{mod}:app"]) == 0
    assert capsys.readouterr().out == ""


def test_check_config_fails_when_the_app_does_not_load(app_module, capsys):
    mod = app_module("raise RuntimeError('boom at import')\n")
    assert run_cli(["--check-config", f"{mod}:app"]) == 1
    err = capsys.readouterr().err
    assert "Error while loading the application" in err
    assert "RuntimeError: boom at import" in err


def test_print_config_prints_resolved_settings(
    app_module, isolated, capsys, monkeypatch
):
    mod = app_module("def app(e, s):\n    return []\n")
    (isolated / "gunicorn.conf.py").write_text("workers = 3\nkeepalive = 9\n")
    monkeypatch.setenv("GUNICORN_CMD_ARGS", "--keep-alive 7 --backlog 5")
    assert run_cli(["--print-config", "--backlog", "6", f"{mod}:app"]) == 0
    out = capsys.readouterr().out
    lines = dict(
        (k.strip(), v.strip())
        for k, _, v in (line.partition("=") for line in out.splitlines())
    )
    assert lines["workers"] == "3"
    assert lines["keepalive"] == "7"
    assert lines["backlog"] == "6"
    assert lines["on_starting"] == "<on_starting()>"
    assert len(lines) == len(REGISTRY)


# --- generated documentation ---


def test_docs_settings_md_is_current():
    path = ROOT / "docs" / "settings.md"
    assert path.read_text() == settings_markdown(), (
        "docs/settings.md is stale: run "
        "`python -m cunicorn.config --docs > docs/settings.md`"
    )


def test_docs_show_hook_defaults_as_code():
    doc = settings_markdown()
    assert "def pre_fork(server, worker):\n    pass" in doc
    assert "Out of cunicorn's scope." in doc


def test_config_module_prints_docs():
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "cunicorn.config", "--docs"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == settings_markdown()
