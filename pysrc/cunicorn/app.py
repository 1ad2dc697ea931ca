"""Loading the configuration and the WSGI app, as gunicorn's app/base.py,
app/wsgiapp.py and util.import_app do.

``Application`` gathers the settings (defaults < config file < GUNICORN_CMD_ARGS
< CUNICORN_CMD_ARGS < command line), changes directory, extends sys.path and
loads ``module``, ``module:name`` or ``module:factory(literal args)``.
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util
import logging
import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from typing import Any, Callable

from cunicorn.config import DROPPED_SETTINGS, REGISTRY, Config, default_config_file
from cunicorn.errors import AppImportError, ConfigError


def warn(message: str) -> None:
    """A configuration warning on stderr (logging is not set up yet)."""
    print(f"Warning: {message}", file=sys.stderr)
    sys.stderr.flush()


def _called_with_wrong_args(f: Any) -> bool:
    """True when the TypeError being handled came from calling ``f`` (bad
    arguments) rather than from inside it."""
    tb = sys.exc_info()[2]
    code = getattr(f, "__code__", None)
    try:
        while tb is not None:
            if tb.tb_frame.f_code is code:
                return False
            tb = tb.tb_next
        return True
    finally:
        del tb


def _parse_app_expression(obj: str) -> tuple[str, list | None, dict | None]:
    """Split ``name`` or ``name(literal, key=literal)`` into name, args, kwargs
    (args None for a plain name)."""
    try:
        expression = ast.parse(obj, mode="eval").body
    except SyntaxError:
        raise AppImportError(
            f"Failed to parse {obj!r} as an attribute name or function call."
        ) from None
    if isinstance(expression, ast.Name):
        return expression.id, None, None
    if isinstance(expression, ast.Call):
        if not isinstance(expression.func, ast.Name):
            raise AppImportError(f"Function reference must be a simple name: {obj!r}")
        try:
            args = [ast.literal_eval(arg) for arg in expression.args]
            kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in expression.keywords}
        except ValueError:
            # literal_eval's own message is cryptic; show the whole expression
            raise AppImportError(
                f"Failed to parse arguments as literal values: {obj!r}"
            ) from None
        return expression.func.id, args, kwargs
    raise AppImportError(
        f"Failed to parse {obj!r} as an attribute name or function call."
    )


def import_app(uri: str) -> Callable[..., Any]:
    """Import ``module``, ``module:name`` or ``module:factory(args)`` and return
    the app.  The module's ImportError (or any exception while importing it)
    propagates: a worker turns it into exit 3.  A missing, None or non-callable
    app raises AppImportError: exit 4."""
    module, sep, obj = uri.partition(":")
    if not sep:
        obj = "application"
    try:
        mod = importlib.import_module(module)
    except ImportError:
        if module.endswith(".py") and os.path.exists(module):
            guess = module.rsplit(".", 1)[0]
            raise ImportError(
                f"Failed to find application, did you mean '{guess}:{obj}'?"
            ) from None
        raise

    name, args, kwargs = _parse_app_expression(obj)
    try:
        app = getattr(mod, name)
    except AttributeError:
        if logging.root.level == logging.DEBUG:
            traceback.print_exc()
        raise AppImportError(
            f"Failed to find attribute {name!r} in {module!r}."
        ) from None

    if args is not None:
        try:
            app = app(*args, **kwargs)
        except TypeError as e:
            # bad arguments to the factory: Python's message, no traceback;
            # a TypeError raised inside the factory keeps its traceback
            if _called_with_wrong_args(app):
                raise AppImportError(
                    "".join(traceback.format_exception_only(TypeError, e)).strip()
                ) from None
            raise

    if app is None:
        raise AppImportError(f"Failed to find application object: {obj!r}")
    if not callable(app):
        raise AppImportError("Application object must be callable.")
    return app


class Application:
    """The configuration and app of one cunicorn run.  Constructing it loads the
    configuration (argparse errors exit 2; ConfigError and bad values exit 1 with
    ``Error: ...`` as gunicorn prints them)."""

    def __init__(
        self,
        argv: Sequence[str] | None = None,
        prog: str = "cunicorn",
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.prog = prog
        self.argv = list(sys.argv[1:] if argv is None else argv)
        self.environ = environ
        self.app_uri: str | None = None
        self.callable: Callable[..., Any] | None = None
        try:
            self.cfg = Config(prog=prog, environ=environ)
            self.load_config()
            self.cfg.validate()
            for line in self.cfg.warnings():
                warn(line)
            self.cfg.env  # noqa: B018 (a raw_env entry without "=" is exit 1)
        except Exception as e:  # as gunicorn: any config failure is exit 1
            print(f"\nError: {e}", file=sys.stderr)
            sys.stderr.flush()
            sys.exit(1)

    # --- configuration ---

    def load_config(self) -> None:
        parser = self.cfg.parser()
        args = parser.parse_args(self.argv)
        if args.args:
            self.app_uri = args.args[0]

        self.chdir()

        env_args = [parser.parse_args(a) for a in self.cfg.cmd_args_from_env()]

        config = args.config
        for ea in reversed(env_args):
            config = config or ea.config
        if config:
            self.load_config_from_module_name_or_filename(config)
        else:
            default = default_config_file()
            if default is not None:
                self.load_config_from_module_name_or_filename(default)

        for ea in env_args:
            self.cfg.apply_args(ea)
        self.cfg.apply_args(args)

        # the directory may have changed through the config file or arguments
        self.chdir()

        if self.app_uri is None:
            if self.cfg.wsgi_app is not None:
                self.app_uri = self.cfg.wsgi_app
            else:
                raise ConfigError("No application module specified.")

    def chdir(self) -> None:
        os.chdir(self.cfg.chdir)
        if self.cfg.chdir not in sys.path:
            sys.path.insert(0, self.cfg.chdir)

    def add_pythonpath(self) -> None:
        if not self.cfg.pythonpath:
            return
        for path in self.cfg.pythonpath.split(","):
            path = os.path.abspath(path)
            if path not in sys.path:
                sys.path.insert(0, path)

    def _config_from_filename(self, filename: str) -> dict[str, Any]:
        if not os.path.exists(filename):
            raise RuntimeError(f"{filename!r} doesn't exist")
        module_name = "__config__"
        try:
            if os.path.splitext(filename)[1] in (".py", ".pyc"):
                spec = importlib.util.spec_from_file_location(module_name, filename)
            else:
                print(
                    "WARNING: configuration file should have a valid Python extension.",
                    file=sys.stderr,
                )
                loader = importlib.machinery.SourceFileLoader(module_name, filename)
                spec = importlib.util.spec_from_file_location(
                    module_name, filename, loader=loader
                )
            mod = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = mod
            spec.loader.exec_module(mod)
        except Exception:
            print(f"Failed to read config file: {filename}", file=sys.stderr)
            traceback.print_exc()
            sys.stderr.flush()
            sys.exit(1)
        return vars(mod)

    def load_config_from_module_name_or_filename(self, location: str) -> None:
        """Execute a config file (``PATH``, ``file:PATH``, ``python:MODULE``) and
        take the names in it that are settings; other names are ignored."""
        if location.startswith("python:"):
            values = vars(importlib.import_module(location[len("python:") :]))
        else:
            if location.startswith("file:"):
                location = location[len("file:") :]
            values = self._config_from_filename(location)

        for k, v in values.items():
            if k not in REGISTRY:
                if k in DROPPED_SETTINGS:
                    warn(
                        f"setting {k!r} is not a setting any more "
                        f"({DROPPED_SETTINGS[k]}); ignored"
                    )
                continue
            try:
                self.cfg.set(k, v)
            except Exception:
                print(f"Invalid value for {k}: {v}\n", file=sys.stderr)
                sys.stderr.flush()
                raise

    # --- the app ---

    def load(self) -> Callable[..., Any]:
        assert self.app_uri is not None
        return import_app(self.app_uri)

    def wsgi(self) -> Callable[..., Any]:
        """The app, loaded on first use (in the master with --preload, else in
        each worker)."""
        if self.callable is None:
            self.callable = self.load()
        return self.callable
