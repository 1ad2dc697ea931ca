"""The settings registry: one ``Setting`` per gunicorn setting.

The registry drives the command line (argparse), config files and the generated
settings documentation.  Names, flags, defaults and validators are gunicorn's, so
a gunicorn deployment keeps its meaning.  Precedence, lowest first: defaults
(some read from the environment: PORT, WEB_CONCURRENCY) < config file <
``GUNICORN_CMD_ARGS`` < ``CUNICORN_CMD_ARGS`` < command line.
"""

from __future__ import annotations

import argparse
import copy
import grp
import importlib
import inspect
import ipaddress
import os
import pwd
import re
import shlex
import ssl
import sys
import textwrap
from collections.abc import Mapping
from typing import Any, Callable

from cunicorn import __version__
from cunicorn.errors import ConfigError
from cunicorn.sock import parse_address

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


def validate_string_to_addr_list(val: Any) -> list[str]:
    """Addresses and networks (``10.0.0.0/8``), or ``*``; a network with
    host bits set (``10.0.0.1/8``) is an error, as in gunicorn."""
    val = validate_string_to_list(val)
    for addr in val:
        if addr != "*":
            try:
                ipaddress.ip_network(addr)
            except ValueError as e:
                raise ValueError(
                    f"{addr!r} is not an IP address or network: {e}"
                ) from None
    return val


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


def validate_file_exists(val: Any) -> str | None:
    if val is None:
        return None
    if not os.path.exists(val):
        raise ValueError(f"File {val} does not exists.")
    return val


def validate_list_of_existing_files(val: Any) -> list[str]:
    return [validate_file_exists(v) for v in validate_list_string(val)]


def get_arity(f: Callable[..., Any]) -> int:
    """The number of positional parameters of ``f``, as gunicorn counts them."""
    return sum(
        1
        for p in inspect.signature(f).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    )


def validate_callable(arity: int) -> Callable[[Any], Any]:
    """A validator for a hook: a callable, or a dotted ``module.name`` string,
    taking ``arity`` positional arguments (-1: any)."""

    def _validate_callable(val: Any) -> Any:
        if isinstance(val, str):
            try:
                mod_name, obj_name = val.rsplit(".", 1)
            except ValueError:
                raise TypeError(
                    f"Value '{val}' is not import string. "
                    "Format: module[.submodules...].object"
                ) from None
            try:
                mod = importlib.import_module(mod_name)
                val = getattr(mod, obj_name)
            except ImportError as e:
                raise TypeError(str(e)) from None
            except AttributeError:
                raise TypeError(
                    f"Can not load '{obj_name}' from '{mod_name}'"
                ) from None
        if not callable(val):
            raise TypeError(f"Value is not callable: {val}")
        if arity != -1 and arity != get_arity(val):
            raise TypeError(f"Value must have an arity of: {arity}")
        return val

    return _validate_callable


def validate_post_request(val: Any) -> Callable[..., Any]:
    """post_request takes (worker, req, environ, resp); 2 or 3 arguments are
    accepted and wrapped, as gunicorn does."""
    val = validate_callable(-1)(val)
    largs = get_arity(val)
    if largs == 4:
        return val
    if largs == 3:
        return lambda worker, req, env, _r: val(worker, req, env)
    if largs == 2:
        return lambda worker, req, _e, _r: val(worker, req)
    raise TypeError("Value must have an arity of: 4")


def _validate_id(
    val: Any, current: Callable[[], int], lookup: Callable[[str], int], kind: str
) -> int:
    """A user or group id: ``current()`` for None, an int or digits as is, else
    the name through ``lookup`` (ConfigError "No such KIND" when unknown)."""
    if val is None:
        return current()
    if isinstance(val, int):
        return val
    if val.isdigit():
        return int(val)
    try:
        return lookup(val)
    except KeyError:
        raise ConfigError(f"No such {kind}: '{val}'") from None


def validate_user(val: Any) -> int:
    return _validate_id(val, os.geteuid, lambda n: pwd.getpwnam(n).pw_uid, "user")


def validate_group(val: Any) -> int:
    return _validate_id(val, os.getegid, lambda n: grp.getgrnam(n).gr_gid, "group")


def auto_int(text: str) -> int:
    """``int(text, 0)`` that also reads a leading 0 as octal (``022``)."""
    if re.match(r"0(\d)", text):
        text = text.replace("0", "0o", 1)
    return int(text, 0)


def validate_statsd_address(val: Any) -> Any:
    val = validate_string(val)
    if val is None:
        return None
    # gunicorn keeps reading unix:PORT as a host named "unix"
    m = re.match(r"^unix:(\d+)$", val)
    if m:
        return ("unix", int(m.group(1)))
    try:
        return parse_address(val, default_port="8125")
    except RuntimeError:
        raise TypeError("Value must be one of ('host:port', 'unix://PATH')") from None


RELOADER_ENGINES = ("auto", "poll", "inotify")


def validate_reload_engine(val: Any) -> str:
    if val not in RELOADER_ENGINES:
        raise ConfigError(f"Invalid reload_engine: {val!r}")
    return val


def validate_ssl_version(val: Any) -> Any:
    if val != ssl.PROTOCOL_TLS_SERVER:
        sys.stderr.write(
            "Warning: option `ssl_version` is deprecated and it is ignored. "
            "Use ssl_context instead.\n"
        )
    return val


def validate_choice(*choices: str) -> Callable[[Any], str]:
    def _validate_choice(val: Any) -> str:
        val = validate_string(val)
        if val not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}; not {val!r}")
        return val

    return _validate_choice


def validate_header_map(val: Any) -> str | None:
    if val is None:
        return None
    if not isinstance(val, str):
        raise TypeError(f"Invalid type for casting: {val}")
    v = val.lower().strip()
    if v not in ("drop", "refuse", "dangerous"):
        raise ValueError(f"Invalid header map behaviour: {val}")
    return v


def validate_anything(val: Any) -> Any:
    """For settings of features out of cunicorn's scope: kept as given."""
    return val


# --- the registry ---------------------------------------------------------------


class EnvDefault:
    """A default computed from the environment mapping: ``fn(environ)``."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Mapping[str, str]], Any]) -> None:
        self.fn = fn


class Setting:
    """One setting: its spelling everywhere, its validator and its default.

    ``default`` may be an ``EnvDefault``, for defaults that gunicorn reads
    from the environment (PORT, WEB_CONCURRENCY); ``default_doc`` is then what
    the documentation and ``--help`` show.  A hook's default is its no-op
    function.
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
        value = self.default
        if isinstance(value, EnvDefault):
            value = value.fn(environ)
        elif isinstance(value, (list, dict)):
            value = copy.deepcopy(value)  # never share a mutable default
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


def _forwarded_default(environ: Mapping[str, str]) -> str:
    return environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")


# --- the settings, by gunicorn's sections -----------------------------------------

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

        Only has an effect on the command line (or in GUNICORN_CMD_ARGS).  By
        default ``gunicorn.conf.py`` in the directory cunicorn runs in is read
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

        Used when no APP_MODULE is given on the command line.
        """,
)

# Debugging
register(
    "reload",
    "Debugging",
    validate_bool,
    False,
    cli=["--reload"],
    action="store_true",
    desc="""\
        Restart workers when code changes.

        Workers are restarted when a module they loaded, or one of
        *reload_extra_files*, changes.  A syntax error in the application then
        answers 500 with the traceback until it is fixed.  Incompatible with
        *preload_app*.  inotify is used when the kernel has it (no extra
        package), else polling.
        """,
)
register(
    "reload_engine",
    "Debugging",
    validate_reload_engine,
    "auto",
    cli=["--reload-engine"],
    meta="STRING",
    desc="""\
        The implementation that should be used to power *reload*.

        ``auto``, ``poll`` or ``inotify``.
        """,
)
register(
    "reload_extra_files",
    "Debugging",
    validate_list_of_existing_files,
    [],
    cli=["--reload-extra-file"],
    meta="FILES",
    action="append",
    desc="""\
        Extends *reload* to also watch and reload on additional files
        (templates, configurations, specifications, ...).
        """,
)
register(
    "spew",
    "Debugging",
    validate_bool,
    False,
    cli=["--spew"],
    action="store_true",
    desc="""\
        Install a trace function that spews every line executed by the server.

        This is the nuclear option.
        """,
)
register(
    "check_config",
    "Debugging",
    validate_bool,
    False,
    cli=["--check-config"],
    action="store_true",
    desc="""\
        Check the configuration and exit.

        The exit status is 0 if the configuration is correct (the app loads),
        and 1 if the configuration is incorrect.
        """,
)
register(
    "print_config",
    "Debugging",
    validate_bool,
    False,
    cli=["--print-config"],
    action="store_true",
    desc="""\
        Print the configuration settings as fully resolved.

        Implies *check_config*.
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

        ``'-'`` means log to stdout.  Unset: no access log (and no access-log
        line is built).
        """,
)
register(
    "disable_redirect_access_to_syslog",
    "Logging",
    validate_bool,
    False,
    cli=["--disable-redirect-access-to-syslog"],
    action="store_true",
    desc="""\
        Disable redirect access logs to syslog.
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

        Use lowercase for header and environment variable names, and put
        ``{...}x`` names inside ``%(...)s``, e.g. ``%({x-forwarded-for}i)s``.
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
register(
    "capture_output",
    "Logging",
    validate_bool,
    False,
    cli=["--capture-output"],
    action="store_true",
    desc="""\
        Redirect stdout/stderr to specified file in *errorlog*.
        """,
)
register(
    "logger_class",
    "Logging",
    validate_class,
    "gunicorn.glogging.Logger",
    cli=["--logger-class"],
    meta="STRING",
    desc="""\
        The logger you want to use to log events.

        ``gunicorn.glogging.Logger`` (also ``simple``,
        ``cunicorn.glogging.Logger``) is cunicorn's logger, which provides error
        and access logging as gunicorn's does.  A Python path to another class
        that quacks like it may be given.
        """,
)
register(
    "logconfig",
    "Logging",
    validate_string,
    None,
    cli=["--log-config"],
    meta="FILE",
    desc="""\
        The log config file to use.

        The standard Python logging module's configuration file format.
        """,
)
register(
    "logconfig_dict",
    "Logging",
    validate_dict,
    {},
    desc="""\
        The log config dictionary to use (``logging.config.dictConfig`` format).

        Takes precedence over *logconfig* and *logconfig_json*.  It is merged
        over the default configuration section by section (formatters,
        handlers, loggers, root), so a dictionary that defines only its own
        handlers and loggers keeps the default root logger.
        """,
)
register(
    "logconfig_json",
    "Logging",
    validate_string,
    None,
    cli=["--log-config-json"],
    meta="FILE",
    desc="""\
        The log config to read config from a JSON file.

        Same format as *logconfig_dict*.
        """,
)
register(
    "syslog_addr",
    "Logging",
    validate_string,
    "udp://localhost:514",
    cli=["--log-syslog-to"],
    meta="SYSLOG_ADDR",
    desc="""\
        Address to send syslog messages.

        ``unix://PATH#TYPE`` (TYPE ``stream`` or ``dgram``; ``stream`` is the
        default), ``udp://HOST:PORT`` or ``tcp://HOST:PORT``.
        """,
)
register(
    "syslog",
    "Logging",
    validate_bool,
    False,
    cli=["--log-syslog"],
    action="store_true",
    desc="""\
        Send logs to syslog.

        Access logs go there too unless *disable_redirect_access_to_syslog*.
        """,
)
register(
    "syslog_prefix",
    "Logging",
    validate_string,
    None,
    cli=["--log-syslog-prefix"],
    meta="SYSLOG_PREFIX",
    desc="""\
        Makes cunicorn use the parameter as program-name in the syslog entries.

        All entries will be prefixed by ``gunicorn.<prefix>``.  By default the
        program name is the name of the process.
        """,
)
register(
    "syslog_facility",
    "Logging",
    validate_string,
    "user",
    cli=["--log-syslog-facility"],
    meta="SYSLOG_FACILITY",
    desc="""\
        Syslog facility name.
        """,
)
register(
    "enable_stdio_inheritance",
    "Logging",
    validate_bool,
    False,
    cli=["-R", "--enable-stdio-inheritance"],
    action="store_true",
    desc="""\
        Enable stdio inheritance.

        Enable inheritance for stdio file descriptors in daemon mode.
        """,
)
register(
    "statsd_host",
    "Logging",
    validate_statsd_address,
    None,
    cli=["--statsd-host"],
    meta="STATSD_ADDR",
    desc="""\
        The address of the StatsD server to log to.

        ``HOST:PORT`` (UDP) or ``unix://PATH`` (a datagram socket).
        """,
)
register(
    "dogstatsd_tags",
    "Logging",
    validate_string,
    "",
    cli=["--dogstatsd-tags"],
    meta="DOGSTATSD_TAGS",
    desc="""\
        A comma-delimited list of datadog statsd (dogstatsd) tags to append to
        statsd metrics.
        """,
)
register(
    "statsd_prefix",
    "Logging",
    validate_string,
    "",
    cli=["--statsd-prefix"],
    meta="STATSD_PREFIX",
    desc="""\
        Prefix to use when emitting statsd metrics (a trailing ``.`` is added,
        if not provided).
        """,
)
register(
    "enable_backlog_metric",
    "Logging",
    validate_bool,
    False,
    cli=["--enable-backlog-metric"],
    action="store_true",
    desc="""\
        Enable socket backlog metric (only supported on Linux).

        When enabled, the master sends the listen backlog to statsd as a gauge.
        """,
)

# Process Naming
register(
    "proc_name",
    "Process Naming",
    validate_string,
    None,
    cli=["-n", "--name"],
    meta="STRING",
    desc="""\
        A base to use with setproctitle for process naming.

        The master's title reads ``cunicorn: master [NAME]`` and each
        worker's ``cunicorn: worker [NAME]`` in ps and top (``NAME.2`` for
        a master started by USR2, until its parent exits).  This requires the
        setproctitle module: ``pip install 'cunicorn[setproctitle]'``.

        If not set, the application's URI (``APP_MODULE``) is used.
        """,
)
register(
    "default_proc_name",
    "Process Naming",
    validate_string,
    "gunicorn",
    desc="""\
        Internal setting that is adjusted for each type of application.
        """,
)

# SSL
register(
    "keyfile",
    "SSL",
    validate_string,
    None,
    cli=["--keyfile"],
    meta="FILE",
    desc="""\
        SSL key file.

        cunicorn does not serve TLS yet: setting a key or certificate file is
        an error rather than a plain-HTTP server.
        """,
)
register(
    "certfile",
    "SSL",
    validate_string,
    None,
    cli=["--certfile"],
    meta="FILE",
    desc="""\
        SSL certificate file.

        cunicorn does not serve TLS yet: setting it is an error.
        """,
)
register(
    "ssl_version",
    "SSL",
    validate_ssl_version,
    ssl.PROTOCOL_TLS_SERVER,
    cli=["--ssl-version"],
    type=int,
    default_doc="ssl.PROTOCOL_TLS_SERVER",
    desc="""\
        SSL version to use (deprecated in gunicorn and ignored; use ssl_context).
        """,
)
register(
    "cert_reqs",
    "SSL",
    validate_pos_int,
    int(ssl.CERT_NONE),
    cli=["--cert-reqs"],
    type=int,
    desc="""\
        Whether client certificate is required (0 none, 1 optional, 2 required).
        """,
)
register(
    "ca_certs",
    "SSL",
    validate_string,
    None,
    cli=["--ca-certs"],
    meta="FILE",
    desc="""\
        CA certificates file.
        """,
)
register(
    "suppress_ragged_eofs",
    "SSL",
    validate_bool,
    True,
    cli=["--suppress-ragged-eofs"],
    action="store_true",
    desc="""\
        Suppress ragged EOFs (see stdlib ssl module's).
        """,
)
register(
    "do_handshake_on_connect",
    "SSL",
    validate_bool,
    False,
    cli=["--do-handshake-on-connect"],
    action="store_true",
    desc="""\
        Whether to perform SSL handshake on socket connect.
        """,
)
register(
    "ciphers",
    "SSL",
    validate_string,
    None,
    cli=["--ciphers"],
    desc="""\
        SSL Cipher suite to use, in the format of an OpenSSL cipher list.
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


# Server Hooks: gunicorn's default hooks, which do nothing (pre_request logs).
def on_starting(server):
    pass


def on_reload(server):
    pass


def when_ready(server):
    pass


def pre_fork(server, worker):
    pass


def post_fork(server, worker):
    pass


def post_worker_init(worker):
    pass


def worker_int(worker):
    pass


def worker_abort(worker):
    pass


def pre_exec(server):
    pass


def pre_request(worker, req):
    worker.log.debug("%s %s", req.method, req.path)


def post_request(worker, req, environ, resp):
    pass


def child_exit(server, worker):
    pass


def worker_exit(server, worker):
    pass


def nworkers_changed(server, new_value, old_value):
    pass


def on_exit(server):
    pass


def ssl_context(config, default_ssl_context_factory):
    return default_ssl_context_factory()


_HOOKS = [
    (
        on_starting,
        1,
        "Called just before the master process is initialized.",
        "The callable needs to accept a single instance variable for the Arbiter.",
    ),
    (
        on_reload,
        1,
        "Called to recycle workers during a reload via SIGHUP.",
        "The callable needs to accept a single instance variable for the Arbiter.",
    ),
    (
        when_ready,
        1,
        "Called just after the server is started.",
        "The callable needs to accept a single instance variable for the Arbiter.",
    ),
    (
        pre_fork,
        2,
        "Called just before a worker is forked.",
        "The callable needs to accept two instance variables for the Arbiter and\n"
        "new Worker.",
    ),
    (
        post_fork,
        2,
        "Called just after a worker has been forked.",
        "The callable needs to accept two instance variables for the Arbiter and\n"
        "new Worker.",
    ),
    (
        post_worker_init,
        1,
        "Called just after a worker has initialized the application.",
        "The callable needs to accept one instance variable for the initialized\n"
        "Worker.",
    ),
    (
        worker_int,
        1,
        "Called just after a worker exited on SIGINT or SIGQUIT.",
        "The callable needs to accept one instance variable for the initialized\n"
        "Worker.",
    ),
    (
        worker_abort,
        1,
        "Called when a worker received the SIGABRT signal.",
        "This call generally happens on timeout.  The callable needs to accept\n"
        "one instance variable for the initialized Worker.",
    ),
    (
        pre_exec,
        1,
        "Called just before a new master process is forked.",
        "The callable needs to accept a single instance variable for the Arbiter.",
    ),
    (
        pre_request,
        2,
        "Called just before a worker processes the request.",
        "The callable needs to accept two instance variables for the Worker and\n"
        "the Request.",
    ),
    (
        post_request,
        None,
        "Called after a worker processes the request.",
        "The callable needs to accept the Worker, the Request, the environ and\n"
        "the Response (2 or 3 arguments are accepted too).",
    ),
    (
        child_exit,
        2,
        "Called just after a worker has been exited, in the master process.",
        "The callable needs to accept two instance variables for the Arbiter and\n"
        "the just-exited Worker.",
    ),
    (
        worker_exit,
        2,
        "Called just after a worker has been exited, in the worker process.",
        "The callable needs to accept two instance variables for the Arbiter and\n"
        "the just-exited Worker.",
    ),
    (
        nworkers_changed,
        3,
        "Called just after *num_workers* has been changed.",
        "The callable needs to accept an instance variable of the Arbiter and\n"
        "two integers of number of workers after and before change.  If the\n"
        "number of workers is set for the first time, *old_value* is ``None``.",
    ),
    (
        on_exit,
        1,
        "Called just before exiting cunicorn.",
        "The callable needs to accept a single instance variable for the Arbiter.",
    ),
    (
        ssl_context,
        2,
        "Called when SSLContext is needed.",
        "The callable needs to accept the Config and a factory of the default\n"
        "SSLContext, and return an SSLContext (TLS is not served yet).",
    ),
]
for _fn, _arity, _short, _more in _HOOKS:
    register(
        _fn.__name__,
        "Server Hooks",
        validate_post_request if _arity is None else validate_callable(_arity),
        _fn,
        default_doc=inspect.getsource(_fn).strip(),
        desc=f"{_short}\n\n{_more}",
    )
del _fn, _arity, _short, _more

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
    "sendfile",
    "Server Mechanics",
    validate_bool,
    None,
    cli=["--no-sendfile"],
    action="store_const",
    const=False,
    desc="""\
        Disables the use of ``sendfile()``.

        If not set, the value of the ``SENDFILE`` environment variable is used
        to enable or disable its usage.
        """,
)
register(
    "reuse_port",
    "Server Mechanics",
    validate_bool,
    False,
    cli=["--reuse-port"],
    action="store_true",
    desc="""\
        Set the ``SO_REUSEPORT`` flag on the listening socket.

        Another process that sets it too (a second cunicorn with
        ``--reuse-port``) may then bind the same address, and the kernel
        spreads new connections among the sockets.
        """,
)
register(
    "chdir",
    "Server Mechanics",
    validate_chdir,
    EnvDefault(lambda environ: getcwd()),
    cli=["--chdir"],
    default_doc="'.'",
    desc="""\
        Change directory to the specified directory before loading apps.
        """,
)
register(
    "daemon",
    "Server Mechanics",
    validate_bool,
    False,
    cli=["-D", "--daemon"],
    action="store_true",
    desc="""\
        Daemonize the cunicorn process.

        Detaches the server from the controlling terminal and enters the
        background.
        """,
)
register(
    "raw_env",
    "Server Mechanics",
    validate_list_string,
    [],
    cli=["-e", "--env"],
    meta="ENV",
    action="append",
    desc="""\
        Set environment variables in the execution environment.

        A list of strings in the ``key=value`` format, e.g. ``--env FOO=1`` or
        ``raw_env = ["FOO=1"]``.
        """,
)
register(
    "pidfile",
    "Server Mechanics",
    validate_string,
    None,
    cli=["-p", "--pid"],
    meta="FILE",
    desc="""\
        A filename to use for the PID file.

        If not set, no PID file will be written.
        """,
)
register(
    "worker_tmp_dir",
    "Server Mechanics",
    validate_string,
    None,
    cli=["--worker-tmp-dir"],
    meta="DIR",
    desc="""\
        A directory to use for the worker heartbeat temporary file.

        Accepted for compatibility: cunicorn's heartbeats live in shared memory
        and need no file, so this has no effect.
        """,
)
register(
    "user",
    "Server Mechanics",
    validate_user,
    EnvDefault(lambda environ: os.geteuid()),
    cli=["-u", "--user"],
    meta="USER",
    default_doc="os.geteuid()",
    desc="""\
        Switch worker processes to run as this user.

        A valid user id (as an integer) or the name of a user that can be
        retrieved with a call to ``pwd.getpwnam(value)`` or ``None`` to not
        change the worker process user.
        """,
)
register(
    "group",
    "Server Mechanics",
    validate_group,
    EnvDefault(lambda environ: os.getegid()),
    cli=["-g", "--group"],
    meta="GROUP",
    default_doc="os.getegid()",
    desc="""\
        Switch worker process to run as this group.

        A valid group id (as an integer) or the name of a group that can be
        retrieved with a call to ``grp.getgrnam(value)`` or ``None`` to not
        change the worker processes group.
        """,
)
register(
    "umask",
    "Server Mechanics",
    validate_pos_int,
    0,
    cli=["-m", "--umask"],
    meta="INT",
    type=auto_int,
    desc="""\
        A bit mask for the file mode on files written by cunicorn.

        Note that this affects unix socket permissions.  A value for
        ``os.umask(mode)`` or a string compatible with ``int(value, 0)``
        (``0``, ``0xFF``, ``0022`` are valid).
        """,
)
register(
    "initgroups",
    "Server Mechanics",
    validate_bool,
    False,
    cli=["--initgroups"],
    action="store_true",
    desc="""\
        If true, set the worker process's group access list with all of the
        groups of which the specified username is a member, plus the specified
        group id.
        """,
)
register(
    "tmp_upload_dir",
    "Server Mechanics",
    validate_string,
    None,
    meta="DIR",
    desc="""\
        Directory to store temporary request data as they are read.

        Accepted for compatibility; gunicorn does not use it either: request
        bodies are read from the socket as the application reads them.
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
    "forwarded_allow_ips",
    "Server Mechanics",
    validate_string_to_addr_list,
    EnvDefault(_forwarded_default),
    cli=["--forwarded-allow-ips"],
    meta="STRING",
    default_doc="'127.0.0.1,::1'",
    desc="""\
        Front-end addresses or networks (``10.0.0.0/8``) trusted to set
        secure_scheme_headers and forwarder_headers (comma separated; ``*``
        trusts everyone).  A peer on a unix socket is trusted, as in
        gunicorn.  Default: the FORWARDED_ALLOW_IPS environment variable,
        else ``127.0.0.1,::1``.
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
register(
    "paste",
    "Server Mechanics",
    validate_string,
    None,
    cli=["--paste", "--paster"],
    meta="STRING",
    desc="""\
        Load a PasteDeploy config file (not supported by cunicorn: an error).
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
    validate_string_to_addr_list,
    "127.0.0.1,::1",
    cli=["--proxy-allow-from"],
    meta="STRING",
    desc="""\
        Front-end addresses or networks (``10.0.0.0/8``) allowed to send a
        PROXY header (comma separated; ``*`` allows everyone; a peer on a
        unix socket is allowed).  Others get 403.
        """,
)
register(
    "protocol",
    "Server Mechanics",
    validate_choice("http", "uwsgi"),
    "http",
    cli=["--protocol"],
    meta="STRING",
    desc="""\
        The protocol for incoming connections: ``http`` (HTTP/1.x).

        gunicorn's ``uwsgi`` binary protocol is not supported by cunicorn.
        """,
)
register(
    "uwsgi_allow_ips",
    "Server Mechanics",
    validate_string_to_list,
    "127.0.0.1,::1",
    cli=["--uwsgi-allow-from"],
    meta="STRING",
    desc="""\
        IPs allowed to send uWSGI protocol requests (comma separated).
        """,
)
register(
    "raw_paste_global_conf",
    "Server Mechanics",
    validate_list_string,
    [],
    cli=["--paste-global"],
    meta="CONF",
    action="append",
    desc="""\
        Set a PasteDeploy global config variable in ``key=value`` form.
        """,
)
register(
    "permit_obsolete_folding",
    "Server Mechanics",
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
    "Server Mechanics",
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
    "Server Mechanics",
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
    "permit_unconventional_http_version",
    "Server Mechanics",
    validate_bool,
    False,
    cli=["--permit-unconventional-http-version"],
    action="store_true",
    desc="""\
        Permit HTTP versions other than 1.0 and 1.1 in the request line.
        """,
)
register(
    "casefold_http_method",
    "Server Mechanics",
    validate_bool,
    False,
    cli=["--casefold-http-method"],
    action="store_true",
    desc="""\
        Upper-case the method before the application sees it.
        """,
)
register(
    "forwarder_headers",
    "Server Mechanics",
    validate_string_to_list,
    "SCRIPT_NAME,PATH_INFO",
    cli=["--forwarder-headers"],
    desc="""\
        Upper-case header names that a trusted front end (forwarded_allow_ips)
        sets, to be used in the WSGI environment (SCRIPT_NAME, PATH_INFO,
        REMOTE_USER).

        These names contain underscores: from a trusted peer they reach the
        environ (``HTTP_SCRIPT_NAME``, ...) whatever *header_map* says; from
        another they are dropped or refused as *header_map* says.  A
        ``SCRIPT_NAME`` header sets ``SCRIPT_NAME``, and ``PATH_INFO`` is what
        follows it in the path (a path that does not start with it is a 500,
        "Configuration problem").  ``*`` names every header.
        """,
)
register(
    "header_map",
    "Server Mechanics",
    validate_header_map,
    "drop",
    cli=["--header-map"],
    desc="""\
        What to do with header names containing underscores: ``drop`` them
        (they could be mistaken for the same name with dashes), ``refuse`` the
        request with 400, or pass them on (``dangerous``).
        """,
)

# Server Socket
register(
    "bind",
    "Server Socket",
    validate_list_string,
    EnvDefault(_bind_default),
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
    EnvDefault(_workers_default),
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

        ``sync``, ``gthread`` and ``gevent`` (also ``coroutine``), or gunicorn's
        dotted names for them (``gunicorn.workers.sync.SyncWorker``,
        ``gunicorn.workers.gthread.ThreadWorker``,
        ``gunicorn.workers.ggevent.GeventWorker``).  ``eventlet``, ``tornado``
        and ``asgi`` are not supported.
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
        gunicorn.  No more than this many requests run in the app at once,
        except that with more than 1, while every thread holds a request the
        worker has learned is long, one more thread (``cunicorn-fast``)
        serves requests it has learned are short (under 0.2 ms of CPU), so a
        health check does not wait for a model call.
        """,
)
register(
    "worker_connections",
    "Worker Processes",
    validate_pos_int,
    1000,
    cli=["--worker-connections"],
    meta="INT",
    type=int,
    desc="""\
        The maximum number of simultaneous clients.

        This setting only affects the ``gthread`` and ``gevent`` worker types.
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

# Out of scope: gunicorn's ASGI, HTTP/2, dirty workers and control socket.
# Registered so that configs and command lines using them parse, and a
# non-default value gets a warning that says cunicorn does not do this.
_OUT_OF_SCOPE = [
    # name, section, default, cli, meta, action, what
    ("asgi_loop", "Worker Processes", "auto", ["--asgi-loop"], "STRING", None, "ASGI"),
    (
        "asgi_lifespan",
        "Worker Processes",
        "auto",
        ["--asgi-lifespan"],
        "STRING",
        None,
        "ASGI",
    ),
    (
        "asgi_disconnect_grace_period",
        "Worker Processes",
        3,
        ["--asgi-disconnect-grace-period"],
        "INT",
        None,
        "ASGI",
    ),
    (
        "websocket_max_message_size",
        "Worker Processes",
        16777216,
        ["--websocket-max-message-size"],
        "INT",
        None,
        "ASGI",
    ),
    ("root_path", "Server Mechanics", "", ["--root-path"], "STRING", None, "ASGI"),
    (
        "http_parser",
        "Server Mechanics",
        "auto",
        ["--http-parser"],
        "STRING",
        None,
        "ASGI",
    ),
    ("http_protocols", "HTTP/2", "h1", ["--http-protocols"], "STRING", None, "HTTP/2"),
    (
        "http2_cleartext",
        "HTTP/2",
        False,
        ["--http2-cleartext"],
        None,
        "store_true",
        "HTTP/2",
    ),
    (
        "http2_max_concurrent_streams",
        "HTTP/2",
        100,
        ["--http2-max-concurrent-streams"],
        "INT",
        None,
        "HTTP/2",
    ),
    (
        "http2_initial_window_size",
        "HTTP/2",
        65535,
        ["--http2-initial-window-size"],
        "INT",
        None,
        "HTTP/2",
    ),
    (
        "http2_max_frame_size",
        "HTTP/2",
        16384,
        ["--http2-max-frame-size"],
        "INT",
        None,
        "HTTP/2",
    ),
    (
        "http2_max_header_list_size",
        "HTTP/2",
        65536,
        ["--http2-max-header-list-size"],
        "INT",
        None,
        "HTTP/2",
    ),
    (
        "dirty_apps",
        "Dirty Arbiter",
        [],
        ["--dirty-app"],
        "STRING",
        "append",
        "dirty workers",
    ),
    (
        "dirty_workers",
        "Dirty Arbiter",
        0,
        ["--dirty-workers"],
        "INT",
        None,
        "dirty workers",
    ),
    (
        "dirty_timeout",
        "Dirty Arbiter",
        300,
        ["--dirty-timeout"],
        "INT",
        None,
        "dirty workers",
    ),
    (
        "dirty_threads",
        "Dirty Arbiter",
        1,
        ["--dirty-threads"],
        "INT",
        None,
        "dirty workers",
    ),
    (
        "dirty_graceful_timeout",
        "Dirty Arbiter",
        30,
        ["--dirty-graceful-timeout"],
        "INT",
        None,
        "dirty workers",
    ),
    (
        "control_socket",
        "Control",
        None,
        ["--control-socket"],
        "PATH",
        None,
        "the control socket",
    ),
    (
        "control_socket_mode",
        "Control",
        0o600,
        ["--control-socket-mode"],
        "INT",
        None,
        "the control socket",
    ),
    (
        "control_socket_disable",
        "Control",
        False,
        ["--no-control-socket"],
        None,
        "store_true",
        "the control socket",
    ),
]
OUT_OF_SCOPE: dict[str, str] = {}
for _name, _sec, _default, _cli, _meta, _action, _what in _OUT_OF_SCOPE:
    register(
        _name,
        _sec,
        validate_anything,
        _default,
        cli=_cli,
        meta=_meta,
        action=_action,
        type=auto_int if _meta == "INT" else None,
        desc=f"gunicorn's {_what} setting: out of cunicorn's scope.\n\n"
        f"cunicorn is a WSGI server for HTTP/1.x; {_what} is not provided. "
        "The setting is accepted and a value other than the default gets a "
        "warning.",
    )
    OUT_OF_SCOPE[_name] = _what
for _hook in (
    "on_dirty_starting",
    "dirty_post_fork",
    "dirty_worker_init",
    "dirty_worker_exit",
):
    register(
        _hook,
        "Dirty Arbiter",
        validate_anything,
        None,
        desc="gunicorn's dirty-worker hook: out of cunicorn's scope.\n\n"
        "Accepted; setting it gets a warning.",
    )
    OUT_OF_SCOPE[_hook] = "dirty workers"
del _name, _sec, _default, _cli, _meta, _action, _what, _hook

# gunicorn settings that cunicorn accepts and validates but does not act on
# yet: a value other than the default gets a warning naming the setting.
# Remove a name once the feature works.
NOT_IMPLEMENTED: dict[str, str] = {
    "spew": "no line tracing",
    "enable_backlog_metric": "no backlog gauge",
    "permit_unconventional_http_version": "versions other than 1.0/1.1 are refused",
    "ssl_version": "TLS is not served",
    "cert_reqs": "TLS is not served",
    "ca_certs": "TLS is not served",
    "suppress_ragged_eofs": "TLS is not served",
    "do_handshake_on_connect": "TLS is not served",
    "ciphers": "TLS is not served",
    "ssl_context": "TLS is not served",
    "uwsgi_allow_ips": "the uwsgi protocol is not served",
    "raw_paste_global_conf": "PasteDeploy is not supported",
    # master mechanics
}

# Settings that gunicorn has removed but old config files still set: a config
# file naming one gets a warning, not a failure (other unknown names are
# ignored silently, as gunicorn ignores them: they are the file's own variables).
DROPPED_SETTINGS: dict[str, str] = {
    "debug": "removed in gunicorn 19.0; use --reload and --log-level debug",
    "x_forwarded_for_header": "removed in gunicorn 19.0; use forwarded_allow_ips "
    "and %({x-forwarded-for}i)s in access_log_format",
    "django_settings": "removed in gunicorn 19.0; use raw_env "
    "DJANGO_SETTINGS_MODULE=...",
    "keepalive_timeout": "not a gunicorn setting; use keepalive",
    "logfile": "removed in gunicorn 19.0; use errorlog",
    "access_logfile": "not a gunicorn setting; use accesslog",
    "error_logfile": "not a gunicorn setting; use errorlog",
    "worker_tmp_file": "not a gunicorn setting",
    "workers_class": "not a gunicorn setting; use worker_class",
    "ssl_certfile": "not a gunicorn setting; use certfile",
    "ssl_keyfile": "not a gunicorn setting; use keyfile",
    "secure_scheme_header": "not a gunicorn setting; use secure_scheme_headers",
    "limit_request_field": "not a gunicorn setting",
}


# --- worker classes -------------------------------------------------------------

_SYNC_NAMES = frozenset(
    {"sync", "egg:gunicorn#sync", "gunicorn.workers.sync.SyncWorker"}
)
# gunicorn's other worker classes by every spelling, mapped to their short
# names: gthread and gevent are served; validate() refuses the others.
_OTHER_WORKER_NAMES = {
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
    "asgi": "asgi",
    "egg:gunicorn#asgi": "asgi",
    "gunicorn.workers.gasgi.ASGIWorker": "asgi",
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
            try:
                self.values[s.name] = s.default_value(self.environ)
            except (ValueError, TypeError) as e:  # PORT=x, WEB_CONCURRENCY=x, ...
                raise ValueError(
                    f"Invalid value for {s.name} (its default comes from the "
                    f"environment): {e}"
                ) from None

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
        return _OTHER_WORKER_NAMES.get(uri, uri)

    @staticmethod
    def is_sync_uri(uri: Any) -> bool:
        return isinstance(uri, str) and uri in _SYNC_NAMES

    def validate(self) -> None:
        """Check settings against each other once everything is loaded; raise
        ConfigError when the configuration cannot be served."""
        if self.is_ssl:
            raise ConfigError(
                "TLS is not supported yet by cunicorn (certfile/keyfile are "
                "set): terminate TLS in front of it (nginx, haproxy, a load "
                "balancer) and bind plain HTTP"
            )
        if self.values["paste"]:
            raise ConfigError("PasteDeploy (--paste) is not supported by cunicorn")
        if self.values["protocol"] != "http":
            raise ConfigError(
                f"protocol {self.values['protocol']!r} is not supported by "
                "cunicorn: it serves HTTP/1.x only"
            )
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
            if name == "gevent":
                from cunicorn import ggevent

                why = ggevent.missing()
                if why is not None:
                    raise ConfigError(why)
            return
        if name in ("eventlet", "tornado"):
            raise ConfigError(
                f"worker class {name!r} is not supported by cunicorn; use "
                "'sync', 'gthread' or 'gevent'"
            )
        if name == "asgi" or "uvicorn" in uri.lower():
            raise ConfigError(
                f"worker class {uri!r}: ASGI is out of cunicorn's scope "
                "(a WSGI server); use 'sync', 'gthread' or 'gevent'"
            )
        if not self.is_sync_uri(uri):
            raise ConfigError(
                f"class uri {uri!r} invalid or not found: cunicorn has the "
                "'sync', 'gthread' and 'gevent' worker classes"
            )

    def changed(self, name: str) -> bool:
        """Whether setting ``name`` differs from its default."""
        return self.values[name] != REGISTRY[name].default_value(self.environ)

    def warnings(self) -> list[str]:
        """One line per setting that is set but that cunicorn does not act on
        (not implemented yet, or out of its scope)."""
        out = []
        for name, why in NOT_IMPLEMENTED.items():
            if self.changed(name):
                out.append(
                    f"setting {name!r} is not implemented by cunicorn yet ({why}); "
                    "ignored"
                )
        for name, what in OUT_OF_SCOPE.items():
            if self.changed(name):
                out.append(
                    f"setting {name!r} is out of cunicorn's scope ({what} is not "
                    "provided); ignored"
                )
        if self.values["reload"] and self.values["preload_app"]:
            out.append("reload has no effect with preload_app, as in gunicorn")
        return out

    # gunicorn's derived values

    @property
    def proc_name(self) -> str:
        return self.values["proc_name"] or self.values["default_proc_name"]

    @property
    def uid(self) -> int:
        return self.values["user"]

    @property
    def gid(self) -> int:
        return self.values["group"]

    @property
    def env(self) -> dict[str, str]:
        """raw_env as a dict (RuntimeError for an entry without ``=``)."""
        env = {}
        for e in self.values["raw_env"] or ():
            k, sep, v = e.partition("=")
            if not sep:
                raise RuntimeError(f"environment setting {e!r} invalid")
            env[k] = v
        return env

    @property
    def is_ssl(self) -> bool:
        return bool(self.values["certfile"] or self.values["keyfile"])

    @property
    def ssl_options(self) -> dict[str, Any]:
        return {
            name: self.values[name]
            for name, s in REGISTRY.items()
            if s.section == "SSL"
        }

    @property
    def sendfile(self) -> bool:
        """Whether to use sendfile: off with --no-sendfile, else the SENDFILE
        environment variable, else on."""
        if self.values["sendfile"] is not None:
            return bool(self.values["sendfile"])
        if "SENDFILE" in self.environ:
            return self.environ["SENDFILE"].lower() in ("y", "1", "yes", "true")
        return True

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
    """docs/settings.md, generated from the registry (section by section).
    ``python -m cunicorn.config --docs`` prints it."""
    out = [
        "# Settings",
        "",
        "> Generated from `pysrc/cunicorn/config.py` by "
        "`python -m cunicorn.config --docs > docs/settings.md`; do not edit.",
        "",
        "Names, flags and defaults are gunicorn's.  Precedence, lowest first: "
        "defaults (some from the environment: PORT, WEB_CONCURRENCY, "
        "FORWARDED_ALLOW_IPS) < config file < `GUNICORN_CMD_ARGS` < "
        "`CUNICORN_CMD_ARGS` < command line.",
        "",
    ]
    section = None
    for s in sorted(REGISTRY.values(), key=lambda s: (s.section, s.order)):
        if s.section != section:
            section = s.section
            out += [f"## {section}", ""]
        out += [f"### `{s.name}`", ""]
        if s.cli:
            flags = ", ".join(f"`{f} {s.meta}`" if s.meta else f"`{f}`" for f in s.cli)
            out += [f"**Command line:** {flags}", ""]
        if "\n" in s.default_doc:
            out += ["**Default:**", "", "```python", s.default_doc, "```", ""]
        else:
            out += [f"**Default:** `{s.default_doc}`", ""]
        notes = []
        if s.name in NOT_IMPLEMENTED:
            notes.append(f"Not implemented yet ({NOT_IMPLEMENTED[s.name]}).")
        if s.name in OUT_OF_SCOPE:
            notes.append("Out of cunicorn's scope.")
        out += [s.desc, ""]
        if notes:
            out += [
                "> " + " ".join(notes) + " A value other than the default "
                "gets a warning.",
                "",
            ]
    return "\n".join(out)


if __name__ == "__main__":
    if sys.argv[1:] == ["--docs"]:
        sys.stdout.write(settings_markdown())
    else:
        sys.exit("usage: python -m cunicorn.config --docs")
