"""Build of cunicorn's C extension ``cunicorn._cserver``.

llhttp comes from the system (DESIGN.md): pkg-config ``libllhttp`` when present
(Debian 13's libllhttp-dev), else the C sources that Debian 12's node-llhttp
installs under /usr/share/llhttp, compiled here with LLHTTP_STRICT_MODE=1 and
linked in.  libev comes from libev-dev.  Nothing third-party is vendored.
The gevent worker is compiled (-DCN_HAVE_GREENLET) when greenlet, which ships
greenlet.h inside its package, is importable at build time; else it is left out.

Environment switches:
  CUNICORN_WERROR=1    add -Werror to our own sources (CI)
  CUNICORN_SANITIZE=1  build with ASan+UBSan, -O1, frame pointers (make sanitize)
"""

import glob
import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

LLHTTP_SRC_DIR = "/usr/share/llhttp"
LLHTTP_INC_DIR = "/usr/share/include/llhttp"
APT_HINT = (
    "cunicorn: cannot build: {what} missing; install the system packages with: "
    "apt-get install libev-dev node-llhttp   (Debian 13: libev-dev libllhttp-dev)"
)


def pkg_config(*args):
    if not shutil.which("pkg-config"):
        return None
    try:
        out = subprocess.run(
            ["pkg-config", *args], check=True, capture_output=True, text=True
        )
    except subprocess.CalledProcessError:
        return None
    return out.stdout.split()


def find_llhttp():
    """Return (include_dirs, extra_link_args, sources_to_compile) or exit."""
    cflags = pkg_config("--cflags", "libllhttp")
    libs = pkg_config("--libs", "libllhttp")
    if cflags is not None and libs is not None:
        incs = [f[2:] for f in cflags if f.startswith("-I")]
        return incs, libs, []
    srcs = sorted(glob.glob(os.path.join(LLHTTP_SRC_DIR, "*.c")))
    if srcs and os.path.exists(os.path.join(LLHTTP_INC_DIR, "llhttp.h")):
        return [LLHTTP_INC_DIR], [], srcs
    return None


def find_greenlet():
    """greenlet's include directory (it ships greenlet.h inside its package), or
    None: then the extension is built without the gevent worker."""
    try:
        import greenlet
    except ImportError:
        return None
    get_include = getattr(greenlet, "get_include", None)
    d = get_include() if get_include else os.path.dirname(greenlet.__file__)
    return d if os.path.exists(os.path.join(d, "greenlet.h")) else None


def find_libev():
    for d in ("/usr/include", "/usr/local/include", "/usr/include/libev"):
        if os.path.exists(os.path.join(d, "ev.h")):
            return [d] if d != "/usr/include" else []
    return None


class BuildExt(build_ext):
    """Compile the system's llhttp sources (if that is how llhttp is found) with
    their own flags, then link them into the extension with ours."""

    def build_extension(self, ext):
        srcs = getattr(ext, "llhttp_sources", [])
        if srcs:
            objs = self.compiler.compile(
                srcs,
                output_dir=os.path.join(self.build_temp, "llhttp"),
                macros=[("LLHTTP_STRICT_MODE", "1")],
                include_dirs=[LLHTTP_INC_DIR],
                extra_postargs=["-w", "-O2", "-fPIC"] + ext.sanitize_flags,
            )
            ext.extra_objects = list(ext.extra_objects or []) + objs
        super().build_extension(ext)


def make_extension():
    llhttp = find_llhttp()
    libev = find_libev()
    missing = [n for n, v in (("llhttp", llhttp), ("libev", libev)) if v is None]
    if missing:
        sys.exit(APT_HINT.format(what=" and ".join(missing)))
    ll_incs, ll_libs, ll_srcs = llhttp

    cflags = [
        "-std=gnu11",
        "-Wall",
        "-Wextra",
        "-Wshadow",
        "-Wstrict-prototypes",
        "-Wmissing-prototypes",
        "-Wno-missing-field-initializers",
        "-fvisibility=hidden",
    ]
    ldflags = []
    sanitize = []
    if os.environ.get("CUNICORN_WERROR") == "1":
        cflags.append("-Werror")
    if os.environ.get("CUNICORN_SANITIZE") == "1":
        sanitize = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"]
        cflags += sanitize + ["-O1", "-fno-sanitize-recover=undefined"]
        ldflags += ["-fsanitize=address,undefined"]
    else:
        cflags.append("-O2")

    greenlet_inc = find_greenlet()
    macros = [("CN_HAVE_GREENLET", "1")] if greenlet_inc else []

    ext = Extension(
        "cunicorn._cserver",
        sources=sorted(glob.glob("cserver/*.c")),
        depends=sorted(glob.glob("cserver/*.h")),
        define_macros=macros,
        include_dirs=[*ll_incs, *libev, *([greenlet_inc] if greenlet_inc else [])],
        libraries=["ev"],
        extra_compile_args=cflags,
        extra_link_args=ldflags + ll_libs,
    )
    ext.llhttp_sources = ll_srcs
    ext.sanitize_flags = sanitize
    return ext


setup(
    ext_modules=[make_extension()],
    cmdclass={"build_ext": BuildExt},
)
