"""Logging through Python's ``logging``, with gunicorn's logger names, formats
and access-log atoms, so handlers and formats written for gunicorn keep working.

The C worker calls two callables from here: ``Logger.access`` after each
response (only handed over when an access log is enabled) and
``Logger.error_log`` for the worker's own error lines.
"""

from __future__ import annotations

import base64
import binascii
import copy
import importlib
import json
import logging
import logging.config
import logging.handlers
import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Mapping
from typing import Any

LOG_LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}

ERROR_FMT = r"%(asctime)s [%(process)d] [%(levelname)s] %(message)s"
DATEFMT = r"[%Y-%m-%d %H:%M:%S %z]"
ACCESS_FMT = "%(message)s"
SYSLOG_FMT = "[%(process)d] %(message)s"

# gunicorn.glogging.CONFIG_DEFAULTS: what logconfig_dict / logconfig_json are
# merged over.
CONFIG_DEFAULTS: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "INFO", "handlers": ["console"]},
    "loggers": {
        "gunicorn.error": {
            "level": "INFO",
            "handlers": ["error_console"],
            "propagate": True,
            "qualname": "gunicorn.error",
        },
        "gunicorn.access": {
            "level": "INFO",
            "handlers": ["console"],
            "propagate": True,
            "qualname": "gunicorn.access",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "generic",
            "stream": "ext://sys.stdout",
        },
        "error_console": {
            "class": "logging.StreamHandler",
            "formatter": "generic",
            "stream": "ext://sys.stderr",
        },
    },
    "formatters": {
        "generic": {
            "format": ERROR_FMT,
            "datefmt": DATEFMT,
            "class": "logging.Formatter",
        }
    },
}

# How often a failing log handler (full disk, closed pipe) is reported.
HANDLER_ERROR_INTERVAL = 60.0


def merge_logconfig(user: Mapping[str, Any]) -> dict[str, Any]:
    """CONFIG_DEFAULTS with ``user`` merged over it section by section:
    formatters, handlers, filters and loggers are merged by name, ``root`` is
    the user's when given, other keys are the user's.  (gunicorn replaces whole
    sections, so a dictionary with its own handlers and no root logger fails
    with "Unable to configure root logger", gunicorn issue #2250.)"""
    config = copy.deepcopy(CONFIG_DEFAULTS)
    for key, value in user.items():
        if key in ("formatters", "handlers", "filters", "loggers") and isinstance(
            value, Mapping
        ):
            config.setdefault(key, {}).update(value)
        else:
            config[key] = value
    return config


def parse_syslog_address(addr: str) -> tuple[Any, Any]:
    """(socket type, address) for SysLogHandler from ``unix://PATH#TYPE``,
    ``udp://HOST:PORT`` or ``tcp://HOST:PORT``, as gunicorn parses them."""
    if addr.startswith("unix://"):
        sock_type = None  # SysLogHandler tries dgram then stream
        path, sep, kind = addr.partition("#")
        if sep and kind == "dgram":
            sock_type = socket.SOCK_DGRAM
        elif sep and kind == "stream":
            sock_type = socket.SOCK_STREAM
        return sock_type, path[len("unix://") :]
    if addr.startswith("udp://"):
        addr, socktype = addr[len("udp://") :], socket.SOCK_DGRAM
    elif addr.startswith("tcp://"):
        addr, socktype = addr[len("tcp://") :], socket.SOCK_STREAM
    else:
        raise RuntimeError("invalid syslog address")
    if "[" in addr and "]" in addr:
        host = addr.split("]")[0][1:].lower()
    elif ":" in addr:
        host = addr.split(":")[0].lower()
    elif addr == "":
        host = "localhost"
    else:
        host = addr.lower()
    rest = addr.split("]")[-1]
    port = 514
    if ":" in rest:
        text = rest.split(":", 1)[1]
        if not text.isdigit():
            raise RuntimeError(f"{text!r} is not a valid port number.")
        port = int(text)
    return socktype, (host, port)


class _HandlerErrorLimiter:
    """``handler.handleError`` replacement: a failing write (ENOSPC on a full
    disk, EPIPE) is reported on stderr at most once per
    HANDLER_ERROR_INTERVAL per handler, never raised, never per request."""

    def __init__(self, handler: logging.Handler) -> None:
        self.handler = handler
        self.last = -HANDLER_ERROR_INTERVAL
        self.suppressed = 0

    def __call__(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        now = time.monotonic()
        if now - self.last < HANDLER_ERROR_INTERVAL:
            self.suppressed += 1
            return
        self.last = now
        name = (
            getattr(self.handler, "baseFilename", None) or type(self.handler).__name__
        )
        extra = (
            f" ({self.suppressed} more since the last report)"
            if self.suppressed
            else ""
        )
        self.suppressed = 0
        try:
            sys.__stderr__.write(
                f"[{os.getpid()}] [ERROR] logging to {name} failed: {exc!r}{extra}; "
                f"further failures are reported once per "
                f"{int(HANDLER_ERROR_INTERVAL)} s\n"
            )
            sys.__stderr__.flush()
        except Exception:
            pass


def guard_handlers(loggers_: Iterable[logging.Logger]) -> None:
    """Make every handler of ``loggers_`` report its write failures through a
    _HandlerErrorLimiter (once a minute) instead of a traceback per record."""
    for log in loggers_:
        for h in log.handlers:
            if not isinstance(getattr(h, "handleError", None), _HandlerErrorLimiter):
                h.handleError = _HandlerErrorLimiter(h)  # type: ignore[method-assign]


def loggers() -> list[logging.Logger]:
    """Every logger created so far."""
    return [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]


def check_is_writable(path: str) -> None:
    try:
        with open(path, "a"):
            pass
    except OSError as e:
        raise RuntimeError(f"Error: '{path}' isn't writable [{e!r}]") from None


def access_log_wanted(cfg: Any) -> bool:
    """Whether an access log can exist for ``cfg`` (gunicorn's condition in
    Logger.access)."""
    return bool(
        cfg.accesslog
        or cfg.logconfig
        or cfg.logconfig_dict
        or cfg.logconfig_json
        or (cfg.syslog and not cfg.disable_redirect_access_to_syslog)
    )


def _escape(value: Any) -> Any:
    # gunicorn's only access-log escaping: a double quote gets a backslash
    if isinstance(value, str) and '"' in value:
        return value.replace('"', '\\"')
    return value


class AccessAtoms(dict):
    """The atoms of one access-log line, as gunicorn's SafeAtoms: an unknown atom
    is ``-``; ``{name}i`` (request header), ``{name}o`` (response header) and
    ``{name}e`` (environ) are looked up case-insensitively when the format asks
    for them, so a line that uses none of them costs nothing for them."""

    __slots__ = ("environ", "resp_headers")

    def __init__(
        self,
        atoms: Mapping[str, Any],
        environ: Mapping[str, Any],
        resp_headers: Iterable[tuple[str, str]],
    ) -> None:
        dict.__init__(self, atoms)
        self.environ = environ
        self.resp_headers = resp_headers

    def __getitem__(self, k: str) -> Any:
        try:
            return dict.__getitem__(self, k)
        except KeyError:
            pass
        if k.startswith("{"):
            kl = k.lower()
            if kl != k and dict.__contains__(self, kl):
                return dict.__getitem__(self, kl)
            value = self._lookup(kl)
            if value is not None:
                value = _escape(value)
                self[kl] = value
                return value
        return "-"

    def _lookup(self, k: str) -> Any:
        name, kind = k[1:-2], k[-2:]
        if kind == "}i":
            key = name.upper().replace("-", "_")
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                key = "HTTP_" + key
            return self.environ.get(key)
        if kind == "}o":
            found = None
            for hname, hvalue in self.resp_headers:
                if hname.lower() == name:
                    found = hvalue  # the last one wins, as in gunicorn
            return found
        if kind == "}e":
            value = self.environ.get(name.upper())
            if value is None:
                for ek, ev in self.environ.items():
                    if ek.lower() == name:
                        return ev
            return value
        return None


class WSGIErrors:
    """wsgi.errors: text written here goes to the error log's streams."""

    def __init__(self, errorlog: str, handlers: Iterable[logging.Handler]) -> None:
        self.streams: list[Any] = []
        if errorlog == "-":
            self.streams.append(sys.stderr)
        for h in handlers:
            stream = getattr(h, "stream", None)
            if stream is not None and stream not in self.streams:
                self.streams.append(stream)

    def write(self, data: str) -> None:
        for stream in self.streams:
            try:
                stream.write(data)
            except UnicodeError:
                stream.write(data.encode("utf-8"))
            stream.flush()

    def writelines(self, seq: Iterable[str]) -> None:
        for line in seq:
            self.write(line)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


class Logger:
    """gunicorn.glogging.Logger's behaviour on the loggers gunicorn.error and
    gunicorn.access."""

    error_fmt = ERROR_FMT
    datefmt = DATEFMT
    access_fmt = ACCESS_FMT

    def __init__(self, cfg: Any) -> None:
        self.error_log = logging.getLogger("gunicorn.error")
        self.error_log.propagate = False
        self.access_log = logging.getLogger("gunicorn.access")
        self.access_log.propagate = False
        self.lock = threading.Lock()
        self._now_sec = -1
        self._now_str = ""
        self.setup(cfg)

    def setup(self, cfg: Any) -> None:
        """Configure gunicorn.error and gunicorn.access from ``cfg`` (again on
        HUP): errorlog/accesslog, capture_output, syslog, then logconfig_dict,
        logconfig_json or logconfig.  RuntimeError for an unusable
        configuration (exit 1 at startup)."""
        self.cfg = cfg
        # read per response (Statsd.access): computed here, which HUP reruns
        self.access_log_wanted = access_log_wanted(cfg)
        self.loglevel = LOG_LEVELS.get(cfg.loglevel.lower(), logging.INFO)
        self.error_log.setLevel(self.loglevel)
        self.access_log.setLevel(logging.INFO)

        self._capture_output()

        self._set_handler(
            self.error_log,
            cfg.errorlog,
            logging.Formatter(self.error_fmt, self.datefmt),
        )
        self._set_handler(
            self.access_log,
            cfg.accesslog,
            logging.Formatter(self.access_fmt),
            stream=sys.stdout,
        )
        if cfg.syslog:
            self._set_syslog_handler(self.error_log, cfg, "error")
            if not cfg.disable_redirect_access_to_syslog:
                self._set_syslog_handler(self.access_log, cfg, "access")

        if cfg.logconfig_dict:
            self._dict_config(merge_logconfig(cfg.logconfig_dict))
        elif cfg.logconfig_json:
            try:
                with open(cfg.logconfig_json) as f:
                    user = json.load(f)
            except OSError as e:
                raise RuntimeError(
                    f"Error: log config '{cfg.logconfig_json}' not found ({e})"
                ) from None
            except json.JSONDecodeError as e:
                raise RuntimeError(
                    f"Error: log config '{cfg.logconfig_json}' is not JSON: {e}"
                ) from None
            if not isinstance(user, dict):
                raise RuntimeError(
                    f"Error: log config '{cfg.logconfig_json}' is not a JSON object"
                )
            self._dict_config(merge_logconfig(user))
        elif cfg.logconfig:
            if not os.path.exists(cfg.logconfig):
                raise RuntimeError(f"Error: log config '{cfg.logconfig}' not found")
            defaults = {
                "__file__": cfg.logconfig,
                "here": os.path.dirname(cfg.logconfig),
            }
            try:
                logging.config.fileConfig(
                    cfg.logconfig, defaults=defaults, disable_existing_loggers=False
                )
            except Exception as e:
                raise RuntimeError(
                    f"Error: log config '{cfg.logconfig}' is invalid: {e!r}"
                ) from None
        guard_handlers([self.error_log, self.access_log, logging.getLogger()])

    @staticmethod
    def _dict_config(config: dict[str, Any]) -> None:
        try:
            logging.config.dictConfig(config)
        except (AttributeError, ImportError, ValueError, TypeError) as exc:
            raise RuntimeError(str(exc)) from None

    def _capture_output(self) -> None:
        """With capture_output and an error log file: stdout and stderr (file
        descriptors 1 and 2) into that file, as gunicorn's capture_output."""
        if not self.cfg.capture_output or self.cfg.errorlog == "-":
            return
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        old = getattr(self, "logfile", None)
        self.logfile = open(self.cfg.errorlog, "a+")  # noqa: SIM115 (kept open: fds 1 and 2)
        os.dup2(self.logfile.fileno(), 1)
        os.dup2(self.logfile.fileno(), 2)
        if old is not None:
            old.close()

    def _set_syslog_handler(self, log: logging.Logger, cfg: Any, name: str) -> None:
        prefix = cfg.syslog_prefix or cfg.proc_name.replace(":", ".")
        fmt = logging.Formatter(f"gunicorn.{prefix}.{name}: {SYSLOG_FMT}")
        facility_name = cfg.syslog_facility.lower()
        facility = logging.handlers.SysLogHandler.facility_names.get(facility_name)
        if facility is None:
            raise RuntimeError("unknown facility name")
        socktype, addr = parse_syslog_address(cfg.syslog_addr)
        h = logging.handlers.SysLogHandler(
            address=addr, facility=facility, socktype=socktype
        )
        self._add_handler(log, h, fmt)

    @staticmethod
    def _set_handler(
        log: logging.Logger,
        output: str | None,
        fmt: logging.Formatter,
        stream: Any = None,
    ) -> None:
        # replace the handlers of a previous setup (config reload), keep others
        for h in list(log.handlers):
            if getattr(h, "_gunicorn", False):
                log.removeHandler(h)
                if isinstance(h, (logging.FileHandler, logging.handlers.SysLogHandler)):
                    try:
                        h.close()
                    except OSError:  # a last flush to a full disk
                        pass
        if output is None:
            return
        if output == "-":
            h: logging.Handler = logging.StreamHandler(stream)
        else:
            check_is_writable(output)
            h = logging.FileHandler(output)
        Logger._add_handler(log, h, fmt)

    @staticmethod
    def _add_handler(
        log: logging.Logger, h: logging.Handler, fmt: logging.Formatter
    ) -> None:
        """Add ``h`` to ``log``, marked as ours (replaced by the next setup)."""
        h.setFormatter(fmt)
        h._gunicorn = True  # type: ignore[attr-defined]
        log.addHandler(h)

    # --- error log ---

    def critical(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.critical(msg, *args, **kwargs)

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.error(msg, *args, **kwargs)

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.warning(msg, *args, **kwargs)

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.info(msg, *args, **kwargs)

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.debug(msg, *args, **kwargs)

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.exception(msg, *args, **kwargs)

    def log(self, lvl: Any, msg: str, *args: Any, **kwargs: Any) -> None:
        if isinstance(lvl, str):
            lvl = LOG_LEVELS.get(lvl.lower(), logging.INFO)
        self.error_log.log(lvl, msg, *args, **kwargs)

    def master_log(self, level: str, message: str) -> None:
        """``log(level, message)`` of _cserver.run_master."""
        self.error_log.log(LOG_LEVELS.get(level, logging.INFO), "%s", message)

    def error_log_callback(
        self, level: str, message: str, with_exception: bool
    ) -> None:
        """``error_log(level, message, with_exception)`` of _cserver.run_worker:
        with_exception means the C side has set the exception being handled, so
        ``exc_info=True`` finds it."""
        self.error_log.log(
            LOG_LEVELS.get(level, logging.ERROR),
            "%s",
            message,
            exc_info=bool(with_exception),
        )

    # --- access log ---

    @property
    def access_log_enabled(self) -> bool:
        """Whether the worker should call ``access`` after each response: an
        access log can exist (gunicorn's condition in Logger.access), as
        computed by the last setup."""
        try:
            return self.access_log_wanted
        except AttributeError:  # a subclass whose setup skips Logger.setup
            return access_log_wanted(self.cfg)

    def now(self) -> str:
        """The date in Common Log Format, computed once per second."""
        sec = int(time.time())
        if sec != self._now_sec:
            self._now_str = time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(sec))
            self._now_sec = sec
        return self._now_str

    def _get_user(self, environ: Mapping[str, Any]) -> str | None:
        http_auth = environ.get("HTTP_AUTHORIZATION")
        if not http_auth or not http_auth.lower().startswith("basic"):
            return None
        auth = http_auth.split(" ", 1)
        if len(auth) != 2:
            return None
        try:
            decoded = base64.b64decode(auth[1].strip().encode("utf-8"))
            return decoded.split(b":", 1)[0].decode("utf-8")
        except (TypeError, binascii.Error, UnicodeDecodeError) as exc:
            self.debug("Couldn't get username: %s", exc)
            return None

    def atoms(
        self,
        environ: Mapping[str, Any],
        status: str,
        resp_headers: Iterable[tuple[str, str]],
        length: int | None,
        request_time: float,
    ) -> AccessAtoms:
        """gunicorn's atoms for one response, escaped."""
        usec = int(request_time * 1_000_000)
        sec = usec // 1_000_000
        method = environ.get("REQUEST_METHOD")
        protocol = environ.get("SERVER_PROTOCOL")
        e = _escape
        atoms = {
            "h": e(environ.get("REMOTE_ADDR", "-")),
            "l": "-",
            "u": e(self._get_user(environ) or "-"),
            "t": self.now(),
            "r": e(f"{method} {environ.get('RAW_URI')} {protocol}"),
            "s": status.split(None, 1)[0] if status else "-",
            "m": e(method),
            "U": e(environ.get("PATH_INFO")),
            "q": e(environ.get("QUERY_STRING")),
            "H": e(protocol),
            "b": str(length) if length is not None else "-",
            "B": length,
            "f": e(environ.get("HTTP_REFERER", "-")),
            "a": e(environ.get("HTTP_USER_AGENT", "-")),
            "T": sec,
            "D": usec,
            "M": usec // 1000,
            "L": f"{sec}.{usec % 1_000_000:06d}",
            "p": f"<{os.getpid()}>",
        }
        return AccessAtoms(atoms, environ, resp_headers or ())

    def access(
        self,
        environ: Mapping[str, Any],
        status: str,
        resp_headers: Iterable[tuple[str, str]],
        length: int | None,
        request_time: float,
    ) -> None:
        """``access_log(environ, status, headers, length, seconds)`` of
        _cserver.run_worker: one line in access_log_format."""
        if not self.access_log.isEnabledFor(logging.INFO):
            return
        try:
            self.access_log.info(
                self.cfg.access_log_format,
                self.atoms(environ, status, resp_headers, length, request_time),
            )
        except Exception:
            self.error(traceback.format_exc())

    # --- files ---

    def wsgi_errors(self) -> WSGIErrors:
        return WSGIErrors(self.cfg.errorlog, self.error_log.handlers)

    def reopen_files(self) -> None:
        """Reopen every log file (USR1), and the captured stdout/stderr file."""
        self._capture_output()
        for log in loggers():
            for handler in log.handlers:
                if isinstance(handler, logging.FileHandler):
                    handler.acquire()
                    try:
                        if handler.stream:
                            handler.close()
                            handler.stream = handler._open()
                    finally:
                        handler.release()

    def flush(self) -> None:
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                try:
                    handler.flush()
                except Exception:
                    pass

    # --- metrics hooks for the arbiter ---

    def workers_changed(self, count: int) -> None:
        """The arbiter's "N workers" debug line (and, with statsd, the
        gunicorn.workers gauge), as gunicorn's manage_workers logs it."""
        self.debug(
            "%s workers",
            count,
            extra={"metric": "gunicorn.workers", "value": count, "mtype": "gauge"},
        )


# logger_class values that mean cunicorn's own Logger (gunicorn's spellings).
_DEFAULT_LOGGERS = frozenset(
    {
        "gunicorn.glogging.Logger",
        "simple",
        "egg:gunicorn#simple",
        "cunicorn.glogging.Logger",
    }
)
_STATSD_LOGGERS = frozenset(
    {"gunicorn.instrument.statsd.Statsd", "cunicorn.instrument.Statsd"}
)


def logger_class(cfg: Any) -> type:
    """The logger class for ``cfg``: gunicorn's default and statsd spellings
    map to cunicorn's; the default becomes Statsd when statsd_host is set, as
    in gunicorn.  Another dotted path or class must subclass
    ``cunicorn.glogging.Logger`` (the C worker calls its callbacks);
    RuntimeError otherwise."""
    # here, not at the top: cunicorn.instrument imports this module
    from cunicorn.instrument import Statsd

    uri = cfg.logger_class
    if isinstance(uri, str) and uri in _DEFAULT_LOGGERS:
        cls: Any = Logger
    elif isinstance(uri, str) and uri in _STATSD_LOGGERS:
        cls = Statsd
    elif isinstance(uri, str):
        module, _, name = uri.replace("#", ".").rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError) as e:
            raise RuntimeError(f"logger class {uri!r} cannot be loaded: {e}") from None
    else:
        cls = uri
    if not (isinstance(cls, type) and issubclass(cls, Logger)):
        raise RuntimeError(
            f"logger class {uri!r} is not a subclass of cunicorn.glogging.Logger "
            "(cunicorn's worker calls its access and error callbacks)"
        )
    if cls is Logger and cfg.statsd_host is not None:
        cls = Statsd
    install = getattr(cls, "install", None)
    if install is not None:
        install()
    return cls
