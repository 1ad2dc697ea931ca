"""logconfig merge, syslog addresses, logger classes, failing handlers."""

import logging
import socket

import pytest
from cunicorn import glogging
from cunicorn.config import Config
from cunicorn.glogging import (
    Logger,
    logger_class,
    merge_logconfig,
    parse_syslog_address,
)
from cunicorn.instrument import Statsd


def test_merge_keeps_default_root_and_handlers():
    user = {
        "version": 1,
        "loggers": {"gunicorn.error": {"handlers": ["mine"]}},
        "handlers": {"mine": {"class": "logging.NullHandler"}},
    }
    merged = merge_logconfig(user)
    assert merged["root"] == {"level": "INFO", "handlers": ["console"]}
    assert set(merged["handlers"]) == {"console", "error_console", "mine"}
    assert merged["loggers"]["gunicorn.error"] == {"handlers": ["mine"]}
    assert "gunicorn.access" in merged["loggers"]
    assert glogging.CONFIG_DEFAULTS["handlers"].keys() == {"console", "error_console"}


def test_merge_user_root_wins():
    assert merge_logconfig({"root": {"level": "ERROR"}})["root"] == {"level": "ERROR"}


@pytest.mark.parametrize(
    "addr, expected",
    [
        ("udp://localhost:514", (socket.SOCK_DGRAM, ("localhost", 514))),
        ("udp://HOST:5514", (socket.SOCK_DGRAM, ("host", 5514))),
        ("tcp://[::1]:601", (socket.SOCK_STREAM, ("::1", 601))),
        ("udp://", (socket.SOCK_DGRAM, ("localhost", 514))),
        ("unix:///dev/log", (None, "/dev/log")),
        ("unix:///dev/log#dgram", (socket.SOCK_DGRAM, "/dev/log")),
        ("unix:///dev/log#stream", (socket.SOCK_STREAM, "/dev/log")),
    ],
)
def test_parse_syslog_address(addr, expected):
    assert parse_syslog_address(addr) == expected


@pytest.mark.parametrize("addr", ["http://x", "udp://h:port"])
def test_parse_syslog_address_rejects(addr):
    with pytest.raises(RuntimeError):
        parse_syslog_address(addr)


def test_logger_class_spellings():
    cfg = Config()
    for uri in ("gunicorn.glogging.Logger", "simple", "cunicorn.glogging.Logger"):
        cfg.set("logger_class", uri)
        assert logger_class(cfg) is Logger
    cfg.set("logger_class", "gunicorn.instrument.statsd.Statsd")
    assert logger_class(cfg) is Statsd
    cfg.set("logger_class", "simple")
    cfg.set("statsd_host", "localhost:8125")
    assert logger_class(cfg) is Statsd
    cfg.set("logger_class", "logging.Logger")
    with pytest.raises(RuntimeError, match="not a subclass"):
        logger_class(cfg)
    cfg.set("logger_class", "no_such_mod.X")
    with pytest.raises(RuntimeError, match="cannot be loaded"):
        logger_class(cfg)


@pytest.mark.parametrize(
    "name, value",
    [
        ("accesslog", "-"),
        ("logconfig_dict", {"version": 1}),
        ("logconfig_json", "x.json"),
        ("logconfig", "x.ini"),
        ("syslog", True),
    ],
)
def test_access_callback_enabled_as_gunicorn(name, value):
    cfg = Config()
    assert not Logger.access_log_enabled.fget(_Fake(cfg))
    cfg.set(name, value)
    assert Logger.access_log_enabled.fget(_Fake(cfg))
    cfg.set("disable_redirect_access_to_syslog", True)
    assert Logger.access_log_enabled.fget(_Fake(cfg)) == (name != "syslog")


class _Fake:
    def __init__(self, cfg):
        self.cfg = cfg


def test_failing_handler_reported_once(capfd):
    log = logging.getLogger("cunicorn.test.full")
    h = logging.FileHandler("/dev/full")
    log.addHandler(h)
    try:
        glogging.guard_handlers([log])
        for _ in range(5):
            log.error("x")
        err = capfd.readouterr().err
        assert err.count("logging to /dev/full failed") == 1
        assert "Traceback" not in err
    finally:
        log.removeHandler(h)
        with pytest.raises(OSError):
            h.close()  # the final flush fails too


def test_logconfig_json_and_ini(tmp_path):
    cfg = Config()
    cfg.set("logconfig_json", str(tmp_path / "missing.json"))
    with pytest.raises(RuntimeError, match="not found"):
        Logger(cfg)
    (tmp_path / "bad.json").write_text("{nope")
    cfg.set("logconfig_json", str(tmp_path / "bad.json"))
    with pytest.raises(RuntimeError, match="is not JSON"):
        Logger(cfg)
    (tmp_path / "ok.json").write_text(
        '{"version": 1, "loggers": {"gunicorn.error": {"level": "ERROR",'
        ' "handlers": ["error_console"]}}}'
    )
    cfg.set("logconfig_json", str(tmp_path / "ok.json"))
    log = Logger(cfg)
    assert log.error_log.level == logging.ERROR
    cfg.set("logconfig_json", None)
    cfg.set("logconfig", str(tmp_path / "missing.ini"))
    with pytest.raises(RuntimeError, match="not found"):
        Logger(cfg)
