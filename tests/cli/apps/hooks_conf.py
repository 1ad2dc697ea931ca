"""Config file for tests/cli: every server hook appends one line
``NAME PID ARGS`` to the file named by $HOOK_LOG (opened per write, so master
and workers interleave whole lines).  ``workers`` is re-read from the file
$WORKERS_FILE on each load (so a HUP sees a change).  $HOOK_RAISE names hooks
that raise after writing their line."""

import os
import sys

_LOG = os.environ.get("HOOK_LOG", os.devnull)
_RAISE = set(os.environ.get("HOOK_RAISE", "").split(","))


def _w(name, *args):
    with open(_LOG, "a") as f:
        f.write(" ".join(str(a) for a in (name, os.getpid(), *args)) + "\n")
    if name in _RAISE:
        raise RuntimeError(f"{name} hook raised on purpose")


def on_starting(server):
    _w("on_starting")


def when_ready(server):
    _w("when_ready", len(server.LISTENERS))


def on_reload(server):
    _w("on_reload")


def pre_fork(server, worker):
    _w("pre_fork", worker.age)


def post_fork(server, worker):
    _w("post_fork", worker.pid, worker.age)


def post_worker_init(worker):
    _w("post_worker_init", worker.pid)


def worker_int(worker):
    _w("worker_int", worker.pid)


def worker_abort(worker):
    _w("worker_abort", worker.pid)


def worker_exit(server, worker):
    _w("worker_exit", worker.pid)


def pre_request(worker, req):
    _w("pre_request", req.method, req.path)


def post_request(worker, req, environ, resp):
    _w("post_request", req.method, resp.status_code, worker.nr)


def child_exit(server, worker):
    _w("child_exit", worker.pid)


def nworkers_changed(server, new_value, old_value):
    _w("nworkers_changed", new_value, old_value)


def pre_exec(server):
    _w("pre_exec")


def on_exit(server):
    _w("on_exit")
    sys.stderr.flush()


_wf = os.environ.get("WORKERS_FILE")
if _wf:
    with open(_wf) as _f:
        workers = int(_f.read().strip())
