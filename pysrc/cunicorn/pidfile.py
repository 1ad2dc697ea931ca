"""The pid file (-p/--pid), as gunicorn's pidfile.Pidfile: written atomically,
refused when a live process owns it, stale files replaced, removed on exit
only while it still holds our pid."""

from __future__ import annotations

import errno
import os
import tempfile


class Pidfile:
    def __init__(self, fname: str) -> None:
        self.fname = fname
        self.pid: int | None = None

    def create(self, pid: int) -> None:
        """Write ``pid``; RuntimeError when another live process owns the file."""
        oldpid = self.validate()
        if oldpid and oldpid != os.getpid() and oldpid != pid:
            raise RuntimeError(
                f"Already running on PID {oldpid} (or pid file '{self.fname}' is stale)"
            )
        self.pid = pid
        fdir = os.path.dirname(os.path.abspath(self.fname))
        if not os.path.isdir(fdir):
            raise RuntimeError(f"{fdir}: directory of the pid file doesn't exist")
        # a reader never sees a half-written file: write aside, then rename
        fd, tmp = tempfile.mkstemp(prefix=".pid-", dir=fdir)
        try:
            os.write(fd, f"{pid}\n".encode())
            os.fchmod(fd, 0o644)
        finally:
            os.close(fd)
        os.rename(tmp, self.fname)

    def rename(self, path: str) -> None:
        """Move to ``path`` (the USR2 master's ``NAME.2`` becomes ``NAME``)."""
        self.unlink()
        self.fname = path
        if self.pid is not None:
            self.create(self.pid)

    def _read(self) -> int:
        """The pid in the file; 0 when it is missing, unreadable or garbage."""
        try:
            with open(self.fname) as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0

    def unlink(self) -> None:
        """Remove the file if it still holds our pid."""
        if self.pid and self._read() == self.pid:
            try:
                os.unlink(self.fname)
            except OSError:
                pass

    def validate(self) -> int | None:
        """The pid in the file when that process is alive, else None (no file,
        garbage or a stale pid)."""
        wpid = self._read()
        if wpid <= 0:
            return None
        try:
            os.kill(wpid, 0)
        except OSError as e:
            if e.errno == errno.ESRCH:
                return None
            if e.errno == errno.EPERM:
                return wpid
            raise
        return wpid
