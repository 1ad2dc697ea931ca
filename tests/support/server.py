"""Run a real ``cunicorn`` process for black-box tests and talk raw HTTP to it.

API (kept small on purpose; tests/unit and tests/cli may use it too)::

    from tests.support.server import Server, parse_response, build_request

    with Server("tests.apps.echo:app", "-w", "2") as srv:   # starts, waits ready
        raw = srv.request(b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
        resp = parse_response(raw)
        assert resp.status == 200
        srv.wait_for_log(r"Booting worker", timeout=5)
    # leaving the block stops it (SIGTERM, bounded wait, SIGKILL fallback)

``Server(app, *args, env=None, workers=None, ready_timeout=10, bind=True)``
    command: ``[sys.executable, "-m", "cunicorn", *args, "-b", "127.0.0.1:0", app]``
    with cwd = repository root and the caller's environment (plus ``env``), so
    ASan's LD_PRELOAD / ASAN_OPTIONS reach the server under ``make sanitize``.
    stdout+stderr go to a log file.  ``bind=False`` leaves ``-b`` out (then pass
    your own ``-b``; the port is still read from the ``Listening at`` line; with
    ``-b unix:PATH`` the server is reached on that socket: ``.unix_path``;
    with ``-b [::1]:PORT`` on ::1: ``.host``).
    ``workers`` defaults to the ``-w/--workers`` value found in ``args`` (else 1).

``.start()`` waits (bounded) for ``Listening at: http://127.0.0.1:PORT (PID)``,
one ``Booting worker with pid: N`` line per worker and the port answering a TCP
connect; raises :class:`ServerStartError` (with the log) if the process exits or
the deadline passes.  Attributes / methods:

- ``.port`` (None on a unix socket), ``.unix_path``, ``.pid`` (master),
  ``.proc``, ``.log_path`` (``error_log=PATH`` makes it the server's
  --error-logfile; stdout and stderr then go to ``.out_path``)
- ``.log_text()``, ``.log_mark()``, ``.log_tail()``
- ``.wait_for_log(regex, timeout=10, count=1, since=0)``, ``.worker_pids()``
- ``.request(raw, timeout=5, shutdown=True)`` → raw bytes until EOF
- ``.connect(timeout=5)``, ``.fetch(raw)`` → Response
- ``.echo(raw)`` → the echo app's JSON (asserts 200)
- ``.stop(sig=SIGTERM, timeout=10)`` → exit code
- ``.wait_exit(timeout)`` → exit code or None, ``.alive()``

Module helpers: ``build_request(method, target, headers=(), body=b"",
version="HTTP/1.1")``, ``parse_response(raw, head_request=False)`` →
:class:`Response`, ``recv_until(sock, marker, timeout)``, ``recv_all(sock,
timeout)``, ``recv_response(sock, timeout, buf)`` → (Response, bytes after it)
on a kept-alive socket, ``wait_until(predicate, timeout)``,
``start_server_cmd(...)`` (the raw Popen for tests that expect the start to
fail, e.g. exit codes).

Process helpers: ``pid_gone(pid)``, ``is_cunicorn(pid)``, ``read_pid(path)``,
``kill_and_wait(pid, timeout)`` (TERM, bounded wait, KILL), ``cpu_seconds(pid)``,
``free_port()``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

LISTEN_RE = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+) \((\d+)\)")
LISTEN6_RE = re.compile(r"Listening at: http://\[::1\]:(\d+) \((\d+)\)")
UNIX_LISTEN_RE = re.compile(r"Listening at: unix:(\S+) \((\d+)\)")
BOOT_RE = re.compile(r"Booting worker with pid: (\d+)")

_POLL = 0.02  # seconds between two looks at observable state


class ServerStartError(RuntimeError):
    """The server did not become ready; the message carries its log."""


def wait_until(predicate, timeout: float, interval: float = _POLL):
    """Poll ``predicate()`` until it returns a truthy value (returned) or the
    deadline passes (returns the last falsy value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def _workers_from_args(args) -> int:
    args = list(args)
    for i, a in enumerate(args):
        if a in ("-w", "--workers") and i + 1 < len(args):
            return int(args[i + 1])
        if a.startswith("--workers="):
            return int(a.split("=", 1)[1])
        if a.startswith("-w") and a[2:].isdigit():
            return int(a[2:])
    return 1


def start_server_cmd(app, *args, env=None, bind=True, log_file=None):
    """Start ``python -m cunicorn`` and return the Popen (no waiting).

    stdout and stderr go to ``log_file`` (an open binary file) when given,
    else to pipes."""
    cmd = [sys.executable, "-m", "cunicorn", *args]
    if bind:
        cmd += ["-b", "127.0.0.1:0"]
    if app is not None:
        cmd.append(app)
    full_env = dict(os.environ)
    full_env["PYTHONUNBUFFERED"] = "1"
    if env:
        full_env.update(env)
    out = log_file if log_file is not None else subprocess.PIPE
    return subprocess.Popen(
        cmd,
        cwd=str(REPO_ROOT),
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT if log_file is not None else subprocess.PIPE,
    )


class Server:
    """A cunicorn process on 127.0.0.1:0 (see the module docstring)."""

    def __init__(
        self,
        app: str = "tests.apps.echo:app",
        *args: str,
        env: dict | None = None,
        workers: int | None = None,
        ready_timeout: float = 10.0,
        bind: bool = True,
        log_dir: str | os.PathLike | None = None,
        error_log: str | os.PathLike | None = None,
    ):
        """error_log: the server's --error-logfile, whose lines (ready,
        booted workers) are then ``.log_text()``; its stdout and stderr
        still go to ``.out_path``."""
        self.app = app
        self.args = list(args)
        self.env = env
        self.workers = workers if workers is not None else _workers_from_args(args)
        self.ready_timeout = ready_timeout
        self.bind = bind
        self.port: int | None = None
        self.unix_path: str | None = None
        self.host = "127.0.0.1"
        self.pid: int | None = None
        self.proc: subprocess.Popen | None = None
        self._own_dir = log_dir is None
        self._dir = Path(log_dir or tempfile.mkdtemp(prefix="cunicorn-test-"))
        self.out_path = self._dir / "server.log"
        self.log_path = Path(error_log) if error_log is not None else self.out_path
        if error_log is not None:
            self.args += ["--error-logfile", str(error_log)]
        self._log_fh = None

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> Server:
        self._log_fh = open(self.out_path, "wb")
        self.proc = start_server_cmd(
            self.app, *self.args, env=self.env, bind=self.bind, log_file=self._log_fh
        )
        self.pid = self.proc.pid
        deadline = time.monotonic() + self.ready_timeout
        while True:
            text = self.log_text()
            m = LISTEN_RE.search(text)
            if m is None and LISTEN6_RE.search(text):
                m, self.host = LISTEN6_RE.search(text), "::1"
            u = None if m else UNIX_LISTEN_RE.search(text)
            booted = len(BOOT_RE.findall(text))
            if u and booted >= self.workers and self._unix_answers(u.group(1)):
                self.unix_path = u.group(1)
                return self
            if (
                m
                and booted >= self.workers
                and self._port_answers(self.host, int(m.group(1)))
            ):
                self.port = int(m.group(1))
                return self
            rc = self.proc.poll()
            if rc is not None:
                self._close_log()
                raise ServerStartError(
                    f"server exited with code {rc} before it was ready\n"
                    f"command args: {self.args} {self.app}\n--- log ---\n"
                    f"{self.log_text()}"
                )
            if time.monotonic() >= deadline:
                self.stop()
                raise ServerStartError(
                    f"server not ready after {self.ready_timeout}s "
                    f"(listening line: {bool(m)}, workers booted: {booted}/"
                    f"{self.workers})\n--- log ---\n{self.log_text()}"
                )
            time.sleep(_POLL)

    @staticmethod
    def _port_answers(host: str, port: int) -> bool:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            return False

    @staticmethod
    def _unix_answers(path: str) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            try:
                s.connect(path)
                return True
            except OSError:
                return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout: float) -> int | None:
        """Wait (bounded) for the master to exit; its exit code or None."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        """Send ``sig`` to the master (by pid), wait up to ``timeout``; then
        SIGKILL the master and any worker pid seen in the log. Returns the exit
        code (negative = killed by a signal)."""
        if self.proc is None:
            return None
        workers = self.worker_pids()
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            rc = self.wait_exit(timeout)
            if rc is None:
                try:
                    os.kill(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.wait_exit(5)
        # Never leave orphans behind: workers we saw boot are ours.
        for wpid in workers:
            if not pid_gone(wpid) and is_cunicorn(wpid):
                try:
                    os.kill(wpid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._close_log()
        return self.proc.returncode

    def _close_log(self):
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- observation ---------------------------------------------------------

    def log_text(self) -> str:
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_mark(self) -> int:
        """Current log length; pass it as ``since`` to look only at newer lines."""
        return len(self.log_text())

    def wait_for_log(
        self, regex: str, timeout: float = 10.0, count: int = 1, since: int = 0
    ):
        """Wait until ``regex`` matches ``count`` times in the log (from
        character ``since`` on); return the last match. Raises AssertionError
        with the log on timeout."""
        pat = re.compile(regex)

        def found():
            ms = list(pat.finditer(self.log_text()[since:]))
            return ms[count - 1] if len(ms) >= count else None

        m = wait_until(found, timeout)
        if not m:
            raise AssertionError(
                f"log line {regex!r} (x{count}) not seen within {timeout}s\n"
                f"--- log ---\n{self.log_text()}"
            )
        return m

    def worker_pids(self) -> list[int]:
        return [int(p) for p in BOOT_RE.findall(self.log_text())]

    # -- talking to it -------------------------------------------------------

    def connect(self, timeout: float = 5.0) -> socket.socket:
        if self.unix_path is not None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            try:
                s.connect(self.unix_path)
            except OSError:
                s.close()
                raise
            return s
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        s.settimeout(timeout)
        return s

    def request(self, raw: bytes, timeout: float = 5.0, shutdown: bool = True) -> bytes:
        """Connect, send ``raw``, half-close (``shutdown``), read until EOF.

        Returns every byte received. A reset by the peer ends the read (bytes
        read before it are returned). Raises TimeoutError if EOF does not come
        within ``timeout`` seconds of inactivity."""
        with self.connect(timeout) as s:
            try:
                s.sendall(raw)
                if shutdown:
                    s.shutdown(socket.SHUT_WR)
            except OSError:  # EPIPE/ECONNRESET/ENOTCONN: the server closed early
                pass
            return recv_all(s, timeout)

    def fetch(self, raw: bytes, head_request: bool = False, timeout: float = 5.0):
        """``parse_response(self.request(raw))``."""
        return parse_response(self.request(raw, timeout=timeout), head_request)

    def echo(self, raw: bytes, timeout: float = 5.0) -> dict:
        """Send ``raw`` to an echo app; assert a 200 and return its JSON."""
        resp = self.fetch(raw, timeout=timeout)
        assert resp.status == 200, (resp.status, resp.raw[:500], self.log_tail())
        return resp.json()

    def log_tail(self, n: int = 3000) -> str:
        return self.log_text()[-n:]


def pid_gone(pid: int) -> bool:
    """True once ``pid`` no longer exists or is a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):  # exited before / while read
        return True


def is_cunicorn(pid: int) -> bool:
    """True if ``pid`` is a cunicorn process; checked before SIGKILLing a pid
    seen in a log or pid file, against pid reuse."""
    try:
        return b"cunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def read_pid(path: os.PathLike) -> int | None:
    """The pid in a pid file, or None while it is missing or incomplete."""
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


def kill_and_wait(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM ``pid``, wait (bounded) until it is gone, else SIGKILL it."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not wait_until(lambda: pid_gone(pid), timeout):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (/proc/PID/stat, read past the
    parenthesised command name, which may hold spaces)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port on 127.0.0.1 free right now (for servers bound to a fixed
    port, such as the seed configs)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recv_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Read until EOF (or a reset). TimeoutError (carrying ``.data``) if the
    peer stays silent for ``timeout`` seconds."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        try:
            b = sock.recv(65536)
        except ConnectionResetError:
            break
        except socket.timeout:
            err = TimeoutError(
                f"no EOF after {timeout}s; received so far: {b''.join(chunks)[:500]!r}"
            )
            err.data = b"".join(chunks)
            raise err from None
        if not b:
            break
        chunks.append(b)
    return b"".join(chunks)


def recv_until(sock: socket.socket, marker: bytes, timeout: float = 5.0) -> bytes:
    """Read until ``marker`` is in the received bytes; return them all.
    AssertionError on EOF or timeout before the marker."""
    deadline = time.monotonic() + timeout
    buf = b""
    while marker not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(
                f"{marker!r} not received in {timeout}s: {buf[:500]!r}"
            )
        sock.settimeout(left)
        try:
            b = sock.recv(65536)
        except socket.timeout:
            continue
        if not b:
            raise AssertionError(f"EOF before {marker!r}: {buf[:500]!r}")
        buf += b
    return buf


def recv_response(
    sock: socket.socket, timeout: float = 5.0, buf: bytes = b""
) -> tuple[Response, bytes]:
    """Read one response from a kept-alive socket: its head, then a body
    framed by Content-Length (none: an empty body; not for chunked bodies).
    ``buf`` holds bytes already read from ``sock``. Returns the response and
    the bytes received past it. ``timeout`` bounds each wait for data
    (socket.timeout); ConnectionError on EOF before the response is whole."""
    sock.settimeout(timeout)

    def more(what):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"EOF {what}: {buf[:500]!r}")
        return chunk

    while b"\r\n\r\n" not in buf:
        buf += more("before a response head")
    body_at = buf.index(b"\r\n\r\n") + 4
    head = parse_response(buf[:body_at], head_request=True)
    length = int(head.header("Content-Length", "0"))
    while len(buf) < body_at + length:
        buf += more("inside a response body")
    end = body_at + length
    return parse_response(buf[:end]), buf[end:]


def build_request(
    method: str = "GET",
    target: str = "/",
    headers=(),
    body: bytes = b"",
    version: str = "HTTP/1.1",
    host: str | None = "localhost",
) -> bytes:
    """Build a raw request. Adds ``Host`` (unless None or present) and
    ``Content-Length`` for a non-empty body unless a framing header is given."""
    hdrs = list(headers)
    names = {n.lower() for n, _ in hdrs}
    if host is not None and "host" not in names:
        hdrs.insert(0, ("Host", host))
    if body and "content-length" not in names and "transfer-encoding" not in names:
        hdrs.append(("Content-Length", str(len(body))))
    head = f"{method} {target} {version}\r\n"
    head += "".join(f"{n}: {v}\r\n" for n, v in hdrs)
    head += "\r\n"
    return head.encode("latin-1") + body


def chunked(*parts: bytes, trailers: bytes = b"") -> bytes:
    """Encode ``parts`` as a chunked body (empty parts are skipped)."""
    out = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p)
    return out + b"0\r\n" + trailers + b"\r\n"


@dataclass
class Response:
    version: str
    status: int
    reason: str
    headers: list  # [(name, value)] as received, str (latin-1)
    body: bytes  # decoded body (de-chunked); for HEAD/1xx/204/304: b""
    complete: bool  # framing satisfied (chunked terminator / full CL)
    rest: bytes  # bytes after the body (should be empty with Connection: close)
    raw: bytes
    interim: list = field(
        default_factory=list
    )  # 1xx responses skipped: [(status, headers)]
    trailers: list = field(default_factory=list)
    chunked: bool = False

    def header(self, name: str, default=None):
        n = name.lower()
        for k, v in self.headers:
            if k.lower() == n:
                return v
        return default

    def header_list(self, name: str) -> list:
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def json(self):
        import json

        return json.loads(self.body.decode("utf-8"))


class BadResponse(AssertionError):
    pass


def _parse_head(raw: bytes):
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        raise BadResponse(f"no complete response head in {raw[:300]!r}")
    lines = raw[:end].decode("latin-1").split("\r\n")
    status_line = lines[0]
    m = re.match(r"(HTTP/\d\.\d) (\d{3})(?: (.*))?$", status_line)
    if not m:
        raise BadResponse(f"bad status line {status_line!r}")
    headers = []
    for line in lines[1:]:
        if ":" not in line or line[:1] in (" ", "\t"):
            raise BadResponse(f"bad header line {line!r} in {raw[:300]!r}")
        k, v = line.split(":", 1)
        headers.append((k, v.strip(" \t")))
    return m.group(1), int(m.group(2)), m.group(3) or "", headers, raw[end + 4 :]


def _dechunk(data: bytes):
    """Return (body, complete, rest, trailers)."""
    body = b""
    pos = 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return body, False, b"", []
        size_txt = data[pos:eol].split(b";", 1)[0].strip()
        try:
            size = int(size_txt, 16)
        except ValueError:
            return body, False, data[pos:], []
        pos = eol + 2
        if size == 0:
            trailers = []
            while True:
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    return body, False, b"", trailers
                line = data[pos:eol]
                pos = eol + 2
                if not line:
                    return body, True, data[pos:], trailers
                k, _, v = line.decode("latin-1").partition(":")
                trailers.append((k, v.strip()))
        if len(data) < pos + size + 2:
            body += data[pos : pos + size]
            return body, False, b"", []
        body += data[pos : pos + size]
        if data[pos + size : pos + size + 2] != b"\r\n":
            return body, False, data[pos + size :], []
        pos += size + 2


def parse_response(raw: bytes, head_request: bool = False) -> Response:
    """Parse one HTTP/1.x response (1xx interim responses are collected and
    skipped). Handles Content-Length, chunked and close-delimited bodies."""
    interim = []
    data = raw
    while True:
        version, status, reason, headers, rest = _parse_head(data)
        if 100 <= status < 200 and status != 101:
            interim.append((status, headers))
            data = rest
            continue
        break
    resp = Response(version, status, reason, headers, b"", True, b"", raw, interim)
    te = ",".join(resp.header_list("Transfer-Encoding")).lower()
    cl = resp.header("Content-Length")
    if head_request or status in (204, 304) or 100 <= status < 200:
        resp.rest = rest
    elif "chunked" in te:
        resp.chunked = True
        resp.body, resp.complete, resp.rest, resp.trailers = _dechunk(rest)
    elif cl is not None:
        n = int(cl)
        resp.body, resp.rest = rest[:n], rest[n:]
        resp.complete = len(rest) >= n
    else:
        resp.body = rest
    return resp
