"""Loading the app: ``module``, ``module:name``, ``module:factory(literals)``,
with gunicorn's errors."""

import sys

import pytest
from cunicorn.app import Application, import_app
from cunicorn.errors import AppImportError

SOURCE = """
def app(environ, start_response):
    return [b"app"]

def application(environ, start_response):
    return [b"application"]

calls = []

def factory(*args, **kwargs):
    calls.append((args, kwargs))
    return app

def no_args_factory():
    return app

def raising_factory():
    raise TypeError("raised inside")

def none_factory():
    return None

not_callable = 42
nothing = None
"""


@pytest.fixture
def mod(app_module):
    return app_module(SOURCE)


def test_module_alone_loads_application(mod):
    assert import_app(mod)(None, None) == [b"application"]


def test_module_colon_name(mod):
    assert import_app(f"{mod}:app")(None, None) == [b"app"]


def test_factory_with_literal_args(mod):
    app = import_app(f"{mod}:factory(1, 'x', key=[2, 3])")
    assert app(None, None) == [b"app"]
    assert sys.modules[mod].calls == [((1, "x"), {"key": [2, 3]})]


def test_factory_without_args(mod):
    assert import_app(f"{mod}:no_args_factory()")(None, None) == [b"app"]


@pytest.mark.parametrize(
    "expr, message",
    [
        ("factory(os.getcwd())", "Failed to parse arguments as literal values"),
        ("factory(x)", "Failed to parse arguments as literal values"),
        ("a.b", "Failed to parse 'a.b' as an attribute name or function call."),
        ("x[0]", "as an attribute name or function call"),
        ("(", "Failed to parse '(' as an attribute name or function call."),
        ("obj.f()", "Function reference must be a simple name: 'obj.f()'"),
    ],
)
def test_non_literal_or_bad_expressions_rejected(mod, expr, message):
    with pytest.raises(AppImportError) as exc:
        import_app(f"{mod}:{expr}")
    assert message in str(exc.value)


def test_missing_attribute(mod):
    with pytest.raises(AppImportError) as exc:
        import_app(f"{mod}:nope")
    assert str(exc.value) == f"Failed to find attribute 'nope' in '{mod}'."


def test_not_callable(mod):
    with pytest.raises(AppImportError) as exc:
        import_app(f"{mod}:not_callable")
    assert str(exc.value) == "Application object must be callable."


def test_none_app(mod):
    with pytest.raises(AppImportError) as exc:
        import_app(f"{mod}:nothing")
    assert str(exc.value) == "Failed to find application object: 'nothing'"
    with pytest.raises(AppImportError):
        import_app(f"{mod}:none_factory()")


def test_factory_called_with_wrong_args(mod):
    with pytest.raises(AppImportError) as exc:
        import_app(f"{mod}:no_args_factory(1)")
    assert "TypeError" in str(exc.value)
    assert "argument" in str(exc.value)


def test_type_error_inside_factory_propagates(mod):
    with pytest.raises(TypeError, match="raised inside"):
        import_app(f"{mod}:raising_factory()")


def test_missing_module_is_import_error():
    with pytest.raises(ImportError) as exc:
        import_app("no_such_module_xyz:app")
    assert not isinstance(exc.value, AppImportError)
    assert exc.value.name == "no_such_module_xyz"


def test_py_file_hint(isolated):
    (isolated / "hello.py").write_text("app = lambda e, s: []\n")
    with pytest.raises(ImportError) as exc:
        import_app("hello.py")
    assert "did you mean 'hello:application'?" in str(exc.value)


def test_error_inside_module_propagates(app_module):
    name = app_module("raise RuntimeError('module broke')\n")
    with pytest.raises(RuntimeError, match="module broke"):
        import_app(name)


def test_application_loads_after_chdir(tmp_path):
    there = tmp_path / "there"
    there.mkdir()
    (there / "chdir_app_mod.py").write_text("def app(e, s):\n    return [b'x']\n")
    app = Application(["--chdir", str(there), "chdir_app_mod:app"])
    assert app.wsgi()(None, None) == [b"x"]
    assert app.wsgi() is app.wsgi()  # loaded once


def test_application_loads_from_pythonpath(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "pp_app_mod.py").write_text("def app(e, s):\n    return [b'pp']\n")
    app = Application(["--pythonpath", str(lib), "pp_app_mod:app"])
    app.add_pythonpath()
    assert app.wsgi()(None, None) == [b"pp"]
