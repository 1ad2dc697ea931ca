"""The settings registry: one ``Setting`` per gunicorn setting.

The registry drives the command line (argparse), config files and the generated
settings documentation.  Names, flags, defaults and validators are gunicorn's, so
a gunicorn deployment keeps its meaning.  Precedence, lowest first: defaults
(some read from the environment: PORT, WEB_CONCURRENCY) < config file <
``GUNICORN_CMD_ARGS`` < ``CUNICORN_CMD_ARGS`` < command line.
"""

from __future__ import annotations

import argparse
import inspect
import os
import shlex
import textwrap
from collections.abc import Mapping
from typing import Any, Callable

from cunicorn import __version__
from cunicorn.errors import ConfigError

# Environment variables holding extra command-line arguments, lowest first.
CMD_ARGS_ENV = ("GUNICORN_CMD_ARGS", "CUNICORN_CMD_ARGS")

USAGE = "%(prog)s [OPTIONS] [APP_MODULE]"


def getcwd() -> str:
    """The current directory, spelled as $PWD when that names the same
    directory (keeps the symlinks the user sees)."""
    try:
        a = os.stat(os.environ["PWD"])
        b = os.stat(os.getcwd())
        if a.st_ino == b.st_ino and a.st_dev == b.st_dev:
            return os.environ["PWD"]
    except (KeyError, OSError):
        pass
    return os.getcwd()


# --- validators (gunicorn's, same messages) -------------------------------------


def validate_bool(val: Any) -> bool | None:
    if val is None:
        return None
    if isinstance(val, bool):
        return val
    if not isinstance(val, str):
        raise TypeError(f"Invalid type for casting: {val}")
    if val.lower().strip() == "true":
        return True
    if val.lower().strip() == "false":
        return False
    raise ValueError(f"Invalid boolean: {val}")


def validate_dict(val: Any) -> dict:
    if not isinstance(val, dict):
        raise TypeError(f"Value is not a dictionary: {val} ")
    return val


def validate_pos_int(val: Any) -> int:
    if not isinstance(val, int):
        val = int(val, 0)
    else:
        val = int(val)  # bool is an int: True -> 1
    if val < 0:
        raise ValueError(f"Value must be positive: {val}")
    return val


def validate_string(val: Any) -> str | None:
    if val is None:
        return None
    if not isinstance(val, str):
        raise TypeError(f"Not a string: {val}")
    return val.strip()


def validate_list_string(val: Any) -> list[str]:
    if not val:
        return []
    if isinstance(val, str):  # legacy: one string instead of a list
        val = [val]
    return [validate_string(v) for v in val]


def validate_string_to_list(val: Any) -> list[str]:
    val = validate_string(val)
    if not val:
        return []
    return [v.strip() for v in val.split(",") if v]


def validate_class(val: Any) -> Any:
    # a function returning the class, a class, or a dotted string
    if inspect.isfunction(val) or inspect.ismethod(val):
        val = val()
    if inspect.isclass(val):
        return val
    return validate_string(val)


def validate_chdir(val: Any) -> str:
    val = validate_string(val)
    path = os.path.abspath(os.path.normpath(os.path.join(getcwd(), val)))
    if not os.path.exists(path):
        raise ConfigError(f"can't chdir to {val!r}")
    return path


# --- the registry ---------------------------------------------------------------


class Setting:
    """One setting: its spelling everywhere, its validator and its default.

    ``default`` may be a callable taking the environment mapping, for defaults
    that gunicorn reads from the environment (PORT, WEB_CONCURRENCY);
    ``default_doc`` is then what the documentation and ``--help`` show.
    """

    __slots__ = (
        "name",
        "section",
        "cli",
        "meta",
        "validator",
        "type",
        "action",
        "const",
        "default",
        "default_doc",
        "desc",
        "short",
        "order",
    )

    def __init__(
        self,
        name: str,
        section: str,
        validator: Callable[[Any], Any],
        default: Any = None,
        *,
        cli: list[str] | None = None,
        meta: str | None = None,
        type: type | None = None,  # gunicorn's attribute name
        action: str | None = None,
        const: Any = None,
        default_doc: str | None = None,
        desc: str = "",
    ) -> None:
        self.name = name
        self.section = section
        self.cli = cli or []
        self.meta = meta
        self.validator = validator
        self.type = type
        self.action = action
        self.const = const
        self.default = default
        self.default_doc = default_doc if default_doc is not None else repr(default)
        self.desc = textwrap.dedent(desc).strip()
        self.short = self.desc.splitlines()[0] if self.desc else ""
        self.order = len(REGISTRY)

    def default_value(self, environ: Mapping[str, str]) -> Any:
        """The validated default for this environment."""
        value = self.default(environ) if callable(self.default) else self.default
        if value is None:
            return None
        return self.validator(value)

    def add_option(self, parser: argparse.ArgumentParser) -> None:
        """Add this setting's flags to ``parser``.  A value given on the command
        line is validated while parsing, so a bad one is argparse's error (exit 2)
        naming the option; ``default=None`` tells "not given" from a value."""
        if not self.cli:
            return
        help_txt = f"{self.short} [{self.default_doc}]".replace("%", "%%")
        kwargs: dict[str, Any] = {
            "dest": self.name,
            "action": self.action or "store",
            "default": None,
            "help": help_txt,
        }
        if kwargs["action"] in ("store", "append"):
            kwargs["type"] = _ArgType(self)
        if self.meta is not None:
            kwargs["metavar"] = self.meta
        if self.const is not None:
            kwargs["const"] = self.const
        parser.add_argument(*self.cli, **kwargs)

    def __repr__(self) -> str:
        return f"<Setting {self.name}>"


class _ArgType:
    """argparse ``type=``: convert like gunicorn (``int`` for INT settings, so a
    non-number is argparse's "invalid int value"), then run the validator."""

    def __init__(self, setting: Setting) -> None:
        self.setting = setting
        self.__name__ = (setting.type or str).__name__  # argparse names it

    def __call__(self, text: str) -> Any:
        value = self.setting.type(text) if self.setting.type else text
        check = [value] if self.setting.action == "append" else value
        try:
            self.setting.validator(check)
        except (ValueError, TypeError, ConfigError) as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        return value


REGISTRY: dict[str, Setting] = {}


def register(*args: Any, **kwargs: Any) -> Setting:
    setting = Setting(*args, **kwargs)
    if setting.name in REGISTRY:
        raise RuntimeError(f"setting {setting.name!r} registered twice")
    REGISTRY[setting.name] = setting
    return setting


def _bind_default(environ: Mapping[str, str]) -> list[str]:
    if "PORT" in environ:
        return [f"0.0.0.0:{environ['PORT']}"]
    return ["127.0.0.1:8000"]


def _workers_default(environ: Mapping[str, str]) -> int:
    return int(environ.get("WEB_CONCURRENCY", 1))


# Config File
register(
    "config",
    "Config File",
    validate_string,
    "./gunicorn.conf.py",
    cli=["-c", "--config"],
    meta="CONFIG",
    desc="""\
        The config file: ``PATH``, ``file:PATH`` or ``python:MODULE_NAME``.

        By default ``gunicorn.conf.py`` in the directory cunicorn runs in is read
        when it exists.
        """,
)
register(
    "wsgi_app",
    "Config File",
    validate_string,
    None,
    meta="STRING",
    desc="""\
        A WSGI application path in pattern ``$(MODULE_NAME):$(VARIABLE_NAME)``.
        """,
)

# Server Socket
register(
    "bind",
    "Server Socket",
    validate_list_string,
    _bind_default,
    cli=["-b", "--bind"],
    meta="ADDRESS",
    action="append",
    default_doc="['127.0.0.1:8000']",
    desc="""\
        The socket to bind.

        A string of the form: ``HOST``, ``HOST:PORT``, ``[IPV6]:PORT``,
        ``unix:PATH``, ``fd://FD``.  Repeat the option to bind several addresses.

        If the ``PORT`` environment variable is defined, the default is
        ``['0.0.0.0:$PORT']``; otherwise ``['127.0.0.1:8000']``.
        """,
)
register(
    "backlog",
    "Server Socket",
    validate_pos_int,
    2048,
    cli=["--backlog"],
    meta="INT",
    type=int,
    desc="""\
        The maximum number of pending connections.
        """,
)

# Worker Processes
register(
    "workers",
    "Worker Processes",
    validate_pos_int,
    _workers_default,
    cli=["-w", "--workers"],
    meta="INT",
    type=int,
    default_doc="1",
    desc="""\
        The number of worker processes for handling requests.

        By default, the value of the ``WEB_CONCURRENCY`` environment variable; if
        it is not defined, ``1``.
        """,
)
register(
    "worker_class",
    "Worker Processes",
    validate_class,
    "sync",
    cli=["-k", "--worker-class"],
    meta="STRING",
    desc="""\
        The type of workers to use.

        ``sync`` (also spelled ``gunicorn.workers.sync.SyncWorker``).
        """,
)
register(
    "threads",
    "Worker Processes",
    validate_pos_int,
    1,
    cli=["--threads"],
    meta="INT",
    type=int,
    desc="""\
        The number of worker threads for handling requests.

        More than 1 with the ``sync`` worker class selects ``gthread``, as in
        gunicorn.
        """,
)
register(
    "max_requests",
    "Worker Processes",
    validate_pos_int,
    0,
    cli=["--max-requests"],
    meta="INT",
    type=int,
    desc="""\
        The maximum number of requests a worker will process before restarting.

        0 (the default) disables automatic worker restarts.
        """,
)
register(
    "max_requests_jitter",
    "Worker Processes",
    validate_pos_int,
    0,
    cli=["--max-requests-jitter"],
    meta="INT",
    type=int,
    desc="""\
        The maximum jitter to add to the *max_requests* setting.

        Each worker restarts after ``max_requests + randint(0, jitter)`` requests.
        """,
)
register(
    "timeout",
    "Worker Processes",
    validate_pos_int,
    30,
    cli=["-t", "--timeout"],
    meta="INT",
    type=int,
    desc="""\
        Workers silent for more than this many seconds are killed and restarted.

        0 disables the check.
        """,
)
register(
    "graceful_timeout",
    "Worker Processes",
    validate_pos_int,
    30,
    cli=["--graceful-timeout"],
    meta="INT",
    type=int,
    desc="""\
        Timeout for graceful workers restart.
        """,
)
register(
    "keepalive",
    "Worker Processes",
    validate_pos_int,
    2,
    cli=["--keep-alive"],
    meta="INT",
    type=int,
    desc="""\
        The number of seconds to wait for requests on a Keep-Alive connection.
        """,
)

# Security
register(
    "limit_request_line",
    "Security",
    validate_pos_int,
    4094,
    cli=["--limit-request-line"],
    meta="INT",
    type=int,
    desc="""\
        The maximum size of HTTP request line in bytes.

        A number from 0 (unlimited) to 8190; larger values mean 8190.
        """,
)
register(
    "limit_request_fields",
    "Security",
    validate_pos_int,
    100,
    cli=["--limit-request-fields"],
    meta="INT",
    type=int,
    desc="""\
        Limit the number of HTTP headers fields in a request.

        At most 32768; 0 means 32768.
        """,
)
register(
    "limit_request_field_size",
    "Security",
    validate_pos_int,
    8190,
    cli=["--limit-request-field_size"],
    meta="INT",
    type=int,
    desc="""\
        Limit the allowed size of an HTTP request header field.

        0 means the default, 8190.
        """,
)


def validate_header_map(val: Any) -> str:
    val = validate_string(val)
    if val not in ("drop", "refuse", "dangerous"):
        raise ValueError(f"must be one of drop, refuse, dangerous; not {val!r}")
    return val


def _forwarded_default(environ: Mapping[str, str]) -> str:
    return environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")


register(
    "header_map",
    "Security",
    validate_header_map,
    "drop",
    cli=["--header-map"],
    meta="STRING",
    desc="""\
        What to do with header names containing underscores: ``drop`` them
        (they could be mistaken for the same name with dashes), ``refuse`` the
        request with 400, or pass them on (``dangerous``).
        """,
)
register(
    "permit_obsolete_folding",
    "Security",
    validate_bool,
    False,
    cli=["--permit-obsolete-folding"],
    action="store_true",
    desc="""\
        Accept obsolete line folding (a header line starting with whitespace),
        joining it to the previous field with one space; refused with 400 otherwise.
        """,
)
register(
    "strip_header_spaces",
    "Security",
    validate_bool,
    False,
    cli=["--strip-header-spaces"],
    action="store_true",
    desc="""\
        Strip whitespace between a header name and its colon instead of refusing
        the request.  Dangerous behind proxies that read such headers differently.
        """,
)
register(
    "permit_unconventional_http_method",
    "Security",
    validate_bool,
    False,
    cli=["--permit-unconventional-http-method"],
    action="store_true",
    desc="""\
        Accept any token as the method (lower case, fewer than 3 or more than 20
        characters).  By default methods are 3 to 20 upper-case token characters.
        """,
)
register(
    "casefold_http_method",
    "Security",
    validate_bool,
    False,
    cli=["--casefold-http-method"],
    action="store_true",
    desc="""\
        Upper-case the method before the application sees it.
        """,
)
register(
    "forwarded_allow_ips",
    "Server Mechanics",
    validate_string_to_list,
    _forwarded_default,
    cli=["--forwarded-allow-ips"],
    meta="STRING",
    default_doc="'127.0.0.1,::1'",
    desc="""\
        Front-end addresses trusted to set secure_scheme_headers (comma
        separated; ``*`` trusts everyone).  Default: the FORWARDED_ALLOW_IPS
        environment variable, else ``127.0.0.1,::1``.
        """,
)
register(
    "secure_scheme_headers",
    "Server Mechanics",
    validate_dict,
    {
        "X-FORWARDED-PROTOCOL": "ssl",
        "X-FORWARDED-PROTO": "https",
        "X-FORWARDED-SSL": "on",
    },
    desc="""\
        Headers, and the value each has, that mean the request came over HTTPS
        (wsgi.url_scheme ``https``) when sent by a trusted front end.  Headers
        that disagree give a 400.
        """,
)
register(
    "proxy_protocol",
    "Server Mechanics",
    validate_bool,
    False,
    cli=["--proxy-protocol"],
    action="store_true",
    desc="""\
        Accept a PROXY protocol header (v1 text or v2 binary) before the first
        request of a connection; REMOTE_ADDR and REMOTE_PORT then come from it.
        """,
)
register(
    "proxy_allow_ips",
    "Server Mechanics",
    validate_string_to_list,
    "127.0.0.1,::1",
    cli=["--proxy-allow-from"],
    meta="STRING",
    desc="""\
        Front-end addresses allowed to send a PROXY header (comma separated;
        ``*`` allows everyone).  Others get 403.
        """,
)

# Server Mechanics
register(
    "preload_app",
    "Server Mechanics",
    validate_bool,
    False,
    cli=["--preload"],
    action="store_true",
    desc="""\
        Load application code before the worker processes are forked.
        """,
)
register(
    "chdir",
    "Server Mechanics",
    validate_chdir,
    lambda environ: getcwd(),
    cli=["--chdir"],
    default_doc="'.'",
    desc="""\
        Change directory to the specified directory before loading apps.
        """,
)
register(
    "pythonpath",
    "Server Mechanics",
    validate_string,
    None,
    cli=["--pythonpath"],
    meta="STRING",
    desc="""\
        A comma-separated list of directories to add to the Python path.
        """,
)

# Logging
register(
    "accesslog",
    "Logging",
    validate_string,
    None,
    cli=["--access-logfile"],
    meta="FILE",
    desc="""\
        The Access log file to write to.

        ``'-'`` means log to stdout.
        """,
)
register(
    "access_log_format",
    "Logging",
    validate_string,
    '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"',
    cli=["--access-logformat"],
    meta="STRING",
    desc="""\
        The access log format.

        Atoms: h remote address, l ``'-'``, u user name (HTTP Basic auth),
        t date, r request line, m method, U path without query, q query string,
        H protocol, s status, B response length, b response length or ``'-'``,
        f referer, a user agent, T request time in seconds, M in milliseconds,
        D in microseconds, L in decimal seconds, p process ID, {header}i request
        header, {header}o response header, {variable}e environment variable.
        """,
)
register(
    "errorlog",
    "Logging",
    validate_string,
    "-",
    cli=["--error-logfile", "--log-file"],
    meta="FILE",
    desc="""\
        The Error log file to write to.

        ``'-'`` means log to stderr.
        """,
)
register(
    "loglevel",
    "Logging",
    validate_string,
    "info",
    cli=["--log-level"],
    meta="LEVEL",
    desc="""\
        The granularity of Error log outputs.

        One of debug, info, warning, error, critical.
        """,
)


# --- worker classes -------------------------------------------------------------

_SYNC_NAMES = frozenset(
    {"sync", "egg:gunicorn#sync", "gunicorn.workers.sync.SyncWorker"}
)
# gunicorn's worker classes that cunicorn does not have yet, by every spelling.
_LATER_NAMES = {
    "gthread": "gthread",
    "egg:gunicorn#gthread": "gthread",
    "gunicorn.workers.gthread.ThreadWorker": "gthread",
    "gevent": "gevent",
    "egg:gunicorn#gevent": "gevent",
    "gunicorn.workers.ggevent.GeventWorker": "gevent",
    "coroutine": "gevent",
    "eventlet": "eventlet",
    "egg:gunicorn#eventlet": "eventlet",
    "gunicorn.workers.geventlet.EventletWorker": "eventlet",
    "tornado": "tornado",
    "egg:gunicorn#tornado": "tornado",
    "gunicorn.workers.gtornado.TornadoWorker": "tornado",
}


class Config:
    """The settings' values.  ``cfg.NAME`` reads one; ``cfg.set(NAME, value)``
    validates and stores one (a validator's ValueError/TypeError propagates)."""

    def __init__(
        self, prog: str = "cunicorn", environ: Mapping[str, str] | None = None
    ) -> None:
        self.prog = prog
        self.environ = dict(os.environ if environ is None else environ)
        self.values: dict[str, Any] = {}
        for s in REGISTRY.values():
            self.values[s.name] = s.default_value(self.environ)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(f"No configuration setting for: {name}") from None

    def set(self, name: str, value: Any) -> None:
        if name not in REGISTRY:
            raise AttributeError(f"No configuration setting for: {name}")
        self.values[name] = REGISTRY[name].validator(value)

    def __str__(self) -> str:
        kmax = max(len(k) for k in self.values)
        lines = []
        for k in sorted(self.values):
            v = self.values[k]
            if callable(v):
                v = f"<{v.__qualname__}()>"
            lines.append(f"{k:{kmax}} = {v}")
        return "\n".join(lines)

    def parser(self) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(usage=USAGE, prog=self.prog)
        parser.add_argument(
            "-v",
            "--version",
            action="version",
            default=argparse.SUPPRESS,
            version="%(prog)s (version " + __version__ + ")",
            help="show program's version number and exit",
        )
        parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
        for s in sorted(REGISTRY.values(), key=lambda s: (s.section, s.order)):
            s.add_option(parser)
        return parser

    def cmd_args_from_env(self) -> list[list[str]]:
        """The argument lists of GUNICORN_CMD_ARGS and CUNICORN_CMD_ARGS that are
        set, lowest precedence first."""
        return [shlex.split(self.environ[k]) for k in CMD_ARGS_ENV if k in self.environ]

    def apply_args(self, args: argparse.Namespace) -> None:
        """Store every setting given in a parsed argument list."""
        for k, v in vars(args).items():
            if v is None or k == "args":
                continue
            self.set(k, v)

    @property
    def worker_class_str(self) -> str:
        """The worker class's short name, as ``Using worker:`` logs it."""
        uri = self.values["worker_class"]
        if not isinstance(uri, str):
            return uri.__name__
        if self.is_sync_uri(uri) and self.values["threads"] > 1:
            return "gthread"
        if self.is_sync_uri(uri):
            return "sync"
        return _LATER_NAMES.get(uri, uri)

    @staticmethod
    def is_sync_uri(uri: Any) -> bool:
        return isinstance(uri, str) and uri in _SYNC_NAMES

    def validate(self) -> None:
        """Check settings against each other once everything is loaded; raise
        ConfigError when the configuration cannot be served."""
        uri = self.values["worker_class"]
        if not isinstance(uri, str):
            raise ConfigError(
                f"worker class {uri!r}: cunicorn cannot run Python worker classes"
            )
        name = self.worker_class_str
        if name in ("gthread", "gevent"):
            if not worker_class_available(name):
                raise ConfigError(
                    f"worker class {name!r} is not available in this build of cunicorn"
                )
            return
        if name in ("eventlet", "tornado"):
            raise ConfigError(
                f"worker class {name!r} is not supported by cunicorn; use "
                "'sync', 'gthread' or 'gevent'"
            )
        if not self.is_sync_uri(uri):
            raise ConfigError(
                f"class uri {uri!r} invalid or not found: cunicorn has the "
                "'sync', 'gthread' and 'gevent' worker classes"
            )

    # Effective limits, clamped as gunicorn's parser clamps them.

    @property
    def effective_limit_request_line(self) -> int:
        """0 = unlimited; values of 8190 and above mean 8190."""
        return min(self.values["limit_request_line"], 8190)

    @property
    def effective_limit_request_fields(self) -> int:
        v = self.values["limit_request_fields"]
        return 32768 if v <= 0 or v > 32768 else v

    @property
    def effective_limit_request_field_size(self) -> int:
        v = self.values["limit_request_field_size"]
        return 8190 if v <= 0 else v


def worker_class_available(name: str) -> bool:
    """Whether the C extension has the worker loop for class ``name``."""
    try:
        from cunicorn import _cserver
    except ImportError:
        return False
    return hasattr(_cserver, f"run_worker_{name}")


def default_config_file() -> str | None:
    """``./gunicorn.conf.py`` when it exists, as gunicorn reads it."""
    path = os.path.join(os.path.abspath(os.getcwd()), "gunicorn.conf.py")
    return path if os.path.exists(path) else None


def settings_markdown() -> str:
    """docs/settings.md, generated from the registry (section by section)."""
    out = ["# Settings", ""]
    section = None
    for s in sorted(REGISTRY.values(), key=lambda s: (s.section, s.order)):
        if s.section != section:
            section = s.section
            out += [f"## {section}", ""]
        out += [f"### `{s.name}`", ""]
        if s.cli:
            flags = ", ".join(f"`{f} {s.meta}`" if s.meta else f"`{f}`" for f in s.cli)
            out += [f"**Command line:** {flags}", ""]
        out += [f"**Default:** `{s.default_doc}`", "", s.desc, ""]
    return "\n".join(out)
