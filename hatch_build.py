"""Wheel build hook: compile the optional C accelerator ``ctxloop._speedups`` when it can.

ctxloop is complete in pure Python; ``ctxloop/_speedups.c`` (a single-file
CPython extension that needs only ``Python.h``) only makes it faster. The wheel
gets the compiled module when the file exists, the interpreter is CPython
(free-threaded builds included: the module declares that it runs without the
GIL), and a C compiler works; otherwise the wheel is pure Python (tag
``py3-none-any``) and the build prints one line saying why. A build never fails
because of the accelerator. ``CTXLOOP_NO_EXTENSIONS=1`` asks for the pure wheel.

An editable install compiles the module in place, next to its source, since an
editable install imports the package from the source tree.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import sys
import tempfile
from typing import Any, Dict, Iterator, List, Optional, Tuple

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

MODULE = "ctxloop._speedups"
SOURCE = "ctxloop/_speedups.c"
DISABLE = "CTXLOOP_NO_EXTENSIONS"
# setuptools is the compiler driver (it knows every platform's compiler and
# flags); it is a build requirement only when there is something to compile.
SETUPTOOLS = "setuptools>=61"


class SpeedupsBuildHook(BuildHookInterface):
    """Add ctxloop._speedups to the wheel when it compiles; never fail the build."""

    PLUGIN_NAME = "custom"

    def _skip_reason(self) -> Optional[str]:
        if not os.path.isfile(os.path.join(self.root, SOURCE)):
            return f"{SOURCE} is not in this source tree"
        if os.environ.get(DISABLE, "") not in ("", "0"):
            return f"{DISABLE} is set"
        if sys.implementation.name != "cpython":
            return f"{platform.python_implementation()} runs the pure-Python package"
        return None

    def dependencies(self) -> List[str]:
        return [] if self._skip_reason() else [SETUPTOOLS]

    def initialize(self, version: str, build_data: Dict[str, Any]) -> None:
        reason = self._skip_reason()
        if reason is None:
            inplace = version == "editable"
            built, reason = self._compile(inplace)
            if built is not None:
                name = os.path.basename(built)
                if not inplace:
                    build_data["force_include"][built] = f"ctxloop/{name}"
                    build_data["pure_python"] = False
                    build_data["infer_tag"] = True
                where = "in place" if inplace else "into the wheel"
                self.app.display_info(f"ctxloop: compiled the C accelerator {MODULE} ({name}) {where}")
                return
        self.app.display_warning(f"ctxloop: pure-Python build, without the optional C accelerator: {reason}")

    def finalize(self, version: str, build_data: Dict[str, Any], artifact_path: str) -> None:
        kept = getattr(self, "_kept", None)
        if kept is not None:
            shutil.rmtree(kept, ignore_errors=True)

    def _compile(self, inplace: bool) -> Tuple[Optional[str], str]:
        """Compile the extension; return (path of the built module, '') or (None, why not)."""
        build_dir = tempfile.mkdtemp(prefix="ctxloop-build-")
        log_path = os.path.join(build_dir, "compiler.log")
        cwd = os.getcwd()
        try:
            os.chdir(self.root)
            with _output_to(log_path):
                from setuptools import Distribution, Extension
                from setuptools.command.build_ext import build_ext

                dist = Distribution({"name": "ctxloop", "ext_modules": [Extension(MODULE, [SOURCE])]})
                command = build_ext(dist)
                command.build_lib = os.path.join(build_dir, "lib")
                command.build_temp = os.path.join(build_dir, "temp")
                command.inplace = inplace
                command.ensure_finalized()
                command.run()
                built = os.path.abspath(command.get_ext_fullpath(MODULE))
            if not inplace:
                # build_dir is removed below: keep the module until the wheel is written (finalize).
                self._kept = tempfile.mkdtemp(prefix="ctxloop-ext-")
                built = shutil.copy2(built, self._kept)
            return built, ""
        except Exception as exc:  # a failure of any kind leaves the pure-Python package
            return None, f"compiling {SOURCE} failed: {_first_error(log_path) or exc}"
        finally:
            os.chdir(cwd)
            shutil.rmtree(build_dir, ignore_errors=True)


@contextlib.contextmanager
def _output_to(path: str) -> Iterator[None]:
    """Send this process's stdout and stderr (the compiler's included) to a file, for the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(path, "wb") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
    finally:
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)


def _first_error(log_path: str) -> str:
    """The compiler's first error line, if it wrote one."""
    try:
        with open(log_path, encoding="utf-8", errors="replace") as log:
            lines = [line.strip() for line in log]
    except OSError:
        return ""
    for line in lines:
        if "error" in line.lower():
            return line
    return ""
