#!/usr/bin/env python3
"""Benchmarks of the gthread worker (issue 5), beside gunicorn, bjoern and nginx.

Not a test: it prints figures (docs/benchmarks.md, "gthread worker").  Method as in
BENCH.md: each server alone on 127.0.0.1, started fresh, stopped by its pid; wrk
-t2, a warm-up run thrown away, then a measured run; server CPU µs per request =
utime+stime of the server's process tree (from /proc) ÷ requests; rounds
interleaved A B A B and the median of ``--repeat`` rounds.

    .venv/bin/python bench/gthread.py --peers-python bench/.venv-peers/bin/python
    .venv/bin/python bench/gthread.py --only hello,flask --repeat 1 --duration 3

Parts (``--only``): hello, flask (keep-alive c50, with bjoern 1 process and, for
hello, nginx 1 worker, started as bench/run.py starts them; ``--no-peers`` leaves
them out); matmul (c200, with a probe
hitting /probe every 10 ms, its p99 printed beside gunicorn's: until the response
reached the probe's socket, by the kernel's receive timestamp, and until the
probe's thread read it, which adds the probe's own wait for one of the CPUs the
load keeps busy); idle (10,000
idle keep-alive connections on one worker: RSS growth).  flask and numpy come
from the peers' python (its site-packages go on cunicorn's PYTHONPATH).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import (  # noqa: E402  (bench/run.py's /proc and wrk helpers)
    CLK_TCK,
    HOST,
    ROOT,
    SERVERS,
    free_port,
    machine_busy_ticks,
    parse_wrk,
    tree_cpu_ticks,
    vm_rss_kb,
)


def wait_port(port: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Srv:
    def __init__(self, cmd, env: dict | None = None):
        """cmd: a list with {BIND} for host:port, or a callable(port, tmp
        dir) returning the list (bench/run.py's peers)."""
        self.port = free_port()
        self.tmp = None
        if callable(cmd):
            self.tmp = tempfile.mkdtemp(prefix="bench-gthread-peer-")
            cmd = cmd(self.port, Path(self.tmp))
        self.cmd = [c.replace("{BIND}", f"{HOST}:{self.port}") for c in cmd]
        e = dict(os.environ, OPENBLAS_NUM_THREADS="1")
        e.update(env or {})
        self.log = tempfile.NamedTemporaryFile(prefix="bench-gthread-", delete=False)
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=HERE / "apps",
            env=e,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        if not wait_port(self.port):
            self.stop()
            raise RuntimeError(f"server did not start: {self.cmd}\n{self.log_text()}")
        time.sleep(0.5)  # let every worker boot

    def log_text(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def workers(self) -> list[int]:
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True
        ).stdout
        return [int(p) for p in out.split()]


def wrk(port: int, conns: int, duration: float, path: str = "/") -> dict:
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{conns}",
            f"-d{duration:g}s",
            "--latency",
            "--timeout",
            "5s",
            f"http://{HOST}:{port}{path}",
        ],
        capture_output=True,
        text=True,
        timeout=duration + 30,
    ).stdout
    res = parse_wrk(out)
    res["errors"] = res["socket_errors"] + res["non2xx"]
    return res


# Linux's SO_TIMESTAMPNS (= SCM_TIMESTAMPNS), which Python's socket module
# does not name: each recvmsg carries the time the data reached the socket.
SO_TIMESTAMPNS = 35


class Probe(threading.Thread):
    """GET /probe every 10 ms on one keep-alive connection; latencies in ms,
    two ways: until the response reached the probe's socket (the kernel's
    receive timestamp: the server's latency), and until this thread read it
    (adds the probe's own wait for a CPU, which it shares with the load)."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port = port
        self.lat: list[float] = []  # until read
        self.lat_arrival: list[float] = []  # until it reached the socket
        self.stop_evt = threading.Event()

    def run(self) -> None:
        sock = None
        req = b"GET /probe HTTP/1.1\r\nHost: x\r\n\r\n"
        anc_size = socket.CMSG_SPACE(16)
        while not self.stop_evt.is_set():
            t0 = time.perf_counter()
            try:
                if sock is None:
                    sock = socket.create_connection((HOST, self.port), timeout=5)
                    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                sent_ns = time.time_ns()
                sock.sendall(req)
                buf = b""
                arrived_ns = None
                while not buf.endswith(b"\r\n\r\nok"):
                    chunk, anc, _flags, _addr = sock.recvmsg(4096, anc_size)
                    if not chunk:
                        raise OSError("closed")
                    buf += chunk
                    for level, kind, data in anc:
                        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                            sec, nsec = struct.unpack("qq", data[:16])
                            arrived_ns = sec * 1_000_000_000 + nsec
                self.lat.append((time.perf_counter() - t0) * 1000)
                if arrived_ns is not None:
                    self.lat_arrival.append((arrived_ns - sent_ns) / 1e6)
            except OSError:  # reconnect
                if sock is not None:
                    sock.close()
                sock = None
            time.sleep(max(0.0, 0.010 - (time.perf_counter() - t0)))
        if sock is not None:
            sock.close()


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def measure(cfg: dict, args, conns: int, probe: bool = False) -> dict:
    srv = Srv(cfg["cmd"], cfg.get("env"))
    try:
        wrk(srv.port, conns, args.warmup)
        p = Probe(srv.port) if probe else None
        t0 = tree_cpu_ticks(srv.proc.pid)
        busy0, self0, kids0 = machine_busy_ticks(), own_cpu_s(), kids_cpu_s()
        w0 = time.monotonic()
        if p:
            p.start()
        res = wrk(srv.port, conns, args.duration)
        t1 = tree_cpu_ticks(srv.proc.pid)
        busy1, self1, kids1 = machine_busy_ticks(), own_cpu_s(), kids_cpu_s()
        # BENCH.md: the other load during the run is the machine's busy time
        # minus the server's, wrk's (a reaped child) and this script's (probe)
        other_s = (busy1 - busy0 - (t1 - t0)) / CLK_TCK
        other_s -= (kids1 - kids0) + (self1 - self0)
        res["other_cores"] = max(0.0, other_s) / (time.monotonic() - w0)
        if p:
            p.stop_evt.set()
            p.join(10)
            res["probe_p99"] = pct(p.lat_arrival, 0.99)
            res["probe_p50"] = pct(p.lat_arrival, 0.50)
            res["probe_read_p99"] = pct(p.lat, 0.99)
        res["cpu_us"] = (
            (t1 - t0) / CLK_TCK * 1e6 / res["requests"] if res["requests"] else None
        )
        return res
    finally:
        srv.stop()


def own_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def kids_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def fmt(v, nd=1):
    return "-" if v is None else f"{v:,.{nd}f}"


def compare(
    title: str, cfgs: list[dict], args, conns: int, probe: bool = False
) -> None:
    rounds: dict[str, list[dict]] = {c["label"]: [] for c in cfgs}
    for _ in range(args.repeat):
        for c in cfgs:
            rounds[c["label"]].append(measure(c, args, conns, probe))
    run = f"wrk -t2 -c{conns}, {args.duration:g} s, median of {args.repeat}"
    print(f"\n### {title} ({run})\n")
    cols = "| server | req/s | p50 ms | p99 ms | errors | server CPU µs/req |"
    sep = "|---|---:|---:|---:|---:|---:|"
    if probe:
        cols += (
            " probe p50 ms | probe p99 ms | probe p99 by round"
            " | probe p99 ms, read by the client |"
        )
        sep += "---:|---:|---:|---:|"
    cols += " other load (cores, max) |"
    sep += "---:|"
    print(cols)
    print(sep)
    for label, rs in rounds.items():

        def med(k, rs=rs):
            vals = [r[k] for r in rs if r.get(k) is not None]
            return statistics.median(vals) if vals else None

        line = (
            f"| {label} | {fmt(med('rps'), 0)} | {fmt(med('p50_ms'), 2)}"
            f" | {fmt(med('p99_ms'), 2)} | {fmt(med('errors'), 0)}"
            f" | {fmt(med('cpu_us'))} |"
        )
        if probe:
            each = ", ".join(fmt(r.get("probe_p99"), 2) for r in rs)
            line += f" {fmt(med('probe_p50'), 2)} | {fmt(med('probe_p99'), 2)}"
            line += f" | {each} | {fmt(med('probe_read_p99'), 2)} |"
        line += f" {fmt(max(r['other_cores'] for r in rs), 2)} |"
        print(line, flush=True)


# The app's own share of a Flask request: the same app called in a loop with a
# plain dict environ (what a server cannot go below, on this machine).
FLASK_ALONE = """
import io, sys, time
from flask_app import app
env = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/",
       "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000",
       "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "127.0.0.1:8000",
       "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(),
       "wsgi.errors": sys.stderr, "wsgi.version": (1, 0),
       "wsgi.multithread": True, "wsgi.multiprocess": True,
       "wsgi.run_once": False, "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "5555"}
def start_response(status, headers, exc_info=None):
    pass
best = None
for _ in range(3):
    t = time.process_time()
    for _ in range(20000):
        r = app(dict(env), start_response)
        for _ in r:
            pass
        r.close()
    us = (time.process_time() - t) / 20000 * 1e6
    best = us if best is None else min(best, us)
print(f"{best:.1f}")
"""


def flask_call_alone(args, site: str) -> None:
    out = subprocess.run(
        [args.peers_python, "-c", FLASK_ALONE],
        cwd=HERE / "apps",
        env=dict(os.environ, PYTHONPATH=site),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode != 0:
        print(f"\nthe Flask call alone: not measured ({out.stderr.strip()[-200:]})")
        return
    print(
        f"\nThe Flask call alone (the app called in a loop, dict environ, best of"
        f" 3): {out.stdout.strip()} µs of CPU"
    )


def idle_rss(args, n: int = 10000) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, n + 1000)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < n + 100:
        print(f"\nidle: RLIMIT_NOFILE hard limit {hard} is below {n}; skipped")
        return
    cmd = [
        args.cunicorn,
        "-w",
        "1",
        "-k",
        "gthread",
        "--threads",
        "4",
        "--worker-connections",
        str(n + 100),
        "--keep-alive",
        "120",
        "-b",
        "{BIND}",
        "hello:app",
    ]
    srv = Srv(cmd)
    socks = []
    try:
        wpid = srv.workers()[0]
        req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        # warm the worker with a few requests first
        for _ in range(100):
            with socket.create_connection((HOST, srv.port)) as s:
                s.sendall(req)
                s.recv(4096)
        before = vm_rss_kb(wpid)
        for _ in range(n):
            s = socket.create_connection((HOST, srv.port), timeout=10)
            s.sendall(req)
            socks.append(s)
        for s in socks:  # every connection served once, now idle
            buf = b""
            while not buf.endswith(b"Hello, World!"):
                chunk = s.recv(4096)
                if not chunk:
                    raise RuntimeError("a connection closed early")
                buf += chunk
        time.sleep(0.5)
        after = vm_rss_kb(wpid)
        t0 = time.perf_counter()
        with socket.create_connection((HOST, srv.port)) as s:
            s.sendall(req)
            s.recv(4096)
        lat = (time.perf_counter() - t0) * 1000
        print(f"\n### {n:,} idle keep-alive connections on one gthread worker\n")
        print(
            "| worker RSS before | with the connections idle | growth"
            " | per connection | one more request |"
        )
        print("|---:|---:|---:|---:|---:|")
        print(
            f"| {before / 1024:.1f} MB | {after / 1024:.1f} MB"
            f" | {(after - before) / 1024:.1f} MB"
            f" | {(after - before) * 1024 / n:.0f} B | {lat:.2f} ms |",
            flush=True,
        )
    finally:
        for s in socks:
            s.close()
        srv.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cunicorn", default=str(ROOT / ".venv" / "bin" / "cunicorn"))
    p.add_argument(
        "--peers-python", default=str(HERE / ".venv-peers" / "bin" / "python")
    )
    p.add_argument("--only", default="hello,flask,matmul,idle")
    p.add_argument(
        "--no-peers",
        action="store_true",
        help="leave bjoern and nginx out of the hello and Flask parts",
    )
    p.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    p.add_argument("--duration", type=float, default=8.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument(
        "--ab",
        metavar="DIR",
        help="also run cunicorn with the package found in DIR (a copy of"
        " pysrc/cunicorn with another build of _cserver: DIR/cunicorn/...)"
        " in the same rounds, for before/after comparisons",
    )
    p.add_argument(
        "--no-gunicorn", action="store_true", help="leave gunicorn out (quick A/B)"
    )
    args = p.parse_args(argv)
    # the servers start in a directory of their own: no relative paths
    args.cunicorn = os.path.abspath(args.cunicorn)
    args.peers_python = os.path.abspath(args.peers_python)
    if args.ab:
        args.ab = os.path.abspath(args.ab)
    parts = args.only.split(",")
    site = subprocess.run(
        [
            args.peers_python,
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
        capture_output=True,
        text=True,
    ).stdout.strip()
    peers_env = {"PYTHONPATH": site}
    gun = [
        args.peers_python,
        "-m",
        "gunicorn",
        "-w",
        "2",
        "-k",
        "gthread",
        "--threads",
        "4",
        "-b",
        "{BIND}",
    ]

    def cun(threads, app, pkg_dir=None):
        env = dict(peers_env)
        label = f"cunicorn gthread -w 2 --threads {threads}"
        if pkg_dir:
            env["PYTHONPATH"] = f"{pkg_dir}:{site}"
            label += f" [{pkg_dir}]"
        return {
            "label": label,
            "cmd": [
                args.cunicorn,
                "-w",
                "2",
                "-k",
                "gthread",
                "--threads",
                str(threads),
                "-b",
                "{BIND}",
                app,
            ],
            "env": env,
        }

    def cuns(app):
        out = [cun(4, app), cun(1, app)]
        if args.ab:
            out += [cun(4, app, args.ab), cun(1, app, args.ab)]
        return out

    def gunicorn(app):
        if args.no_gunicorn:
            return []
        return [{"label": "gunicorn gthread -w 2 --threads 4", "cmd": gun + [app]}]

    def peers(app):
        """bjoern (1 process) and, for hello, nginx (1 worker), started as
        bench/run.py starts them: the issue's reference figures, measured
        in the same rounds."""
        if args.no_peers:
            return []
        out = []
        for name in ("bjoern", "nginx"):
            spec = SERVERS[name]
            if spec.apps is not None and app not in spec.apps:
                continue
            if name == "nginx" and not os.access(args.nginx, os.X_OK):
                print(f"(no nginx at {args.nginx}: left out)")
                continue
            out.append(
                {
                    "label": spec.label,
                    "cmd": lambda port, tmp, spec=spec: spec.command(
                        args, app, port, tmp
                    ),
                    "env": {"PYTHONPATH": ""},
                }
            )
        return out

    when = time.strftime("%Y-%m-%d %H:%M")
    print(f"# gthread benchmarks, {when}, {os.cpu_count()} CPUs")
    if "hello" in parts:
        compare(
            "hello, keep-alive",
            cuns("hello:app") + peers("hello") + gunicorn("hello:app"),
            args,
            50,
        )
    if "flask" in parts:
        compare(
            "Flask hello, keep-alive",
            cuns("flask_app:app") + peers("flask") + gunicorn("flask_app:app"),
            args,
            50,
        )
        flask_call_alone(args, site)
    if "matmul" in parts:
        compare(
            "matmul 256x256 float32, keep-alive, probe /probe every 10 ms",
            [cun(4, "matmul_probe:app")]
            + ([cun(4, "matmul_probe:app", args.ab)] if args.ab else [])
            + gunicorn("matmul_probe:app"),
            args,
            200,
            probe=True,
        )
    if "idle" in parts:
        idle_rss(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
