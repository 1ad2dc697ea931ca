"""systemd integration, as gunicorn's systemd.py: socket activation
(LISTEN_FDS / LISTEN_PID) and sd_notify over NOTIFY_SOCKET."""

from __future__ import annotations

import os
import socket
from typing import Any

SD_LISTEN_FDS_START = 3


def listen_fds() -> int:
    """How many sockets systemd passed to this process (fds 3, 4, ...); 0 when
    none or when LISTEN_PID names another process.  Unsets the variables so
    workers and re-executions do not take them for their own."""
    try:
        fds = int(os.environ.get("LISTEN_FDS", 0))
        listen_pid = int(os.environ.get("LISTEN_PID", 0))
    except ValueError:
        return 0
    if listen_pid != os.getpid():
        return 0
    os.environ.pop("LISTEN_PID", None)
    os.environ.pop("LISTEN_FDS", None)
    os.environ.pop("LISTEN_FDNAMES", None)
    return max(fds, 0)


def sd_notify(state: str, log: Any) -> None:
    """Send ``state`` (e.g. ``READY=1``) to NOTIFY_SOCKET when it is set;
    failures are logged at debug and otherwise ignored."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr[0] == "@":
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(addr)
            sock.sendall(state.encode("utf-8"))
    except Exception:
        log.debug("Exception while invoking sd_notify()", exc_info=True)
