"""The test matrix: every Python ctxloop supports, each with every loop it can install.

python -m nox                 # the whole matrix, lint and the examples included
python -m nox -s tests-3.10   # one cell
python -m nox -s docs         # the documentation site, into site/

A Python this machine lacks is skipped, and nox's summary names it; with the
environment variable CI set, a missing Python is an error instead.
CPython 3.8-3.13 are found in pyenv's versions, 3.14 and 3.15 also where the
Debian builds of them are put on this machine (``DEBIAN_PYTHONS_ROOT``, by
default ``$TMPDIR/debian-sid``; see CONTRIBUTING.md), else on PATH.
"""

from __future__ import annotations

import glob
import os
import re

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = bool(os.environ.get("CI"))
nox.options.reuse_existing_virtualenvs = True


def _expose_pyenv_pythons() -> None:
    """Put each pyenv CPython's bin/ on PATH, so that python3.X is found without shims."""
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    bins = [d for d in glob.glob(os.path.join(root, "versions", "*", "bin")) if re.search(r"/\d+\.\d+\.\d+/bin$", d)]
    bins.sort(key=lambda d: [int(x) for x in d.split(os.sep)[-2].split(".")], reverse=True)
    os.environ["PATH"] = os.pathsep.join([*bins, os.environ.get("PATH", "")])


def _expose_debian_pythons() -> None:
    """Put the patched Debian builds of CPython 3.14/3.15 on PATH, where they exist."""
    root = os.environ.get("DEBIAN_PYTHONS_ROOT") or os.path.join(os.environ.get("TMPDIR", "/tmp"), "debian-sid")
    host_bin = os.path.join(root, "usr", "host-bin")
    if os.path.isdir(host_bin):
        os.environ["PATH"] = os.pathsep.join([host_bin, os.environ.get("PATH", "")])


_expose_pyenv_pythons()
_expose_debian_pythons()

CPYTHONS = ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14", "3.15"]
PYPYS = ["pypy3.9"]


@nox.session(python=CPYTHONS + PYPYS)
def tests(session: nox.Session) -> None:
    """The test suite on one Python, on asyncio's loop and uvloop (where it installs)."""
    extras = "test,integrations" if session.python in PYPYS else "test,integrations,uvloop"
    session.install(f".[{extras}]")
    # A hang outside any test (at interpreter exit, say) is beyond
    # pytest-timeout: bound the whole run so CI fails fast instead.
    session.run("timeout", "-k", "30", "1200", "python", "-m", "pytest", *session.posargs, external=True)


@nox.session(name="cpython-suite", python=[*CPYTHONS, "3.14", "3.15"], default=False)
def cpython_suite(session: nox.Session) -> None:
    """CPython's own asyncio tests, natively and with ctxloop substituted; fails on a divergence.

    python -m nox -s cpython-suite-3.12 -- --uvloop   # arguments go to tests/cpython/run_suite.py
    (3.14 and 3.15: Debian's python3.14/python3.15 on PATH.)
    """
    session.install(".[uvloop]")
    # Each test is bounded by the runner (a hung test is recorded and the rest
    # goes on); the whole run is bounded here too.
    command = ["python", "tests/cpython/run_suite.py", "--jobs", "2", *session.posargs]
    session.run("timeout", "-k", "30", "900", *command, external=True)


@nox.session(python="3.12")
def lint(session: nox.Session) -> None:
    """ruff and mypy --strict on the package."""
    session.install("-e", ".[lint,uvloop]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    for version in ("3.10", "3.11", "3.12", "3.13", "3.14", "3.15"):
        session.run("mypy", "--strict", "--no-warn-unused-ignores", "--python-version", version, "ctxloop")


# Pinned: with warnings as errors, a new release of a tool must not fail the build.
DOCS_TOOLS = [
    "mkdocs==1.6.1",
    "mkdocs-material==9.8.2",
    "mkdocstrings==1.0.8",
    "mkdocstrings-python==2.0.11",
    "ruff==0.17.6",  # formats the API reference's signatures
]


@nox.session(python="3.12")
def docs(session: nox.Session) -> None:
    """The documentation site (MkDocs, API reference by mkdocstrings), any warning an error."""
    session.install(*DOCS_TOOLS)
    # Material for MkDocs prints a banner about its successor on every build.
    session.run("mkdocs", "build", "--strict", "--clean", *session.posargs, env={"NO_MKDOCS_2_WARNING": "1"})
