#!/usr/bin/env python3
"""Zero-loss lifecycle benchmark (issue 3): requests lost while the master
changes its workers under load.

Not a test: it prints figures.  For each server and scenario it starts the
server fresh on 127.0.0.1, runs a keep-alive load from ``--clients`` client
processes for ``--duration`` seconds, sends the scenario's signals on a fixed
timeline, then stops the server by its pid and prints what the clients saw:

    ok         complete 2xx responses
    refused    connect() refused
    reset      connection reset (on connect, send or while reading)
    eof        the server closed before a complete response (a kept-alive
               connection closed under a request counts here)
    timeout    no answer within 10 s
    non2xx     complete responses with another status

Every failure kind must be 0.  The client is a raw-socket HTTP/1.1 client: it
keeps a connection alive as long as the server does not answer
``Connection: close`` (as wrk does), and reconnects otherwise.

Scenarios:
    hup        two HUP reloads 3 s apart (t=2 s, t=5 s)
    ttin_ttou  TTIN at t=2 s, TTOU at t=5 s
    usr2       daemonized with a pid file: USR2 at t=2 s, then, once the new
               master's workers run, WINCH and QUIT to the old master
    max_req    --max-requests 1000 for the whole run (workers recycle)

Servers (``--servers``): ``cunicorn`` (sync -w 2), ``cunicorn-gthread``
(-w 2 --threads 4, when this build has it), ``gunicorn`` (sync -w 2) and
``gunicorn-gthread`` (-w 2 --threads 4) from ``--peers-python``
(bench/.venv-peers).

    .venv/bin/python bench/lifecycle.py                      # everything, 10 s each
    .venv/bin/python bench/lifecycle.py --scenarios hup \
        --servers cunicorn,gunicorn-gthread

Only 127.0.0.1 is contacted; every run is bounded in time; every process
started here is stopped by its own pid (workers of a daemonized master are
found through /proc as that master's children).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from run import free_port  # noqa: E402  (bench/run.py)

KINDS = ("ok", "refused", "reset", "eof", "timeout", "non2xx")
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: lifecycle\r\n\r\n"


# -- the load ------------------------------------------------------------------


def _read_response(sock: socket.socket, buf: bytearray) -> tuple[int, bool]:
    """Read one response from ``sock`` (``buf`` holds bytes already read);
    return (status, server_closes).  Raises EOFError when the connection ends
    before a complete response."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    close = lines[0].startswith(b"HTTP/1.0")
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"connection":
            close = value.strip().lower() == b"close"
    body = bytearray(rest)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError
        body += chunk
    buf[:] = body[length:]
    return status, close


def client(port: int, deadline: float, out: mp.Queue) -> None:
    """One client process: requests back to back until ``deadline``."""
    counts = dict.fromkeys(KINDS, 0)
    first_failures: list[str] = []
    sock = None
    buf = bytearray()

    def fail(kind: str, what: str) -> None:
        nonlocal sock
        counts[kind] += 1
        if len(first_failures) < 5:
            first_failures.append(f"{time.monotonic():.3f} {kind}: {what}")
        if sock is not None:
            sock.close()
            sock = None

    while time.monotonic() < deadline:
        if sock is None:
            buf.clear()
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except ConnectionRefusedError as e:
                sock = None
                fail("refused", repr(e))
                time.sleep(0.01)
                continue
            except OSError as e:
                sock = None
                fail("reset", repr(e))
                continue
        try:
            sock.sendall(REQUEST)
            status, close = _read_response(sock, buf)
        except (ConnectionResetError, BrokenPipeError) as e:
            fail("reset", repr(e))
            continue
        except EOFError:
            fail("eof", "closed before a complete response")
            continue
        except socket.timeout:
            fail("timeout", "no answer in 10 s")
            continue
        except OSError as e:
            fail("reset", repr(e))
            continue
        counts["ok" if 200 <= status < 300 else "non2xx"] += 1
        if close:
            sock.close()
            sock = None
    if sock is not None:
        sock.close()
    out.put((counts, first_failures))


class Load:
    def __init__(self, port: int, clients: int, duration: float) -> None:
        self.q: mp.Queue = mp.Queue()
        self.deadline = time.monotonic() + duration
        ctx = mp.get_context("fork")
        self.procs = [
            ctx.Process(target=client, args=(port, self.deadline, self.q))
            for _ in range(clients)
        ]
        for p in self.procs:
            p.start()

    def result(self) -> tuple[dict, list[str]]:
        total = dict.fromkeys(KINDS, 0)
        failures: list[str] = []
        for _ in self.procs:
            counts, ff = self.q.get(
                timeout=max(5.0, self.deadline - time.monotonic() + 30)
            )
            for k in KINDS:
                total[k] += counts[k]
            failures += ff
        for p in self.procs:
            p.join(5)
            if p.is_alive():
                p.kill()
        return total, failures


class WrkLoad:
    """The same load from wrk (``--client wrk``): ``-t2 -c CLIENTS``, its own
    keep-alive client.  wrk's socket errors map to the kinds above: connect
    -> refused, read -> eof (a reset or a close under a request), write ->
    reset, timeout -> timeout; Non-2xx -> non2xx."""

    def __init__(self, wrk: str, port: int, clients: int, duration: float) -> None:
        self.proc = subprocess.Popen(
            [
                wrk,
                "-t2",
                f"-c{clients}",
                f"-d{duration:.0f}s",
                "--timeout",
                "10s",
                f"http://127.0.0.1:{port}/",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.duration = duration

    def result(self) -> tuple[dict, list[str]]:
        out, _ = self.proc.communicate(timeout=self.duration + 30)
        counts = dict.fromkeys(KINDS, 0)
        m = re.search(r"(\d+) requests in", out)
        total = int(m.group(1)) if m else 0
        m = re.search(
            r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
        )
        if m:
            counts["refused"], counts["eof"], counts["reset"], counts["timeout"] = map(
                int, m.groups()
            )
        m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if m:
            counts["non2xx"] = int(m.group(1))
        counts["ok"] = total - counts["non2xx"]
        return counts, []


# -- servers -------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """Live (not zombie) children of ``pid``, from /proc."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(d))
    return out


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise RuntimeError(f"timed out waiting for {what}")


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def server_cmd(args, name: str, port: int, log: Path, extra: list[str]) -> list[str]:
    common = [
        "-b",
        f"127.0.0.1:{port}",
        "--error-logfile",
        str(log),
        "--chdir",
        str(HERE / "apps"),
    ]
    if name.startswith("cunicorn"):
        cmd = [args.cunicorn_python, "-m", "cunicorn", "-w", "2"]
    else:
        cmd = [args.peers_python, "-m", "gunicorn", "-w", "2"]
    if name.endswith("gthread"):
        cmd += ["-k", "gthread", "--threads", "4"]
    return cmd + common + extra + ["hello:app"]


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return s.recv(12).startswith(b"HTTP/1.")
    except OSError:
        return False


def run_one(args, name: str, scenario: str, tmp: Path) -> tuple[dict, list[str], str]:
    """Start ``name``, load it through ``scenario``, stop it; (counts,
    failures, notes)."""
    port = free_port()
    log = tmp / f"{name}-{scenario}.log"
    pidfile = tmp / f"{name}-{scenario}.pid"
    extra: list[str] = []
    if scenario == "max_req":
        extra = ["--max-requests", "1000"]
    if scenario == "usr2":
        extra = ["-D", "--pid", str(pidfile)]
    cmd = server_cmd(args, name, port, log, extra)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        cmd,
        cwd=str(ROOT),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    masters: set[int] = set()
    workers_seen: set[int] = set()
    notes = ""
    try:
        if scenario == "usr2":
            proc.wait(15)
            master = wait_for(lambda: read_pid(pidfile), 15, "pid file")
        else:
            master = proc.pid
        masters.add(master)
        wait_for(lambda: len(children(master)) >= 2 and answers(port), 30, "server up")
        time.sleep(0.5)  # workers past their first requests
        workers_seen.update(children(master))
        if args.client == "wrk":
            load = WrkLoad(args.wrk, port, args.clients, args.duration)
        else:
            load = Load(port, args.clients, args.duration)
        t0 = time.monotonic()

        def at(t: float) -> None:
            time.sleep(max(0.0, t0 + t - time.monotonic()))

        if scenario == "hup":
            at(2)
            os.kill(master, signal.SIGHUP)
            at(5)
            os.kill(master, signal.SIGHUP)
        elif scenario == "ttin_ttou":
            at(2)
            os.kill(master, signal.SIGTTIN)
            at(5)
            os.kill(master, signal.SIGTTOU)
        elif scenario == "usr2":
            at(2)
            os.kill(master, signal.SIGUSR2)
            pid2 = Path(str(pidfile) + ".2")
            new = wait_for(lambda: read_pid(pid2), 20, "new master")
            masters.add(new)
            wait_for(lambda: len(children(new)) >= 2, 20, "new workers")
            t_new = time.monotonic() - t0
            time.sleep(0.5)  # new workers accepting
            os.kill(master, signal.SIGWINCH)
            # the new master is a child of the old one too
            wait_for(lambda: not set(children(master)) - {new}, 20, "old workers gone")
            t_winch = time.monotonic() - t0
            os.kill(master, signal.SIGQUIT)
            wait_for(lambda: not alive(master), 20, "old master gone")
            wait_for(lambda: read_pid(pidfile) == new, 10, "promotion")
            notes = (
                f"new master up at {t_new:.1f} s, old workers gone at "
                f"{t_winch:.1f} s, old master gone at {time.monotonic() - t0:.1f} s"
            )
            master = new
        elif scenario == "max_req":
            end = t0 + args.duration
            while time.monotonic() < end:
                workers_seen.update(children(master))
                time.sleep(0.05)
            notes = f"{len(workers_seen)} worker pids seen"
        counts, failures = load.result()
        if scenario == "hup" or scenario == "ttin_ttou":
            notes = f"{len(children(master))} workers at the end"
        return counts, failures, notes
    finally:
        for m in masters:
            if alive(m):
                kids = children(m)
                os.kill(m, signal.SIGTERM)
                try:
                    wait_for(lambda m=m: not alive(m), 15, "master stop")
                except RuntimeError:
                    os.kill(m, signal.SIGKILL)
                for k in kids:
                    if alive(k):
                        os.kill(k, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--servers", default="cunicorn,gunicorn,gunicorn-gthread")
    p.add_argument("--scenarios", default="hup,ttin_ttou,usr2,max_req")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--client", choices=["python", "wrk"], default="python")
    p.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    p.add_argument("--cunicorn-python", default=str(ROOT / ".venv" / "bin" / "python"))
    p.add_argument(
        "--peers-python", default=str(HERE / ".venv-peers" / "bin" / "python")
    )
    args = p.parse_args()
    if args.duration < 7:
        raise SystemExit("--duration must be at least 7 s (signals at 2 s and 5 s)")

    print(
        f"# lifecycle: {args.clients} keep-alive clients ({args.client}), "
        f"{args.duration:.0f} s per run, hello app, -w 2, 127.0.0.1"
    )
    print(
        f"{'server':18} {'scenario':10} "
        + " ".join(f"{k:>8}" for k in KINDS)
        + "  notes"
    )
    bad = 0
    with tempfile.TemporaryDirectory(prefix="cunicorn-lifecycle-") as d:
        for scenario in args.scenarios.split(","):
            for name in args.servers.split(","):
                try:
                    counts, failures, notes = run_one(args, name, scenario, Path(d))
                except Exception as e:  # a server that cannot do the scenario
                    print(f"{name:18} {scenario:10} error: {e}")
                    bad += 1
                    continue
                lost = sum(counts[k] for k in KINDS if k != "ok")
                bad += name.startswith("cunicorn") and lost > 0
                print(
                    f"{name:18} {scenario:10} "
                    + " ".join(f"{counts[k]:>8}" for k in KINDS)
                    + f"  {notes}"
                )
                for f in failures[:3]:
                    print(f"{'':30}first failures: {f}")
                sys.stdout.flush()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
