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
import sys
import traceback
from typing import Any, Callable

from cunicorn import SERVER_SOFTWARE, __version__
from cunicorn.errors import APP_LOAD_ERROR, WORKER_BOOT_ERROR, AppImportError
from cunicorn.glogging import Logger
from cunicorn.sock import Listener, close_listeners, create_listeners


def _cserver() -> Any:
    # imported late: config and CLI tests run without the C extension
    from cunicorn import _cserver

    return _cserver


class Arbiter:
    """One run of the server.  ``app`` is an ``cunicorn.app.Application``."""

    def __init__(self, app: Any, cserver: Any = None) -> None:
        self.app = app
        self.cfg = app.cfg
        self.log = Logger(self.cfg)
        self.cserver = cserver
        self.listeners: list[Listener] = []
        self.heartbeats: mmap.mmap | None = None
        self.pid = os.getpid()

    @property
    def nslots(self) -> int:
        """Heartbeat slots: generous, so a respawn never waits for a free one."""
        return max(64, self.cfg.workers * 4)

    def max_requests_for_worker(self) -> int:
        """max_requests plus this worker's jitter, as gunicorn draws it (0 = no
        limit)."""
        if self.cfg.max_requests <= 0:
            return 0
        return self.cfg.max_requests + random.randint(0, self.cfg.max_requests_jitter)

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

    def start(self) -> None:
        """Log the start, bind every address once, create the heartbeat table."""
        self.log.info("Starting cunicorn %s", __version__)
        self.listeners = create_listeners(self.cfg.bind, self.cfg.backlog, self.log)
        self.log.debug("Arbiter booted")
        self.log.info(
            "Listening at: %s (%s)",
            ",".join(str(lnr) for lnr in self.listeners),
            self.pid,
        )
        self.log.info("Using worker: %s", self.cfg.worker_class_str)
        cs = self.cserver or _cserver()
        self.heartbeats = mmap.mmap(-1, cs.HEARTBEAT_SLOT_SIZE * self.nslots)

    def run(self) -> int:
        """Run the server; return the process exit code.  The listeners (and
        unix socket files) are closed and removed when the master returns."""
        if self.cfg.preload_app:
            code = self.preload()
            if code:
                return code
        cs = self.cserver or _cserver()
        try:
            self.start()
            return cs.run_master(
                self.heartbeats,
                workers=self.cfg.workers,
                timeout=self.cfg.timeout,
                graceful_timeout=self.cfg.graceful_timeout,
                spawn=self.spawn,
                log=self.log.master_log,
            )
        finally:
            if os.getpid() == self.pid:
                close_listeners(self.listeners)
                self.log.flush()

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
                worker_connections=getattr(self.cfg, "worker_connections", 1000),
                **kwargs,
            )
        if kind == "gevent":
            from cunicorn import ggevent

            return ggevent.run_worker(self, cs, app, listeners, base, kwargs)
        return cs.run_worker(app, listeners, base, **kwargs)

    def load_app_in_worker(self) -> tuple[Callable[..., Any] | None, int]:
        """(app, 0), or (None, exit code) after logging why it failed."""
        try:
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

    def spawn(self, slot: int) -> int:
        """Body of a worker process (called by C after fork); returns its exit
        code: 3 when the worker failed to boot, 4 when the app failed to load.
        The C master logs ``Booting worker with pid`` before and ``Worker
        exiting`` after it, in the child, as gunicorn does."""
        code = WORKER_BOOT_ERROR
        try:
            random.seed()  # each worker draws its own max_requests jitter
            app, code = self.load_app_in_worker()
            if app is None:
                return code
            code = WORKER_BOOT_ERROR
            cs = self.cserver or _cserver()
            base = self.base_environ()
            listeners = self.worker_listeners()
            kwargs = self.worker_kwargs(slot)
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
            self.log.flush()
            sys.stdout.flush()
            sys.stderr.flush()
