"""--bind parsing and binding the listening sockets once in the master."""

import errno
import os
import socket

import pytest
from cunicorn.sock import (
    bind_one,
    close_listeners,
    create_listeners,
    parse_address,
)


@pytest.mark.parametrize(
    "bind, addr",
    [
        ("127.0.0.1:8000", ("127.0.0.1", 8000)),
        ("localhost:0", ("localhost", 0)),
        ("LOCALHOST:1", ("localhost", 1)),
        ("0.0.0.0", ("0.0.0.0", 8000)),
        ("", ("0.0.0.0", 8000)),
        ("[::1]:8080", ("::1", 8080)),
        ("[::]", ("::", 8000)),
        ("tcp://10.0.0.1:99", ("10.0.0.1", 99)),
        ("unix:/tmp/x.sock", "/tmp/x.sock"),
        ("unix:///tmp/x.sock", "/tmp/x.sock"),
        ("unix:rel.sock", "rel.sock"),
        ("fd://3", 3),
    ],
)
def test_parse_address(bind, addr):
    assert parse_address(bind) == addr


@pytest.mark.parametrize(
    "bind, message",
    [
        ("127.0.0.1:http", "'http' is not a valid port number."),
        ("fd://x", "'x' is not a valid file descriptor."),
    ],
)
def test_parse_address_errors(bind, message):
    with pytest.raises(RuntimeError) as exc:
        parse_address(bind)
    assert str(exc.value) == message


def test_reuse_port_lets_a_second_socket_bind_the_same_address():
    first = bind_one(("127.0.0.1", 0), 16, reuse_port=True)
    try:
        addr = first.sock.getsockname()
        assert first.sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
        with pytest.raises(OSError) as exc:  # without it: in use
            bind_one(addr, 16)
        assert exc.value.errno == errno.EADDRINUSE
        second = bind_one(addr, 16, reuse_port=True)
        second.close()
    finally:
        first.close()


def test_tcp_port_zero_reports_real_port():
    lnr = bind_one(("127.0.0.1", 0), 16)
    try:
        port = lnr.sock.getsockname()[1]
        assert port != 0
        assert str(lnr) == f"http://127.0.0.1:{port}"
        assert lnr.server_name_port() == ("127.0.0.1", str(port))
        s = lnr.sock
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        assert not s.getblocking()
        assert os.get_inheritable(s.fileno())
        # it accepts connections
        c = socket.create_connection(("127.0.0.1", port), timeout=2)
        c.close()
    finally:
        close_listeners([lnr])


def test_ipv6():
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        lnr = bind_one(parse_address("[::1]:0"), 16)
    except OSError:
        pytest.skip("::1 not available")
    try:
        port = lnr.sock.getsockname()[1]
        assert lnr.sock.family == socket.AF_INET6
        assert str(lnr) == f"http://[::1]:{port}"
        assert lnr.server_name_port() == ("::1", str(port))
    finally:
        close_listeners([lnr])


def test_unix_socket_stale_file_removed_and_unlinked_on_close(tmp_path):
    path = str(tmp_path / "s.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # leaves the socket file behind
    assert os.path.exists(path)
    lnr = bind_one(parse_address(f"unix:{path}"), 16)
    assert str(lnr) == f"unix:{path}"
    assert lnr.server_name_port() == ("", "")
    c = socket.socket(socket.AF_UNIX)
    c.connect(path)
    c.close()
    close_listeners([lnr])
    assert not os.path.exists(path)


def test_unix_path_that_is_not_a_socket_is_refused(tmp_path):
    path = tmp_path / "file"
    path.write_text("keep me")
    with pytest.raises(ValueError, match="is not a socket"):
        bind_one(str(path), 16)
    assert path.read_text() == "keep me"


def test_fd_adopts_inherited_socket():
    parent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    parent.bind(("127.0.0.1", 0))
    port = parent.getsockname()[1]
    fd = parent.detach()
    lnr = bind_one(parse_address(f"fd://{fd}"), 16)
    try:
        assert lnr.fileno() == fd
        assert str(lnr) == f"http://127.0.0.1:{port}"
        assert lnr.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    finally:
        close_listeners([lnr])


class RecordingLog:
    def __init__(self):
        self.lines = []

    def error(self, msg, *args):
        self.lines.append(msg % args)

    def debug(self, msg, *args):
        self.lines.append(msg % args)


def test_create_listeners_binds_every_address(tmp_path):
    path = str(tmp_path / "a.sock")
    lnrs = create_listeners(["127.0.0.1:0", f"unix:{path}"], 8, RecordingLog())
    try:
        assert [lnr.sock.family for lnr in lnrs] == [socket.AF_INET, socket.AF_UNIX]
    finally:
        close_listeners(lnrs)
    assert not os.path.exists(path)


def test_address_in_use_retries_then_exits_1():
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    log = RecordingLog()
    try:
        with pytest.raises(SystemExit) as exc:
            create_listeners([f"127.0.0.1:{port}"], 8, log, retries=2, delay=0)
    finally:
        busy.close()
    assert exc.value.code == 1
    assert f"Connection in use: ('127.0.0.1', {port})" in log.lines
    assert log.lines[-1] == f"Can't connect to ('127.0.0.1', {port})"
    assert sum("Connection in use" in line for line in log.lines) == 2


def test_failure_closes_what_was_bound(tmp_path):
    path = str(tmp_path / "b.sock")
    with pytest.raises(RuntimeError):
        create_listeners([f"unix:{path}", "127.0.0.1:bad"], 8, RecordingLog())
    assert not os.path.exists(path)
