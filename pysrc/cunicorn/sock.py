"""Listening sockets: parsing ``--bind`` addresses and binding them once in the
master (workers inherit them), as gunicorn's sock.py and util.parse_address do."""

from __future__ import annotations

import errno
import os
import re
import socket
import stat
import time
from typing import Any, Union

# parse_address results: (host, port) for TCP, a path for unix, an int for fd://
Address = Union[tuple, str, int]


def parse_address(netloc: str, default_port: str = "8000") -> Address:
    """``HOST[:PORT]``, ``[IPV6]:PORT``, ``tcp://...``, ``unix:PATH`` (also
    ``unix://PATH``) or ``fd://N``; RuntimeError for a bad port or fd."""
    if re.match(r"unix:(//)?", netloc):
        return re.split(r"unix:(//)?", netloc)[-1]

    if netloc.startswith("fd://"):
        fd = netloc[5:]
        try:
            return int(fd)
        except ValueError:
            raise RuntimeError(f"{fd!r} is not a valid file descriptor.") from None

    if netloc.startswith("tcp://"):
        netloc = netloc.split("tcp://")[1]
    host, port = netloc, default_port

    if "[" in netloc and "]" in netloc:
        host = netloc.split("]")[0][1:]
        port = (netloc.split("]:") + [default_port])[1]
    elif ":" in netloc:
        host, port = (netloc.split(":") + [default_port])[:2]
    elif netloc == "":
        host, port = "0.0.0.0", default_port

    try:
        port = int(port)
    except ValueError:
        raise RuntimeError(f"{port!r} is not a valid port number.") from None

    return host.lower(), port


def is_ipv6(addr: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6, addr)
    except (OSError, ValueError):
        return False
    return True


class Listener:
    """One bound, listening, non-blocking, inheritable socket."""

    def __init__(self, sock: socket.socket, cfg_addr: Address, unlink: bool) -> None:
        self.sock = sock
        self.cfg_addr = cfg_addr
        # a unix socket file this process created and removes on exit
        self.unlink_path = cfg_addr if unlink and isinstance(cfg_addr, str) else None

    @property
    def family(self) -> int:
        return self.sock.family

    def fileno(self) -> int:
        return self.sock.fileno()

    def __str__(self) -> str:
        addr = self.sock.getsockname()
        if self.family == socket.AF_INET6:
            return f"http://[{addr[0]}]:{addr[1]}"
        if self.family == socket.AF_INET:
            return f"http://{addr[0]}:{addr[1]}"
        if isinstance(addr, bytes):  # abstract namespace
            addr = addr.decode("latin-1")
        return f"unix:{addr}"

    def server_name_port(self) -> tuple[str, str]:
        """SERVER_NAME and SERVER_PORT of requests on this socket: the bound
        address; ('', '') for a unix socket (the C side then uses Host)."""
        if self.family in (socket.AF_INET, socket.AF_INET6):
            addr = self.sock.getsockname()
            return str(addr[0]), str(addr[1])
        return "", ""

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
        if self.unlink_path and not self.unlink_path.startswith("\0"):
            try:
                os.unlink(self.unlink_path)
            except OSError:
                pass
            self.unlink_path = None


def _set_options(sock: socket.socket, backlog: int, bound: bool) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        # Linux copies TCP_NODELAY to the accepted sockets
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    sock.set_inheritable(True)
    listening = False
    if bound and hasattr(socket, "SO_ACCEPTCONN"):
        try:
            listening = bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
        except OSError:
            pass
    if not listening:
        sock.listen(backlog)


def _remove_stale_unix_socket(path: str) -> None:
    if path.startswith("\0"):
        return
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if stat.S_ISSOCK(st.st_mode):
        os.remove(path)
    else:
        raise ValueError(f"{path!r} is not a socket")


def _set_reuse_port(sock: socket.socket) -> None:
    """SO_REUSEPORT (--reuse-port): other processes that set it too may bind
    the same address, and the kernel spreads connections among them.  Where
    the socket or the system has no such option it is skipped, as gunicorn
    skips it."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    except OSError as e:
        if e.errno not in (errno.ENOPROTOOPT, errno.EINVAL):
            raise


def bind_one(addr: Address, backlog: int, reuse_port: bool = False) -> Listener:
    """Create, bind and listen on one address (OSError on failure)."""
    if isinstance(addr, int):
        sock = socket.socket(fileno=addr)  # adopts the fd; family from the kernel
        if sock.type != socket.SOCK_STREAM:
            sock.detach()
            raise RuntimeError(f"fd://{addr} is not a stream socket.")
        _set_options(sock, backlog, bound=True)
        return Listener(sock, sock.getsockname(), unlink=False)
    if isinstance(addr, str):
        _remove_stale_unix_socket(addr)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(addr)
            _set_options(sock, backlog, bound=False)
        except BaseException:
            sock.close()
            raise
        return Listener(sock, addr, unlink=True)
    family = socket.AF_INET6 if is_ipv6(addr[0]) else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            _set_reuse_port(sock)
        sock.bind(addr)
        _set_options(sock, backlog, bound=False)
    except BaseException:
        sock.close()
        raise
    return Listener(sock, addr, unlink=False)


def create_listeners(
    binds: list[str],
    backlog: int,
    log: Any,
    retries: int = 5,
    delay: float = 1.0,
    reuse_port: bool = False,
) -> list[Listener]:
    """Bind every ``--bind`` address once.  Like gunicorn, a failing address is
    retried ``retries`` times a second apart, then ``Can't connect to ADDR`` and
    SystemExit(1).  RuntimeError for an address that does not parse."""
    listeners: list[Listener] = []
    try:
        for bind in binds:
            addr = parse_address(bind)
            listener = None
            for i in range(retries):
                try:
                    listener = bind_one(addr, backlog, reuse_port)
                    break
                except OSError as e:
                    if e.errno == errno.EADDRINUSE:
                        log.error("Connection in use: %s", str(addr))
                    if e.errno == errno.EADDRNOTAVAIL:
                        log.error("Invalid address: %s", str(addr))
                    log.error("connection to %s failed: %s", str(addr), str(e))
                    if isinstance(addr, int) or e.errno in (
                        errno.EBADF,
                        errno.ENOTSOCK,
                    ):
                        break  # an fd does not get better by waiting
                    if i < retries - 1:
                        log.debug("Retrying in 1 second.")
                        time.sleep(delay)
            if listener is None:
                log.error("Can't connect to %s", str(addr))
                raise SystemExit(1)
            listeners.append(listener)
    except BaseException:
        close_listeners(listeners)
        raise
    return listeners


def close_listeners(listeners: list[Listener]) -> None:
    """Close the sockets and remove the unix socket files this process made."""
    for listener in listeners:
        listener.close()
