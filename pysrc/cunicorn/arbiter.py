"""Python glue around the C master loop (``_cserver.run_master``).

The arbiter binds the listening sockets once, creates the shared heartbeat table,
and hands the C master a ``spawn(slot)`` callable that runs in each forked
child: it loads the app (unless preloaded), builds the base environ and runs the
C worker loop.  The master loop itself, its signals and the respawning are C.
"""

from __future__ import annotations

import mmap
import os
import random
import signal
import socket
import sys
import traceback
from typing import Any, Callable

from cunicorn import SERVER_SOFTWARE, __version__, systemd
from cunicorn.config import Config
from cunicorn.daemon import daemonize, setproctitle
from cunicorn.errors import APP_LOAD_ERROR, WORKER_BOOT_ERROR, AppImportError
from cunicorn.glogging import logger_class
from cunicorn.hooks import (
    WorkerInfo,
    is_set,
    run_hook,
    wrap_app_for_request_hooks,
)
from cunicorn.pidfile import Pidfile
from cunicorn.sock import Listener, bind_one, close_listeners, create_listeners


def _cserver() -> Any:
    # imported late: config and CLI tests run without the C extension
    from cunicorn import _cserver

    return _cserver


class Arbiter:
    """One run of the server.  ``app`` is an ``cunicorn.app.Application``.

    Besides ``spawn`` and ``log``, the arbiter itself is the ``hooks`` object of
    ``_cserver.run_master``: the C loop calls its lifecycle methods (pre_fork,
    forked, child_exit, nworkers_changed, reload, reopen_logs, reexec,
    stopping, promoted), which run gunicorn's server hooks with gunicorn's
    arguments (``server`` is this object, ``worker`` a hooks.WorkerInfo)."""

    def __init__(self, app: Any, cserver: Any = None) -> None:
        self.app = app
        self.cfg = app.cfg
        self.log = logger_class(self.cfg)(self.cfg)
        self.cserver = cserver
        self.listeners: list[Listener] = []
        self.heartbeats: mmap.mmap | None = None
        self.pid = os.getpid()
        self.pidfile: Pidfile | None = None
        self.systemd = False
        # in a USR2 child: the old master's pid (0 once promoted, or if none)
        self.master_pid = int(os.environ.get("GUNICORN_PID", 0))
        self.num_workers = self.cfg.workers
        self.WORKERS: dict[int, WorkerInfo] = {}
        self._slots: dict[int, WorkerInfo] = {}
        self.worker: WorkerInfo | None = None  # in a worker process: itself
        # the command a USR2 re-executes: the interpreter and its own arguments
        # (``-m cunicorn ...`` or the console script), from the start directory
        orig = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
        self.START_CTX: dict[Any, Any] = {
            "args": [sys.executable, *orig[1:]],
            "cwd": os.getcwd(),
            0: sys.executable,
        }
        self.env_orig = dict(os.environ)

    @property
    def LISTENERS(self) -> list[Listener]:  # noqa: N802 (gunicorn's name)
        return self.listeners

    @property
    def master_name(self) -> str:
        return "Master.2" if self.master_pid else "Master"

    @property
    def proc_name(self) -> str:
        # gunicorn: proc_name, else default_proc_name, which its app sets to the URI
        name = self.cfg.values.get("proc_name") or self.app.app_uri or "cunicorn"
        return f"{name}.2" if self.master_pid else name

    @property
    def nslots(self) -> int:
        """Heartbeat slots: generous, so a respawn never waits for a free one
        and a reload can run two generations side by side."""
        return max(64, self.cfg.workers * 4)

    def max_requests_for_worker(self) -> int:
        """max_requests plus this worker's jitter, as gunicorn draws it (0 = no
        limit)."""
        if self.cfg.max_requests <= 0:
            return 0
        return self.cfg.max_requests + random.randint(0, self.cfg.max_requests_jitter)

    def hook(self, name: str, *args: Any) -> None:
        run_hook(self.cfg, self.log, name, *args)

    def _new_worker(self, slot: int, age: int) -> WorkerInfo:
        """The hooks' ``worker`` object for the worker in ``slot``."""
        return WorkerInfo(
            age, slot, self.pid, self.app, self.cfg, self.log, self.listeners
        )

    def _set_master_title(self) -> None:
        setproctitle(f"master [{self.proc_name}]")

    def _write_pidfile(self) -> None:
        """The pid file (``NAME``, ``NAME.2`` in a USR2 child), when --pid is set."""
        if self.cfg.pidfile:
            self.pidfile = Pidfile(self.cfg.pidfile + (".2" if self.master_pid else ""))
            self.pidfile.create(self.pid)

    # --- master ---

    def preload(self) -> int:
        """Load the app in the master (--preload).  Return 0, or the exit code
        when loading failed (3: import error, 4: bad app object)."""
        try:
            self.app.wsgi()
        except AppImportError as e:
            self.log.debug("Exception while loading the application", exc_info=True)
            print(str(e), file=sys.stderr)
            sys.stderr.flush()
            return APP_LOAD_ERROR
        except Exception:
            self.log.exception("Exception while loading the application")
            return WORKER_BOOT_ERROR
        return 0

    def set_env(self) -> None:
        """raw_env (-e KEY=VALUE) into the environment, as gunicorn's setup
        (the entries were checked when the app loaded its config)."""
        os.environ.update(self.cfg.env)

    def bind_listeners(self) -> list[Listener]:
        """Listeners freshly bound to --bind (at start, or a HUP that
        changed it)."""
        return create_listeners(
            self.cfg.bind, self.cfg.backlog, self.log, reuse_port=self.cfg.reuse_port
        )

    def make_listeners(self) -> list[Listener]:
        """systemd's sockets (LISTEN_FDS), a USR2 parent's (GUNICORN_FD) or
        freshly bound ones (--bind)."""
        n = systemd.listen_fds()
        fds: list[int] = []
        if n:
            self.systemd = True
            start = systemd.SD_LISTEN_FDS_START
            fds = list(range(start, start + n))
        elif self.master_pid and os.environ.get("GUNICORN_FD"):
            fds = [int(fd) for fd in os.environ.pop("GUNICORN_FD").split(",") if fd]
        if not fds:
            return self.bind_listeners()
        listeners = []
        for fd in fds:
            lnr = bind_one(fd, self.cfg.backlog)
            if lnr.family == socket.AF_UNIX and not self.systemd:
                addr = lnr.cfg_addr
                lnr.unlink_path = addr if isinstance(addr, str) else None
            listeners.append(lnr)
        return listeners

    def start(self) -> None:
        """gunicorn's Arbiter.start: log, pid file, on_starting, listeners,
        heartbeat table, when_ready (after READY=1 to systemd)."""
        self.log.info("Starting cunicorn %s", __version__)
        self._write_pidfile()
        self.hook("on_starting", self)
        self.listeners = self.make_listeners()
        self.log.debug("Arbiter booted")
        self.log.info(
            "Listening at: %s (%s)",
            ",".join(str(lnr) for lnr in self.listeners),
            self.pid,
        )
        self.log.info("Using worker: %s", self.cfg.worker_class_str)
        cs = self.cserver or _cserver()
        self.heartbeats = mmap.mmap(-1, cs.HEARTBEAT_SLOT_SIZE * self.nslots)
        systemd.sd_notify("READY=1\nSTATUS=cunicorn arbiter booted", self.log)
        self.hook("when_ready", self)

    def run(self) -> int:
        """Run the server; return the process exit code.  The listeners (and
        unix socket files) are closed and removed, the pid file removed and
        on_exit run when the master returns."""
        if self.cfg.daemon and not self.master_pid:
            # a USR2 child is already detached: it stays its parent's child
            daemonize(bool(self.cfg.enable_stdio_inheritance))
            self.pid = os.getpid()
        self.set_env()
        self.hook("nworkers_changed", self, self.num_workers, None)
        if self.cfg.preload_app:
            code = self.preload()
            if code:
                return code
        cs = self.cserver or _cserver()
        try:
            self.start()
            self._set_master_title()
            return cs.run_master(
                self.heartbeats,
                workers=self.cfg.workers,
                timeout=self.cfg.timeout,
                graceful_timeout=self.cfg.graceful_timeout,
                spawn=self.spawn,
                log=self.log.master_log,
                hooks=self,
                daemon=bool(self.cfg.daemon),
                parent_master=self.master_pid,
            )
        finally:
            if os.getpid() == self.pid:
                close_listeners(self.listeners)
                if self.pidfile is not None:
                    self.pidfile.unlink()
                self.hook("on_exit", self)
                self.log.flush()

    # --- callbacks of the C master loop (see _cserver.pyi) ---

    def pre_fork(self, slot: int, age: int) -> None:
        w = self._new_worker(slot, age)
        self._slots[slot] = w
        self.hook("pre_fork", self, w)

    def forked(self, slot: int, pid: int) -> None:
        w = self._slots.get(slot)
        if w is not None:
            w.pid = pid
            self.WORKERS[pid] = w
            self.log.workers_changed(len(self.WORKERS))

    def child_exit(self, slot: int, pid: int, status: int) -> None:
        w = self.WORKERS.pop(pid, None)
        if self._slots.get(slot) is w:
            self._slots.pop(slot, None)
        if w is not None:
            w.alive = False
            self.log.workers_changed(len(self.WORKERS))
            self.hook("child_exit", self, w)

    def nworkers_changed(self, new: int, old: int) -> None:
        self.num_workers = new
        self.hook("nworkers_changed", self, new, old)

    def reopen_logs(self) -> None:
        self.log.reopen_files()

    def reload(self) -> tuple[int, float, float]:
        """HUP: re-read the command line, environment and config file, set the
        logs up again (reopening their files), rebind when --bind changed, run
        on_reload; return (workers, timeout, graceful_timeout) for the new
        generation.  A configuration that fails to load is logged and the
        running one kept."""
        old_cfg, old_bind = self.cfg, list(self.cfg.bind)
        for key in self.cfg.env:
            if key in self.env_orig:
                os.environ[key] = self.env_orig[key]
            else:
                os.environ.pop(key, None)
        try:
            self.app.cfg = Config(prog=self.app.prog, environ=self.app.environ)
            self.app.load_config()
            self.app.cfg.validate()
        except BaseException as e:  # SystemExit from a bad config file too
            self.app.cfg = old_cfg
            why = str(e) or type(e).__name__
            self.log.error("Reload failed, configuration kept: %s", why)
            self.set_env()
            return self.cfg.workers, self.cfg.timeout, self.cfg.graceful_timeout
        self.cfg = self.app.cfg
        self.set_env()
        self.log.setup(self.cfg)
        self.log.reopen_files()
        if old_bind != list(self.cfg.bind) and not self.systemd:
            new = self.bind_listeners()
            close_listeners(self.listeners)
            self.listeners = new
            self.log.info("Listening at: %s", ",".join(str(x) for x in new))
        self.hook("on_reload", self)
        if self.pidfile is not None:
            self.pidfile.unlink()
            self.pidfile = None
        self._write_pidfile()
        self._set_master_title()
        return self.cfg.workers, self.cfg.timeout, self.cfg.graceful_timeout

    def reexec(self) -> None:
        """USR2, in the forked child: pre_exec, then exec the same command with
        the listening sockets inherited.  Returns only if exec failed."""
        master_pid = os.getppid()
        self.hook("pre_exec", self)
        environ = dict(self.env_orig)
        environ["GUNICORN_PID"] = str(master_pid)
        if self.systemd:
            environ["LISTEN_PID"] = str(os.getpid())
            environ["LISTEN_FDS"] = str(len(self.listeners))
        else:
            environ["GUNICORN_FD"] = ",".join(str(x.fileno()) for x in self.listeners)
        os.chdir(self.START_CTX["cwd"])
        self.log.flush()
        try:
            os.execvpe(self.START_CTX[0], self.START_CTX["args"], environ)
        except OSError:
            self.log.exception("Re-executing the master failed")

    def stopping(self, unlink: bool) -> None:
        """Start of a stop: close the listening sockets (new connections are
        refused, not queued for workers that are leaving)."""
        if not unlink:  # (systemd's sockets never have an unlink_path)
            for lnr in self.listeners:
                lnr.unlink_path = None
        close_listeners(self.listeners)
        systemd.sd_notify("STOPPING=1", self.log)

    def promoted(self) -> None:
        """The old master is gone: this USR2 child is the master now."""
        self.master_pid = 0
        os.environ.pop("GUNICORN_PID", None)
        if self.pidfile is not None:  # set only while --pid is
            self.pidfile.rename(self.cfg.pidfile)
        self._set_master_title()

    # --- worker (runs in the forked child) ---

    def base_environ(self) -> dict[str, Any]:
        """The environ every request starts from (copied per request by C)."""
        cs = self.cserver or _cserver()
        environ: dict[str, Any] = {
            "wsgi.version": (1, 0),
            "wsgi.multithread": self.cfg.worker_class_str == "gthread",
            "wsgi.multiprocess": self.cfg.workers > 1,
            "wsgi.run_once": False,
            "wsgi.errors": self.log.wsgi_errors(),
            "wsgi.input_terminated": True,
            "wsgi.url_scheme": "http",
            "SERVER_SOFTWARE": SERVER_SOFTWARE,
            "SCRIPT_NAME": os.environ.get("SCRIPT_NAME", ""),
        }
        file_wrapper = getattr(cs, "FileWrapper", None)
        if file_wrapper is not None:
            environ["wsgi.file_wrapper"] = file_wrapper
        return environ

    def worker_listeners(self) -> list[tuple[int, str, str]]:
        return [(lnr.fileno(), *lnr.server_name_port()) for lnr in self.listeners]

    def worker_kwargs(self, slot: int) -> dict[str, Any]:
        """Keyword arguments of _cserver.run_worker for the worker in ``slot``."""
        cfg = self.cfg
        return {
            "heartbeats": self.heartbeats,
            "slot": slot,
            "timeout": cfg.timeout,
            "graceful_timeout": cfg.graceful_timeout,
            "keepalive": cfg.keepalive,
            "max_requests": self.max_requests_for_worker(),
            "limit_request_line": cfg.effective_limit_request_line,
            "limit_request_fields": cfg.effective_limit_request_fields,
            "limit_request_field_size": cfg.effective_limit_request_field_size,
            "access_log": self.log.access if self.log.access_log_enabled else None,
            "error_log": self.log.error_log_callback,
            "header_map": cfg.header_map,
            "permit_unconventional_http_method": cfg.permit_unconventional_http_method,
            "casefold_http_method": cfg.casefold_http_method,
            "permit_obsolete_folding": cfg.permit_obsolete_folding,
            "strip_header_spaces": cfg.strip_header_spaces,
            "proxy_protocol": cfg.proxy_protocol,
            "proxy_allow_ips": cfg.proxy_allow_ips,
            "forwarded_allow_ips": cfg.forwarded_allow_ips,
            "secure_scheme_headers": {
                k.upper(): v for k, v in cfg.secure_scheme_headers.items()
            },
            "sendfile": cfg.sendfile,
            "forwarder_headers": cfg.forwarder_headers,
        }

    def run_worker_loop(
        self, cs: Any, app: Any, listeners: Any, base: dict, kwargs: dict
    ) -> int:
        """Run the C loop of the configured worker class until it stops."""
        kind = self.cfg.worker_class_str
        if kind == "gthread":
            return cs.run_worker_gthread(
                app,
                listeners,
                base,
                threads=self.cfg.threads,
                worker_connections=self.cfg.worker_connections,
                **kwargs,
            )
        if kind == "gevent":
            from cunicorn import ggevent

            return ggevent.run_worker(self, cs, app, listeners, base, kwargs)
        return cs.run_worker(app, listeners, base, **kwargs)

    def load_app_in_worker(self) -> tuple[Callable[..., Any] | None, int]:
        """(app, 0), or (None, exit code) after logging why it failed."""
        try:
            if self.cfg.reload and not self.cfg.preload_app:
                from cunicorn.reloader import worker_app

                return worker_app(self.app, self.cfg, self.log), 0
            return self.app.wsgi(), 0
        except AppImportError as e:
            self.log.debug("Exception while loading the application", exc_info=True)
            print(str(e), file=sys.stderr)
            sys.stderr.flush()
            return None, APP_LOAD_ERROR
        except Exception as e:
            self.log.exception("Exception in worker process")
            print(str(e), file=sys.stderr)
            sys.stderr.flush()
            return None, WORKER_BOOT_ERROR

    def become_worker(self, slot: int) -> WorkerInfo:
        """In the child: the hooks' worker object, process title, user/group
        and umask, then post_fork."""
        w = self._slots.get(slot) or self._new_worker(slot, 0)
        w.pid = os.getpid()
        self.worker = w
        self.WORKERS = {}
        setproctitle(f"worker [{self.proc_name}]")
        if self.cfg.umask:
            os.umask(self.cfg.umask)
        gid, uid = self.cfg.group, self.cfg.user  # ints (the validators')
        if gid != os.getegid():
            if self.cfg.initgroups:
                import pwd

                os.initgroups(pwd.getpwuid(uid).pw_name, gid)
            os.setgid(gid)
        if uid != os.geteuid():
            os.setuid(uid)
        self.hook("post_fork", self, w)
        return w

    def install_worker_signals(self, w: WorkerInfo) -> None:
        """Python handlers the C worker loop hands signals to (worker_common.c
        forwards a signal to Python only when a Python handler is set): USR1
        reopens the log files; with a worker_int / worker_abort hook set, QUIT
        and INT / ABRT run it and leave at once (worker_exit included)."""

        def on_usr1(signo: int, frame: Any) -> None:
            self.log.reopen_files()

        def leave(hook: str, code: int) -> None:
            w.alive = False
            self.hook(hook, w)
            self.hook("worker_exit", self, w)
            self.log.info("Worker exiting (pid: %s)", w.pid)
            self.log.flush()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

        signal.signal(signal.SIGUSR1, on_usr1)
        if is_set(self.cfg, "worker_int"):
            for sig in (signal.SIGINT, signal.SIGQUIT):
                signal.signal(sig, lambda signo, frame: leave("worker_int", 0))
        if is_set(self.cfg, "worker_abort"):
            signal.signal(signal.SIGABRT, lambda signo, frame: leave("worker_abort", 1))

    def spawn(self, slot: int) -> int:
        """Body of a worker process (called by C after fork); returns its exit
        code: 3 when the worker failed to boot, 4 when the app failed to load.
        The C master logs ``Booting worker with pid`` before and ``Worker
        exiting`` after it, in the child, as gunicorn does.  Hooks: post_fork,
        post_worker_init, worker_exit (and worker_int / worker_abort)."""
        code = WORKER_BOOT_ERROR
        w = None
        try:
            random.seed()  # each worker draws its own max_requests jitter
            w = self.become_worker(slot)
            if self.cfg.worker_class_str == "gevent":
                from cunicorn import ggevent

                ggevent.patch()  # before the app is imported, as gunicorn does
            app, code = self.load_app_in_worker()
            if app is None:
                return code
            code = WORKER_BOOT_ERROR
            w.wsgi = app
            app = wrap_app_for_request_hooks(app, self.cfg, self.log, w)
            cs = self.cserver or _cserver()
            base = self.base_environ()
            listeners = self.worker_listeners()
            kwargs = self.worker_kwargs(slot)
            w.max_requests = kwargs.get("max_requests", 0)
            self.hook("post_worker_init", w)
            w.booted = True
            self.install_worker_signals(w)
            code = -1  # booted: a failure from here on is not a boot failure
            code = self.run_worker_loop(cs, app, listeners, base, kwargs)
            return code
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
            return code
        except BaseException:
            self.log.error("Exception in worker process:\n%s", traceback.format_exc())
            return code if code != -1 else 1
        finally:
            if w is not None:
                w.alive = False
                self.hook("worker_exit", self, w)
            self.log.flush()
            sys.stdout.flush()
            sys.stderr.flush()
