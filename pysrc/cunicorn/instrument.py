"""StatsD metrics, as gunicorn's instrument/statsd.py sends them.

``Statsd`` is the logger used when ``statsd_host`` is set: every request sends
``gunicorn.requests`` (counter), ``gunicorn.request.duration`` (timer, ms) and
``gunicorn.request.status.<code>`` (counter); error-log lines at warning and
above send ``gunicorn.log.<level>``; the arbiter's "N workers" debug line sends
the ``gunicorn.workers`` gauge.  Datagrams are sent without blocking and a
failing send never reaches the request.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterable, Mapping
from typing import Any

from cunicorn.glogging import Logger

METRIC_VAR = "metric"
VALUE_VAR = "value"
MTYPE_VAR = "mtype"
GAUGE_TYPE = "gauge"
COUNTER_TYPE = "counter"
HISTOGRAM_TYPE = "histogram"


class Statsd(Logger):
    """gunicorn.instrument.statsd.Statsd: the Logger plus StatsD datagrams."""

    def __init__(self, cfg: Any) -> None:
        Logger.__init__(self, cfg)
        # "app" and "app." both become "app."
        self.prefix = re.sub(r"^(.+[^.]+)\.*$", "\\g<1>.", cfg.statsd_prefix)
        self.dogstatsd_tags = cfg.dogstatsd_tags
        # appended to every datagram: encoded once, not per send
        try:
            self._tag_suffix = (
                b"|#" + self.dogstatsd_tags.encode("ascii")
                if self.dogstatsd_tags
                else b""
            )
        except UnicodeEncodeError:
            raise RuntimeError(
                f"dogstatsd_tags {self.dogstatsd_tags!r} is not ASCII"
            ) from None
        host = cfg.statsd_host
        family = socket.AF_UNIX if isinstance(host, str) else socket.AF_INET
        try:
            if family == socket.AF_INET:
                family = socket.getaddrinfo(host[0], host[1], type=socket.SOCK_DGRAM)[
                    0
                ][0]
            self.sock: socket.socket | None = socket.socket(family, socket.SOCK_DGRAM)
            self.sock.setblocking(False)
            self.sock.connect(host)
        except Exception:
            self.sock = None
        self._send_failed = False

    @property
    def access_log_enabled(self) -> bool:
        # per-request metrics need the per-response callback
        return True

    # error log lines count as metrics
    def critical(self, msg: str, *args: Any, **kwargs: Any) -> None:
        Logger.critical(self, msg, *args, **kwargs)
        self.increment("gunicorn.log.critical", 1)

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        Logger.error(self, msg, *args, **kwargs)
        self.increment("gunicorn.log.error", 1)

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        Logger.warning(self, msg, *args, **kwargs)
        self.increment("gunicorn.log.warning", 1)

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        Logger.exception(self, msg, *args, **kwargs)
        self.increment("gunicorn.log.exception", 1)

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.log(logging.INFO, msg, *args, **kwargs)

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.log(logging.DEBUG, msg, *args, **kwargs)

    def log(self, lvl: Any, msg: str, *args: Any, **kwargs: Any) -> None:
        """Send the metric in ``extra`` (metric, value, mtype) if any, then log
        ``msg`` when there is one."""
        try:
            extra = kwargs.get("extra")
            if extra is not None:
                metric = extra.get(METRIC_VAR)
                value = extra.get(VALUE_VAR)
                typ = extra.get(MTYPE_VAR)
                if metric and value is not None and typ:
                    if typ == GAUGE_TYPE:
                        self.gauge(metric, value)
                    elif typ == COUNTER_TYPE:
                        self.increment(metric, value)
                    elif typ == HISTOGRAM_TYPE:
                        self.histogram(metric, value)
            if msg:
                Logger.log(self, lvl, msg, *args, **kwargs)
        except Exception:
            Logger.warning(self, "Failed to log to statsd", exc_info=True)

    def master_log(self, level: str, message: str) -> None:
        Logger.master_log(self, level, message)
        self._count_level(level)

    def error_log_callback(
        self, level: str, message: str, with_exception: bool
    ) -> None:
        Logger.error_log_callback(self, level, message, with_exception)
        self._count_level(level)

    def _count_level(self, level: str) -> None:
        """gunicorn.log.<level> for a C-side line at warning and above."""
        if level in ("critical", "error", "warning"):
            self.increment(f"gunicorn.log.{level}", 1)

    # access: the line (when an access log exists) and the request metrics
    def access(
        self,
        environ: Mapping[str, Any],
        status: str,
        resp_headers: Iterable[tuple[str, str]],
        length: int | None,
        request_time: float,
    ) -> None:
        # whether an access log exists (Logger's condition, computed in setup);
        # access_log_enabled itself is always True here
        if self.access_log_wanted:
            Logger.access(self, environ, status, resp_headers, length, request_time)
        self.histogram("gunicorn.request.duration", request_time * 1000.0)
        self.increment("gunicorn.requests", 1)
        try:
            code = int(str(status).split(None, 1)[0])
        except (ValueError, IndexError):
            return
        self.increment(f"gunicorn.request.status.{code}", 1)

    # statsd methods
    def gauge(self, name: str, value: Any) -> None:
        self._sock_send(f"{self.prefix}{name}:{value}|g")

    def increment(self, name: str, value: Any, sampling_rate: float = 1.0) -> None:
        self._sock_send(f"{self.prefix}{name}:{value}|c|@{sampling_rate}")

    def decrement(self, name: str, value: Any, sampling_rate: float = 1.0) -> None:
        self._sock_send(f"{self.prefix}{name}:-{value}|c|@{sampling_rate}")

    def histogram(self, name: str, value: Any) -> None:
        self._sock_send(f"{self.prefix}{name}:{value}|ms")

    def _sock_send(self, msg: str) -> None:
        if self.sock is None:
            return
        data = msg.encode("ascii") + self._tag_suffix
        try:
            self.sock.send(data)
            self._send_failed = False
        except OSError:
            # no listener yet (ECONNREFUSED) or a full buffer: drop the datagram;
            # say so once per failure streak, never per request
            if not self._send_failed:
                self._send_failed = True
                Logger.debug(self, "Error sending message to statsd", exc_info=True)
