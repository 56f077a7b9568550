"""The optional compiled kernel (and its helpers for names, ``model/_names.c``). Everything else about the package is in pyproject.toml.

A machine without a C compiler still installs: a failed build of the extension is a warning,
and the package then runs its pure-Python path (same outputs, slower).
"""

from __future__ import annotations

import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """build_ext that warns instead of failing when the kernel cannot be compiled."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as err:  # noqa: BLE001 - no compiler at all, or a broken one
            _warn(err)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as err:  # noqa: BLE001
            _warn(err)


def _warn(err: BaseException) -> None:
    print(f"warning: the compiled kernel was not built ({err}); "
          "mapreduce_logs will use its pure-Python path", file=sys.stderr)


setup(
    ext_modules=[
        Extension(
            name,
            [source],
            extra_compile_args=["-O2"] if sys.platform != "win32" else [],
            optional=True,
        )
        for name, source in (
            ("mapreduce_logs.ingest._kernel", "mapreduce_logs/ingest/_kernel.c"),
            ("mapreduce_logs.model._names", "mapreduce_logs/model/_names.c"),
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
