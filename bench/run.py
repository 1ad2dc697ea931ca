#!/usr/bin/env python3
"""cunicorn's benchmark: each server alone on 127.0.0.1, driven by wrk (BENCH.md).

Not a test: it prints figures.  For every (server, app, keep-alive|close) it runs
a warm-up that is thrown away, then a measured wrk run, and reports requests/s,
p50/p99 latency, errors (socket errors + non-2xx) and the **server CPU µs per
request**: the utime+stime of the server's whole process tree over the run,
read from /proc, divided by the requests wrk completed.  Rounds are interleaved
(A B A B ...) and ``--repeat N`` gives the median of N rounds.

    make bench                                        # the full comparison
    .venv/bin/python bench/run.py --duration 3 --warmup 1 --repeat 1   # smoke
    .venv/bin/python bench/run.py --servers gunicorn,bjoern --apps hello
    .venv/bin/python bench/run.py --rss               # memory check of issue 2

Servers (``--servers``, comma-separated):
    cunicorn   cunicorn sync -w 2               (this repo's .venv)
    gunicorn   gunicorn sync -w 2               (PyPI, --peers-python)
    bjoern     bjoern, 1 process                (PyPI, --peers-python)
    bjoern2    bjoern, 2 processes sharing the listening socket
    nginx      nginx `return 200`, 1 worker     (Debian; hello only)
    nginx2     nginx `return 200`, 2 workers

The RSS mode (``--rss``) starts one cunicorn worker (-w 1), sends N requests
with wrk (a Lua script reports every 500 responses; wrk is interrupted once they
add up to N) and reads the worker's VmRSS from /proc at each mark: issue 2 wants
the RSS after 200k requests within 1 MB of the RSS after 20k.

Only 127.0.0.1 is ever contacted; every run is bounded in time; every process
started here is stopped by its own pid.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
APPS_DIR = HERE / "apps"
RESULTS_DIR = HERE / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
HOST = "127.0.0.1"

APPS = {
    # --apps name: module in bench/apps
    "hello": "hello",
    "flask": "flask_app",
    "matmul": "matmul",
    "sleep": "sleep",
}
ALL_SERVERS = ["cunicorn", "gunicorn", "bjoern", "bjoern2", "nginx", "nginx2"]
DEFAULT_SERVERS = "cunicorn,gunicorn,bjoern,nginx,nginx2"


def log(msg: str) -> None:
    print(f"# {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------- /proc readers


def read_stat(pid: int) -> tuple[int, int, int, int] | None:
    """Return (ppid, utime+stime, cutime+cstime, starttime) of pid, or None.

    Times are in clock ticks.

    /proc/PID/stat's second field (comm) may hold spaces and parentheses, so the
    fields are split after the last ')'.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2 :].split()
    # rest[0] is field 3 (state); field n is rest[n - 3].
    ppid = int(rest[1])
    own = int(rest[11]) + int(rest[12])  # utime, stime
    children = int(rest[13]) + int(rest[14])  # cutime, cstime (reaped children)
    starttime = int(rest[19])
    return ppid, own, children, starttime


def process_tree(root: int) -> dict[int, int]:
    """Return {pid: starttime} for root and all its live descendants."""
    parents: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = read_stat(int(entry))
        if st is None:
            continue
        parents.setdefault(st[0], []).append(int(entry))
        starts[int(entry)] = st[3]
    tree: dict[int, int] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in tree or pid not in starts:
            continue
        tree[pid] = starts[pid]
        todo.extend(parents.get(pid, []))
    return tree


def tree_cpu_ticks(root: int) -> int:
    """CPU ticks used so far by root's process tree.

    Sum over the live tree of utime+stime+cutime+cstime: each process's own time
    plus the time of its children that it has already reaped (a worker that died
    and was replaced still counts, through its parent's cutime).
    """
    total = 0
    for pid in process_tree(root):
        st = read_stat(pid)
        if st is not None:
            total += st[1] + st[2]
    return total


def machine_busy_ticks() -> int:
    """Busy ticks of all CPUs since boot (user+nice+system+irq+softirq+steal)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return user + nice + system + irq + softirq + steal


def vm_rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# ----------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def http_get_ok(port: int, timeout: float = 1.0) -> bool:
    """True if GET / on 127.0.0.1:port answers with a 2xx status line."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            head = s.recv(64)
            return head.startswith(b"HTTP/1.") and head[9:10] == b"2"
    except OSError:
        return False


BJOERN_RUNNER = r"""
import os, signal, sys
sys.path.insert(0, os.getcwd())
import bjoern
module, name = sys.argv[1].split(":")
app = getattr(__import__(module), name)
port, nproc = int(sys.argv[2]), int(sys.argv[3])
bjoern.listen(app, "127.0.0.1", port)
if nproc == 1:
    bjoern.run()
    sys.exit(0)
children = []
for _ in range(nproc):
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        bjoern.run()
        os._exit(0)
    children.append(pid)
def stop(signum, frame):
    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
signal.signal(signal.SIGTERM, stop)
for pid in children:
    while True:
        try:
            os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
"""

NGINX_CONF = """\
{user}worker_processes {workers};
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 1000000;
    server {{
        listen {host}:{port};
        location / {{
            default_type text/plain;
            return 200 'Hello, World!';
        }}
    }}
}}
"""


@dataclass
class ServerSpec:
    name: str  # as in --servers
    label: str  # as in the table
    apps: tuple[str, ...] | None  # None = every app

    def command(self, args, app: str, port: int, tmp: Path) -> list[str]:
        module = APPS[app] + ":app"
        bind = f"{HOST}:{port}"
        if self.name == "cunicorn":
            return [args.cunicorn, "-w", "2", "-b", bind, module]
        if self.name == "gunicorn":
            return [args.peers_python, "-m", "gunicorn", "-w", "2", "-b", bind, module]
        if self.name in ("bjoern", "bjoern2"):
            n = "2" if self.name == "bjoern2" else "1"
            return [args.peers_python, "-c", BJOERN_RUNNER, module, str(port), n]
        if self.name in ("nginx", "nginx2"):
            workers = 2 if self.name == "nginx2" else 1
            user = "user root;\n" if os.geteuid() == 0 else ""
            conf = tmp / "nginx.conf"
            conf.write_text(
                NGINX_CONF.format(
                    user=user, workers=workers, tmp=tmp, host=HOST, port=port
                )
            )
            return [
                args.nginx,
                "-p",
                str(tmp),
                "-e",
                str(tmp / "error.log"),
                "-c",
                str(conf),
                "-g",
                "daemon off;",
            ]
        raise ValueError(self.name)


SERVERS = {
    "cunicorn": ServerSpec("cunicorn", "cunicorn sync -w 2", None),
    "gunicorn": ServerSpec("gunicorn", "gunicorn sync -w 2", None),
    "bjoern": ServerSpec("bjoern", "bjoern 1 process", None),
    "bjoern2": ServerSpec("bjoern2", "bjoern 2 processes", None),
    "nginx": ServerSpec("nginx", "nginx 1 worker", ("hello",)),
    "nginx2": ServerSpec("nginx2", "nginx 2 workers", ("hello",)),
}


class Server:
    """One server process started fresh on a free port, stopped by its own pid."""

    def __init__(self, spec: ServerSpec, args, app: str, cmd=None, port=None):
        self.spec = spec
        self.app = app
        self.port = port or free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix=f"bench-{spec.name}-"))
        self.cmd = cmd or spec.command(args, app, self.port, self.tmp)
        env = dict(os.environ)
        env["OPENBLAS_NUM_THREADS"] = "1"
        env.pop("PYTHONPATH", None)
        self.log_path = self.tmp / "server.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=APPS_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.proc.pid
        self._wait_ready(args.start_timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if http_get_ok(self.port):
                return
            time.sleep(0.05)
        tail = self.log_tail()
        self.stop()
        raise RuntimeError(
            f"{self.spec.label} ({self.app}) did not answer on port {self.port}: "
            f"{' '.join(self.cmd)}\n{tail}"
        )

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def cpu_ticks(self) -> int:
        return tree_cpu_ticks(self.pid)

    def stop(self) -> None:
        """TERM the root pid, then KILL it and any descendant it left behind.

        Descendants are remembered by (pid, starttime) before the stop so a pid
        reused by an unrelated process is never signalled.
        """
        tree = process_tree(self.pid) if self.proc.poll() is None else {}
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        deadline = time.monotonic() + 5
        for pid, start in tree.items():
            if pid == self.pid:
                continue
            while time.monotonic() < deadline:
                st = read_stat(pid)
                if st is None or st[3] != start:
                    break
                time.sleep(0.05)
            else:
                st = read_stat(pid)
                if st is not None and st[3] == start:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        self._log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


# ----------------------------------------------------------------- wrk

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"wrk latency {text!r}")
    return float(m.group(1)) * _UNIT_MS[m.group(2)]


def parse_wrk(out: str) -> dict:
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    if not m:
        raise ValueError(f"cannot parse wrk output:\n{out}")
    requests = int(m.group(1))
    seconds = _ms(m.group(2) + m.group(3)) / 1000.0
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    errs = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests": requests,
        "seconds": seconds,
        "rps": float(rps.group(1)) if rps else requests / seconds,
        "p50_ms": _ms(p50.group(1)) if p50 else None,
        "p99_ms": _ms(p99.group(1)) if p99 else None,
        "socket_errors": sum(int(x) for x in errs.groups()) if errs else 0,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def run_wrk(args, port: int, close: bool, duration: float, script=None, extra=()):
    """Run wrk once (bounded by -d and a hard timeout); return its output."""
    cmd = [
        args.wrk,
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{max(1, round(duration))}s",
        "--latency",
    ]
    if close:
        cmd += ["-H", "Connection: close"]
    if script:
        cmd += ["-s", str(script)]
    cmd.append(f"http://{HOST}:{port}/")
    cmd += list(extra)
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    try:
        out, _ = proc.communicate(timeout=duration + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {' '.join(cmd)}\n{text}")
    return text


def measure(args, server: Server, close: bool, duration: float) -> dict:
    """One measured wrk run against server; figures plus CPU accounting."""
    import resource

    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0 = machine_busy_ticks()
    cpu0 = server.cpu_ticks()
    t0 = time.monotonic()
    text = run_wrk(args, server.port, close, duration)
    elapsed = time.monotonic() - t0
    cpu1 = server.cpu_ticks()
    busy1 = machine_busy_ticks()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = parse_wrk(text)
    server_s = (cpu1 - cpu0) / CLK_TCK
    # Children reaped while wrk ran: wrk itself (servers are reaped only at stop).
    wrk_s = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    machine_s = (busy1 - busy0) / CLK_TCK
    other_cores = max(0.0, machine_s - server_s - wrk_s) / elapsed
    r.update(
        server_cpu_s=server_s,
        wrk_cpu_s=wrk_s,
        cpu_us_per_req=(server_s * 1e6 / r["requests"]) if r["requests"] else None,
        other_cores=other_cores,
        wall_s=elapsed,
    )
    return r


# ----------------------------------------------------------------- comparison


@dataclass
class Row:
    server: str
    app: str
    mode: str  # "keep-alive" | "close"
    runs: list[dict] = field(default_factory=list)

    def median(self, key):
        vals = [r[key] for r in self.runs if r.get(key) is not None]
        return statistics.median(vals) if vals else None


def compare(args) -> list[Row]:
    servers = [SERVERS[s] for s in args.servers]
    modes = [m == "close" for m in args.modes]
    rows: dict[tuple[str, str, str], Row] = {}
    for rnd in range(1, args.repeat + 1):
        for app in args.apps:
            for spec in servers:
                if spec.apps is not None and app not in spec.apps:
                    continue
                log(f"round {rnd}/{args.repeat}: {spec.label}, {app}")
                server = Server(spec, args, app)
                try:
                    for close in modes:
                        mode = "close" if close else "keep-alive"
                        row = rows.setdefault(
                            (spec.label, app, mode), Row(spec.label, app, mode)
                        )
                        r = run_disturbed_aware(args, server, close)
                        row.runs.append(r)
                        log(
                            f"  {mode:10s} {r['rps']:9.0f} req/s  "
                            f"{fmt(r['cpu_us_per_req'], 1)} µs/req  "
                            f"errors {r['socket_errors'] + r['non2xx']}  "
                            f"other load {r['other_cores']:.2f} cores"
                        )
                finally:
                    server.stop()
    return list(rows.values())


def run_disturbed_aware(args, server: Server, close: bool) -> dict:
    """Warm up, measure; redo (up to --retries times) a run that other load disturbed.

    Keeps the least disturbed of the attempts.
    """
    best = None
    for _attempt in range(args.retries + 1):
        if args.warmup > 0:
            run_wrk(args, server.port, close, args.warmup)
        r = measure(args, server, close, args.duration)
        if best is None or r["other_cores"] < best["other_cores"]:
            best = r
        if r["other_cores"] <= args.max_other:
            break
        log(f"  disturbed: {r['other_cores']:.2f} cores of other load; redoing")
    best["disturbed"] = best["other_cores"] > args.max_other
    return best


def fmt(v, nd=0, suffix=""):
    if v is None:
        return "-"
    return f"{v:,.{nd}f}{suffix}"


def table(rows: list[Row]) -> str:
    out = [
        "| server | app | connection | req/s | p50 ms | p99 ms | errors | "
        "server CPU µs/req | other load (cores) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    order = {a: i for i, a in enumerate(APPS)}
    rows = sorted(rows, key=lambda r: (order.get(r.app, 99), r.mode != "keep-alive"))
    for r in rows:
        errors = sum(x["socket_errors"] + x["non2xx"] for x in r.runs)
        mark = " (disturbed)" if any(x.get("disturbed") for x in r.runs) else ""
        out.append(
            f"| {r.server} | {r.app} | {r.mode} | {fmt(r.median('rps'))} | "
            f"{fmt(r.median('p50_ms'), 2)} | {fmt(r.median('p99_ms'), 2)} | "
            f"{errors} | {fmt(r.median('cpu_us_per_req'), 1)} | "
            f"{fmt(r.median('other_cores'), 2)}{mark} |"
        )
    return "\n".join(out)


# ----------------------------------------------------------------- RSS mode

COUNT_LUA = """\
-- Report every 500 responses on stderr; bench/run.py interrupts wrk (SIGINT)
-- once the threads' reports add up to the requests it wants.  (Stopping a thread
-- with wrk.thread:stop() would leave its open connections idle, and an idle
-- connection holds a sync worker until its timeout.)
local count = 0
function response(status, headers, body)
  count = count + 1
  if count % 500 == 0 then
    io.stderr:write("bench-500\\n")
    io.stderr:flush()
  end
end
"""


def run_wrk_count(args, port: int, close: bool, requests: int, script: Path) -> str:
    """Run wrk until about ``requests`` responses (wrk stops within ~0.1 s of SIGINT,
    so it overshoots a little: the caller uses the count wrk prints).

    Bounded by --rss-max-seconds (wrk's -d) whatever the server does.
    """
    cmd = [args.wrk, f"-t{args.threads}", f"-c{args.connections}"]
    cmd += [f"-d{round(args.rss_max_seconds)}s", "-s", str(script)]
    if close:
        cmd += ["-H", "Connection: close"]
    cmd.append(f"http://{HOST}:{port}/")
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    seen = 0
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.strip() == b"bench-500":
            seen += 500
            if seen >= requests:
                proc.send_signal(signal.SIGINT)
                break
    try:
        out, err = proc.communicate(timeout=args.rss_max_seconds + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {' '.join(cmd)}\n{text}")
    return text


def worker_pids(root: int) -> list[int]:
    return sorted(p for p in process_tree(root) if p != root)


def rss_check(args) -> dict:
    """Drive one worker (-w 1) to each mark and read its VmRSS."""
    marks = sorted(set(args.rss_marks))
    spec = SERVERS[args.rss_server]
    if spec.name == "cunicorn":
        cmd_w = [args.cunicorn, "-w", "1"]
    elif spec.name == "gunicorn":
        cmd_w = [args.peers_python, "-m", "gunicorn", "-w", "1"]
    else:
        raise SystemExit("--rss works with --rss-server cunicorn or gunicorn")
    port = free_port()
    cmd = cmd_w + ["-b", f"{HOST}:{port}", APPS[args.rss_app] + ":app"]
    tmpdir = Path(tempfile.mkdtemp(prefix="bench-rss-"))
    script = tmpdir / "count.lua"
    script.write_text(COUNT_LUA)
    server = None
    try:
        server = Server(spec, args, args.rss_app, cmd=cmd, port=port)
        workers = worker_pids(server.pid)
        if len(workers) != 1:
            raise RuntimeError(f"expected one worker under {server.pid}: {workers}")
        worker = workers[0]
        log(f"{spec.label.split()[0]} -w 1, worker pid {worker}, app {args.rss_app}")
        done, samples = 0, []
        close = args.rss_mode == "close"
        for mark in marks:
            text = run_wrk_count(args, port, close, mark - done, script)
            r = parse_wrk(text)
            done += r["requests"]
            if worker_pids(server.pid) != [worker]:
                raise RuntimeError(
                    f"worker {worker} replaced: {worker_pids(server.pid)}; "
                    + server.log_tail()
                )
            rss = vm_rss_kb(worker)
            samples.append(
                {"mark": mark, "requests": done, "rss_kb": rss, "errors": r["non2xx"]}
            )
            log(f"  after {done:>8,} requests: VmRSS {rss:,} kB")
        base = samples[0]["rss_kb"]
        growth = samples[-1]["rss_kb"] - base
        return {
            "server": spec.label.split()[0] + " sync -w 1",
            "app": args.rss_app,
            "mode": args.rss_mode,
            "samples": samples,
            "growth_kb": growth,
            "pass": growth <= 1024,
        }
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmpdir, ignore_errors=True)


def rss_table(res: dict) -> str:
    lines = [
        "| requests | worker VmRSS kB |",
        "|---:|---:|",
    ]
    for s in res["samples"]:
        lines.append(f"| {s['requests']:,} | {s['rss_kb']:,} |")
    verdict = "PASS" if res["pass"] else "FAIL"
    lines.append("")
    lines.append(
        f"{res['server']}, app {res['app']}, {res['mode']}: growth from the first to "
        f"the last mark {res['growth_kb']:+,} kB (target ≤ 1,024 kB): **{verdict}**"
    )
    return "\n".join(lines)


# ----------------------------------------------------------------- main


def machine_info() -> str:
    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        wrk_v = subprocess.run(
            ["wrk", "-v"], capture_output=True, text=True, timeout=5
        ).stdout.split("\n")[0]
    except (OSError, subprocess.SubprocessError):
        wrk_v = "?"
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, "
        f"Python {platform.python_version()}, {wrk_v.split(' Copyright')[0]}"
    )


def peer_versions(args) -> str:
    """Versions of the servers measured, for the record (what ran)."""
    parts = []
    if "cunicorn" in args.servers or (args.rss and args.rss_server == "cunicorn"):
        py = Path(args.cunicorn).with_name("python")
        parts.append(f"cunicorn {_pyver(py, 'cunicorn')}")
    if os.access(args.peers_python, os.X_OK):
        if "gunicorn" in args.servers or (args.rss and args.rss_server == "gunicorn"):
            parts.append(f"gunicorn {_pyver(args.peers_python, 'gunicorn')}")
        if any(s.startswith("bjoern") for s in args.servers):
            parts.append(f"bjoern {_pyver(args.peers_python, 'bjoern')}")
        if "flask" in args.apps:
            parts.append(f"Flask {_pyver(args.peers_python, 'flask')}")
    if any(s.startswith("nginx") for s in args.servers) and not args.rss:
        try:
            r = subprocess.run([args.nginx, "-v"], capture_output=True, text=True)
            parts.append(r.stderr.strip().split(": ", 1)[-1].replace("/", " "))
        except OSError:
            pass
    return ", ".join(parts)


def _pyver(python, dist: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    try:
        r = subprocess.run(
            [str(python), "-c", code], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return "?"
    return r.stdout.strip() or "?"


def csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--servers",
        type=csv,
        default=csv(DEFAULT_SERVERS),
        help=f"comma-separated, from {','.join(ALL_SERVERS)} "
        f"(default {DEFAULT_SERVERS})",
    )
    p.add_argument(
        "--apps",
        type=csv,
        default=["hello", "flask"],
        help=f"comma-separated, from {','.join(APPS)} (default hello,flask)",
    )
    p.add_argument(
        "--modes",
        type=csv,
        default=["keep-alive", "close"],
        help="keep-alive,close (default both)",
    )
    p.add_argument("--duration", type=float, default=8, help="measured seconds (8)")
    p.add_argument("--warmup", type=float, default=2, help="warm-up seconds (2)")
    p.add_argument("--repeat", type=int, default=3, help="rounds, median (3)")
    p.add_argument("--threads", type=int, default=2, help="wrk -t (2)")
    p.add_argument("--connections", type=int, default=50, help="wrk -c (50)")
    p.add_argument(
        "--max-other",
        type=float,
        default=0.3,
        help="other load (cores) above which a run is redone (0.3)",
    )
    p.add_argument(
        "--retries", type=int, default=1, help="how often a disturbed run is redone (1)"
    )
    p.add_argument("--start-timeout", type=float, default=20)
    p.add_argument("--cunicorn", default=str(ROOT / ".venv" / "bin" / "cunicorn"))
    p.add_argument(
        "--peers-python",
        default=str(HERE / ".venv-peers" / "bin" / "python"),
        help="python with gunicorn, bjoern, flask (bench/.venv-peers)",
    )
    p.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    p.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    p.add_argument(
        "--out",
        default=None,
        help="write markdown + JSON here (default bench/results/<time>)",
    )
    p.add_argument("--rss", action="store_true", help="run the RSS check instead")
    p.add_argument("--rss-server", default="cunicorn", choices=["cunicorn", "gunicorn"])
    p.add_argument("--rss-app", default="hello", choices=list(APPS))
    p.add_argument("--rss-mode", default="close", choices=["close", "keep-alive"])
    p.add_argument(
        "--rss-marks",
        type=lambda s: [int(x) for x in csv(s)],
        default=[20_000, 50_000, 100_000, 150_000, 200_000],
        help="request counts at which VmRSS is read (20k,...,200k)",
    )
    p.add_argument(
        "--rss-max-seconds",
        type=float,
        default=120,
        help="upper bound of one wrk run in --rss mode (120)",
    )
    args = p.parse_args(argv)
    for s in args.servers:
        if s not in SERVERS:
            p.error(f"unknown server {s!r}; choose from {','.join(ALL_SERVERS)}")
    for a in args.apps:
        if a not in APPS:
            p.error(f"unknown app {a!r}; choose from {','.join(APPS)}")
    for m in args.modes:
        if m not in ("keep-alive", "close"):
            p.error(f"unknown mode {m!r}")
    return args


def check_tools(args) -> None:
    missing = []
    if not shutil.which(args.wrk):
        missing.append("wrk (apt-get install wrk)")
    need_peers = (
        args.rss
        and args.rss_server == "gunicorn"
        or any(
            s in ("gunicorn", "bjoern", "bjoern2")
            for s in ([] if args.rss else args.servers)
        )
    )
    if need_peers and not os.access(args.peers_python, os.X_OK):
        missing.append(f"{args.peers_python} (make bench creates it)")
    if not args.rss and any(s.startswith("nginx") for s in args.servers):
        if not os.access(args.nginx, os.X_OK):
            missing.append("nginx (apt-get install nginx-light)")
    if (args.rss and args.rss_server == "cunicorn") or (
        not args.rss and "cunicorn" in args.servers
    ):
        if not os.access(args.cunicorn, os.X_OK):
            missing.append(f"{args.cunicorn} (make demo or make test builds it)")
    if missing:
        raise SystemExit("bench: missing " + "; ".join(missing))


def main(argv=None) -> int:
    args = parse_args(argv)
    check_tools(args)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else RESULTS_DIR / stamp
    command = "bench/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    # A TERM (e.g. from `timeout`) unwinds like Ctrl-C: every server is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    info = machine_info()
    versions = peer_versions(args)
    if versions:
        info += f"; {versions}"
    log(info)
    if args.rss:
        res = rss_check(args)
        md = f"`{command}`\n\n{info}\n\n{rss_table(res)}\n"
        payload = {"command": command, "machine": info, "rss": res}
        status = 0 if res["pass"] else 1
    else:
        log(
            f"{args.repeat} round(s) x {len(args.apps)} app(s) x servers "
            f"{','.join(args.servers)}; wrk -t{args.threads} -c{args.connections}, "
            f"{args.warmup:g} s warm-up + {args.duration:g} s"
        )
        rows = compare(args)
        md = (
            f"`{command}`\n\n{info}; wrk -t{args.threads} -c{args.connections}, "
            f"{args.warmup:g} s warm-up + {args.duration:g} s measured, median of "
            f"{args.repeat}\n\n{table(rows)}\n"
        )
        payload = {
            "command": command,
            "machine": info,
            "rows": [asdict(r) for r in rows],
        }
        status = 0
    print(md)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(md)
    out.with_suffix(".json").write_text(json.dumps(payload, indent=1))
    log(f"written {out.with_suffix('.md')} and .json")
    return status


if __name__ == "__main__":
    sys.exit(main())
