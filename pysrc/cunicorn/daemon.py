"""Detaching from the terminal (-D/--daemon), as gunicorn's util.daemonize:
double fork, setsid, stdin from /dev/null and stdout/stderr to /dev/null
unless --enable-stdio-inheritance (-R)."""

from __future__ import annotations

import os
import sys


def daemonize(enable_stdio_inheritance: bool = False) -> None:
    """Return in the grandchild; the two parents exit 0 at once."""
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    os.umask(0o22)

    sys.stdout.flush()
    sys.stderr.flush()
    fd_null = os.open(os.devnull, os.O_RDWR)
    os.dup2(fd_null, 0)
    if not enable_stdio_inheritance:
        os.dup2(fd_null, 1)
        os.dup2(fd_null, 2)
    if fd_null > 2:
        os.close(fd_null)


def setproctitle(title: str) -> None:
    """``cunicorn: TITLE`` as the process title when setproctitle is installed."""
    try:
        from setproctitle import setproctitle as _set
    except ImportError:
        return
    _set(f"cunicorn: {title}")
