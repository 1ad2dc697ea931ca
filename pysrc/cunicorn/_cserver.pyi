"""Typed stub of the C extension ``cunicorn._cserver`` (an implementation detail).

Python binds the listening sockets, loads the app and sets up logging; C runs the
master loop and the worker loops.  The two meet only through these functions.
"""

from collections.abc import Callable, Iterable
from typing import Any, Protocol

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

class MasterHooks(Protocol):
    """The ``hooks`` object of ``run_master`` (cunicorn.arbiter.Arbiter is one).
    Every method runs in the master with the GIL, except ``reexec`` (in the
    forked child).  A method that raises is reported and ignored: it never
    stops the master (the Python side logs its own server hooks' errors)."""

    def pre_fork(self, slot: int, age: int) -> None:
        """Before forking the worker for heartbeat ``slot``; ``age`` counts
        spawns (gunicorn's worker.age)."""
    def forked(self, slot: int, pid: int) -> None:
        """After the fork, in the master: worker ``slot`` is ``pid``."""
    def child_exit(self, slot: int, pid: int, status: int) -> None:
        """Worker ``pid`` was reaped (``status`` as from waitpid)."""
    def nworkers_changed(self, new: int, old: int) -> None:
        """TTIN, TTOU, HUP or WINCH changed the target worker count."""
    def reload(self) -> tuple[int, float, float]:
        """HUP: re-read the configuration, reopen the logs, run on_reload; return
        (workers, timeout, graceful_timeout) for the new generation (raise to
        keep the running ones; the workers are renewed either way)."""
    def reopen_logs(self) -> None:
        """USR1, before the signal is forwarded to the workers."""
    def reexec(self) -> None:
        """USR2, in the forked child: exec the new master (listening sockets
        inherited).  Returning (exec failed) makes the child exit 1."""
    def stopping(self, unlink: bool) -> None:
        """First step of a stop (TERM, INT, QUIT, exit 3/4): close the listening
        sockets; remove unix socket files only when ``unlink`` (no USR2 parent
        or child shares them)."""
    def promoted(self) -> None:
        """This USR2 child's old master is gone: it is the master now (rename
        ``<pidfile>.2``)."""

def run_master(
    heartbeats: Any,
    *,
    workers: int,
    timeout: float,
    graceful_timeout: float,
    spawn: Callable[[int], int],
    log: Callable[[str, str], None],
    hooks: MasterHooks | None = None,
    daemon: bool = False,
    parent_master: int = 0,
) -> int:
    """Run the pre-fork master loop until it stops; return the process exit code.

    ``heartbeats`` is a writable buffer of ``HEARTBEAT_SLOT_SIZE * nslots`` bytes
    shared with the children (``workers`` may use at most half the slots: a HUP
    runs two generations side by side).  For each worker the master forks and,
    in the child, calls ``spawn(slot)``; the child exits with its return value.
    ``log(level, message)`` receives the master's log lines (level: debug/info/
    warning/error/critical).  ``daemon``: WINCH stops the workers (else it is
    ignored).  ``parent_master``: the old master's pid when this master was
    started by its USR2 (GUNICORN_PID); it is promoted when that one exits.

    Signals, as gunicorn's arbiter: TERM graceful stop (SIGTERM, graceful_timeout,
    SIGKILL), INT/QUIT quick stop; HUP ``hooks.reload()`` then a new generation
    of workers, the old one getting SIGTERM once every new worker is accepting
    (its first heartbeat) or after min(timeout, 30 s); TTIN/TTOU one worker
    more/fewer (never below 1; the oldest leaves); USR1 ``hooks.reopen_logs()``
    and forwarded to the workers; USR2 binary upgrade through ``hooks.reexec()``
    (refused while a child or parent master exists); WINCH see ``daemon``; CHLD
    reap and respawn.  A worker exiting with 3 or 4 stops the master with that
    code; a worker whose heartbeat is older than ``timeout`` (0 = never) gets
    SIGABRT, then SIGKILL every second while it lives.
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

def run_worker_gevent(
    app: Callable[..., Iterable[bytes]],
    listeners: list[tuple[int, str, str]],
    base_environ: dict[str, Any],
    *,
    worker_connections: int = 1000,
    **kwargs: Any,
) -> int:
    """Run the gevent worker (present only when greenlet's headers were found at
    build time).  Takes run_worker's keyword arguments plus
    ``worker_connections`` (the cap on open connections).  Call it in the main
    greenlet of a worker whose gevent hub is initialized (after
    ``gevent.reinit()``): each connection is served in its own greenlet,
    child of the hub, and waits for its socket on the hub, so code patched by
    gevent cooperates.  TERM: stop accepting, close idle keep-alive
    connections, let requests in progress finish within ``graceful_timeout``;
    QUIT/INT: now.  Returns the exit code (0)."""

def run_worker_gthread(
    app: Callable[..., Iterable[bytes]],
    listeners: list[tuple[int, str, str]],
    base_environ: dict[str, Any],
    *,
    threads: int = 1,
    worker_connections: int = 1000,
    **kwargs: Any,
) -> int:
    """Run the gthread worker: a libev loop thread (no GIL) owns every socket --
    accept, idle keep-alive, reading and parsing heads, the heartbeat -- and
    ``threads`` pool threads run the app with the GIL.  ``kwargs`` are exactly
    :func:`run_worker`'s keywords.  At most ``worker_connections`` connections
    are open at once (accepting pauses at the cap).  TERM: stop accepting,
    close idle keep-alive connections, finish in-flight requests within
    ``graceful_timeout``; QUIT/INT: now; ``max_requests`` retires the worker
    the same way.  Returns the exit code (0).
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
