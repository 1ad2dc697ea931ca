"""Loader for gunicorn's request corpus in ../shared/conformance (see its README).

``load_cases()`` → list of :class:`Case` (empty if the corpus is absent;
``CORPUS_DIR`` tells where it was looked for). A case's ``.py`` runs with a
recording ``cfg`` and gunicorn's ``uri()``; ``gunicorn.*`` imports inside it are
served by stand-ins (gunicorn need not be installed), and ``Config()`` returns
the same recorder so ``cfg = Config(); cfg.set(...)`` is recorded too.
"""

from __future__ import annotations

import builtins
import re
import types
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.server import REPO_ROOT

CONFORMANCE_DIR = REPO_ROOT.parent / "shared" / "conformance"
CORPUS_DIR = CONFORMANCE_DIR / "gunicorn-requests"

# gunicorn setting name → cunicorn CLI flag (booleans are store_true flags)
FLAG_MAP = {
    "limit_request_line": "--limit-request-line",
    "limit_request_fields": "--limit-request-fields",
    "limit_request_field_size": "--limit-request-field_size",
    "header_map": "--header-map",
    "proxy_protocol": "--proxy-protocol",
    "forwarded_allow_ips": "--forwarded-allow-ips",
    "permit_obsolete_folding": "--permit-obsolete-folding",
    "strip_header_spaces": "--strip-header-spaces",
    "permit_unconventional_http_method": "--permit-unconventional-http-method",
    "casefold_http_method": "--casefold-http-method",
}

# settings parse_requests() accepts as keyword arguments
PARSER_KWARGS = {
    "limit_request_line",
    "limit_request_fields",
    "limit_request_field_size",
}

# wire outcome per expected gunicorn exception (README table)
OUTCOME_400 = {
    "InvalidRequestLine",
    "InvalidRequestMethod",
    "InvalidHTTPVersion",
    "InvalidHeader",
    "InvalidHeaderName",
    "InvalidProxyLine",
    "InvalidSchemeHeaders",
    "LimitRequestLine",
    "ObsoleteFolding",
}
OUTCOME_431 = {"LimitRequestHeaders"}
OUTCOME_BODY_FAILS = {
    "InvalidChunkSize",
    "InvalidChunkExtension",
    "ChunkMissingTerminator",
}
OUTCOME_CLOSED = {"NoMoreData"}


class Recorder:
    """Stands in for gunicorn's Config: records ``set(name, value)`` calls."""

    def __init__(self):
        self.settings: dict = {}

    def set(self, name, value):
        self.settings[name] = value

    def __getattr__(self, name):  # cfg.limit_request_line etc. → recorded or None
        if name.startswith("_"):
            raise AttributeError(name)
        return self.settings.get(name)


def decode_http(raw: bytes) -> bytes:
    """README: drop real newlines; then \\r\\n → CRLF, \\0 → NUL, \\n → LF,
    \\t → HTAB, \\xHH → byte HH."""
    data = raw.replace(b"\n", b"")
    data = data.replace(b"\\r\\n", b"\r\n").replace(b"\\0", b"\x00")
    data = data.replace(b"\\n", b"\n").replace(b"\\t", b"\t")
    data = re.sub(rb"\\x([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), data)
    return data


def split_request_uri(raw: str):
    """gunicorn.util.split_request_uri: a leading ``//`` is a path, not a netloc."""
    if raw.startswith("//"):
        parts = urllib.parse.urlsplit("." + raw)
        return parts._replace(path=parts.path[1:])
    return urllib.parse.urlsplit(raw)


def uri(raw: str) -> dict:
    parts = split_request_uri(raw)
    return {
        "raw": raw,
        "scheme": parts.scheme or "",
        "path": parts.path or "",
        "query": parts.query or "",
        "fragment": parts.fragment or "",
    }


def path_info_of(u: dict) -> str | None:
    """Expected PATH_INFO for origin-form and absolute-form targets; None for
    asterisk and authority forms, where gunicorn's urlsplit result is an
    accident (``example.com:443`` splits into scheme + path) and not asserted."""
    raw = u["raw"]
    if raw.startswith("/") or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", raw):
        # the target is latin-1 text of the raw bytes: unquote those bytes
        return urllib.parse.unquote_to_bytes(u["path"].encode("latin-1")).decode(
            "latin-1"
        )
    return None


class _Errors:
    """``from gunicorn.http.errors import X`` → a class named X."""

    def __init__(self):
        self._classes = {}

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._classes.setdefault(name, type(name, (Exception,), {}))


@dataclass
class Case:
    name: str  # "valid/001"
    kind: str  # "valid" | "invalid"
    data: bytes
    expected: list | str  # list of request dicts, or the exception class name
    settings: dict = field(default_factory=dict)

    @property
    def flag_key(self) -> tuple:
        return tuple(sorted((k, repr(v)) for k, v in self.settings.items()))

    def cli_args(self) -> list[str]:
        """Flags for this case's settings. KeyError names an unmapped setting."""
        args = []
        for name, value in sorted(self.settings.items()):
            flag = FLAG_MAP[name]
            if value is True:
                args.append(flag)
            elif value is False:
                continue
            else:
                args += [flag, str(value)]
        return args


def _run_case_py(path: Path) -> tuple[dict, dict]:
    rec = Recorder()
    errors = _Errors()
    fake = {
        "gunicorn": types.SimpleNamespace(),
        "gunicorn.config": types.SimpleNamespace(Config=lambda *a, **k: rec),
        "gunicorn.http": types.SimpleNamespace(errors=errors),
        "gunicorn.http.errors": errors,
    }
    real_import = builtins.__import__

    def fake_import(name, globals=None, locals=None, fromlist=(), level=0):
        if name == "gunicorn" or name.startswith("gunicorn."):
            if fromlist:
                return fake[name]
            return fake["gunicorn"]
        return real_import(name, globals, locals, fromlist, level)

    bdict = dict(vars(builtins))
    bdict["__import__"] = fake_import
    ns = {"__builtins__": bdict, "__name__": "__config__", "cfg": rec, "uri": uri}
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), ns)
    return ns, rec.settings


def load_case(py_path: Path) -> Case:
    ns, settings = _run_case_py(py_path)
    kind = py_path.parent.name
    data = decode_http(py_path.with_suffix(".http").read_bytes())
    req = ns["request"]
    if kind == "valid":
        expected = req if isinstance(req, list) else [req]
        for e in expected:
            if isinstance(e["body"], str):
                e["body"] = e["body"].encode("latin-1")
    else:
        expected = req.__name__
    return Case(f"{kind}/{py_path.stem}", kind, data, expected, settings)


def load_cases() -> list[Case]:
    if not CORPUS_DIR.is_dir():
        return []
    cases = []
    for kind in ("valid", "invalid"):
        for py in sorted((CORPUS_DIR / kind).glob("*.py")):
            cases.append(load_case(py))
    return cases


def expected_environ_headers(headers) -> dict:
    """gunicorn's wsgi.create: CONTENT-TYPE/CONTENT-LENGTH without HTTP_ (last
    one wins), every other name → HTTP_NAME with '-' → '_', repeats joined ','."""
    env = {}
    for name, value in headers:
        if name == "CONTENT-TYPE":
            env["CONTENT_TYPE"] = value
        elif name == "CONTENT-LENGTH":
            env["CONTENT_LENGTH"] = value
        else:
            key = "HTTP_" + name.replace("-", "_")
            env[key] = f"{env[key]},{value}" if key in env else value
    return env
