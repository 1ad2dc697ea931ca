# cunicorn: the two commands of the README, and the rest.
#
#   make demo      system packages, .venv, build + install, serve examples/flask_app.py
#   make test      same set-up, ruff, then the whole test suite (what .ci/run runs)
#   make sanitize  ASan+UBSan build in .venv-asan, black-box tests under it
#   make bench     bench/run.py (peers in bench/.venv-peers); BENCH_ARGS=... passes flags
#   make bench-gthread / bench-gevent   bench/gthread.py / bench/gevent.py, same peers
#   make lint      ruff check + ruff format --check
#   make clean     build products (keeps .venv and the peers' venv; see distclean)
#
# Works on a fresh Debian 12 (or 13) machine with python3 and a C compiler; as root,
# or through sudo, it installs the missing Debian packages once.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
ASAN_VENV ?= .venv-asan
APY := $(ASAN_VENV)/bin/python
PEERS_VENV ?= bench/.venv-peers

# Test-only Python packages that pyproject's `test` extra may not list yet.
EXTRA_TEST_PKGS ?= pytest-timeout
# A hung test fails after this many seconds instead of stalling CI.
PYTEST_TIMEOUT ?= 120
PYTEST_ARGS ?=
BENCH_ARGS ?=
LINT_PATHS := pysrc tests bench examples
BLACKBOX_TESTS := tests/blackbox tests/http tests/cli

C_SRCS := $(wildcard cserver/*.c cserver/*.h)
# The venv is "done" when this file exists and is newer than the packaging files.
VENV_STAMP := $(VENV)/.cunicorn-installed
# One stamp per build flavour, so `make test` after `make demo` rebuilds with -Werror.
WERROR ?= 0
EXT_STAMP := $(VENV)/.cunicorn-ext-werror$(WERROR)

# root runs apt-get itself; anyone else goes through sudo when it exists.
SUDO := $(shell [ "$$(id -u)" = 0 ] || ! command -v sudo >/dev/null || echo sudo)
APT_ENV := DEBIAN_FRONTEND=noninteractive
# FORCE_APT=1 runs the apt-get step even when everything looks installed.
FORCE_APT ?=

.PHONY: help demo test sanitize bench bench-gthread bench-gevent lint clean distclean sysdeps bench-sysdeps ext

help:
	@sed -n '2,10p' Makefile | sed 's/^# \{0,1\}//'

# ---------------------------------------------------------------- system packages
# Fast and silent when everything is there: one dpkg/pkg-config query, no apt-get.
# llhttp: Debian 13 ships libllhttp-dev (pkg-config libllhttp); Debian 12 only the
# sources in node-llhttp, which setup.py compiles (DESIGN.md).
sysdeps:
	@need="$(FORCE_APT)"; \
	dpkg -s libev-dev wrk >/dev/null 2>&1 || need="libev-dev wrk"; \
	if ! pkg-config --exists libllhttp 2>/dev/null && ! dpkg -s node-llhttp >/dev/null 2>&1; then \
	    need="$$need llhttp"; fi; \
	command -v cc >/dev/null || need="$$need build-essential"; \
	command -v pkg-config >/dev/null || need="$$need pkg-config"; \
	$(PYTHON) -c 'import ensurepip' 2>/dev/null || need="$$need python3-venv"; \
	$(PYTHON) -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
	    || need="$$need python3-dev"; \
	if [ -n "$$need" ]; then \
	    echo "make: installing Debian packages for:$$need"; \
	    $(SUDO) $(APT_ENV) apt-get update -qq; \
	    ll=node-llhttp; \
	    if apt-cache show libllhttp-dev >/dev/null 2>&1; then ll=libllhttp-dev; fi; \
	    $(SUDO) $(APT_ENV) apt-get install -y -qq --no-install-recommends \
	        libev-dev $$ll wrk pkg-config build-essential python3-venv python3-dev >/dev/null; \
	fi

# nginx (the no-Python peer of bench/run.py); Debian 12 has nginx-light, 13 only nginx.
bench-sysdeps: sysdeps
	@if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then \
	    echo "make: installing nginx for the benchmark"; \
	    $(SUDO) $(APT_ENV) apt-get update -qq; \
	    pkg=nginx; if apt-cache show nginx-light >/dev/null 2>&1; then pkg=nginx-light; fi; \
	    $(SUDO) $(APT_ENV) apt-get install -y -qq --no-install-recommends $$pkg >/dev/null; \
	fi

# ---------------------------------------------------------------- venv + build
# The venv itself is never deleted here (others may be using it); it is created once.
# `pip install -e` builds the extension too; the EXT_STAMP rule below then
# rebuilds it in place whenever a C file changes (a second compile on a fresh
# checkout costs a few seconds).
$(VENV_STAMP): pyproject.toml setup.py | sysdeps
	@[ -x $(VPY) ] || { echo "make: creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@# setup.py build_ext runs on the venv's own setuptools: pyproject's
	@# `license = "MIT"` (PEP 639) needs setuptools >= 77, newer than ensurepip's.
	@$(VPY) -m pip install -q --disable-pip-version-check --upgrade 'setuptools>=77' wheel
	@echo "make: pip install -e '.[test,gevent]' into $(VENV)"
	@$(VPY) -m pip install -q --disable-pip-version-check -e '.[test,gevent]' $(EXTRA_TEST_PKGS)
	@touch $@

$(EXT_STAMP): $(C_SRCS) setup.py $(VENV_STAMP)
	@echo "make: building cunicorn._cserver (CUNICORN_WERROR=$(WERROR))"
	@rm -f $(VENV)/.cunicorn-ext-werror*
	@CUNICORN_WERROR=$(WERROR) $(VPY) setup.py -q build_ext --inplace
	@touch $@

ext: $(EXT_STAMP)

# ---------------------------------------------------------------- the two commands
demo: $(EXT_STAMP)
	@echo "make: serving examples/flask_app.py on http://127.0.0.1:8000/ (Ctrl-C stops)"
	$(VENV)/bin/cunicorn -w 2 -b 127.0.0.1:8000 examples.flask_app:app

test:
	@$(MAKE) --no-print-directory WERROR=1 ext
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/pytest -q -p no:cacheprovider --timeout=$(PYTEST_TIMEOUT) $(PYTEST_ARGS) tests

lint: $(VENV_STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)

# ---------------------------------------------------------------- sanitizers
# A separate venv with an ASan+UBSan build of the extension installed (not
# editable: the sanitized .so lives in $(ASAN_VENV), so .venv and `make test`
# keep the normal build).  CPython itself is not built with ASan, so the gcc
# runtime is LD_PRELOADed; the test harness starts the server with the same
# environment, so server processes and their workers run under it too.
# detect_leaks=0: LeakSanitizer would report the interpreter's own intentional
# "leaks" (interned strings, static types, arenas kept until exit) - noise that
# hides real findings.  Leaks are checked by the RSS benchmark instead.
# gevent tests: greenlet copies C stacks in and out, which stack redzones cannot
# follow (greenlet issues 113, 367), so stack redzones are off (heap, globals and
# UBSan stay); libstdc++ is preloaded for greenlet's C++ exceptions under ASan.
ASAN_STAMP := $(ASAN_VENV)/.cunicorn-asan-installed
$(ASAN_STAMP): $(C_SRCS) setup.py pyproject.toml $(wildcard pysrc/cunicorn/*.py pysrc/cunicorn/*/*.py) | sysdeps
	@[ -x $(APY) ] || { echo "make: creating $(ASAN_VENV)"; $(PYTHON) -m venv $(ASAN_VENV); }
	@echo "make: building cunicorn with CUNICORN_SANITIZE=1 into $(ASAN_VENV)"
	@# Build from a copy of the tree: pip's in-tree build would share ./build
	@# (and its objects) with the normal build that others may be running.
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	    tar -cf - --exclude=./.venv* --exclude=./build --exclude=./bench/.venv-peers \
	        --exclude=./.git --exclude='*.so' --exclude='*.egg-info' . | tar -C "$$tmp" -xf -; \
	    export CUNICORN_SANITIZE=1 CUNICORN_WERROR=1 CFLAGS="--param=asan-stack=0"; \
	    $(APY) -m pip install -q --disable-pip-version-check "$$tmp[test,gevent]" $(EXTRA_TEST_PKGS); \
	    $(APY) -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$$tmp"
	@touch $@

sanitize: $(ASAN_STAMP)
	@libasan=$$(gcc -print-file-name=libasan.so); \
	    [ -f "$$libasan" ] || { echo "make: libasan.so not found (apt-get install gcc)"; exit 1; }; \
	    so=$$(cd /tmp && LD_PRELOAD="$$libasan" ASAN_OPTIONS=detect_leaks=0 $(CURDIR)/$(APY) -c 'import cunicorn._cserver as m; print(m.__file__)'); \
	    case "$$so" in $(CURDIR)/$(ASAN_VENV)/*) ;; *) echo "make: sanitize would test $$so, not the ASan build"; exit 1;; esac; \
	    echo "make: running $(BLACKBOX_TESTS) under ASan+UBSan ($$so)"; \
	    LD_PRELOAD="$$libasan $$(gcc -print-file-name=libstdc++.so)" \
	    ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:halt_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    PYTHONMALLOC=malloc \
	    CUNICORN_TEST_TIMEOUT_SCALE=4 \
	    $(ASAN_VENV)/bin/pytest -q -p no:cacheprovider --timeout=$$(( $(PYTEST_TIMEOUT) * 3 )) $(PYTEST_ARGS) \
	        $(BLACKBOX_TESTS)

# ---------------------------------------------------------------- benchmark
$(PEERS_VENV)/.installed: | sysdeps
	@[ -x $(PEERS_VENV)/bin/python ] || $(PYTHON) -m venv $(PEERS_VENV)
	@echo "make: installing gunicorn, gevent, bjoern, flask, numpy into $(PEERS_VENV)"
	@$(PEERS_VENV)/bin/pip install -q --disable-pip-version-check gunicorn gevent packaging bjoern flask numpy
	@touch $@

bench: bench-sysdeps $(EXT_STAMP) $(PEERS_VENV)/.installed
	$(VPY) bench/run.py --peers-python $(PEERS_VENV)/bin/python $(BENCH_ARGS)

# the gthread worker's figures (issue 5) and the gevent worker's, same peers
bench-gthread: bench-sysdeps $(EXT_STAMP) $(PEERS_VENV)/.installed
	$(VPY) bench/gthread.py --peers-python $(PEERS_VENV)/bin/python $(BENCH_ARGS)

bench-gevent: bench-sysdeps $(EXT_STAMP) $(PEERS_VENV)/.installed
	$(VPY) bench/gevent.py --peers-python $(PEERS_VENV)/bin/python $(BENCH_ARGS)

# ---------------------------------------------------------------- cleaning
clean:
	rm -rf build dist pysrc/*.egg-info .pytest_cache .ruff_cache
	rm -f pysrc/cunicorn/_cserver*.so $(VENV)/.cunicorn-ext-werror*
	find . -path ./$(VENV) -prune -o -path ./$(ASAN_VENV) -prune -o -path ./$(PEERS_VENV) -prune \
	    -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) $(ASAN_VENV) $(PEERS_VENV) bench/results
