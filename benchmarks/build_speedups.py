"""Build ctxloop's optional accelerator in place: ``ctxloop/_speedups<EXT_SUFFIX>``.

Run it with each interpreter that should use the accelerator (the extension
file names differ per Python, so builds for several Pythons sit side by side)::

    python benchmarks/build_speedups.py                 # this interpreter
    python benchmarks/build_speedups.py --python /path/to/python3.12 --python ...
    python benchmarks/build_speedups.py --clean         # remove every built copy

It needs a C compiler and the interpreter's headers (``Python.h``), nothing
else: one source file, ``ctxloop/_speedups.c``, compiled with the
interpreter's own compiler and flags (``sysconfig``) into a shared object.
On PyPy there is nothing to build (ctxloop is pure Python there).
"""

from __future__ import annotations

import argparse
import glob
import os
import shlex
import subprocess
import sys
import sysconfig
from typing import List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, "ctxloop", "_speedups.c")
# Warnings are errors here, where the source is developed; an installer
# building it for a user would leave -Werror out.
WARNINGS = ["-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers", "-Werror"]


def compile_command(output: str) -> List[str]:
    """The compiler command line for this interpreter."""
    config = sysconfig.get_config_vars()
    paths = sysconfig.get_paths()
    compiler = shlex.split(config.get("CC") or "cc")
    includes = {paths["include"], paths["platinclude"]}
    flags = shlex.split(config.get("CFLAGS") or "") + shlex.split(config.get("CCSHARED") or "-fPIC")
    flags = [f for f in flags if not f.startswith(("-Werror", "-fprofile", "-flto"))]
    return [
        *compiler,
        *flags,
        "-O2",
        "-std=c99",
        *WARNINGS,
        *(f"-I{d}" for d in sorted(includes)),
        # Debian's Python.h includes <x86_64-linux-gnu/python3.X/pyconfig.h>:
        # the parent of the include directory is searched last.
        "-idirafter",
        os.path.dirname(paths["include"]),
        "-shared",
        "-o",
        output,
        SOURCE,
    ]


def build() -> str:
    if sys.implementation.name != "cpython":
        raise SystemExit(f"nothing to build on {sys.implementation.name}: ctxloop is pure Python there")
    output = os.path.join(ROOT, "ctxloop", "_speedups" + sysconfig.get_config_var("EXT_SUFFIX"))
    command = compile_command(output)
    print(" ".join(shlex.quote(part) for part in command))
    subprocess.run(command, check=True)
    return output


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", action="append", help="build for this interpreter (repeatable)")
    parser.add_argument("--clean", action="store_true", help="remove every built accelerator")
    args = parser.parse_args(argv)
    if args.clean:
        for path in glob.glob(os.path.join(ROOT, "ctxloop", "_speedups*.so")) + glob.glob(
            os.path.join(ROOT, "ctxloop", "_speedups*.pyd")
        ):
            os.remove(path)
            print(f"removed {path}")
        return 0
    if args.python:
        for python in args.python:
            subprocess.run([python, os.path.abspath(__file__)], check=True)
        return 0
    print(build())
    return 0


if __name__ == "__main__":
    sys.exit(main())
