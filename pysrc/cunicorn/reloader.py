"""--reload: restart the worker when a loaded module's file or one of
reload_extra_files changes, as gunicorn's reloader does.

Runs in each worker as a daemon thread (a greenlet under gevent's monkey
patching: it only waits in ``select`` and ``time.sleep``).  The engine is
inotify through ctypes when the kernel has it (no extra package), else polling
of modification times once a second.  On a change the worker logs
``Worker reloading: FILE modified`` and stops gracefully (SIGTERM to itself);
the master starts a fresh one.  A SyntaxError while loading the app is served
as a 500 with the traceback until the file is fixed.
"""

from __future__ import annotations

import ctypes
import functools
import os
import select
import signal
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any

# inotify(7)
IN_MODIFY = 0x002
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
WATCH_MASK = (
    IN_MODIFY
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
)
_EVENT = struct.Struct("iIII")
SCAN_INTERVAL = 1.0  # seconds between two looks at sys.modules / mtimes


def module_files() -> set[str]:
    """The source files of every loaded module (``.pyc`` mapped to ``.py``)."""
    files = set()
    for mod in list(sys.modules.values()):
        path = getattr(mod, "__file__", None)
        if not path:
            continue
        if path.endswith((".pyc", ".pyo")):
            path = path[:-1]
        files.add(os.path.abspath(path))
    return files


class Reloader(threading.Thread):
    """Calls ``callback(path)`` once, on the first change of a watched file."""

    def __init__(
        self,
        extra_files: Iterable[str] = (),
        callback: Callable[[str], Any] | None = None,
        engine: str = "auto",
        interval: float = SCAN_INTERVAL,
    ) -> None:
        super().__init__(name="cunicorn-reloader", daemon=True)
        self.extra_files = {os.path.abspath(f) for f in extra_files}
        self.callback = callback or (lambda path: None)
        self.interval = interval
        self.inotify_fd = -1
        if engine in ("auto", "inotify"):
            self.inotify_fd = _inotify_init()
            if self.inotify_fd < 0 and engine == "inotify":
                raise RuntimeError("the inotify reload engine is not available")
        self._watched_dirs: dict[int, str] = {}
        self._mtimes: dict[str, float] = {}

    def add_extra_file(self, path: str | None) -> None:
        if path:
            self.extra_files.add(os.path.abspath(path))

    def files(self) -> set[str]:
        return module_files() | self.extra_files

    def start(self) -> None:
        """Take the baseline (watches or mtimes) now, so a change made once
        the worker serves is never missed, then start the thread."""
        if self.inotify_fd >= 0:
            self._watch(self.files())
        else:
            self._changed_mtime(self.files())
        super().start()

    def run(self) -> None:
        try:
            if self.inotify_fd >= 0:
                self._run_inotify()
            else:
                self._run_poll()
        except Exception:  # a broken reloader must not take the worker down
            traceback.print_exc()

    # --- polling ---

    def _changed_mtime(self, files: Iterable[str]) -> str | None:
        for path in files:
            try:
                mtime = os.stat(path).st_mtime
            except OSError:
                continue
            old = self._mtimes.setdefault(path, mtime)
            if mtime > old:
                return path
        return None

    def _run_poll(self) -> None:
        while True:
            time.sleep(self.interval)
            path = self._changed_mtime(self.files())
            if path is not None:
                self.callback(path)
                return

    # --- inotify ---

    def _watch(self, files: set[str]) -> None:
        known = set(self._watched_dirs.values())
        for d in {os.path.dirname(f) for f in files} - known:
            wd = _inotify_add_watch(self.inotify_fd, d)
            if wd >= 0:
                self._watched_dirs[wd] = d

    def _run_inotify(self) -> None:
        fd = self.inotify_fd
        while True:
            ready, _, _ = select.select([fd], [], [], self.interval)
            if not ready:
                files = self.files()  # modules imported since
                self._watch(files)
                continue
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            files = self.files()
            for path in self._parse(data):
                if path is None or path in files:
                    self.callback(path or "(inotify queue overflow)")
                    return

    def _parse(self, data: bytes) -> list[str | None]:
        """The paths named by a buffer of inotify events (None: overflow)."""
        out: list[str | None] = []
        pos = 0
        while pos + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, pos)
            pos += _EVENT.size
            name = data[pos : pos + length].split(b"\0", 1)[0]
            pos += length
            if mask & IN_Q_OVERFLOW:
                out.append(None)
                continue
            d = self._watched_dirs.get(wd)
            if d is not None and name:
                out.append(os.path.join(d, os.fsdecode(name)))
        return out


@functools.cache
def _libc() -> Any:
    """The C library (the process's own symbols: libc is among them), loaded
    once per process."""
    return ctypes.CDLL(None, use_errno=True)


def _inotify_init() -> int:
    """An inotify file descriptor (non-blocking, close-on-exec), or -1."""
    try:
        fd = _libc().inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, AttributeError):
        return -1
    return fd if fd >= 0 else -1


def _inotify_add_watch(fd: int, path: str) -> int:
    try:
        return _libc().inotify_add_watch(fd, os.fsencode(path), WATCH_MASK)
    except (OSError, AttributeError):
        return -1


def make_fail_app(msg: str) -> Callable[..., Any]:
    """An app answering 500 with ``msg`` (gunicorn's util.make_fail_app)."""
    body = msg.encode("utf-8", "replace")

    def app(environ: dict, start_response: Callable[..., Any]) -> list[bytes]:
        start_response(
            "500 Internal Server Error",
            [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return app


def worker_app(app: Any, cfg: Any, log: Any) -> Callable[..., Any]:
    """In a worker with --reload: load the app (a SyntaxError becomes a 500
    app showing the traceback, and its file is watched too) and start the
    reloader.  Other exceptions propagate as without --reload."""

    def changed(path: str) -> None:
        log.info("Worker reloading: %s modified", path)
        log.flush()
        os.kill(os.getpid(), signal.SIGTERM)

    reloader = Reloader(cfg.reload_extra_files, changed, cfg.reload_engine)
    try:
        wsgi = app.wsgi()
    except SyntaxError as e:
        log.exception(e)
        reloader.add_extra_file(e.filename)
        wsgi = make_fail_app(traceback.format_exc())
    reloader.start()
    return wsgi
