"""Typed stub of the C extension ``cunicorn._cserver`` (an implementation detail).

Python binds the listening sockets, loads the app and sets up logging; C runs the
master loop and the worker loops.  The two meet only through these functions.
"""

from collections.abc import Callable, Iterable
from typing import Any

__version__: str

# Heartbeat table: one 64-byte slot per worker, in a shared anonymous mapping that
# Python creates (``mmap.mmap(-1, HEARTBEAT_SLOT_SIZE * nslots)``) before forking.
HEARTBEAT_SLOT_SIZE: int

class NoMoreData(OSError):
    """Raised by wsgi.input reads when the client closed before the body ended."""

class InvalidChunk(OSError):
    """Raised by wsgi.input reads when the chunked body is malformed."""

class FileWrapper:
    """wsgi.file_wrapper: iterates ``filelike.read(blksize)``; sent with sendfile(2)
    when ``filelike.fileno()`` is a regular file."""

    filelike: Any
    blksize: int
    def __init__(self, filelike: Any, blksize: int = 8192) -> None: ...
    def __iter__(self) -> FileWrapper: ...
    def __next__(self) -> bytes: ...
    def close(self) -> None: ...

def run_master(
    heartbeats: Any,
    *,
    workers: int,
    timeout: float,
    graceful_timeout: float,
    spawn: Callable[[int], int],
    log: Callable[[str, str], None],
) -> int:
    """Run the pre-fork master loop until it stops; return the process exit code.

    ``heartbeats`` is a writable buffer of ``HEARTBEAT_SLOT_SIZE * nslots`` bytes
    shared with the children.  For each worker the master forks and, in the child,
    calls ``spawn(slot)``; the child exits with its return value.  ``log(level,
    message)`` receives the master's log lines (level: debug/info/warning/error/
    critical).  Signals: TERM graceful, INT/QUIT quick, CHLD reap and respawn; a
    worker exiting with 3 or 4 stops the master with that code; a worker whose
    heartbeat is older than ``timeout`` (0 = never) gets SIGABRT, then SIGKILL.
    """

def run_worker(
    app: Callable[..., Iterable[bytes]],
    listeners: list[tuple[int, str, str]],
    base_environ: dict[str, Any],
    *,
    heartbeats: Any = None,
    slot: int = -1,
    timeout: float = 30.0,
    graceful_timeout: float = 30.0,
    keepalive: float = 2.0,
    max_requests: int = 0,
    limit_request_line: int = 4094,
    limit_request_fields: int = 100,
    limit_request_field_size: int = 8190,
    access_log: Callable[[dict[str, Any], str, list[tuple[str, str]], int, float], None]
    | None = None,
    error_log: Callable[[str, str, bool], None] | None = None,
) -> int:
    """Run the sync worker loop on the inherited ``listeners`` (fd, SERVER_NAME,
    SERVER_PORT) until TERM (finish the current request), QUIT/INT (now), the
    parent's death or ``max_requests``; return the exit code (0).

    Every request's environ starts as a copy of ``base_environ``.  ``access_log(
    environ, status, response_headers, response_length, request_seconds)`` is
    called after each response when given.  ``error_log(level, message,
    with_exception)`` reports app errors; with_exception=True means a Python
    exception is set and should be logged with its traceback (``logging``'s
    ``exc_info=True``).
    """

def parse_requests(
    data: bytes,
    *,
    chunk: int = 0,
    limit_request_line: int = 4094,
    limit_request_fields: int = 100,
    limit_request_field_size: int = 8190,
) -> list[dict[str, Any]]:
    """Test entry: run the engine's parser over ``data`` fed in pieces of
    ``chunk`` bytes (0 = whole) and return one dict per request: method, uri,
    version, headers [(NAME, value)], body, or {"error": status, "reason": str}
    for the request that failed (parsing stops there)."""
