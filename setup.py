"""Build the optional DNS fast path (filterd/dns/_speedups.pyx); everything else is setup.cfg.

The extension is optional, as msgpack's and aiohttp's are: without Cython, a C
compiler or the Python headers (Debian: gcc, python3-dev) the install goes on
without it, says so, and filterd runs its pure-Python twin (filterd/dns/_pure.py).
FILTERD_NO_EXTENSIONS=1 skips the build on purpose. Plain C, no architecture flags:
the same build runs on x86-64 and aarch64 (Raspberry Pi OS 64-bit).
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

PYX = "filterd/dns/_speedups.pyx"


class OptionalBuildExt(build_ext):
    """build_ext that warns instead of failing: filterd works without the extension."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:   # no compiler at all (CCompilerError, PlatformError...)
            self._skipped(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:   # compile or link failed (missing Python.h, ...)
            self._skipped(exc)

    @staticmethod
    def _skipped(exc: BaseException) -> None:
        print("*" * 75, file=sys.stderr)
        print("filterd: the DNS fast path (filterd/dns/_speedups) was NOT compiled:",
              file=sys.stderr)
        print(f"  {exc}", file=sys.stderr)
        print("filterd will run its pure-Python twin (slower, same answers).", file=sys.stderr)
        print("To build it: apt-get install gcc python3-dev, then reinstall filterd.",
              file=sys.stderr)
        print("*" * 75, file=sys.stderr)


def extensions() -> list[Extension]:
    if os.environ.get("FILTERD_NO_EXTENSIONS", "") not in ("", "0"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("filterd: Cython is not installed; the DNS fast path is not built "
              "(the pure-Python twin runs)", file=sys.stderr)
        return []
    try:
        return cythonize([Extension("filterd.dns._speedups", [PYX], extra_compile_args=["-O2"])],
                         compiler_directives={"language_level": "3"}, quiet=True)
    except Exception as exc:   # a Cython that cannot translate it: still install, on the twin
        OptionalBuildExt._skipped(exc)
        return []


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
