"""Fixtures for the unit tests: each test gets its own working directory,
sys.path, imported-module set and gunicorn.* logger handlers back as they were."""

import logging
import os
import sys
import uuid

import pytest


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Run in an empty directory; undo chdir, sys.path and new modules after."""
    cwd = os.getcwd()
    path = list(sys.path)
    modules = set(sys.modules)
    handlers = {
        name: list(logging.getLogger(name).handlers)
        for name in ("gunicorn.error", "gunicorn.access")
    }
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("PWD", str(work))
    for var in ("GUNICORN_CMD_ARGS", "CUNICORN_CMD_ARGS", "PORT", "WEB_CONCURRENCY"):
        monkeypatch.delenv(var, raising=False)
    yield work
    os.chdir(cwd)
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        del sys.modules[name]
    for name, hs in handlers.items():
        log = logging.getLogger(name)
        for h in list(log.handlers):
            if h not in hs:
                log.removeHandler(h)
                h.close()


@pytest.fixture
def app_module(tmp_path):
    """Write a module with the given source into a directory on sys.path and
    return its (unique) name."""
    mod_dir = tmp_path / "mods"
    mod_dir.mkdir()
    sys.path.insert(0, str(mod_dir))

    def make(source):
        name = "app_" + uuid.uuid4().hex[:12]
        (mod_dir / f"{name}.py").write_text(source)
        return name

    return make
