"""Free-threaded CPython: ctxloop never turns the GIL back on, and says how it runs.

The stress tests that run without the GIL are in tests/test_threads.py and
tests/test_entered.py (they run on every build; without the GIL is where they
can fail). Here: importing ctxloop (its compiled accelerator included) and
running ``python -m ctxloop`` leave the GIL off, and an accelerator that would
turn it on is not used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

import ctxloop
from ctxloop import _accel

pytestmark = pytest.mark.timeout(120)

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
needs_free_threading = pytest.mark.skipif(not FREE_THREADED, reason="needs a free-threaded CPython (python3.13t)")


def _python(*args: str, env: "dict[str, str] | None" = None, cwd: "Path | None" = None) -> str:
    out = subprocess.run(
        [sys.executable, "-W", "error", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=100,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@needs_free_threading
def test_importing_ctxloop_leaves_the_gil_off() -> None:
    out = _python(
        "-c",
        "import sys, ctxloop, ctxloop._accel as a;"
        "print(sys._is_gil_enabled(), a.speedups is not None, a.implementation())",
    )
    gil, compiled, implementation = out.strip().split(" ", 2)
    assert gil == "False", implementation
    if os.environ.get("CTXLOOP_TEST_INSTALLED") == "1" and os.environ.get("CTXLOOP_NO_SPEEDUPS", "") in ("", "0"):
        # The wheel built on this interpreter carries the accelerator (hatch_build.py).
        assert compiled == "True", implementation


@needs_free_threading
def test_the_report_runs_without_the_gil_and_says_so() -> None:
    out = _python("-m", "ctxloop", "--loop", "asyncio")
    assert "GIL: disabled (free-threaded build)" in out
    assert "contexts entered: read from each context's entered flag" in out


def test_an_accelerator_that_turns_the_gil_on_is_not_used(tmp_path: Path) -> None:
    # Stands in for a compiled module that does not declare it runs without the
    # GIL: importing it turns the GIL on and CPython warns. ctxloop must not
    # use it, must let the user see the warning, and must not fail to import
    # under -W error because of it.
    package = tmp_path / "ctxloop"
    shutil.copytree(Path(ctxloop.__file__).parent, package, ignore=shutil.ignore_patterns("_speedups*", "__pycache__"))
    (package / "_speedups.py").write_text(
        textwrap.dedent(
            """
            import sys, warnings
            sys._is_gil_enabled = lambda: True
            warnings.warn("The global interpreter lock (GIL) has been enabled to load module 'ctxloop._speedups'",
                          RuntimeWarning)
            """
        )
    )
    script = (
        "import sys, warnings\n"
        "sys._is_gil_enabled = lambda: False\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import ctxloop._accel as a\n"
        "print(a.speedups is None, '|', a.implementation(), '|', [str(w.message)[:41] for w in caught])\n"
    )
    out = _python("-c", script, cwd=tmp_path, env={"PYTHONPATH": str(tmp_path), "CTXLOOP_NO_SPEEDUPS": ""})
    unused, implementation, warnings = (part.strip() for part in out.split("|"))
    if sys.implementation.name != "cpython":
        assert unused == "True" and "this is" in implementation
        return
    assert unused == "True", implementation
    assert implementation == (
        "pure Python (the compiled accelerator is not usable here: importing it turned the GIL on "
        "(it does not declare that it runs without the GIL))"
    )
    assert warnings.startswith("['The global interpreter lock (GIL) has bee")


def test_the_implementation_line_says_why() -> None:
    line = _accel.implementation()
    if _accel.speedups is not None:
        assert line.startswith("compiled accelerator (_speedups.")
    else:
        assert line.startswith("pure Python (")
