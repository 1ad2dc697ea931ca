"""Logging through Python's ``logging``, with gunicorn's logger names, formats
and access-log atoms, so handlers and formats written for gunicorn keep working.

The C worker calls two callables from here: ``Logger.access`` after each
response (only handed over when an access log is enabled) and
``Logger.error_log`` for the worker's own error lines.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
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


def loggers() -> list[logging.Logger]:
    """Every logger created so far."""
    return [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]


def check_is_writable(path: str) -> None:
    try:
        with open(path, "a"):
            pass
    except OSError as e:
        raise RuntimeError(f"Error: '{path}' isn't writable [{e!r}]") from None


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
        self.cfg = cfg
        self.loglevel = LOG_LEVELS.get(cfg.loglevel.lower(), logging.INFO)
        self.error_log.setLevel(self.loglevel)
        self.access_log.setLevel(logging.INFO)
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

    @staticmethod
    def _set_handler(
        log: logging.Logger,
        output: str | None,
        fmt: logging.Formatter,
        stream: Any = None,
    ) -> None:
        # replace the handler of a previous setup (config reload), keep others
        for h in list(log.handlers):
            if getattr(h, "_gunicorn", False):
                log.removeHandler(h)
                if isinstance(h, logging.FileHandler):
                    h.close()
        if output is None:
            return
        if output == "-":
            h: logging.Handler = logging.StreamHandler(stream)
        else:
            check_is_writable(output)
            h = logging.FileHandler(output)
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
        return bool(self.cfg.accesslog)

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
        """Reopen every log file (USR1)."""
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
