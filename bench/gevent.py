"""Benchmark of the gevent worker: cunicorn -k gevent beside gunicorn -k gevent.

Scenarios (issue 6's targets in brackets):

- ``hello``: hello app, keep-alive, wrk -c50 [<= 15 us server CPU per request]
- ``flask``: Flask hello, keep-alive, wrk -c50 [<= 50 us]
- ``sleep``: time.sleep(0.05) app, wrk -c1000, -w 2 [>= 15,000 req/s, p99 < 100 ms]
- ``idle``: 10,000 idle keep-alive connections on one worker while wrk -c10
  measures another client's p99 [< 50 ms]; worker RSS growth [< 60 MB]

Each server runs alone, started fresh, stopped by its pid; A B A B ... rounds and
the median per cell.  Method as in BENCH.md (warm-up run thrown away, CPU =
utime+stime of the server's process tree over the run / requests).

    .venv/bin/python bench/gevent.py --peers-python bench/.venv-peers/bin/python
    .venv/bin/python bench/gevent.py --scenarios hello,idle --rounds 1
"""

from __future__ import annotations

import argparse
import os
import resource
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import (  # noqa: E402  (bench/run.py's /proc and wrk helpers)
    APPS_DIR,
    CLK_TCK,
    HOST,
    ROOT,
    free_port,
    http_get_ok,
    machine_busy_ticks,
    parse_wrk,
    process_tree,
    tree_cpu_ticks,
    vm_rss_kb,
)

APPS = {"hello": "hello:app", "flask": "flask_app:app", "sleep": "sleep:app"}
SCENARIOS = ["hello", "flask", "sleep", "idle"]


def raise_nofile(n: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(n, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class Server:
    """One server process (cunicorn or gunicorn, -k gevent) on a free port."""

    def __init__(self, kind: str, python: str, app: str, workers: int, extra=()):
        self.kind = kind
        self.port = free_port()
        self.cmd = [python, "-m", kind, "-k", "gevent", "-w", str(workers)]
        self.cmd += ["-b", f"{HOST}:{self.port}", "--log-level", "warning"]
        self.cmd += ["--chdir", str(APPS_DIR), *extra, app]
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        env = dict(os.environ, PYTHONPATH=str(APPS_DIR))
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=str(ROOT),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not http_get_ok(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind} did not start: {' '.join(self.cmd)}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def workers(self) -> list[int]:
        assert self.proc is not None
        return [p for p in process_tree(self.proc.pid) if p != self.proc.pid]


def wrk(port: int, conns: int, seconds: float, threads: int = 2) -> dict:
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{max(1, round(seconds))}s"]
    cmd += ["--latency", "--timeout", "5s", f"http://{HOST}:{port}/"]
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=seconds + 60, check=True
    ).stdout
    return parse_wrk(out)


def measured_wrk(srv: Server, conns: int, seconds: float) -> dict:
    assert srv.proc is not None
    wrk(srv.port, conns, 2)  # warm-up, thrown away
    t0, busy0 = tree_cpu_ticks(srv.proc.pid), machine_busy_ticks()
    res = wrk(srv.port, conns, seconds)
    t1, busy1 = tree_cpu_ticks(srv.proc.pid), machine_busy_ticks()
    server_s = (t1 - t0) / CLK_TCK
    res["cpu_us"] = server_s * 1e6 / max(1, res["requests"])
    res["machine_busy_s"] = (busy1 - busy0) / CLK_TCK
    return res


def open_idle(port: int, n: int, timeout: float = 60.0) -> list[socket.socket]:
    """n keep-alive connections, each after one answered request, left idle."""
    socks: list[socket.socket] = []
    sel = selectors.DefaultSelector()
    req = f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    deadline = time.monotonic() + timeout
    pending = 0
    for _ in range(n):
        s = socket.create_connection((HOST, port), timeout=10)
        s.sendall(req)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
        pending += 1
        while pending > 200:  # keep the number in flight bounded
            for key, _ in sel.select(1):
                if key.fileobj.recv(4096):
                    sel.unregister(key.fileobj)
                    pending -= 1
            if time.monotonic() > deadline:
                raise RuntimeError("idle connections: responses too slow")
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(1):
            if key.fileobj.recv(4096):
                sel.unregister(key.fileobj)
                pending -= 1
    if pending:
        raise RuntimeError(f"idle connections: {pending} never answered")
    return socks


def idle_scenario(kind: str, python: str, args) -> dict:
    extra = ["--keep-alive", "300", "--worker-connections", str(args.idle + 1000)]
    with Server(kind, python, APPS["hello"], 1, extra) as srv:
        wrk(srv.port, 10, 2)
        (worker,) = srv.workers()
        rss0 = vm_rss_kb(worker) or 0
        socks = open_idle(srv.port, args.idle)
        try:
            time.sleep(2.0)  # settle: the idle connections are parked by now
            rss1 = vm_rss_kb(worker) or 0
            res = wrk(srv.port, 10, args.duration)
            rss1 = max(rss1, vm_rss_kb(worker) or 0)
            alive = sum(1 for s in socks if _still_open(s))
        finally:
            for s in socks:
                s.close()
    res["rss_growth_mb"] = (rss1 - rss0) / 1024.0
    res["idle_alive"] = alive
    return res


def _still_open(s: socket.socket) -> bool:
    try:
        return s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def run_scenario(name: str, kind: str, python: str, args) -> dict:
    if name == "idle":
        return idle_scenario(kind, python, args)
    conns = 1000 if name == "sleep" else 50
    with Server(kind, python, APPS[name], 2) as srv:
        return measured_wrk(srv, conns, args.duration)


TARGETS = {
    "hello": "cpu <= 15 us/req",
    "flask": "cpu <= 50 us/req",
    "sleep": ">= 15,000 req/s, p99 < 100 ms",
    "idle": "p99 < 50 ms, RSS growth < 60 MB",
}


def fmt_row(name: str, kind: str, rs: list[dict]) -> str:
    def med(key):
        vals = [r[key] for r in rs if r.get(key) is not None]
        return statistics.median(vals) if vals else float("nan")

    cells = [
        name,
        kind,
        f"{med('rps'):,.0f}",
        f"{med('p50_ms'):.2f}",
        f"{med('p99_ms'):.2f}",
        f"{med('cpu_us'):.1f}" if name != "idle" else "-",
        f"{med('rss_growth_mb'):.1f}" if name == "idle" else "-",
        str(int(med("socket_errors") + med("non2xx"))),
        TARGETS[name] if kind == "cunicorn" else "",
    ]
    return "| " + " | ".join(cells) + " |"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peers-python", default=str(HERE / ".venv-peers/bin/python"))
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--servers", default="cunicorn,gunicorn")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--idle", type=int, default=10000)
    args = ap.parse_args(argv)
    raise_nofile(args.idle + 5000)  # wrk -c1000 and 10k idle sockets, children too
    pythons = {"cunicorn": args.python, "gunicorn": args.peers_python}
    kinds = args.servers.split(",")
    results: dict[tuple[str, str], list[dict]] = {}
    for name in args.scenarios.split(","):
        for rnd in range(args.rounds):
            for kind in kinds:  # A B A B ...
                r = run_scenario(name, kind, pythons[kind], args)
                results.setdefault((name, kind), []).append(r)
                print(f"# {name} {kind} round {rnd + 1}: {r}", file=sys.stderr)
    print(
        "| scenario | server | req/s | p50 ms | p99 ms | CPU us/req | RSS growth MB "
        "| errors | target |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for (name, kind), rs in results.items():
        print(fmt_row(name, kind, rs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
