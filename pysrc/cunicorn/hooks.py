"""Server hooks (on_starting, pre_fork, post_fork, ...): how they are called,
and the ``worker`` object they receive.

Hooks come from the configuration (``cfg.NAME``) with gunicorn's arities.  A
hook that raises is logged (``Exception in NAME hook``) and never stops the
master or the worker; the one exception is ``on_starting``'s gunicorn-ish use
of raising to refuse the start, which still only logs here.
"""

from __future__ import annotations

from typing import Any, Callable

from cunicorn.config import REGISTRY, Config


def get_hook(cfg: Config, name: str) -> Any:
    """The configured callable for hook ``name``, or None when the setting is
    not callable or still gunicorn's do-nothing default."""
    fn = cfg.values.get(name)
    if not callable(fn) or fn is REGISTRY[name].default:
        return None
    return fn


def is_set(cfg: Config, name: str) -> bool:
    return get_hook(cfg, name) is not None


def call_hook(fn: Callable[..., Any], log: Any, name: str, *args: Any) -> None:
    """Call the hook ``fn`` (named ``name``) with ``args``; log and swallow
    what it raises."""
    try:
        fn(*args)
    except Exception:
        log.exception("Exception in %s hook", name)


def run_hook(cfg: Config, log: Any, name: str, *args: Any) -> None:
    """Call hook ``name`` with ``args`` when it is set (see call_hook)."""
    fn = get_hook(cfg, name)
    if fn is not None:
        call_hook(fn, log, name, *args)


class WorkerInfo:
    """The ``worker`` argument of the hooks: gunicorn's Worker attributes that
    hooks read (pid, ppid, age, cfg, log, app, sockets, alive, booted, ...)."""

    def __init__(
        self, age: int, slot: int, ppid: int, app: Any, cfg: Any, log: Any, sockets: Any
    ) -> None:
        self.age = age
        self.slot = slot
        self.ppid = ppid
        self.pid: int | None = None
        self.app = app
        self.cfg = cfg
        self.log = log
        self.sockets = sockets
        self.timeout = cfg.timeout
        self.max_requests = 0
        self.nr = 0
        self.alive = True
        self.booted = False
        self.aborted = False
        self.wsgi: Any = None

    def __repr__(self) -> str:
        return f"<Worker {self.pid}>"

    def notify(self) -> None:
        """gunicorn API kept for hooks that call it; the C loop beats itself."""

    @property
    def tmp(self) -> WorkerInfo:  # worker.tmp.notify() in old configs
        return self


class RequestInfo:
    """The ``req`` argument of pre_request / post_request, built from the
    environ: gunicorn's Request attributes that hooks read."""

    def __init__(self, environ: dict) -> None:
        self.environ = environ
        self.method = environ.get("REQUEST_METHOD")
        self.uri = environ.get("RAW_URI")
        self.path = environ.get("PATH_INFO")
        self.query = environ.get("QUERY_STRING")
        self.fragment = ""
        self.scheme = environ.get("wsgi.url_scheme")
        proto = environ.get("SERVER_PROTOCOL", "HTTP/1.1")
        try:
            major, minor = proto.split("/", 1)[1].split(".", 1)
            self.version: tuple[int, int] = (int(major), int(minor))
        except (IndexError, ValueError):
            self.version = (1, 1)
        headers = []
        for k, v in environ.items():
            if k.startswith("HTTP_"):
                headers.append((k[5:].replace("_", "-"), v))
            elif k in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                headers.append((k.replace("_", "-"), v))
        self.headers = headers
        self.body = environ.get("wsgi.input")


class ResponseInfo:
    """The ``resp`` argument of post_request: status and headers as the app
    gave them, bytes of body seen."""

    def __init__(self) -> None:
        self.status: str | None = None
        self.status_code: int | None = None
        self.headers: list = []
        self.sent = 0
        self.response_length = None


class _HookedBody:
    """The app's iterable, passed through; close() closes it, then runs
    post_request (gunicorn runs it once the response is written)."""

    def __init__(self, result: Any, done: Any) -> None:
        self._result = result
        self._it = iter(result)
        self._done = done

    def __iter__(self) -> _HookedBody:
        return self

    def __next__(self) -> bytes:
        return next(self._it)

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            self._done()


def wrap_app_for_request_hooks(app: Any, cfg: Config, log: Any, worker: Any) -> Any:
    """``app`` itself when neither pre_request nor post_request is configured
    (the hot path stays free), else a WSGI wrapper that runs them around each
    request.  (A wsgi.file_wrapper body is then iterated, not sent with
    sendfile.)"""
    pre = get_hook(cfg, "pre_request")
    post = get_hook(cfg, "post_request")
    if pre is None and post is None:
        return app

    def hooked(environ: dict, start_response: Any) -> Any:
        req = RequestInfo(environ)
        resp = ResponseInfo()
        worker.nr += 1
        if pre is not None:
            call_hook(pre, log, "pre_request", worker, req)

        def sr(status: str, headers: list, exc_info: Any = None) -> Any:
            resp.status = status
            resp.headers = headers
            try:
                resp.status_code = int(status.split(None, 1)[0])
            except (ValueError, IndexError):
                resp.status_code = None
            for name, value in headers:
                if name.lower() == "content-length":
                    resp.response_length = value
            return start_response(status, headers, exc_info)

        def done() -> None:
            if post is not None:
                call_hook(post, log, "post_request", worker, req, environ, resp)

        try:
            result = app(environ, sr)
        except BaseException:
            done()
            raise
        return _HookedBody(result, done)

    return hooked
